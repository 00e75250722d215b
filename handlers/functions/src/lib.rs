//! hubspoke as an Azure Functions custom handler (docs/design.md §3): `hubspoke serve`.
//!
//! The Functions host starts the binary with `FUNCTIONS_CUSTOMHANDLER_PORT` set and POSTs one
//! JSON invocation per trigger to `/<FunctionName>`. [`adapter`] owns that protocol — envelope,
//! spans, panics, outputs — and the four functions in [`functions`] are plain async fns from an
//! [`invocation`] to its reply, sharing the [`state`]:
//! `OnNetworkEvent` turns ARM events into work items, `ReconcileHub` runs a pass per work item,
//! `Backfill` and `DriftCheck` queue hubs. Every invocation leaves exactly one
//! [`outcome`] (`hubspoke.outcome/v1`).
//!
//! This crate decides nothing about the network: the planner (`hubspoke-core`) does, and
//! `hubspoke-arm` observes and applies. Nothing here is shared between invocations but the
//! process's ARM connections and the per-hub pass slots; on Flex Consumption each function
//! scales on instances of its own, so correctness never rests on in-process state: one pass per
//! hub across instances is the hub's blob lease ([`lease`]), and every invocation answers within
//! `functionTimeout` ([`timing`]).
pub mod adapter;
pub mod envelope;
pub mod events;
pub mod functions;
pub mod invocation;
pub mod lease;
pub mod logs;
pub mod mapping;
pub mod outcome;
pub mod passes;
mod retries;
pub mod scope;
mod session;
pub mod settings;
pub mod sink;
pub mod state;
pub mod timing;
pub mod work;

use std::net::SocketAddr;
use std::sync::Arc;

pub use adapter::app;
pub use state::{AppState, State};

/// A failure that stops `hubspoke serve` before it serves.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Setting(#[from] settings::SettingsError),
    #[error("{0}")]
    Arm(#[from] hubspoke_arm::error::ArmError),
    #[error("the outcome queue: {0}")]
    Queue(#[from] hubspoke_queue::QueueError),
    #[error("the hubs' leases: {0}")]
    Leases(#[from] hubspoke_queue::BlobError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Reads the settings from `lookup`, listens on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` and
/// serves until SIGTERM or Ctrl-C; then takes no new invocation and lets those in flight finish.
pub async fn serve(lookup: impl Fn(&str) -> Option<String>) -> Result<(), ServeError> {
    let settings = settings::HandlerSettings::from_settings(&lookup)?;
    let logs = logs::LogStore::default();
    logs::init(logs.clone());
    let address = SocketAddr::from(([127, 0, 0, 1], settings.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Listen { address, source })?;
    if settings.self_principal_id.is_none() {
        tracing::warn!(
            "HUBSPOKE_SELF_PRINCIPAL_ID is not set: events caused by hubspoke's own writes each start a read-only pass"
        );
    }
    if let Some(note) = &settings.storage_note {
        tracing::warn!("{note}");
    }
    let sink = match &settings.storage {
        Some(storage) => sink::OutcomeSink::to_queue(storage)?,
        None => sink::OutcomeSink::log_only(),
    };
    let leases = match &settings.storage {
        Some(storage) if storage.blob.is_some() => Some(lease::HubLeases::new(
            storage,
            &settings.instance_id,
            settings.lease_renew,
        )?),
        _ => {
            tracing::warn!(
                "no blob service (AzureWebJobsStorage__blobServiceUri): passes of a hub are kept \
                 one at a time in this instance only; run a single instance"
            );
            None
        }
    };
    let work_queue = match (&settings.storage, &leases) {
        (Some(storage), Some(_)) => {
            Some(hubspoke_queue::QueueService::connect(storage)?.queue(work::WORK_QUEUE)?)
        }
        _ => None,
    };
    let mut state = State::new(settings, logs, sink)?;
    state.leases = leases;
    state.work_queue = work_queue;
    let state = Arc::new(state);
    tracing::info!(%address, hubs = state.settings.plan.hubs.len(), instance = %state.settings.instance_id, "hubspoke handler listening");
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "the server stopped");
    }
    tracing::info!("hubspoke handler stopped");
    Ok(())
}

/// Resolves on SIGTERM (what the host and the platform send) or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("stopping: no new invocations; those in flight finish");
}
