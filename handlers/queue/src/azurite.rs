//! Starts Azurite, the official Azure Storage emulator, for tests and the demo: its blob and queue
//! services (`azurite`, which starts its table service too, unused), in memory, over HTTPS with a certificate generated here for
//! `127.0.0.1` and `localhost`, with `--oauth basic` so that clients authenticate with Entra
//! bearer tokens exactly as in Azure (the production credential path, through the simulator's
//! managed identity endpoint).
//!
//! Azurite is looked for in one place only: the repository's `tests/node_modules`, where
//! `scripts/test` installs the version pinned in `tests/package-lock.json` (`npm ci --prefix
//! tests`). A global or other install is never used, so every run uses the pinned version. When
//! it is missing, [`Azurite::start`] answers [`AzuriteError::NotInstalled`], a distinct result:
//! the demo then falls back to the simulator's queues, and the tests that need it fail, naming
//! the install step.
//!
//! What `--oauth basic` checks (Azurite 3.37 `QueueTokenAuthenticator`, and the blob service's
//! `BlobTokenAuthenticator` likewise): HTTPS; a JWT whose
//! `iat`, `nbf` and `exp` are present, with `nbf` ≤ now ≤ `exp`; `iss` starting with
//! `https://sts.windows.net/` (or another Azure cloud's STS); `aud` equal to
//! `https://storage.azure.com` (with or without a trailing slash), the storage app id, or the
//! account's own service URL. The signature is not verified. The simulator's tokens (`iss
//! https://sts.windows.net/<tenant>/`, `aud` = the resource asked for) pass.
//!
//! Readiness is Azurite's own lines "Azurite Blob service is successfully listening at …" and the
//! same for the queue and table services, read from its output, not a sleep. The process is killed when the [`Azurite`] value is dropped.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The storage account Azurite serves by default.
pub const ACCOUNT: &str = "devstoreaccount1";

/// Why Azurite could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzuriteError {
    /// Azurite (or Node.js) is not installed where it is looked for. Nothing was started.
    #[error(
        "Azurite is not installed: {reason} (install it with `npm ci --prefix tests`, as \
         scripts/test does)"
    )]
    NotInstalled {
        /// What is missing.
        reason: String,
    },
    /// It is installed but did not start; its output is included.
    #[error("Azurite did not start: {0}")]
    Failed(String),
}

/// A running Azurite (blob and queue services). Dropping it stops the process and removes its
/// files.
pub struct Azurite {
    child: Child,
    port: u16,
    blob_port: u16,
    cert_pem: String,
    cert_path: PathBuf,
    dir: PathBuf,
    output: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Azurite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azurite")
            .field("queue_service_url", &self.queue_service_url())
            .field("blob_service_url", &self.blob_service_url())
            .finish_non_exhaustive()
    }
}

/// The repository's `tests` folder, as this crate was built from it.
pub fn repository_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("tests")
}

/// Where `azurite` must be installed (`tests/node_modules/.bin/azurite`).
pub fn installed_executable(tests_dir: &Path) -> PathBuf {
    tests_dir.join("node_modules").join(".bin").join("azurite")
}

/// The services whose "successfully listening" line means Azurite is ready (it starts them in
/// this order; the table service, last, is unused).
const READY_LINES: [&str; 3] = [
    "Azurite Blob service is successfully listening",
    "Azurite Queue service is successfully listening",
    "Azurite Table service is successfully listening",
];

impl Azurite {
    /// Starts Azurite installed under the repository's `tests/node_modules`.
    pub async fn start() -> Result<Azurite, AzuriteError> {
        Azurite::start_from(&repository_tests_dir()).await
    }

    /// Starts Azurite installed under `tests_dir/node_modules`. A port taken by someone else
    /// between choosing and binding it is retried with another.
    pub async fn start_from(tests_dir: &Path) -> Result<Azurite, AzuriteError> {
        let executable = installed_executable(tests_dir);
        if !executable.exists() {
            return Err(AzuriteError::NotInstalled {
                reason: format!("{} does not exist", executable.display()),
            });
        }
        let mut last_error = String::new();
        for _ in 0..3 {
            match Azurite::start_once(&executable).await {
                Ok(azurite) => return Ok(azurite),
                Err(AzuriteError::Failed(text)) if text.contains("EADDRINUSE") => {
                    last_error = text;
                }
                Err(other) => return Err(other),
            }
        }
        Err(AzuriteError::Failed(last_error))
    }

