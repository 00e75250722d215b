//! One scenario per rule of DESIGN.md section 2, each built from ARM-shaped JSON.
mod support;

use hubspoke_core::plan::{plan, render, HubStatus};
use hubspoke_core::synth::{Estate, Flags};
use serde_json::json;
use support::*;

const SPOKE_SUBNETS: &[(&str, &str)] = &[("default", "10.1.0.0/24")];

/// The source article: a hub with a VPN gateway, Spoke1 and Spoke2 peered with the hub.
fn article() -> Estate {
    let mut estate = Estate::default();
    estate.hub("Hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet("Spoke1", &["10.1.0.0/16"], SPOKE_SUBNETS);
    estate.vnet("Spoke2", &["10.2.0.0/16"], &[("default", "10.2.0.0/24")]);
    estate.peer("Spoke1", "Hub", Flags::default(), "Initiated");
    estate.peer("Spoke2", "Hub", Flags::default(), "Initiated");
    estate
}

#[test]
fn article_two_spokes_reach_each_other_through_the_vpn_gateway() {
    let estate = article();
    let hub = estate.vnet_id("Hub");
    let mut observed = observed(&estate.snapshot());
    let config = config(&[&hub]);
    let first = converge(&config, &mut observed);
    let hub_plan = &first.hubs[0];
    assert_eq!(hub_plan.status, HubStatus::ChangesPending);
    let kinds: Vec<&str> = hub_plan.changes.iter().map(|c| c.action.kind()).collect();
    assert_eq!(
        kinds,
        [
            "create_peering",
            "update_peering",
            "create_peering",
            "update_peering",
            "create_route_table",
            "associate_route_table",
            "create_route_table",
            "associate_route_table",
        ],
        "{}",
        render::text(&first)
    );
    assert_eq!(
        gateway_routes(&observed, "hubspoke-rt-Spoke1"),
        ["10.2.0.0/16"]
    );
    assert_eq!(
        gateway_routes(&observed, "hubspoke-rt-Spoke2"),
        ["10.1.0.0/16"]
    );
    let spoke1 = observed
        .virtual_networks
        .iter()
        .find(|v| v.id.name() == "Spoke1")
        .expect("spoke1");
    let to_hub = &spoke1.peerings[0];
    assert!(to_hub.flags.allow_forwarded_traffic && to_hub.flags.use_remote_gateways);
    let hub_vnet = observed
        .virtual_networks
        .iter()
        .find(|v| v.id.name() == "Hub")
        .expect("hub");
    for peering in &hub_vnet.peerings {
        assert!(peering.flags.allow_forwarded_traffic && peering.flags.allow_gateway_transit);
    }
    assert!(hub_plan.warnings.is_empty(), "{:?}", hub_plan.warnings);
}

#[test]
fn plan_is_ordered_with_dependencies_pointing_backwards() {
    let estate = article();
    let first = plan(
        &config(&[&estate.vnet_id("Hub")]),
        &observed(&estate.snapshot()),
    );
    for change in &first.hubs[0].changes {
        assert!(
            change.depends_on.iter().all(|d| *d < change.id),
            "{change:?}"
        );
    }
    // The spoke side turns on useRemoteGateways only after the hub side exists with transit.
    let changes = &first.hubs[0].changes;
    assert_eq!(changes[1].depends_on, [0]);
}

#[test]
fn json_output_has_the_documented_shape() {
    let estate = article();
    let first = plan(
        &config(&[&estate.vnet_id("Hub")]),
        &observed(&estate.snapshot()),
    );
    let value = serde_json::to_value(&first).expect("serializes");
    let hub = &value["hubs"][0];
    assert_eq!(hub["status"], "changes_pending");
    let change = &hub["changes"][0];
    assert_eq!(change["kind"], "create_peering");
    assert!(change["target"]
        .as_str()
        .is_some_and(|t| t.contains("/virtualNetworkPeerings/")));
    assert!(change["depends_on"].is_array() && change["reason"].is_string());
    assert!(
        change.get("body").is_none(),
        "request bodies are not part of the output"
    );
    let _ = json!({});
}

/// Writes the article's snapshot where the CLI tests and the docs can use it.
#[test]
fn article_snapshot_is_kept_in_the_docs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/article-snapshot.json"
    );
    let text = serde_json::to_string_pretty(&article().snapshot()).expect("serializes") + "\n";
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current != text {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples"))
            .expect("docs dir");
        std::fs::write(path, &text).expect("write");
        assert!(
            std::env::var("CI").is_err(),
            "docs/examples/article-snapshot.json was stale; it is regenerated: commit it"
        );
    }
}
