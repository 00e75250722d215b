//! The blob service of the same storage account, over the official `azure_storage_blob` 1.x: the
//! few operations hubspoke needs to coordinate instances, as the Functions runtime itself does for
//! its singletons and timers — a container, small block blobs with metadata, and blob leases.
//!
//! What the service guarantees, and what the callers rely on (Learn, "Lease Blob",
//! learn.microsoft.com/rest/api/storageservices/lease-blob; "Put Blob", "Set Blob Metadata",
//! "Delete Blob"; "Specifying conditional headers for Blob service operations"):
//! - A lease lasts 15 to 60 seconds (or is infinite); acquiring a blob that another client has
//!   leased answers 409 `LeaseAlreadyPresent`; renewing or releasing with another lease id
//!   answers 409 (`LeaseIdMismatchWithLeaseOperation`, `LeaseNotPresentWithLeaseOperation`,
//!   `LeaseIsBrokenAndCannotBeRenewed`, `LeaseLost`...). Anyone may break a lease.
//! - Writing or deleting a leased blob without its lease id fails (412 `LeaseIdMissing`); that
//!   includes Set Blob Metadata. So a mark left by a client that does not hold the lease must be a
//!   blob of its own.
//! - `If-None-Match: *` makes Put Blob fail when the blob exists; `If-Match: <etag>` makes Delete
//!   Blob fail when the blob changed since it was read.
//!
//! Every call is bounded: the SDK's pipeline retries a transient failure at most twice within
//! a few seconds, and the whole call gives up after [`CALL_TIMEOUT`], so that a caller holding
//! a 60-second lease always hears back in time. Errors never quote a SAS.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{
    ClientOptions, Etag, ExponentialRetryOptions, RequestContent, RetryOptions, Url,
};
use azure_storage_blob::models::{
    BlobClientAcquireLeaseOptions, BlobClientBreakLeaseOptions, BlobClientDeleteOptions,
    BlobClientGetPropertiesResultHeaders, BlobClientSetMetadataOptions,
    BlockBlobClientUploadOptions, LeaseState,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};

use crate::client::{http_transport, Redactor};
use crate::settings::{Secret, StorageSettings};

/// The longest one blob call may take, retries included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed blob operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The client could not be built (no blob service in the settings, URL, certificates).
    #[error("cannot set up the blob client: {0}")]
    Config(String),
    /// The service answered with an error, could not be reached, or took too long.
    #[error("{operation} on blob {blob} failed: {message}")]
    Request {
        /// What was attempted (`acquire lease`, `renew lease`, `put`, `delete`, ...).
        operation: &'static str,
        /// The container and blob concerned.
        blob: String,
        /// HTTP status of the answer; `None` when there was none.
        status: Option<u16>,
        /// The storage error code (`LeaseAlreadyPresent`, `BlobNotFound`, ...).
        code: Option<String>,
        /// What the SDK said, secrets removed.
        message: String,
    },
}

impl BlobError {
    /// The HTTP status of a failed request, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            BlobError::Request { status, .. } => *status,
            BlobError::Config(_) => None,
        }
    }

    /// The storage error code, if the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            BlobError::Request { code, .. } => code.as_deref(),
            BlobError::Config(_) => None,
        }
    }

    /// The blob or its container does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// A lease id: the capability to write a leased blob. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseId(String);

impl LeaseId {
    /// The id as the service knows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseId(<redacted>)")
    }
}

/// The lease state of a blob, as Get Blob Properties says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// No lease: anyone may acquire one.
    Available,
    /// Someone holds a lease.
    Leased,
    /// A lease ran out unrenewed: anyone may acquire one.
    Expired,
    /// A lease is being broken: nobody may acquire one until its break period ends.
    Breaking,
    /// A lease was broken: anyone may acquire one.
    Broken,
}

/// What Get Blob Properties answers, as far as hubspoke reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProperties {
    /// The blob's ETag (for a conditional delete).
    pub etag: String,
    /// Its metadata (names lower-cased by the service's HTTP headers).
    pub metadata: BTreeMap<String, String>,
    /// Its lease state.
    pub lease: Lease,
}

