//! The command line: every flag reaches the configuration, and the ready output is what a shell
//! or a test reads; `--seed FILE` loads an estate.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::Duration;

use clap::Parser;
use common::*;
use hubspoke_sim::cli::{ready_lines, SimArgs};
use hubspoke_sim::{EventSchema, FaultAction, LockConflict};
use serde_json::json;

#[derive(Debug, Parser)]
struct Wrapper {
    #[command(flatten)]
    args: SimArgs,
}

#[test]
fn flags_become_the_configuration() {
    let args = Wrapper::try_parse_from([
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--events-to",
        "http://127.0.0.1:9/events",
        "--event-schema",
        "cloudevents",
        "--event-knobs",
        "duplicate=0.5,reorder=0.1",
        "--latency",
        "lro=2s,gateway=1m",
        "--faults",
        "PUT *=429@0.5",
        "--page-size",
        "7",
        "--time-factor",
        "10",
        "--lock-conflict",
        "alternate",
        "--route-limit",
        "1000",
        "--ignore-if-match",
    ])
    .unwrap()
    .args;
    let config = args.to_config().unwrap();
    assert!(config.tls);
    assert_eq!(config.event_schema, EventSchema::Cloudevents);
    assert_eq!(config.event_knobs.duplicate, 0.5);
    assert_eq!(
        config.event_knobs.first_retry,
        Duration::from_secs(10),
        "Event Grid's real first retry on the command line"
    );
    assert_eq!(config.latency.lro, Duration::from_secs(2));
    assert_eq!(config.latency.gateway, Duration::from_secs(60));
    assert_eq!(
        config.latency.delete,
        Duration::from_millis(500),
        "unnamed keys keep the command-line default"
    );
    assert_eq!(config.faults.rules[0].action, FaultAction::Status(429));
    assert_eq!(config.page_size, 7);
    assert_eq!(config.throttle.time_factor, 10.0);
    assert_eq!(config.strictness.lock_conflict, LockConflict::Alternate);
    assert_eq!(config.strictness.route_limit, 1000);
    assert!(!config.strictness.honour_if_match);
    assert!(config.strictness.use_remote_gateways_needs_remote_peering);

    let bad = Wrapper::try_parse_from(["sim", "--faults", "PUT *=banana"])
        .unwrap()
        .args;
    assert!(bad.to_config().is_err());
}

#[test]
fn ready_output_is_key_value_lines_then_ready() {
    let text = ready_lines(&[
        ("HUBSPOKE_ARM_ENDPOINT".into(), "https://127.0.0.1:1".into()),
        ("IDENTITY_HEADER".into(), "x".into()),
    ]);
    assert_eq!(
        text,
        "HUBSPOKE_ARM_ENDPOINT=https://127.0.0.1:1\nIDENTITY_HEADER=x\nready\n"
    );
}

#[tokio::test]
async fn a_seed_file_is_loaded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("estate.json");
    std::fs::write(
        &seed,
        json!({"virtualNetworks": [{"id": vnet_id("rg", "hub"), "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}]})
            .to_string(),
    )
    .unwrap();
    let args = Wrapper::try_parse_from(["sim", "--seed", seed.to_str().unwrap(), "--no-throttle"])
        .unwrap()
        .args;
    let (sim, client) = start_sim(args.to_config().unwrap()).await;
    let hub = client.get(&vnet_id("rg", "hub")).await;
    assert_eq!(hub.status, 200);
    assert_eq!(hub.body["properties"]["provisioningState"], "Succeeded");
    sim.shutdown().await;

    let missing = Wrapper::try_parse_from(["sim", "--seed", "/nonexistent/estate.json"])
        .unwrap()
        .args;
    assert!(hubspoke_sim::start(missing.to_config().unwrap())
        .await
        .is_err());
}

#[test]
fn a_reachable_address_is_refused_unless_asked_for_explicitly() {
    let remote = Wrapper::try_parse_from(["sim", "--listen", "0.0.0.0:0"]).unwrap();
    let error = remote.args.to_config().unwrap_err().to_string();
    assert!(
        error.contains("0.0.0.0:0") && error.contains("--allow-remote"),
        "{error}"
    );
    let allowed =
        Wrapper::try_parse_from(["sim", "--listen", "0.0.0.0:0", "--allow-remote"]).unwrap();
    assert!(allowed.args.to_config().is_ok());
    let loopback = Wrapper::try_parse_from(["sim", "--listen", "[::1]:0"]).unwrap();
    assert!(loopback.args.to_config().is_ok());
}
