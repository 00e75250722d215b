//! The local stack: hubspoke end to end on one machine, every part real except Azure itself: the
//! simulator (ARM and its Event Grid delivery) → the local Functions host (`hubspoke-host`, in
//! this process) → the custom handler (`hubspoke serve`, a child process started by the host
//! from `host.json`) → queues (Azurite when installed under `tests/node_modules`, else the
//! simulator's own) → `ReconcileHub` → ARM writes → outcomes.
//!
//! It is not shipped: the binary packaged for Azure is built without it (the `local` feature of
//! the `hubspoke` crate). [`Stack`] starts it all for the demo (`hubspoke demo`), the end-to-end
//! tests of `tests/`, the chaos campaign and the benchmarks, and offers what they check:
//! convergence through a plan of the simulator's state, the outcomes (each validated against
//! `docs/outcome.schema.json`), Backfill calls, the drift check, and changes made as a landing
//! zone makes them — under an identity that is not hubspoke's, so that their events are acted on.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::PlanConfig;
use hubspoke_core::id::VnetId;
use hubspoke_core::synth::Estate;
use hubspoke_host::{HostConfig, Keys};
use hubspoke_queue::azurite::{Azurite, AzuriteError};
use hubspoke_queue::message::decode_text;
use hubspoke_queue::{Queue, QueueService, StorageSettings};
use hubspoke_sim::{EventKnobs, EventSchema, FaultSpec, LatencySpec, Seed, SimConfig, SimHandle};
use serde_json::Value;

mod credential;
mod host;
mod logs;

pub use credential::StaticToken;
pub use host::{signal, Host};
pub use logs::{capture_logs, captured_logs};

/// The object id of the person (or pipeline) making the landing zone's changes.
pub const LANDING_ZONE: &str = "7a1c0000-0000-4000-8000-00000000b0b0";

/// Where the queues come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Azurite, which must be installed.
    Azurite,
    /// The simulator's in-memory queue service.
    Simulator,
    /// Azurite when installed, else the simulator's queues.
    Auto,
}

impl Storage {
    /// What the tests use: Azurite, which the README's test command installs; a test without it
    /// fails and names that step rather than pass on something else.
    pub fn for_tests() -> Self {
        Storage::Azurite
    }
}

/// How to start a [`Stack`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The estate the simulator starts with; its VNet `hub` is the configured hub.
    pub estate: Estate,
    pub event_schema: EventSchema,
    pub event_knobs: EventKnobs,
    pub latency: LatencySpec,
    pub faults: FaultSpec,
    pub storage: Storage,
    /// App settings on top of the stack's own (the host reads them; the handler inherits them).
    /// [`Options::new`] starts with two that make queue triggers quick for tests: polling at most
    /// every 0.5 s and a failed item back after 1 s (host.json says 2 s and 10 s).
    pub settings: Vec<(String, String)>,
    /// The `hubspoke` binary the host runs; [`hubspoke_binary`] when `None`.
    pub binary: Option<PathBuf>,
    /// `HUBSPOKE_SUBSCRIPTIONS`, for the handler and the stack's own checks.
    pub subscriptions: Option<Vec<String>>,
    /// Run the host as a `hubspoke host` process of its own (which a test can kill), rather than
    /// in this process.
    pub host_process: bool,
    /// How many instances of the app run: each a `hubspoke host` process with its own handler
    /// (`WEBSITE_INSTANCE_ID`), all on the same storage and simulator, as Azure scales an app
    /// out. Event Grid delivers to the first; the queue triggers of all take work items. More
    /// than one implies `host_process`.
    pub instances: usize,
}

