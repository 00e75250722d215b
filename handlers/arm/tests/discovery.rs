//! Discovery of spokes in subscriptions no setting lists: a scope of management groups or of
//! every readable subscription, Resource Graph naming the VNets peered with a hub, ARM reading
//! only their subscriptions. Against the simulator over HTTPS: which subscriptions are read, what
//! is written, how each spoke was found, and that a lagging graph never leads to a write.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::sim_and_client;
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::observe::{observe_in_scope, FoundBy};
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions, ReconcileResult};
use hubspoke_core::config::{PlanConfig, Scope};
use hubspoke_core::synth::Estate;
use hubspoke_sim::{GraphPeerings, GroupSpec, SimConfig, SimHandle, Strictness};
use serde_json::{json, Value};

const HUB_SUB: &str = "00000000-0000-4000-8000-00000000a000";
/// Under the management group, each with one spoke peered from its side.
const VENDED: [&str; 3] = [
    "00000000-0000-4000-8000-00000000a001",
    "00000000-0000-4000-8000-00000000a002",
    "00000000-0000-4000-8000-00000000a003",
];
/// Under the management group, holding no spoke (a VNet of its own, not peered).
const IDLE: [&str; 2] = [
    "00000000-0000-4000-8000-00000000b001",
    "00000000-0000-4000-8000-00000000b002",
];
/// Outside the management group, with a spoke peered from its side.
const OUTSIDE: &str = "00000000-0000-4000-8000-00000000c001";
const GROUP: &str = "mg-landing-zones";

fn hub_id() -> String {
    Estate::new(HUB_SUB, "rg-hub", "westeurope").vnet_id("hub")
}

/// A VNet `name` in `subscription` with one workload subnet, peered with the hub from its side
/// only, as a landing zone leaves it.
fn spoke(subscription: &str, name: &str, n: usize) -> Value {
    let mut estate = Estate::new(subscription, "rg-lz", "westeurope");
    let id = estate.vnet(
        name,
        &[&format!("10.{n}.0.0/16")],
        &[("workload", &format!("10.{n}.0.0/24"))],
    );
    estate.vnet_mut(name)["properties"]["virtualNetworkPeerings"] = json!([{
        "name": "to-hub",
        "id": format!("{id}/virtualNetworkPeerings/to-hub"),
        "properties": {
            "peeringState": "Initiated",
            "allowVirtualNetworkAccess": true,
            "remoteVirtualNetwork": {"id": hub_id()},
        }
    }]);
    estate.virtual_networks.remove(0)
}

fn snapshot() -> Value {
    let mut hub = Estate::new(HUB_SUB, "rg-hub", "westeurope");
    hub.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    let mut vnets = hub.virtual_networks.clone();
    for (n, subscription) in VENDED.iter().enumerate() {
        vnets.push(spoke(subscription, &format!("spoke{n}"), n + 1));
    }
    vnets.push(spoke(OUTSIDE, "outsider", 50));
    for (n, subscription) in IDLE.iter().enumerate() {
        let mut estate = Estate::new(subscription, "rg-app", "westeurope");
        estate.vnet(
            "isolated",
            &[&format!("172.16.{n}.0/24")],
            &[("app", &format!("172.16.{n}.0/26"))],
        );
        vnets.extend(estate.virtual_networks);
    }
    json!({"virtualNetworks": vnets, "routeTables": [], "virtualNetworkGateways": hub.gateways})
}

async fn bed(peerings: GraphPeerings) -> (SimHandle, ArmClient) {
    let (sim, client) = sim_and_client(SimConfig {
        strictness: Strictness {
            graph_peerings: peerings,
            ..Strictness::default()
        },
        ..SimConfig::default()
    })
    .await;
    sim.load(&snapshot()).unwrap();
    let mut placed: Vec<String> = VENDED.iter().map(|s| s.to_string()).collect();
    placed.extend(IDLE.iter().map(|s| s.to_string()));
    sim.put_management_group(
        GROUP,
        &GroupSpec {
            display_name: Some("Landing zones".into()),
            parent: None,
            subscriptions: placed,
        },
    )
    .unwrap();
    (sim, client)
}

fn config() -> PlanConfig {
    PlanConfig::new(vec![hub_id().parse().unwrap()])
}

fn groups() -> Scope {
    Scope::ManagementGroups(vec![GROUP.to_string()])
}

