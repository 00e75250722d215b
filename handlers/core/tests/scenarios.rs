//! One scenario per rule of `docs/design.md` section 2, each built from ARM-shaped JSON.
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
}

#[test]
fn every_change_says_what_it_was_and_what_it_becomes() {
    let estate = article();
    let first = plan(
        &config(&[&estate.vnet_id("Hub")]),
        &observed(&estate.snapshot()),
    );
    for change in &first.hubs[0].changes {
        let (before, after) = change.action.before_after();
        match change.action.kind() {
            "create_peering" => {
                assert!(before.is_null());
                assert_eq!(after["flags"]["allowForwardedTraffic"], true);
                assert!(after["remoteVirtualNetwork"].is_string());
            }
            "update_peering" => {
                assert_eq!(before["flags"]["useRemoteGateways"], false);
                assert_eq!(after["flags"]["useRemoteGateways"], true);
            }
            "create_route_table" => {
                assert!(before.is_null());
                assert!(after["routes"].is_array());
            }
            "associate_route_table" => {
                assert!(before["routeTable"].is_null());
                assert!(after["routeTable"]
                    .as_str()
                    .is_some_and(|id| id.contains("/routeTables/hubspoke-rt-Spoke")));
            }
            other => panic!("unexpected change {other}"),
        }
    }
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
        panic!("docs/examples/article-snapshot.json was stale; it is regenerated: commit it");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the per-rule scenarios.

use hubspoke_core::config::{Enrollment, PlanConfig};
use hubspoke_core::model::Observed;
use hubspoke_core::plan::{Action, HubPlan, Plan};

/// A hub with a ready VPN gateway and spokes A (10.1/16) and B (10.2/16), both already transit
/// and routed to each other through their own managed tables: a converged estate.
fn converged_pair() -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for (name, prefix, subnet, other) in [
        ("a", "10.1.0.0/16", "10.1.0.0/24", "10.2.0.0/16"),
        ("b", "10.2.0.0/16", "10.2.0.0/24", "10.1.0.0/16"),
    ] {
        estate.vnet(name, &[prefix], &[("app", subnet)]);
        estate.connect_transit("hub", name);
        let route = format!(
            "hubspoke-{}-16",
            other.trim_end_matches("/16").replace('.', "-")
        );
        let table = format!("hubspoke-rt-{name}");
        estate.table(
            &table,
            &[(&route, other, "VirtualNetworkGateway", None)],
            json!({"hubspoke:managed": "true"}),
        );
        estate.associate(name, "app", &table);
    }
    estate
}

/// Adds spoke `name` with `prefix`, transit and routed nowhere yet.
fn add_transit_spoke(estate: &mut Estate, name: &str, prefix: &str, subnet: &str) {
    estate.vnet(name, &[prefix], &[("app", subnet)]);
    estate.connect_transit("hub", name);
}

fn hub_config(estate: &Estate) -> PlanConfig {
    config(&[&estate.vnet_id("hub")])
}

fn plan_of(estate: &Estate, config: &PlanConfig) -> (Plan, Observed) {
    let observed = observed(&estate.snapshot());
    (plan(config, &observed), observed)
}

fn hub0(plan: &Plan) -> &HubPlan {
    &plan.hubs[0]
}

fn kinds_and_names(hub: &HubPlan) -> Vec<(String, String)> {
    hub.changes
        .iter()
        .map(|c| {
            let target = c.action.target();
            let name = target.rsplit('/').next().unwrap_or_default().to_owned();
            (c.action.kind().to_owned(), name)
        })
        .collect()
}

fn warning_details<'p>(hub: &'p HubPlan, code: &str) -> Vec<&'p serde_json::Value> {
    hub.warnings
        .iter()
        .filter(|w| w.code.as_str() == code)
        .map(|w| &w.details)
        .collect()
}

// Rule 13: no-op is free.
#[test]
fn converged_estate_plans_zero_writes() {
    let estate = converged_pair();
    let (plan, _) = plan_of(&estate, &hub_config(&estate));
    assert_eq!(
        hub0(&plan).status,
        HubStatus::UpToDate,
        "{}",
        render::text(&plan)
    );
    assert!(hub0(&plan).warnings.is_empty());
}