impl Options {
    /// Defaults for `estate`: clean Event Grid delivery, the simulator's test latencies, no
    /// fault, Azurite when installed.
    pub fn new(estate: Estate) -> Self {
        Self {
            estate,
            event_schema: EventSchema::Eventgrid,
            event_knobs: EventKnobs::default(),
            latency: LatencySpec::default(),
            faults: FaultSpec::default(),
            storage: Storage::Auto,
            settings: vec![
                (
                    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval".to_string(),
                    "00:00:00.500".to_string(),
                ),
                (
                    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout".to_string(),
                    "00:00:01".to_string(),
                ),
            ],
            binary: None,
            subscriptions: None,
            host_process: false,
            instances: 1,
        }
    }
}

/// Everything running.
pub struct Stack {
    pub sim: SimHandle,
    /// The first instance's host: Event Grid delivers to it.
    pub host: Host,
    /// The other instances' hosts ([`Options::instances`]).
    pub other_hosts: Vec<Host>,
    /// With several instances, their ids (`WEBSITE_INSTANCE_ID`), `instance-<n>` for host `n`.
    pub instance_ids: Vec<String>,
    pub azurite: Option<Azurite>,
    /// hubspoke's identity's client, for checks (reads).
    pub arm: ArmClient,
    /// A landing zone's client: its writes raise events hubspoke acts on.
    pub landing_zone: ArmClient,
    pub queues: QueueService,
    pub estate: Estate,
    pub config: PlanConfig,
    /// "Azurite" or "the simulator's queues".
    pub storage: &'static str,
    /// `HUBSPOKE_SUBSCRIPTIONS`, when set.
    pub subscriptions: Option<Vec<String>>,
    /// The app settings the host and handler got.
    pub settings: Vec<(String, String)>,
    outcomes: Mutex<Vec<Value>>,
    dir: PathBuf,
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `hubspoke` binary the host starts: `HUBSPOKE_BIN` when set, else the one beside this
/// test's or example's executable (the workspace builds it with the tests).
pub fn hubspoke_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HUBSPOKE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("the executable's folder")?
        .to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let binary = dir.join("hubspoke");
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (cargo build -p hubspoke, with --release for a release example), or set HUBSPOKE_BIN",
            binary.display()
        );
    }
    Ok(binary)
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Stack {
    /// Starts the simulator, the queues and the host with `hubspoke serve` behind it, and waits
    /// for the handler to be ready.
    pub async fn start(options: Options) -> anyhow::Result<Stack> {
        capture_logs();
        let dir = std::env::temp_dir().join(format!("hubspoke-stack-{}", unique()));
        std::fs::create_dir_all(&dir)?;

        let azurite = match options.storage {
            Storage::Simulator => None,
            Storage::Azurite => Some(Azurite::start().await.context("starting Azurite")?),
            Storage::Auto => match Azurite::start().await {
                Ok(azurite) => Some(azurite),
                Err(AzuriteError::NotInstalled { .. }) => None,
                Err(error) => return Err(error).context("starting Azurite"),
            },
        };

        // The host's address and keys come first: the simulator delivers events to it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let keys = Keys::generate();
        let event_grid_url = format!(
            "http://127.0.0.1:{port}/runtime/webhooks/eventgrid?functionName=OnNetworkEvent&code={}",
            keys.event_grid
        );
        let sim = hubspoke_sim::start(SimConfig {
            tls: true,
            queues: azurite.is_none(),
            seed: Some(Seed::Value(options.estate.snapshot())),
            events_to: Some(event_grid_url),
            event_schema: options.event_schema,
            event_knobs: options.event_knobs.clone(),
            latency: options.latency.clone(),
            faults: options.faults.clone(),
            ..SimConfig::default()
        })
        .await?;

        let mut settings = sim.env();
        if let Some(azurite) = &azurite {
            let bundle = dir.join("ca.pem");
            let sim_pem = sim.ca_cert_pem().unwrap_or_default();
            azurite.write_ca_bundle(&bundle, &[&sim_pem])?;
            settings.retain(|(key, _)| key != "HUBSPOKE_CA_CERT");
            settings.push(("HUBSPOKE_CA_CERT".into(), bundle.display().to_string()));
            settings.push((
                "AzureWebJobsStorage__queueServiceUri".into(),
                azurite.queue_service_url(),
            ));
            settings.push((
                "AzureWebJobsStorage__blobServiceUri".into(),
                azurite.blob_service_url(),
            ));
            settings.push((
                "AzureWebJobsStorage__credential".into(),
                "managedidentity".into(),
            ));
        }
        let hub = options.estate.vnet_id("hub");
        settings.extend([
            ("HUBSPOKE_HUBS".to_string(), hub.clone()),
            // The drift check runs when a test asks (the host's admin route); not by itself.
            (
                "HUBSPOKE_DRIFT_SCHEDULE".to_string(),
                "0 0 0 1 1 *".to_string(),
            ),
            (
                "HUBSPOKE_SELF_PRINCIPAL_ID".to_string(),
                hubspoke_sim::identity::DEFAULT_PRINCIPAL_ID.to_string(),
            ),
        ]);
        if let Some(subscriptions) = &options.subscriptions {
            settings.push((
                "HUBSPOKE_SUBSCRIPTIONS".to_string(),
                subscriptions.join(","),
            ));
        }
        for (key, value) in &options.settings {
            settings.retain(|(k, _)| k != key);
            settings.push((key.clone(), value.clone()));
        }

        // The app folder: the repository's host.json and function definitions, and the binary
        // where host.json's executable path finds it.
        let app = dir.join("app");
        std::fs::create_dir_all(&app)?;
        let root = repository();
        symlink(&root.join("host.json"), &app.join("host.json"))?;
        symlink(
            &root.join("function-definitions"),
            &app.join("function-definitions"),
        )?;
        let binary = match &options.binary {
            Some(binary) => binary.clone(),
            None => hubspoke_binary()?,
        };
        symlink(&binary, &app.join("hubspoke"))?;

        let in_process = !options.host_process && options.instances <= 1;
        // Several instances are named, so that a test can tell which one holds a lease.
        let instance_ids: Vec<String> = (0..options.instances.max(1))
            .map(|n| format!("instance-{n}"))
            .collect();
        let instance_settings = |n: usize| {
            let mut settings = settings.clone();
            if options.instances > 1 {
                settings.push(("WEBSITE_INSTANCE_ID".to_string(), instance_ids[n].clone()));
            }
            settings
        };
        let host = Host::start(
            in_process,
            &binary,
            HostConfig {
                script_root: app.clone(),
                listen: ([127, 0, 0, 1], port).into(),
                settings: instance_settings(0),
                keys: keys.clone(),
                handler_fallback: None,
            },
        )
        .await
        .context("starting the local Functions host")?;
        let mut other_hosts = Vec::new();
        for n in 1..options.instances {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let other = Host::start(
                false,
                &binary,
                HostConfig {
                    script_root: app.clone(),
                    listen: ([127, 0, 0, 1], port).into(),
                    settings: instance_settings(n),
                    keys: keys.clone(),
                    handler_fallback: None,
                },
            )
            .await
            .context("starting another instance's Functions host")?;
            other_hosts.push(other);
        }

        let lookup = |name: &str| {
            settings
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let mut arm_settings = ArmSettings::from_settings(lookup)?;
        arm_settings.retry.base_delay = Duration::from_millis(20);
        let credential = hubspoke_arm::credential::credential(&arm_settings)?;
        let arm = ArmClient::new(&arm_settings, credential)?;
        // The landing zone waits out a resource being updated (400
        // `ReferencedResourceNotProvisioned` while hubspoke writes the hub its peering references)
        // as landing-zone tooling does: Terraform's azurerm provider retries it until the
        // resource's timeout (hashicorp/terraform-provider-azurerm#3392).
        let mut landing_zone_settings = arm_settings.clone();
        landing_zone_settings.retry.max_attempts = 60;
        landing_zone_settings.retry.max_delay = Duration::from_secs(2);
        landing_zone_settings.retry.budget = Duration::from_secs(120);
        let landing_zone = ArmClient::new(
            &landing_zone_settings,
            Arc::new(StaticToken::new(sim.token_for(LANDING_ZONE))),
        )?;
        let storage_settings = StorageSettings::from_lookup("AzureWebJobsStorage", lookup)?;
        let queues = QueueService::connect(&storage_settings)?;
        let config = PlanConfig::new(vec![hub.parse()?]);
        Ok(Stack {
            storage: if azurite.is_some() {
                "Azurite"
            } else {
                "the simulator's in-memory queues (Azurite is not installed)"
            },
            subscriptions: options.subscriptions.clone(),
            sim,
            host,
            other_hosts,
            instance_ids,
            azurite,
            arm,
            landing_zone,
            queues,
            estate: options.estate,
            config,
            settings,
            outcomes: Mutex::new(Vec::new()),
            dir,
        })
    }

    /// Every instance's host, the first one first.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        std::iter::once(&self.host).chain(self.other_hosts.iter())
    }

    /// The instance `n`'s host (0: the first).
    pub fn host_mut(&mut self, n: usize) -> Option<&mut Host> {
        if n == 0 {
            Some(&mut self.host)
        } else {
            self.other_hosts.get_mut(n - 1)
        }
    }

    /// The hub's id.
    pub fn hub(&self) -> VnetId {
        self.config.hubs[0].clone()
    }

    /// The changes a plan of the simulator's present state still wants (0 once converged).
    ///
    /// Read from the simulator's state, not through ARM: the stack's reads would be hubspoke's
    /// identity's (ARM budgets per subscription and principal), and a check run every 200 ms
    /// spends the subscription's read budget as fast as it refills, starving hubspoke's passes.
    /// Every subscription of the simulator is in the plan's view; the network interfaces of its
    /// state (a verification's VMs) are no part of an estate's snapshot.
    pub fn pending_changes(&self) -> anyhow::Result<usize> {
        let mut state = self.sim.state();
        if let Some(state) = state.as_object_mut() {
            state.remove("networkInterfaces");
        }
        let observed = hubspoke_core::model::Observed::from_snapshot(&state)
            .context("the simulator's state does not read as an estate")?;
        let plan = hubspoke_core::plan::plan(&self.config, &observed);
        Ok(plan.hubs.iter().map(|hub| hub.changes.len()).sum())
    }

    /// Waits until a plan of the simulator's state is empty; the time it took.
    pub async fn wait_converged(&self, limit: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let pending = self.pending_changes()?;
            if pending == 0 {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!("not converged after {limit:?}: {pending} changes still planned");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A queue of the app's storage.
    pub fn queue(&self, name: &str) -> anyhow::Result<Queue> {
        Ok(self.queues.queue(name)?)
    }

    /// Takes the outcomes that arrived since the last call off `hubspoke-outcomes`, checks each
    /// against the schema, and returns every outcome taken so far.
    pub async fn outcomes(&self) -> anyhow::Result<Vec<Value>> {
        let queue = self.queue("hubspoke-outcomes")?;
        if queue.exists().await? {
            loop {
                let batch = queue.receive(32, Duration::from_secs(30)).await?;
                if batch.is_empty() {
                    break;
                }
                for message in batch {
                    let outcome = decode_text(&message.text).json().with_context(|| {
                        format!("an outcome that is not JSON: {}", message.text)
                    })?;
                    check_outcome(&outcome)?;
                    self.outcomes
                        .lock()
                        .map_err(|_| anyhow::anyhow!("outcomes poisoned"))?
                        .push(outcome);
                    queue.delete(&message.id, &message.pop_receipt).await?;
                }
            }
        }
        Ok(self
            .outcomes
            .lock()
            .map_err(|_| anyhow::anyhow!("outcomes poisoned"))?
            .clone())
    }

    /// Waits until `done(outcomes so far)` holds.
    pub async fn wait_outcomes(
        &self,
        limit: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let start = Instant::now();
        loop {
            let outcomes = self.outcomes().await?;
            if done(&outcomes) {
                return Ok(outcomes);
            }
            if start.elapsed() > limit {
                bail!(
                    "the outcomes awaited did not arrive within {limit:?}; {} so far: {}",
                    outcomes.len(),
                    summary(&outcomes)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /api/backfill?<query>` with `key` (as `x-functions-key`): status and body.
    pub async fn backfill(&self, query: &str, key: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/api/backfill?{query}", self.host.url());
        post(&url, key).await
    }

    /// Runs the drift check now, as an operator can through the host's admin route.
    pub async fn drift_check(&self) -> anyhow::Result<()> {
        let url = format!("{}/admin/functions/DriftCheck", self.host.url());
        let (status, body) = post(&url, Some(&self.host.keys().master)).await?;
        if status != 202 {
            bail!("the drift check was not started: {status} {body}");
        }
        Ok(())
    }

    /// Adds spoke `name` as a landing zone does: the VNet with one subnet, then the spoke side
    /// of the peering with default flags.
    pub async fn add_spoke(&self, name: &str, prefix: &str, subnet: &str) -> anyhow::Result<()> {
        for (path, body) in self.estate.landing_zone_spoke(name, prefix, subnet, "hub") {
            self.landing_zone.put(&path, None, &body).await?;
        }
        Ok(())
    }

    /// A landing zone creates the spokes `lz<n>` (`10.n.0.0/16`, one subnet `10.n.0.0/24`) for
    /// every `n` of `range` at once, each as [`Stack::add_spoke`] does, all in parallel.
    pub async fn add_spokes_at_once(&self, range: std::ops::Range<u8>) -> anyhow::Result<()> {
        let mut adds = tokio::task::JoinSet::new();
        for n in range {
            let client = self.landing_zone.clone();
            let writes = self.estate.landing_zone_spoke(
                &format!("lz{n}"),
                &format!("10.{n}.0.0/16"),
                &format!("10.{n}.0.0/24"),
                "hub",
            );
            adds.spawn(async move {
                for (path, body) in writes {
                    client.put(&path, None, &body).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(added) = adds.join_next().await {
            added??;
        }
        Ok(())
    }

    /// The secrets of this stack: the host's keys, the identity endpoint's header, and the
    /// prefix every bearer token minted here starts with (a JWT header).
    pub fn secrets(&self) -> Vec<String> {
        let keys = self.host.keys();
        vec![
            keys.function.clone(),
            keys.event_grid.clone(),
            keys.master.clone(),
            self.sim.identity_header(),
            // The JOSE header of the simulator's tokens, base64url: the start of every token
            // minted here.
            hubspoke_sim::identity::TOKEN_PREFIX.to_string(),
        ]
    }

    /// Checks that no secret appears in a log line of this process (the host, the simulator,
    /// and the handler's output, which the host forwards) nor in an outcome read so far.
    pub fn check_no_secrets(&self) -> anyhow::Result<()> {
        check_no_secrets(&self.secrets(), &self.outcomes_text()?)
    }

    fn outcomes_text(&self) -> anyhow::Result<String> {
        Ok(self
            .outcomes
            .lock()
            .map_err(|_| anyhow::anyhow!("outcomes poisoned"))?
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Stops the host (letting invocations finish) and the simulator, then checks that no secret
    /// was logged or written to an outcome ([`Stack::check_no_secrets`]), the handler's last
    /// lines included.
    pub async fn stop(self) -> anyhow::Result<()> {
        // Outcomes still in the queue are read (and checked) too.
        let _ = self.outcomes().await;
        let secrets = self.secrets();
        let outcomes = self.outcomes_text()?;
        for other in self.other_hosts {
            other.shutdown(Duration::from_secs(30)).await;
        }
        self.host.shutdown(Duration::from_secs(30)).await;
        self.sim.shutdown().await;
        if let Some(azurite) = self.azurite {
            azurite.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        check_no_secrets(&secrets, &outcomes)
    }
}

fn check_no_secrets(secrets: &[String], outcomes: &str) -> anyhow::Result<()> {
    let logs = captured_logs();
    for secret in secrets {
        if let Some(line) = logs.lines().find(|line| line.contains(secret.as_str())) {
            bail!("a secret appears in a log line: {line}");
        }
        if outcomes.contains(secret.as_str()) {
            bail!("a secret appears in an outcome");
        }
    }
    if logs.lines().count() < 10 {
        bail!("too few log lines captured to prove anything: {logs}");
    }
    Ok(())
}

/// A POST without a body, as `curl -X POST` sends it.
async fn post(url: &str, key: Option<&str>) -> anyhow::Result<(u16, Value)> {
    let client = reqwest::Client::new();
    let mut request = client.post(url).header("content-length", "0");
    if let Some(key) = key {
        request = request.header("x-functions-key", key);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target.canonicalize()?, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    if target.is_dir() {
        Err(std::io::Error::other("the end-to-end bed runs on Unix"))
    } else {
        std::fs::copy(target, link).map(|_| ())
    }
}

/// A VNet as read, made fit to be sent back the way a landing zone renumbers one: without
/// what ARM computes, and without its peerings (they are written through their own endpoint; a
/// VNet PUT leaves them as they are).
pub fn strip_read_only(vnet: &mut Value) {
    if let Some(object) = vnet.as_object_mut() {
        object.remove("etag");
    }
    if let Some(properties) = vnet["properties"].as_object_mut() {
        properties.remove("provisioningState");
        properties.remove("resourceGuid");
        properties.remove("virtualNetworkPeerings");
    }
}

/// One line per outcome, for failure messages.
pub fn summary(outcomes: &[Value]) -> String {
    outcomes
        .iter()
        .map(|o| {
            format!(
                "{} {} {}",
                o["function"].as_str().unwrap_or("?"),
                o["status"].as_str().unwrap_or("?"),
                o["reason"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks `outcome` against `docs/outcome.schema.json`.
pub fn check_outcome(outcome: &Value) -> anyhow::Result<()> {
    static SCHEMA: OnceLock<Result<(boon::Schemas, boon::SchemaIndex), String>> = OnceLock::new();
    let compiled = SCHEMA.get_or_init(|| {
        let path = repository().join("docs/outcome.schema.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let schema: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let url = "https://hubspoke.test/outcome.schema.json";
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource(url, schema)
            .map_err(|e| e.to_string())?;
        let index = compiler
            .compile(url, &mut schemas)
            .map_err(|e| e.to_string())?;
        Ok((schemas, index))
    });
    let (schemas, index) = compiled
        .as_ref()
        .map_err(|e| anyhow::anyhow!("docs/outcome.schema.json: {e}"))?;
    schemas.validate(outcome, *index).map_err(|error| {
        anyhow::anyhow!(
            "the outcome does not match docs/outcome.schema.json: {error:#}\n{outcome:#}"
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_a_log_line_or_an_outcome_is_found() {
        capture_logs();
        for n in 0..12 {
            tracing::info!(n, "an ordinary line");
        }
        let secret = "s3cr3t-key-for-the-check".to_string();
        assert!(check_no_secrets(std::slice::from_ref(&secret), "{}").is_ok());
        assert!(check_no_secrets(
            std::slice::from_ref(&secret),
            &format!("{{\"key\":\"{secret}\"}}")
        )
        .is_err());
        tracing::debug!(url = %format!("https://x/?code={secret}"), "a careless line");
        let error = check_no_secrets(&[secret], "{}").unwrap_err();
        assert!(error.to_string().contains("careless"), "{error}");
    }
}
