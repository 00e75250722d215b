//! Test support: applying a plan to the observed state as Azure would, and reading the result.
#![allow(dead_code)]

use hubspoke_core::config::PlanConfig;
use hubspoke_core::id::{RouteId, SubnetId, VnetId};
use hubspoke_core::model::{
    Observed, Peering, PeeringState, Route, RoutePrefix, RouteTable, SyncLevel, Tags,
};
use hubspoke_core::plan::{plan, Action, Change, HubPlan, Plan, TAG_MANAGED};
use ipnet::IpNet;
use serde_json::Value;

/// Parses a snapshot document.
pub fn observed(document: &Value) -> Observed {
    Observed::from_snapshot(document).expect("the snapshot parses")
}

/// A config for the given hub ids.
pub fn config(hubs: &[&str]) -> PlanConfig {
    PlanConfig::new(hubs.iter().map(|h| h.parse().expect("hub id")).collect())
}

/// Applies every change of `plan`, in order, as Azure would.
pub fn apply(observed: &mut Observed, plan: &Plan) {
    for hub in &plan.hubs {
        apply_hub(observed, hub);
    }
}

pub fn apply_hub(observed: &mut Observed, hub: &HubPlan) {
    for change in &hub.changes {
        apply_change(observed, change);
    }
}

fn vnet_space(observed: &Observed, id: &VnetId) -> Vec<IpNet> {
    observed
        .virtual_networks
        .iter()
        .find(|v| v.id == *id)
        .map(|v| v.address_prefixes.clone())
        .unwrap_or_default()
}

pub fn apply_change(observed: &mut Observed, change: &Change) {
    match &change.action {
        Action::CreatePeering {
            target,
            remote_virtual_network,
            after,
        } => {
            let local = target.vnet().clone();
            let remote_space = vnet_space(observed, remote_virtual_network);
            // The other side, if it exists and is Initiated, connects.
            let mut connected = false;
            if let Some(remote) = observed
                .virtual_networks
                .iter_mut()
                .find(|v| v.id == *remote_virtual_network)
            {
                if let Some(back) = remote.peerings.iter_mut().find(|p| p.remote_vnet == local) {
                    if back.state == PeeringState::Initiated {
                        back.state = PeeringState::Connected;
                        connected = true;
                    }
                }
            }
            let vnet = observed
                .virtual_networks
                .iter_mut()
                .find(|v| v.id == local)
                .expect("local VNet exists");
            vnet.peerings.push(Peering {
                id: target.clone(),
                remote_vnet: remote_virtual_network.clone(),
                flags: *after,
                state: if connected {
                    PeeringState::Connected
                } else {
                    PeeringState::Initiated
                },
                sync_level: SyncLevel::FullyInSync,
                remote_address_space: remote_space.clone(),
                remote_virtual_network_address_space: remote_space,
                provisioning_state: "Succeeded".into(),
                raw: change.action.request_body().expect("a create has a body"),
            });
        }
        Action::UpdatePeering { target, after, .. } => {
            let peering = peering_mut(observed, target);
            peering.flags = *after;
        }
        Action::SyncPeering { target, after, .. } => {
            let remote = peering_mut(observed, target).remote_vnet.clone();
            let space = vnet_space(observed, &remote);
            let peering = peering_mut(observed, target);
            peering.flags = *after;
            peering.remote_address_space = space.clone();
            peering.remote_virtual_network_address_space = space;
            peering.sync_level = match peering.sync_level {
                SyncLevel::LocalAndRemoteNotInSync => SyncLevel::RemoteNotInSync,
                _ => SyncLevel::FullyInSync,
            };
            let local = target.vnet().clone();
            if let Some(back) = observed
                .virtual_networks
                .iter_mut()
                .find(|v| v.id == remote)
                .and_then(|v| v.peerings.iter_mut().find(|p| p.remote_vnet == local))
            {
                back.sync_level = match back.sync_level {
                    SyncLevel::RemoteNotInSync => SyncLevel::FullyInSync,
                    SyncLevel::LocalAndRemoteNotInSync => SyncLevel::LocalNotInSync,
                    other => other,
                };
            }
        }
        Action::CreateRouteTable {
            target,
            location,
            disable_bgp_route_propagation,
            routes,
            ..
        } => {
            let mut tags = Tags::default();
            tags.0.insert(TAG_MANAGED.into(), "true".into());
            observed.route_tables.push(RouteTable {
                id: target.clone(),
                location: location.clone(),
                tags,
                disable_bgp_route_propagation: *disable_bgp_route_propagation,
                routes: routes
                    .iter()
                    .map(|r| Route {
                        id: RouteId::new(target, &r.name),
                        address_prefix: RoutePrefix::Cidr(r.address_prefix.parse().expect("cidr")),
                        next_hop_type: r.next_hop_type.clone(),
                        next_hop_ip_address: None,
                    })
                    .collect(),
                subnets: Vec::new(),
            });
        }
        Action::AssociateRouteTable {
            target,
            route_table,
            ..
        } => {
            let subnet = subnet_mut(observed, target);
            subnet.route_table = Some(route_table.clone());
            let table = observed
                .route_tables
                .iter_mut()
                .find(|t| t.id == *route_table)
                .expect("table exists before its association");
            table.subnets.push(target.clone());
        }
        Action::UpsertRoute { target, after, .. } => {
            let table = observed
                .route_tables
                .iter_mut()
                .find(|t| t.id == *target.route_table())
                .expect("table exists");
            let route = Route {
                id: target.clone(),
                address_prefix: RoutePrefix::Cidr(after.address_prefix.parse().expect("cidr")),
                next_hop_type: after.next_hop_type.clone(),
                next_hop_ip_address: None,
            };
            match table.routes.iter_mut().find(|r| r.id == *target) {
                Some(existing) => *existing = route,
                None => {
                    assert!(
                        !table
                            .routes
                            .iter()
                            .any(|r| r.address_prefix == route.address_prefix),
                        "Azure would refuse {target}: RouteConflict"
                    );
                    table.routes.push(route)
                }
            }
        }
        Action::DeleteRoute { target, .. } => {
            let table = observed
                .route_tables
                .iter_mut()
                .find(|t| t.id == *target.route_table())
                .expect("table exists");
            let before = table.routes.len();
            table.routes.retain(|r| r.id != *target);
            assert_eq!(
                before,
                table.routes.len() + 1,
                "deleted route {target} existed"
            );
        }
    }
}

