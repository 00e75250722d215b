//! Replays every `x-ms-examples` document of the Network RP fixtures against the simulator: the
//! request is accepted and the answer has a documented status and the documented shape (same
//! keys and JSON types; ids, etags and generated values may differ). None is excluded. A POST
//! answered 202 with a `Location` is polled until its documented 200, whose shape is checked too;
//! the Resource Graph next-page example resends its query with a skip token the first page gave
//! (the example's own token is opaque to the simulator).
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Client;
use hubspoke_sim::json::shape_mismatches;
use hubspoke_sim::SimConfig;
use serde_json::{json, Value};

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/azure-rest-api-specs/network-2026-01-01/examples"
    ))
}

fn vnet(id: &str, prefixes: &[&str], extra: Value) -> Value {
    let mut v = json!({"id": id, "location": "westus", "properties": {"addressSpace": {"addressPrefixes": prefixes}, "subnets": [], "virtualNetworkPeerings": []}});
    for (k, val) in extra.as_object().unwrap() {
        v["properties"][k] = val.clone();
    }
    v
}

/// Resources in the Resource Graph examples' subscription: seven whose names contain `test`
/// (so the second page of three still has a next one) and two that do not.
fn graph_seed(sub: &str) -> Value {
    let rg = format!("/subscriptions/{sub}/resourceGroups/RG1/providers/Microsoft.Network");
    let mut vnets = Vec::new();
    let mut tables = Vec::new();
    for (i, name) in ["testvnet1", "vnet-test2", "TestVnet3", "hub"]
        .iter()
        .enumerate()
    {
        vnets.push(vnet(
            &format!("{rg}/virtualNetworks/{name}"),
            &[&format!("10.{i}.0.0/16")],
            json!({}),
        ));
    }
    for name in ["rt-test1", "rt-test2", "rt-TEST3", "rt-test4", "spokes"] {
        tables.push(json!({"id": format!("{rg}/routeTables/{name}"), "location": "eastus", "properties": {"routes": []}}));
    }
    json!({"virtualNetworks": vnets, "routeTables": tables})
}

