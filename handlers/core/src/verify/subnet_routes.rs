//! The model's effective routes of a subnet: what Azure lists for a network interface in it,
//! computed from the observed estate alone. Sources, all in "Virtual network traffic routing"
//! (learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview):
//! - *Default system routes*: one `VnetLocal` route per range of the VNet's address space,
//!   `0.0.0.0/0` to `Internet`, and `None` for 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16
//!   (RFC 1918) and 100.64.0.0/10 (RFC 6598). A reserved range the VNet's space uses, or one
//!   that a range of that space contains, loses its `None` route (the page: the next hop becomes
//!   the virtual network, or the route is removed).
//! - *Optional default routes*: one `VNetPeering` route per range of each peering's remote
//!   address space, for a peering `Connected` on this side (its `remoteAddressSpace`, as Azure
//!   programs it).
//! - *Custom routes*: every route of the subnet's route table, whoever owns it (`User`). A
//!   system route whose prefix a user route repeats exactly is listed `Invalid` (the user route
//!   wins at equal prefixes). A user route for `0.0.0.0/0`, whatever its next hop, removes the
//!   `None` routes of the four reserved ranges (the page's routing example, Subnet1: the routes
//!   for 10.0.0.0/8, 192.168.0.0/16 and 100.64.0.0/10 are gone from its table once a user route
//!   for 0.0.0.0/0 exists; 172.16.0.0/12 is treated alike). A user route to
//!   `VirtualNetworkGateway` is `Active` only when the VNet reaches a provisioned gateway: its
//!   own, else the remote VNet's through a `Connected` peering that uses remote gateways;
//!   otherwise Azure lists it `Invalid` and selects another route.
//!
//! BGP routes: the observed estate holds none (a gateway's learned routes are not read), so the
//! model lists none. A spoke using the hub's gateway does learn the gateway's BGP routes, which
//! are on-premises prefixes: the gateway never hands one spoke's prefixes to another
//! (`docs/design.md`, top), which is why hubspoke writes user routes at all. Where a BGP route
//! does carry a spoke's prefix, Azure's own effective routes show it and the comparison
//! (`compare.rs`) reports the difference.
//!
//! Not modelled: service endpoint routes (their prefixes are public Azure ranges, never a
//! spoke's), service-tag user routes (no address list is observed), routes of a table that is
//! not in the observed state.
use std::collections::HashMap;

use ipnet::IpNet;

use super::routes::{EffectiveRoute, HopKind, RouteSource};
use crate::id::VnetId;
use crate::model::{Gateway, Observed, PeeringState, RoutePrefix, RouteTable, VirtualNetwork};

/// The ranges Azure routes to `None` unless the VNet uses them.
const RESERVED: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// The gateways of each VNet (those whose ip configurations sit in one of its subnets).
pub(crate) struct GatewaysByVnet<'o> {
    by_vnet: HashMap<&'o VnetId, Vec<&'o Gateway>>,
}

impl<'o> GatewaysByVnet<'o> {
    pub(crate) fn new(observed: &'o Observed) -> Self {
        let mut by_vnet: HashMap<&VnetId, Vec<&Gateway>> = HashMap::new();
        for gateway in &observed.gateways {
            if let Some(subnet) = gateway.subnets.first() {
                by_vnet.entry(subnet.vnet()).or_default().push(gateway);
            }
        }
        GatewaysByVnet { by_vnet }
    }

    /// Whether `vnet` has a gateway of its own.
    fn has(&self, vnet: &VnetId) -> bool {
        self.by_vnet.contains_key(vnet)
    }

    /// Whether `vnet` has a gateway that is provisioned (`Succeeded`).
    fn provisioned(&self, vnet: &VnetId) -> bool {
        self.by_vnet.get(vnet).is_some_and(|gateways| {
            gateways
                .iter()
                .any(|g| g.provisioning_state.eq_ignore_ascii_case("Succeeded"))
        })
    }

    /// Whether a `VirtualNetworkGateway` next hop resolves in `vnet`: its own gateway when it
    /// has one, else the gateway of the VNet a `Connected` peering uses remotely.
    fn resolves(&self, vnet: &VirtualNetwork) -> bool {
        if self.has(&vnet.id) {
            return self.provisioned(&vnet.id);
        }
        vnet.peerings
            .iter()
            .filter(|p| p.flags.use_remote_gateways && p.state == PeeringState::Connected)
            .any(|p| self.provisioned(&p.remote_vnet))
    }
}

/// The effective routes of a subnet of `vnet` whose route table is `table` (as observed, if
/// any): system routes first, then the user routes. Every subnet of a VNet with the same table
/// has the same routes.
pub(crate) fn subnet_routes<'o>(
    vnet: &'o VirtualNetwork,
    table: Option<&'o RouteTable>,
    gateways: &GatewaysByVnet,
) -> Vec<EffectiveRoute<'o>> {
    let user = user_routes(vnet, table, gateways);
    let user_default = user
        .iter()
        .any(|r| r.prefix == IpNet::V4(ipnet::Ipv4Net::default()));
    let mut routes = system_routes(vnet, user_default);
    for route in &mut routes {
        if user.iter().any(|u| u.prefix == route.prefix) {
            route.active = false;
        }
    }
    routes.extend(user);
    routes
}

/// The default system routes and the peerings' routes.
fn system_routes<'o>(vnet: &'o VirtualNetwork, user_default: bool) -> Vec<EffectiveRoute<'o>> {
    let mut routes: Vec<EffectiveRoute> = vnet
        .address_prefixes
        .iter()
        .map(|prefix| EffectiveRoute::new(RouteSource::System, *prefix, "VnetLocal".into()))
        .collect();
    for peering in vnet
        .peerings
        .iter()
        .filter(|p| p.state == PeeringState::Connected)
    {
        for prefix in &peering.remote_address_space {
            let mut route = EffectiveRoute::new(RouteSource::System, *prefix, "VNetPeering".into());
            route.peer = Some(peering.remote_vnet.clone());
            routes.push(route);
        }
    }
    let any: IpNet = IpNet::V4(ipnet::Ipv4Net::default());
    routes.push(EffectiveRoute::new(
        RouteSource::System,
        any,
        "Internet".into(),
    ));
    if !user_default {
        for reserved in RESERVED.iter().filter_map(|r| r.parse::<IpNet>().ok()) {
            let used = vnet
                .address_prefixes
                .iter()
                .any(|space| space.trunc().contains(&reserved));
            if !used {
                routes.push(EffectiveRoute::new(
                    RouteSource::System,
                    reserved,
                    "None".into(),
                ));
            }
        }
    }
    routes
}

/// The routes of the subnet's table, as user routes.
fn user_routes<'o>(
    vnet: &'o VirtualNetwork,
    table: Option<&'o RouteTable>,
    gateways: &GatewaysByVnet,
) -> Vec<EffectiveRoute<'o>> {
    let Some(table) = table else {
        return Vec::new();
    };
    let gateway_resolves = gateways.resolves(vnet);
    table
        .routes
        .iter()
        .filter_map(|route| {
            let RoutePrefix::Cidr(prefix) = route.address_prefix else {
                return None;
            };
            let mut user = EffectiveRoute::new(
                RouteSource::User,
                prefix,
                route.next_hop_type.as_str().into(),
            );
            user.name = Some(route.id.name().into());
            user.next_hop_ip = route.next_hop_ip_address;
            if user.hop == HopKind::VirtualNetworkGateway {
                user.active = gateway_resolves;
                user.next_hop_ip = None;
            }
            Some(user)
        })
        .collect()
}
