netc::network! {
    network N {
        input x: [8]
        x -> dense(4) -> rellu as y
        output y
    }
}
fn main() {}
