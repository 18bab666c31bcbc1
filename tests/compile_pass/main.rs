//! The uses of the macros that must keep compiling (and run: each module's
//! `compiles_and_runs`): hygiene, generics, methods, executors, transactions, `Send`,
//! result aliases, bodies. Ordinary tests, built with the workspace; the misuses and their
//! exact errors are `ui-tests`' trybuild cases.

mod basics;
mod bodies;
mod executors;
mod generics;
mod hygiene;
mod methods;
mod result_aliases;
mod send;
mod transactions;
