netc::network! {
    network N {
        input x: [8]
        y = x -> dense(2)
        output y
        optimizer sgd(lr: 0.1)
    }
}
fn main() {}
