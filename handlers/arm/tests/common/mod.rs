//! Test helpers shared by the ARM crate's integration tests: an in-process simulator over HTTPS
//! and an `ArmClient` configured from what it prints, so that every test runs the production
//! settings parser, the managed identity credential and TLS with the simulator's certificate.
//! Not a mock: all requests go over loopback to `hubspoke-sim`.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use hubspoke_arm::client::ArmClient;
use hubspoke_arm::credential::credential;
use hubspoke_arm::settings::{ArmSettings, RetryPolicy};
use hubspoke_sim::{SimConfig, SimHandle};
use serde_json::{json, Value};

/// The subscription the helpers' ids live in.
pub const SUB: &str = "00000000-0000-4000-8000-0000000000a1";

/// A retry policy with millisecond delays: retries are real, only fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        budget: Duration::from_secs(5),
    }
}

/// The settings a process would parse from the `KEY=value` lines `hubspoke sim` prints, with
/// `extra` settings on top and the retry policy made fast ([`fast_retry`]; `extra` may still set
/// `HUBSPOKE_ARM_MAX_ATTEMPTS` and `HUBSPOKE_ARM_RETRY_BUDGET_SECONDS`).
pub fn settings_for(sim: &SimHandle, extra: &[(&str, &str)]) -> ArmSettings {
    let mut env: Vec<(String, String)> = sim.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut settings = ArmSettings::from_settings(|name| {
        env.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap();
    // Fast delays always; attempts and budget from the settings when a test gives them.
    let fast = fast_retry();
    settings.retry.base_delay = fast.base_delay;
    settings.retry.max_delay = fast.max_delay;
    let given = |name: &str| extra.iter().any(|(key, _)| *key == name);
    if !given("HUBSPOKE_ARM_MAX_ATTEMPTS") {
        settings.retry.max_attempts = fast.max_attempts;
    }
    if !given("HUBSPOKE_ARM_RETRY_BUDGET_SECONDS") {
        settings.retry.budget = fast.budget;
    }
    settings.operation_timeout = Duration::from_secs(30);
    settings
}

/// A client for `sim` with `settings`, through the production credential.
pub fn client_for(settings: &ArmSettings) -> ArmClient {
    ArmClient::new(settings, credential(settings).unwrap()).unwrap()
}

/// Starts a simulator (always over HTTPS, whatever `config.tls` says) and a client for it with a
/// fast retry policy.
pub async fn sim_and_client(config: SimConfig) -> (SimHandle, ArmClient) {
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        ..config
    })
    .await
    .unwrap();
    let client = client_for(&settings_for(&sim, &[]));
    (sim, client)
}

pub fn vnet_id(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{name}")
}

pub fn table_id(rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/routeTables/{name}"
    )
}

/// A VNet body for a PUT.
pub fn vnet_body(prefixes: &[&str]) -> Value {
    json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": prefixes}}})
}

/// A snapshot of `count` VNets `vnet-0..` in resource group `rg`, for `SimHandle::load`.
pub fn vnets_snapshot(rg: &str, count: usize) -> Value {
    let vnets: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "id": vnet_id(rg, &format!("vnet-{i}")),
                "location": "westus",
                "properties": {"addressSpace": {"addressPrefixes": [format!("10.{i}.0.0/16")]}}
            })
        })
        .collect();
    json!({"virtualNetworks": vnets})
}

/// The simulator's request log as `(METHOD, path without query, status)`, `/_sim` excluded.
pub fn requests(sim: &SimHandle) -> Vec<(String, String, u16)> {
    sim.requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/_sim"))
        .map(|r| {
            let path = r.path.split('?').next().unwrap_or("").to_string();
            (r.method, path, r.status)
        })
        .collect()
}
