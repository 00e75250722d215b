//! Support for hubspoke's end-to-end tests that is more than a test file: the chaos campaign,
//! which the short test in `tests/chaos.rs` and the long run of `examples/chaos.rs` share. The
//! local stack they all run on is `hubspoke-stack` (`handlers/stack`).
pub mod chaos;
