//! The simulated Azure: an in-memory imitation of the Microsoft.Network part of Azure Resource
//! Manager that hubspoke touches, with Event Grid delivery of ARM events and the App Service
//! managed identity endpoint. It stands alone: it shares no code with the client or the core, so
//! a misunderstanding of Azure cannot hide by being made twice.
//!
//! Start one in-process with [`start`] and a [`SimConfig`] (defaults suit tests), or from the
//! command line with `hubspoke sim` ([`cli`]). `docs/simulator.md` documents the knobs, the
//! control API and the behaviour imitated.
pub mod cli;
pub mod clock;
pub mod config;
pub mod identity;
pub mod json;

mod arm;
mod blobs;
mod cloud;
mod control;
mod effective;
mod events;
mod faults;
mod graph;
mod http;
mod management_groups;
mod next_hop;
mod queues;
mod scheduler;
mod server;
mod shared;
mod signing;
mod tenancy;
mod throttle;
mod tls;
mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{
    EventKnobs, EventSchema, FaultAction, FaultRule, FaultSpec, FaultTrigger, GraphPeerings,
    LatencySpec, LockConflict, Refusal, Strictness, ThrottleSpec,
};
pub use events::EventRecord;
pub use management_groups::GroupSpec;
pub use shared::RequestRecord;
pub use world::ArmError;

/// Where the initial estate comes from.
#[derive(Debug, Clone)]
pub enum Seed {
    /// A snapshot document.
    Value(Value),
    /// A file holding a snapshot document.
    File(PathBuf),
}

/// Everything a simulator needs to start. `Default` suits tests: loopback, any port, plain
/// HTTP, LROs of 20 ms, throttling on with ARM's bucket sizes.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address of the ARM endpoint; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Serve HTTPS with a self-signed certificate generated at start.
    pub tls: bool,
    /// Where to write the certificate (PEM) with `tls`; a temporary file when `None`.
    pub ca_cert_out: Option<PathBuf>,
    /// The initial estate.
    pub seed: Option<Seed>,
    /// Event Grid endpoint to deliver events to; events are only recorded when `None`.
    pub events_to: Option<String>,
    /// The wire schema of delivered events.
    pub event_schema: EventSchema,
    /// Imperfect delivery knobs.
    pub event_knobs: EventKnobs,
    /// Operation latencies.
    pub latency: LatencySpec,
    /// Fault rules in force at start.
    pub faults: FaultSpec,
    /// Items per page of list operations.
    pub page_size: usize,
    /// Throttling buckets and time factor.
    pub throttle: ThrottleSpec,
    /// Choices where Azure's behaviour is unconfirmed.
    pub strictness: Strictness,
    /// The object id put in tokens of the managed identity endpoint.
    pub principal_id: String,
    /// The client id of the managed identity.
    pub client_id: String,
    /// Also serve a minimal Azure Queue Storage account (needs `tls`: bearer tokens travel over
    /// HTTPS only).
    pub queues: bool,
    /// How far Resource Graph lags the estate: its copy is taken again once it is this old
    /// (zero: always current). [`SimHandle::freeze_graph`] stops it at one moment instead.
    pub graph_lag: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            ca_cert_out: None,
            seed: None,
            events_to: None,
            event_schema: EventSchema::Eventgrid,
            event_knobs: EventKnobs::default(),
            latency: LatencySpec::default(),
            faults: FaultSpec::default(),
            page_size: 100,
            throttle: ThrottleSpec::default(),
            strictness: Strictness::default(),
            principal_id: identity::DEFAULT_PRINCIPAL_ID.to_string(),
            client_id: identity::DEFAULT_CLIENT_ID.to_string(),
            queues: false,
            graph_lag: Duration::ZERO,
        }
    }
}

