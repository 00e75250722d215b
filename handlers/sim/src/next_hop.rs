//! Network Watcher's next hop (`POST …/networkWatchers/{nw}/nextHop`): the route Azure would use
//! from `sourceIPAddress` to `destinationIPAddress`, selected from the effective routes of the
//! subnet holding the source (`effective.rs`), so both answers follow the same rules.
//!
//! Selection follows "Virtual network traffic routing"
//! (learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview, "How Azure selects
//! a route"): among the `Active` routes whose prefix holds the destination, the longest prefix
//! wins; at equal prefixes a user route wins over a BGP route over a system route. A destination
//! no active route holds is dropped: next hop `None`.
//!
//! Answer: `nextHopType`, `nextHopIpAddress` (the route's first address, else empty) and
//! `routeTableId` (the subnet's route table for a user route, else `System Route`). Simplified:
//! the source subnet is found by address alone (`targetResourceId` and `targetNicResourceId` are
//! not read, no VM is needed), and the answer is synchronous (200).
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::effective::{items, subnet_routes};
use crate::json::{prop_arr, prop_ref_id, prop_str};
use crate::world::ArmError;

/// The next hop for the request `body` in `snapshot`.
pub(crate) fn next_hop(snapshot: &Value, body: &Value) -> Result<Value, ArmError> {
    let source = ip_field(body, "sourceIPAddress")?;
    let destination = ip_field(body, "destinationIPAddress")?;
    for vnet in items(snapshot, "virtualNetworks") {
        let holds_source = |subnet: &&Value| {
            prop_str(subnet, "addressPrefix")
                .and_then(|p| IpNet::from_str(p).ok())
                .is_some_and(|net| net.contains(&source))
        };
        let Some(subnet) = prop_arr(vnet, "subnets").iter().find(holds_source) else {
            continue;
        };
        let routes = subnet_routes(snapshot, vnet, subnet);
        let Some(chosen) = select(&routes, destination) else {
            return Ok(answer("None", "", "System Route"));
        };
        let table = if chosen["source"] == "User" {
            prop_ref_id(subnet, "routeTable").unwrap_or("")
        } else {
            "System Route"
        };
        return Ok(answer(
            chosen["nextHopType"].as_str().unwrap_or("None"),
            chosen["nextHopIpAddress"][0].as_str().unwrap_or(""),
            table,
        ));
    }
    Err(ArmError::bad_request(
        "InvalidSourceIpAddress",
        format!("Source IP address {source} is not in any subnet the simulator knows."),
    ))
}

/// The route of `routes` (effective routes) Azure uses for `destination`, if any.
pub(crate) fn select(routes: &[Value], destination: IpAddr) -> Option<&Value> {
    routes
        .iter()
        .filter(|r| r["state"] == "Active")
        .filter_map(|r| {
            let longest = r["addressPrefix"]
                .as_array()?
                .iter()
                .filter_map(|p| IpNet::from_str(p.as_str()?).ok())
                .filter(|net| net.contains(&destination))
                .map(|net| net.prefix_len())
                .max()?;
            Some((longest, source_rank(r), r))
        })
        // `max_by_key` keeps the last of equals; reversing keeps the first listed.
        .rev()
        .max_by_key(|(len, rank, _)| (*len, *rank))
        .map(|(_, _, r)| r)
}

/// User over BGP (`VirtualNetworkGateway`) over system routes, at equal prefixes.
fn source_rank(route: &Value) -> u8 {
    match route["source"].as_str() {
        Some("User") => 2,
        Some("VirtualNetworkGateway") => 1,
        _ => 0,
    }
}

fn answer(kind: &str, address: &str, table: &str) -> Value {
    json!({"nextHopType": kind, "nextHopIpAddress": address, "routeTableId": table})
}

fn ip_field(body: &Value, field: &str) -> Result<IpAddr, ArmError> {
    body.get(field)
        .and_then(Value::as_str)
        .and_then(|s| IpAddr::from_str(s.trim()).ok())
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestFormat",
                format!("Cannot parse the request: {field} is not an IP address."),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(source: &str, state: &str, prefix: &str, hop: &str) -> Value {
        json!({"source": source, "state": state, "addressPrefix": [prefix], "nextHopType": hop, "nextHopIpAddress": []})
    }

    fn chosen(routes: &[Value], destination: &str) -> Option<String> {
        select(routes, IpAddr::from_str(destination).ok()?)
            .map(|r| format!("{} {}", r["source"], r["nextHopType"]).replace('"', ""))
    }

    #[test]
    fn the_longest_active_prefix_wins_then_the_user_route() {
        let routes = [
            route("Default", "Active", "10.1.0.0/16", "VnetLocal"),
            route("Default", "Invalid", "0.0.0.0/0", "Internet"),
            route("User", "Active", "0.0.0.0/0", "VirtualAppliance"),
            route("User", "Invalid", "10.2.0.0/16", "VirtualNetworkGateway"),
            route("Default", "Active", "10.2.0.0/16", "VNetPeering"),
            route("User", "Active", "10.2.0.0/16", "None"),
        ];
        assert_eq!(
            chosen(&routes, "10.1.2.3").as_deref(),
            Some("Default VnetLocal")
        );
        assert_eq!(
            chosen(&routes, "8.8.8.8").as_deref(),
            Some("User VirtualAppliance")
        );
        assert_eq!(chosen(&routes, "10.2.0.1").as_deref(), Some("User None"));
        assert_eq!(chosen(&routes[..2], "8.8.8.8"), None);
    }
}
