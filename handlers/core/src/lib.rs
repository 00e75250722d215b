//! The pure core of hubspoke: typed Azure resource ids, the observed-state model read from ARM
//! JSON (and from the Azure CLI's and Resource Graph's shapes of it), the planner's
//! configuration, and the planner that decides what must change.
//!
//! Nothing here does I/O, reads the clock or the environment: `plan(config, observed)` is a
//! deterministic function, tested exhaustively, and everything that talks to Azure lives in
//! other crates. This crate's dependencies are the mechanical proof.
pub mod config;
pub mod id;
pub mod model;
pub mod plan;
pub mod snapshot;
pub mod synth;
pub mod verify;
