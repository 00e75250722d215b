//! Subscriptions vended after the deployment, end to end: hubspoke runs with a management-group
//! scope (`HUBSPOKE_MANAGEMENT_GROUPS`) and no list of subscriptions; a landing zone vends a
//! subscription into the group, creates a VNet there and peers it with the hub from its side.
//! With no change of configuration the spoke becomes transitive, through its event where the
//! Event Grid wiring reaches the subscription, else through the drift check, and the pass's
//! outcome says how the spoke was found. A spoke in a subscription outside the group is never
//! read nor written, and its event says why. Resource Graph lagging (the simulator frozen at the
//! moment before the vending) delays nothing an event announces.
//!
//! Over TCP, as `zero_touch.rs`: the simulator's Event Grid → the local Functions host →
//! `hubspoke serve` → Azurite → `ReconcileHub` → ARM. Azurite is required.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hubspoke_core::config::Scope;
use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{EventKnobs, GroupSpec};
use hubspoke_stack::{Options, Stack, Storage};
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(90);
const GROUP: &str = "mg-landing-zones";
/// A subscription vended after hubspoke was deployed, into the group.
const VENDED: &str = "00000000-0000-4000-8000-0000000a0e01";
/// A subscription outside the group.
const OUTSIDE: &str = "00000000-0000-4000-8000-0000000000ff";

/// A hub with a VPN gateway and two spokes in the hub's subscription, peered from their side.
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

fn scope() -> Scope {
    Scope::ManagementGroups(vec![GROUP.to_string()])
}

async fn start(knobs: EventKnobs) -> Stack {
    let mut options = Options::new(estate());
    options.storage = Storage::for_tests();
    options.event_knobs = knobs;
    options
        .settings
        .push(("HUBSPOKE_MANAGEMENT_GROUPS".to_string(), GROUP.to_string()));
    let stack = Stack::start(options).await.unwrap();
    place(&stack, &[]);
    stack
}

/// Places `subscriptions` in the group (they exist from then on, as a vended subscription does).
fn place(stack: &Stack, subscriptions: &[&str]) {
    stack
        .sim
        .put_management_group(
            GROUP,
            &GroupSpec {
                display_name: Some("Landing zones".into()),
                parent: None,
                subscriptions: subscriptions.iter().map(|s| s.to_string()).collect(),
            },
        )
        .unwrap();
}

/// The landing zone's writes: VNet `name` in `subscription` with one workload subnet, then its
/// side of the peering with the hub, default flags. Returns the VNet's id.
async fn vend_spoke(stack: &Stack, subscription: &str, name: &str, n: u8) -> String {
    let id = Estate::new(subscription, "rg-lz", "westeurope").vnet_id(name);
    stack
        .landing_zone
        .put(
            &id,
            None,
            &json!({"location": "westeurope", "properties": {
                "addressSpace": {"addressPrefixes": [format!("10.{n}.0.0/16")]},
                "subnets": [{"name": "workload", "properties": {"addressPrefix": format!("10.{n}.0.0/24")}}],
            }}),
        )
        .await
        .unwrap();
    stack
        .landing_zone
        .put(
            &format!("{id}/virtualNetworkPeerings/{name}-to-hub"),
            None,
            &json!({"properties": {
                "allowVirtualNetworkAccess": true,
                "remoteVirtualNetwork": {"id": stack.hub().to_string()},
            }}),
        )
        .await
        .unwrap();
    id
}

/// The changes a live plan over the group's scope still wants.
async fn pending(stack: &Stack) -> usize {
    let observation =
        hubspoke_arm::observe::observe_in_scope(&stack.arm, &stack.config.hubs, &scope(), None)
            .await
            .unwrap();
    hubspoke_core::plan::plan(&stack.config, &observation.observed)
        .hubs
        .iter()
        .map(|hub| hub.changes.len())
        .sum()
}