/// A blob service (one storage account). Cheap to clone.
#[derive(Clone)]
pub struct BlobService {
    credential: Option<Arc<dyn TokenCredential>>,
    options: BlobContainerClientOptions,
    service_url: String,
    sas: Option<Secret>,
    redact: Redactor,
}

impl std::fmt::Debug for BlobService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobService")
            .field("service_url", &self.service_url)
            .finish_non_exhaustive()
    }
}

/// A container of a [`BlobService`]. Cheap to clone.
#[derive(Clone)]
pub struct Container {
    client: Arc<BlobContainerClient>,
    name: String,
    redact: Redactor,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One blob of a [`Container`]. Cheap to clone.
#[derive(Clone)]
pub struct Blob {
    client: Arc<BlobClient>,
    /// `container/blob`, for messages.
    path: String,
    redact: Redactor,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl BlobService {
    /// A client of the blob service the settings name, with their credential and certificates;
    /// an error when they name none.
    pub fn connect(settings: &StorageSettings) -> Result<Self, BlobError> {
        let Some(endpoint) = &settings.blob else {
            return Err(BlobError::Config(format!(
                "no blob service: set {}__blobServiceUri (or {}__accountName)",
                settings.prefix, settings.prefix
            )));
        };
        let mut redact = Redactor::new(&settings.auth);
        if let Some(sas) = &endpoint.sas {
            redact.add(sas.clone());
        }
        let transport =
            http_transport(settings, Duration::from_secs(5)).map_err(BlobError::Config)?;
        let client_options = ClientOptions {
            transport: Some(transport),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 2,
                max_total_elapsed: azure_core::time::Duration::seconds(8),
                max_delay: azure_core::time::Duration::seconds(2),
            }),
            ..Default::default()
        };
        let options = BlobContainerClientOptions {
            client_options,
            ..Default::default()
        };
        let credential = match &endpoint.sas {
            Some(_) => None,
            None => crate::credential::credential(&settings.auth)
                .map_err(|e| BlobError::Config(e.to_string()))?,
        };
        Ok(BlobService {
            credential,
            options,
            service_url: endpoint.service_url.clone(),
            sas: endpoint.sas.clone(),
            redact,
        })
    }

    /// The service URL (no secret).
    pub fn url(&self) -> &str {
        &self.service_url
    }

    /// The container `name` (3–63 lower-case letters, digits and single hyphens).
    pub fn container(&self, name: &str) -> Result<Container, BlobError> {
        check_container_name(name)?;
        let mut text = format!("{}/{name}", self.service_url);
        if let Some(sas) = &self.sas {
            text.push('?');
            text.push_str(sas.expose());
        }
        let url = Url::parse(&text)
            .map_err(|e| BlobError::Config(self.redact.text(&format!("the container URL: {e}"))))?;
        let client =
            BlobContainerClient::new(url, self.credential.clone(), Some(self.options.clone()))
                .map_err(|e| BlobError::Config(self.redact.text(&e.to_string())))?;
        Ok(Container {
            client: Arc::new(client),
            name: name.to_string(),
            redact: self.redact.clone(),
        })
    }
}

impl Container {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the container unless it exists; `true` when it was created.
    pub async fn create_if_missing(&self) -> Result<bool, BlobError> {
        let answer = bounded(self.client.create(None)).await;
        match answer {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if e.http_status().map(u16::from) == Some(409) => Ok(false),
            Ok(Err(e)) => Err(request_error(
                &self.redact,
                "create container",
                &self.name,
                &e,
            )),
            Err(()) => Err(timeout_error("create container", &self.name)),
        }
    }

    /// The blob `name` of this container (a path: `/` separates virtual folders).
    pub fn blob(&self, name: &str) -> Blob {
        Blob {
            client: Arc::new(self.client.blob_client(name)),
            path: format!("{}/{name}", self.name),
            redact: self.redact.clone(),
        }
    }
}