// Rule 1: an existing peering is adopted whatever its name; the missing side is created.
#[test]
fn existing_hub_side_is_adopted_and_only_the_spoke_side_created() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet("s", &["10.1.0.0/16"], &[("app", "10.1.0.0/24")]);
    estate.peer("hub", "s", Flags::default(), "Initiated");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let changes = kinds_and_names(hub0(&plan));
    assert_eq!(
        changes[0],
        ("update_peering".into(), "hub-to-s".into()),
        "{changes:?}"
    );
    assert_eq!(changes[1], ("create_peering".into(), "hubspoke-hub".into()));
    assert_eq!(
        changes
            .iter()
            .filter(|(k, _)| k == "create_peering")
            .count(),
        1,
        "never a second peering to the same remote VNet"
    );
    converge(&config, &mut observed);
}

#[test]
fn missing_peerings_are_not_created_when_the_setting_is_off() {
    let estate = article();
    let mut config = config(&[&estate.vnet_id("Hub")]);
    config.create_missing_peerings = false;
    let (plan, _) = plan_of(&estate, &config);
    assert!(hub0(&plan).changes.is_empty());
    assert_eq!(warning_details(hub0(&plan), "spoke_not_transit").len(), 2);
}

// Rule 2: useRemoteGateways unless the spoke has its own gateway or uses another's.
#[test]
fn spoke_with_its_own_gateway_or_another_remote_gateway_is_not_transit() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet(
        "own",
        &["10.1.0.0/16"],
        &[("app", "10.1.0.0/24"), ("GatewaySubnet", "10.1.255.0/27")],
    );
    estate.gateway("own", "own-gw", "Vpn", "VpnGw1", "Succeeded");
    estate.connect("hub", "own");
    estate.hub(
        "otherhub",
        "10.9.0.0/16",
        "10.9.255.0/27",
        Some("Succeeded"),
    );
    estate.vnet("elsewhere", &["10.2.0.0/16"], &[("app", "10.2.0.0/24")]);
    estate.connect("hub", "elsewhere");
    estate.peer(
        "elsewhere",
        "otherhub",
        Flags {
            remote_gateways: true,
            ..Flags::default()
        },
        "Connected",
    );
    let (plan, _) = plan_of(&estate, &hub_config(&estate));
    let hub = hub0(&plan);
    let details: Vec<&str> = warning_details(hub, "spoke_not_transit")
        .iter()
        .filter_map(|d| d["detail"].as_str())
        .collect();
    assert!(
        details.contains(&"own_gateway") && details.contains(&"remote_gateways_used_elsewhere"),
        "{details:?}"
    );
    for change in &hub.changes {
        if let Action::UpdatePeering { after, target, .. } = &change.action {
            if target.vnet().name() != "hub" {
                assert!(!after.use_remote_gateways, "{target}");
            }
        }
        assert!(!matches!(
            change.action,
            Action::CreateRouteTable { .. } | Action::UpsertRoute { .. }
        ));
    }
}

// Rule 3: flags only go on by themselves; off only when the gateway is gone, spoke side first.
#[test]
fn gateway_still_provisioning_fixes_peerings_without_transit_and_writes_no_routes() {
    let mut estate = article();
    estate.set_gateway_state("Updating");
    let config = config(&[&estate.vnet_id("Hub")]);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    assert!(support::codes(hub).contains(&"gateway_not_ready"));
    for change in &hub.changes {
        match &change.action {
            Action::CreatePeering { after, .. } | Action::UpdatePeering { after, .. } => {
                assert!(after.allow_forwarded_traffic);
                assert!(!after.allow_gateway_transit && !after.use_remote_gateways);
            }
            other => panic!("unexpected change {other:?}"),
        }
    }
    converge(&config, &mut observed);
}

