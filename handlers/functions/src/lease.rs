//! One pass per hub across instances: a blob lease per hub in the app's own storage account,
//! the primitive the Functions runtime uses for its own singletons and timers
//! (`docs/operations.md`, "Several instances").
//!
//! Container `hubspoke-leases`; per hub two blobs, named after the hub's id (lower-cased, without
//! the leading `/`):
//! - `<hub>`: the lease blob. A pass holds its 60-second lease, renewed while it runs, from
//!   before it observes until after its last write; its metadata names the holder (`instance`,
//!   `pass`, `started`), for the joiners' outcomes and for operators.
//! - `<hub>.wanted`: the mark that one more pass is wanted, left by a work item that found the
//!   lease held. It must be a blob of its own: the lease blob cannot be written without its lease
//!   id, metadata included (Learn, "Set Blob Metadata": `x-ms-lease-id` is required while the blob
//!   has an active lease). Its metadata `pass` names the pass that will answer it: the first
//!   joiner creates it (`If-None-Match: *`) with a new id, later joiners read the id and join the
//!   same pass. The holder takes it (reads it, then deletes it if unchanged, `If-Match`) before
//!   it observes, and runs that pass under the mark's id.
//!
//! Why nothing is lost: a mark is taken only by a holder, right before it observes; a joiner
//! tries the lease once more after leaving its mark, so either it runs the pass itself or some
//! instance held the lease after the mark was written and will look for it before letting go
//! (after its pass while holding, and once more after releasing). A holder that dies leaves its
//! own work item in the queue and the mark in place; both are found once the lease has run out.
//!
//! The lease id is derived from the instance and the hub (a name-based UUID), so that a handler
//! the host restarted on the same instance — the host runs one handler process at a time —
//! takes over the lease its dead predecessor held at once (acquiring a leased blob with its own
//! lease id succeeds, Learn, "Lease Blob"), rather than wait a minute for it to run out. Within
//! the process a registry keeps the hub held by one pass at a time.
//!
//! A lease that cannot be renewed — broken from outside, taken over after it ran out, storage
//! unreachable until it would run out — sets the pass's [`Halt`]: the pass starts no further
//! change, and its invocation fails so that the queue retries it. The holder renews once more as
//! the pass ends ([`HeldLease::confirm`]), so that a lease broken since the last renewal is
//! found too.
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubspoke_arm::apply::Halt;
use hubspoke_core::id::VnetId;
use hubspoke_queue::{Blob, BlobError, BlobService, Container, Lease, LeaseId, StorageSettings};
use tokio::sync::OnceCell;

/// The container of the hubs' leases and marks.
pub const LEASE_CONTAINER: &str = "hubspoke-leases";

/// How long a lease lasts unrenewed: the longest the service allows short of infinite, as the
/// Functions runtime's own listener locks.
pub const LEASE_DURATION: Duration = Duration::from_secs(60);

/// How long before a lease runs out its holder gives up on renewing it and halts its pass: the
/// service counts the lease from when it received the renewal, the holder from when it sent it,
/// and a change must not start in the last moments.
const RENEWAL_MARGIN: Duration = Duration::from_secs(15);

/// Tries of a mark operation that meets a concurrent one (a mark created or taken meanwhile).
const MARK_TRIES: usize = 4;

/// The hubs' leases and marks of this instance.
pub struct HubLeases {
    container: Container,
    created: OnceCell<()>,
    instance: String,
    renew: Duration,
    /// The hubs whose lease a pass of this process holds.
    held: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for HubLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLeases")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The hub's lease, held by this instance; renewed in the background until released.
pub struct HeldLease {
    blob: Blob,
    id: LeaseId,
    halt: Halt,
    renewer: tokio::task::JoinHandle<()>,
    /// This process's registry, and the hub's entry in it.
    held: Arc<Mutex<HashSet<String>>>,
    name: String,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("blob", &self.blob)
            .finish_non_exhaustive()
    }
}

/// Who holds a hub's lease, as its metadata says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    pub instance: Option<String>,
    pub pass: Option<String>,
}

