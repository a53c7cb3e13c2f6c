netc::network! {
    network N {
        input x: [8]
        y = x -> -> dense(4)
        output y
    }
}
fn main() {}
