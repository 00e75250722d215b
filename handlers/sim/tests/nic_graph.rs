//! Network interfaces, their effective routes, and the minimal Azure Resource Graph: a spoke
//! NIC's routes before and after a gateway user route, peered spaces as `VNetPeering`, ARG
//! paging with `$top` and `$skipToken`, and queries outside the subset refused.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use hubspoke_sim::SimConfig;
use serde_json::{json, Value};

/// A hub with a gateway and one spoke peered to it through the gateway (both sides
/// `Connected`), the spoke's subnet on an empty route table.
fn hub_and_spoke() -> Value {
    let hub = vnet_id("rg", "hub");
    let spoke = vnet_id("rg", "spoke1");
    json!({
        "virtualNetworks": [
            {"id": hub, "location": "westus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}}],
                "virtualNetworkPeerings": [{"name": "to-spoke1", "properties": {
                    "remoteVirtualNetwork": {"id": spoke}, "allowGatewayTransit": true,
                    "remoteAddressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}}]}},
            {"id": spoke, "location": "westus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24",
                    "routeTable": {"id": table_id("rg", "rt-spoke1")}}}],
                "virtualNetworkPeerings": [{"name": "to-hub", "properties": {
                    "remoteVirtualNetwork": {"id": hub}, "useRemoteGateways": true,
                    "remoteAddressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}]}}
        ],
        "routeTables": [{"id": table_id("rg", "rt-spoke1"), "location": "westus", "properties": {"routes": []}}],
        "virtualNetworkGateways": [{"id": gateway_id("rg", "hub-gw"), "location": "westus", "properties": {
            "gatewayType": "Vpn", "vpnType": "RouteBased",
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{hub}/subnets/GatewaySubnet")}}}]}}]
    })
}

fn find<'a>(routes: &'a [Value], source: &str, prefix: &str) -> Option<&'a Value> {
    routes
        .iter()
        .find(|r| r["source"] == source && r["addressPrefix"] == json!([prefix]))
}

#[tokio::test]
async fn a_spoke_nic_sees_peering_routes_and_then_its_gateway_user_routes() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&hub_and_spoke()).unwrap();
    let subnet = format!("{}/subnets/default", vnet_id("rg", "spoke1"));
    let nic = nic_id("rg", "spoke1-nic");
    let created = client
        .put_ok(
            &nic,
            json!({"location": "westus", "properties": {"ipConfigurations": [
                {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}}),
        )
        .await;
    let config = &created["properties"]["ipConfigurations"][0];
    assert_eq!(config["properties"]["privateIPAddress"], "10.1.0.4");
    assert_eq!(config["properties"]["provisioningState"], "Succeeded");
    // The subnet lists the NIC's ip configuration, and cannot be deleted while it does.
    let listed = client.get(&subnet).await.body;
    assert_eq!(
        listed["properties"]["ipConfigurations"][0]["id"],
        config["id"]
    );
    assert_eq!(
        client.delete(&subnet).await.code(),
        "InUseSubnetCannotBeDeleted"
    );

    let before = client.effective_routes(&nic).await;
    let local = find(&before, "Default", "10.1.0.0/16").unwrap();
    assert_eq!(local["nextHopType"], "VnetLocal");
    assert_eq!(local["state"], "Active");
    let peered = find(&before, "Default", "10.0.0.0/16").unwrap();
    assert_eq!(peered["nextHopType"], "VNetPeering");
    assert_eq!(peered["state"], "Active");
    assert_eq!(
        find(&before, "Default", "0.0.0.0/0").unwrap()["nextHopType"],
        "Internet"
    );
    for reserved in [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.168.0.0/16",
    ] {
        assert_eq!(
            find(&before, "Default", reserved).unwrap()["nextHopType"],
            "None"
        );
    }
    assert!(before.iter().all(|r| r["source"] != "User"));

    // Spoke-to-spoke through the hub gateway, and forced tunnelling of the default route.
    let table = table_id("rg", "rt-spoke1");
    client
        .put_ok(
            &format!("{table}/routes/to-spoke2"),
            json!({"properties": {"addressPrefix": "10.2.0.0/16", "nextHopType": "VirtualNetworkGateway"}}),
        )
        .await;
    client
        .put_ok(
            &format!("{table}/routes/default"),
            json!({"properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualNetworkGateway"}}),
        )
        .await;
    let after = client.effective_routes(&nic).await;
    let user = find(&after, "User", "10.2.0.0/16").unwrap();
    assert_eq!(user["state"], "Active");
    assert_eq!(user["nextHopType"], "VirtualNetworkGateway");
    assert_eq!(user["nextHopIpAddress"], json!(["10.0.255.4"]));
    assert_eq!(user["name"], "to-spoke2");
    assert_eq!(user["disableBgpRoutePropagation"], false);
    assert_eq!(
        find(&after, "Default", "0.0.0.0/0").unwrap()["state"],
        "Invalid"
    );
    assert_eq!(
        find(&after, "User", "0.0.0.0/0").unwrap()["state"],
        "Active"
    );
    assert_eq!(
        find(&after, "Default", "10.0.0.0/16").unwrap()["state"],
        "Active"
    );
    // The user route for 0.0.0.0/0 removed the None routes of the reserved ranges.
    assert!(after.iter().all(|r| r["nextHopType"] != "None"));

    // Listed per resource group and subscription; tags patched like the other resources.
    let listed = client
        .get(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces"
        ))
        .await;
    assert_eq!(listed.body["value"][0]["name"], "spoke1-nic");
    let listed = client
        .get(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.Network/networkInterfaces"
        ))
        .await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    let patched = client
        .send("PATCH", &nic, Some(json!({"tags": {"env": "test"}})))
        .await;
    assert_eq!(patched.body["tags"]["env"], "test");

    // Deleting the NIC frees the subnet.
    client.delete_ok(&nic).await;
    let listed = client.get(&subnet).await.body;
    assert!(listed["properties"].get("ipConfigurations").is_none());
    assert_eq!(client.get(&nic).await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn only_connected_peerings_route_and_a_gateway_route_needs_a_gateway() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let mut seed = hub_and_spoke();
    seed["virtualNetworkGateways"] = json!([]);
    // A second, half-open peering (no counterpart): Initiated, so no route.
    seed["virtualNetworks"][1]["properties"]["virtualNetworkPeerings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "to-other", "properties": {"remoteVirtualNetwork": {"id": vnet_id("rg", "other")},
            "peeringState": "Initiated", "remoteAddressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}}));
    seed["routeTables"][0]["properties"]["routes"] = json!([
        {"name": "to-spoke2", "properties": {"addressPrefix": "10.2.0.0/16", "nextHopType": "VirtualNetworkGateway"}}]);
    seed["networkInterfaces"] = json!([{"id": nic_id("rg", "spoke1-nic"), "properties": {"ipConfigurations": [
        {"name": "ipconfig1", "properties": {"subnet": {"id": format!("{}/subnets/default", vnet_id("rg", "spoke1"))}}}]}}]);
    sim.load(&seed).unwrap();
    // The seeded NIC is listed by its subnet and comes back in the state.
    assert_eq!(
        sim.state()["networkInterfaces"].as_array().unwrap().len(),
        1
    );
    let routes = client.effective_routes(&nic_id("rg", "spoke1-nic")).await;
    assert!(find(&routes, "Default", "10.0.0.0/16").is_some());
    assert!(find(&routes, "Default", "10.9.0.0/16").is_none());
    let user = find(&routes, "User", "10.2.0.0/16").unwrap();
    assert_eq!(user["state"], "Invalid");
    assert_eq!(user["nextHopIpAddress"], json!([]));
    sim.shutdown().await;
}

async fn graph(client: &Client, body: Value) -> Answer {
    let url = format!(
        "{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
        client.base
    );
    client.send("POST", &url, Some(body)).await
}

#[tokio::test]
async fn resource_graph_pages_with_top_and_skip_token() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let tables: Vec<Value> = (1..=5)
        .map(|i| json!({"id": table_id("rg", &format!("rt-{i}")), "location": "West US", "properties": {"routes": []}}))
        .collect();
    let other_sub = "/subscriptions/00000000-0000-0000-0000-0000000000bb/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt-elsewhere";
    let mut all = tables.clone();
    all.push(json!({"id": other_sub, "properties": {"routes": []}}));
    sim.load(&json!({"routeTables": all, "virtualNetworks": [{"id": vnet_id("rg", "hub"), "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}]})).unwrap();
    let query = "Resources | where type =~ 'Microsoft.Network/routeTables' | project id, name, type, location, resourceGroup";
    let mut body = json!({"subscriptions": [SUB], "query": query, "options": {"$top": 2}});
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = graph(&client, body.clone()).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["totalRecords"], 5);
        assert_eq!(page.body["resultTruncated"], "false");
        assert_eq!(page.body["facets"], json!([]));
        let data = page.body["data"].as_array().unwrap();
        assert_eq!(page.body["count"], data.len());
        for row in data {
            assert_eq!(row["type"], "microsoft.network/routetables");
            assert_eq!(row["location"], "westus");
            assert_eq!(row["resourceGroup"], "rg");
            assert!(row.get("properties").is_none());
            names.push(row["name"].as_str().unwrap().to_string());
        }
        pages += 1;
        match page.body["$skipToken"].as_str() {
            Some(token) => {
                assert_eq!(data.len(), 2);
                // The token alone continues the query with the same page size.
                body["options"] = json!({"$skipToken": token});
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["rt-1", "rt-2", "rt-3", "rt-4", "rt-5"]);

    // `$skip`, `==` (case-sensitive) and `contains` (case-insensitive).
    let skipped = graph(
        &client,
        json!({"subscriptions": [SUB], "query": query, "options": {"$skip": 4}}),
    )
    .await;
    assert_eq!(skipped.body["data"][0]["name"], "rt-5");
    assert!(skipped.body.get("$skipToken").is_none());
    let exact = graph(
        &client,
        json!({"subscriptions": [SUB], "query": "resources | where name == 'RT-1'"}),
    )
    .await;
    assert_eq!(exact.body["totalRecords"], 0);
    let contains = graph(
        &client,
        json!({"subscriptions": [SUB], "query": "resources | where name contains 'RT-1'"}),
    )
    .await;
    assert_eq!(contains.body["totalRecords"], 1);
    assert_eq!(contains.body["data"][0]["subscriptionId"], SUB);
    assert!(contains.body["data"][0]["properties"].is_object());
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_graph_refuses_what_it_does_not_implement() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let refused = graph(
        &client,
        json!({"subscriptions": [SUB], "query": "Resources | summarize count() by type"}),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.code(), "BadRequest");
    let details = refused.body["error"]["details"].as_array().unwrap();
    assert_eq!(details[0]["code"], "InvalidQuery");
    assert!(details[1]["message"]
        .as_str()
        .unwrap()
        .contains("summarize"));

    for (query, options) in [
        ("resources | where properties.addressSpace != ''", json!({})),
        ("resources | where name =~ 'a' or name =~ 'b'", json!({})),
        ("resources", json!({"$top": 1001})),
        ("resources", json!({"$skipToken": "bm90IG91cnM="})),
    ] {
        let answer = graph(
            &client,
            json!({"subscriptions": [SUB], "query": query, "options": options}),
        )
        .await;
        assert_eq!(answer.status, 400, "{query} {options}: {}", answer.body);
        assert_eq!(answer.code(), "BadRequest");
    }
    sim.shutdown().await;
}