#[test]
fn working_estate_whose_gateway_is_updating_or_failed_changes_nothing() {
    for state in ["Updating", "Failed"] {
        let mut estate = converged_pair();
        estate.set_gateway_state(state);
        let (plan, _) = plan_of(&estate, &hub_config(&estate));
        assert!(
            hub0(&plan).changes.is_empty(),
            "{state}: {}",
            render::text(&plan)
        );
        assert_eq!(support::codes(hub0(&plan)), ["gateway_not_ready"]);
    }
}

#[test]
fn gone_gateway_removes_routes_then_spoke_transit_then_hub_transit() {
    let mut estate = converged_pair();
    estate.gateways.clear();
    if let Some(configs) = estate.subnet_mut("hub", "GatewaySubnet")["properties"].as_object_mut() {
        configs.remove("ipConfigurations");
    }
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    let routes_last = hub
        .changes
        .iter()
        .filter(|c| c.action.kind() == "delete_route")
        .map(|c| c.id)
        .max();
    assert_eq!(routes_last, Some(1), "{}", render::text(&plan));
    assert!(hub.changes[..2].iter().all(|c| c.phase == 0));
    for pair in hub.changes[2..].chunks(2) {
        let (
            Action::UpdatePeering {
                target: spoke_side,
                after: spoke_after,
                ..
            },
            Action::UpdatePeering {
                target: hub_side,
                after: hub_after,
                ..
            },
        ) = (&pair[0].action, &pair[1].action)
        else {
            panic!("expected spoke side then hub side: {}", render::text(&plan));
        };
        assert_ne!(spoke_side.vnet().name(), "hub");
        assert_eq!(hub_side.vnet().name(), "hub");
        assert!(!spoke_after.use_remote_gateways && !hub_after.allow_gateway_transit);
        assert_eq!(pair[1].depends_on, [pair[0].id]);
    }
    converge(&config, &mut observed);
}

#[test]
fn disabled_virtual_network_access_is_reported_and_never_flipped() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet("s", &["10.1.0.0/16"], &[("app", "10.1.0.0/24")]);
    estate.peer("hub", "s", Flags::default(), "Connected");
    estate.peer(
        "s",
        "hub",
        Flags {
            access_disabled: true,
            ..Flags::default()
        },
        "Connected",
    );
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    assert!(support::codes(hub0(&plan)).contains(&"access_disabled"));
    for change in &hub0(&plan).changes {
        if let Action::UpdatePeering { before, after, .. } = &change.action {
            assert_eq!(
                before.allow_virtual_network_access,
                after.allow_virtual_network_access
            );
        }
        assert!(
            !matches!(change.action, Action::CreateRouteTable { .. }),
            "not transit: no table"
        );
    }
    converge(&config, &mut observed);
}

// Rule 4: address-space sync, and routes to the new prefixes after it.
#[test]
fn resized_spoke_is_synced_and_its_new_prefix_routed_after_the_sync() {
    let mut estate = converged_pair();
    let grown = json!({"addressPrefixes": ["10.2.0.0/16", "10.20.0.0/16"]});
    estate.vnet_mut("b")["properties"]["addressSpace"] = grown.clone();
    let b_id = estate.vnet_id("b");
    for peering in estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if peering["properties"]["remoteVirtualNetwork"]["id"] == b_id.as_str() {
            peering["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
            peering["properties"]["remoteVirtualNetworkAddressSpace"] = grown.clone();
        }
    }
    estate.vnet_mut("b")["properties"]["virtualNetworkPeerings"][0]["properties"]
        ["peeringSyncLevel"] = "RemoteNotInSync".into();
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    assert_eq!(
        kinds_and_names(hub),
        [
            ("sync_peering".into(), "hub-to-b".into()),
            ("upsert_route".into(), "hubspoke-10-20-0-0-16".into())
        ],
        "{}",
        render::text(&plan)
    );
    assert_eq!(hub.changes[1].depends_on, [0]);
    converge(&config, &mut observed);
    assert_eq!(
        gateway_routes(&observed, "hubspoke-rt-a"),
        ["10.2.0.0/16", "10.20.0.0/16"]
    );
}

