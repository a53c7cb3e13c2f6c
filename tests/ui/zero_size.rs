netc::network! {
    network N {
        input x: [8]
        y = x -> dense(0)
        output y
    }
}
fn main() {}
