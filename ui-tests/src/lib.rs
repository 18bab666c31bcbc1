//! Compile-pass and compile-fail cases for the cache macros; run with `cargo test -p ui-tests`.
