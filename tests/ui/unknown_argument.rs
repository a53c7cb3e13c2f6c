netc::network! {
    network N {
        input x: [1, 8, 8]
        y = x -> conv2d(4, kernal: 3)
        output y
    }
}
fn main() {}