/// The subscriptions the simulator saw a request for, and those it saw a write for.
fn touched(sim: &SimHandle) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut read = BTreeSet::new();
    let mut written = BTreeSet::new();
    for request in sim.requests() {
        let mut parts = request.path.split(['/', '?']);
        let (Some(""), Some("subscriptions"), Some(subscription)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let subscription = subscription.to_ascii_lowercase();
        if request.method == "GET" {
            read.insert(subscription);
        } else {
            written.insert(subscription);
        }
    }
    (read, written)
}

fn found_by(result: &ReconcileResult, name: &str) -> Vec<FoundBy> {
    result.hubs[0]
        .spokes
        .iter()
        .find(|spoke| spoke.vnet.name() == name)
        .map(|spoke| spoke.found_by.clone())
        .unwrap_or_default()
}

async fn pass(client: &ArmClient, scope: Scope, event: Option<String>) -> ReconcileResult {
    let options = ReconcileOptions {
        scope,
        event_resource: event,
        ..ReconcileOptions::default()
    };
    let (result, _) = reconcile(client, &config(), &options, None).await.unwrap();
    assert!(!result.has_failures(), "{}", result.text());
    result
}

#[tokio::test]
async fn a_management_group_scope_reads_only_the_subscriptions_that_hold_spokes() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    let result = pass(&client, groups(), None).await;
    for n in 0..3 {
        assert_eq!(
            found_by(&result, &format!("spoke{n}")),
            [FoundBy::ResourceGraph],
            "{}",
            result.text()
        );
    }
    let (read, written) = touched(&sim);
    let expected: BTreeSet<String> = std::iter::once(HUB_SUB)
        .chain(VENDED)
        .map(str::to_string)
        .collect();
    assert_eq!(
        read, expected,
        "neither the idle subscriptions nor the outsider's are read"
    );
    assert_eq!(written, expected);
    // The descendants of the group and the two Resource Graph queries, besides ARM's lists:
    // once to plan, and once more to verify the estate as the pass's writes left it.
    let tenant_reads: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| !r.path.starts_with("/subscriptions"))
        .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap_or("")))
        .collect();
    assert_eq!(
        tenant_reads
            .iter()
            .filter(|r| r.contains("/descendants"))
            .count(),
        2
    );
    assert_eq!(
        tenant_reads
            .iter()
            .filter(|r| r.starts_with("POST /providers/Microsoft.ResourceGraph"))
            .count(),
        4
    );

    // Once converged: the same subscriptions, nothing written, and now found both ways.
    sim.clear_requests();
    let again = pass(&client, groups(), None).await;
    assert_eq!(again.applied(), 0, "{}", again.text());
    let (read, written) = touched(&sim);
    assert_eq!(read, expected);
    assert!(written.is_empty());
    let observation = observe_in_scope(&client, &config().hubs, &groups(), None)
        .await
        .unwrap();
    let spoke0 = observation
        .found_by
        .iter()
        .find(|(vnet, _)| vnet.name() == "spoke0")
        .unwrap();
    assert_eq!(spoke0.1, &[FoundBy::HubPeering, FoundBy::ResourceGraph]);
    assert!(
        !observation.found_by.keys().any(|v| v.name() == "outsider"),
        "the outsider is never read"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn every_readable_subscription_includes_those_outside_any_group() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    let result = pass(&client, Scope::Readable, None).await;
    assert_eq!(found_by(&result, "outsider"), [FoundBy::ResourceGraph]);
    let (read, _) = touched(&sim);
    assert!(read.contains(OUTSIDE));
    assert!(
        !read.contains(IDLE[0]),
        "a subscription without a spoke is not listed"
    );
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/subscriptions?")));
    sim.shutdown().await;
}

