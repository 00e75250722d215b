//! The unit tests of the stages that read the results of the stages before theirs, one file per
//! stage, and what they share (`support.rs`: a hub with spokes, and runs of the stages on it).
//!
//! They live here rather than in the stages' own files because running the earlier stages means
//! importing them, and each stage's file is imported by the stages after it: a test inside a
//! stage's file would make its file import what imports it back. Each test still checks one
//! stage's result, through the crate-visible types the stages hand on.
mod carry;
mod coverage;
mod pairs;
mod peerings;
mod route_changes;
mod routes;
mod summaries;
mod support;
mod transit;
