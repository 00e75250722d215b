//! hubspoke's connection to Azure Resource Manager.
//!
//! The HTTP layer (`client`, `credential`, `error`, `pacer`, `retry`, `settings`) sends requests at the
//! pace each subscription's budget allows, follows long-running operations and pages, retries what
//! is transient and counts every request. On top of it, `observe` reads an estate into the core's
//! observed-state model with a few wide list calls (in the subscriptions `tenancy` lists and
//! `resource_graph` points at, when the scope needs no list), and `apply` executes a plan exactly as
//! written. `reconcile` ties them together for one pass. Nothing here decides what should change:
//! that is the core's planner. `bound` computes the time Azure itself needs for a plan, for the
//! reconcile benchmark.
pub mod apply;
pub mod bound;
pub mod client;
pub mod credential;
pub mod effective;
pub mod error;
pub mod observe;
pub mod pacer;
pub mod reconcile;
pub mod resource_graph;
mod retry;
pub mod settings;
pub mod subnet_links;
pub mod tenancy;