/// (method, path, request body, seed) for one example.
fn plan(file: &str, example: &Value) -> (String, String, Option<Value>, Value) {
    let p = &example["parameters"];
    let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
    let sub = s("subscriptionId");
    let rg_path = format!(
        "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.Network",
        s("resourceGroupName")
    );
    let body200 = example["responses"]["200"]["body"].clone();
    let peering_seed = |with_peering: bool, encrypted: bool| {
        let base = format!("{rg_path}/virtualNetworks");
        let v1 = format!("{base}/{}", s("virtualNetworkName"));
        let v2 = format!("{base}/vnet2");
        let mut first = vnet(&v1, &["10.0.0.0/16"], json!({}));
        if with_peering {
            first["properties"]["virtualNetworkPeerings"] = json!([{"name": s("virtualNetworkPeeringName"), "properties": {"remoteVirtualNetwork": {"id": v2}}}]);
        }
        let second = vnet(
            &v2,
            &["12.0.0.0/8"],
            if encrypted {
                json!({"encryption": {"enabled": true, "enforcement": "AllowUnencrypted"}})
            } else {
                json!({})
            },
        );
        json!({"virtualNetworks": [first, second]})
    };
    match file {
        "NetworkInterfaceEffectiveRouteTableList.json" => {
            let vnet_id = format!("{rg_path}/virtualNetworks/vnet1");
            let nic = json!({
                "id": format!("{rg_path}/networkInterfaces/{}", s("networkInterfaceName")),
                "location": "westus",
                "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                    "privateIPAddress": "172.20.2.4", "subnet": {"id": format!("{vnet_id}/subnets/default")}}}]}
            });
            (
                "POST".into(),
                format!("{rg_path}/networkInterfaces/{}/effectiveRouteTable", s("networkInterfaceName")),
                None,
                json!({
                    "virtualNetworks": [vnet(&vnet_id, &["172.20.2.0/24"], json!({"subnets": [{"name": "default", "properties": {"addressPrefix": "172.20.2.0/24"}}]}))],
                    "networkInterfaces": [nic]
                }),
            )
        }
        "ResourceGraph_ResourcesFirstPageQuery.json" | "ResourceGraph_ResourcesNextPageQuery.json" => (
            "POST".into(),
            "/providers/Microsoft.ResourceGraph/resources".into(),
            Some(p["query"].clone()),
            graph_seed(p["query"]["subscriptions"][0].as_str().unwrap()),
        ),
        "NetworkWatcherNextHopGet.json" => (
            "POST".into(),
            format!("{rg_path}/networkWatchers/{}/nextHop", s("networkWatcherName")),
            Some(p["parameters"].clone()),
            json!({"virtualNetworks": [vnet(&format!("{rg_path}/virtualNetworks/vnet"), &["10.0.0.0/16"], json!({"subnets": [{"name": "s", "properties": {"addressPrefix": "10.0.0.0/24"}}]}))]}),
        ),
        "RouteTableCreateWithRoute.json" => (
            "PUT".into(),
            format!("{rg_path}/routeTables/{}", s("routeTableName")),
            Some(p["parameters"].clone()),
            json!({}),
        ),
        "RouteTableGet.json" => ("GET".into(), format!("{rg_path}/routeTables/{}", s("routeTableName")), None, json!({"routeTables": [body200]})),
        "RouteTableList.json" => ("GET".into(), format!("{rg_path}/routeTables"), None, json!({"routeTables": body200["value"]})),
        "RouteTableListAll.json" => (
            "GET".into(),
            format!("/subscriptions/{sub}/providers/Microsoft.Network/routeTables"),
            None,
            json!({"routeTables": body200["value"]}),
        ),
        "RouteTableRouteCreate.json" => (
            "PUT".into(),
            format!("{rg_path}/routeTables/{}/routes/{}", s("routeTableName"), s("routeName")),
            Some(p["routeParameters"].clone()),
            json!({"routeTables": [{"id": format!("{rg_path}/routeTables/{}", s("routeTableName")), "location": "westus", "properties": {"routes": []}}]}),
        ),
        "RouteTableRouteDelete.json" => (
            "DELETE".into(),
            format!("{rg_path}/routeTables/{}/routes/{}", s("routeTableName"), s("routeName")),
            None,
            json!({"routeTables": [{"id": format!("{rg_path}/routeTables/{}", s("routeTableName")), "location": "westus", "properties": {"routes": [
                {"name": s("routeName"), "properties": {"addressPrefix": "10.0.3.0/24", "nextHopType": "VirtualNetworkGateway"}}]}}]}),
        ),
        "SubnetCreate.json" => (
            "PUT".into(),
            format!("{rg_path}/virtualNetworks/{}/subnets/{}", s("virtualNetworkName"), s("subnetName")),
            Some(p["subnetParameters"].clone()),
            json!({"virtualNetworks": [vnet(&format!("{rg_path}/virtualNetworks/{}", s("virtualNetworkName")), &["10.0.0.0/16"], json!({}))]}),
        ),
        "SubnetGet.json" => (
            "GET".into(),
            format!("{rg_path}/virtualNetworks/{}/subnets/{}", s("virtualNetworkName"), s("subnetName")),
            None,
            json!({"virtualNetworks": [vnet(&format!("{rg_path}/virtualNetworks/{}", s("virtualNetworkName")), &["10.0.0.0/16"], json!({"subnets": [body200]}))]}),
        ),
        "VirtualNetworkGatewayGet.json" => {
            let gateway_vnet = format!("{rg_path}/virtualNetworks/vnet1");
            (
                "GET".into(),
                format!("{rg_path}/virtualNetworkGateways/{}", s("virtualNetworkGatewayName")),
                None,
                json!({
                    "virtualNetworks": [vnet(&gateway_vnet, &["10.0.0.0/16"], json!({"subnets": [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}}]}))],
                    "virtualNetworkGateways": [body200]
                }),
            )
        }
        "VirtualNetworkGet.json" => (
            "GET".into(),
            format!("{rg_path}/virtualNetworks/{}", s("virtualNetworkName")),
            None,
            json!({"virtualNetworks": [body200]}),
        ),
        "VirtualNetworkListAll.json" => (
            "GET".into(),
            format!("/subscriptions/{sub}/providers/Microsoft.Network/virtualNetworks"),
            None,
            json!({"virtualNetworks": body200["value"]}),
        ),
        "VirtualNetworkPeeringCreate.json" | "VirtualNetworkPeeringCreateWithRemoteVirtualNetworkEncryption.json" => (
            "PUT".into(),
            format!("{rg_path}/virtualNetworks/{}/virtualNetworkPeerings/{}", s("virtualNetworkName"), s("virtualNetworkPeeringName")),
            Some(p["VirtualNetworkPeeringParameters"].clone()),
            peering_seed(false, file.contains("Encryption")),
        ),
        "VirtualNetworkPeeringSync.json" => (
            "PUT".into(),
            format!(
                "{rg_path}/virtualNetworks/{}/virtualNetworkPeerings/{}?syncRemoteAddressSpace=true",
                s("virtualNetworkName"),
                s("virtualNetworkPeeringName")
            ),
            Some(p["VirtualNetworkPeeringParameters"].clone()),
            peering_seed(true, false),
        ),
        "VirtualNetworkPeeringDelete.json" | "VirtualNetworkPeeringGet.json" => (
            if file.contains("Delete") { "DELETE" } else { "GET" }.into(),
            format!("{rg_path}/virtualNetworks/{}/virtualNetworkPeerings/{}", s("virtualNetworkName"), s("virtualNetworkPeeringName")),
            None,
            peering_seed(true, false),
        ),
        "VirtualNetworkPeeringList.json" => {
            let base = format!("{rg_path}/virtualNetworks");
            let v1 = format!("{base}/{}", s("virtualNetworkName"));
            let mut first = vnet(&v1, &["10.0.0.0/16"], json!({}));
            first["properties"]["virtualNetworkPeerings"] = json!([
                {"name": "peer", "properties": {"remoteVirtualNetwork": {"id": format!("{base}/vnet2")}}},
                {"name": "peer2", "properties": {"remoteVirtualNetwork": {"id": format!("{base}/vnet3")}}}
            ]);
            (
                "GET".into(),
                format!("{v1}/virtualNetworkPeerings"),
                None,
                json!({"virtualNetworks": [first, vnet(&format!("{base}/vnet2"), &["12.0.0.0/8"], json!({})), vnet(&format!("{base}/vnet3"), &["13.0.0.0/8"], json!({}))]}),
            )
        }
        other => panic!("example {other} has no replay plan: add one, or exclude it with a reason"),
    }
}

