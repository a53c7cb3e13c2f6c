netc::network! {
    network N {
        input image: [8]
        y = imgae -> dense(2)
        output y
    }
}
fn main() {}
