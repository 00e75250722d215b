//! Where the outcome of a failed invocation goes.
//!
//! The host drops every output of an invocation that did not answer 2xx, yet every invocation
//! must leave exactly one outcome (docs/design.md §4) — a failure most of all. So the handler
//! writes those outcomes itself, to the same queue (`hubspoke-outcomes`) through the same
//! connection (`AzureWebJobsStorage`) and in the same encoding as the host's output binding
//! (indented JSON, base64), so that readers cannot tell the two apart. Without a queue (the
//! handler run on its own), or when the write fails, the outcome is logged whole as one `ERROR`
//! line, which the host records: never silent.
use hubspoke_queue::{MessageEncoding, Queue, QueueService, StorageSettings};
use serde_json::Value;

/// The queue every function's `outcome` binding names.
pub const OUTCOME_QUEUE: &str = "hubspoke-outcomes";

/// The destination of failed invocations' outcomes.
#[derive(Debug, Clone, Default)]
pub struct OutcomeSink {
    queue: Option<Queue>,
}

impl OutcomeSink {
    /// A sink that only logs.
    pub fn log_only() -> Self {
        Self { queue: None }
    }

    /// A sink that writes to `hubspoke-outcomes` of the storage `settings` name.
    pub fn to_queue(settings: &StorageSettings) -> Result<Self, hubspoke_queue::QueueError> {
        let queue = QueueService::connect(settings)?.queue(OUTCOME_QUEUE)?;
        Ok(Self { queue: Some(queue) })
    }

    /// Records `outcome` (already fitted to a queue message).
    pub async fn write(&self, outcome: &Value) {
        if let Some(queue) = &self.queue {
            match queue.send_output(outcome, MessageEncoding::Base64).await {
                Ok(_) => {
                    tracing::info!(
                        queue = OUTCOME_QUEUE,
                        "outcome of the failed invocation written"
                    );
                    return;
                }
                Err(error) => {
                    tracing::error!(%error, queue = OUTCOME_QUEUE, "cannot write the outcome of a failed invocation");
                }
            }
        }
        tracing::error!(outcome = %outcome, "outcome of a failed invocation");
    }
}
