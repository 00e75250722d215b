//! A queue service and its queues, over `azure_storage_queue` 1.x: the operations the host, the
//! handler and `hubspoke results` need, and nothing else (no queue listing, no metadata beyond the
//! approximate message count, no access policies).
//!
//! The SDK's pipeline retries transient failures (5xx, 408, 429, connection errors) itself; what
//! reaches the caller is final for this call. HTTP goes through a reqwest client that trusts
//! `HUBSPOKE_CA_CERT` besides the usual roots, and drops idle connections after 4 s because
//! Azurite closes them after 5 s (a reused, already-closed connection would fail a request).
//!
//! Errors never quote the SAS: every text from the SDK or the transport is redacted first.
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RequestContent, Transport, Url, XmlFormat};
/// The time type of message timestamps (the SDK's, from the `time` crate).
pub use azure_core::time::OffsetDateTime;
use azure_storage_queue::models::{
    QueueClientGetPropertiesResultHeaders, QueueClientPeekMessagesOptions,
    QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions, QueueMessage,
};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use serde_json::Value;

use crate::error::QueueError;
use crate::message::{encoded_messages, MessageEncoding, OutputError, MAX_MESSAGE_TEXT_BYTES};
use crate::settings::{read_ca_cert, Secret, StorageAuth, StorageSettings};

/// A queue service (one storage account). Cheap to clone.
#[derive(Clone)]
pub struct QueueService {
    credential: Option<Arc<dyn TokenCredential>>,
    options: QueueClientOptions,
    service_url: String,
    sas: Option<Secret>,
    redact: Redactor,
}

impl std::fmt::Debug for QueueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueService")
            .field("service_url", &self.service_url)
            .finish_non_exhaustive()
    }
}

/// One queue of a [`QueueService`]. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    client: Arc<QueueClient>,
    name: String,
    redact: Redactor,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A message the service accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The service's message id.
    pub id: String,
}

/// A message received (dequeued): invisible to others until its visibility timeout ends.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The service's message id.
    pub id: String,
    /// The receipt needed to delete or update it; changes with every update.
    pub pop_receipt: String,
    /// How many times it was dequeued, this time included.
    pub dequeue_count: u32,
    /// The message text as stored (base64 for the host's messages).
    pub text: String,
    /// When it was put in the queue.
    pub insertion_time: Option<OffsetDateTime>,
    /// When it expires.
    pub expiration_time: Option<OffsetDateTime>,
    /// When it becomes visible again.
    pub next_visible_time: Option<OffsetDateTime>,
}

// The pop receipt is a capability on the message: not printed.
impl std::fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("id", &self.id)
            .field("dequeue_count", &self.dequeue_count)
            .field("text", &self.text)
            .finish_non_exhaustive()
    }
}

/// A message peeked at (not dequeued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    /// The service's message id.
    pub id: String,
    /// How many times it was dequeued so far.
    pub dequeue_count: u32,
    /// The message text as stored.
    pub text: String,
    /// When it was put in the queue.
    pub insertion_time: Option<OffsetDateTime>,
    /// When it expires.
    pub expiration_time: Option<OffsetDateTime>,
}

/// The new state of a message after its visibility was updated.
#[derive(Clone, PartialEq, Eq)]
pub struct UpdatedMessage {
    /// The new pop receipt (the old one no longer works).
    pub pop_receipt: String,
    /// When it becomes visible, as the service says.
    pub next_visible_time: Option<OffsetDateTime>,
}

impl std::fmt::Debug for UpdatedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdatedMessage")
            .field("next_visible_time", &self.next_visible_time)
            .finish_non_exhaustive()
    }
}

