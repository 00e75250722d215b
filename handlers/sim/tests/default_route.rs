//! A user route for `0.0.0.0/0` and the `None` routes of the reserved ranges (10.0.0.0/8,
//! 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10): Azure removes those routes from a subnet whose
//! route table has a user route for `0.0.0.0/0`, whatever its next hop, so a spoke forced through
//! a firewall reaches the other private ranges through the firewall instead of dropping the
//! traffic ("Virtual network traffic routing", routing example, Subnet1 and Subnet2). Checked in
//! both the NIC's effective routes and Network Watcher's next hop; a subnet without such a route
//! keeps them, and a VNet whose space uses a reserved range still loses only that one.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use hubspoke_sim::SimConfig;
use serde_json::{json, Value};

const RESERVED: [&str; 4] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/16",
];

/// The firewall in the hub that spoke1's default route points at.
const FIREWALL: &str = "10.0.1.4";

/// A hub (10.0.0.0/16) with a gateway and a firewall subnet; spoke1 (10.1.0.0/16) whose subnet
/// sends `0.0.0.0/0` to the firewall; spoke2 (10.2.0.0/16) whose subnet's table has no route.
/// Both spokes are peered to the hub through its gateway, and each has a NIC in its subnet.
fn forced_tunnel_estate() -> Value {
    let hub = vnet_id("rg", "hub");
    let spoke = |name: &str, space: &str, subnet: &str| {
        json!({"id": vnet_id("rg", name), "location": "westus", "properties": {
            "addressSpace": {"addressPrefixes": [space]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": subnet,
                "routeTable": {"id": table_id("rg", &format!("rt-{name}"))}}}],
            "virtualNetworkPeerings": [{"name": "to-hub", "properties": {
                "remoteVirtualNetwork": {"id": hub}, "useRemoteGateways": true}}]}})
    };
    let hub_side = |name: &str| {
        json!({"name": format!("to-{name}"), "properties": {
            "remoteVirtualNetwork": {"id": vnet_id("rg", name)}, "allowGatewayTransit": true}})
    };
    let nic = |name: &str| {
        json!({"id": nic_id("rg", &format!("{name}-nic")), "location": "westus", "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"subnet": {"id": format!("{}/subnets/default", vnet_id("rg", name))}}}]}})
    };
    json!({
        "virtualNetworks": [
            {"id": hub, "location": "westus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [
                    {"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}},
                    {"name": "AzureFirewallSubnet", "properties": {"addressPrefix": "10.0.1.0/26"}}],
                "virtualNetworkPeerings": [hub_side("spoke1"), hub_side("spoke2")]}},
            spoke("spoke1", "10.1.0.0/16", "10.1.0.0/24"),
            spoke("spoke2", "10.2.0.0/16", "10.2.0.0/24")
        ],
        "routeTables": [
            {"id": table_id("rg", "rt-spoke1"), "location": "westus", "properties": {"routes": [
                {"name": "to-firewall", "properties": {"addressPrefix": "0.0.0.0/0",
                    "nextHopType": "VirtualAppliance", "nextHopIpAddress": FIREWALL}}]}},
            {"id": table_id("rg", "rt-spoke2"), "location": "westus", "properties": {"routes": []}}
        ],
        "virtualNetworkGateways": [{"id": gateway_id("rg", "hub-gw"), "location": "westus", "properties": {
            "gatewayType": "Vpn", "vpnType": "RouteBased",
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{hub}/subnets/GatewaySubnet")}}}]}}],
        "networkInterfaces": [nic("spoke1"), nic("spoke2")]
    })
}

fn find<'a>(routes: &'a [Value], source: &str, prefix: &str) -> Option<&'a Value> {
    routes
        .iter()
        .find(|r| r["source"] == source && r["addressPrefix"] == json!([prefix]))
}

fn hop(kind: &str, address: &str, table: &str) -> Value {
    json!({"nextHopType": kind, "nextHopIpAddress": address, "routeTableId": table})
}

fn system(kind: &str) -> Value {
    hop(kind, "", "System Route")
}

#[tokio::test]
async fn a_user_default_route_sends_the_reserved_ranges_to_the_firewall() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&forced_tunnel_estate()).unwrap();

    let forced = client.effective_routes(&nic_id("rg", "spoke1-nic")).await;
    for reserved in RESERVED {
        assert!(
            find(&forced, "Default", reserved).is_none(),
            "{reserved} is still routed to None: {forced:#?}"
        );
    }
    let user = find(&forced, "User", "0.0.0.0/0").unwrap();
    assert_eq!(user["state"], "Active");
    assert_eq!(user["nextHopType"], "VirtualAppliance");
    assert_eq!(user["nextHopIpAddress"], json!([FIREWALL]));
    assert_eq!(
        find(&forced, "Default", "0.0.0.0/0").unwrap()["state"],
        "Invalid"
    );
    assert_eq!(
        find(&forced, "Default", "10.1.0.0/16").unwrap()["state"],
        "Active"
    );
    assert_eq!(
        find(&forced, "Default", "10.0.0.0/16").unwrap()["nextHopType"],
        "VNetPeering"
    );

    // The subnet without a user default route keeps all four.
    let plain = client.effective_routes(&nic_id("rg", "spoke2-nic")).await;
    for reserved in RESERVED {
        let route = find(&plain, "Default", reserved).unwrap();
        assert_eq!(route["nextHopType"], "None");
        assert_eq!(route["state"], "Active");
    }

    // Next hop agrees: from spoke1 every private range goes to the firewall, while longer
    // system routes (own VNet, peered hub) still win over the user's 0.0.0.0/0.
    let firewall = hop("VirtualAppliance", FIREWALL, &table_id("rg", "rt-spoke1"));
    for destination in [
        "10.2.0.4",
        "10.200.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "8.8.8.8",
    ] {
        assert_eq!(
            client.next_hop("10.1.0.4", destination).await,
            firewall,
            "{destination}"
        );
    }
    assert_eq!(
        client.next_hop("10.1.0.4", "10.1.0.9").await,
        system("VnetLocal")
    );
    assert_eq!(
        client.next_hop("10.1.0.4", "10.0.0.5").await,
        system("VNetPeering")
    );
    // From spoke2 the reserved ranges are dropped and the rest goes to the Internet.
    for destination in ["10.1.0.4", "172.16.0.1", "192.168.1.1", "100.64.0.1"] {
        assert_eq!(
            client.next_hop("10.2.0.4", destination).await,
            system("None"),
            "{destination}"
        );
    }
    assert_eq!(
        client.next_hop("10.2.0.4", "8.8.8.8").await,
        system("Internet")
    );

    // Taking the user default route away brings the None routes back.
    client
        .delete_ok(&format!(
            "{}/routes/to-firewall",
            table_id("rg", "rt-spoke1")
        ))
        .await;
    let restored = client.effective_routes(&nic_id("rg", "spoke1-nic")).await;
    for reserved in RESERVED {
        assert_eq!(
            find(&restored, "Default", reserved).unwrap()["state"],
            "Active"
        );
    }
    assert_eq!(
        client.next_hop("10.1.0.4", "10.2.0.4").await,
        system("None")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn any_next_hop_of_a_user_default_route_removes_the_reserved_none_routes() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&forced_tunnel_estate()).unwrap();
    let table = table_id("rg", "rt-spoke2");
    let gateway_address = "10.0.255.4";
    for (kind, address) in [
        ("VirtualNetworkGateway", gateway_address),
        ("None", ""),
        ("Internet", ""),
    ] {
        client
            .put_ok(
                &format!("{table}/routes/default"),
                json!({"properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": kind}}),
            )
            .await;
        let routes = client.effective_routes(&nic_id("rg", "spoke2-nic")).await;
        for reserved in RESERVED {
            assert!(
                find(&routes, "Default", reserved).is_none(),
                "{kind}: {reserved} is still routed to None"
            );
        }
        assert_eq!(
            find(&routes, "User", "0.0.0.0/0").unwrap()["state"],
            "Active",
            "{kind}"
        );
        for destination in ["10.1.0.4", "172.16.0.1", "8.8.8.8"] {
            assert_eq!(
                client.next_hop("10.2.0.4", destination).await,
                hop(kind, address, &table),
                "{kind} {destination}"
            );
        }
    }

    // A prefix other than 0.0.0.0/0 removes nothing: only the None route it repeats exactly is
    // overridden (listed Invalid), the others stay.
    client.delete_ok(&format!("{table}/routes/default")).await;
    client
        .put_ok(
            &format!("{table}/routes/private"),
            json!({"properties": {"addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance", "nextHopIpAddress": FIREWALL}}),
        )
        .await;
    let routes = client.effective_routes(&nic_id("rg", "spoke2-nic")).await;
    assert_eq!(
        find(&routes, "Default", "10.0.0.0/8").unwrap()["state"],
        "Invalid"
    );
    for reserved in ["100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16"] {
        assert_eq!(
            find(&routes, "Default", reserved).unwrap()["state"],
            "Active"
        );
    }
    assert_eq!(
        client.next_hop("10.2.0.4", "10.1.0.4").await,
        hop("VirtualAppliance", FIREWALL, &table)
    );
    assert_eq!(
        client.next_hop("10.2.0.4", "172.16.0.1").await,
        system("None")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_gateway_default_route_without_a_gateway_still_removes_them_and_drops_the_traffic() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let mut estate = forced_tunnel_estate();
    estate["virtualNetworkGateways"] = json!([]);
    estate["routeTables"][1]["properties"]["routes"] = json!([
        {"name": "default", "properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualNetworkGateway"}}]);
    sim.load(&estate).unwrap();
    let routes = client.effective_routes(&nic_id("rg", "spoke2-nic")).await;
    for reserved in RESERVED {
        assert!(find(&routes, "Default", reserved).is_none(), "{reserved}");
    }
    assert_eq!(
        find(&routes, "User", "0.0.0.0/0").unwrap()["state"],
        "Invalid"
    );
    assert_eq!(
        find(&routes, "Default", "0.0.0.0/0").unwrap()["state"],
        "Invalid"
    );
    // No active route covers these any more: nothing forwards them.
    for destination in ["172.16.0.1", "8.8.8.8"] {
        assert_eq!(
            client.next_hop("10.2.0.4", destination).await,
            system("None"),
            "{destination}"
        );
    }
    assert_eq!(
        client.next_hop("10.2.0.4", "10.2.0.9").await,
        system("VnetLocal")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_vnet_using_a_reserved_range_loses_only_that_none_route() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let vnet = vnet_id("rg", "wide");
    sim.load(&json!({
        "virtualNetworks": [{"id": vnet, "location": "westus", "properties": {
            "addressSpace": {"addressPrefixes": ["172.16.0.0/12", "10.5.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "172.16.0.0/24"}}]}}],
        "networkInterfaces": [{"id": nic_id("rg", "wide-nic"), "location": "westus", "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"subnet": {"id": format!("{vnet}/subnets/default")}}}]}}]
    }))
    .unwrap();
    let routes = client.effective_routes(&nic_id("rg", "wide-nic")).await;
    assert!(find(&routes, "Default", "172.16.0.0/12").unwrap()["nextHopType"] == "VnetLocal");
    assert!(routes
        .iter()
        .all(|r| !(r["addressPrefix"] == json!(["172.16.0.0/12"]) && r["nextHopType"] == "None")));
    // 10.5.0.0/16 is inside 10.0.0.0/8 but does not contain it: that None route stays.
    for reserved in ["10.0.0.0/8", "100.64.0.0/10", "192.168.0.0/16"] {
        assert_eq!(
            find(&routes, "Default", reserved).unwrap()["nextHopType"],
            "None"
        );
    }
    assert_eq!(
        client.next_hop("172.16.0.4", "172.20.0.1").await,
        system("VnetLocal")
    );
    assert_eq!(
        client.next_hop("172.16.0.4", "10.5.3.3").await,
        system("VnetLocal")
    );
    assert_eq!(
        client.next_hop("172.16.0.4", "10.6.0.1").await,
        system("None")
    );
    sim.shutdown().await;
}
