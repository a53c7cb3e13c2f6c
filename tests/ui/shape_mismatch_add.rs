netc::network! {
    network N {
        input x: [8]
        a = x -> dense(4)
        b = x -> dense(5)
        output a + b
    }
}
fn main() {}