impl HubLeases {
    /// The leases in the blob service of `storage`, for the instance `instance`, renewed every
    /// `renew`.
    pub fn new(
        storage: &StorageSettings,
        instance: &str,
        renew: Duration,
    ) -> Result<Self, BlobError> {
        let container = BlobService::connect(storage)?.container(LEASE_CONTAINER)?;
        Ok(Self {
            container,
            created: OnceCell::new(),
            instance: instance.to_string(),
            renew,
            held: Arc::default(),
        })
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The lease blob of `hub`.
    pub fn lease_blob(&self, hub: &VnetId) -> Blob {
        self.container.blob(&blob_name(hub))
    }

    fn mark_blob(&self, hub: &VnetId) -> Blob {
        self.container.blob(&format!("{}.wanted", blob_name(hub)))
    }

    async fn ensure_container(&self) -> Result<(), BlobError> {
        self.created
            .get_or_try_init(|| async { self.container.create_if_missing().await.map(|_| ()) })
            .await
            .map(|_| ())
    }

    /// Takes the hub's lease, creating its blob the first time; `None` when another instance
    /// holds it.
    pub async fn try_acquire(&self, hub: &VnetId) -> Result<Option<HeldLease>, BlobError> {
        let name = blob_name(hub);
        // Held by a pass of this process: the lease id would let a second one in.
        if !self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone())
        {
            return Ok(None);
        }
        let acquired = self.acquire(hub).await;
        let unregister = || {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        };
        let (blob, id, sent) = match acquired {
            Ok(Some(acquired)) => acquired,
            Ok(None) => {
                unregister();
                return Ok(None);
            }
            Err(error) => {
                unregister();
                return Err(error);
            }
        };
        let halt = Halt::new();
        let renewer = tokio::spawn(renew(
            blob.clone(),
            id.clone(),
            halt.clone(),
            self.renew,
            sent + LEASE_DURATION,
        ));
        Ok(Some(HeldLease {
            blob,
            id,
            halt,
            renewer,
            held: self.held.clone(),
            name,
        }))
    }

    /// Acquires the hub's lease with this instance's lease id; `None` when another instance
    /// holds it.
    async fn acquire(&self, hub: &VnetId) -> Result<Option<(Blob, LeaseId, Instant)>, BlobError> {
        self.ensure_container().await?;
        let blob = self.lease_blob(hub);
        let proposed = lease_id(&self.instance, hub);
        let sent = Instant::now();
        let id = match blob.acquire_lease_as(LEASE_DURATION, &proposed).await {
            Ok(id) => id,
            Err(error) if error.is_not_found() => {
                blob.create_if_missing(&BTreeMap::new()).await?;
                blob.acquire_lease_as(LEASE_DURATION, &proposed).await?
            }
            Err(error) => return Err(error),
        };
        Ok(id.map(|id| (blob, id, sent)))
    }

    /// Who holds the hub's lease now, if anyone does.
    pub async fn holder(&self, hub: &VnetId) -> Result<Option<Holder>, BlobError> {
        let Some(properties) = self.lease_blob(hub).properties().await? else {
            return Ok(None);
        };
        if properties.lease != Lease::Leased {
            return Ok(None);
        }
        Ok(Some(Holder {
            instance: properties.metadata.get("instance").cloned(),
            pass: properties.metadata.get("pass").cloned(),
        }))
    }

    /// Leaves the mark that one more pass of `hub` is wanted; the id of the pass that will
    /// answer it (a new one, or that of a mark already waiting), and whether this call created
    /// the mark.
    pub async fn mark(&self, hub: &VnetId) -> Result<(String, bool), BlobError> {
        self.ensure_container().await?;
        let blob = self.mark_blob(hub);
        for _ in 0..MARK_TRIES {
            let proposal = uuid::Uuid::new_v4().to_string();
            let metadata = BTreeMap::from([
                ("pass".to_string(), proposal.clone()),
                ("instance".to_string(), self.instance.clone()),
            ]);
            if blob.create_if_missing(&metadata).await? {
                return Ok((proposal, true));
            }
            // A mark is waiting: join its pass. Gone meanwhile (taken): leave a new one.
            if let Some(pass) = blob
                .properties()
                .await?
                .and_then(|properties| properties.metadata.get("pass").cloned())
            {
                return Ok((pass, false));
            }
        }
        Err(contended("mark", &blob))
    }

