//! How long zero touch takes, end to end on one machine: from the ARM write that completes a
//! spoke's peering (the spoke side's PUT, the moment its operation succeeds in ARM: the time of
//! the event ARM raises) to the work item queued for the hub, and to convergence (a plan of the
//! simulator's state with nothing to do).
//!
//! ```sh
//! cargo build --release -p hubspoke && cargo run --release -p hubspoke-e2e --example event_latency [-- SPOKES]
//! ```
//!
//! The simulator runs with the latencies of `hubspoke sim` (operations of 500 ms, `Retry-After:
//! 1`) and clean Event Grid delivery; the host uses host.json's own queue timings. The work item
//! is queued by the host when `OnNetworkEvent` answers: its outcome's end time marks it, and its
//! start time marks the event's delivery. Each spoke is added after the previous one converged.
use std::time::{Duration, SystemTime};

use hubspoke_core::synth::Estate;
use hubspoke_sim::LatencySpec;
use hubspoke_stack::{Options, Stack};
use serde_json::Value;

fn ms_since_epoch(text: &str) -> Option<f64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(time.unix_timestamp_nanos() as f64 / 1e6)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let spokes: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5);
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    let mut options = Options::new(estate);
    options.settings.clear();
    options.latency = LatencySpec {
        gateway: Duration::from_millis(100),
        ..LatencySpec::cli_default()
    };
    let stack = Stack::start(options).await?;
    println!("queues: {}", stack.storage);
    let (mut delivery, mut to_work_item, mut to_converged) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=spokes {
        let name = format!("spoke{n}");
        let [(vnet_path, vnet), (peering_path, peering)] = stack.estate.landing_zone_spoke(
            &name,
            &format!("10.{n}.0.0/16"),
            &format!("10.{n}.0.0/24"),
            "hub",
        );
        stack.landing_zone.put(&vnet_path, None, &vnet).await?;
        stack
            .landing_zone
            .put(&peering_path, None, &peering)
            .await?;
        let written = stack
            .sim
            .events()
            .iter()
            .rev()
            .find(|record| {
                record.event["subject"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&peering_path))
            })
            .and_then(|record| record.event["eventTime"].as_str().and_then(ms_since_epoch))
            .ok_or_else(|| anyhow::anyhow!("no event for the peering write"))?;
        stack.wait_converged(Duration::from_secs(120)).await?;
        let converged = now_ms() - written;
        let outcomes = stack
            .wait_outcomes(Duration::from_secs(30), |outcomes| {
                outcomes.iter().any(|o| queued_for(o, &peering_path))
            })
            .await?;
        let event = outcomes
            .iter()
            .find(|o| queued_for(o, &peering_path))
            .ok_or_else(|| anyhow::anyhow!("no outcome queued the hub for {name}"))?;
        let start = ms_since_epoch(event["start_time"].as_str().unwrap_or("")).unwrap_or(written);
        let end = ms_since_epoch(event["end_time"].as_str().unwrap_or("")).unwrap_or(written);
        println!(
            "{name}: event delivered after {:.0} ms, work item queued after {:.0} ms, converged after {:.1} s",
            start - written,
            end - written,
            converged / 1000.0
        );
        delivery.push(start - written);
        to_work_item.push(end - written);
        to_converged.push(converged);
    }
    println!(
        "median of {spokes}: event delivered {:.0} ms, work item queued {:.0} ms, converged {:.1} s after the peering write completed",
        median(&mut delivery),
        median(&mut to_work_item),
        median(&mut to_converged) / 1000.0
    );
    stack.stop().await?;
    Ok(())
}

/// Whether `outcome` is OnNetworkEvent queuing a hub for the write of `subject`.
fn queued_for(outcome: &Value, subject: &str) -> bool {
    outcome["function"] == "OnNetworkEvent"
        && outcome["status"] == "queued"
        && outcome["trigger"]["events"][0]["subject"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(subject))
}
