//! `hubspoke host --script-root .` as the README documents it, from a clone: `host.json` names
//! `hubspoke`, which is neither at the repository's root nor on PATH there, so the host runs
//! itself as the handler. And a handler that cannot be started at all stops the host with an
//! error that names it, instead of a restart loop.
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used)]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{temp_dir, BIN};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `hubspoke sim` with its queue service: the storage the app's queue bindings need.
fn sim_with_queues(dir: &Path) -> (std::process::Child, Vec<(String, String)>) {
    let mut child = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0", "--tls", "--queues"])
        .arg("--ca-cert-out")
        .arg(dir.join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut env = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            env.push((key.to_string(), value.to_string()));
        }
    }
    (child, env)
}

#[test]
fn the_documented_host_command_runs_from_a_clone() {
    let dir = temp_dir("host-clone");
    let (mut sim, env) = sim_with_queues(&dir);
    assert!(
        !repository().join("hubspoke").exists(),
        "the test needs a clone's layout: no hubspoke binary at the root"
    );
    let mut host = Command::new(BIN)
        .args(["host", "--script-root", "."])
        .current_dir(repository())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(
            "HUBSPOKE_HUBS",
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/virtualNetworks/Hub",
        )
        .env("HUBSPOKE_DRIFT_SCHEDULE", "0 0 0 1 1 *")
        .env("HUBSPOKE_DRY_RUN", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(host.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let ready = line == "ready";
        lines.push(line);
        if ready {
            break;
        }
    }
    let url = lines
        .iter()
        .find_map(|line| line.strip_prefix("HUBSPOKE_HOST_URL="))
        .map(str::to_string);
    // SIGTERM, as a service manager stops it: the host stops its handler too.
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let _ = host.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut host.stderr.take().unwrap(), &mut log).unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(lines.last().map(String::as_str), Some("ready"), "{log}");
    assert!(url.is_some(), "{lines:?}");
    assert!(log.contains("running this binary"), "{log}");
}

#[test]
fn a_handler_that_cannot_be_started_stops_the_host_with_its_name() {
    let dir = temp_dir("host-missing-handler");
    let (mut sim, env) = sim_with_queues(&dir);
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("function-definitions")).unwrap();
    let host_json = std::fs::read_to_string(repository().join("host.json"))
        .unwrap()
        .replace("\"hubspoke\"", "\"hubspoke-missing\"");
    std::fs::write(app.join("host.json"), host_json).unwrap();
    copy_dir(
        &repository().join("function-definitions"),
        &app.join("function-definitions"),
    );
    let mut host = Command::new(BIN)
        .args(["host", "--script-root"])
        .arg(&app)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HUBSPOKE_DRIFT_SCHEDULE", "0 0 0 1 1 *")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It must end by itself rather than restart the handler for ever; a generous bound only
    // keeps a regression from hanging the test run.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = host.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = host.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = host.wait_with_output().unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let status = status.unwrap_or_else(|| panic!("the host kept running: {stderr}"));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("hubspoke-missing"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ready"),
        "it never claims to be ready"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
