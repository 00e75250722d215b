//! The spokes as the verification sees them, built on the planner's stage results: for each
//! enrolled spoke, whether it is transit now (its peerings as observed, not as the plan will
//! leave them), its IPv4 prefixes, and the effective routes of its eligible subnets, one set
//! per route table (every subnet of a VNet with the same table has the same routes).
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};

use super::routes::EffectiveRoute;
use super::select::Selection;
use super::subnet_routes::{subnet_routes, GatewaysByVnet};
use super::verdict::{Interface, Reason};
use crate::config::PlanConfig;
use crate::id::RouteTableId;
use crate::model::{PeeringState, RouteTable, Subnet};
use crate::plan::coverage::{eligibility, Eligibility};
use crate::plan::index::Index;
use crate::plan::spokes::Spoke;
use crate::plan::transit::NotTransit;

/// What the verification knows of one spoke.
pub(crate) struct SpokeFacts<'o> {
    /// Its IPv4 prefixes (its current address space).
    pub(crate) prefixes: Vec<Ipv4Net>,
    /// Why it is not transit as observed, if it is not.
    pub(crate) not_transit_now: Option<Arc<Reason>>,
    /// Its eligible subnets, grouped by route table.
    pub(crate) classes: Vec<SubnetClass<'o>>,
    /// The network interfaces in its eligible subnets.
    pub(crate) interfaces: Vec<Interface>,
}

/// The eligible subnets of a spoke that use one route table (or none), and their routes.
pub(crate) struct SubnetClass<'o> {
    /// The first such subnet, which reasons name.
    pub(crate) subnet: &'o Subnet,
    pub(crate) table_id: Option<RouteTableId>,
    pub(crate) table: Option<&'o RouteTable>,
    pub(crate) routes: Vec<EffectiveRoute<'o>>,
    pub(crate) selection: Selection,
}

/// The facts of `spoke`.
pub(crate) fn spoke_facts<'o>(
    config: &PlanConfig,
    index: &Index<'o>,
    gateways: &GatewaysByVnet,
    spoke: &Spoke<'o>,
) -> SpokeFacts<'o> {
    let vnet = spoke.enrolled.vnet;
    let mut classes: Vec<SubnetClass<'o>> = Vec::new();
    let mut interfaces = Vec::new();
    for subnet in &vnet.subnets {
        if !matches!(
            eligibility(config, subnet),
            Eligibility::Eligible | Eligibility::TableOnly
        ) {
            continue;
        }
        interfaces.extend(
            subnet
                .ip_configurations
                .iter()
                .filter_map(|id| Interface::of_ip_configuration(id, &subnet.id)),
        );
        if classes.iter().any(|c| c.table_id == subnet.route_table) {
            continue;
        }
        let table = subnet.route_table.as_ref().and_then(|id| index.table(id));
        let routes = subnet_routes(vnet, table, gateways);
        classes.push(SubnetClass {
            subnet,
            table_id: subnet.route_table.clone(),
            table,
            selection: Selection::new(&routes),
            routes,
        });
    }
    SpokeFacts {
        prefixes: ipv4(&vnet.address_prefixes),
        not_transit_now: not_transit_now(spoke).map(Arc::new),
        classes,
        interfaces,
    }
}

/// The IPv4 prefixes among `prefixes`, truncated, sorted, without duplicates.
pub(crate) fn ipv4(prefixes: &[IpNet]) -> Vec<Ipv4Net> {
    let mut v4: Vec<Ipv4Net> = prefixes
        .iter()
        .filter_map(|p| match p.trunc() {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        })
        .collect();
    v4.sort_unstable();
    v4.dedup();
    v4
}

/// Why the spoke is not transit as observed: the planner's reasons first (it is not transit
/// even after the plan), then what the plan would still have to change (a peering it creates,
/// transit flags it turns on).
fn not_transit_now(spoke: &Spoke) -> Option<Reason> {
    if let Some(reason) = spoke.transit.not_transit.first() {
        return Some(from_planner(*reason));
    }
    let peerings = &spoke.peerings;
    let (Some(hub_side), Some(spoke_side)) = (peerings.hub_side, peerings.spoke_side) else {
        return Some(Reason::new(
            "spoke_not_transit",
            Some("peering_missing"),
            "a peering between the spoke and the hub is missing (hubspoke creates it in its next pass)".into(),
        ));
    };
    let connected = |state| state == PeeringState::Connected;
    if !connected(hub_side.state) || !connected(spoke_side.state) {
        return Some(Reason::new(
            "spoke_not_transit",
            Some("pair_not_connected"),
            "the spoke's peerings with the hub are not both Connected".into(),
        ));
    }
    if !hub_side.flags.allow_gateway_transit || !spoke_side.flags.use_remote_gateways {
        return Some(Reason::new(
            "transit_flags_off",
            None,
            "allowGatewayTransit (hub side) or useRemoteGateways (spoke side) is off: the spoke does not use the hub's gateway yet (hubspoke turns them on in its next pass)".into(),
        ));
    }
    None
}

/// A planner's reason as a verification reason, with the planner's code.
fn from_planner(reason: NotTransit) -> Reason {
    let code = reason.code().map_or("gateway_gone", |code| code.as_str());
    let message = match reason {
        NotTransit::PeeringDisconnected => "a peering between the spoke and the hub is Disconnected: delete it, and hubspoke re-creates the hub side",
        NotTransit::PeeringMissing => "a peering between the spoke and the hub is missing and is not created (HUBSPOKE_CREATE_MISSING_PEERINGS is off)",
        NotTransit::PairNotConnected => "the spoke's peerings with the hub are not both Connected",
        NotTransit::OwnGateway => "the spoke has a gateway of its own, so it cannot use the hub's",
        NotTransit::RemoteGatewaysUsedElsewhere => "another peering of the spoke already uses remote gateways, and only one may",
        NotTransit::AccessDisabled => "allowVirtualNetworkAccess is false on a peering between the spoke and the hub",
        NotTransit::GatewayNotReady => "the hub's gateway is not ready for transit, and the spoke's transit flags are not on",
        NotTransit::GatewayGone => "the hub has no gateway",
    };
    let detail = (code == "spoke_not_transit").then(|| reason.detail());
    Reason::new(code, detail, message.into())
}
