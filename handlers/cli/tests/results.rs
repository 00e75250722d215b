//! `hubspoke results` against a queue service (the simulator's, over HTTPS with its managed
//! identity, the settings it prints): by default the oldest 32 are shown and nothing in the queue
//! changes (a peek: Storage Queue Data Reader is enough); `--all` shows every outcome, each time,
//! and removes none; `--peek` shows the oldest.
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hubspoke_queue::{MessageEncoding, QueueService, StorageSettings};
use serde_json::json;
use support::{temp_dir, BIN};

fn outcome(n: usize) -> serde_json::Value {
    json!({
        "schema": "hubspoke.outcome/v1", "function": "DriftCheck", "invocation_id": format!("i-{n}"),
        "status": "queued", "trigger": {"kind": "timer", "timer": {"past_due": false}},
        "start_time": format!("2026-11-30T02:{:02}:{:02}.000Z", n / 60, n % 60),
        "end_time": format!("2026-11-30T02:{:02}:{:02}.000Z", n / 60, n % 60),
        "duration_ms": 1, "dry_run": false,
        "requests": {"reads": 0, "writes": 0, "retries": 0, "throttled": 0},
        "hubs": [], "errors": [], "work_items": []
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_show_every_outcome_each_time_and_remove_none() {
    let dir = temp_dir("results");
    let mut sim = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0", "--tls", "--queues"])
        .arg("--ca-cert-out")
        .arg(dir.join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hubspoke sim starts");
    let mut env: Vec<(String, String)> = Vec::new();
    for line in BufReader::new(sim.stdout.take().expect("stdout")).lines() {
        let line = line.expect("a line");
        if line == "ready" {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            env.push((key.to_string(), value.to_string()));
        }
    }
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let settings = StorageSettings::from_lookup("AzureWebJobsStorage", lookup).expect("settings");
    let queue = QueueService::connect(&settings)
        .expect("client")
        .queue("hubspoke-outcomes")
        .expect("queue");
    let outcomes: Vec<serde_json::Value> = (0..70).map(outcome).collect();
    queue
        .send_output(&serde_json::Value::Array(outcomes), MessageEncoding::Base64)
        .await
        .expect("sent");

    let results = |args: &[&str]| {
        let mut command = Command::new(BIN);
        command.arg("results").args(args);
        for (key, value) in &env {
            command.env(key, value);
        }
        let output = command.output().expect("hubspoke results runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // The default reads without retrieving: no message's dequeue count moves.
    let default = results(&["--output", "json"]);
    assert_eq!(default.lines().count(), 32, "the oldest 32:\n{default}");
    assert!(default
        .lines()
        .next()
        .is_some_and(|l| l.contains("\"i-0\"")));
    assert!(
        queue
            .peek(32)
            .await
            .expect("peek")
            .iter()
            .all(|message| message.dequeue_count == 0),
        "the default changed the queue"
    );
    for round in 0..2 {
        let lines = results(&["--all", "--output", "json"]);
        let ids: Vec<String> = lines
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("json");
                value["invocation_id"].as_str().expect("id").to_string()
            })
            .collect();
        assert_eq!(ids.len(), 70, "round {round}: every outcome, each time");
        assert_eq!(ids[0], "i-0", "oldest first");
    }
    let table = results(&["--peek", "5"]);
    assert_eq!(
        table.lines().count(),
        6,
        "a header and the oldest five:\n{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("DriftCheck")),
        "{table}"
    );
    assert_eq!(
        queue.peek(32).await.expect("peek").len(),
        32,
        "nothing was removed"
    );
    let _ = sim.kill();
    let _ = sim.wait();
}