impl Blob {
    /// `container/blob`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Creates the blob, empty, with `metadata`, unless it exists (`If-None-Match: *`): `true`
    /// when this call created it. A leased blob exists, so it is left alone too.
    pub async fn create_if_missing(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<bool, BlobError> {
        let options = BlockBlobClientUploadOptions {
            if_none_match: Some(Etag::from("*")),
            metadata: Some(metadata.clone().into_iter().collect()),
            ..Default::default()
        };
        let content: RequestContent<azure_core::Bytes, _> = RequestContent::from(Vec::new());
        match bounded(self.client.upload(content, Some(options))).await {
            Ok(Ok(_)) => Ok(true),
            // 409 BlobAlreadyExists; 412 ConditionNotMet or LeaseIdMissing (it exists, leased).
            Ok(Err(e)) if matches!(e.http_status().map(u16::from), Some(409 | 412)) => Ok(false),
            Ok(Err(e)) => Err(self.error("put", &e)),
            Err(()) => Err(timeout_error("put", &self.path)),
        }
    }

    /// The blob's ETag, metadata and lease state; `None` when it does not exist.
    pub async fn properties(&self) -> Result<Option<BlobProperties>, BlobError> {
        let response = match bounded(self.client.get_properties(None)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.http_status().map(u16::from) == Some(404) => return Ok(None),
            Ok(Err(e)) => return Err(self.error("get properties", &e)),
            Err(()) => return Err(timeout_error("get properties", &self.path)),
        };
        let header = |e: azure_core::Error| self.error("get properties", &e);
        let etag = response
            .etag()
            .map_err(header)?
            .map(|etag| etag.to_string())
            .unwrap_or_default();
        let metadata = response
            .metadata()
            .map_err(header)?
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let lease = match response.lease_state().map_err(header)? {
            Some(LeaseState::Leased) => Lease::Leased,
            Some(LeaseState::Expired) => Lease::Expired,
            Some(LeaseState::Breaking) => Lease::Breaking,
            Some(LeaseState::Broken) => Lease::Broken,
            _ => Lease::Available,
        };
        Ok(Some(BlobProperties {
            etag,
            metadata,
            lease,
        }))
    }

    /// Acquires a lease of `duration` (15 to 60 seconds); `None` when someone else holds one
    /// (409). The blob must exist (a 404 is an error).
    pub async fn acquire_lease(&self, duration: Duration) -> Result<Option<LeaseId>, BlobError> {
        self.acquire(duration, None).await
    }

    /// Acquires a lease of `duration` with the lease id `proposed` (a GUID). The holder of that
    /// id gets it again at once, with a fresh duration (the service allows an acquire with the
    /// active lease's own id); anyone else holding another id makes it `None`.
    pub async fn acquire_lease_as(
        &self,
        duration: Duration,
        proposed: &str,
    ) -> Result<Option<LeaseId>, BlobError> {
        self.acquire(duration, Some(proposed)).await
    }

    async fn acquire(
        &self,
        duration: Duration,
        proposed: Option<&str>,
    ) -> Result<Option<LeaseId>, BlobError> {
        let seconds = i32::try_from(duration.as_secs())
            .unwrap_or(60)
            .clamp(15, 60);
        let options = BlobClientAcquireLeaseOptions {
            proposed_lease_id: proposed.map(str::to_string),
            ..Default::default()
        };
        match bounded(self.client.acquire_lease(seconds, Some(options))).await {
            Ok(Ok(response)) => {
                use azure_storage_blob::models::BlobClientAcquireLeaseResultHeaders;
                let id = response
                    .lease_id()
                    .map_err(|e| self.error("acquire lease", &e))?
                    .ok_or_else(|| BlobError::Request {
                        operation: "acquire lease",
                        blob: self.path.clone(),
                        status: Some(201),
                        code: None,
                        message: "the answer carries no lease id".into(),
                    })?;
                Ok(Some(LeaseId(id)))
            }
            Ok(Err(e)) if e.http_status().map(u16::from) == Some(409) => Ok(None),
            Ok(Err(e)) => Err(self.error("acquire lease", &e)),
            Err(()) => Err(timeout_error("acquire lease", &self.path)),
        }
    }

    /// Renews `lease` for its full duration again.
    pub async fn renew_lease(&self, lease: &LeaseId) -> Result<(), BlobError> {
        match bounded(self.client.renew_lease(lease.0.clone(), None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.error("renew lease", &e)),
            Err(()) => Err(timeout_error("renew lease", &self.path)),
        }
    }

    /// Releases `lease`, so that another client may acquire one at once. A lease already lost
    /// (409) or a blob gone (404) is not an error: there is nothing left to release.
    pub async fn release_lease(&self, lease: &LeaseId) -> Result<(), BlobError> {
        match bounded(self.client.release_lease(lease.0.clone(), None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if matches!(e.http_status().map(u16::from), Some(404 | 409)) => Ok(()),
            Ok(Err(e)) => Err(self.error("release lease", &e)),
            Err(()) => Err(timeout_error("release lease", &self.path)),
        }
    }

    /// Breaks the blob's lease, whoever holds it, after `period` (0: at once).
    pub async fn break_lease(&self, period: Duration) -> Result<(), BlobError> {
        let options = BlobClientBreakLeaseOptions {
            break_period: Some(i32::try_from(period.as_secs()).unwrap_or(60).clamp(0, 60)),
            ..Default::default()
        };
        match bounded(self.client.break_lease(Some(options))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.error("break lease", &e)),
            Err(()) => Err(timeout_error("break lease", &self.path)),
        }
    }

    /// Replaces the blob's metadata; `lease` is required while the blob is leased.
    pub async fn set_metadata(
        &self,
        metadata: &BTreeMap<String, String>,
        lease: Option<&LeaseId>,
    ) -> Result<(), BlobError> {
        let options = BlobClientSetMetadataOptions {
            lease_id: lease.map(|lease| lease.0.clone()),
            ..Default::default()
        };
        let metadata = metadata.clone().into_iter().collect();
        match bounded(self.client.set_metadata(&metadata, Some(options))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.error("set metadata", &e)),
            Err(()) => Err(timeout_error("set metadata", &self.path)),
        }
    }

