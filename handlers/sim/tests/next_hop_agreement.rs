//! Network Watcher's next hop agrees with the NIC's effective routes, for many destinations: for
//! every source subnet of an estate covering the route kinds the simulator lists (own space,
//! peerings, the reserved ranges' `None` routes, a VNet using a reserved range, user routes to an
//! appliance, the gateway, `None` and the Internet, one overriding a peering, one `Invalid` for
//! want of a gateway, and a user `0.0.0.0/0` of each of those kinds), the next hop of each
//! destination is the route Azure selects from the listed effective routes: the longest `Active`
//! prefix holding it, user over BGP over system at equal prefixes, `None` when no active route
//! holds it ("Virtual network traffic routing", "How Azure selects a route"). Destinations are
//! each route's first and last address, the addresses just outside it, and addresses drawn from
//! a fixed seed inside each route and across the whole IPv4 space.
#![allow(clippy::unwrap_used)]
mod common;

use std::net::Ipv4Addr;

use common::*;
use hubspoke_sim::{SimConfig, ThrottleSpec};
use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

const FIREWALL: &str = "10.0.1.4";

/// The seed of the drawn destinations: fixed, so a failure replays.
const SEED: u64 = 0x5eed_0a7e;

/// Drawn addresses per listed route, and across the whole space, per source.
const INSIDE_EACH_ROUTE: usize = 4;
const ANYWHERE: usize = 40;

/// The spokes: name, address space, subnet, user routes (name, prefix, next hop, address), and
/// whether its peering to the hub uses the hub's gateway.
type Spoke = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [(
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
    )],
    bool,
);

const SPOKES: [Spoke; 5] = [
    // Forced through the firewall, a gateway route, a drop inside its own space, and a route
    // overriding the peered hub's prefix exactly.
    (
        "forced",
        &["10.1.0.0/16"],
        "10.1.0.0/24",
        &[
            ("default", "0.0.0.0/0", "VirtualAppliance", Some(FIREWALL)),
            ("to-other", "10.3.0.0/16", "VirtualNetworkGateway", None),
            ("drop-half", "10.1.128.0/17", "None", None),
            (
                "hub-via-fw",
                "10.0.0.0/16",
                "VirtualAppliance",
                Some(FIREWALL),
            ),
        ],
        true,
    ),
    // No user route: the reserved ranges keep their None routes.
    ("plain", &["10.2.0.0/16"], "10.2.0.0/24", &[], true),
    // Uses a reserved range, sends 0.0.0.0/0 to the Internet and one reserved range to the
    // gateway.
    (
        "wide",
        &["172.16.0.0/12", "10.5.0.0/16"],
        "172.16.0.0/24",
        &[
            ("default", "0.0.0.0/0", "Internet", None),
            ("onprem", "192.168.0.0/16", "VirtualNetworkGateway", None),
        ],
        true,
    ),
    // Does not use the hub's gateway, so its gateway routes are Invalid, its default one too.
    (
        "shared",
        &["100.64.0.0/10"],
        "100.64.0.0/24",
        &[
            ("default", "0.0.0.0/0", "VirtualNetworkGateway", None),
            ("private", "10.0.0.0/8", "VirtualAppliance", Some(FIREWALL)),
        ],
        false,
    ),
    // Drops everything it does not reach directly.
    (
        "closed",
        &["10.6.0.0/16"],
        "10.6.0.0/24",
        &[("default", "0.0.0.0/0", "None", None)],
        true,
    ),
];

