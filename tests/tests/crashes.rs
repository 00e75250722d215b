//! Crashes: the handler killed (SIGKILL) at random points of a reconcile, twenty times, and the
//! local host killed in the middle of a pass. After each kill nothing is half-written — no
//! subnet without its NSG, no table of hubspoke's without routes, no transit flag turned off, no
//! subnet pointing at a missing table — and once the process is back the work item (or the
//! event Event Grid delivers again) brings the next pass, which converges; every event delivered
//! and every work item queued has its outcome, or is still in the queue.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{EventKnobs, LatencySpec};
use hubspoke_stack::{Options, Stack, Storage};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

/// A hub and six spokes, transit and routed by hubspoke's first pass; some subnets with NSGs,
/// one spoke behind its team's own table.
fn estate() -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for n in 1..=6 {
        let name = format!("spoke{n}");
        estate.vnet(
            &name,
            &[&format!("10.{n}.0.0/16")],
            &[
                ("app", &format!("10.{n}.0.0/24")),
                ("data", &format!("10.{n}.1.0/24")),
            ],
        );
        estate.peer(&name, "hub", Flags::default(), "Initiated");
        if n % 2 == 0 {
            estate.subnet_mut(&name, "app")["properties"]["networkSecurityGroup"] = json!({
                "id": format!("/subscriptions/{}/resourceGroups/rg-network/providers/Microsoft.Network/networkSecurityGroups/{name}-nsg", estate.subscription)
            });
        }
    }
    estate.table(
        "spoke3-own",
        &[("to-onprem", "192.168.0.0/16", "VirtualNetworkGateway", None)],
        json!({"owner": "app-team"}),
    );
    estate.associate("spoke3", "data", "spoke3-own");
    estate
}

/// What must hold at any instant, however a pass was cut short.
#[derive(Default)]
struct Invariants {
    /// Subnet → NSG id, as first seen.
    nsgs: BTreeMap<String, String>,
    /// Transit flags seen on: they must stay on.
    flags_on: BTreeSet<String>,
}