impl QueueService {
    /// A client of the service the settings name, with their credential and certificates.
    pub fn connect(settings: &StorageSettings) -> Result<Self, QueueError> {
        let redact = Redactor::new(&settings.auth);
        let transport =
            http_transport(settings, Duration::from_secs(60)).map_err(QueueError::Config)?;
        let client_options = ClientOptions {
            transport: Some(transport),
            ..Default::default()
        };
        let options = QueueClientOptions {
            client_options,
            ..Default::default()
        };
        let credential = crate::credential::credential(&settings.auth)?;
        let sas = match &settings.auth {
            StorageAuth::Sas(query) => Some(query.clone()),
            _ => None,
        };
        Ok(QueueService {
            credential,
            options,
            service_url: settings.service_url.clone(),
            sas,
            redact,
        })
    }

    /// The service URL (no secret).
    pub fn url(&self) -> &str {
        &self.service_url
    }

    /// The queue `name` (checked against the service's naming rules).
    ///
    /// The queue URL is built here rather than by the SDK's `QueueServiceClient::queue_client`,
    /// which appends the name to the service URL's path as it is and so doubles the slash of a
    /// URL that ends with one.
    pub fn queue(&self, name: &str) -> Result<Queue, QueueError> {
        check_queue_name(name)?;
        let mut text = format!("{}/{name}", self.service_url);
        if let Some(sas) = &self.sas {
            text.push('?');
            text.push_str(sas.expose());
        }
        let url = Url::parse(&text)
            .map_err(|e| QueueError::Config(self.redact.text(&format!("the queue URL: {e}"))))?;
        let client = QueueClient::new(url, self.credential.clone(), Some(self.options.clone()))
            .map_err(|e| QueueError::Config(self.redact.text(&e.to_string())))?;
        Ok(Queue {
            client: Arc::new(client),
            name: name.to_string(),
            redact: self.redact.clone(),
        })
    }
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the queue unless it exists; `true` when it was created.
    pub async fn create_if_missing(&self) -> Result<bool, QueueError> {
        match self.client.create(None).await {
            // 201 created; 204 it existed with the same (no) metadata.
            Ok(response) => Ok(u16::from(response.status()) == 201),
            Err(e) if status_of(&e) == Some(409) => Ok(false),
            Err(e) => Err(self.request_error("create", e)),
        }
    }

    /// Whether the queue exists.
    pub async fn exists(&self) -> Result<bool, QueueError> {
        self.client
            .exists()
            .await
            .map_err(|e| self.request_error("exists", e))
    }