    /// Takes the waiting mark of `hub`, if there is one: the id of the pass it asks for. Only
    /// the lease holder calls this, right before it observes.
    pub async fn take_mark(&self, hub: &VnetId) -> Result<Option<String>, BlobError> {
        let blob = self.mark_blob(hub);
        for _ in 0..MARK_TRIES {
            let Some(properties) = blob.properties().await? else {
                return Ok(None);
            };
            match blob.delete(Some(&properties.etag)).await {
                Ok(true) => {
                    let pass = properties
                        .metadata
                        .get("pass")
                        .cloned()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    return Ok(Some(pass));
                }
                Ok(false) => return Ok(None),
                // Replaced between the read and the delete: read it again.
                Err(error) if error.status() == Some(412) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(contended("take the mark", &blob))
    }

    /// Whether a mark of `hub` is waiting.
    pub async fn mark_waiting(&self, hub: &VnetId) -> Result<bool, BlobError> {
        Ok(self.mark_blob(hub).properties().await?.is_some())
    }
}

impl HeldLease {
    /// The signal the renewal sets when the lease is lost.
    pub fn halt(&self) -> Halt {
        self.halt.clone()
    }

    /// Why the lease was lost, once it was.
    pub fn lost(&self) -> Option<String> {
        self.halt.reason().map(str::to_string)
    }

    /// Renews the lease once more as the pass ends, so that a lease broken or taken since the
    /// last renewal (which runs every `HUBSPOKE_LEASE_RENEW_SECONDS`) is found now, not never:
    /// a pass reported as holding its lease held it to its end. Sets the halt as the renewal
    /// does when the lease is lost; any other error says nothing of the lease (the renewals
    /// before it did), and is only logged.
    pub async fn confirm(&self) {
        if self.halt.reason().is_some() {
            return;
        }
        match self.blob.renew_lease(&self.id).await {
            Ok(()) => {}
            Err(error) if lease_gone(&error) => {
                tracing::error!(%error, "the hub's lease was lost before the pass ended");
                self.halt.halt(format!(
                    "the pass lost its hub's lease ({}) before it ended",
                    error.code().unwrap_or("lost")
                ));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot confirm the hub's lease as the pass ends");
            }
        }
    }

    /// Writes the holder's name on the lease blob (`instance`, `pass`, `started`). Best effort:
    /// only joiners' outcomes and operators read it.
    pub async fn name_holder(&self, instance: &str, pass: &str, started: &str) {
        let metadata = BTreeMap::from([
            ("instance".to_string(), instance.to_string()),
            ("pass".to_string(), pass.to_string()),
            ("started".to_string(), started.to_string()),
        ]);
        if let Err(error) = self.blob.set_metadata(&metadata, Some(&self.id)).await {
            tracing::warn!(%error, "cannot name the holder on the hub's lease");
        }
    }

    /// Stops renewing and releases the lease, so that another instance may take it at once. A
    /// lease already lost answers 409, which is no error; any other error only delays the next
    /// holder until the lease runs out.
    pub async fn release(self) {
        self.renewer.abort();
        // A pass of this process may take the hub again once the lease is let go (below) or
        // dropped (here, whatever happens).
        if let Err(error) = self.blob.release_lease(&self.id).await {
            tracing::warn!(%error, "cannot release the hub's lease: the next pass waits until it runs out");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}

/// The lease id of `instance` on `hub`: a name-based UUID, the same for every handler process of
/// the instance.
pub fn lease_id(instance: &str, hub: &VnetId) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("hubspoke-lease:{instance}:{}", blob_name(hub)).as_bytes(),
    )
    .to_string()
}

/// Renews the lease every `every` until aborted; sets `halt` when it is lost or cannot be
/// renewed before it runs out.
async fn renew(blob: Blob, id: LeaseId, halt: Halt, every: Duration, mut valid_until: Instant) {
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        let sent = Instant::now();
        match blob.renew_lease(&id).await {
            Ok(()) => {
                valid_until = sent + LEASE_DURATION;
                wait = every;
            }
            Err(error) if lease_gone(&error) => {
                tracing::error!(%error, "the hub's lease was lost: the pass starts no further change");
                halt.halt(format!(
                    "the pass lost its hub's lease ({})",
                    error.code().unwrap_or("lost")
                ));
                return;
            }
            Err(error) => {
                if Instant::now() + Duration::from_secs(1) + RENEWAL_MARGIN >= valid_until {
                    tracing::error!(%error, "the hub's lease could not be renewed in time");
                    halt.halt(format!(
                        "the pass could not renew its hub's lease in time ({error})"
                    ));
                    return;
                }
                tracing::warn!(%error, "renewing the hub's lease failed; trying again");
                wait = Duration::from_secs(1);
            }
        }
    }
}

/// Whether a renewal's error says the lease is no longer this holder's: 409, broken, taken by
/// another after it ran out, or released; 412, the lease id no longer matches; 404, the blob is
/// gone.
fn lease_gone(error: &BlobError) -> bool {
    matches!(error.status(), Some(404 | 409 | 412))
}

fn contended(operation: &'static str, blob: &Blob) -> BlobError {
    BlobError::Request {
        operation,
        blob: blob.path().to_string(),
        status: None,
        code: Some("Contended".into()),
        message: format!("other instances changed it {MARK_TRIES} times in a row"),
    }
}

/// The blob name of `hub`: its id lower-cased (ids are case-insensitive), without the leading
/// `/`, so that each hub's blobs sit under its subscription and resource group.
pub fn blob_name(hub: &VnetId) -> String {
    hub.to_string().trim_start_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_blob_is_named_after_its_id_whatever_its_case() {
        let a: VnetId =
            "/subscriptions/S1/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/Hub"
                .parse()
                .unwrap();
        let b: VnetId =
            "/subscriptions/s1/resourcegroups/rg/providers/microsoft.network/virtualnetworks/hub"
                .parse()
                .unwrap();
        assert_eq!(blob_name(&a), blob_name(&b));
        assert_eq!(
            blob_name(&a),
            "subscriptions/s1/resourcegroups/rg/providers/microsoft.network/virtualnetworks/hub"
        );
    }
}