#[tokio::test]
async fn spokes_are_found_wherever_resource_graph_shows_peerings() {
    for peerings in [GraphPeerings::Both, GraphPeerings::Rows] {
        let (sim, client) = bed(peerings).await;
        let result = pass(&client, groups(), None).await;
        for n in 0..3 {
            assert_eq!(
                found_by(&result, &format!("spoke{n}")),
                [FoundBy::ResourceGraph],
                "{peerings:?}"
            );
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_stale_resource_graph_row_leads_to_no_write() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    // Converge first: the three spokes are transitive.
    pass(&client, groups(), None).await;
    // Two more spokes in vended subscriptions, peered from their side; Resource Graph takes its
    // copy; then ARM loses one of them and the other's peering, and spoke2 is renumbered.
    let (gone, unpeered) = (
        "00000000-0000-4000-8000-00000000a004",
        "00000000-0000-4000-8000-00000000a005",
    );
    let mut estate = sim.state();
    let vnets = estate["virtualNetworks"].as_array_mut().unwrap();
    vnets.push(spoke(gone, "ghost", 9));
    vnets.push(spoke(unpeered, "former", 10));
    sim.load(&estate).unwrap();
    sim.put_management_group(
        GROUP,
        &GroupSpec {
            display_name: None,
            parent: None,
            subscriptions: VENDED
                .iter()
                .chain(IDLE.iter())
                .chain([&gone, &unpeered])
                .map(|s| s.to_string())
                .collect(),
        },
    )
    .unwrap();
    sim.freeze_graph();
    let mut estate = sim.state();
    let vnets = estate["virtualNetworks"].as_array_mut().unwrap();
    vnets.retain(|v| !v["id"].as_str().unwrap().contains("/ghost"));
    for vnet in vnets.iter_mut() {
        let id = vnet["id"].as_str().unwrap().to_string();
        if id.ends_with("/former") {
            vnet["properties"]["virtualNetworkPeerings"] = json!([]);
        }
    }
    sim.load(&estate).unwrap();
    // spoke2 grows through ARM, as its owner would: a VNet PUT with one more prefix.
    let spoke2 = Estate::new(VENDED[2], "rg-lz", "westeurope").vnet_id("spoke2");
    let mut body = client.get(&spoke2).await.unwrap();
    body.as_object_mut().unwrap().remove("etag");
    let properties = body["properties"].as_object_mut().unwrap();
    properties.remove("provisioningState");
    properties.remove("resourceGuid");
    properties.remove("virtualNetworkPeerings");
    body["properties"]["addressSpace"]["addressPrefixes"] = json!(["10.3.0.0/16", "10.33.0.0/16"]);
    client.put(&spoke2, None, &body).await.unwrap();
    let stale = hubspoke_arm::resource_graph::vnets_peered_with(
        &client,
        &hubspoke_arm::resource_graph::GraphScope::ManagementGroups(vec![GROUP.into()]),
        &config().hubs,
    )
    .await
    .unwrap();
    assert_eq!(
        stale.len(),
        5,
        "the graph still shows the ghost and the former spoke"
    );

    sim.clear_requests();
    let result = pass(&client, groups(), None).await;
    let (read, written) = touched(&sim);
    assert!(
        read.contains(gone) && read.contains(unpeered),
        "a stale row costs the read of its subscription"
    );
    assert!(
        !written.contains(gone) && !written.contains(unpeered),
        "nothing is written from a stale row: {written:?}\n{}",
        result.text()
    );
    // spoke2's routes follow ARM's address space, not the graph's.
    let targets: Vec<String> = result.hubs[0]
        .changes
        .iter()
        .filter(|c| c.change.action.kind() == "upsert_route")
        .map(|c| c.change.action.target())
        .collect();
    assert!(
        targets.iter().any(|t| t.ends_with("hubspoke-10-33-0-0-16")),
        "{}",
        result.text()
    );
    let graph_copy = hubspoke_arm::resource_graph::query(
        &client,
        &hubspoke_arm::resource_graph::GraphScope::ManagementGroups(vec![GROUP.into()]),
        "Resources | where name =~ 'spoke2' | project properties",
    )
    .await
    .unwrap();
    assert!(
        !graph_copy[0].to_string().contains("10.33.0.0/16"),
        "the graph does not know the new prefix yet"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_spoke_the_graph_does_not_show_yet_is_found_by_its_event_or_by_a_later_pass() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    pass(&client, groups(), None).await;
    sim.freeze_graph();
    // A subscription vended after the graph's copy, placed in the group, and a spoke in it.
    let vended = "00000000-0000-4000-8000-00000000a005";
    let mut placed: Vec<String> = VENDED
        .iter()
        .chain(IDLE.iter())
        .map(|s| s.to_string())
        .collect();
    placed.push(vended.to_string());
    sim.put_management_group(
        GROUP,
        &GroupSpec {
            display_name: None,
            parent: None,
            subscriptions: placed,
        },
    )
    .unwrap();
    let body = spoke(vended, "newcomer", 60);
    let id = body["id"].as_str().unwrap().to_string();
    client
        .put(
            &id,
            None,
            &json!({"location": "westeurope", "properties": {
            "addressSpace": body["properties"]["addressSpace"],
            "subnets": [{"name": "workload", "properties": {"addressPrefix": "10.60.0.0/24"}}]}}),
        )
        .await
        .unwrap();
    client
        .put(
            &format!("{id}/virtualNetworkPeerings/to-hub"),
            None,
            &json!({"properties": {"allowVirtualNetworkAccess": true, "remoteVirtualNetwork": {"id": hub_id()}}}),
        )
        .await
        .unwrap();

    // A drift check's pass: the graph lags, the newcomer waits.
    sim.clear_requests();
    let drift = pass(&client, groups(), None).await;
    assert_eq!(drift.applied(), 0, "{}", drift.text());
    assert!(!touched(&sim).0.contains(vended));

    // The pass its event asks for finds it at once.
    let event = pass(
        &client,
        groups(),
        Some(format!("{id}/virtualNetworkPeerings/to-hub")),
    )
    .await;
    assert_eq!(
        found_by(&event, "newcomer"),
        [FoundBy::Event],
        "{}",
        event.text()
    );
    assert!(event.applied() > 0);

    // An event from outside the group reads nothing there.
    sim.clear_requests();
    let outside = pass(
        &client,
        groups(),
        Some(Estate::new(OUTSIDE, "rg-lz", "westeurope").vnet_id("outsider")),
    )
    .await;
    assert_eq!(outside.applied(), 0);
    assert!(!touched(&sim).0.contains(OUTSIDE));
    sim.shutdown().await;
}

#[tokio::test]
async fn listed_and_reached_scopes_say_how_their_spokes_were_found() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    let listed = pass(&client, Scope::Listed(vec![VENDED[0].to_string()]), None).await;
    assert_eq!(found_by(&listed, "spoke0"), [FoundBy::ListedSubscription]);
    assert!(
        found_by(&listed, "spoke1").is_empty(),
        "not listed, not found"
    );
    // Reached: the hub's peering to spoke0 now exists, and leads to it.
    let reached = observe_in_scope(&client, &config().hubs, &Scope::Reached, None)
        .await
        .unwrap();
    let ways: Vec<(&str, &Vec<FoundBy>)> = reached
        .found_by
        .iter()
        .map(|(vnet, ways)| (vnet.name(), ways))
        .collect();
    assert_eq!(ways, [("spoke0", &vec![FoundBy::HubPeering])]);
    assert!(!sim
        .requests()
        .iter()
        .any(|r| r.path.contains("ResourceGraph") || r.path.contains("descendants")));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_management_group_that_cannot_be_read_stops_the_pass_naming_it() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    let options = ReconcileOptions {
        scope: Scope::ManagementGroups(vec!["mg-nowhere".into()]),
        ..ReconcileOptions::default()
    };
    let error = reconcile(&client, &config(), &options, None)
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("mg-nowhere"), "{error}");
    let (_, written) = touched(&sim);
    assert!(written.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_subscription_that_left_the_group_is_not_written_though_the_graph_still_places_it() {
    let (sim, client) = bed(GraphPeerings::Inline).await;
    // The graph's copy places VENDED[0] in the group; Resource Manager no longer does.
    sim.freeze_graph();
    sim.put_management_group(
        GROUP,
        &GroupSpec {
            display_name: None,
            parent: None,
            subscriptions: VENDED[1..]
                .iter()
                .chain(IDLE.iter())
                .map(|s| s.to_string())
                .collect(),
        },
    )
    .unwrap();
    let result = pass(&client, groups(), None).await;
    assert!(found_by(&result, "spoke0").is_empty(), "{}", result.text());
    assert_eq!(found_by(&result, "spoke1"), [FoundBy::ResourceGraph]);
    let (_, written) = touched(&sim);
    assert!(!written.contains(VENDED[0]), "{written:?}");
    let observation = observe_in_scope(&client, &config().hubs, &groups(), None)
        .await
        .unwrap();
    assert!(
        !observation
            .observed
            .virtual_networks
            .iter()
            .any(|v| v.id.name() == "spoke0"),
        "what was read of it is forgotten before planning"
    );
    assert!(!observation
        .subscriptions
        .iter()
        .any(|s| s.eq_ignore_ascii_case(VENDED[0])));
    sim.shutdown().await;
}
