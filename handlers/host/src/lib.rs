//! A local stand-in for the Azure Functions host, for tests and the demo: it runs hubspoke's
//! custom handler from the same `host.json` and `function.json` files the real host runs in
//! Azure, and follows the real host's protocol and quirks (Microsoft Learn, "Azure Functions
//! custom handlers", and the host's own behaviour where the page is silent; each module says
//! which part it imitates).
//!
//! - [`config`]: host.json and function.json, app settings (`%NAME%`, `AzureFunctionsJobHost__…`).
//! - [`worker`]: the handler process: ports, readiness, restarts, console output.
//! - [`invocation`]: request payloads per trigger, answers, logs and output bindings.
//! - [`server`]: the Event Grid webhook and HTTP triggers behind keys, on 127.0.0.1.
//! - [`triggers`]: timers (NCRONTAB, [`schedule`]) and storage queue triggers (Azurite or Azure,
//!   through `hubspoke-queue`); a timer runs on one instance at a time, the holder of its blob
//!   lease ([`timer_lock`]), as the real host's singleton timer listener.
//! - [`Keys`] the host accepts, and the invocations [`InFlight`] that a stop waits for.
//! - [`cli`]: `hubspoke host`.
//!
//! Each host is one instance: it gives its handler `WEBSITE_INSTANCE_ID` (a new id, unless the
//! settings name one), as the platform does, so that several hosts on one storage account behave
//! as an app scaled out.
//!
//! It is not the Functions host: no scale controller, no other binding types, no Application
//! Insights, no durable timer schedule, no key management API. Use it where Azure is not.
pub mod cli;
pub mod config;
mod in_flight;
pub mod invocation;
mod keys;
pub mod schedule;
pub mod server;
pub mod timer_lock;
pub mod triggers;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hubspoke_queue::{QueueService, StorageSettings};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::{App, Function, OutputKind, Trigger};
pub use crate::in_flight::{InFlight, InFlightGuard};
use crate::invocation::Invoker;
pub use crate::keys::Keys;

/// Everything the host needs to start.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where `host.json` is (and `function-definitions/` or the function folders).
    pub script_root: PathBuf,
    /// Where to listen (loopback only; port 0 picks a free one).
    pub listen: SocketAddr,
    /// App settings on top of the process environment: read by the host and given to the
    /// handler's environment.
    pub settings: Vec<(String, String)>,
    /// The keys.
    pub keys: Keys,
    /// The handler to run when host.json's executable is neither a file under the script root
    /// nor a command on `PATH`, provided its file name is the one host.json gives: `hubspoke
    /// host` passes itself, so that it runs from a clone, where the binary is built under
    /// `target/`. The real host has no such fallback (in Azure the package puts the binary at
    /// the root).
    pub handler_fallback: Option<PathBuf>,
}

/// A running host.
pub struct HostHandle {
    url: String,
    keys: Keys,
    event_grid_function: Option<String>,
    worker: worker::Worker,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    in_flight: Arc<InFlight>,
    functions: Vec<String>,
    instance_id: String,
    invoker: Arc<Invoker>,
}

