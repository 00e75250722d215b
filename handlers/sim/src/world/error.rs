//! The error answer of the Network RP and ARM: a status, ARM's CloudError body
//! (`error.code`, `error.message`, `error.details`) and, for throttling, `Retry-After`.
use serde_json::{json, Value};

/// An ARM error: status, `error.code`, `error.message`, optional `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `Retry-After` seconds, for 429s.
    pub retry_after: Option<u64>,
    /// `error.details`.
    pub details: Vec<Value>,
}

impl ArmError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
            details: Vec::new(),
        }
    }

    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The CloudError body: `{"error":{"code","message","details":[]}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}