    async fn start_once(executable: &Path) -> Result<Azurite, AzuriteError> {
        let dir = std::env::temp_dir().join(format!(
            "hubspoke-azurite-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| AzuriteError::Failed(format!("creating {}: {e}", dir.display())))?;
        let cleanup = |error: AzuriteError| {
            let _ = std::fs::remove_dir_all(&dir);
            error
        };
        let (cert_pem, key_pem) = generate_certificate().map_err(cleanup)?;
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        for (path, text) in [(&cert_path, &cert_pem), (&key_path, &key_pem)] {
            std::fs::write(path, text).map_err(|e| {
                cleanup(AzuriteError::Failed(format!(
                    "writing {}: {e}",
                    path.display()
                )))
            })?;
        }
        let port = free_port().map_err(cleanup)?;
        let blob_port = free_port().map_err(cleanup)?;
        let table_port = free_port().map_err(cleanup)?;
        let mut command = Command::new(executable);
        command
            .arg("--blobHost")
            .arg("127.0.0.1")
            .arg("--blobPort")
            .arg(blob_port.to_string())
            .arg("--queueHost")
            .arg("127.0.0.1")
            .arg("--queuePort")
            .arg(port.to_string())
            .arg("--tableHost")
            .arg("127.0.0.1")
            .arg("--tablePort")
            .arg(table_port.to_string())
            .arg("--oauth")
            .arg("basic")
            .arg("--cert")
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            // In memory; `--location` may not be combined with it, so the working directory
            // (the temporary one) takes whatever Azurite still writes.
            .arg("--inMemoryPersistence")
            // Its default is half the machine's memory; tests keep a few small messages.
            .arg("--extentMemoryLimit")
            .arg("256")
            // No data leaves the machine (and the network would refuse it anyway).
            .arg("--disableTelemetry")
            // Without the access log Azurite prints only its start-up lines.
            .arg("--silent")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(cleanup(AzuriteError::NotInstalled {
                    reason: format!(
                        "{} could not be run (is Node.js on PATH?): {e}",
                        executable.display()
                    ),
                }))
            }
            Err(e) => {
                return Err(cleanup(AzuriteError::Failed(format!(
                    "running {}: {e}",
                    executable.display()
                ))))
            }
        };
        let output = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(drain(stdout, output.clone(), Some(ready_tx)));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(drain(stderr, output.clone(), None));
        }
        let outcome = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::select! {
                ready = ready_rx.recv() => ready.is_some(),
                _ = child.wait() => false,
            }
        })
        .await;
        let text = || {
            output
                .lock()
                .map(|lines| lines.join("\n"))
                .unwrap_or_default()
        };
        match outcome {
            Ok(true) => Ok(Azurite {
                child,
                port,
                blob_port,
                cert_pem,
                cert_path,
                dir,
                output,
            }),
            Ok(false) => {
                // Let the readers catch the last lines of a process that exited.
                let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                Err(cleanup(AzuriteError::Failed(format!(
                    "it exited before listening; its output:\n{}",
                    text()
                ))))
            }
            Err(_) => {
                let _ = child.start_kill();
                Err(cleanup(AzuriteError::Failed(format!(
                    "it did not listen within 60 s; its output:\n{}",
                    text()
                ))))
            }
        }
    }

    /// The queue service URL: `https://127.0.0.1:PORT/devstoreaccount1`.
    pub fn queue_service_url(&self) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The blob service URL: `https://127.0.0.1:PORT/devstoreaccount1`.
    pub fn blob_service_url(&self) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}", self.blob_port)
    }

    /// The PEM of its certificate, to trust (append it to the `HUBSPOKE_CA_CERT` bundle).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Where its certificate is written (PEM).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// What Azurite printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .map(|lines| lines.join("\n"))
            .unwrap_or_default()
    }

    /// Writes a PEM bundle of Azurite's certificate and `others` (e.g. the simulator's) to
    /// `path`, for `HUBSPOKE_CA_CERT`.
    pub fn write_ca_bundle(&self, path: &Path, others: &[&str]) -> std::io::Result<()> {
        let mut bundle = String::new();
        for pem in others.iter().copied().chain([self.cert_pem.as_str()]) {
            bundle.push_str(pem.trim_end());
            bundle.push('\n');
        }
        std::fs::write(path, bundle)
    }

    /// Stops Azurite and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn drain(
    stream: impl tokio::io::AsyncRead + Unpin,
    output: Arc<Mutex<Vec<String>>>,
    ready: Option<tokio::sync::mpsc::Sender<()>>,
) {
    let mut lines = BufReader::new(stream).lines();
    let mut listening = [false; READY_LINES.len()];
    while let Ok(Some(line)) = lines.next_line().await {
        for (seen, expected) in listening.iter_mut().zip(READY_LINES) {
            *seen |= line.contains(expected);
        }
        if listening.iter().all(|seen| *seen) {
            if let Some(ready) = &ready {
                let _ = ready.try_send(());
            }
        }
        if let Ok(mut all) = output.lock() {
            // Bounded: only start-up and error lines are expected (--silent).
            if all.len() < 1000 {
                all.push(line);
            }
        }
    }
}

/// A self-signed certificate and its key (PEM) for `127.0.0.1` and `localhost`.
fn generate_certificate() -> Result<(String, String), AzuriteError> {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| AzuriteError::Failed(format!("generating the certificate: {e}")))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

fn free_port() -> Result<u16, AzuriteError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| AzuriteError::Failed(format!("finding a free port: {e}")))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| AzuriteError::Failed(format!("finding a free port: {e}")))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 32)
}