// Rule 5: disconnected pairs.
#[test]
fn disconnected_peering_is_reported_and_never_written() {
    let mut estate = converged_pair();
    estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"]
        .as_array_mut()
        .expect("peerings")
        .retain(|p| p["name"] != "hub-to-b");
    estate.vnet_mut("b")["properties"]["virtualNetworkPeerings"][0]["properties"]["peeringState"] =
        "Disconnected".into();
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    let warned: Vec<&str> = hub
        .warnings
        .iter()
        .filter(|w| w.code.as_str() == "peering_disconnected")
        .map(|w| w.target.as_str())
        .collect();
    assert_eq!(warned.len(), 1);
    assert!(warned[0].ends_with("/virtualNetworks/b/virtualNetworkPeerings/b-to-hub"));
    // B is no longer routed: its route leaves A's table first; nothing touches B's peering.
    assert_eq!(
        kinds_and_names(hub),
        [
            ("delete_route".into(), "hubspoke-10-2-0-0-16".into()),
            ("delete_route".into(), "hubspoke-10-1-0-0-16".into())
        ]
    );
    converge(&config, &mut observed);
}

#[test]
fn a_deleted_spoke_leaves_a_disconnected_hub_peering_which_is_reported_as_such() {
    let mut estate = converged_pair();
    // Spoke B's VNet is deleted: Azure leaves the hub's side Disconnected, pointing at nothing.
    estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"]
        .as_array_mut()
        .expect("peerings")
        .iter_mut()
        .filter(|p| p["name"] == "hub-to-b")
        .for_each(|p| p["properties"]["peeringState"] = "Disconnected".into());
    estate.virtual_networks.retain(|v| v["name"] != "b");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    assert!(
        !codes(hub).contains(&"out_of_scope"),
        "the VNet is gone, not unreadable: {:?}",
        hub.warnings
    );
    let warned: Vec<&str> = hub
        .warnings
        .iter()
        .filter(|w| w.code.as_str() == "peering_disconnected")
        .map(|w| w.target.as_str())
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", hub.warnings);
    assert!(warned[0].ends_with("/virtualNetworks/hub/virtualNetworkPeerings/hub-to-b"));
    converge(&config, &mut observed);
}

// Rule 6: coverage of eligible subnets.
#[test]
fn only_eligible_subnets_get_the_managed_table() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet(
        "s",
        &["10.1.0.0/16"],
        &[
            ("app", "10.1.0.0/24"),
            ("AzureBastionSubnet", "10.1.1.0/26"),
            ("AzureFirewallSubnet", "10.1.2.0/26"),
            ("files", "10.1.3.0/24"),
            ("legacy", "10.1.4.0/24"),
            ("mi", "10.1.5.0/24"),
        ],
    );
    estate.subnet_mut("s", "files")["properties"]["delegations"] =
        json!([{"name": "d", "properties": {"serviceName": "Microsoft.NetApp/volumes"}}]);
    estate.subnet_mut("s", "mi")["properties"]["delegations"] =
        json!([{"name": "d", "properties": {"serviceName": "Microsoft.Sql/managedInstances"}}]);
    estate.table("mi-rt", &[], json!({}));
    estate.associate("s", "mi", "mi-rt");
    add_transit_spoke(&mut estate, "t", "10.2.0.0/16", "10.2.0.0/24");
    estate.connect_transit("hub", "s");
    let mut config = hub_config(&estate);
    config.exclude_subnets.insert("legacy".into());
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    let associated: Vec<String> = kinds_and_names(hub)
        .into_iter()
        .filter(|(k, _)| k == "associate_route_table")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(associated, ["app", "app"], "{}", render::text(&plan));
    assert!(warning_details(hub, "subnet_ineligible")
        .iter()
        .any(|d| d["detail"] == "delegated_to_netapp"));
    // The SQL MI subnet's own table is written; its subnet is not.
    assert!(hub.changes.iter().any(|c| matches!(&c.action, Action::UpsertRoute { target, .. } if target.route_table().name() == "mi-rt")));
    converge(&config, &mut observed);
}

