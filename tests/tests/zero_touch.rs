//! Zero touch, end to end, over TCP: the simulator's Event Grid delivery → the local Functions
//! host → `hubspoke serve` → `hubspoke-work` in Azurite → `ReconcileHub` → ARM writes →
//! outcomes, read back with the official queue client. Every outcome is checked against
//! `docs/outcome.schema.json` as it is read. Azurite is required: without it the tests fail,
//! naming the step of the README's test command that installs it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{EventKnobs, FaultSpec, LatencySpec};
use hubspoke_stack::{Options, Stack, Storage};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(60);

/// A hub with a VPN gateway and two spokes, already transit and routed.
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

fn options(estate: Estate) -> Options {
    let mut options = Options::new(estate);
    options.storage = Storage::for_tests();
    options
}

fn by_function<'a>(outcomes: &'a [Value], function: &str) -> Vec<&'a Value> {
    outcomes
        .iter()
        .filter(|o| o["function"] == function)
        .collect()
}

/// hubspoke's own successful writes, from the simulator's event log (each carries its claims).
fn hubspoke_writes(stack: &Stack) -> usize {
    stack
        .sim
        .events()
        .iter()
        .filter(|record| {
            record.event["data"]["claims"]["oid"] == hubspoke_sim::identity::DEFAULT_PRINCIPAL_ID
        })
        .count()
}

