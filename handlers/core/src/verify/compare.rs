//! The model checked against Azure: a network interface's effective routes as Azure lists them,
//! compared with the model's routes for the interface's subnet, over every address of the
//! hub's spokes. Each range where the two select a different next hop is a disagreement: Azure
//! behaves otherwise than hubspoke believes (a BGP route the model cannot see, a rule the model
//! gets wrong), which is what a user must hear about (warning `model_disagrees`).
//!
//! Next hops agree when they are of the same kind (`VNetGlobalPeering` is a peering,
//! `VirtualApplianceEcmp` an appliance, a gateway is a gateway whether a user route or BGP
//! names it) and, for an appliance, the same address. No active route and a `None` route both
//! drop the traffic, and agree.
use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::hops::route_ref;
use super::routes::{EffectiveRoute, HopKind};
use super::select::{Segment, Selection};
use super::subnet_routes::{subnet_routes, GatewaysByVnet};
use super::verdict::RouteRef;
use crate::id::SubnetId;
use crate::model::Observed;

/// One interface's effective routes, as Azure listed them.
#[derive(Debug, Clone)]
pub struct InterfaceRoutes {
    pub nic: String,
    pub subnet: SubnetId,
    pub routes: Vec<EffectiveRoute<'static>>,
}

/// A range of addresses where Azure and the model select different next hops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    pub nic: String,
    pub subnet: SubnetId,
    /// The addresses concerned (a prefix, or `first-last`).
    pub prefix: String,
    /// The route the model selects (none: no active route).
    pub model: Option<RouteRef>,
    /// The route Azure selects, from its effective routes.
    pub azure: Option<RouteRef>,
}

/// The disagreements of `interface` over `prefixes` (the hub's spokes' addresses), against the
/// model of `observed`. An error when the interface's subnet is not in the observed state.
pub fn compare(
    observed: &Observed,
    prefixes: &[Ipv4Net],
    interface: &InterfaceRoutes,
) -> Result<Vec<Disagreement>, String> {
    let vnet = observed
        .virtual_networks
        .iter()
        .find(|v| &v.id == interface.subnet.vnet())
        .ok_or_else(|| format!("the VNet of {} was not observed", interface.subnet))?;
    let subnet = vnet
        .subnets
        .iter()
        .find(|s| s.id == interface.subnet)
        .ok_or_else(|| format!("the subnet {} was not observed", interface.subnet))?;
    let table = subnet
        .route_table
        .as_ref()
        .and_then(|id| observed.route_tables.iter().find(|t| &t.id == id));
    let model = subnet_routes(vnet, table, &GatewaysByVnet::new(observed));
    Ok(disagreements(&model, interface, prefixes))
}

/// The ranges of `prefixes` where `model` and `interface.routes` select different hops.
pub(crate) fn disagreements(
    model: &[EffectiveRoute<'_>],
    interface: &InterfaceRoutes,
    prefixes: &[Ipv4Net],
) -> Vec<Disagreement> {
    let azure = &interface.routes;
    let (model_selection, azure_selection) = (Selection::new(model), Selection::new(azure));
    let mut found: Vec<Disagreement> = Vec::new();
    let mut covered: Vec<Ipv4Net> = Vec::new();
    let mut sorted = prefixes.to_vec();
    sorted.sort_unstable();
    for prefix in sorted {
        // A prefix inside one already compared (overlapping spaces) adds nothing.
        if covered.iter().any(|c| c.contains(&prefix)) {
            continue;
        }
        covered.push(prefix);
        for (first, last) in boundaries(&model_selection, &azure_selection, prefix) {
            let model_route = model_selection.at(first).map(|r| &model[r]);
            let azure_route = azure_selection.at(first).map(|r| &azure[r]);
            if same_hop(model_route, azure_route) {
                continue;
            }
            let segment = Segment {
                first,
                last,
                route: None,
            };
            found.push(Disagreement {
                nic: interface.nic.clone(),
                subnet: interface.subnet.clone(),
                prefix: segment.render(),
                model: model_route.map(route_ref),
                azure: azure_route.map(route_ref),
            });
        }
    }
    found
}

/// The ranges of `prefix` within which neither selection changes route.
fn boundaries(
    model: &Selection,
    azure: &Selection,
    prefix: Ipv4Net,
) -> Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    let mut cuts: Vec<u32> = model
        .segments(prefix)
        .chain(azure.segments(prefix))
        .map(|s| u32::from(s.first))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let end = u32::from(prefix.broadcast());
    cuts.iter()
        .enumerate()
        .map(|(i, start)| {
            let last = cuts.get(i + 1).map_or(end, |next| next - 1);
            ((*start).into(), last.into())
        })
        .collect()
}

/// The next hop of a selected route, as compared: its kind (no route is a drop) and, for an
/// appliance, its address.
fn hop(route: Option<&EffectiveRoute<'_>>) -> (HopKind, Option<IpAddr>) {
    match route {
        None => (HopKind::Drop, None),
        Some(r) if r.hop == HopKind::VirtualAppliance => (r.hop, r.next_hop_ip),
        Some(r) => (r.hop, None),
    }
}

fn same_hop(model: Option<&EffectiveRoute<'_>>, azure: Option<&EffectiveRoute<'_>>) -> bool {
    hop(model) == hop(azure)
}