#[test]
fn a_foreign_table_with_the_managed_name_is_a_clash_and_stays_unused() {
    let mut estate = article();
    estate.table("hubspoke-rt-Spoke1", &[], json!({}));
    let config = config(&[&estate.vnet_id("Hub")]);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    assert!(support::codes(hub).contains(&"name_clash"));
    assert!(!hub.changes.iter().any(|c| c
        .action
        .target()
        .contains("/virtualNetworks/Spoke1/subnets/")));
    converge(&config, &mut observed);
}

// Rule 7: writable tables.
#[test]
fn excluded_managed_only_and_shared_tables_are_not_written() {
    let mut estate = converged_pair();
    add_transit_spoke(&mut estate, "c", "10.3.0.0/16", "10.3.0.0/24");
    add_transit_spoke(&mut estate, "d", "10.4.0.0/16", "10.4.0.0/24");
    add_transit_spoke(&mut estate, "e", "10.5.0.0/16", "10.5.0.0/24");
    estate.table("terraform-rt", &[], json!({"hubspoke:exclude": "true"}));
    estate.associate("c", "app", "terraform-rt");
    estate.table("shared-rt", &[], json!({}));
    estate.associate("d", "app", "shared-rt");
    estate.associate("e", "app", "shared-rt");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    let codes = support::codes(hub);
    assert!(
        codes.contains(&"table_excluded") && codes.contains(&"shared_route_table"),
        "{codes:?}"
    );
    assert!(!hub
        .changes
        .iter()
        .any(|c| c.action.target().contains("terraform-rt")
            || c.action.target().contains("shared-rt")));
    converge(&config, &mut observed);

    let mut config = hub_config(&estate);
    config.managed_tables_only = true;
    let mut estate = converged_pair();
    estate.table("foreign-rt", &[], json!({}));
    estate.associate("a", "app", "foreign-rt");
    let (plan, _) = plan_of(&estate, &config);
    assert!(warning_details(hub0(&plan), "table_excluded")
        .iter()
        .any(|d| d["detail"] == "managed_tables_only"));
}

// Rules 8 and 9: symmetric routed pairs, and what a table can carry.
#[test]
fn a_firewall_default_route_blocks_routing_in_both_directions() {
    let mut estate = converged_pair();
    estate.table(
        "fw-rt",
        &[("default", "0.0.0.0/0", "VirtualAppliance", Some("10.0.1.4"))],
        json!({}),
    );
    add_transit_spoke(&mut estate, "c", "10.3.0.0/16", "10.3.0.0/24");
    estate.associate("c", "app", "fw-rt");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    assert!(hub.changes.is_empty(), "{}", render::text(&plan));
    assert!(warning_details(hub, "route_conflict")
        .iter()
        .any(|d| d["detail"] == "covered_by_foreign"));
    converge(&config, &mut observed);

    let mut config = hub_config(&estate);
    config.allow_over_default_route = true;
    let (plan, mut observed) = plan_of(&estate, &config);
    assert_eq!(hub0(&plan).changes.len(), 5, "{}", render::text(&plan));
    converge(&config, &mut observed);
    assert_eq!(
        gateway_routes(&observed, "fw-rt"),
        ["10.1.0.0/16", "10.2.0.0/16"]
    );
}

#[test]
fn an_exact_foreign_route_blocks_the_pair() {
    let mut estate = converged_pair();
    estate.table(
        "own-rt",
        &[("to-b", "10.2.0.0/16", "VirtualAppliance", Some("10.0.1.4"))],
        json!({}),
    );
    add_transit_spoke(&mut estate, "c", "10.9.0.0/16", "10.9.0.0/24");
    estate.associate("c", "app", "own-rt");
    let (plan, _) = plan_of(&estate, &hub_config(&estate));
    let hub = hub0(&plan);
    let conflicts = warning_details(hub, "route_conflict");
    assert!(conflicts
        .iter()
        .any(|d| d["detail"] == "covered_by_foreign" || d["detail"] == "exact"));
    // C routes to A only, and A to C only: B and C stay apart.
    let targets: Vec<String> = hub.changes.iter().map(|c| c.action.target()).collect();
    assert!(targets
        .iter()
        .any(|t| t.ends_with("hubspoke-rt-a/routes/hubspoke-10-9-0-0-16")));
    assert!(!targets
        .iter()
        .any(|t| t.ends_with("hubspoke-rt-b/routes/hubspoke-10-9-0-0-16")));
}

