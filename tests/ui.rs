//! `network!` errors land under the offending tokens, with the checker's
//! message, notes and help: trybuild compiles each file in `ui/` and
//! compares rustc's output with the `.stderr` beside it.

#[test]
fn macro_errors_point_at_the_user_tokens() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
