//! ARM behaviour of the simulator, one test per rule imitated: paths, shapes, etags, LROs,
//! peering state machine and sync, gateway-transit validation, route tables, subnets, locks.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::Duration;

use common::*;
use hubspoke_sim::{LatencySpec, LockConflict, SimConfig, Strictness};
use serde_json::{json, Value};

fn quick() -> SimConfig {
    SimConfig::default()
}

fn slow_lro() -> SimConfig {
    SimConfig {
        latency: LatencySpec {
            lro: Duration::from_secs(30),
            delete: Duration::from_secs(30),
            ..LatencySpec::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn requests_need_a_bearer_token_and_an_api_version() {
    let (sim, client) = start_sim(quick()).await;
    let url = format!("{}{}?api-version={API}", client.base, vnet_id("rg", "v"));
    let response = client.http.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthenticationFailed");

    let url = format!("{}{}", client.base, vnet_id("rg", "v"));
    let response = client
        .http
        .get(&url)
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");

    let missing = client.get(&vnet_id("rg", "nope")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "ResourceNotFound");
    assert!(missing.header("x-ms-request-id").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn vnet_create_is_a_long_running_operation_with_shared_weak_etags() {
    let (sim, client) = start_sim(quick()).await;
    let id = vnet_id("rg", "hub");
    let answer = client
        .put(
            &id,
            json!({"location": "westus", "tags": {"a": "b"}, "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}], "futureProperty": {"kept": true}}}),
        )
        .await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body["properties"]["provisioningState"], "Updating");
    assert_eq!(
        answer.body["properties"]["subnets"][0]["properties"]["provisioningState"],
        "Updating"
    );
    assert_eq!(answer.body["type"], "Microsoft.Network/virtualNetworks");
    assert!(answer
        .header("azure-asyncoperation")
        .unwrap()
        .contains("/providers/Microsoft.Network/locations/westus/operations/"));
    assert!(answer.header("retry-after").is_some());
    assert_eq!(client.wait(&answer).await, "Succeeded");

    // Ids are case-insensitive; the caller's casing is kept.
    let got = client
        .get(
            &id.to_uppercase()
                .replace("VIRTUALNETWORKS", "virtualnetworks"),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["id"], id);
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(got.body["properties"]["futureProperty"]["kept"], true);
    let etag = got.body["etag"].as_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""));
    assert_eq!(got.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(got.body["properties"]["subnets"][0]["etag"], etag);

    // A child change gives the VNet and all its children a new etag.
    client
        .put_ok(
            &format!("{id}/subnets/second"),
            json!({"properties": {"addressPrefix": "10.0.1.0/24"}}),
        )
        .await;
    let after = client.get(&id).await.body;
    assert_ne!(after["etag"], etag);
    for subnet in after["properties"]["subnets"].as_array().unwrap() {
        assert_eq!(subnet["etag"], after["etag"]);
    }

    // Update is 200 + Updating.
    let update = client
        .put(&id, json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16", "10.9.0.0/16"]}}}))
        .await;
    assert_eq!(update.status, 200);
    assert_eq!(update.body["properties"]["provisioningState"], "Updating");
    client.wait(&update).await;
    // Subnets omitted from a VNet PUT are kept.
    assert_eq!(
        client.get(&id).await.body["properties"]["subnets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_page_with_next_link() {
    let (sim, client) = start_sim(SimConfig {
        page_size: 2,
        ..quick()
    })
    .await;
    for i in 0..5 {
        client
            .vnet(
                "rg",
                &format!("v{i}"),
                &[&format!("10.{i}.0.0/16")],
                json!([]),
            )
            .await;
    }
    let mut url = format!("/subscriptions/{SUB}/providers/Microsoft.Network/virtualNetworks");
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = client.get(&url).await;
        assert_eq!(page.status, 200);
        pages += 1;
        for v in page.body["value"].as_array().unwrap() {
            names.push(v["name"].as_str().unwrap().to_string());
        }
        match page.body["nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("api-version="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["v0", "v1", "v2", "v3", "v4"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn peering_state_follows_the_other_side() {
    let (sim, client) = start_sim(quick()).await;
    let (a, b) = (vnet_id("rg", "a"), vnet_id("rg", "b"));
    client.vnet("rg", "a", &["10.1.0.0/16"], json!([])).await;
    client.vnet("rg", "b", &["10.2.0.0/16"], json!([])).await;
    let ab = client.peer_ok(&a, "a-b", &b, json!({})).await;
    assert_eq!(ab["properties"]["peeringState"], "Initiated");
    assert_eq!(
        ab["type"],
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"
    );
    let etag_before = client.get(&a).await.body["etag"].clone();

    let ba = client.peer(&b, "b-a", &a, json!({})).await;
    assert_eq!(ba.status, 201);
    assert_eq!(ba.body["properties"]["peeringState"], "Connected");
    client.wait(&ba).await;
    let ab = client
        .get(&format!("{a}/virtualNetworkPeerings/a-b"))
        .await
        .body;
    assert_eq!(ab["properties"]["peeringState"], "Connected");
    assert_eq!(
        ab["properties"]["resourceGuid"],
        ba.body["properties"]["resourceGuid"]
    );
    assert_ne!(
        client.get(&a).await.body["etag"],
        etag_before,
        "a passive change changes the etag"
    );

    // Delete one side: the other is Disconnected, cannot be updated, and blocks re-creation.
    client
        .delete_ok(&format!("{b}/virtualNetworkPeerings/b-a"))
        .await;
    let ab = client
        .get(&format!("{a}/virtualNetworkPeerings/a-b"))
        .await
        .body;
    assert_eq!(ab["properties"]["peeringState"], "Disconnected");
    let update = client
        .peer(&a, "a-b", &b, json!({"allowForwardedTraffic": false}))
        .await;
    assert_eq!(update.status, 400);
    assert_eq!(update.code(), "CannotUpdateDisconnectedPeering");
    let recreate = client.peer(&b, "b-a", &a, json!({})).await;
    assert_eq!(recreate.status, 400);
    assert_eq!(recreate.code(), "RemotePeeringIsDisconnected");

    // Delete the disconnected side too; then both can be made again.
    client
        .delete_ok(&format!("{a}/virtualNetworkPeerings/a-b"))
        .await;
    client.peer_ok(&b, "b-a", &a, json!({})).await;
    let ab = client.peer_ok(&a, "a-b", &b, json!({})).await;
    assert_eq!(ab["properties"]["peeringState"], "Connected");

    // Deleting a VNet disconnects the peerings pointing at it.
    client.delete_ok(&b).await;
    let ab = client
        .get(&format!("{a}/virtualNetworkPeerings/a-b"))
        .await
        .body;
    assert_eq!(ab["properties"]["peeringState"], "Disconnected");
    sim.shutdown().await;
}

#[tokio::test]
async fn resize_puts_peerings_out_of_sync_until_synced() {
    let (sim, client) = start_sim(quick()).await;
    let (hub, spoke) = (vnet_id("rg", "hub"), vnet_id("rg", "spoke"));
    client.vnet("rg", "hub", &["10.0.0.0/16"], json!([])).await;
    client
        .vnet("rg", "spoke", &["10.1.0.0/16"], json!([]))
        .await;
    client.peer_ok(&hub, "hub-spoke", &spoke, json!({})).await;
    client.peer_ok(&spoke, "spoke-hub", &hub, json!({})).await;
    let hub_before = client.get(&hub).await.body["etag"].clone();

    client
        .vnet("rg", "spoke", &["10.1.0.0/16", "10.99.0.0/16"], json!([]))
        .await;
    let hs = client
        .get(&format!("{hub}/virtualNetworkPeerings/hub-spoke"))
        .await
        .body;
    let sh = client
        .get(&format!("{spoke}/virtualNetworkPeerings/spoke-hub"))
        .await
        .body;
    assert_eq!(hs["properties"]["peeringSyncLevel"], "LocalNotInSync");
    assert_eq!(
        hs["properties"]["remoteAddressSpace"]["addressPrefixes"],
        json!(["10.1.0.0/16"])
    );
    assert_eq!(
        hs["properties"]["remoteVirtualNetworkAddressSpace"]["addressPrefixes"],
        json!(["10.1.0.0/16", "10.99.0.0/16"])
    );
    assert_eq!(sh["properties"]["peeringSyncLevel"], "RemoteNotInSync");
    assert_ne!(client.get(&hub).await.body["etag"], hub_before);

    // A PUT without the flag does not sync; with it, both sides are in sync.
    let plain = client.peer_ok(&hub, "hub-spoke", &spoke, json!({})).await;
    assert_eq!(plain["properties"]["peeringSyncLevel"], "LocalNotInSync");
    let bad = client
        .send(
            "PUT",
            &format!("{hub}/virtualNetworkPeerings/hub-spoke?syncRemoteAddressSpace=yes"),
            Some(hs.clone()),
        )
        .await;
    assert_eq!(bad.status, 400);
    let sync = client
        .send(
            "PUT",
            &format!("{hub}/virtualNetworkPeerings/hub-spoke?syncRemoteAddressSpace=true"),
            Some(json!({"properties": hs["properties"].clone()})),
        )
        .await;
    assert_eq!(sync.status, 200);
    assert_eq!(client.wait(&sync).await, "Succeeded");
    let hs = client
        .get(&format!("{hub}/virtualNetworkPeerings/hub-spoke"))
        .await
        .body;
    let sh = client
        .get(&format!("{spoke}/virtualNetworkPeerings/spoke-hub"))
        .await
        .body;
    assert_eq!(hs["properties"]["peeringSyncLevel"], "FullyInSync");
    assert_eq!(sh["properties"]["peeringSyncLevel"], "FullyInSync");
    assert_eq!(
        hs["properties"]["remoteAddressSpace"]["addressPrefixes"],
        json!(["10.1.0.0/16", "10.99.0.0/16"])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn gateway_transit_rules_are_enforced() {
    let (sim, client) = start_sim(quick()).await;
    let (hub, spoke) = (vnet_id("rg", "hub"), vnet_id("rg", "spoke"));
    client
        .vnet(
            "rg",
            "hub",
            &["10.0.0.0/16"],
            json!([{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}}]),
        )
        .await;
    client
        .vnet(
            "rg",
            "spoke",
            &["10.1.0.0/16"],
            json!([{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.1.255.0/27"}}]),
        )
        .await;
    client
        .vnet("rg", "other", &["10.2.0.0/16"], json!([]))
        .await;

    let no_gateway = client
        .peer(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(no_gateway.status, 400);
    assert_eq!(no_gateway.code(), "RemoteVnetHasNoGateways");

    let gw = client.gateway("rg", "hubgw", &hub).await;
    assert_eq!(gw["properties"]["provisioningState"], "Succeeded");
    let subnet = client
        .get(&format!("{hub}/subnets/GatewaySubnet"))
        .await
        .body;
    assert!(subnet["properties"]["ipConfigurations"][0]["id"]
        .as_str()
        .unwrap()
        .contains("/virtualNetworkGateways/hubgw/"));
    let in_use = client.delete(&format!("{hub}/subnets/GatewaySubnet")).await;
    assert_eq!(in_use.code(), "InUseSubnetCannotBeDeleted");
    let vnet_in_use = client.delete(&hub).await;
    assert_eq!(vnet_in_use.status, 400);
    assert_eq!(vnet_in_use.code(), "InUseSubnetCannotBeDeleted");

    // The hub side has no gateway transit yet (or does not exist).
    let no_transit = client
        .peer(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(no_transit.code(), "RemotePeeringDoesNotAllowGatewayTransit");
    client
        .peer_ok(
            &hub,
            "hub-spoke",
            &spoke,
            json!({"allowGatewayTransit": false}),
        )
        .await;
    let no_transit = client
        .peer(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(no_transit.code(), "RemotePeeringDoesNotAllowGatewayTransit");
    client
        .peer_ok(
            &hub,
            "hub-spoke",
            &spoke,
            json!({"allowGatewayTransit": true}),
        )
        .await;
    let ok = client
        .peer_ok(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(ok["properties"]["useRemoteGateways"], true);
    assert_eq!(ok["properties"]["peeringState"], "Connected");

    // One VPN gateway per VNet.
    let second = client
        .put(
            &gateway_id("rg", "second"),
            json!({"location": "westus", "properties": {"gatewayType": "Vpn", "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": format!("{hub}/subnets/GatewaySubnet")}}}]}}),
        )
        .await;
    assert_eq!(second.code(), "VnetCanHaveOnlyOneGatewayOfType");

    // Deleting the gateway frees the gateway subnet.
    client.delete_ok(&gateway_id("rg", "hubgw")).await;
    let subnet = client
        .get(&format!("{hub}/subnets/GatewaySubnet"))
        .await
        .body;
    assert!(subnet["properties"].get("ipConfigurations").is_none());
    client
        .delete_ok(&format!("{hub}/subnets/GatewaySubnet"))
        .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn use_remote_gateways_is_refused_with_own_gateway_or_twice() {
    let (sim, client) = start_sim(quick()).await;
    let (hub, hub2, spoke) = (
        vnet_id("rg", "hub"),
        vnet_id("rg", "hub2"),
        vnet_id("rg", "spoke"),
    );
    for (name, prefix) in [("hub", "10.0"), ("hub2", "10.5"), ("spoke", "10.1")] {
        client
            .vnet("rg", name, &[&format!("{prefix}.0.0/16")], json!([{"name": "GatewaySubnet", "properties": {"addressPrefix": format!("{prefix}.255.0/27")}}]))
            .await;
    }
    client.gateway("rg", "hubgw", &hub).await;
    client.gateway("rg", "hub2gw", &hub2).await;
    client
        .peer_ok(
            &hub,
            "hub-spoke",
            &spoke,
            json!({"allowGatewayTransit": true}),
        )
        .await;
    client
        .peer_ok(
            &hub2,
            "hub2-spoke",
            &spoke,
            json!({"allowGatewayTransit": true}),
        )
        .await;
    client
        .peer_ok(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    let twice = client
        .peer(
            &spoke,
            "spoke-hub2",
            &hub2,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(twice.status, 400);
    assert_eq!(twice.code(), "OnlyOnePeeringCanUseRemoteGateways");
    let dup = client
        .peer(&spoke, "spoke-hub-again", &hub, json!({}))
        .await;
    assert_eq!(dup.code(), "PeeringWithSameRemoteVirtualNetworkExists");

    // A spoke with its own gateway cannot use remote gateways.
    client.put_ok(&format!("{spoke}/virtualNetworkPeerings/spoke-hub"), json!({"properties": {"remoteVirtualNetwork": {"id": hub}, "allowForwardedTraffic": true}})).await;
    client.gateway("rg", "spokegw", &spoke).await;
    let own = client
        .peer(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(own.code(), "UseRemoteGatewaysNotAllowedWithLocalGateway");
    sim.shutdown().await;
}

#[tokio::test]
async fn overlapping_address_spaces_cannot_peer() {
    let (sim, client) = start_sim(quick()).await;
    let (hub, a, b, c) = (
        vnet_id("rg", "hub"),
        vnet_id("rg", "a"),
        vnet_id("rg", "b"),
        vnet_id("rg", "c"),
    );
    client.vnet("rg", "hub", &["10.0.0.0/16"], json!([])).await;
    client.vnet("rg", "a", &["10.1.0.0/16"], json!([])).await;
    client.vnet("rg", "b", &["10.1.0.0/24"], json!([])).await;
    client.vnet("rg", "c", &["10.0.128.0/20"], json!([])).await;
    let direct = client.peer(&hub, "hub-c", &c, json!({})).await;
    assert_eq!(direct.code(), "VnetAddressSpacesOverlap");
    client.peer_ok(&hub, "hub-a", &a, json!({})).await;
    let transitive = client.peer(&hub, "hub-b", &b, json!({})).await;
    assert_eq!(transitive.status, 400);
    assert_eq!(
        transitive.code(),
        "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet"
    );
    let missing = client
        .peer(&hub, "hub-x", &vnet_id("rg", "x"), json!({}))
        .await;
    assert_eq!(missing.code(), "InvalidResourceReference");
    sim.shutdown().await;
}

#[tokio::test]
async fn routes_are_validated() {
    let config = SimConfig {
        strictness: Strictness {
            route_limit: 3,
            ..Strictness::default()
        },
        ..quick()
    };
    let (sim, client) = start_sim(config).await;
    let table = table_id("rg", "rt");
    let created = client
        .put_ok(&table, json!({"location": "westus", "properties": {"routes": [{"name": "r1", "properties": {"addressPrefix": "10.1.0.0/16", "nextHopType": "VirtualNetworkGateway"}}]}}))
        .await;
    assert_eq!(
        created["properties"]["routes"][0]["type"],
        "Microsoft.Network/routeTables/routes"
    );
    assert_eq!(created["properties"]["disableBgpRoutePropagation"], false);
    let route = |prefix: &str, hop: &str| json!({"properties": {"addressPrefix": prefix, "nextHopType": hop}});
    let cases = [
        (route("10.2.0.0/16", "Teleport"), "InvalidRequestFormat"),
        (
            json!({"properties": {"addressPrefix": "10.2.0.0/16", "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": "10.0.0.4"}}),
            "NextHopIpAddressNotAllowed",
        ),
        (
            route("10.2.0.0/16", "VirtualAppliance"),
            "NextHopIpAddressRequired",
        ),
        (
            route("10.1.0.0/16", "VirtualNetworkGateway"),
            "RouteConflict",
        ),
        (
            route("10.2.0.1/16", "VirtualNetworkGateway"),
            "InvalidCIDRNotation",
        ),
        (
            route("fd00::/64", "VirtualNetworkGateway"),
            "InvalidRouteNextHopTypeForIPv6",
        ),
    ];
    for (body, code) in cases {
        let answer = client.put(&format!("{table}/routes/new"), body).await;
        assert_eq!(answer.status, 400, "{code}");
        assert_eq!(answer.code(), code);
    }
    let appliance = client
        .put_ok(&format!("{table}/routes/fw"), json!({"properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.0.4"}}))
        .await;
    assert_eq!(appliance["properties"]["nextHopIpAddress"], "10.0.0.4");
    client
        .put_ok(
            &format!("{table}/routes/r3"),
            route("10.3.0.0/16", "VirtualNetworkGateway"),
        )
        .await;
    let over = client
        .put(
            &format!("{table}/routes/r4"),
            route("10.4.0.0/16", "VirtualNetworkGateway"),
        )
        .await;
    assert_eq!(over.code(), "RouteTableRouteLimitReached");
    // Routes list pages; a route delete is an LRO with Location.
    assert_eq!(
        client.get(&format!("{table}/routes")).await.body["value"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let delete = client.delete(&format!("{table}/routes/r3")).await;
    assert_eq!(delete.status, 202);
    assert!(delete
        .header("location")
        .unwrap()
        .contains("/operationResults/"));
    client.wait(&delete).await;
    let location = client.get(&delete.header("location").unwrap()).await;
    assert_eq!(location.status, 204);
    assert_eq!(
        client.delete(&format!("{table}/routes/r3")).await.status,
        204
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn subnet_put_replaces_the_subnet_and_tables_list_their_subnets() {
    let (sim, client) = start_sim(quick()).await;
    let vnet = vnet_id("rg", "spoke");
    let table = table_id("rg", "rt");
    client
        .put_ok(&table, json!({"location": "westus", "properties": {}}))
        .await;
    client
        .vnet("rg", "spoke", &["10.1.0.0/16"], json!([]))
        .await;
    let subnet = format!("{vnet}/subnets/app");
    let full = client
        .put_ok(&subnet, json!({"properties": {
            "addressPrefix": "10.1.0.0/24",
            "networkSecurityGroup": {"id": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg"},
            "delegations": [{"name": "d", "properties": {"serviceName": "Microsoft.Web/serverFarms"}}],
            "routeTable": {"id": table}
        }}))
        .await;
    assert!(full["properties"]["networkSecurityGroup"].is_object());
    let listed = client.get(&table).await.body;
    assert_eq!(listed["properties"]["subnets"][0]["id"], subnet);
    let in_use = client.delete(&table).await;
    assert_eq!(in_use.status, 400);
    assert_eq!(in_use.code(), "InUseRouteTableCannotBeDeleted");

    let bare = client
        .put_ok(
            &subnet,
            json!({"properties": {"addressPrefix": "10.1.0.0/24"}}),
        )
        .await;
    assert!(bare["properties"].get("networkSecurityGroup").is_none());
    assert!(bare["properties"].get("delegations").is_none());
    assert!(bare["properties"].get("routeTable").is_none());
    assert!(client.get(&table).await.body["properties"]
        .get("subnets")
        .is_none());

    let outside = client
        .put(
            &format!("{vnet}/subnets/far"),
            json!({"properties": {"addressPrefix": "10.2.0.0/24"}}),
        )
        .await;
    assert_eq!(outside.code(), "NetcfgSubnetRangeOutsideVnet");
    let overlapping = client
        .put(
            &format!("{vnet}/subnets/over"),
            json!({"properties": {"addressPrefix": "10.1.0.0/25"}}),
        )
        .await;
    assert_eq!(overlapping.code(), "NetcfgSubnetRangesOverlap");
    let missing_table = client
        .put(&subnet, json!({"properties": {"addressPrefix": "10.1.0.0/24", "routeTable": {"id": table_id("rg", "nope")}}}))
        .await;
    assert_eq!(missing_table.code(), "InvalidResourceReference");
    client.delete_ok(&table).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_second_put_supersedes_the_first_and_other_writes_wait() {
    let (sim, client) = start_sim(slow_lro()).await;
    let vnet = vnet_id("rg", "v");
    let other = vnet_id("rg", "w");
    // Seeded so that the VNets exist without waiting.
    sim.load(&json!({"virtualNetworks": [
        {"id": vnet, "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}, "subnets": [], "virtualNetworkPeerings": []}},
        {"id": other, "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.2.0.0/16"]}, "subnets": [], "virtualNetworkPeerings": []}}
    ]}))
    .unwrap();
    let first = client
        .put(
            &format!("{vnet}/subnets/a"),
            json!({"properties": {"addressPrefix": "10.1.0.0/24"}}),
        )
        .await;
    assert_eq!(first.status, 201);
    let second = client
        .put(
            &format!("{vnet}/subnets/a"),
            json!({"properties": {"addressPrefix": "10.1.0.0/24"}}),
        )
        .await;
    assert_eq!(second.status, 200);
    let status = client
        .get(&first.header("azure-asyncoperation").unwrap())
        .await
        .body;
    assert_eq!(status["status"], "Canceled");
    assert_eq!(
        status["error"]["details"][0]["code"],
        "CanceledAndSupersededDueToAnotherOperation"
    );

    let sibling = client
        .put(
            &format!("{vnet}/subnets/b"),
            json!({"properties": {"addressPrefix": "10.1.1.0/24"}}),
        )
        .await;
    assert_eq!(sibling.status, 409);
    assert_eq!(sibling.code(), "AnotherOperationInProgress");
    assert!(sibling.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/operations/"));
    assert_eq!(
        client.get(&vnet).await.body["properties"]["provisioningState"],
        "Updating"
    );

    let peering = client.peer(&other, "w-v", &vnet, json!({})).await;
    assert_eq!(peering.status, 400);
    assert_eq!(peering.code(), "ReferencedResourceNotProvisioned");
    sim.shutdown().await;

    let (sim, client) = start_sim(SimConfig {
        strictness: Strictness {
            lock_conflict: LockConflict::Retryable,
            ..Strictness::default()
        },
        ..slow_lro()
    })
    .await;
    sim.load(&json!({"virtualNetworks": [{"id": vnet, "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}}]}))
        .unwrap();
    client
        .put(
            &format!("{vnet}/subnets/a"),
            json!({"properties": {"addressPrefix": "10.1.0.0/24"}}),
        )
        .await;
    let sibling = client
        .put(
            &format!("{vnet}/subnets/b"),
            json!({"properties": {"addressPrefix": "10.1.1.0/24"}}),
        )
        .await;
    assert_eq!(sibling.status, 429);
    assert_eq!(sibling.code(), "RetryableErrorDueToAnotherOperation");
    assert!(sibling.header("retry-after").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn seeds_keep_given_peering_fields_and_derive_the_rest() {
    let (sim, client) = start_sim(quick()).await;
    let (a, b) = (vnet_id("rg", "a"), vnet_id("rg", "b"));
    sim.load(&json!({
        "virtualNetworks": [
            {"id": a, "name": "a", "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
              "subnets": [{"name": "s", "properties": {"addressPrefix": "10.1.0.0/24", "routeTable": {"id": table_id("rg", "rt")}}}],
              "virtualNetworkPeerings": [{"name": "a-b", "properties": {"remoteVirtualNetwork": {"id": b}, "peeringState": "Connected", "peeringSyncLevel": "LocalNotInSync", "remoteAddressSpace": {"addressPrefixes": ["10.2.0.0/24"]}}}]}},
            {"id": b, "name": "b", "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.2.0.0/16"]},
              "virtualNetworkPeerings": [{"name": "b-a", "properties": {"remoteVirtualNetwork": {"id": a}}}]}}
        ],
        "routeTables": [{"id": table_id("rg", "rt"), "location": "westus", "properties": {"routes": []}}]
    }))
    .unwrap();
    let ab = client
        .get(&format!("{a}/virtualNetworkPeerings/a-b"))
        .await
        .body;
    assert_eq!(ab["properties"]["peeringSyncLevel"], "LocalNotInSync");
    assert_eq!(
        ab["properties"]["remoteAddressSpace"]["addressPrefixes"],
        json!(["10.2.0.0/24"])
    );
    assert_eq!(
        ab["properties"]["remoteVirtualNetworkAddressSpace"]["addressPrefixes"],
        json!(["10.2.0.0/16"])
    );
    let ba = client
        .get(&format!("{b}/virtualNetworkPeerings/b-a"))
        .await
        .body;
    assert_eq!(ba["properties"]["peeringState"], "Connected");
    assert_eq!(ba["properties"]["peeringSyncLevel"], "RemoteNotInSync");
    let table = client.get(&table_id("rg", "rt")).await.body;
    assert_eq!(
        table["properties"]["subnets"][0]["id"],
        format!("{a}/subnets/s")
    );
    // The seed file round-trips through the state dump.
    let state = sim.state();
    assert_eq!(state["virtualNetworks"].as_array().unwrap().len(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn gateways_provision_for_the_configured_time() {
    let (sim, client) = start_sim(SimConfig {
        latency: LatencySpec {
            gateway: Duration::from_secs(30),
            ..LatencySpec::default()
        },
        ..quick()
    })
    .await;
    let hub = vnet_id("rg", "hub");
    let spoke = vnet_id("rg", "spoke");
    client
        .vnet(
            "rg",
            "hub",
            &["10.0.0.0/16"],
            json!([{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}}]),
        )
        .await;
    client
        .vnet("rg", "spoke", &["10.1.0.0/16"], json!([]))
        .await;
    let answer = client
        .put(
            &gateway_id("rg", "gw"),
            json!({"location": "westus", "properties": {"gatewayType": "Vpn", "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": format!("{hub}/subnets/GatewaySubnet")}}}]}}),
        )
        .await;
    assert_eq!(answer.status, 201);
    let got = client.get(&gateway_id("rg", "gw")).await.body;
    assert_eq!(got["properties"]["provisioningState"], "Updating");
    let listed = client.get(&format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworkGateways")).await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    client
        .peer_ok(
            &hub,
            "hub-spoke",
            &spoke,
            json!({"allowGatewayTransit": true}),
        )
        .await;
    // While provisioning, the hub counts as having no gateway.
    let early = client
        .peer(
            &spoke,
            "spoke-hub",
            &hub,
            json!({"useRemoteGateways": true}),
        )
        .await;
    assert_eq!(early.code(), "RemoteVnetHasNoGateways");
    sim.shutdown().await;
}

#[tokio::test]
async fn if_match_is_honoured_by_default() {
    let (sim, client) = start_sim(quick()).await;
    let table = table_id("rg", "rt");
    let created = client
        .put_ok(&table, json!({"location": "westus", "properties": {}}))
        .await;
    let stale = client
        .http
        .put(client.url(&table))
        .bearer_auth(&client.token)
        .header("if-match", "W/\"00000000-0000-0000-0000-000000000000\"")
        .json(&json!({"location": "westus", "properties": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 412);
    let fresh = client
        .http
        .put(client.url(&table))
        .bearer_auth(&client.token)
        .header("if-match", created["etag"].as_str().unwrap())
        .json(&json!({"location": "westus", "properties": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status().as_u16(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn tags_are_patched_synchronously() {
    let (sim, client) = start_sim(quick()).await;
    client.vnet("rg", "v", &["10.1.0.0/16"], json!([])).await;
    let patched = client
        .send(
            "PATCH",
            &vnet_id("rg", "v"),
            Some(json!({"tags": {"hubspoke:enroll": "true"}})),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["tags"]["hubspoke:enroll"], "true");

    // The tags API: replace, merge, delete; each raises Microsoft.Resources/tags/write.
    let tags = format!(
        "{}/providers/Microsoft.Resources/tags/default",
        vnet_id("rg", "v")
    );
    let put = client
        .put(&tags, json!({"properties": {"tags": {"a": "1"}}}))
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.body["properties"]["tags"], json!({"a": "1"}));
    let merged = client
        .send(
            "PATCH",
            &tags,
            Some(json!({"operation": "Merge", "properties": {"tags": {"b": "2"}}})),
        )
        .await;
    assert_eq!(
        merged.body["properties"]["tags"],
        json!({"a": "1", "b": "2"})
    );
    let deleted = client
        .send(
            "PATCH",
            &tags,
            Some(json!({"operation": "Delete", "properties": {"tags": {"a": "1"}}})),
        )
        .await;
    assert_eq!(deleted.body["properties"]["tags"], json!({"b": "2"}));
    assert_eq!(
        client.get(&vnet_id("rg", "v")).await.body["tags"],
        json!({"b": "2"})
    );
    let events = sim.events();
    let tag_events: Vec<_> = events
        .iter()
        .filter(|e| e.event["data"]["operationName"] == "Microsoft.Resources/tags/write")
        .collect();
    assert_eq!(tag_events.len(), 3);
    assert_eq!(tag_events[0].event["subject"], tags);
    assert_eq!(
        tag_events[0].event["data"]["resourceProvider"],
        "Microsoft.Resources"
    );
    sim.shutdown().await;
}