#[test]
fn directly_peered_spokes_get_no_route_to_each_other() {
    let mut estate = converged_pair();
    estate.connect("a", "b");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    assert_eq!(
        kinds_and_names(hub0(&plan)).len(),
        2,
        "both stale routes go"
    );
    converge(&config, &mut observed);
    assert!(gateway_routes(&observed, "hubspoke-rt-a").is_empty());
}

#[test]
fn groups_keep_spokes_apart() {
    let mut estate = converged_pair();
    estate.tag_vnet("a", "hubspoke:group", "prod");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    assert_eq!(
        kinds_and_names(hub0(&plan))
            .iter()
            .filter(|(k, _)| k == "delete_route")
            .count(),
        2
    );
    converge(&config, &mut observed);
}

// Rule 10: exact-union aggregation and summary prefixes.
#[test]
fn adjacent_prefixes_merge_into_their_exact_union() {
    let mut estate = converged_pair();
    add_transit_spoke(&mut estate, "c", "10.4.0.0/16", "10.4.0.0/24");
    add_transit_spoke(&mut estate, "d", "10.5.0.0/16", "10.5.0.0/24");
    let config = hub_config(&estate);
    let (_, mut observed) = plan_of(&estate, &config);
    converge(&config, &mut observed);
    assert_eq!(
        gateway_routes(&observed, "hubspoke-rt-a"),
        ["10.2.0.0/16", "10.4.0.0/15"]
    );
    assert_eq!(
        gateway_routes(&observed, "hubspoke-rt-c"),
        ["10.1.0.0/16", "10.2.0.0/16", "10.5.0.0/16"]
    );
}

#[test]
fn summary_prefix_replaces_per_spoke_routes_make_before_break() {
    let estate = converged_pair();
    let mut config = hub_config(&estate);
    config.summary_prefixes = vec!["10.0.0.0/8".parse().expect("prefix")];
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    for change in &hub.changes {
        if let Action::DeleteRoute { .. } = change.action {
            assert_eq!(
                change.phase, 1,
                "the summary still covers it: make before break"
            );
            assert_eq!(change.depends_on.len(), 1);
            assert_eq!(
                hub.changes[change.depends_on[0]].action.kind(),
                "upsert_route"
            );
        }
    }
    converge(&config, &mut observed);
    assert_eq!(gateway_routes(&observed, "hubspoke-rt-a"), ["10.0.0.0/8"]);
}

// Rule 11: stale routes go, vanished prefixes first.
#[test]
fn a_deleted_spoke_leaves_every_table_before_anything_else() {
    let mut estate = converged_pair();
    add_transit_spoke(&mut estate, "c", "10.3.0.0/16", "10.3.0.0/24");
    let config = hub_config(&estate);
    let (_, mut converged) = plan_of(&estate, &config);
    converge(&config, &mut converged);
    // Delete B: its VNet and the hub's peering to it go; its table stays with the routes.
    converged.virtual_networks.retain(|v| v.id.name() != "b");
    for vnet in &mut converged.virtual_networks {
        vnet.peerings.retain(|p| p.remote_vnet.name() != "b");
    }
    let plan = plan(&config, &converged);
    let hub = hub0(&plan);
    let b_space: ipnet::Ipv4Net = "10.2.0.0/16".parse().expect("prefix");
    for change in &hub.changes {
        if let Action::DeleteRoute { before, .. } = &change.action {
            let prefix: ipnet::Ipv4Net = before.address_prefix.parse().expect("prefix");
            if prefix.contains(&b_space) {
                assert_eq!(change.phase, 0, "{}", render::text(&plan));
            }
        }
    }
    // A held 10.2.0.0/15 (B and C): C's own route is made first, in the same first phase.
    let aggregate = hub
        .changes
        .iter()
        .find(|c| {
            c.action
                .target()
                .ends_with("hubspoke-rt-a/routes/hubspoke-10-2-0-0-15")
        })
        .expect("aggregate removed");
    assert_eq!(aggregate.depends_on.len(), 1);
    let replacement = &hub.changes[aggregate.depends_on[0]];
    assert!(replacement
        .action
        .target()
        .ends_with("hubspoke-rt-a/routes/hubspoke-10-3-0-0-16"));
    assert_eq!(replacement.phase, 0);
    converge(&config, &mut converged);
}

