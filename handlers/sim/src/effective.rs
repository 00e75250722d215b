//! A network interface's effective routes (`POST …/networkInterfaces/{nic}/effectiveRouteTable`),
//! computed from the simulated estate for the subnet of the NIC's primary ip configuration. The
//! same routes, per subnet, are what Network Watcher's next hop selects from (`next_hop.rs`).
//!
//! The rules follow learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview
//! ("Virtual network traffic routing"):
//! - every subnet gets the default system routes: one `VnetLocal` route per range of the VNet's
//!   address space, `0.0.0.0/0` to `Internet`, and `None` for 10.0.0.0/8, 172.16.0.0/12,
//!   192.168.0.0/16 (RFC 1918) and 100.64.0.0/10 (RFC 6598). When one of those reserved ranges
//!   is itself a range of the VNet's address space, or inside one, its `None` route is dropped
//!   (the page: the next hop becomes the virtual network, or the route is removed);
//! - a subnet whose route table has a user route for `0.0.0.0/0` loses the `None` routes of all
//!   four reserved ranges (the page's routing example, Subnet1 and Subnet2: Azure removed the
//!   routes for 10.0.0.0/8, 192.168.0.0/16 and 100.64.0.0/10 from Subnet1's table when the
//!   user-defined route for 0.0.0.0/0 was added). The example's tables never list
//!   172.16.0.0/12; it is treated like the others. The passage names no next hop type, so any
//!   user `0.0.0.0/0` removes them, even one listed `Invalid` (a gateway hop without a gateway);
//! - VNet peering adds a route per range of the peered VNet's space (`VNetPeering`);
//! - user-defined routes of the subnet's route table are added with source `User`; when
//!   several routes have the same prefix Azure picks the user-defined route over BGP and system
//!   routes, so a default route whose prefix a user route repeats exactly is listed `Invalid`.
//!   Longest-prefix match between different prefixes happens per packet and changes no state.
//!
//! Simplified (documented in docs/simulator.md): no BGP routes learned through gateways (source
//! `VirtualNetworkGateway`; so whether a default route advertised over BGP also removes the
//! reserved `None` routes is not modelled), no service-endpoint or optional default routes, no
//! VM or NIC state requirement. A user route to `VirtualNetworkGateway` resolves to the gateway
//! of the VNet, or of the hub when the VNet uses remote gateways through a `Connected` peering;
//! without one the route is listed `Invalid` with no next hop address (UNCONFIRMED what Azure
//! lists then).
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::json::{address_prefixes, name_of, prop_arr, prop_bool, prop_ref_id, prop_str};
use crate::world::ArmError;

/// The private and shared ranges Azure routes to `None` unless a VNet uses them.
const RESERVED: [&str; 4] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/16",
];

fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn id_of(value: &Value) -> &str {
    value.get("id").and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn items<'a>(snapshot: &'a Value, field: &str) -> &'a [Value] {
    snapshot
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn route(source: &str, state: &str, prefix: &str, hop: &str, hop_ips: Vec<String>) -> Value {
    json!({
        "source": source,
        "state": state,
        "addressPrefix": [prefix],
        "nextHopType": hop,
        "nextHopIpAddress": hop_ips,
    })
}

