//! The custom handler process, as the Functions host runs it (its process lifecycle):
//! started with `FUNCTIONS_CUSTOMHANDLER_PORT` and its twins on a port chosen once, polled with
//! `GET /` every 25 ms until any HTTP answer (30 s of polling at most), its stdout logged as
//! information and its stderr as warnings or errors, and restarted on the same port when it
//! exits, fails to start in time, or an invocation runs past the function timeout (which kills
//! it, failing every invocation in flight).
//!
//! Restart budget: the real host counts these error events and, at 3 within 30 minutes, stops
//! itself; in Azure the platform then starts a new host. A stand-in that gave up would lose the
//! queue's work for good, so this one logs that moment as an error ("the real host would
//! restart itself now"), waits a second as a host restart would, and carries on.
//!
//! A handler that cannot run at all is another matter: restarting it forever would only hide
//! the cause. When the executable cannot be started (missing, not executable), or when it exits
//! [`ERROR_THRESHOLD`] times in a row before it is ever ready, the worker fails for good with
//! that reason: start-up returns it as an error, and a running host stops with it.
//!
//! Invocations that arrive while the handler is starting wait for it (bounded by the function
//! timeout), as the real host's invoker waits for its dispatcher.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

/// The host version sent in `X-Azure-Functions-HostVersion` and `User-Agent`: the version whose
/// behaviour this stand-in imitates.
pub const HOST_VERSION: &str = "4.1037.0";

/// Polling interval of the readiness check (`WorkerReadyCheckPollingIntervalMilliseconds`).
const READY_POLL: Duration = Duration::from_millis(25);
/// Budget of the readiness check (`HttpWorkerOptions.InitializationTimeout`).
const READY_BUDGET: Duration = Duration::from_secs(30);
/// The largest answer read from the handler, as the largest request the host takes: 100 MiB.
const MAX_ANSWER_BYTES: usize = 100 * 1024 * 1024;
/// Error events tolerated within [`ERROR_WINDOW`] before the real host restarts itself.
const ERROR_THRESHOLD: usize = 3;
const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How to start the handler.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The executable (resolved against the app root when that file exists, else on PATH).
    pub executable: PathBuf,
    /// Its arguments.
    pub arguments: Vec<String>,
    /// Its working directory.
    pub working_directory: PathBuf,
    /// The app root (`FUNCTIONS_APP_ROOT_PATH`).
    pub app_root: PathBuf,
    /// App settings added to the inherited environment.
    pub settings: Vec<(String, String)>,
}

/// The handler's state as invocations see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    /// Ready; the number counts starts, so a restart is visible.
    Ready(u64),
    Stopped,
    /// It cannot run; the reason is in [`Inner::failure`].
    Failed,
}

/// A supervised handler process. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    port: u16,
    http: reqwest::Client,
    state: watch::Sender<State>,
    restart: Notify,
    stop: watch::Sender<bool>,
    starts: Mutex<u64>,
    /// The process id of the handler while it runs.
    pid: Mutex<Option<u32>>,
    /// Why the handler cannot run, once the worker has given up.
    failure: Mutex<Option<String>>,
}

/// The answer of the handler to one invocation request.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: bytes::Bytes,
}

