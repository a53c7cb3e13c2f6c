netc::network! {
    network N {
        input x: [1, 4, 4]
        y = x -> conv2d(6, kernel: 5)
        output y
    }
}
fn main() {}