/// A running simulator. Dropping it without [`SimHandle::shutdown`] leaves its tasks running
/// until the runtime ends.
pub struct SimHandle {
    shared: Arc<shared::Shared>,
    arm_endpoint: String,
    identity_endpoint: String,
    ca_cert_pem: Option<String>,
    ca_cert_path: Option<PathBuf>,
    _ca_cert_dir: Option<TempDir>,
    queue_service_url: Option<String>,
    blob_service_url: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A directory removed on drop (for the generated certificate).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a simulator.
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    let seed = match &config.seed {
        None => None,
        Some(Seed::Value(v)) => Some(v.clone()),
        Some(Seed::File(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading seed {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing seed {}", path.display()))?,
            )
        }
    };
    let mut world = world::World::new(config.strictness.clone(), config.latency.clone());
    if let Some(seed) = &seed {
        world.load(seed).context("loading the seed")?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let arm_addr = listener.local_addr()?;
    let identity_listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("listening for the identity endpoint")?;
    let identity_addr = identity_listener.local_addr()?;

    let (tls_acceptor, ca_cert_pem, ca_cert_path, ca_cert_dir) = if config.tls {
        let generated = tls::generate()?;
        let (path, dir) = match &config.ca_cert_out {
            Some(path) => (path.clone(), None),
            None => {
                let dir =
                    std::env::temp_dir().join(format!("hubspoke-sim-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir)?;
                (dir.join("ca.pem"), Some(TempDir(dir)))
            }
        };
        std::fs::write(&path, &generated.pem)
            .with_context(|| format!("writing {}", path.display()))?;
        (
            Some(tokio_rustls::TlsAcceptor::from(generated.server_config)),
            Some(generated.pem),
            Some(path),
            dir,
        )
    } else {
        (None, None, None, None)
    };
    let scheme = if config.tls { "https" } else { "http" };
    let host = arm_addr.to_string();
    let events = match &config.events_to {
        Some(url) => events::EventBus::delivering(
            url.clone(),
            config.event_schema,
            config.event_knobs.clone(),
        )?,
        None => events::EventBus::recording(),
    };
    let mut faults = faults::Faults::default();
    faults.set(config.faults.clone());
    let shared = Arc::new(shared::Shared {
        world: Mutex::new(world),
        directory: Mutex::new(management_groups::Directory::default()),
        graph: Mutex::new(graph::GraphView::new(config.graph_lag)),
        throttle: Mutex::new(throttle::Throttle::new(config.throttle.clone())),
        faults: Mutex::new(faults),
        requests: Mutex::new(Vec::new()),
        events,
        scheme,
        fallback_host: host.clone(),
        identity_header: uuid::Uuid::new_v4().to_string(),
        principal_id: config.principal_id.clone(),
        client_id: config.client_id.clone(),
        page_size: config.page_size,
        response_delay: config.latency.response,
        fault_retry_after: config.latency.retry_after_secs,
    });
    let (shutdown, receiver) = watch::channel(false);
    let queue_listener = match (&tls_acceptor, config.queues) {
        (_, false) => None,
        (None, true) => anyhow::bail!(
            "the queue service needs TLS (--tls): storage tokens travel over HTTPS only"
        ),
        (Some(acceptor), true) => {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("listening for the queue service")?;
            Some((listener, acceptor.clone()))
        }
    };
    let mut queue_service_url = None;
    let mut blob_service_url = None;
    let mut queue_task = None;
    let mut blob_task = None;
    if let Some((_, acceptor)) = &queue_listener {
        // The same account's blob service, on a port of its own as in Azure (another host).
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("listening for the blob service")?;
        blob_service_url = Some(format!(
            "https://{}/{}",
            listener.local_addr()?,
            queues::ACCOUNT
        ));
        blob_task = Some(tokio::spawn(blobs::serve(
            listener,
            acceptor.clone(),
            Arc::new(blobs::BlobStore::default()),
            receiver.clone(),
        )));
    }
    if let Some((listener, acceptor)) = queue_listener {
        queue_service_url = Some(format!(
            "https://{}/{}",
            listener.local_addr()?,
            queues::ACCOUNT
        ));
        queue_task = Some(tokio::spawn(queues::serve(
            listener,
            acceptor,
            Arc::new(queues::QueueStore::default()),
            receiver.clone(),
        )));
    }
    let mut tasks = vec![
        tokio::spawn(server::serve(
            listener,
            tls_acceptor,
            shared.clone(),
            false,
            receiver.clone(),
        )),
        tokio::spawn(server::serve(
            identity_listener,
            None,
            shared.clone(),
            true,
            receiver,
        )),
    ];
    tasks.extend(queue_task);
    tasks.extend(blob_task);
    tracing::info!(arm = %arm_addr, identity = %identity_addr, tls = config.tls, queues = ?queue_service_url, "simulator listening");
    Ok(SimHandle {
        shared,
        arm_endpoint: format!("{scheme}://{host}"),
        identity_endpoint: format!("http://{identity_addr}/msi/token"),
        ca_cert_pem,
        ca_cert_path,
        _ca_cert_dir: ca_cert_dir,
        queue_service_url,
        blob_service_url,
        shutdown,
        tasks,
    })
}

impl SimHandle {
    /// The ARM base URL (`http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`).
    pub fn arm_endpoint(&self) -> String {
        self.arm_endpoint.clone()
    }

    /// The self-signed certificate (PEM) with TLS.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.ca_cert_pem.clone()
    }

    /// Where the certificate was written, with TLS.
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        self.ca_cert_path.clone()
    }

    /// The managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        self.identity_endpoint.clone()
    }

    /// The secret the identity endpoint expects in `X-IDENTITY-HEADER` (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> String {
        self.shared.identity_header.clone()
    }

