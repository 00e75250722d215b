//! The Functions host of a [`crate::Stack`]: in this process (`hubspoke-host`), or as a
//! `hubspoke host` process of its own, which a test can kill — the host and its handler, the
//! whole process group, as an instance dies — and start again on the same address.
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use hubspoke_host::{HostConfig, HostHandle, Keys};

/// A running host.
pub enum Host {
    InProcess(HostHandle),
    Process(HostProcess),
}

/// `hubspoke host` as a child process, in a process group of its own.
pub struct HostProcess {
    child: Option<Child>,
    launch: Launch,
}

/// How to start the host process again.
#[derive(Clone)]
struct Launch {
    binary: PathBuf,
    script_root: PathBuf,
    listen: SocketAddr,
    settings: Vec<(String, String)>,
    keys: Keys,
}

impl Host {
    pub(crate) async fn start(
        in_process: bool,
        binary: &Path,
        config: HostConfig,
    ) -> anyhow::Result<Host> {
        if in_process {
            return Ok(Host::InProcess(hubspoke_host::start(config).await?));
        }
        let launch = Launch {
            binary: binary.to_path_buf(),
            script_root: config.script_root,
            listen: config.listen,
            settings: config.settings,
            keys: config.keys,
        };
        let child = spawn(&launch).await?;
        Ok(Host::Process(HostProcess {
            child: Some(child),
            launch,
        }))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match self {
            Host::InProcess(handle) => handle.url().to_string(),
            Host::Process(process) => format!("http://{}", process.launch.listen),
        }
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        match self {
            Host::InProcess(handle) => handle.keys(),
            Host::Process(process) => &process.launch.keys,
        }
    }

    /// The handler's process id, while one runs.
    pub fn handler_pid(&self) -> Option<u32> {
        match self {
            Host::InProcess(handle) => handle.handler_pid(),
            Host::Process(process) => {
                let host = process.child.as_ref()?.id();
                let children =
                    std::fs::read_to_string(format!("/proc/{host}/task/{host}/children")).ok()?;
                children.split_whitespace().next()?.parse().ok()
            }
        }
    }

    /// How many times the handler became ready (in-process hosts only; 0 otherwise).
    pub fn handler_starts(&self) -> u64 {
        match self {
            Host::InProcess(handle) => handle.handler_starts(),
            Host::Process(_) => 0,
        }
    }

    /// Invocations the host started, by function, and those running now (an in-process host
    /// only: a host process keeps its counts to itself).
    pub fn invocations(&self) -> anyhow::Result<(std::collections::BTreeMap<String, u64>, usize)> {
        match self {
            Host::InProcess(handle) => Ok((handle.invocations(), handle.invocations_in_flight())),
            Host::Process(_) => bail!("a host process keeps its invocation counts to itself"),
        }
    }

    /// Kills the host process and its handler at once (SIGKILL to the process group), as an
    /// instance dies.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Host::Process(process) = self else {
            bail!("the host runs in this process: start the stack with host_process");
        };
        let Some(mut child) = process.child.take() else {
            bail!("the host is not running");
        };
        signal_group(child.id(), libc::SIGKILL)?;
        let _ = child.wait();
        Ok(())
    }

    /// Starts the host process again, on the same address with the same keys.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let Host::Process(process) = self else {
            bail!("the host runs in this process");
        };
        if process.child.is_some() {
            bail!("the host is running");
        }
        process.child = Some(spawn(&process.launch).await?);
        Ok(())
    }

    /// Stops the host: triggers first, invocations in flight finish, then the handler.
    pub async fn shutdown(self, grace: Duration) {
        match self {
            Host::InProcess(handle) => handle.shutdown(grace).await,
            Host::Process(mut process) => {
                if let Some(mut child) = process.child.take() {
                    let _ = signal(child.id(), libc::SIGTERM);
                    let waited = tokio::task::spawn_blocking(move || child.wait()).await;
                    drop(waited);
                }
            }
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: i32) -> anyhow::Result<()> {
    let pid = i32::try_from(pid).context("a process id")?;
    if pid <= 0 {
        bail!("refusing to signal process {pid}");
    }
    // SAFETY: kill(2) on a positive pid touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` to the process group `pgid` (the host started in a group of its own, with its
/// handler).
fn signal_group(pgid: u32, signal: i32) -> anyhow::Result<()> {
    let pgid = i32::try_from(pgid).context("a process group id")?;
    if pgid <= 1 {
        bail!("refusing to signal process group {pgid}");
    }
    // SAFETY: kill(2) on a negative pid (a process group) touches no memory of ours.
    if unsafe { libc::kill(-pgid, signal) } != 0 {
        bail!(
            "kill(-{pgid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Starts `hubspoke host` and waits for its `ready` line; its log (stderr) joins this process's
/// captured log, so that the checks for secrets read it too.
async fn spawn(launch: &Launch) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(&launch.binary);
    command
        .arg("host")
        .arg("--script-root")
        .arg(&launch.script_root)
        .arg("--listen")
        .arg(launch.listen.to_string())
        .env("HUBSPOKE_FUNCTION_KEY", &launch.keys.function)
        .env("HUBSPOKE_EVENTGRID_KEY", &launch.keys.event_grid)
        .env("HUBSPOKE_MASTER_KEY", &launch.keys.master)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, value) in &launch.settings {
        command.env(key, value);
    }
    let mut child = command.spawn().context("starting hubspoke host")?;
    let stderr = child.stderr.take().context("the host's stderr")?;
    // The host's last lines, kept to say why it stopped should it never become ready.
    let last_lines = Arc::new(Mutex::new(VecDeque::new()));
    let keep = Arc::clone(&last_lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            crate::logs::append(&line);
            if let Ok(mut last) = keep.lock() {
                if last.len() == 20 {
                    last.pop_front();
                }
                last.push_back(line);
            }
        }
    });
    let stdout = child.stdout.take().context("the host's stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "ready")
    })
    .await?;
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        // The reader may still hold lines the host wrote as it stopped.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last: Vec<String> = last_lines
            .lock()
            .map(|last| last.iter().cloned().collect())
            .unwrap_or_default();
        bail!(
            "hubspoke host ({}) stopped before it was ready; its last lines:\n{}\n(a binary built \
             without the developer's commands, as the packaged one, has no `host`: `cargo build -p \
             hubspoke` builds the developer's, or set HUBSPOKE_BIN)",
            launch.binary.display(),
            last.join("\n")
        );
    }
    Ok(child)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A `hubspoke` without the `host` command (the packaged build, which `scripts/test` builds
    /// into the same place) stops at once: the error says what it printed and how to get the
    /// developer's binary back.
    #[tokio::test]
    async fn a_binary_without_the_host_command_is_reported_with_its_words_and_the_fix() {
        let dir = std::env::temp_dir().join(format!("hubspoke-stack-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("hubspoke");
        std::fs::write(
            &binary,
            "#!/bin/sh\necho \"error: unrecognized subcommand 'host'\" >&2\nexit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = HostConfig {
            script_root: dir.clone(),
            listen: ([127, 0, 0, 1], 0).into(),
            settings: Vec::new(),
            keys: Keys::generate(),
            handler_fallback: None,
        };
        let error = Host::start(false, &binary, config)
            .await
            .err()
            .expect("the host cannot start");
        let text = format!("{error:#}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            text.contains("unrecognized subcommand 'host'"),
            "the host's own words: {text}"
        );
        assert!(
            text.contains("cargo build -p hubspoke"),
            "how to build the developer's binary: {text}"
        );
    }
}