#[test]
fn an_expressroute_gateway_beside_the_vpn_one_removes_every_route() {
    let mut estate = converged_pair();
    estate.gateway("hub", "hub-er", "ExpressRoute", "Standard", "Succeeded");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    let hub = hub0(&plan);
    assert!(support::codes(hub).contains(&"gateway_not_vpn"));
    assert_eq!(
        kinds_and_names(hub)
            .iter()
            .filter(|(k, _)| k == "delete_route")
            .count(),
        2
    );
    assert!(
        !hub.changes
            .iter()
            .any(|c| matches!(c.action, Action::UpdatePeering { .. })),
        "transit stays"
    );
    converge(&config, &mut observed);
}

// Rule 12: the per-table limit, symmetric.
#[test]
fn the_route_limit_is_respected_symmetrically() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for n in 0..5 {
        add_transit_spoke(
            &mut estate,
            &format!("s{n}"),
            &format!("10.{}.0.0/16", 1 + 2 * n),
            &format!("10.{}.0.0/24", 1 + 2 * n),
        );
    }
    let mut config = hub_config(&estate);
    config.route_limit = 2;
    let (plan, mut observed) = plan_of(&estate, &config);
    assert!(support::codes(hub0(&plan)).contains(&"route_limit_exceeded"));
    converge(&config, &mut observed);
    for table in &observed.route_tables {
        assert!(table.routes.len() <= 2, "{}", table.id);
    }
}

// Rule 14: hub checks.
#[test]
fn a_gateway_subnet_table_without_bgp_propagation_is_reported() {
    let mut estate = converged_pair();
    estate.table(
        "gw-rt",
        &[("spokes", "10.0.0.0/8", "VirtualAppliance", Some("10.0.1.4"))],
        json!({}),
    );
    estate.route_tables.last_mut().expect("table")["properties"]["disableBgpRoutePropagation"] =
        true.into();
    estate.associate("hub", "GatewaySubnet", "gw-rt");
    let (plan, _) = plan_of(&estate, &hub_config(&estate));
    let details: Vec<&str> = warning_details(hub0(&plan), "hub_gateway_subnet")
        .iter()
        .filter_map(|d| d["detail"].as_str())
        .collect();
    assert_eq!(
        details,
        ["bgp_propagation_disabled", "spoke_prefixes_to_appliance"]
    );
    assert!(hub0(&plan).changes.is_empty());
}

// Vocabulary: enrollment, exclusion, multi-hub, scope, IPv6.
#[test]
fn enrollment_exclusion_and_multi_hub_spokes() {
    let mut estate = converged_pair();
    estate.tag_vnet("b", "hubspoke:exclude", "true");
    let config = hub_config(&estate);
    let (plan, mut observed) = plan_of(&estate, &config);
    assert_eq!(
        kinds_and_names(hub0(&plan)).len(),
        2,
        "excluded B: both routes go"
    );
    converge(&config, &mut observed);

    let estate = converged_pair();
    let mut config = hub_config(&estate);
    config.enrollment = Enrollment::Tagged;
    let (plan, _) = plan_of(&estate, &config);
    assert_eq!(kinds_and_names(hub0(&plan)).len(), 2, "nothing is enrolled");

    let mut estate = converged_pair();
    estate.hub(
        "hub2",
        "10.100.0.0/16",
        "10.100.255.0/27",
        Some("Succeeded"),
    );
    estate.peer("b", "hub2", Flags::default(), "Initiated");
    let config = support::config(&[&estate.vnet_id("hub"), &estate.vnet_id("hub2")]);
    let (plan, _) = plan_of(&estate, &config);
    assert!(support::codes(hub0(&plan)).contains(&"multi_hub_spoke"));
    assert!(!plan.hubs[1]
        .changes
        .iter()
        .any(|c| c.action.target().contains("/virtualNetworks/b/")));
}