impl HostHandle {
    /// This instance's id (`WEBSITE_INSTANCE_ID` of its handler).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Invocations started so far, by function name.
    pub fn invocations(&self) -> BTreeMap<String, u64> {
        self.invoker
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Invocations running now.
    pub fn invocations_in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Waits until the host can no longer run its handler (it could not be started again);
    /// the reason. A host that runs well never returns from this.
    pub async fn failed(&self) -> String {
        self.worker.failed().await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Event Grid webhook URL of the Event Grid-triggered function, key included.
    pub fn event_grid_url(&self) -> Option<String> {
        self.event_grid_function.as_ref().map(|name| {
            format!(
                "{}/runtime/webhooks/eventgrid?functionName={name}&code={}",
                self.url, self.keys.event_grid
            )
        })
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The functions indexed.
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// The handler's process id, while one runs (tests kill it to prove nothing is lost).
    pub fn handler_pid(&self) -> Option<u32> {
        self.worker.pid()
    }

    /// How many times the handler became ready so far (restarts show here).
    pub fn handler_starts(&self) -> u64 {
        self.worker.starts()
    }

    /// Waits until the handler is ready again (after a restart), at most `limit`.
    pub async fn handler_ready(&self, limit: Duration) -> bool {
        self.worker.ready(limit).await
    }

    /// The `KEY=value` settings `hubspoke host` prints.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut out = vec![("HUBSPOKE_HOST_URL".to_string(), self.url.clone())];
        if let Some(url) = self.event_grid_url() {
            out.push(("HUBSPOKE_EVENTGRID_URL".to_string(), url));
        }
        out.push((
            "HUBSPOKE_FUNCTION_KEY".to_string(),
            self.keys.function.clone(),
        ));
        out.push((
            "HUBSPOKE_EVENTGRID_KEY".to_string(),
            self.keys.event_grid.clone(),
        ));
        out.push(("HUBSPOKE_MASTER_KEY".to_string(), self.keys.master.clone()));
        out
    }

    /// Stops the triggers, lets invocations in flight finish (up to `grace`), then stops the
    /// handler (SIGTERM, then SIGKILL after 10 s).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send_replace(true);
        if tokio::time::timeout(grace, self.in_flight.idle())
            .await
            .is_err()
        {
            error!("invocations still running after {grace:?}: stopping the handler anyway");
        }
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        self.worker.stop().await;
    }
}

/// Starts the host: reads the app, connects the storage its bindings name, starts the handler
/// and waits for it to be ready, then serves and starts the triggers.
pub async fn start(config: HostConfig) -> anyhow::Result<HostHandle> {
    if !config.listen.ip().is_loopback() {
        bail!(
            "the host listens on a loopback address only, not {}",
            config.listen
        );
    }
    // One instance: its id goes to the handler as the platform sets it.
    let mut config = config;
    let instance_id = settings_lookup(config.settings.clone())("WEBSITE_INSTANCE_ID")
        .filter(|id| !id.trim().is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    config
        .settings
        .push(("WEBSITE_INSTANCE_ID".to_string(), instance_id.clone()));
    let lookup = settings_lookup(config.settings.clone());
    let app = load_app(&config.script_root, &lookup)?;
    let queues = connect_storage(&app, &lookup)?;
    let timer_locks = timer_lock::TimerLocks::connect(&app, &lookup, &instance_id)?;
    let worker = start_handler(&app, &config)?;
    let watchers = queue_watchers(&app);
    let invoker = Arc::new(Invoker {
        worker: worker.clone(),
        queues: queues.clone(),
        encoding: app.host.queues.message_encoding,
        function_timeout: app.host.function_timeout,
        watchers: watchers.clone(),
        started: Default::default(),
    });
    // Start-up waits for the handler, within the readiness budget plus a margin.
    if !worker.ready(Duration::from_secs(35)).await {
        if let Some(reason) = worker.failure() {
            bail!("{reason}");
        }
        error!("the custom handler is not ready yet; invocations will wait for it");
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let url = server::base_url(address);
    let (stop, stop_receiver) = watch::channel(false);
    let in_flight = Arc::new(InFlight::default());
    let functions: Vec<Arc<Function>> = app.functions.iter().cloned().map(Arc::new).collect();
    let running = TriggerTasks {
        app: &app,
        queues: &queues,
        timer_locks: timer_locks.as_ref(),
        watchers: &watchers,
        invoker: &invoker,
        in_flight: &in_flight,
        stop: &stop_receiver,
    };
    let (manual, mut tasks) = running.start(&functions)?;
    let event_grid_function = functions
        .iter()
        .find(|f| matches!(f.trigger, Trigger::EventGrid { .. }))
        .map(|f| f.name.clone());
    let front = Arc::new(server::Front {
        functions: functions.clone(),
        invoker: invoker.clone(),
        keys: config.keys.clone(),
        route_prefix: app.host.route_prefix.clone(),
        in_flight: in_flight.clone(),
        manual,
        stopping: stop_receiver.clone(),
        base_url: url.clone(),
    });
    tasks.push(tokio::spawn(server::serve(listener, front, stop_receiver)));
    info!(%url, instance = %instance_id, functions = ?functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), "host started");
    Ok(HostHandle {
        url,
        keys: config.keys,
        event_grid_function,
        worker,
        stop,
        tasks,
        in_flight,
        functions: functions.iter().map(|f| f.name.clone()).collect(),
        instance_id,
        invoker,
    })
}

/// An app setting: the host's own settings first (the last one given wins), else the process
/// environment.
fn settings_lookup(settings: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        settings
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var(name).ok())
    }
}

