//! Reconcile benchmark: ARM reads, writes and wall time to converge after one new spoke, on the
//! simulator with Azure-like latencies and throttling.
//!
//! `cargo run --release -p hubspoke-arm --example reconcile_bench [-- SIZES [COMPRESSION]]`,
//! e.g. `-- 10,100,400 20`. For each size, an estate is first converged on a fast simulator; its
//! state is then loaded into a simulator with Azure-like latencies (a write's long-running
//! operation takes 10 s, a delete 10 s, an answer 50 ms: all divided by COMPRESSION, default
//! 20) and ARM's throttling (time compressed by the same factor). A landing zone adds one spoke
//! peered from its side; hubspoke reconciles. Printed: the writes against the lower bound (the
//! resources whose desired state differs), the reads, the retries and throttled answers, and the
//! wall time, measured and scaled back to Azure time. Operations are polled every 10 s (scaled),
//! as Azure's `Retry-After` has the client do.
use std::time::{Duration, Instant};

use hubspoke_arm::client::ArmClient;
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions};
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::PlanConfig;
use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{LatencySpec, Seed, SimConfig, SimHandle, ThrottleSpec};

fn estate(spokes: usize) -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for n in 0..spokes {
        let name = format!("spoke{n:03}");
        // Spokes in every other /24 of 10.1.0.0 upwards: they do not merge into aggregates, so
        // every table carries one route per other spoke (the worst case for the route limit).
        let block = 2 * n;
        let prefix = format!("10.{}.{}.0/24", 1 + block / 256, block % 256);
        let subnet = format!("10.{}.{}.0/26", 1 + block / 256, block % 256);
        estate.vnet(&name, &[&prefix], &[("app", &subnet)]);
        estate.peer(&name, "hub", Flags::default(), "Initiated");
    }
    estate
}

async fn client_for(sim: &SimHandle, poll: Duration) -> anyhow::Result<ArmClient> {
    let env = sim.env();
    let mut settings = ArmSettings::from_settings(|name| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })?;
    // The simulator answers `Retry-After: 0` (whole seconds cannot be compressed); the client
    // then waits `base_delay` between polls, set to what Azure's `Retry-After: 10` becomes.
    settings.retry.base_delay = poll;
    let credential = hubspoke_arm::credential::credential(&settings)?;
    Ok(ArmClient::new(&settings, credential)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // azure_identity picks its App Service flavour from these variables; the endpoint and header
    // each client uses are its own settings' (one simulator per estate size).
    std::env::set_var(
        "IDENTITY_ENDPOINT",
        "http://127.0.0.1:9/replaced-by-settings",
    );
    std::env::set_var("IDENTITY_HEADER", "replaced-by-settings");
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .map(|list| {
            list.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![10, 100, 400]);
    let compression: u32 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    println!("reconcile after one new spoke; Azure-like latencies compressed {compression}x, throttling on");
    println!("| spokes | writes | lower bound | reads | retries | throttled | wall time | as Azure time |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for size in sizes {
        let estate = estate(size);
        let config = PlanConfig::new(vec![estate.vnet_id("hub").parse()?]);
        let options = ReconcileOptions {
            concurrency: None,
            ..ReconcileOptions::default()
        };

        // Converge quickly, then move the state into an Azure-paced simulator.
        let fast = hubspoke_sim::start(SimConfig {
            tls: true,
            seed: Some(Seed::Value(estate.snapshot())),
            throttle: ThrottleSpec {
                enabled: false,
                ..ThrottleSpec::default()
            },
            page_size: 1000,
            ..SimConfig::default()
        })
        .await?;
        let fast_client = client_for(&fast, Duration::from_millis(20)).await?;
        reconcile(&fast_client, &config, &options, None).await?;
        let converged = fast.state();
        fast.shutdown().await;

        let scale = |seconds: f64| Duration::from_secs_f64(seconds / f64::from(compression));
        let sim = hubspoke_sim::start(SimConfig {
            tls: true,
            seed: Some(Seed::Value(converged)),
            latency: LatencySpec {
                lro: scale(10.0),
                delete: scale(10.0),
                gateway: scale(1800.0),
                response: scale(0.05),
                retry_after_secs: 0,
            },
            throttle: ThrottleSpec {
                time_factor: f64::from(compression),
                ..ThrottleSpec::default()
            },
            ..SimConfig::default()
        })
        .await?;
        let client = client_for(&sim, scale(10.0)).await?;

        // The landing zone's new spoke, peered from its side.
        let block = 2 * size;
        let prefix = format!("10.{}.{}.0/24", 1 + block / 256, block % 256);
        let subnet = format!("10.{}.{}.0/26", 1 + block / 256, block % 256);
        for (path, body) in estate.landing_zone_spoke("newspoke", &prefix, &subnet, "hub") {
            client.put(&path, None, &body).await?;
        }

        let start = Instant::now();
        let (result, plan) = reconcile(&client, &config, &options, None).await?;
        let elapsed = start.elapsed();
        let lower_bound: usize = plan.hubs.iter().map(|h| h.changes.len()).sum();
        if std::env::var("BENCH_DETAIL").is_ok() {
            let mut kinds = std::collections::BTreeMap::new();
            for change in plan.hubs.iter().flat_map(|h| &h.changes) {
                *kinds.entry(change.action.kind()).or_insert(0) += 1;
            }
            eprintln!(
                "{size}: {kinds:?}\n{}",
                result
                    .text()
                    .lines()
                    .filter(|l| !l.contains("[ok]"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let (_, again) = reconcile(&client, &config, &options, None).await?;
        let leftover: usize = again.hubs.iter().map(|h| h.changes.len()).sum();
        println!(
            "| {size} | {} | {lower_bound} | {} | {} | {} | {:.1} s | {:.0} s |{}",
            result.requests.writes,
            result.requests.reads,
            result.requests.retries,
            result.requests.throttled,
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * f64::from(compression),
            if leftover == 0 {
                ""
            } else {
                " (not converged)"
            }
        );
        sim.shutdown().await;
    }
    Ok(())
}