    /// The queue's approximate message count (`x-ms-approximate-messages-count`): messages that
    /// are invisible (received and not yet deleted, or sent with a delay) included. Never lower
    /// than the true count, sometimes higher.
    pub async fn approximate_count(&self) -> Result<u64, QueueError> {
        let response = self
            .client
            .get_properties(None)
            .await
            .map_err(|e| self.request_error("properties", e))?;
        let count = response
            .approximate_messages_count()
            .map_err(|e| self.request_error("properties", e))?
            .unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Sends one message text as it is (already encoded), refusing texts over the 64 KiB limit
    /// before anything is sent. `visibility` delays its first appearance.
    pub async fn send_text(
        &self,
        text: &str,
        visibility: Option<Duration>,
    ) -> Result<SentMessage, QueueError> {
        if text.len() > MAX_MESSAGE_TEXT_BYTES {
            return Err(QueueError::TooLarge {
                queue: self.name.clone(),
                size: text.len(),
                limit: MAX_MESSAGE_TEXT_BYTES,
            });
        }
        let message = QueueMessage {
            message_text: Some(text.to_string()),
        };
        let content: RequestContent<QueueMessage, XmlFormat> = message
            .try_into()
            .map_err(|e: azure_core::Error| self.request_error("send", e))?;
        let options = QueueClientSendMessageOptions {
            visibility_timeout: visibility.map(seconds),
            ..Default::default()
        };
        let response = self
            .client
            .send_message(content, Some(options))
            .await
            .map_err(|e| self.request_error("send", e))?;
        let sent = response
            .into_model()
            .and_then(|list| list.into_message())
            .map_err(|e| self.request_error("send", e))?;
        Ok(SentMessage {
            id: sent.message_id.unwrap_or_default(),
        })
    }

    /// Writes an output value exactly as the Functions host's queue output binding does (one
    /// message per array element, Json.NET-indented JSON, `encoding`), creating the queue if
    /// missing as the host does. Every message is encoded and size-checked before the first
    /// is sent. Returns the messages sent, in order.
    pub async fn send_output(
        &self,
        value: &Value,
        encoding: MessageEncoding,
    ) -> Result<Vec<SentMessage>, QueueError> {
        let texts = encoded_messages(value, encoding).map_err(|e| match e {
            OutputError::TooLarge { size, limit, .. } => QueueError::TooLarge {
                queue: self.name.clone(),
                size,
                limit,
            },
            other => QueueError::Request {
                operation: "send",
                queue: self.name.clone(),
                status: None,
                code: None,
                message: other.to_string(),
            },
        })?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.create_if_missing().await?;
        let mut sent = Vec::with_capacity(texts.len());
        for text in &texts {
            sent.push(self.send_text(text, None).await?);
        }
        Ok(sent)
    }

    /// Receives (dequeues) up to `max` messages (1–32), invisible to others for `visibility`.
    pub async fn receive(
        &self,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(max.clamp(1, 32) as i32),
            visibility_timeout: Some(seconds(visibility).max(1)),
            ..Default::default()
        };
        let response = self
            .client
            .receive_messages(Some(options))
            .await
            .map_err(|e| self.request_error("receive", e))?;
        let messages = response
            .into_model()
            .map_err(|e| self.request_error("receive", e))?;
        Ok(messages
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|m| ReceivedMessage {
                id: m.message_id.unwrap_or_default(),
                pop_receipt: m.pop_receipt.unwrap_or_default(),
                dequeue_count: m.dequeue_count.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                text: m.message_text.unwrap_or_default(),
                insertion_time: m.insertion_time,
                expiration_time: m.expiration_time,
                next_visible_time: m.time_next_visible,
            })
            .collect())
    }

    /// Peeks at up to `max` messages (1–32) without dequeuing them.
    pub async fn peek(&self, max: u32) -> Result<Vec<PeekedMessage>, QueueError> {
        let options = QueueClientPeekMessagesOptions {
            number_of_messages: Some(max.clamp(1, 32) as i32),
            ..Default::default()
        };
        let response = self
            .client
            .peek_messages(Some(options))
            .await
            .map_err(|e| self.request_error("peek", e))?;
        let messages = response
            .into_model()
            .map_err(|e| self.request_error("peek", e))?;
        Ok(messages
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|m| PeekedMessage {
                id: m.message_id.unwrap_or_default(),
                dequeue_count: m.dequeue_count.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                text: m.message_text.unwrap_or_default(),
                insertion_time: m.insertion_time,
                expiration_time: m.expiration_time,
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, id: &str, pop_receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message(id, pop_receipt, None)
            .await
            .map(|_| ())
            .map_err(|e| self.request_error("delete", e))
    }

    /// Makes a received message visible again after `visibility` (0: at once).
    pub async fn update_visibility(
        &self,
        id: &str,
        pop_receipt: &str,
        visibility: Duration,
    ) -> Result<UpdatedMessage, QueueError> {
        let response = self
            .client
            .update_message(id, pop_receipt, seconds(visibility), None)
            .await
            .map_err(|e| self.request_error("update", e))?;
        let headers = response.headers();
        let header = |name: &'static str| {
            headers
                .get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
                .map(str::to_string)
        };
        Ok(UpdatedMessage {
            pop_receipt: header("x-ms-popreceipt").unwrap_or_default(),
            next_visible_time: header("x-ms-time-next-visible")
                .and_then(|text| azure_core::time::parse_rfc7231(&text).ok()),
        })
    }

    fn request_error(&self, operation: &'static str, error: azure_core::Error) -> QueueError {
        let (status, code) = match error.kind() {
            azure_core::error::ErrorKind::HttpResponse {
                status, error_code, ..
            } => (Some(u16::from(*status)), error_code.clone()),
            _ => (None, None),
        };
        QueueError::Request {
            operation,
            queue: self.name.clone(),
            status,
            code,
            message: self.redact.text(&error_chain(&error)),
        }
    }
}