/// The routes with next hop VirtualNetworkGateway in table `name`.
async fn gateway_routes(stack: &Stack, name: &str) -> BTreeSet<String> {
    let table = stack
        .arm
        .get(&stack.estate.table_id(name))
        .await
        .unwrap_or(Value::Null);
    table["properties"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["properties"]["nextHopType"] == "VirtualNetworkGateway")
        .filter_map(|r| {
            r["properties"]["addressPrefix"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_spoke_converges_with_no_other_input() {
    let stack = Stack::start(options(estate())).await.unwrap();
    stack
        .add_spoke("spoke3", "10.4.0.0/16", "10.4.0.0/24")
        .await
        .unwrap();
    stack.wait_converged(CONVERGE).await.unwrap();
    let set = |prefixes: &[&str]| {
        prefixes
            .iter()
            .map(|p| p.to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        gateway_routes(&stack, "hubspoke-rt-spoke3").await,
        set(&["10.1.0.0/16", "10.2.0.0/16"])
    );
    assert_eq!(
        gateway_routes(&stack, "hubspoke-rt-spoke1").await,
        set(&["10.2.0.0/16", "10.4.0.0/16"])
    );
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| {
            by_function(o, "ReconcileHub")
                .iter()
                .any(|r| r["status"] == "changed")
        })
        .await
        .unwrap();
    let events = by_function(&outcomes, "OnNetworkEvent");
    assert!(
        events.iter().any(|o| o["status"] == "queued"),
        "the landing zone's writes queue the hub"
    );
    assert!(
        events.iter().any(|o| o["status"] == "ignored"
            && o["reason"].as_str().unwrap_or("").contains("own identity")),
        "hubspoke's own writes start no pass"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_delayed_events_change_nothing_more_than_one_clean_delivery() {
    let mut options = options(estate());
    options.event_knobs = EventKnobs {
        duplicate: 0.5,
        reorder: 0.3,
        delay: Duration::from_millis(400),
        ..EventKnobs::default()
    };
    let stack = Stack::start(options).await.unwrap();
    stack
        .add_spoke("spoke3", "10.4.0.0/16", "10.4.0.0/24")
        .await
        .unwrap();
    // The writes a pass must make, planned from the estate the landing zone left, before any
    // (delayed) event reached hubspoke.
    let observed = hubspoke_core::model::Observed::from_snapshot(&stack.sim.state()).unwrap();
    let expected: usize = hubspoke_core::plan::plan(&stack.config, &observed)
        .hubs
        .iter()
        .map(|hub| hub.changes.len())
        .sum();
    assert!(expected > 0);
    assert_eq!(hubspoke_writes(&stack), 0, "no event has arrived yet");
    stack.wait_converged(CONVERGE).await.unwrap();
    // Let the duplicates and held-back events arrive and be handled.
    stack
        .wait_outcomes(CONVERGE, |o| {
            let delivered = stack.sim.events().iter().filter(|e| e.delivered).count();
            by_function(o, "OnNetworkEvent").len() >= delivered
                && by_function(o, "ReconcileHub").len()
                    >= o.iter()
                        .filter(|x| x["function"] == "OnNetworkEvent")
                        .map(|x| x["work_items"].as_array().map_or(0, Vec::len))
                        .sum::<usize>()
        })
        .await
        .unwrap();
    assert_eq!(
        hubspoke_writes(&stack),
        expected,
        "every write once: duplicates and reordering cost read-only passes"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_events_are_recovered_by_the_next_drift_check() {
    let mut options = options(estate());
    options.event_knobs = EventKnobs {
        drop: 1.0,
        ..EventKnobs::default()
    };
    let stack = Stack::start(options).await.unwrap();
    stack
        .add_spoke("spoke3", "10.4.0.0/16", "10.4.0.0/24")
        .await
        .unwrap();
    assert!(stack.sim.events().iter().all(|e| e.dropped));
    assert!(stack.pending_changes().unwrap() > 0, "nothing happened");
    stack.drift_check().await.unwrap();
    stack.wait_converged(CONVERGE).await.unwrap();
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| !by_function(o, "ReconcileHub").is_empty())
        .await
        .unwrap();
    let drift = by_function(&outcomes, "DriftCheck");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["status"], "queued");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_spokes_created_within_a_second_converge_with_one_outcome_per_invocation() {
    let stack = Stack::start(options(estate())).await.unwrap();
    stack.add_spokes_at_once(10..30).await.unwrap();
    stack
        .wait_converged(Duration::from_secs(120))
        .await
        .unwrap();
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| {
            let delivered = stack.sim.events().iter().filter(|e| e.delivered).count();
            let queued: usize = by_function(o, "OnNetworkEvent")
                .iter()
                .map(|x| x["work_items"].as_array().map_or(0, Vec::len))
                .sum();
            by_function(o, "OnNetworkEvent").len() == delivered
                && by_function(o, "ReconcileHub").len() == queued
        })
        .await
        .unwrap();
    // One outcome per invocation: per event delivered, and per work item queued.
    let events = stack.sim.events();
    assert!(
        events.iter().all(|e| e.attempts == 1),
        "each event delivered once"
    );
    let event_outcomes = by_function(&outcomes, "OnNetworkEvent");
    let ids: BTreeSet<&str> = event_outcomes
        .iter()
        .map(|o| o["trigger"]["events"][0]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "one outcome per event");
    let items: BTreeSet<&str> = by_function(&outcomes, "ReconcileHub")
        .iter()
        .map(|o| o["trigger"]["message"]["work_item"].as_str().unwrap())
        .collect();
    let queued: BTreeSet<&str> = event_outcomes
        .iter()
        .flat_map(|o| o["work_items"].as_array().unwrap().iter())
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(items, queued, "one ReconcileHub outcome per work item");
    let passes: BTreeSet<&str> = by_function(&outcomes, "ReconcileHub")
        .iter()
        .map(|o| o["pass"]["id"].as_str().unwrap())
        .collect();
    assert!(
        passes.len() < items.len(),
        "{} work items collapsed into {} passes",
        items.len(),
        passes.len()
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_killed_in_the_middle_of_a_reconcile_loses_nothing() {
    let mut options = options(estate());
    options.latency = LatencySpec {
        lro: Duration::from_millis(1500),
        ..LatencySpec::default()
    };
    let stack = Stack::start(options).await.unwrap();
    stack
        .add_spoke("spoke3", "10.4.0.0/16", "10.4.0.0/24")
        .await
        .unwrap();
    // Wait for hubspoke's first write to be under way, then kill the handler.
    let started = std::time::Instant::now();
    while !stack.sim.requests().iter().any(|r| {
        r.method == "PUT"
            && r.path
                .contains("/virtualNetworks/hub/virtualNetworkPeerings/")
    }) {
        assert!(started.elapsed() < CONVERGE, "no reconcile started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = stack.host.handler_pid().unwrap();
    hubspoke_stack::signal(pid, libc::SIGKILL).unwrap();
    stack
        .wait_converged(Duration::from_secs(120))
        .await
        .unwrap();
    assert!(
        stack.host.handler_starts() >= 2,
        "the host restarted the handler"
    );
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| {
            by_function(o, "ReconcileHub")
                .iter()
                .any(|r| r["trigger"]["message"]["dequeue_count"].as_u64() >= Some(2))
        })
        .await
        .unwrap();
    assert!(
        by_function(&outcomes, "ReconcileHub")
            .iter()
            .all(|o| o["status"] != "failed"),
        "the item came back and the next pass finished"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_item_that_always_fails_lands_in_the_poison_queue_after_five_attempts() {
    let mut options = options(estate());
    options.faults = FaultSpec::parse("PUT *=500").unwrap();
    options
        .settings
        .push(("HUBSPOKE_ARM_MAX_ATTEMPTS".into(), "1".into()));
    let stack = Stack::start(options).await.unwrap();
    stack.drift_check().await.unwrap();
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(90), |o| {
            by_function(o, "ReconcileHub").len() >= 5
        })
        .await
        .unwrap();
    let attempts: Vec<u64> = by_function(&outcomes, "ReconcileHub")
        .iter()
        .map(|o| o["trigger"]["message"]["dequeue_count"].as_u64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        [1, 2, 3, 4, 5],
        "five attempts, each with its outcome"
    );
    for outcome in by_function(&outcomes, "ReconcileHub") {
        assert_eq!(outcome["status"], "failed", "{outcome:#}");
        let changes = outcome["hubs"][0]["changes"].as_array().unwrap();
        assert!(changes
            .iter()
            .any(|c| c["error"]["code"] == "InternalServerError"));
    }
    let poison = stack.queue("hubspoke-work-poison").unwrap();
    let started = std::time::Instant::now();
    let moved = loop {
        let peeked = if poison.exists().await.unwrap() {
            poison.peek(32).await.unwrap()
        } else {
            Vec::new()
        };
        if !peeked.is_empty() || started.elapsed() > Duration::from_secs(30) {
            break peeked;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(moved.len(), 1, "the work item is in hubspoke-work-poison");
    let item = hubspoke_queue::message::decode_text(&moved[0].text)
        .json()
        .unwrap();
    assert_eq!(item["schema"], "hubspoke.work/v1");
    assert_eq!(item["reason"], "drift");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_needs_a_key_and_with_one_queues_the_hub_and_converges() {
    let stack = Stack::start(options(estate())).await.unwrap();
    let (status, _) = stack.backfill("dryRun=true", None).await.unwrap();
    assert_eq!(status, 401);
    let (status, _) = stack.backfill("dryRun=true", Some("wrong")).await.unwrap();
    assert_eq!(status, 401);
    assert!(stack.pending_changes().unwrap() > 0);
    let key = stack.host.keys().function.clone();
    let (status, body) = stack.backfill("dryRun=true", Some(&key)).await.unwrap();
    assert_eq!(status, 200, "{body:#}");
    assert!(!body["plan"]["hubs"][0]["changes"]
        .as_array()
        .unwrap()
        .is_empty());
    let (status, body) = stack.backfill("", Some(&key)).await.unwrap();
    assert_eq!(status, 202, "{body:#}");
    assert_eq!(body["work_items"].as_array().unwrap().len(), 1);
    stack.wait_converged(CONVERGE).await.unwrap();
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_cut_by_its_time_limit_continues_through_the_queue_until_converged() {
    let mut options = options(estate());
    options
        .settings
        .push(("HUBSPOKE_PASS_TIME_LIMIT_SECONDS".into(), "1".into()));
    let stack = Stack::start(options).await.unwrap();
    let key = stack.host.keys().function.clone();
    let (status, body) = stack.backfill("", Some(&key)).await.unwrap();
    assert_eq!(status, 202, "{body:#}");
    stack.wait_converged(CONVERGE).await.unwrap();
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| {
            by_function(o, "ReconcileHub")
                .iter()
                .any(|r| r["status"] == "changed" || r["status"] == "unchanged")
        })
        .await
        .unwrap();
    let passes = by_function(&outcomes, "ReconcileHub");
    let continued: Vec<_> = passes
        .iter()
        .filter(|o| o["status"] == "continued")
        .collect();
    assert!(!continued.is_empty(), "the first pass was cut");
    // Each continuation was taken by a later pass, through the host's queue output.
    for outcome in &continued {
        let item = &outcome["work_items"][0];
        assert!(
            passes
                .iter()
                .any(|o| o["trigger"]["message"]["work_item"] == *item),
            "continuation {item} was reconciled"
        );
    }
    assert!(
        passes.iter().all(|o| o["status"] != "failed"),
        "a slice is no failure"
    );
    stack.stop().await.unwrap();
}

/// A landing zone that peers a new spoke while the hub is being written meets Azure's 400
/// `ReferencedResourceNotProvisioned` until the hub's operation ends, and waits it out as landing
/// zone tooling does (Terraform's azurerm provider retries it since
/// hashicorp/terraform-provider-azurerm#3392): the stack's landing zone is as patient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_zone_peering_with_a_hub_being_written_waits_for_it() {
    let mut options = options(estate());
    options.latency = LatencySpec {
        lro: Duration::from_secs(6),
        ..LatencySpec::default()
    };
    let stack = Stack::start(options).await.unwrap();
    let [(vnet_path, spoke), (peering_path, peering)] =
        stack
            .estate
            .landing_zone_spoke("spoke3", "10.4.0.0/16", "10.4.0.0/24", "hub");
    stack
        .landing_zone
        .put(&vnet_path, None, &spoke)
        .await
        .unwrap();
    let hub = stack.hub().to_string();
    let mut vnet = stack.arm.get(&hub).await.unwrap();
    hubspoke_stack::strip_read_only(&mut vnet);
    vnet["tags"]["owner"] = Value::from("network team");
    let arm = stack.arm.clone();
    let hub_path = hub.clone();
    let writing = tokio::spawn(async move { arm.put(&hub_path, None, &vnet).await });
    // The hub's update is accepted and runs for six seconds; the spoke's peering waits for it.
    let started = std::time::Instant::now();
    while !stack.sim.requests().iter().any(|r| {
        r.method == "PUT"
            && r.path
                .split('?')
                .next()
                .is_some_and(|path| path.eq_ignore_ascii_case(&hub))
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hub's update was not sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack
        .landing_zone
        .put(&peering_path, None, &peering)
        .await
        .unwrap();
    assert!(
        stack
            .sim
            .requests()
            .iter()
            .any(|r| r.error_code.as_deref() == Some("ReferencedResourceNotProvisioned")),
        "the peering met the hub being written"
    );
    writing.await.unwrap().unwrap();
    stack.stop().await.unwrap();
}