    /// Deletes the blob, only if its ETag is still `if_match` when given: `false` when it did
    /// not exist; an error (412) when it changed.
    pub async fn delete(&self, if_match: Option<&str>) -> Result<bool, BlobError> {
        let options = BlobClientDeleteOptions {
            if_match: if_match.map(Etag::from),
            ..Default::default()
        };
        match bounded(self.client.delete(Some(options))).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if e.http_status().map(u16::from) == Some(404) => Ok(false),
            Ok(Err(e)) => Err(self.error("delete", &e)),
            Err(()) => Err(timeout_error("delete", &self.path)),
        }
    }

    fn error(&self, operation: &'static str, error: &azure_core::Error) -> BlobError {
        request_error(&self.redact, operation, &self.path, error)
    }
}

/// Runs `call` within [`CALL_TIMEOUT`]; `Err(())` when it took longer.
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> Result<T, ()> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| ())
}

fn timeout_error(operation: &'static str, blob: &str) -> BlobError {
    BlobError::Request {
        operation,
        blob: blob.to_string(),
        status: None,
        code: Some("Timeout".into()),
        message: format!(
            "no answer within {} s (retries included)",
            CALL_TIMEOUT.as_secs()
        ),
    }
}

fn request_error(
    redact: &Redactor,
    operation: &'static str,
    blob: &str,
    error: &azure_core::Error,
) -> BlobError {
    let (status, code) = match error.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            status, error_code, ..
        } => (Some(u16::from(*status)), error_code.clone()),
        _ => (None, None),
    };
    BlobError::Request {
        operation,
        blob: blob.to_string(),
        status,
        code,
        message: redact.text(&crate::client::error_chain(error)),
    }
}

/// The service's container rules: 3–63 characters, lower-case letters, digits and single
/// hyphens, starting and ending with a letter or digit.
fn check_container_name(name: &str) -> Result<(), BlobError> {
    let valid = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(BlobError::Config(format!(
            "{name:?} is not a valid container name (3-63 lower-case letters, digits and single \
             hyphens)"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_the_service_rules() {
        assert!(check_container_name("hubspoke-leases").is_ok());
        assert!(check_container_name("azure-webjobs-hosts").is_ok());
        for bad in ["ab", "Leases", "a--b", "-ab", "a_b"] {
            assert!(check_container_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", LeaseId("secret-id".into())),
            "LeaseId(<redacted>)"
        );
    }
}
