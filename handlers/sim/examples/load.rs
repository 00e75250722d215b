//! Load figure of the simulator: requests per second for `GET` of a hub VNet with 100 peerings
//! (each answer about 100 KB of JSON), over loopback keep-alive connections, throttling off.
//!
//! `cargo run --release -p hubspoke-sim --example load [-- CONNECTIONS SECONDS]`
//! (defaults 8 connections, 5 seconds; bounded to 60 seconds and 1,000,000 requests).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubspoke_sim::{SimConfig, ThrottleSpec};
use serde_json::json;

const SUB: &str = "00000000-0000-0000-0000-00000000beef";

fn vnet_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/{name}"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let connections: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(8)
        .clamp(1, 256);
    let seconds: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5)
        .clamp(1, 60);
    const MAX_REQUESTS: u64 = 1_000_000;

    let spokes: Vec<_> = (0..100)
        .map(|i| {
            json!({"id": vnet_id(&format!("spoke{i}")), "location": "westus", "properties": {
                "addressSpace": {"addressPrefixes": [format!("10.{}.{}.0/24", 1 + i / 250, i % 250)]},
                "virtualNetworkPeerings": [{"name": "to-hub", "properties": {"remoteVirtualNetwork": {"id": vnet_id("hub")}, "useRemoteGateways": false}}]
            }})
        })
        .collect();
    let hub_peerings: Vec<_> = (0..100)
        .map(|i| json!({"name": format!("hub-to-spoke{i}"), "properties": {"remoteVirtualNetwork": {"id": vnet_id(&format!("spoke{i}"))}, "allowGatewayTransit": true, "allowForwardedTraffic": true}}))
        .collect();
    let mut vnets = vec![
        json!({"id": vnet_id("hub"), "location": "westus", "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}}],
            "virtualNetworkPeerings": hub_peerings
        }}),
    ];
    vnets.extend(spokes);
    let sim = hubspoke_sim::start(SimConfig {
        seed: Some(hubspoke_sim::Seed::Value(json!({"virtualNetworks": vnets}))),
        throttle: ThrottleSpec {
            enabled: false,
            ..ThrottleSpec::default()
        },
        ..SimConfig::default()
    })
    .await?;
    let url = format!(
        "{}{}?api-version=2026-01-01",
        sim.arm_endpoint(),
        vnet_id("hub")
    );
    let token = sim.token_for("load");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let first = client.get(&url).bearer_auth(&token).send().await?;
    let bytes = first.bytes().await?.len();

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, token, done, failed) = (
            client.clone(),
            url.clone(),
            token.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline && done.load(Ordering::Relaxed) < MAX_REQUESTS {
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    println!(
        "GET of a VNet with 100 peerings ({bytes} bytes): {total} requests in {elapsed:.1} s over {connections} connections = {:.0} requests/second ({} failed)",
        total as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    sim.shutdown().await;
    Ok(())
}