fn estate() -> Value {
    let hub = vnet_id("rg", "hub");
    let mut vnets = Vec::new();
    let mut tables = Vec::new();
    let mut nics = Vec::new();
    let mut hub_peerings = Vec::new();
    for (name, space, subnet, routes, use_gateway) in SPOKES {
        let table = table_id("rg", &format!("rt-{name}"));
        let routes: Vec<Value> = routes
            .iter()
            .map(|(route, prefix, hop, address)| {
                let mut properties = json!({"addressPrefix": prefix, "nextHopType": hop});
                if let Some(address) = address {
                    properties["nextHopIpAddress"] = json!(address);
                }
                json!({"name": route, "properties": properties})
            })
            .collect();
        tables.push(json!({"id": table, "location": "westus", "properties": {"routes": routes}}));
        vnets.push(json!({"id": vnet_id("rg", name), "location": "westus", "properties": {
            "addressSpace": {"addressPrefixes": space},
            "subnets": [{"name": "default", "properties": {"addressPrefix": subnet, "routeTable": {"id": table}}}],
            "virtualNetworkPeerings": [{"name": "to-hub", "properties": {
                "remoteVirtualNetwork": {"id": hub}, "useRemoteGateways": use_gateway}}]}}));
        hub_peerings.push(json!({"name": format!("to-{name}"), "properties": {
            "remoteVirtualNetwork": {"id": vnet_id("rg", name)}, "allowGatewayTransit": true}}));
        nics.push(json!({"id": nic_id("rg", &format!("{name}-nic")), "location": "westus", "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"subnet": {"id": format!("{}/subnets/default", vnet_id("rg", name))}}}]}}));
    }
    vnets.push(json!({"id": hub, "location": "westus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [
            {"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}},
            {"name": "AzureFirewallSubnet", "properties": {"addressPrefix": "10.0.1.0/26"}}],
        "virtualNetworkPeerings": hub_peerings}}));
    json!({
        "virtualNetworks": vnets,
        "routeTables": tables,
        "virtualNetworkGateways": [{"id": gateway_id("rg", "hub-gw"), "location": "westus", "properties": {
            "gatewayType": "Vpn", "vpnType": "RouteBased",
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{hub}/subnets/GatewaySubnet")}}}]}}],
        "networkInterfaces": nics
    })
}

fn prefixes_of(route: &Value) -> Vec<Ipv4Net> {
    route["addressPrefix"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str().unwrap().parse().ok())
        .collect()
}

/// The next hop Azure's selection gives for `destination` from the listed `routes` of a subnet
/// whose route table is `table`, written as Network Watcher answers it.
fn expected(routes: &[Value], table: &str, destination: Ipv4Addr) -> Value {
    let rank = |route: &Value| match route["source"].as_str().unwrap() {
        "User" => 2,
        "VirtualNetworkGateway" => 1,
        _ => 0,
    };
    let mut best: Option<(u8, u8, &Value)> = None;
    for route in routes.iter().filter(|r| r["state"] == "Active") {
        let Some(length) = prefixes_of(route)
            .iter()
            .filter(|net| net.contains(&destination))
            .map(Ipv4Net::prefix_len)
            .max()
        else {
            continue;
        };
        if best.is_none_or(|(l, r, _)| (length, rank(route)) > (l, r)) {
            best = Some((length, rank(route), route));
        }
    }
    match best {
        None => {
            json!({"nextHopType": "None", "nextHopIpAddress": "", "routeTableId": "System Route"})
        }
        Some((_, _, route)) => json!({
            "nextHopType": route["nextHopType"],
            "nextHopIpAddress": route["nextHopIpAddress"][0].as_str().unwrap_or(""),
            "routeTableId": if route["source"] == "User" { table } else { "System Route" },
        }),
    }
}

/// Each route's edges and just beyond them, addresses drawn inside each route, and anywhere.
fn destinations(routes: &[Value], rng: &mut StdRng) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    for net in routes.iter().flat_map(prefixes_of) {
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        found.extend(
            [
                Some(first),
                Some(last),
                first.checked_sub(1),
                last.checked_add(1),
            ]
            .into_iter()
            .flatten(),
        );
        for _ in 0..INSIDE_EACH_ROUTE {
            found.push(rng.random_range(first..=last));
        }
    }
    for _ in 0..ANYWHERE {
        found.push(rng.random());
    }
    found.sort_unstable();
    found.dedup();
    found.into_iter().map(Ipv4Addr::from).collect()
}

#[tokio::test]
async fn next_hop_is_the_route_azure_selects_from_the_effective_routes() {
    // Hundreds of next hop POSTs would empty ARM's write bucket (200): not what this checks.
    let config = SimConfig {
        throttle: ThrottleSpec {
            enabled: false,
            ..ThrottleSpec::default()
        },
        ..SimConfig::default()
    };
    let (sim, client) = start_sim(config).await;
    sim.load(&estate()).unwrap();
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut compared = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for (name, _, subnet, _, _) in SPOKES {
        let routes = client
            .effective_routes(&nic_id("rg", &format!("{name}-nic")))
            .await;
        // Under a user 0.0.0.0/0 no None route of the reserved ranges is listed.
        let user_default = routes
            .iter()
            .any(|r| r["source"] == "User" && r["addressPrefix"] == json!(["0.0.0.0/0"]));
        assert_eq!(
            routes
                .iter()
                .any(|r| r["source"] == "Default" && r["nextHopType"] == "None"),
            !user_default,
            "{name}: {routes:#?}"
        );
        let subnet: Ipv4Net = subnet.parse().unwrap();
        let source = Ipv4Addr::from(u32::from(subnet.network()) + 4).to_string();
        let table = table_id("rg", &format!("rt-{name}"));
        for destination in destinations(&routes, &mut rng) {
            let want = expected(&routes, &table, destination);
            let got = client.next_hop(&source, &destination.to_string()).await;
            assert_eq!(
                got, want,
                "{name}: {source} -> {destination} (seed {SEED:#x}); routes {routes:#?}"
            );
            kinds.insert(format!(
                "{} {}",
                got["nextHopType"],
                got["routeTableId"] != "System Route"
            ));
            compared += 1;
        }
    }
    // The estate exercises every kind of answer, so agreement is not vacuous.
    for kind in [
        "\"VnetLocal\" false",
        "\"VNetPeering\" false",
        "\"Internet\" false",
        "\"None\" false",
        "\"VirtualAppliance\" true",
        "\"VirtualNetworkGateway\" true",
        "\"Internet\" true",
        "\"None\" true",
    ] {
        assert!(kinds.contains(kind), "no next hop {kind} among {kinds:?}");
    }
    assert!(compared > 300, "only {compared} destinations compared");
    sim.shutdown().await;
}