/// The prefixes routed to the gateway in table `table` of the VNet `vnet` (its managed table).
async fn gateway_routes(stack: &Stack, vnet: &str) -> BTreeSet<String> {
    let table = vnet
        .replace("/virtualNetworks/", "/routeTables/hubspoke-rt-")
        .to_string();
    let table = stack.arm.get(&table).await.unwrap_or(Value::Null);
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

/// Waits until the vended spoke and the others route to each other through the gateway.
async fn wait_transitive(stack: &Stack, vended: &str, prefix: &str) {
    let started = Instant::now();
    loop {
        let routes = gateway_routes(stack, vended).await;
        let spoke1 = gateway_routes(stack, &stack.estate.vnet_id("spoke1")).await;
        if routes.contains("10.1.0.0/16")
            && routes.contains("10.2.0.0/16")
            && spoke1.contains(prefix)
            && pending(stack).await == 0
        {
            return;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the vended spoke did not become transitive: its routes {routes:?}, spoke1's {spoke1:?}; outcomes: {}",
            hubspoke_stack::summary(&stack.outcomes().await.unwrap())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How the ReconcileHub outcomes say `vnet` was found, every pass that changed it.
fn found_by(outcomes: &[Value], vnet: &str) -> Vec<Vec<String>> {
    outcomes
        .iter()
        .filter(|o| o["function"] == "ReconcileHub")
        .flat_map(|o| o["hubs"].as_array().cloned().unwrap_or_default())
        .flat_map(|hub| hub["spokes"].as_array().cloned().unwrap_or_default())
        .filter(|spoke| {
            spoke["vnet"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(vnet))
        })
        .map(|spoke| {
            spoke["found_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|way| way.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Requests the simulator saw under `subscription`.
fn requests_in(stack: &Stack, subscription: &str) -> Vec<String> {
    let prefix = format!("/subscriptions/{subscription}");
    stack
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.to_ascii_lowercase().starts_with(&prefix))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoke_vended_into_the_group_becomes_transitive_by_its_event_and_one_outside_is_never_touched(
) {
    let stack = start(EventKnobs::default()).await;
    place(&stack, &[VENDED]);
    let vended = vend_spoke(&stack, VENDED, "lz-app", 31).await;
    wait_transitive(&stack, &vended, "10.31.0.0/16").await;
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| !found_by(o, &vended).is_empty())
        .await
        .unwrap();
    let ways = found_by(&outcomes, &vended);
    assert!(
        ways[0].contains(&"event".to_string()),
        "the pass its event asked for found it: {ways:?}"
    );

    // A subscription outside the group: its VNet peers with the hub from its side.
    let outsider = vend_spoke(&stack, OUTSIDE, "rogue", 41).await;
    let peering = format!("{outsider}/virtualNetworkPeerings/rogue-to-hub");
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| {
            o.iter().any(|x| {
                x["function"] == "OnNetworkEvent"
                    && x["trigger"]["events"][0]["subject"] == peering.as_str()
            })
        })
        .await
        .unwrap();
    let event = outcomes
        .iter()
        .find(|x| x["trigger"]["events"][0]["subject"] == peering.as_str())
        .unwrap();
    assert_eq!(event["status"], "ignored", "{event:#}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .starts_with("out_of_scope: subscription"),
        "{event:#}"
    );
    // Nothing of hubspoke's reaches the subscription, not even a read, on a full pass either.
    stack.sim.clear_requests();
    stack.drift_check().await.unwrap();
    let drift_passes = |o: &[Value]| {
        o.iter()
            .filter(|x| x["function"] == "ReconcileHub")
            .filter(|x| x["trigger"]["message"]["work_item"].is_string())
            .count()
    };
    let before = drift_passes(&stack.outcomes().await.unwrap());
    stack
        .wait_outcomes(CONVERGE, |o| drift_passes(o) > before)
        .await
        .unwrap();
    assert!(
        requests_in(&stack, OUTSIDE).is_empty(),
        "{:?}",
        requests_in(&stack, OUTSIDE)
    );
    let hub = stack.arm.get(&stack.hub().to_string()).await.unwrap();
    assert!(
        !hub.to_string().to_ascii_lowercase().contains(OUTSIDE),
        "the hub has no peering to the outsider"
    );
    assert_eq!(gateway_routes(&stack, &outsider).await, BTreeSet::new());
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_no_event_reaches_hubspoke_the_drift_check_finds_the_vended_spoke_through_resource_graph(
) {
    // No event is delivered: the Event Grid wiring has not reached the subscription.
    let stack = start(EventKnobs {
        drop: 1.0,
        ..EventKnobs::default()
    })
    .await;
    place(&stack, &[VENDED]);
    let vended = vend_spoke(&stack, VENDED, "lz-data", 32).await;
    assert!(pending(&stack).await > 0, "nothing happened by itself");
    stack.drift_check().await.unwrap();
    wait_transitive(&stack, &vended, "10.32.0.0/16").await;
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| !found_by(o, &vended).is_empty())
        .await
        .unwrap();
    assert_eq!(found_by(&outcomes, &vended)[0], ["resource_graph"]);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_resource_graph_delays_nothing_an_event_announces() {
    let stack = start(EventKnobs::default()).await;
    // Resource Graph's copy is from before the vending, for the whole test.
    stack.sim.freeze_graph();
    place(&stack, &[VENDED]);
    let vended = vend_spoke(&stack, VENDED, "lz-web", 33).await;
    wait_transitive(&stack, &vended, "10.33.0.0/16").await;
    let outcomes = stack
        .wait_outcomes(CONVERGE, |o| !found_by(o, &vended).is_empty())
        .await
        .unwrap();
    assert_eq!(
        found_by(&outcomes, &vended)[0],
        ["event"],
        "the graph did not show it"
    );
    stack.stop().await.unwrap();
}
