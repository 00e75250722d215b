//! hubspoke scaled out: two and three `hubspoke host` processes, each with its own handler, on one
//! Azurite and one simulator, as the Functions platform runs an app on several instances. The
//! hub's blob lease keeps one pass per hub at a time: a burst of twenty spokes converges with
//! every write once and no lock conflict of hubspoke's own making; a holder killed mid-pass and
//! a lease broken from outside lose nothing; the drift check fires once per schedule. Every
//! outcome is checked against `docs/outcome.schema.json` as it is read. Needs Azurite
//! (`npm ci --prefix tests`); without it these tests fail, naming that step.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hubspoke_core::synth::{Estate, Flags};
use hubspoke_queue::BlobService;
use hubspoke_sim::{EventKnobs, LatencySpec};
use hubspoke_stack::{Options, Stack, Storage};
use serde_json::Value;

fn parse_time(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

/// A hub with two spokes, already peered from their side.
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

fn options(instances: usize, lro: Duration) -> Options {
    let mut options = Options::new(estate());
    options.storage = Storage::for_tests();
    options.instances = instances;
    options.latency = LatencySpec {
        lro,
        ..LatencySpec::default()
    };
    options
}

fn reconciles(outcomes: &[Value]) -> Vec<&Value> {
    outcomes
        .iter()
        .filter(|o| o["function"] == "ReconcileHub")
        .collect()
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

/// The passes the outcomes tell of, by id: (instance, start, end).
fn passes_run(outcomes: &[Value]) -> BTreeMap<String, (String, String, String)> {
    let mut passes = BTreeMap::new();
    for outcome in reconciles(outcomes) {
        let pass = &outcome["pass"];
        let mut runs: Vec<&Value> = vec![pass];
        runs.extend(outcome["further_passes"].as_array().into_iter().flatten());
        for run in runs {
            if let (Some(id), Some(start), Some(end)) = (
                run["id"].as_str(),
                run["start_time"].as_str(),
                run["end_time"].as_str(),
            ) {
                passes.insert(
                    id.to_string(),
                    (
                        run["instance"].as_str().unwrap_or("").to_string(),
                        start.to_string(),
                        end.to_string(),
                    ),
                );
            }
        }
    }
    passes
}

/// No two passes of the hub overlap in time. Compared as instants: RFC 3339 text is not ordered
/// (an instant on a whole second has no fraction, and "41Z" sorts after "41.013Z").
fn assert_one_pass_at_a_time(passes: &BTreeMap<String, (String, String, String)>) {
    let mut intervals: Vec<&(String, String, String)> = passes.values().collect();
    intervals.sort_by_key(|pass| parse_time(&pass.1));
    for pair in intervals.windows(2) {
        assert!(
            parse_time(&pair[0].2) <= parse_time(&pair[1].1),
            "passes overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

/// Every work item queued (by any outcome) has its `ReconcileHub` outcome.
fn every_item_answered(outcomes: &[Value]) -> bool {
    let queued: BTreeSet<&str> = outcomes
        .iter()
        .flat_map(|o| o["work_items"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let answered: BTreeSet<&str> = reconciles(outcomes)
        .iter()
        .filter_map(|o| o["trigger"]["message"]["work_item"].as_str())
        .collect();
    queued.is_subset(&answered)
}

async fn twenty_spokes_within_a_second(instances: usize) {
    let mut options = options(instances, Duration::from_millis(150));
    // Every landing zone write is done before its event reaches hubspoke, so that each pass
    // plans from the whole burst and the writes to make are known in advance.
    options.event_knobs = EventKnobs {
        delay: Duration::from_secs(3),
        ..EventKnobs::default()
    };
    let stack = Stack::start(options).await.unwrap();
    stack.add_spokes_at_once(10..30).await.unwrap();
    let observed = hubspoke_core::model::Observed::from_snapshot(&stack.sim.state()).unwrap();
    let lower_bound: usize = hubspoke_core::plan::plan(&stack.config, &observed)
        .hubs
        .iter()
        .map(|hub| hub.changes.len())
        .sum();
    assert_eq!(hubspoke_writes(&stack), 0, "no event reached hubspoke yet");
    stack
        .wait_converged(Duration::from_secs(240))
        .await
        .unwrap();
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(240), |o| {
            let delivered = stack.sim.events().iter().filter(|e| e.delivered).count();
            o.iter()
                .filter(|x| x["function"] == "OnNetworkEvent")
                .count()
                >= delivered
                && every_item_answered(o)
        })
        .await
        .unwrap();

    let passes = passes_run(&outcomes);
    assert_one_pass_at_a_time(&passes);
    // Every pass another instance joined was run by its holder (or the check of its mark).
    for joined in reconciles(&outcomes)
        .iter()
        .filter(|o| o["pass"]["elsewhere"] == true)
    {
        let id = joined["pass"]["id"].as_str().unwrap();
        assert!(passes.contains_key(id), "joined pass {id} never ran");
    }
    let took_items: BTreeSet<&str> = reconciles(&outcomes)
        .iter()
        .filter_map(|o| o["instance"].as_str())
        .collect();
    assert!(
        took_items.len() >= 2,
        "the instances shared the work items: {took_items:?}"
    );
    assert_eq!(
        hubspoke_writes(&stack),
        lower_bound,
        "every write once, as one instance makes them"
    );
    let conflicts = stack
        .sim
        .requests()
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("AnotherOperationInProgress"))
        .count();
    assert_eq!(conflicts, 0, "no pass met another pass's operation");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_spokes_on_two_instances_converge_with_one_pass_at_a_time() {
    twenty_spokes_within_a_second(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_spokes_on_three_instances_converge_with_one_pass_at_a_time() {
    twenty_spokes_within_a_second(3).await;
}

/// The hub's lease blob, as an operator would reach it.
fn lease_blob(stack: &Stack) -> hubspoke_queue::Blob {
    let lookup = |name: &str| {
        stack
            .settings
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let storage =
        hubspoke_queue::StorageSettings::from_lookup("AzureWebJobsStorage", lookup).unwrap();
    BlobService::connect(&storage)
        .unwrap()
        .container("hubspoke-leases")
        .unwrap()
        .blob(&hubspoke_functions_blob_name(&stack.hub()))
}

/// The lease blob's name of a hub: its id, lower-cased, without the leading `/`.
fn hubspoke_functions_blob_name(hub: &hubspoke_core::id::VnetId) -> String {
    hub.to_string().trim_start_matches('/').to_ascii_lowercase()
}

/// Waits until some instance holds the hub's lease and has started writing; its id.
async fn holder_writing(stack: &Stack) -> String {
    let blob = lease_blob(stack);
    let started = Instant::now();
    loop {
        if let Some(properties) = blob.properties().await.unwrap() {
            if properties.lease == hubspoke_queue::Lease::Leased && hubspoke_writes(stack) > 0 {
                if let Some(instance) = properties.metadata.get("instance") {
                    return instance.clone();
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no pass took the lease"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until a pass holds the hub's lease and has sent a write to the hub's peerings (which
/// only hubspoke writes).
async fn holder_writing_the_hub(stack: &Stack) {
    let blob = lease_blob(stack);
    let started = Instant::now();
    let hub_peerings = format!("{}/virtualnetworkpeerings/", stack.hub()).to_ascii_lowercase();
    loop {
        let leased = blob
            .properties()
            .await
            .unwrap()
            .is_some_and(|properties| properties.lease == hubspoke_queue::Lease::Leased);
        let writing = stack.sim.requests().iter().any(|request| {
            request.method == "PUT" && request.path.to_ascii_lowercase().starts_with(&hub_peerings)
        });
        if leased && writing {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no pass took the lease and wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `POST /api/backfill` on the host at `url`.
async fn backfill(url: &str, key: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/backfill"))
        .header("x-functions-key", key)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn add_spokes(stack: &Stack, range: std::ops::Range<u8>) {
    for n in range {
        stack
            .add_spoke(
                &format!("lz{n}"),
                &format!("10.{n}.0.0/16"),
                &format!("10.{n}.0.0/24"),
            )
            .await
            .unwrap();
    }
}

/// What must hold however a pass was cut short: hubspoke's tables have routes, subnets point
/// at tables that exist.
fn nothing_half_written(state: &Value) {
    let tables: BTreeSet<String> = state["routeTables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            if t["tags"]["hubspoke:managed"] == "true" {
                assert!(
                    t["properties"]["routes"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty()),
                    "hubspoke's table {} has no route",
                    t["id"]
                );
            }
            t["id"].as_str().unwrap().to_ascii_lowercase()
        })
        .collect();
    for vnet in state["virtualNetworks"].as_array().unwrap() {
        for subnet in vnet["properties"]["subnets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(table) = subnet["properties"]["routeTable"]["id"].as_str() {
                assert!(
                    tables.contains(&table.to_ascii_lowercase()),
                    "subnet {} points at a missing table",
                    subnet["id"]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_holder_killed_mid_pass_leaves_the_work_to_another_instance() {
    let mut stack = Stack::start(options(2, Duration::from_millis(600)))
        .await
        .unwrap();
    add_spokes(&stack, 10..16).await;
    let holder = holder_writing(&stack).await;
    let index = stack
        .instance_ids
        .iter()
        .position(|id| *id == holder)
        .unwrap();
    stack.host_mut(index).unwrap().kill().unwrap();
    let killed = time::OffsetDateTime::now_utc();
    nothing_half_written(&stack.sim.state());
    // The work items the dead instance had received come back only after the queue's
    // visibility timeout (ten minutes, as the real host receives them). Work that reaches the
    // live instance meanwhile finds the dead holder's lease, leaves its mark and the mark's
    // check; the check, once the lease ran out, runs the pass.
    let live = stack.hosts().nth(1 - index).unwrap();
    let (status, body) = backfill(&live.url(), &live.keys().function).await;
    assert_eq!(status, 202, "{body}");
    // Within the lease's minute and one pass, the other instance finishes the work.
    stack
        .wait_converged(Duration::from_secs(240))
        .await
        .unwrap();
    nothing_half_written(&stack.sim.state());
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(60), |o| {
            passes_run(o)
                .values()
                .any(|(instance, start, _)| *instance != holder && parse_time(start) > killed)
        })
        .await
        .unwrap();
    assert_one_pass_at_a_time(&passes_run(&outcomes));
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_broken_mid_pass_stops_its_changes_and_the_hub_still_converges() {
    let mut options = options(2, Duration::from_millis(600));
    options
        .settings
        .push(("HUBSPOKE_LEASE_RENEW_SECONDS".into(), "1".into()));
    // Every spoke exists before the first event reaches hubspoke, so that the first pass has all
    // six to peer with the hub.
    options.event_knobs = EventKnobs {
        delay: Duration::from_secs(3),
        ..EventKnobs::default()
    };
    let stack = Stack::start(options).await.unwrap();
    stack.add_spokes_at_once(10..16).await.unwrap();
    // As soon as the holder sends its first write to the hub's peerings, which go one at a time
    // (six of them, each an operation of 600 ms): the pass is then seconds from its end, and the
    // renewal each second finds the lease broken while changes are still to start.
    holder_writing_the_hub(&stack).await;
    lease_blob(&stack)
        .break_lease(Duration::ZERO)
        .await
        .unwrap();
    stack
        .wait_converged(Duration::from_secs(240))
        .await
        .unwrap();
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(120), |o| {
            reconciles(o).iter().any(|r| r["pass"]["lease"] == "lost")
        })
        .await
        .unwrap();
    let lost = reconciles(&outcomes)
        .into_iter()
        .find(|r| r["pass"]["lease"] == "lost")
        .unwrap();
    assert_eq!(lost["status"], "failed", "{lost:#}");
    let deferred: Vec<&Value> = lost["hubs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "deferred")
        .collect();
    assert!(
        !deferred.is_empty(),
        "the pass stopped with changes still to start: {lost:#}"
    );
    assert!(deferred
        .iter()
        .all(|c| c["skipped_because"].as_str().unwrap().contains("lease")));
    nothing_half_written(&stack.sim.state());
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_check_fires_once_per_schedule_across_the_instances() {
    let mut options = options(3, Duration::from_millis(20));
    options
        .settings
        .push(("HUBSPOKE_DRIFT_SCHEDULE".into(), "*/10 * * * * *".into()));
    let stack = Stack::start(options).await.unwrap();
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(120), |o| {
            o.iter().filter(|x| x["function"] == "DriftCheck").count() >= 4
        })
        .await
        .unwrap();
    let ticks: Vec<i64> = outcomes
        .iter()
        .filter(|o| o["function"] == "DriftCheck")
        .map(|o| parse_time(o["start_time"].as_str().unwrap()).unix_timestamp() / 10)
        .collect();
    let distinct: BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "each occurrence of the schedule fired on one instance only: {ticks:?}"
    );
    let instances: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| o["function"] == "DriftCheck")
        .filter_map(|o| o["instance"].as_str())
        .collect();
    assert_eq!(
        instances.len(),
        1,
        "the lock's holder runs the timer: {instances:?}"
    );
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_short_function_timeout_every_invocation_answers_within_it() {
    // functionTimeout 140 s: a pass must end within (140 - 120) / 2 = 10 s, and may start
    // changes for at most half of that; here 2 s, in slices that continue through the queue.
    let mut options = options(1, Duration::from_millis(1000));
    options.settings.extend([
        (
            "AzureFunctionsJobHost__functionTimeout".to_string(),
            "00:02:20".to_string(),
        ),
        (
            "HUBSPOKE_PASS_TIME_LIMIT_SECONDS".to_string(),
            "2".to_string(),
        ),
    ]);
    let stack = Stack::start(options).await.unwrap();
    add_spokes(&stack, 10..20).await;
    stack
        .wait_converged(Duration::from_secs(300))
        .await
        .unwrap();
    let outcomes = stack
        .wait_outcomes(Duration::from_secs(120), every_item_answered)
        .await
        .unwrap();
    // The check of convergence reads the simulator's state, not ARM: the stack's reads would
    // spend the budget of hubspoke's identity, starve its passes and cut them at their hard end.
    let served = stack.sim.requests().len();
    stack.wait_converged(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        stack.sim.requests().len(),
        served,
        "the check of convergence sent no ARM request"
    );
    let reconciled = reconciles(&outcomes);
    assert!(
        reconciled.iter().any(|o| o["status"] == "continued"),
        "passes were cut by their time limit and continued"
    );
    for outcome in &outcomes {
        assert!(
            outcome["duration_ms"].as_u64().unwrap() <= 140_000,
            "{outcome:#}"
        );
        assert_ne!(outcome["status"], "failed", "{outcome:#}");
    }
    assert_eq!(
        stack.host.handler_starts(),
        1,
        "no invocation ran into the host's timeout, which restarts the handler"
    );
    stack.stop().await.unwrap();
}

/// Passes of one instance, from (id, start, end).
fn passes_of(runs: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String, String)> {
    runs.iter()
        .map(|(id, start, end)| {
            let run = ("instance-0".to_string(), start.to_string(), end.to_string());
            (id.to_string(), run)
        })
        .collect()
}

#[test]
fn passes_are_ordered_by_their_instants_not_by_their_text() {
    // An instant on a whole second has no fraction: "…41Z" sorts after "…41.013Z" as text.
    assert_one_pass_at_a_time(&passes_of(&[
        ("a", "2026-12-07T03:01:54.705Z", "2026-12-07T03:02:41Z"),
        ("b", "2026-12-07T03:02:41.013Z", "2026-12-07T03:02:41.049Z"),
        ("c", "2026-12-07T03:02:41.05Z", "2026-12-07T03:02:42Z"),
    ]));
}

#[test]
#[should_panic(expected = "passes overlap")]
fn passes_that_overlap_are_found() {
    assert_one_pass_at_a_time(&passes_of(&[
        ("a", "2026-12-07T03:02:40.5Z", "2026-12-07T03:02:41.2Z"),
        ("b", "2026-12-07T03:02:41Z", "2026-12-07T03:02:42Z"),
    ]));
}
