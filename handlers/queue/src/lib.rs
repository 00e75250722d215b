//! The one place hubspoke talks to Azure Storage, through the official `azure_storage_queue` and
//! `azure_storage_blob` crates: the local Functions host (queue triggers and outputs, the timers'
//! blob leases), the custom handler (which writes the outcome of a failed invocation itself,
//! because the host discards a failed invocation's outputs, and holds a blob lease per hub while it
//! reconciles it) and `hubspoke results`.
//!
//! - [`settings`]: the identity-based connection (`AzureWebJobsStorage__queueServiceUri`,
//!   `__credential`, `__clientId`) or a SAS URL, parsed once; extra trusted certificates from
//!   `HUBSPOKE_CA_CERT`.
//! - [`client`]: a [`client::QueueService`] and its [`client::Queue`]s: create if missing, send,
//!   receive with a visibility timeout, delete, update visibility, peek.
//! - [`blob`]: the blob service of the same account: a container, small blobs with metadata,
//!   and blob leases (acquire, renew, release, break), every call bounded in time.
//! - [`message`]: messages exactly as the Functions host's queue output binding writes them
//!   (Json.NET-indented JSON, base64), the 64 KiB limit, and decoding a message text back.
//! - [`azurite`]: starts Azurite (the official storage emulator: its blob and queue services)
//!   from the repository's `tests/node_modules`, over HTTPS with `--oauth basic`, for tests and
//!   the demo.
//!
//! It does not know what the messages mean (work items, outcomes): their producers do. Secrets
//! (tokens, SAS signatures, the identity header) never appear in `Debug`, errors or logs.
pub mod azurite;
pub mod blob;
pub mod client;
pub mod error;
pub mod message;
pub mod settings;

mod credential;

pub use blob::{Blob, BlobError, BlobProperties, BlobService, Container, Lease, LeaseId};
pub use client::{PeekedMessage, Queue, QueueService, ReceivedMessage, SentMessage};
pub use error::QueueError;
pub use message::MessageEncoding;
pub use settings::{BlobEndpoint, SettingError, StorageSettings};