/// Two prefixes are the same route destination: equal networks, or equal text (service tags).
fn same_prefix(a: &str, b: &str) -> bool {
    match (IpNet::from_str(a.trim()), IpNet::from_str(b.trim())) {
        (Ok(x), Ok(y)) => x.trunc() == y.trunc(),
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// The address a `VirtualNetworkGateway` hop resolves to: the gateway's BGP peering address or
/// ip configuration address when known, else the first address Azure hands out in its subnet.
fn gateway_address(gateway: &Value, snapshot: &Value) -> Option<String> {
    let bgp = gateway
        .get("properties")
        .and_then(|p| p.get("bgpSettings"))
        .and_then(|b| b.get("bgpPeeringAddress"))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty());
    if let Some(address) = bgp {
        return Some(address.to_string());
    }
    let config = prop_arr(gateway, "ipConfigurations").first()?;
    if let Some(address) = prop_str(config, "privateIPAddress") {
        return Some(address.to_string());
    }
    let subnet_id = prop_ref_id(config, "subnet")?;
    let subnet = items(snapshot, "virtualNetworks")
        .iter()
        .flat_map(|v| prop_arr(v, "subnets"))
        .find(|s| same_id(id_of(s), subnet_id))?;
    let IpNet::V4(net) = IpNet::from_str(prop_str(subnet, "addressPrefix")?).ok()? else {
        return None;
    };
    let first = u32::from(net.network()).checked_add(4)?;
    Some(std::net::Ipv4Addr::from(first).to_string())
}

/// The gateway of the VNet `vnet_id`, if it has one.
fn gateway_in<'a>(snapshot: &'a Value, vnet_id: &str) -> Option<&'a Value> {
    let prefix = format!("{}/subnets/", vnet_id.to_ascii_lowercase());
    items(snapshot, "virtualNetworkGateways").iter().find(|g| {
        prop_arr(g, "ipConfigurations").iter().any(|c| {
            prop_ref_id(c, "subnet").is_some_and(|s| s.to_ascii_lowercase().starts_with(&prefix))
        })
    })
}

/// The effective routes of `nic` in `snapshot`: `{"value": [EffectiveRoute...]}`.
pub(crate) fn effective_routes(nic: &Value, snapshot: &Value) -> Result<Value, ArmError> {
    let configs = prop_arr(nic, "ipConfigurations");
    let config = configs
        .iter()
        .find(|c| prop_bool(c, "primary"))
        .or_else(|| configs.first());
    let subnet_id = config.and_then(|c| prop_ref_id(c, "subnet")).unwrap_or("");
    let lowered = subnet_id.to_ascii_lowercase();
    let vnet_id = lowered
        .find("/subnets/")
        .and_then(|at| subnet_id.get(..at))
        .unwrap_or("");
    let vnet = items(snapshot, "virtualNetworks")
        .iter()
        .find(|v| same_id(id_of(v), vnet_id));
    let subnet = vnet.and_then(|v| {
        prop_arr(v, "subnets")
            .iter()
            .find(|s| same_id(id_of(s), subnet_id))
    });
    let (Some(vnet), Some(subnet)) = (vnet, subnet) else {
        return Err(ArmError::bad_request(
            "NetworkInterfaceNotInSubnet",
            format!(
                "Network interface {} has no ip configuration in a subnet the simulator knows.",
                id_of(nic)
            ),
        ));
    };
    Ok(json!({ "value": subnet_routes(snapshot, vnet, subnet) }))
}