impl Invariants {
    fn check(&mut self, state: &Value, when: &str) {
        let tables: BTreeMap<String, &Value> = state["routeTables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_str().unwrap().to_ascii_lowercase(), t))
            .collect();
        for (id, table) in &tables {
            if table["tags"]["hubspoke:managed"] == "true" {
                let routes = table["properties"]["routes"].as_array().map_or(0, Vec::len);
                assert!(routes > 0, "{when}: hubspoke's table {id} has no route");
            }
        }
        let vnets: BTreeSet<String> = state["virtualNetworks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        for vnet in state["virtualNetworks"].as_array().unwrap() {
            for subnet in vnet["properties"]["subnets"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = subnet["id"].as_str().unwrap().to_ascii_lowercase();
                let properties = &subnet["properties"];
                if let Some(nsg) = properties["networkSecurityGroup"]["id"].as_str() {
                    self.nsgs
                        .entry(id.clone())
                        .or_insert_with(|| nsg.to_string());
                }
                if let Some(expected) = self.nsgs.get(&id) {
                    assert_eq!(
                        properties["networkSecurityGroup"]["id"].as_str(),
                        Some(expected.as_str()),
                        "{when}: subnet {id} lost its NSG"
                    );
                }
                if let Some(table) = properties["routeTable"]["id"].as_str() {
                    assert!(
                        tables.contains_key(&table.to_ascii_lowercase()),
                        "{when}: subnet {id} points at a missing table {table}"
                    );
                }
            }
            for peering in vnet["properties"]["virtualNetworkPeerings"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = peering["id"].as_str().unwrap().to_ascii_lowercase();
                let remote = peering["properties"]["remoteVirtualNetwork"]["id"]
                    .as_str()
                    .unwrap()
                    .to_ascii_lowercase();
                for flag in [
                    "allowForwardedTraffic",
                    "allowGatewayTransit",
                    "useRemoteGateways",
                ] {
                    let key = format!("{id} {flag}");
                    if peering["properties"][flag] == true {
                        self.flags_on.insert(key);
                    } else if vnets.contains(&remote) {
                        assert!(
                            !self.flags_on.contains(&key),
                            "{when}: {flag} went off on {id}"
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_killed_twenty_times_mid_reconcile_leaves_nothing_half_written() {
    let mut options = Options::new(estate());
    options.storage = Storage::for_tests();
    options.latency = LatencySpec {
        lro: Duration::from_millis(250),
        delete: Duration::from_millis(250),
        ..LatencySpec::default()
    };
    let stack = Stack::start(options).await.unwrap();
    let mut invariants = Invariants::default();
    invariants.check(&stack.sim.state(), "at start");
    stack
        .backfill("", Some(&stack.host.keys().function.clone()))
        .await
        .unwrap();
    stack.wait_converged(Duration::from_secs(90)).await.unwrap();
    invariants.check(&stack.sim.state(), "after the first pass");

    let mut rng = StdRng::seed_from_u64(20);
    for round in 0..20u8 {
        // Work for a pass: a new spoke, which every table must learn.
        let name = format!("new{round}");
        let n = 50 + round;
        stack
            .add_spoke(&name, &format!("10.{n}.0.0/16"), &format!("10.{n}.0.0/24"))
            .await
            .unwrap();
        let writes_before = hubspoke_writes(&stack);
        // Kill somewhere in the pass: after 0 to 4 of its writes.
        let target = writes_before + rng.random_range(0..5usize);
        let started = std::time::Instant::now();
        while hubspoke_writes(&stack) < target && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(5..60))).await;
        }
        let pid = stack.host.handler_pid().expect("a handler runs");
        hubspoke_stack::signal(pid, libc::SIGKILL).unwrap();
        invariants.check(&stack.sim.state(), &format!("right after kill {round}"));
        stack
            .wait_converged(Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        invariants.check(&stack.sim.state(), &format!("converged after kill {round}"));
    }
    assert!(
        stack.host.handler_starts() >= 21,
        "the host restarted the handler each time"
    );
    let outcomes = stack.outcomes().await.unwrap();
    let retried = outcomes
        .iter()
        .filter(|o| o["function"] == "ReconcileHub")
        .filter(|o| o["trigger"]["message"]["dequeue_count"].as_u64() >= Some(2))
        .count();
    assert!(
        retried >= 5,
        "work items came back after the kills: {retried}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_killed_mid_pass_loses_nothing_once_it_is_back() {
    let mut options = Options::new(estate());
    options.storage = Storage::for_tests();
    options.host_process = true;
    options.latency = LatencySpec {
        lro: Duration::from_millis(300),
        ..LatencySpec::default()
    };
    options.event_knobs = EventKnobs {
        first_retry: Duration::from_millis(500),
        ..EventKnobs::default()
    };
    let mut stack = Stack::start(options).await.unwrap();
    let mut invariants = Invariants::default();
    invariants.check(&stack.sim.state(), "at start");
    stack
        .add_spoke("new1", "10.51.0.0/16", "10.51.0.0/24")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while hubspoke_writes(&stack) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pass started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.host.kill().unwrap();
    invariants.check(&stack.sim.state(), "right after the host died");
    // While the host is down, a landing zone adds another spoke: Event Grid cannot deliver.
    stack
        .add_spoke("new2", "10.52.0.0/16", "10.52.0.0/24")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let undelivered = stack.sim.events().iter().filter(|e| !e.delivered).count();
    assert!(undelivered > 0, "deliveries failed while the host was down");
    stack.host.restart().await.unwrap();
    stack
        .wait_converged(Duration::from_secs(120))
        .await
        .unwrap();
    invariants.check(&stack.sim.state(), "converged after the restart");
    let started = std::time::Instant::now();
    while stack.sim.events().iter().any(|e| !e.delivered) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Event Grid delivered what failed while the host was down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing lost: every event delivered has the outcome of an `OnNetworkEvent` invocation;
    // every work item those queued has the outcome of a `ReconcileHub` invocation or is still in
    // the queue (the one in flight when the host died stays invisible for the host's processing
    // time, ten minutes, and comes back then); nothing went to the poison queue.
    let delivered: BTreeSet<String> = stack
        .sim
        .events()
        .iter()
        .filter(|e| e.delivered)
        .map(|e| e.event["id"].as_str().unwrap().to_string())
        .collect();
    let work = stack.queue("hubspoke-work").unwrap();
    let started = std::time::Instant::now();
    loop {
        let outcomes = stack.outcomes().await.unwrap();
        let missing = missing_outcomes(&outcomes, &delivered);
        let unserved = missing.iter().filter(|m| m.starts_with("event")).count();
        let in_queue = work.approximate_count().await.unwrap();
        let unreconciled = missing.len() - unserved;
        if unserved == 0 && unreconciled as u64 <= in_queue {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "lost: {missing:?}, {in_queue} messages in hubspoke-work"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let poison = stack.queue("hubspoke-work-poison").unwrap();
    assert!(
        !poison.exists().await.unwrap() || poison.approximate_count().await.unwrap() == 0,
        "a work item went to the poison queue"
    );
    stack.stop().await.unwrap();
}

/// What has no outcome yet: delivered events without an `OnNetworkEvent` outcome (`event <id>`),
/// and work items queued without a `ReconcileHub` outcome (`work item <id>`).
fn missing_outcomes(outcomes: &[Value], delivered: &BTreeSet<String>) -> Vec<String> {
    let of = |function: &'static str| {
        outcomes
            .iter()
            .filter(move |outcome| outcome["function"] == function)
    };
    let served: BTreeSet<&str> = of("OnNetworkEvent")
        .flat_map(|outcome| {
            outcome["trigger"]["events"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|event| event["id"].as_str())
        .collect();
    let queued: BTreeSet<&str> = outcomes
        .iter()
        .flat_map(|outcome| outcome["work_items"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let reconciled: BTreeSet<&str> = of("ReconcileHub")
        .filter_map(|outcome| outcome["trigger"]["message"]["work_item"].as_str())
        .collect();
    let mut missing: Vec<String> = delivered
        .iter()
        .filter(|id| !served.contains(id.as_str()))
        .map(|id| format!("event {id}"))
        .collect();
    missing.extend(
        queued
            .difference(&reconciled)
            .map(|id| format!("work item {id}")),
    );
    missing
}

/// hubspoke's own successful writes, from the simulator's event log.
fn hubspoke_writes(stack: &Stack) -> usize {
    stack
        .sim
        .events()
        .iter()
        .filter(|r| {
            r.event["data"]["claims"]["oid"] == hubspoke_sim::identity::DEFAULT_PRINCIPAL_ID
        })
        .count()
}
