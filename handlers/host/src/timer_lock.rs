//! A timer runs on one instance at a time, as the real host runs it: its listener is a singleton
//! (`TimerListener` carries `[Singleton(Mode = SingletonMode.Listener)]`), held through a blob
//! lease in the host's storage (`AzureWebJobsStorage`): container `azure-webjobs-hosts`, blob
//! `locks/<host id>/Host.Functions.<Name>.Listener`, a 60-second lease (`ListenerLockPeriod`)
//! renewed halfway, and an instance without it trying again every minute
//! (`ListenerLockRecoveryPollingInterval`) (azure-webjobs-sdk, `SingletonManager`,
//! `SingletonListener`, `SingletonOptions`).
//!
//! The host id is `AzureFunctionsWebHost__hostid` when set, else the site name
//! (`WEBSITE_SITE_NAME`), else `hubspoke-local`: hosts of one app on one account share it. Without
//! a blob service in `AzureWebJobsStorage` timers run unlocked (one instance only), with a
//! warning.
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubspoke_queue::{BlobService, Container, LeaseId, StorageSettings};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{App, Trigger};

/// The host's container of locks.
pub const HOSTS_CONTAINER: &str = "azure-webjobs-hosts";
/// `ListenerLockPeriod`.
pub const LISTENER_LOCK_PERIOD: Duration = Duration::from_secs(60);
/// `ListenerLockRecoveryPollingInterval`.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(60);

/// The timers' locks of one host.
pub struct TimerLocks {
    container: Container,
    host_id: String,
    instance_id: String,
}

/// The lock of one timer function.
#[derive(Clone)]
pub struct TimerLock {
    container: Container,
    blob_name: String,
    instance_id: String,
}

/// A timer lock held: renewed until dropped; `lost` flips when a renewal fails.
pub struct HeldTimerLock {
    pub lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    release: Option<(hubspoke_queue::Blob, LeaseId)>,
}

impl TimerLocks {
    /// The locks in the host's storage, when the app has timers and the storage a blob
    /// service; `None` otherwise (timers then run unlocked).
    pub fn connect(
        app: &App,
        lookup: &impl Fn(&str) -> Option<String>,
        instance_id: &str,
    ) -> anyhow::Result<Option<TimerLocks>> {
        let has_timers = app
            .functions
            .iter()
            .any(|f| matches!(f.trigger, Trigger::Timer { .. }));
        if !has_timers {
            return Ok(None);
        }
        let blob = StorageSettings::from_lookup("AzureWebJobsStorage", lookup)
            .ok()
            .filter(|settings| settings.blob.is_some());
        let Some(settings) = blob else {
            warn!("no blob service in AzureWebJobsStorage (__blobServiceUri): timers are not coordinated with other instances");
            return Ok(None);
        };
        let container = BlobService::connect(&settings)?.container(HOSTS_CONTAINER)?;
        let host_id = lookup("AzureFunctionsWebHost__hostid")
            .or_else(|| lookup("WEBSITE_SITE_NAME"))
            .map(|id| id.trim().to_ascii_lowercase())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| "hubspoke-local".to_string());
        Ok(Some(TimerLocks {
            container,
            host_id,
            instance_id: instance_id.to_string(),
        }))
    }

    /// The lock of the timer function `name`.
    pub fn lock(&self, name: &str) -> TimerLock {
        TimerLock {
            container: self.container.clone(),
            blob_name: format!("locks/{}/Host.Functions.{name}.Listener", self.host_id),
            instance_id: self.instance_id.clone(),
        }
    }
}

impl TimerLock {
    /// Takes the lock if no other instance holds it.
    pub async fn try_acquire(&self) -> Result<Option<HeldTimerLock>, hubspoke_queue::BlobError> {
        let blob = self.container.blob(&self.blob_name);
        let sent = Instant::now();
        let lease = match blob.acquire_lease(LISTENER_LOCK_PERIOD).await {
            Ok(lease) => lease,
            Err(error) if error.is_not_found() => {
                self.container.create_if_missing().await?;
                blob.create_if_missing(&Default::default()).await?;
                blob.acquire_lease(LISTENER_LOCK_PERIOD).await?
            }
            Err(error) => return Err(error),
        };
        let Some(lease) = lease else {
            return Ok(None);
        };
        let owner = std::collections::BTreeMap::from([(
            "functioninstance".to_string(),
            self.instance_id.clone(),
        )]);
        let _ = blob.set_metadata(&owner, Some(&lease)).await;
        info!(lock = %self.blob_name, "timer listener lock acquired: this instance runs the timer");
        let (lost_sender, lost) = watch::channel(false);
        let renewer = {
            let blob = blob.clone();
            let lease = lease.clone();
            let lost_sender = Arc::new(lost_sender);
            tokio::spawn(async move {
                let mut valid_until = sent + LISTENER_LOCK_PERIOD;
                loop {
                    let wait = if Instant::now() + LISTENER_LOCK_PERIOD / 2 < valid_until {
                        LISTENER_LOCK_PERIOD / 2
                    } else {
                        Duration::from_secs(1)
                    };
                    tokio::time::sleep(wait).await;
                    let sent = Instant::now();
                    match blob.renew_lease(&lease).await {
                        Ok(()) => valid_until = sent + LISTENER_LOCK_PERIOD,
                        Err(error)
                            if error.status() == Some(409)
                                || Instant::now() + Duration::from_secs(5) >= valid_until =>
                        {
                            warn!(%error, "timer listener lock lost: the timer stops here");
                            let _ = lost_sender.send(true);
                            return;
                        }
                        Err(error) => warn!(%error, "renewing the timer listener lock failed"),
                    }
                }
            })
        };
        Ok(Some(HeldTimerLock {
            lost,
            renewer,
            release: Some((blob, lease)),
        }))
    }
}

impl HeldTimerLock {
    /// Stops renewing and releases the lock, so that another instance takes the timer at its
    /// next try.
    pub async fn release(mut self) {
        self.renewer.abort();
        if let Some((blob, lease)) = self.release.take() {
            let _ = blob.release_lease(&lease).await;
        }
    }
}

impl Drop for HeldTimerLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