/// The effective routes of `subnet` of `vnet` in `snapshot`, in the order Azure lists them:
/// default routes, then the user routes of the subnet's route table.
pub(crate) fn subnet_routes(snapshot: &Value, vnet: &Value, subnet: &Value) -> Vec<Value> {
    let peerings = prop_arr(vnet, "virtualNetworkPeerings");
    let user_routes = user_routes(snapshot, vnet, peerings, subnet);
    let user_default_route = user_routes
        .iter()
        .any(|(prefix, _)| same_prefix(prefix, "0.0.0.0/0"));

    let space = address_prefixes(vnet, "addressSpace");
    let space_nets: Vec<IpNet> = space
        .iter()
        .filter_map(|p| IpNet::from_str(p).ok())
        .collect();
    let mut routes: Vec<Value> = Vec::new();
    for prefix in &space {
        routes.push(route("Default", "Active", prefix, "VnetLocal", Vec::new()));
    }
    for peering in peerings {
        if prop_str(peering, "peeringState") != Some("Connected") {
            continue;
        }
        for prefix in address_prefixes(peering, "remoteAddressSpace") {
            routes.push(route(
                "Default",
                "Active",
                &prefix,
                "VNetPeering",
                Vec::new(),
            ));
        }
    }
    routes.push(route(
        "Default",
        "Active",
        "0.0.0.0/0",
        "Internet",
        Vec::new(),
    ));
    // A user route for 0.0.0.0/0 removes the `None` routes of all the reserved ranges, so
    // traffic to them follows that route: "Virtual network traffic routing", routing example,
    // Subnet1 and Subnet2 (learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#routing-example).
    if !user_default_route {
        for reserved in RESERVED {
            let Ok(net) = IpNet::from_str(reserved) else {
                continue;
            };
            // A reserved range the VNet uses (or one of its ranges contains) loses its `None`
            // route.
            if space_nets.iter().any(|s| s.contains(&net)) {
                continue;
            }
            routes.push(route("Default", "Active", reserved, "None", Vec::new()));
        }
    }

    // Same prefix: the user-defined route wins and the default route is listed `Invalid`.
    for default in routes.iter_mut() {
        let prefix = default["addressPrefix"][0]
            .as_str()
            .unwrap_or("")
            .to_string();
        if user_routes.iter().any(|(p, _)| same_prefix(p, &prefix)) {
            default["state"] = json!("Invalid");
        }
    }
    routes.extend(user_routes.into_iter().map(|(_, v)| v));
    routes
}

/// The routes of `subnet`'s route table as effective routes (source `User`), each with its
/// prefix as written.
fn user_routes(
    snapshot: &Value,
    vnet: &Value,
    peerings: &[Value],
    subnet: &Value,
) -> Vec<(String, Value)> {
    let Some(table) = prop_ref_id(subnet, "routeTable").and_then(|table_id| {
        items(snapshot, "routeTables")
            .iter()
            .find(|t| same_id(id_of(t), table_id))
    }) else {
        return Vec::new();
    };
    // The gateway a `VirtualNetworkGateway` hop reaches: the VNet's own, else the hub's through
    // the peering that uses remote gateways.
    let gateway = gateway_in(snapshot, id_of(vnet)).or_else(|| {
        peerings
            .iter()
            .filter(|p| {
                prop_bool(p, "useRemoteGateways")
                    && prop_str(p, "peeringState") == Some("Connected")
            })
            .find_map(|p| gateway_in(snapshot, prop_ref_id(p, "remoteVirtualNetwork")?))
    });
    // A gateway still provisioning forwards nothing yet.
    let gateway = gateway.filter(|g| prop_str(g, "provisioningState") == Some("Succeeded"));

    let disable_bgp = prop_bool(table, "disableBgpRoutePropagation");
    let mut user_routes = Vec::new();
    for r in prop_arr(table, "routes") {
        let Some(prefix) = prop_str(r, "addressPrefix") else {
            continue;
        };
        let hop = prop_str(r, "nextHopType").unwrap_or("None");
        let (state, hop_ips) = match hop {
            "VirtualNetworkGateway" => match gateway.and_then(|g| gateway_address(g, snapshot)) {
                Some(address) => ("Active", vec![address]),
                None => ("Invalid", Vec::new()),
            },
            _ => (
                "Active",
                prop_str(r, "nextHopIpAddress")
                    .filter(|a| !a.is_empty())
                    .map(|a| vec![a.to_string()])
                    .unwrap_or_default(),
            ),
        };
        let mut value = route("User", state, prefix, hop, hop_ips);
        if let Some(map) = value.as_object_mut() {
            map.insert("name".into(), json!(name_of(r)));
            map.insert("disableBgpRoutePropagation".into(), json!(disable_bgp));
        }
        user_routes.push((prefix.to_string(), value));
    }
    user_routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_compare_as_networks_or_tags() {
        assert!(same_prefix("10.1.0.0/16", "10.1.0.0/16"));
        assert!(!same_prefix("10.1.0.0/16", "10.1.0.0/24"));
        assert!(same_prefix("AzureCloud", "azurecloud"));
    }
}
