//! Where the outcome of a failed invocation goes.
//!
//! The host drops every output of an invocation that did not answer 2xx, yet every invocation
//! must leave exactly one outcome (DESIGN.md section 4) — a failure most of all. So the handler
//! writes those outcomes itself: always as one `ERROR` log line holding the outcome (the host
//! records stderr), and to the outcome queue when a queue is configured.
use serde_json::Value;

/// The destination of failed invocations' outcomes.
#[derive(Debug, Clone, Default)]
pub struct OutcomeSink {}

impl OutcomeSink {
    /// A sink that only logs.
    pub fn log_only() -> Self {
        Self {}
    }

    /// Records `outcome` (already fitted to a queue message).
    pub async fn write(&self, outcome: &Value) {
        tracing::error!(outcome = %outcome, "outcome of a failed invocation");
    }
}