#[tokio::test]
async fn every_network_example_is_served_with_its_documented_status_and_shape() {
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("tests/fixtures holds the Network RP examples")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() >= 18, "examples found: {files:?}");
    let mut replayed = 0;
    for file in &files {
        let example: Value =
            serde_json::from_str(&std::fs::read_to_string(examples_dir().join(file)).unwrap())
                .unwrap();
        let (method, path, body, seed) = plan(file, &example);
        let mut body = body;
        let sim = hubspoke_sim::start(SimConfig::default()).await.unwrap();
        sim.load(&seed).unwrap();
        let api = example["parameters"]["api-version"].as_str().unwrap();
        let client = Client {
            http: reqwest::Client::new(),
            base: sim.arm_endpoint(),
            token: sim.token_for("replay"),
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}api-version={api}", client.base);
        if file == "ResourceGraph_ResourcesNextPageQuery.json" {
            // The example's token was issued by Azure; take one the simulator issued for the
            // same query.
            let mut first = body.clone().unwrap();
            first["options"] = json!({"$top": 3, "$skip": 0});
            let page: Value = client
                .http
                .post(&url)
                .bearer_auth(&client.token)
                .json(&first)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = page["$skipToken"]
                .as_str()
                .expect("a first page with more to come");
            body.as_mut().unwrap()["options"]["$skipToken"] = json!(token);
        }
        let mut request = client
            .http
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&client.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let mut status = response.status().as_u16().to_string();
        let mut headers = response.headers().clone();
        let mut text = response.text().await.unwrap();
        if method == "POST" && status == "202" {
            // The documented 202 answer first (its headers), then the polled result.
            let documented = &example["responses"]["202"];
            assert!(!documented.is_null(), "{file}: 202 is not documented");
            for name in documented["headers"]
                .as_object()
                .into_iter()
                .flat_map(|h| h.keys())
            {
                assert!(
                    headers.contains_key(name.to_ascii_lowercase().as_str()),
                    "{file}: header {name} missing"
                );
            }
            let location = headers["location"].to_str().unwrap().to_string();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let polled = client
                    .http
                    .get(&location)
                    .bearer_auth(&client.token)
                    .send()
                    .await
                    .unwrap();
                if polled.status().as_u16() != 202 {
                    status = polled.status().as_u16().to_string();
                    headers = polled.headers().clone();
                    text = polled.text().await.unwrap();
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{file}: the operation did not finish in time"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let documented = &example["responses"][&status];
        assert!(
            !documented.is_null(),
            "{file}: status {status} is not documented; body {text}"
        );
        if let Some(expected_headers) = documented["headers"].as_object() {
            for name in expected_headers.keys() {
                assert!(
                    headers.contains_key(name.to_ascii_lowercase().as_str()),
                    "{file}: header {name} missing"
                );
            }
        }
        if let Some(expected) = documented.get("body") {
            let actual: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let mismatches = shape_mismatches(expected, &actual);
            assert!(
                mismatches.is_empty(),
                "{file}: shape differs: {mismatches:#?}\nactual: {actual:#}"
            );
        }
        replayed += 1;
        sim.shutdown().await;
    }
    assert_eq!(replayed, files.len());
}
