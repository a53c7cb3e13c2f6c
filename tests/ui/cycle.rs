netc::network! {
    network N {
        input x: [8]
        a = b -> relu
        b = a + x
        output b
    }
}
fn main() {}
