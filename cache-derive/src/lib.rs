//! Procedural macros for `cache-runtime`. Depend on `cache-runtime`, which re-exports them;
//! this crate is an implementation detail and is pinned by it with an exact version.