/// The HTTP transport of a storage client: trusts `HUBSPOKE_CA_CERT` besides the usual roots,
/// gives up on a request after `timeout`, and drops idle connections after 4 s (Azurite closes
/// them after 5 s; a reused, already-closed connection would fail a request).
pub(crate) fn http_transport(
    settings: &StorageSettings,
    timeout: Duration,
) -> Result<Transport, String> {
    let mut builder = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout);
    if let Some(path) = &settings.ca_cert {
        let certificates = read_ca_cert(path).map_err(|e| format!("HUBSPOKE_CA_CERT: {e}"))?;
        builder = builder.tls_certs_merge(certificates);
    }
    let http = builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    Ok(Transport::new(Arc::new(http)))
}

fn status_of(error: &azure_core::Error) -> Option<u16> {
    error.http_status().map(u16::from)
}

/// The error and its sources, one line (the transport's reason is in the sources).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = inner.source();
    }
    text
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// The service's rules: 3–63 characters, lower-case letters, digits and hyphens, starting and
/// ending with a letter or digit, no two hyphens in a row.
fn check_queue_name(name: &str) -> Result<(), QueueError> {
    let fail = |reason: &str| {
        Err(QueueError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if !(3..=63).contains(&name.len()) {
        return fail("it must be 3 to 63 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return fail("only lower-case letters, digits and hyphens are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return fail("hyphens must be single and between letters or digits");
    }
    Ok(())
}

/// Removes a connection's secrets from texts (SDK and transport errors quote URLs).
#[derive(Clone)]
pub(crate) struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    pub(crate) fn new(auth: &StorageAuth) -> Self {
        let secrets = match auth {
            StorageAuth::Sas(query) => vec![query.clone()],
            _ => Vec::new(),
        };
        Redactor { secrets }
    }

    /// Also removes `secret`.
    pub(crate) fn add(&mut self, secret: Secret) {
        self.secrets.push(secret);
    }

    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if !secret.expose().is_empty() {
                out = out.replace(secret.expose(), "<redacted>");
            }
        }
        // Whatever else looks like a signature (a re-ordered or re-encoded query).
        redact_signatures(&out)
    }
}

fn redact_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find("sig=") {
        let boundary = position == 0 || matches!(rest.as_bytes()[position - 1], b'?' | b'&');
        out.push_str(&rest[..position + 4]);
        rest = &rest[position + 4..];
        if boundary {
            let end = rest
                .find(|c: char| c == '&' || c.is_whitespace() || c == ')' || c == '"')
                .unwrap_or(rest.len());
            out.push_str("<redacted>");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_the_service_rules() {
        for good in ["hubspoke-work", "hubspoke-work-poison", "abc", "q1"] {
            if good.len() >= 3 {
                assert!(check_queue_name(good).is_ok(), "{good}");
            }
        }
        for bad in [
            "ab",
            "Hubspoke",
            "a--b",
            "-ab",
            "ab-",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(check_queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_never_survive_redaction() {
        let redactor = Redactor::new(&StorageAuth::Sas(Secret::new("sv=1&sig=ABC%2B")));
        let text = redactor.text(
            "error sending request for url (https://a/q/messages?sv=1&sig=ABC%2B&x=1) and ?sig=OTHER",
        );
        assert!(!text.contains("ABC"), "{text}");
        assert!(!text.contains("OTHER"), "{text}");
        assert_eq!(redact_signatures("design=1"), "design=1");
    }
}
