//! The queue client's error, grouped by how a caller reacts: a message too large (the producer
//! summarises and sends again), a bad queue name or client configuration (a bug or a bad
//! setting: stop), and a failed request (status and storage error code kept as the service sent
//! them; transient ones were already retried by the SDK's pipeline).
//!
//! Messages never carry a secret: every text that comes from the SDK or the transport passes
//! through the connection's redaction first (a transport error quotes the URL, SAS included).

/// A failed queue operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The message text is over the service's 64 KiB limit (after encoding). Nothing was sent.
    #[error(
        "a message for queue {queue} is {size} bytes once encoded, over the queue service's limit \
         of {limit} bytes; nothing was sent"
    )]
    TooLarge {
        /// The queue it was meant for.
        queue: String,
        /// The size of the encoded message text in bytes.
        size: usize,
        /// [`crate::message::MAX_MESSAGE_TEXT_BYTES`].
        limit: usize,
    },
    /// A queue name the service would refuse (3–63 characters: lower-case letters, digits and
    /// single hyphens, starting and ending with a letter or digit).
    #[error("{name:?} is not a valid queue name: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client could not be built (URL, certificates, credential).
    #[error("cannot set up the queue client: {0}")]
    Config(String),
    /// The service answered with an error, or could not be reached, or no token could be had.
    #[error("{operation} on queue {queue} failed: {message}")]
    Request {
        /// What was attempted (`create`, `send`, `receive`, `delete`, `update`, `peek`, ...).
        operation: &'static str,
        /// The queue concerned.
        queue: String,
        /// HTTP status of the answer; `None` when there was none (transport, credential).
        status: Option<u16>,
        /// The storage error code (`QueueNotFound`, `MessageNotFound`, `PopReceiptMismatch`, ...).
        code: Option<String>,
        /// What the SDK said, secrets removed.
        message: String,
    },
}

impl QueueError {
    /// The HTTP status of a failed request, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            QueueError::Request { status, .. } => *status,
            _ => None,
        }
    }

    /// The storage error code of a failed request, if the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            QueueError::Request { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A message or pop receipt the service no longer knows (deleted, or dequeued again by
    /// someone else after its visibility timeout): 404 `MessageNotFound` or 400
    /// `PopReceiptMismatch`.
    pub fn is_message_gone(&self) -> bool {
        matches!(self.status(), Some(404) | Some(400))
            && matches!(
                self.code(),
                Some("MessageNotFound") | Some("PopReceiptMismatch")
            )
    }
}
