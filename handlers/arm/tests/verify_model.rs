//! The verification's model against the simulator's own effective routes: on generated estates
//! (foreign routes of every next hop type and length, `None` routes, shared tables, direct
//! peerings between spokes, IPv6 spaces, reserved ranges used as address space, half-open and
//! disconnected pairs, a hub gateway present, provisioning or absent), for every subnet holding
//! a network interface:
//! - over every IPv4 address, the next hop the model selects from its routes of the subnet
//!   (`hubspoke_core::verify`) is the one selected from the effective routes the simulator lists
//!   for the interface (`POST …/effectiveRouteTable`, read by `hubspoke_arm::effective`);
//! - the IPv6 routes the two list are the same;
//! - at every route boundary of either list (each route's first and last address and the
//!   addresses just outside it), the model's next hop is the one Network Watcher's next hop
//!   answers (the simulator's own route selection, which is separate code).
//!
//! The simulator computes its routes in its own code (`handlers/sim/src/effective.rs`), sharing
//! nothing with the model but the ARM JSON between them.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::*;
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::effective::effective_routes;
use hubspoke_arm::observe::observe;
use hubspoke_arm::pacer::BucketSize;
use hubspoke_core::id::SubnetId;
use hubspoke_core::verify::{compare, model_routes, HopKind, InterfaceRoutes, Selection};
use hubspoke_sim::{SimConfig, SimHandle, ThrottleSpec};

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{json, Value};

/// Generated estates per run: enough to meet every kind of route many times, few enough that
/// the test runs in seconds.
const CASES: u32 = 40;

/// Next hops of the generated routes: (type, address).
const HOPS: [(&str, Option<&str>); 7] = [
    ("VirtualNetworkGateway", None),
    ("VirtualAppliance", Some("10.0.1.4")),
    ("VirtualAppliance", Some("10.0.1.5")),
    ("None", None),
    ("Internet", None),
    ("VnetLocal", None),
    ("VirtualNetworkGateway", None),
];

/// How a spoke is peered with the hub.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// Both sides `Connected`, the spoke using the hub's gateway.
    Transit,
    /// Both sides `Connected`, no transit flags.
    Plain,
    /// Only the spoke side, `Initiated`.
    HalfOpen,
    /// Only the spoke side, `Disconnected` (the hub side was deleted).
    Disconnected,
}

#[derive(Debug, Clone)]
struct SpokeCase {
    /// A second range: none, or an index into `extra_prefix`.
    extra: Option<usize>,
    ipv6: bool,
    link: Link,
    /// The table of each of its two subnets (an index into the case's tables), if any.
    tables: [Option<usize>; 2],
}

#[derive(Debug, Clone)]
struct Case {
    gateway: Option<&'static str>,
    spokes: Vec<SpokeCase>,
    /// Spokes peered with each other (both sides `Connected`).
    direct: Vec<(usize, usize)>,
    /// Each table's routes: (prefix kind, spoke it is cut from, next hop).
    tables: Vec<Vec<(usize, usize, usize)>>,
}

