netc::network! {
    network N {
        input x: [1, 28, 28]
        y = x -> conv2d(6, kernel: 5) -> dense(10)
        loss cross_entropy(y)
    }
}
fn main() {}
