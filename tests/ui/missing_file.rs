netc::network!(file = "models/does_not_exist.net");
fn main() {}
