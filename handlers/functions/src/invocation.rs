//! What a function takes and gives back: an [`Invocation`] of its typed input, and a [`Reply`]
//! or a [`Failure`]. The functions and the adapter that runs them both speak these types; neither
//! owns them.
use serde_json::Value;

use crate::outcome::Outcome;
use crate::work::WorkItem;

/// One invocation as a function sees it.
pub struct Invocation<T> {
    /// The host's invocation id.
    pub id: String,
    pub input: T,
    /// The outcome so far (function, invocation, trigger kind, start time); the function fills
    /// in the rest.
    pub outcome: Outcome,
}

/// What a function answers.
pub struct Reply {
    pub outcome: Outcome,
    /// Work items for the `work` output.
    pub work: Vec<WorkItem>,
    /// The HTTP response, for the `res` output.
    pub http: Option<HttpReply>,
}

impl Reply {
    /// A reply with only an outcome.
    pub fn outcome(outcome: Outcome) -> Self {
        Self {
            outcome,
            work: Vec::new(),
            http: None,
        }
    }
}

/// An HTTP answer: a status and a JSON body.
pub struct HttpReply {
    pub status: u16,
    pub body: Value,
}

/// An invocation that failed in a way a retry may fix.
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
}