fn link() -> impl Strategy<Value = Link> {
    prop_oneof![
        4 => Just(Link::Transit),
        1 => Just(Link::Plain),
        1 => Just(Link::HalfOpen),
        1 => Just(Link::Disconnected),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let spoke = (
        prop::option::weighted(0.4, 0usize..6),
        prop::bool::weighted(0.2),
        link(),
        [
            prop::option::weighted(0.8, 0usize..4),
            prop::option::weighted(0.6, 0usize..4),
        ],
    )
        .prop_map(|(extra, ipv6, link, tables)| SpokeCase {
            extra,
            ipv6,
            link,
            tables,
        });
    let route = (0usize..14, 0usize..4, 0usize..HOPS.len());
    (
        prop_oneof![3 => Just(Some("Succeeded")), 1 => Just(Some("Updating")), 1 => Just(None)],
        prop::collection::vec(spoke, 2..5),
        prop::collection::vec((0usize..4, 0usize..4), 0..3),
        prop::collection::vec(prop::collection::vec(route, 0..6), 4),
    )
        .prop_map(|(gateway, spokes, direct, tables)| Case {
            gateway,
            spokes,
            direct,
            tables,
        })
}

/// Spoke `i` (from 0) lives in 10.(i+1).0.0/16.
fn space(i: usize) -> String {
    format!("10.{}.0.0/16", i + 1)
}

/// Second ranges: some inside the reserved ranges, some that are one, one that overlaps the hub.
fn extra_prefix(kind: usize, i: usize) -> String {
    match kind {
        0 => format!("172.16.{}.0/24", i),
        1 => format!("192.168.{}.0/24", i),
        2 => format!("100.64.{}.0/24", i),
        3 => "172.16.0.0/12".into(),
        4 => "192.168.0.0/16".into(),
        _ => format!("10.{}.0.0/16", 100 + i),
    }
}

/// Route prefixes: around spoke `i`'s space, the hub's, the reserved ranges, the default route.
fn route_prefix(kind: usize, i: usize) -> String {
    let n = i + 1;
    match kind {
        0 => format!("10.{n}.0.0/16"),
        1 => format!("10.{n}.0.0/24"),
        2 => format!("10.{n}.128.0/17"),
        3 => format!("10.{n}.5.0/24"),
        4 => format!("10.{n}.0.0/15"),
        5 => "10.0.0.0/8".into(),
        6 => "0.0.0.0/0".into(),
        7 => "172.16.0.0/12".into(),
        8 => "192.168.0.0/16".into(),
        9 => "100.64.0.0/10".into(),
        10 => "10.0.0.0/16".into(),
        11 => format!("fd00:{n}::/48"),
        12 => format!("172.16.{i}.0/25"),
        _ => format!("10.{n}.0.7/32"),
    }
}

fn nic_id(spoke: usize, subnet: usize) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic-{spoke}-{subnet}")
}

fn subnet_id(spoke: usize, subnet: usize) -> String {
    format!(
        "{}/subnets/s{subnet}",
        vnet_id("rg", &format!("spoke{spoke}"))
    )
}

fn peering(from: &str, to: &str, state: &str, flags: (bool, bool)) -> Value {
    json!({"name": format!("{from}-to-{to}"), "properties": {
        "remoteVirtualNetwork": {"id": vnet_id("rg", to)}, "peeringState": state,
        "allowGatewayTransit": flags.0, "useRemoteGateways": flags.1}})
}