fn peering_mut<'a>(
    observed: &'a mut Observed,
    target: &hubspoke_core::id::PeeringId,
) -> &'a mut Peering {
    observed
        .virtual_networks
        .iter_mut()
        .find(|v| v.id == *target.vnet())
        .and_then(|v| v.peerings.iter_mut().find(|p| p.id == *target))
        .unwrap_or_else(|| panic!("peering {target} exists"))
}

fn subnet_mut<'a>(
    observed: &'a mut Observed,
    target: &SubnetId,
) -> &'a mut hubspoke_core::model::Subnet {
    observed
        .virtual_networks
        .iter_mut()
        .find(|v| v.id == *target.vnet())
        .and_then(|v| v.subnets.iter_mut().find(|s| s.id == *target))
        .unwrap_or_else(|| panic!("subnet {target} exists"))
}

/// Plans, applies and plans again: returns the first plan and asserts the second is empty.
pub fn converge(config: &PlanConfig, observed: &mut Observed) -> Plan {
    let first = plan(config, observed);
    apply(observed, &first);
    let second = plan(config, observed);
    let leftover: Vec<String> = second
        .hubs
        .iter()
        .flat_map(|h| h.changes.iter())
        .map(|c| format!("{} {} ({})", c.action.kind(), c.action.target(), c.reason))
        .collect();
    assert!(
        leftover.is_empty(),
        "a second pass still plans: {leftover:#?}"
    );
    first
}

/// The kinds and targets of a hub plan's changes, for compact assertions.
pub fn summary(hub: &HubPlan) -> Vec<(String, String)> {
    hub.changes
        .iter()
        .map(|c| (c.action.kind().to_owned(), c.action.target()))
        .collect()
}

/// The warning codes of a hub plan.
pub fn codes(hub: &HubPlan) -> Vec<&'static str> {
    hub.warnings.iter().map(|w| w.code.as_str()).collect()
}

/// Managed (gateway) route prefixes in the table named `table`.
pub fn gateway_routes(observed: &Observed, table: &str) -> Vec<String> {
    let mut routes: Vec<String> = observed
        .route_tables
        .iter()
        .filter(|t| t.id.name().eq_ignore_ascii_case(table))
        .flat_map(|t| t.routes.iter())
        .filter(|r| r.next_hop_type == "VirtualNetworkGateway")
        .map(|r| r.address_prefix.to_string())
        .collect();
    routes.sort();
    routes
}
