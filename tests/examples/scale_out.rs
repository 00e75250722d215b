//! hubspoke on one, two and four instances: a landing zone creates twenty spokes at once, and
//! each instance count is measured from the end of the burst to convergence (a plan of the
//! simulator's state with nothing to do), with the ARM writes it took, the lock conflicts it met,
//! the passes it ran and the outcomes it wrote.
//!
//! ```sh
//! cargo build --release -p hubspoke && cargo run --release -p hubspoke-e2e --example scale_out [-- 1 2 4]
//! ```
//!
//! Each count runs on a fresh stack: the simulator with the latencies of `hubspoke sim`
//! (operations of 500 ms, `Retry-After: 1`), clean Event Grid delivery to the first instance,
//! Azurite, and host.json's own queue timings; every instance a `hubspoke host` process with its
//! own handler. Target: more instances never cost more writes and never converge slower than one.
use std::collections::BTreeSet;
use std::time::Duration;

use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::LatencySpec;
use hubspoke_stack::{Options, Stack, Storage};
use serde_json::Value;

struct Figures {
    instances: usize,
    converged: Duration,
    writes: usize,
    write_requests: usize,
    conflicts: usize,
    passes: usize,
    joined: usize,
    reconcile_outcomes: usize,
    outcomes: usize,
}

fn estate() -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for (name, n) in [("spoke1", 1), ("spoke2", 2)] {
        estate.vnet(
            name,
            &[&format!("10.{n}.0.0/16")],
            &[("workload", &format!("10.{n}.0.0/24"))],
        );
        estate.peer(name, "hub", Flags::default(), "Initiated");
    }
    estate
}

fn answered(outcomes: &[Value]) -> bool {
    let queued: BTreeSet<&str> = outcomes
        .iter()
        .flat_map(|o| o["work_items"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let answered: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| o["function"] == "ReconcileHub")
        .filter_map(|o| o["trigger"]["message"]["work_item"].as_str())
        .collect();
    queued.is_subset(&answered)
}

async fn run(instances: usize) -> anyhow::Result<Figures> {
    let mut options = Options::new(estate());
    options.settings.clear();
    options.storage = Storage::Azurite;
    options.instances = instances;
    options.host_process = true;
    options.latency = LatencySpec {
        gateway: Duration::from_millis(100),
        ..LatencySpec::cli_default()
    };
    let stack = Stack::start(options).await?;
    stack.add_spokes_at_once(10..30).await?;
    let converged = stack.wait_converged(Duration::from_secs(600)).await?;
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(300), |o| {
            let delivered = stack.sim.events().iter().filter(|e| e.delivered).count();
            o.iter()
                .filter(|x| x["function"] == "OnNetworkEvent")
                .count()
                >= delivered
                && answered(o)
        })
        .await?;
    let writes = stack
        .sim
        .events()
        .iter()
        .filter(|r| {
            r.event["data"]["claims"]["oid"] == hubspoke_sim::identity::DEFAULT_PRINCIPAL_ID
        })
        .count();
    let requests = stack.sim.requests();
    // hubspoke's write requests, retries included: every PUT and DELETE the simulator received
    // but the landing zone's (the only other writer), as its client counted them, retries too.
    let landing_zone_writes = usize::try_from(stack.landing_zone.counts().writes)?;
    let write_requests = requests
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "DELETE")
        .count()
        .saturating_sub(landing_zone_writes);
    let conflicts = requests
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("AnotherOperationInProgress"))
        .count();
    let mut passes = BTreeSet::new();
    let mut joined = 0;
    for outcome in outcomes.iter().filter(|o| o["function"] == "ReconcileHub") {
        if outcome["pass"]["elsewhere"] == true {
            joined += 1;
        } else if let Some(id) = outcome["pass"]["id"].as_str() {
            if outcome["pass"]["start_time"].is_string() {
                passes.insert(id.to_string());
            }
        }
        for further in outcome["further_passes"].as_array().into_iter().flatten() {
            if let Some(id) = further["id"].as_str() {
                passes.insert(id.to_string());
            }
        }
    }
    let figures = Figures {
        instances,
        converged,
        writes,
        write_requests,
        conflicts,
        passes: passes.len(),
        joined,
        reconcile_outcomes: outcomes
            .iter()
            .filter(|o| o["function"] == "ReconcileHub")
            .count(),
        outcomes: outcomes.len(),
    };
    stack.stop().await?;
    Ok(figures)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let counts: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .map(|n| n.parse())
            .collect::<Result<_, _>>()?;
        if given.is_empty() {
            vec![1, 2, 4]
        } else {
            given
        }
    };
    println!(
        "instances  converged  writes  write requests  AnotherOperationInProgress  passes  joined  ReconcileHub outcomes  outcomes"
    );
    for instances in counts {
        let f = run(instances).await?;
        println!(
            "{:>9}  {:>8.1}s  {:>6}  {:>14}  {:>26}  {:>6}  {:>6}  {:>21}  {:>8}",
            f.instances,
            f.converged.as_secs_f64(),
            f.writes,
            f.write_requests,
            f.conflicts,
            f.passes,
            f.joined,
            f.reconcile_outcomes,
            f.outcomes
        );
    }
    Ok(())
}