/// The ARM snapshot of `case`, with a NIC in every spoke subnet.
fn snapshot(case: &Case) -> Value {
    let hub = vnet_id("rg", "hub");
    let gateway = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworkGateways/hub-gw");
    let mut hub_peerings = Vec::new();
    let mut vnets = Vec::new();
    let mut nics = Vec::new();
    for (i, spoke) in case.spokes.iter().enumerate() {
        let name = format!("spoke{i}");
        let mut prefixes = vec![space(i)];
        prefixes.extend(spoke.extra.map(|kind| extra_prefix(kind, i)));
        if spoke.ipv6 {
            prefixes.push(format!("fd00:{}::/48", i + 1));
        }
        let mut peerings = Vec::new();
        match spoke.link {
            Link::Transit | Link::Plain => {
                let transit = matches!(spoke.link, Link::Transit);
                peerings.push(peering(&name, "hub", "Connected", (false, transit)));
                hub_peerings.push(peering("hub", &name, "Connected", (transit, false)));
            }
            Link::HalfOpen => peerings.push(peering(&name, "hub", "Initiated", (false, false))),
            Link::Disconnected => {
                peerings.push(peering(&name, "hub", "Disconnected", (false, false)))
            }
        }
        for &(a, b) in &case.direct {
            let (a, b) = (a % case.spokes.len(), b % case.spokes.len());
            if a != b && (i == a || i == b) {
                let other = if i == a { b } else { a };
                let other_name = format!("spoke{other}");
                if !peerings
                    .iter()
                    .any(|p| p["name"] == format!("{name}-to-{other_name}"))
                {
                    peerings.push(peering(&name, &other_name, "Connected", (false, false)));
                }
            }
        }
        let subnets: Vec<Value> = (0..2)
            .map(|s| {
                nics.push(json!({"id": nic_id(i, s), "location": "westus", "properties": {"ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"primary": true, "subnet": {"id": subnet_id(i, s)}}}]}}));
                let mut properties = json!({"addressPrefix": format!("10.{}.{s}.0/24", i + 1),
                    "ipConfigurations": [{"id": format!("{}/ipConfigurations/ipconfig1", nic_id(i, s))}]});
                if let Some(table) = spoke.tables[s] {
                    properties["routeTable"] = json!({"id": table_id("rg", &format!("rt{table}"))});
                }
                json!({"name": format!("s{s}"), "properties": properties})
            })
            .collect();
        vnets.push(
            json!({"id": vnet_id("rg", &name), "location": "westus", "properties": {
            "addressSpace": {"addressPrefixes": prefixes}, "subnets": subnets,
            "virtualNetworkPeerings": peerings}}),
        );
    }
    let mut gateway_subnet =
        json!({"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}});
    let mut gateways = Vec::new();
    if let Some(state) = case.gateway {
        gateway_subnet["properties"]["ipConfigurations"] =
            json!([{"id": format!("{gateway}/ipConfigurations/default")}]);
        gateways.push(json!({"id": gateway, "location": "westus", "properties": {
            "provisioningState": state, "gatewayType": "Vpn", "vpnType": "RouteBased", "sku": {"name": "VpnGw1"},
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{hub}/subnets/GatewaySubnet")}}}]}}));
    }
    vnets.push(json!({"id": hub, "location": "westus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [gateway_subnet],
        "virtualNetworkPeerings": hub_peerings}}));
    let tables: Vec<Value> = case
        .tables
        .iter()
        .enumerate()
        .map(|(t, routes)| {
            let mut seen = BTreeSet::new();
            let routes: Vec<Value> = routes
                .iter()
                .filter_map(|&(kind, spoke, hop)| {
                    let prefix = route_prefix(kind, spoke % case.spokes.len());
                    // A table holds one route per prefix.
                    if !seen.insert(prefix.parse::<IpNet>().ok()?.trunc()) {
                        return None;
                    }
                    let (hop, address) = HOPS[hop];
                    let mut properties = json!({"addressPrefix": prefix, "nextHopType": hop});
                    if let Some(address) = address {
                        properties["nextHopIpAddress"] = json!(address);
                    }
                    Some(json!({"name": format!("r{}", seen.len()), "properties": properties}))
                })
                .collect();
            json!({"id": table_id("rg", &format!("rt{t}")), "location": "westus", "properties": {"routes": routes}})
        })
        .collect();
    json!({"virtualNetworks": vnets, "routeTables": tables, "virtualNetworkGateways": gateways, "networkInterfaces": nics})
}

/// The first and last address of every IPv4 route of `routes`, and those just outside.
fn boundaries(routes: &[hubspoke_core::verify::EffectiveRoute<'_>]) -> BTreeSet<Ipv4Addr> {
    let mut addresses = BTreeSet::new();
    for route in routes {
        if let IpNet::V4(net) = route.prefix {
            let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
            for address in [
                Some(first),
                Some(last),
                first.checked_sub(1),
                last.checked_add(1),
            ] {
                addresses.extend(address.map(Ipv4Addr::from));
            }
        }
    }
    addresses
}

/// The IPv6 routes of a list, as (prefix, next hop, active).
fn ipv6(routes: &[hubspoke_core::verify::EffectiveRoute<'_>]) -> BTreeSet<(String, String, bool)> {
    routes
        .iter()
        .filter(|r| matches!(r.prefix, IpNet::V6(_)))
        .map(|r| (r.prefix.to_string(), r.hop_type.to_string(), r.active))
        .collect()
}

/// Network Watcher's next hop from the first address of subnet `subnet` to `destination`.
async fn next_hop(
    client: &ArmClient,
    source: Ipv4Addr,
    destination: Ipv4Addr,
) -> (HopKind, String) {
    let watcher = format!("/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westus/nextHop");
    let body = json!({"targetResourceId": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"),
        "sourceIPAddress": source.to_string(), "destinationIPAddress": destination.to_string()});
    let answer = client
        .post_read_action(&watcher, Some(&body))
        .await
        .unwrap();
    let kind = HopKind::parse(answer["nextHopType"].as_str().unwrap());
    let address = if kind == HopKind::VirtualAppliance {
        answer["nextHopIpAddress"]
            .as_str()
            .unwrap_or("")
            .to_string()
    } else {
        String::new()
    };
    (kind, address)
}

/// Checks one generated estate; the error says where the model and the simulator part.
async fn check(sim: &SimHandle, client: &ArmClient, case: &Case) -> Result<(), String> {
    let estate = snapshot(case);
    sim.load(&estate).map_err(|e| e.to_string())?;
    let hub = vnet_id("rg", "hub").parse().unwrap();
    let observed = observe(client, &[hub], None)
        .await
        .map_err(|e| e.to_string())?
        .observed;
    for i in 0..case.spokes.len() {
        for s in 0..2 {
            let subnet: SubnetId = subnet_id(i, s).parse().unwrap();
            let listed = effective_routes(client, &nic_id(i, s))
                .await
                .map_err(|e| e.to_string())?;
            let model = model_routes(&observed, &subnet).ok_or("subnet not observed")?;
            let interface = InterfaceRoutes {
                nic: nic_id(i, s),
                subnet: subnet.clone(),
                routes: listed,
            };
            let everything: Ipv4Net = "0.0.0.0/0".parse().unwrap();
            let differences = compare(&observed, &[everything], &interface)?;
            if !differences.is_empty() {
                return Err(format!(
                    "spoke{i}/s{s}: {differences:#?}\nmodel: {model:#?}\nsimulator: {:#?}",
                    interface.routes
                ));
            }
            if ipv6(&model) != ipv6(&interface.routes) {
                return Err(format!(
                    "spoke{i}/s{s} IPv6: model {:?}, simulator {:?}",
                    ipv6(&model),
                    ipv6(&interface.routes)
                ));
            }
            let selection = Selection::new(&model);
            let source = Ipv4Addr::new(10, (i + 1) as u8, s as u8, 4);
            let mut addresses = boundaries(&model);
            addresses.extend(boundaries(&interface.routes));
            for destination in addresses {
                let chosen = selection.at(destination).map(|r| &model[r]);
                let ours = match chosen {
                    None => (HopKind::Drop, String::new()),
                    Some(r) if r.hop == HopKind::VirtualAppliance => (
                        r.hop,
                        r.next_hop_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    ),
                    Some(r) => (r.hop, String::new()),
                };
                let theirs = next_hop(client, source, destination).await;
                if ours != theirs {
                    return Err(format!("spoke{i}/s{s} to {destination}: model {ours:?} ({chosen:?}), Network Watcher {theirs:?}"));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_model_selects_the_next_hops_the_simulator_lists_for_every_subnet_and_address() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime
        .block_on(hubspoke_sim::start(SimConfig {
            tls: true,
            throttle: ThrottleSpec {
                enabled: false,
                ..ThrottleSpec::default()
            },
            ..SimConfig::default()
        }))
        .unwrap();
    // Thousands of requests in seconds: neither the simulator's throttling nor the client's
    // pacing is what this test is about (`pacing.rs` is).
    let mut settings = settings_for(&sim, &[]);
    let unlimited = BucketSize {
        size: 1_000_000,
        refill_per_second: 1_000_000,
    };
    settings.pacing.reads = unlimited;
    settings.pacing.writes = unlimited;
    let client = client_for(&settings);
    let config = Config {
        cases: CASES,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |case| {
        runtime
            .block_on(check(&sim, &client, &case))
            .map_err(TestCaseError::fail)
    });
    runtime.block_on(sim.shutdown());
    if let Err(error) = result {
        panic!("{error}");
    }
}