#[test]
fn remote_vnets_out_of_scope_and_ipv6_prefixes_are_reported() {
    let mut estate = converged_pair();
    let ghost = "/subscriptions/ffffffff-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/ghost";
    let peering = json!({"name": "to-ghost", "id": format!("{}/virtualNetworkPeerings/to-ghost", estate.vnet_id("hub")), "properties": {"peeringState": "Initiated", "remoteVirtualNetwork": {"id": ghost}}});
    estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"]
        .as_array_mut()
        .expect("list")
        .push(peering);
    estate.vnet(
        "c",
        &["10.3.0.0/16", "fd00:3::/48"],
        &[("app", "10.3.0.0/24")],
    );
    estate.connect_transit("hub", "c");
    let (plan, _) = plan_of(&estate, &hub_config(&estate));
    let codes = support::codes(hub0(&plan));
    assert!(
        codes.contains(&"out_of_scope") && codes.contains(&"ipv6_skipped"),
        "{codes:?}"
    );
}

#[test]
fn a_hub_that_is_not_observed_is_reported() {
    let estate = converged_pair();
    let missing = estate.vnet_id("nohub");
    let (plan, _) = plan_of(&estate, &config(&[&missing]));
    assert_eq!(hub0(&plan).status, HubStatus::HubNotFound);
}

// What the executor sends: PUT bodies carry back everything read.
#[test]
fn request_bodies_carry_back_everything_read() {
    let mut estate = article();
    let nsg = json!({"id": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/networkSecurityGroups/nsg1"});
    estate.subnet_mut("Spoke1", "default")["properties"]["networkSecurityGroup"] = nsg.clone();
    estate.subnet_mut("Spoke1", "default")["properties"]["serviceEndpoints"] =
        json!([{"service": "Microsoft.Storage"}]);
    estate.vnet_mut("Spoke1")["properties"]["virtualNetworkPeerings"][0]["properties"]
        ["doNotVerifyRemoteGateways"] = true.into();
    let (plan, _) = plan_of(&estate, &config(&[&estate.vnet_id("Hub")]));
    for change in &hub0(&plan).changes {
        let body = change
            .action
            .request_body()
            .expect("every planned write has a body");
        match &change.action {
            Action::AssociateRouteTable {
                target,
                route_table,
                ..
            } if target.vnet().name() == "Spoke1" => {
                assert_eq!(body["properties"]["networkSecurityGroup"], nsg);
                assert_eq!(
                    body["properties"]["serviceEndpoints"][0]["service"],
                    "Microsoft.Storage"
                );
                assert_eq!(body["properties"]["addressPrefix"], "10.1.0.0/24");
                assert_eq!(
                    body["properties"]["routeTable"]["id"],
                    route_table.to_string()
                );
            }
            Action::UpdatePeering { target, .. } if target.vnet().name() == "Spoke1" => {
                let properties = &body["properties"];
                assert_eq!(properties["doNotVerifyRemoteGateways"], true);
                assert_eq!(properties["useRemoteGateways"], true);
                assert_eq!(properties["allowVirtualNetworkAccess"], true);
                assert!(properties["remoteVirtualNetwork"]["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with("/Hub")));
            }
            Action::CreateRouteTable { .. } => {
                assert_eq!(body["tags"]["hubspoke:managed"], "true");
                assert_eq!(
                    body["properties"]["routes"][0]["properties"]["nextHopType"],
                    "VirtualNetworkGateway"
                );
                assert!(body["properties"]["routes"][0]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("hubspoke-")));
            }
            Action::CreatePeering { .. } => {
                assert_eq!(body["properties"]["allowGatewayTransit"], true);
            }
            _ => {}
        }
    }
}
