//! Every misuse of the macros and the exact error it gets (`tests/ui/fail`). Regenerate the
//! `.stderr` files with `TRYBUILD=overwrite cargo test -p ui-tests --test ui` and review
//! the diff. The uses that must compile are ordinary tests (`tests/pass/`).
//!
//! With compile-fail cases only, trybuild checks them all in one `cargo check` (no code
//! generation, its own target directory). The expected errors are rustc 1.95's wording:
//! on another compiler the cases are skipped, saying so, so a new stable cannot break the
//! build.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    compile_fail(&t);
}

#[rustversion::stable(1.95)]
fn compile_fail(t: &trybuild::TestCases) {
    t.compile_fail("tests/ui/fail/*.rs");
}

#[rustversion::not(stable(1.95))]
fn compile_fail(_: &trybuild::TestCases) {
    eprintln!(
        "skipped: the compile-fail cases' expected errors are rustc 1.95's; run them with \
         that compiler"
    );
}
