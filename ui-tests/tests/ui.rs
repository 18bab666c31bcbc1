//! Every misuse of the macros and the exact error it gets (`tests/ui/fail`), and the uses
//! that must keep compiling (`tests/ui/pass`). Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p ui-tests` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
