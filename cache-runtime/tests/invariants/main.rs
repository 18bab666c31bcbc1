//! One test module per invariant of DESIGN.md, plus settings and TTL behaviour.
//! Each test names the mechanism whose removal makes it fail.

mod bounds;
mod concurrency;
mod errors;
mod faults;
#[path = "../common/faulty.rs"]
mod faulty;
mod freshness;
mod settings;
mod single_flight;
mod support;
mod ttl;