/// The app under `script_root`, with its refused functions logged; an app with no function to
/// run is an error.
fn load_app(script_root: &Path, lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<App> {
    let root = std::fs::canonicalize(script_root)
        .with_context(|| format!("--script-root {}", script_root.display()))?;
    let app = config::load(&root, lookup)?;
    for (name, reason) in &app.refused {
        error!(function = %name, "the function is not indexed: {reason}");
    }
    if app.functions.is_empty() {
        bail!("no function to run in {}", root.display());
    }
    Ok(app)
}

/// Storage: every connection a queue binding names, connected once; a bad setting stops here.
fn connect_storage(
    app: &App,
    lookup: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<HashMap<String, QueueService>> {
    let mut queues = HashMap::new();
    for function in &app.functions {
        let mut connections: Vec<&str> = function
            .outputs
            .iter()
            .filter_map(|o| match &o.kind {
                OutputKind::Queue { connection, .. } => Some(connection.as_str()),
                _ => None,
            })
            .collect();
        if let Trigger::Queue { connection, .. } = &function.trigger {
            connections.push(connection);
        }
        for connection in connections {
            if queues.contains_key(connection) {
                continue;
            }
            let settings = StorageSettings::from_lookup(connection, lookup)?;
            let service = QueueService::connect(&settings)?;
            info!(connection, url = %service.url(), "storage connection");
            queues.insert(connection.to_string(), service);
        }
    }
    Ok(queues)
}

/// The handler's process, started from host.json's executable: a path under the app root when
/// there is such a file, else a command found on `PATH`, else the configured fallback of the
/// same name. None of them: an error that names what was looked for, not a restart loop.
fn start_handler(app: &App, config: &HostConfig) -> anyhow::Result<worker::Worker> {
    let executable = resolve_executable(
        &app.root,
        &app.host.executable,
        config.handler_fallback.as_deref(),
        std::env::var_os("PATH"),
    )?;
    worker::Worker::start(worker::Launch {
        executable,
        arguments: app.host.arguments.clone(),
        working_directory: app.host.working_directory.clone(),
        app_root: app.root.clone(),
        settings: config.settings.clone(),
    })
}

/// Where host.json's `defaultExecutablePath` is: a file under `root` (relative paths resolve
/// there, as in the real host), else a program on `path`, else `fallback` when its file name is
/// the one asked for.
fn resolve_executable(
    root: &Path,
    executable: &str,
    fallback: Option<&Path>,
    path: Option<std::ffi::OsString>,
) -> anyhow::Result<PathBuf> {
    let under_root = root.join(executable);
    if under_root.is_file() {
        return Ok(under_root);
    }
    let bare = Path::new(executable).components().count() == 1;
    if bare {
        if let Some(path) = &path {
            if let Some(found) = std::env::split_paths(path)
                .map(|dir| dir.join(executable))
                .find(|candidate| candidate.is_file())
            {
                return Ok(found);
            }
        }
    }
    if let Some(fallback) = fallback {
        if fallback.file_name() == Path::new(executable).file_name() && fallback.is_file() {
            info!(
                executable,
                running = %fallback.display(),
                "host.json's executable is neither in the script root nor on PATH: running this binary, which has its name"
            );
            return Ok(fallback.to_path_buf());
        }
    }
    bail!(
        "host.json's customHandler.description.defaultExecutablePath {executable:?} is neither a file under {} nor a program on PATH: build the app as `hubspoke package` lays it out, or put the handler on PATH",
        root.display()
    )
}

/// One wake-up per triggered queue, which a queue output of this host notifies so that the
/// queue's listener polls at once.
fn queue_watchers(app: &App) -> HashMap<String, Arc<Notify>> {
    let mut watchers: HashMap<String, Arc<Notify>> = HashMap::new();
    for function in &app.functions {
        if let Trigger::Queue { queue, .. } = &function.trigger {
            watchers.entry(queue.clone()).or_default();
        }
    }
    watchers
}

/// What the timer and queue trigger tasks share.
struct TriggerTasks<'a> {
    app: &'a App,
    queues: &'a HashMap<String, QueueService>,
    timer_locks: Option<&'a timer_lock::TimerLocks>,
    watchers: &'a HashMap<String, Arc<Notify>>,
    invoker: &'a Arc<Invoker>,
    in_flight: &'a Arc<InFlight>,
    stop: &'a watch::Receiver<bool>,
}

/// The timers' manual wake-ups (the admin route fires a timer through them), by function name.
type ManualTriggers = HashMap<String, Arc<Notify>>;

impl TriggerTasks<'_> {
    /// Starts a task per timer and per queue trigger of `functions`; the other triggers are
    /// served by the front door.
    fn start(
        &self,
        functions: &[Arc<Function>],
    ) -> anyhow::Result<(ManualTriggers, Vec<JoinHandle<()>>)> {
        let mut manual = HashMap::new();
        let mut tasks = Vec::new();
        for function in functions {
            match &function.trigger {
                Trigger::Timer {
                    schedule,
                    run_on_startup,
                    ..
                } => {
                    let cron = schedule::parse_schedule(schedule).map_err(anyhow::Error::msg)?;
                    let notify = Arc::new(Notify::new());
                    manual.insert(function.name.clone(), notify.clone());
                    tasks.push(tokio::spawn(triggers::run_timer(
                        function.clone(),
                        cron,
                        *run_on_startup,
                        self.invoker.clone(),
                        self.in_flight.clone(),
                        self.stop.clone(),
                        notify,
                        self.timer_locks.map(|locks| locks.lock(&function.name)),
                    )));
                }
                Trigger::Queue {
                    queue, connection, ..
                } => tasks.push(self.start_queue(function, queue, connection)?),
                _ => {}
            }
        }
        Ok((manual, tasks))
    }

    /// The listener of `function`'s queue, with its poison queue.
    fn start_queue(
        &self,
        function: &Arc<Function>,
        queue: &str,
        connection: &str,
    ) -> anyhow::Result<JoinHandle<()>> {
        let service = self
            .queues
            .get(connection)
            .context("a queue trigger without its connection")?;
        let poison = match triggers::poison_queue_name(queue) {
            Some(name) => Some(service.queue(&name)?),
            None => None,
        };
        let listener = Arc::new(triggers::QueueListener {
            function: function.clone(),
            queue: service.queue(queue)?,
            poison,
            options: self.app.host.queues.clone(),
            invoker: self.invoker.clone(),
            in_flight: self.in_flight.clone(),
            wake: self.watchers.get(queue).cloned().unwrap_or_default(),
        });
        Ok(tokio::spawn(triggers::run_queue(
            listener,
            self.stop.clone(),
        )))
    }
}