    /// The settings a client needs, in the order `hubspoke sim` prints them.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut out = vec![("HUBSPOKE_ARM_ENDPOINT".to_string(), self.arm_endpoint())];
        if let Some(path) = &self.ca_cert_path {
            out.push(("HUBSPOKE_CA_CERT".to_string(), path.display().to_string()));
        }
        out.push(("IDENTITY_ENDPOINT".to_string(), self.identity_endpoint()));
        out.push(("IDENTITY_HEADER".to_string(), self.identity_header()));
        // The identity-based storage connection of a Functions app, pointing at the simulated
        // account: the app's queue bindings then use it as they would use Azure Storage.
        if let Some(url) = &self.queue_service_url {
            out.push((
                "AzureWebJobsStorage__queueServiceUri".to_string(),
                url.clone(),
            ));
            if let Some(blob) = &self.blob_service_url {
                out.push((
                    "AzureWebJobsStorage__blobServiceUri".to_string(),
                    blob.clone(),
                ));
            }
            out.push((
                "AzureWebJobsStorage__credential".to_string(),
                "managedidentity".to_string(),
            ));
        }
        out
    }

    /// The queue service URL (`https://127.0.0.1:PORT/devstoreaccount1`) with
    /// [`SimConfig::queues`].
    pub fn queue_service_url(&self) -> Option<String> {
        self.queue_service_url.clone()
    }

    /// A bearer token as the managed identity endpoint would mint it, for `object_id`.
    pub fn token_for(&self, object_id: &str) -> String {
        identity::mint_token(
            object_id,
            &self.shared.client_id,
            "https://management.azure.com",
        )
    }

    /// The estate in the snapshot format (as `GET /_sim/state`).
    pub fn state(&self) -> Value {
        self.shared
            .world
            .lock()
            .map(|w| w.snapshot())
            .unwrap_or(Value::Null)
    }

    /// Replaces the estate (as `PUT /_sim/state`).
    pub fn load(&self, snapshot: &Value) -> anyhow::Result<()> {
        self.shared
            .world
            .lock()
            .map_err(|_| anyhow::anyhow!("simulator state poisoned"))?
            .load(snapshot)
    }

    /// The requests received so far (as `GET /_sim/requests`).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        if let Ok(mut r) = self.shared.requests.lock() {
            r.clear();
        }
    }

    /// The events emitted so far, with their delivery outcome (as `GET /_sim/events`).
    pub fn events(&self) -> Vec<EventRecord> {
        self.shared
            .events
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Sets the fault rules (as `PUT /_sim/faults`).
    pub fn set_faults(&self, spec: FaultSpec) {
        if let Ok(mut faults) = self.shared.faults.lock() {
            faults.set(spec);
            faults.text = "(set in-process)".to_string();
        }
    }

    /// Creates or replaces management group `id` (as `PUT /_sim/managementGroups/{id}`): its
    /// parent (the root group when `None`) and the subscriptions placed directly in it, taken
    /// from wherever they were. A subscription named here exists from now on, resources or not.
    pub fn put_management_group(&self, id: &str, spec: &GroupSpec) -> anyhow::Result<()> {
        self.shared
            .directory
            .lock()
            .map_err(|_| anyhow::anyhow!("simulator directory poisoned"))?
            .put_group(id, spec)
            .map_err(|message| anyhow::anyhow!(message))
    }

    /// Declares a subscription with no resource yet (as `PUT /_sim/subscriptions/{id}`): a
    /// subscription vended after start, in the root management group until placed elsewhere.
    pub fn add_subscription(&self, id: &str) -> anyhow::Result<()> {
        self.shared
            .directory
            .lock()
            .map_err(|_| anyhow::anyhow!("simulator directory poisoned"))?
            .declare_subscription(id)
            .map_err(|message| anyhow::anyhow!(message))
    }

    /// Freezes Resource Graph at the estate as it is now (as `PUT /_sim/graph {"frozen": true}`):
    /// its answers lag every change made from now on until [`SimHandle::thaw_graph`].
    pub fn freeze_graph(&self) {
        let resources = graph::resources_of(&self.state());
        let Ok(directory) = self.shared.directory.lock().map(|d| d.clone()) else {
            return;
        };
        if let Ok(mut view) = self.shared.graph.lock() {
            view.set_frozen(Some((resources, directory)));
        }
    }

    /// Lets Resource Graph answer from the estate again (as `PUT /_sim/graph {"frozen": false}`).
    pub fn thaw_graph(&self) {
        if let Ok(mut view) = self.shared.graph.lock() {
            view.set_frozen(None);
        }
    }

    /// Turns throttling on or off, and sets its time factor.
    pub fn set_throttle(&self, spec: ThrottleSpec) {
        if let Ok(mut throttle) = self.shared.throttle.lock() {
            *throttle = throttle::Throttle::new(spec);
        }
    }

    /// Stops serving and waits for the listeners to close.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
