//! The tenant's directory and Resource Graph as a subscription-vending estate needs them:
//! subscriptions declared after start, management groups and their descendants (the REST
//! specification's shape), Resource Graph scoped by management groups, the KQL that finds VNets
//! peered with a hub (`mv-expand`, `tostring`, `in~`), where peerings show (the knob), and a graph
//! that lags the estate (frozen, or a lag).
#![allow(clippy::unwrap_used)]

mod common;

use common::{start_sim, vnet_id, Client, SUB};
use hubspoke_sim::{GraphPeerings, GroupSpec, SimConfig, Strictness};
use serde_json::{json, Value};

const VENDED: &str = "00000000-0000-0000-0000-0000000000cc";
const OUTSIDE: &str = "00000000-0000-0000-0000-0000000000dd";

fn vnet_in(subscription: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/{name}")
}

/// A hub in SUB, a spoke in VENDED and one in OUTSIDE, both peered with the hub from their side.
fn estate() -> Value {
    let peered = |subscription: &str, name: &str, prefix: &str| {
        let id = vnet_in(subscription, name);
        json!({"id": id, "location": "westeurope", "properties": {
            "addressSpace": {"addressPrefixes": [prefix]},
            "virtualNetworkPeerings": [{"name": "to-hub", "id": format!("{id}/virtualNetworkPeerings/to-hub"),
                "properties": {"remoteVirtualNetwork": {"id": vnet_id("rg", "hub")}, "allowVirtualNetworkAccess": true}}]}})
    };
    json!({
        "virtualNetworks": [
            {"id": vnet_id("rg", "hub"), "location": "westeurope",
             "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}},
            peered(VENDED, "spoke-vended", "10.1.0.0/16"),
            peered(OUTSIDE, "spoke-outside", "10.2.0.0/16"),
            {"id": vnet_in(VENDED, "alone"), "location": "westeurope",
             "properties": {"addressSpace": {"addressPrefixes": ["10.3.0.0/16"]}}},
        ],
        "routeTables": [],
        "virtualNetworkGateways": [],
    })
}

fn group(parent: Option<&str>, subscriptions: &[&str]) -> GroupSpec {
    GroupSpec {
        display_name: None,
        parent: parent.map(str::to_string),
        subscriptions: subscriptions.iter().map(|s| s.to_string()).collect(),
    }
}

async fn control(client: &Client, method: &str, path: &str, body: Value) -> (u16, Value) {
    let request = client
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", client.base),
        )
        .json(&body);
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn graph(client: &Client, body: Value) -> common::Answer {
    let url = format!(
        "{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
        client.base
    );
    client.send("POST", &url, Some(body)).await
}

/// hubspoke's query: VNets with a peering whose remote is the hub.
fn peered_with_hub() -> String {
    format!(
        "Resources | where type =~ 'microsoft.network/virtualnetworks' \
         | mv-expand peering = properties.virtualNetworkPeerings \
         | where tostring(peering.properties.remoteVirtualNetwork.id) in~ ('{}') \
         | project id, subscriptionId",
        vnet_id("RG", "HUB").to_uppercase()
    )
}

/// The same as rows of their own.
fn peering_rows_to_hub() -> String {
    format!(
        "Resources | where type =~ 'microsoft.network/virtualnetworks/virtualnetworkpeerings' \
         | where tostring(properties.remoteVirtualNetwork.id) in~ ('{}') | project id",
        vnet_id("rg", "hub")
    )
}

fn ids(answer: &common::Answer) -> Vec<String> {
    answer.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn management_groups_list_their_descendants_as_the_specification_shows() {
    let (sim, client) = start_sim(SimConfig {
        page_size: 2,
        ..SimConfig::default()
    })
    .await;
    sim.load(&estate()).unwrap();
    // Over the control API, as a test or a shell does it.
    let (status, _) = control(
        &client,
        "PUT",
        "/_sim/managementGroups/mg-landing-zones",
        json!({"displayName": "Landing zones", "subscriptions": [VENDED]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = control(
        &client,
        "PUT",
        "/_sim/managementGroups/mg-corp",
        json!({"parent": "mg-landing-zones", "subscriptions": ["00000000-0000-0000-0000-0000000000ee"]}),
    )
    .await;
    assert_eq!(status, 200);
    for (body, why) in [
        (json!({"parent": "mg-corp"}), "a cycle"),
        (json!({"parent": "mg-nowhere"}), "an unknown parent"),
        (json!({"subscriptions": "x"}), "subscriptions not a list"),
    ] {
        let (status, answer) = control(
            &client,
            "PUT",
            "/_sim/managementGroups/mg-landing-zones",
            body,
        )
        .await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, _) = control(&client, "PUT", "/_sim/managementGroups/a%2Fb", json!({})).await;
    assert_eq!(status, 400);

    // The descendants, paged two at a time, every item shaped as the specification's example.
    let example: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/azure-rest-api-specs/managementgroups-2023-04-01/examples/GetDescendants.json"
    ))
    .unwrap();
    let example_item = &example["responses"]["200"]["body"]["value"][1];
    let mut path = "/providers/Microsoft.Management/managementGroups/mg-landing-zones/descendants?api-version=2023-04-01".to_string();
    let mut items = Vec::new();
    loop {
        let page = client.send("GET", &path, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        items.extend(page.body["value"].as_array().unwrap().clone());
        match page.body["nextLink"].as_str() {
            Some(next) => path = next.to_string(),
            None => break,
        }
    }
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["mg-corp", VENDED, "00000000-0000-0000-0000-0000000000ee"]
    );
    let subscription = &items[1];
    assert_eq!(subscription["type"], example_item["type"]);
    assert_eq!(subscription["id"], format!("/subscriptions/{VENDED}"));
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(subscription), keys(example_item));
    assert_eq!(
        keys(&subscription["properties"]),
        keys(&example_item["properties"])
    );
    assert_eq!(
        items[2]["properties"]["parent"]["id"],
        "/providers/Microsoft.Management/managementGroups/mg-corp"
    );

    let missing = client
        .send(
            "GET",
            "/providers/Microsoft.Management/managementGroups/mg-nowhere/descendants?api-version=2023-04-01",
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    // The tenant root group holds every subscription.
    let root = client
        .send(
            "GET",
            &format!(
                "/providers/Microsoft.Management/managementGroups/{}/descendants?api-version=2023-04-01&$top=50",
                hubspoke_sim::identity::TENANT_ID
            ),
            None,
        )
        .await;
    let subscriptions = root.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["id"].as_str().unwrap().starts_with("/subscriptions/"))
        .count();
    assert_eq!(subscriptions, 4, "{}", root.body);
    let (_, described) = control(&client, "GET", "/_sim/managementGroups", Value::Null).await;
    assert_eq!(
        described["managementGroups"][1]["subscriptions"],
        json!([VENDED])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_subscription_vended_after_start_is_listed_before_it_holds_anything() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&estate()).unwrap();
    let listed = |body: &Value| -> Vec<String> {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subscriptionId"].as_str().unwrap().to_string())
            .collect()
    };
    let before = client.send("GET", "/subscriptions", None).await;
    assert_eq!(listed(&before.body), [SUB, VENDED, OUTSIDE]);
    let (status, _) = control(
        &client,
        "PUT",
        "/_sim/subscriptions/00000000-0000-0000-0000-0000000000ff",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    sim.put_management_group(
        "mg",
        &group(None, &["00000000-0000-0000-0000-000000000abc"]),
    )
    .unwrap();
    let after = client.send("GET", "/subscriptions", None).await;
    assert_eq!(
        listed(&after.body),
        [
            SUB,
            VENDED,
            OUTSIDE,
            "00000000-0000-0000-0000-0000000000ff",
            "00000000-0000-0000-0000-000000000abc"
        ]
    );
    assert_eq!(after.body["count"]["value"], 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_graph_finds_the_vnets_peered_with_a_hub_within_a_management_group() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&estate()).unwrap();
    sim.put_management_group("mg-lz", &group(None, &[VENDED]))
        .unwrap();

    let everywhere = graph(&client, json!({"query": peered_with_hub()})).await;
    assert_eq!(everywhere.status, 200, "{}", everywhere.body);
    assert_eq!(
        ids(&everywhere),
        [
            vnet_in(VENDED, "spoke-vended"),
            vnet_in(OUTSIDE, "spoke-outside")
        ]
    );
    assert_eq!(everywhere.body["data"][0]["subscriptionId"], VENDED);

    let in_group = graph(
        &client,
        json!({"managementGroups": ["MG-LZ"], "query": peered_with_hub()}),
    )
    .await;
    assert_eq!(ids(&in_group), [vnet_in(VENDED, "spoke-vended")]);

    let listed = graph(
        &client,
        json!({"subscriptions": [OUTSIDE], "query": peered_with_hub()}),
    )
    .await;
    assert_eq!(ids(&listed), [vnet_in(OUTSIDE, "spoke-outside")]);

    // Peerings are not rows of their own under the default reading.
    let rows = graph(&client, json!({"query": peering_rows_to_hub()})).await;
    assert_eq!(rows.body["totalRecords"], 0);

    let unknown = graph(
        &client,
        json!({"managementGroups": ["mg-nowhere"], "query": "Resources"}),
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.to_string().contains("mg-nowhere"));
    let both = graph(
        &client,
        json!({"managementGroups": ["mg-lz"], "subscriptions": [SUB], "query": "Resources"}),
    )
    .await;
    assert_eq!(both.status, 400);
    // A skip token continues its own scope only.
    let first = graph(
        &client,
        json!({"managementGroups": ["mg-lz"], "query": "Resources", "options": {"$top": 1}}),
    )
    .await;
    let token = first.body["$skipToken"].as_str().unwrap().to_string();
    let elsewhere = graph(
        &client,
        json!({"subscriptions": [VENDED], "query": "Resources", "options": {"$skipToken": token}}),
    )
    .await;
    assert_eq!(elsewhere.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn where_peerings_show_is_a_knob_and_both_queries_cover_every_reading() {
    for (peerings, inline, rows) in [
        (GraphPeerings::Inline, 2, 0),
        (GraphPeerings::Both, 2, 2),
        (GraphPeerings::Rows, 0, 2),
    ] {
        let (sim, client) = start_sim(SimConfig {
            strictness: Strictness {
                graph_peerings: peerings,
                ..Strictness::default()
            },
            ..SimConfig::default()
        })
        .await;
        sim.load(&estate()).unwrap();
        let found_inline = graph(&client, json!({"query": peered_with_hub()})).await;
        let found_rows = graph(&client, json!({"query": peering_rows_to_hub()})).await;
        assert_eq!(found_inline.body["totalRecords"], inline, "{peerings:?}");
        assert_eq!(found_rows.body["totalRecords"], rows, "{peerings:?}");
        if rows > 0 {
            assert_eq!(
                ids(&found_rows)[0],
                format!(
                    "{}/virtualNetworkPeerings/to-hub",
                    vnet_in(VENDED, "spoke-vended")
                )
            );
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_lagging_graph_answers_the_estate_as_it_was() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&estate()).unwrap();
    sim.put_management_group("mg-lz", &group(None, &[VENDED]))
        .unwrap();
    sim.freeze_graph();
    // The vended subscription leaves the group: the graph learns of it late, as of the rest.
    sim.put_management_group("mg-lz", &group(None, &[]))
        .unwrap();
    let in_group = graph(
        &client,
        json!({"managementGroups": ["mg-lz"], "query": peered_with_hub()}),
    )
    .await;
    assert_eq!(ids(&in_group), [vnet_in(VENDED, "spoke-vended")]);
    // The outside spoke goes; a new one comes.
    let mut changed = estate();
    let vnets = changed["virtualNetworks"].as_array_mut().unwrap();
    vnets.retain(|v| !v["id"].as_str().unwrap().contains("spoke-outside"));
    vnets.push(json!({"id": vnet_in(VENDED, "spoke-new"), "location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
        "virtualNetworkPeerings": [{"name": "to-hub", "properties": {"remoteVirtualNetwork": {"id": vnet_id("rg", "hub")}}}]}}));
    sim.load(&changed).unwrap();
    let stale = graph(&client, json!({"query": peered_with_hub()})).await;
    assert_eq!(
        ids(&stale),
        [
            vnet_in(VENDED, "spoke-vended"),
            vnet_in(OUTSIDE, "spoke-outside")
        ]
    );
    let (status, view) = control(&client, "GET", "/_sim/graph", Value::Null).await;
    assert_eq!((status, view["frozen"].clone()), (200, json!(true)));
    // ARM itself is current.
    let gone = client
        .send("GET", &vnet_in(OUTSIDE, "spoke-outside"), None)
        .await;
    assert_eq!(gone.status, 404);

    let (status, _) = control(&client, "PUT", "/_sim/graph", json!({"frozen": false})).await;
    assert_eq!(status, 200);
    let current = graph(&client, json!({"query": peered_with_hub()})).await;
    assert_eq!(
        ids(&current),
        [
            vnet_in(VENDED, "spoke-new"),
            vnet_in(VENDED, "spoke-vended")
        ]
    );
    // A lag: the copy taken at the first query stays until it is that old.
    let (status, _) = control(&client, "PUT", "/_sim/graph", json!({"lag_ms": 3_600_000})).await;
    assert_eq!(status, 200);
    assert_eq!(
        graph(&client, json!({"query": "Resources"})).await.body["totalRecords"],
        4
    );
    let mut grown = estate();
    grown["routeTables"] = json!([{"id": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt"), "location": "westeurope", "properties": {"routes": []}}]);
    sim.load(&grown).unwrap();
    assert_eq!(
        graph(&client, json!({"query": "Resources"})).await.body["totalRecords"],
        4,
        "still the copy of an hour's lag"
    );
    let (status, _) = control(&client, "PUT", "/_sim/graph", json!({"lag_ms": 0})).await;
    assert_eq!(status, 200);
    assert_eq!(
        graph(&client, json!({"query": "Resources"})).await.body["totalRecords"],
        5
    );
    for body in [json!({}), json!({"frozen": "yes"}), json!({"lag_ms": -1})] {
        let (status, _) = control(&client, "PUT", "/_sim/graph", body.clone()).await;
        assert_eq!(status, 400, "{body}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_queries_are_a_clear_400_naming_the_part() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.load(&estate()).unwrap();
    for (query, named) in [
        (
            "Resources | mv-expand peering = properties.virtualNetworkPeerings | where peering.properties.x != 'a'",
            "!=",
        ),
        ("Resources | where tostring(properties.a", "parenthesis"),
        ("Resources | where id in~ ('a', b)", "'b'"),
        ("Resources | extend x = 1", "extend"),
        ("Resources | project id, peering", "peering"),
    ] {
        let answer = graph(&client, json!({"query": query})).await;
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(answer.body["error"]["code"], "BadRequest");
        let detail = answer.body["error"]["details"][1]["message"]
            .as_str()
            .unwrap_or("");
        assert!(detail.contains(named), "{query}: {detail}");
    }
    sim.shutdown().await;
}