impl Worker {
    /// Starts supervising the handler on a free port; returns at once (see [`Worker::ready`]).
    pub fn start(launch: Launch) -> anyhow::Result<Worker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let (state, _) = watch::channel(State::Starting);
        let (stop, _) = watch::channel(false);
        let worker = Worker {
            inner: Arc::new(Inner {
                port,
                http,
                state,
                restart: Notify::new(),
                stop,
                starts: Mutex::new(0),
                pid: Mutex::new(None),
                failure: Mutex::new(None),
            }),
        };
        tokio::spawn(supervise(worker.clone(), launch));
        Ok(worker)
    }

    /// The handler's port.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The process id of the handler, while one runs (for tests that kill it).
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid.lock().ok().and_then(|pid| *pid)
    }

    /// How many times the handler became ready (1 after the first start).
    pub fn starts(&self) -> u64 {
        self.inner.starts.lock().map(|n| *n).unwrap_or(0)
    }

    /// Waits until the handler is ready, at most `limit`.
    pub async fn ready(&self, limit: Duration) -> bool {
        let mut state = self.inner.state.subscribe();
        tokio::time::timeout(limit, async {
            loop {
                match *state.borrow_and_update() {
                    State::Ready(_) => return true,
                    State::Stopped | State::Failed => return false,
                    State::Starting => {}
                }
                if state.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Why the handler cannot run, once the worker has given up on it.
    pub fn failure(&self) -> Option<String> {
        self.inner
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the worker gives up on the handler; the reason.
    pub async fn failed(&self) -> String {
        let mut state = self.inner.state.subscribe();
        loop {
            if *state.borrow_and_update() == State::Failed {
                return self.failure().unwrap_or_default();
            }
            if state.changed().await.is_err() {
                // The worker is gone without failing: wait for ever, as nothing will fail.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Kills the handler so that it restarts (after a function timeout).
    pub fn restart(&self) {
        self.inner.restart.notify_one();
    }

    /// Stops the handler for good: SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&self) {
        let _ = self.inner.stop.send_replace(true);
        let mut state = self.inner.state.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while *state.borrow_and_update() != State::Stopped {
                if state.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }

    /// Sends one invocation request: `POST /<function>` with the host's headers. Waits for the
    /// handler to be ready first (the caller bounds the wait with the function timeout). An
    /// error when it could not be sent or answered (connection refused or reset: the handler
    /// died). The body is sent with a `Content-Length`, not chunked.
    pub async fn post(
        &self,
        function: &str,
        invocation_id: &str,
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        if !self.ready(Duration::from_secs(24 * 3600)).await {
            return Err("the host is stopping".to_string());
        }
        let url = format!("http://127.0.0.1:{}/{function}", self.inner.port);
        let response = self
            .inner
            .http
            .post(url)
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .header("Content-Type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the invocation request failed: {}", chain(&e)))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the handler's answer failed: {}", chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "the handler's answer is larger than {MAX_ANSWER_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let body = bytes::Bytes::from(body);
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Starts, watches and restarts the handler until stopped.
async fn supervise(worker: Worker, launch: Launch) {
    let inner = &worker.inner;
    let mut stop = inner.stop.subscribe();
    let mut errors: VecDeque<Instant> = VecDeque::new();
    // Starts in a row that never became ready.
    let mut not_ready = 0;
    let worker_id = uuid::Uuid::new_v4().to_string();
    loop {
        if *stop.borrow() {
            break;
        }
        let _ = inner.state.send_replace(State::Starting);
        let mut child = match command(&launch, inner.port, &worker_id).spawn() {
            Ok(child) => child,
            Err(e) => {
                let executable = launch.executable.display();
                give_up(
                    inner,
                    format!("cannot start the custom handler {executable}: {e}"),
                );
                return;
            }
        };
        let pid = child.id();
        if let Ok(mut current) = inner.pid.lock() {
            *current = pid;
        }
        info!(pid, port = inner.port, "custom handler started");
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward(stdout, false));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward(stderr, true));
        }
        if wait_ready(inner, &mut child).await {
            not_ready = 0;
            if serve_until_exit(inner, &mut child, &mut stop).await == Exit::Stopped {
                break;
            }
        } else {
            let _ = child.kill().await;
            not_ready += 1;
            if not_ready >= ERROR_THRESHOLD {
                let executable = launch.executable.display();
                give_up(
                    inner,
                    format!(
                        "the custom handler {executable} exited or was not ready {not_ready} times in a row; its output is in the log above"
                    ),
                );
                return;
            }
        }
        if error_event(&mut errors).await {
            continue;
        }
    }
    let _ = inner.state.send_replace(State::Stopped);
    info!("custom handler stopped");
}

/// The handler's command line and environment, as the host starts it.
fn command(launch: &Launch, port: u16, worker_id: &str) -> Command {
    let mut command = Command::new(&launch.executable);
    command
        .args(&launch.arguments)
        .current_dir(&launch.working_directory)
        .envs(
            launch
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", worker_id)
        .env("FUNCTIONS_HTTPWORKER_ID", worker_id)
        .env("FUNCTIONS_APP_ROOT_PATH", &launch.app_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Polls `GET /` until the handler answers; false when it exits first or the budget runs out.
/// Only the sleeps count against the budget, as in the real host.
async fn wait_ready(inner: &Inner, child: &mut tokio::process::Child) -> bool {
    let mut waited = Duration::ZERO;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            warn!(%status, "the custom handler exited before it was ready");
            return false;
        }
        match inner
            .http
            .get(format!("http://127.0.0.1:{}/", inner.port))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(_) => return true,
            // Connection refused: not listening yet.
            Err(e) if e.is_connect() => {}
            // Anything else counts as ready (the real host's check does the same).
            Err(_) => return true,
        }
        if waited >= READY_BUDGET {
            error!("Initializing HttpWorker timed out.");
            return false;
        }
        tokio::time::sleep(READY_POLL).await;
        waited += READY_POLL;
    }
}

/// How a ready handler's run ended.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    /// It exited or was killed after a function timeout: start it again.
    Restart,
    /// The host is stopping: it was terminated.
    Stopped,
}

/// Marks the handler ready and waits until it exits, a function times out, or the host stops.
async fn serve_until_exit(
    inner: &Inner,
    child: &mut tokio::process::Child,
    stop: &mut watch::Receiver<bool>,
) -> Exit {
    let starts = {
        let mut starts = inner.starts.lock().unwrap_or_else(|e| e.into_inner());
        *starts += 1;
        *starts
    };
    info!(pid = child.id(), starts, "custom handler ready");
    let _ = inner.state.send_replace(State::Ready(starts));
    tokio::select! {
        status = child.wait() => {
            let _ = inner.state.send_replace(State::Starting);
            error!(?status, "the custom handler exited; restarting it");
            Exit::Restart
        }
        _ = inner.restart.notified() => {
            let _ = inner.state.send_replace(State::Starting);
            error!("a function timed out: the host kills and restarts the custom handler");
            let _ = child.kill().await;
            Exit::Restart
        }
        _ = stop.changed() => {
            terminate(child).await;
            Exit::Stopped
        }
    }
}

/// Gives up on a handler that cannot run: the reason is kept and the state says so.
fn give_up(inner: &Inner, reason: String) {
    error!("{reason}");
    *inner.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    let _ = inner.state.send_replace(State::Failed);
}

/// Records an error event; at the real host's threshold logs what the real host would do and
/// pauses as a host restart would. Returns whether to restart at once.
async fn error_event(errors: &mut VecDeque<Instant>) -> bool {
    let now = Instant::now();
    errors.push_back(now);
    while errors
        .front()
        .is_some_and(|first| now.duration_since(*first) > ERROR_WINDOW)
    {
        errors.pop_front();
    }
    if errors.len() >= ERROR_THRESHOLD {
        error!(
            "{ERROR_THRESHOLD} custom handler failures within 30 minutes: the real Functions host \
             would stop and be restarted by the platform now; this stand-in keeps restarting \
             the handler"
        );
        errors.clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
        return false;
    }
    true
}

/// SIGTERM, then SIGKILL after 10 s.
async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: sending a signal to our own child process by its id; no memory involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Handler output lines as host logs: stdout information; stderr warning when it says "warn",
/// else error (`UseStdErrorStreamForErrorsOnly`).
async fn forward(stream: impl tokio::io::AsyncRead + Unpin, stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !stderr {
            info!(target: "handler", "{line}");
        } else if line.to_ascii_lowercase().contains("warn") {
            warn!(target: "handler", "{line}");
        } else {
            error!(target: "handler", "{line}");
        }
    }
}
