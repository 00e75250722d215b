//! Helpers shared by the binary's tests: temporary folders, running `hubspoke`, the article's
//! estate, and `hubspoke sim` as a child process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use hubspoke_core::synth::{Estate, Flags};

pub const BIN: &str = env!("CARGO_BIN_EXE_hubspoke");

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hubspoke-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("HUBSPOKE_HUBS");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("hubspoke runs")
}

pub fn article() -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for (n, name) in ["spoke1", "spoke2", "spoke3", "spoke4"].iter().enumerate() {
        let prefix = format!("10.{}.0.0/16", 2 * n + 1);
        let subnet = format!("10.{}.0.0/24", 2 * n + 1);
        estate.vnet(
            name,
            &[&prefix],
            &[
                ("default", &subnet),
                ("data", &format!("10.{}.1.0/24", 2 * n + 1)),
            ],
        );
        estate.peer(name, "hub", Flags::default(), "Initiated");
    }
    estate
}

/// `hubspoke sim` as a child process, killed when dropped.
pub struct Sim {
    pub child: Child,
    pub env: Vec<(String, String)>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_sim(seed: &std::path::Path, dir: &std::path::Path) -> Sim {
    start_sim_with_latency(seed, dir, "lro=50ms,delete=50ms,retry-after=0")
}

/// `hubspoke sim` over TLS, seeded, with the `--latency` spec given.
pub fn start_sim_with_latency(seed: &std::path::Path, dir: &std::path::Path, latency: &str) -> Sim {
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--latency",
            latency,
        ])
        .arg("--seed")
        .arg(seed)
        .arg("--ca-cert-out")
        .arg(dir.join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hubspoke sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut env = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if line == "ready" {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    assert!(
        env.iter().any(|(k, _)| k == "HUBSPOKE_ARM_ENDPOINT"),
        "{env:?}"
    );
    Sim { child, env }
}
