//! The offline plan from what users really have: the Azure CLI's output, ARM's JSON and Resource
//! Graph's answer, alone or mixed, give the same plan for the same estate; bad input is an error
//! naming the file, the JSON path in it and what was expected.
//!
//! The estate is `tests/fixtures/az-cli/`: real output of Azure CLI 2.91.0 (`vnets.json`,
//! `route-tables.json`, `gateways.json`) and the same estate in ARM's JSON
//! (`arm-rest-same-estate.json`). The Resource Graph answers are derived here from the ARM
//! snapshot, in the shape `az graph query` prints.
use hubspoke_core::config::PlanConfig;
use hubspoke_core::model::Observed;
use hubspoke_core::plan::plan;
use hubspoke_core::snapshot::{documents, read, SnapshotError, SnapshotFile};
use serde_json::{json, Map, Value};

const HUB: &str = "/subscriptions/4f1c2b3a-0000-4000-8000-00000000a001/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub";

fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/az-cli/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The documents of a fixture file.
fn fixture(name: &str) -> Vec<Value> {
    documents(&fixture_text(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The one document of a fixture file.
fn fixture_document(name: &str) -> Value {
    let mut documents = fixture(name);
    assert_eq!(documents.len(), 1, "{name} holds one document");
    documents.remove(0)
}

fn try_read(files: &[(&str, Vec<Value>)]) -> Result<Observed, SnapshotError> {
    let files: Vec<SnapshotFile<'_>> = files
        .iter()
        .map(|(name, documents)| SnapshotFile { name, documents })
        .collect();
    read(&files)
}

fn read_ok(files: &[(&str, Vec<Value>)]) -> Observed {
    try_read(files).unwrap_or_else(|error| panic!("reads: {error}"))
}

fn read_err(files: &[(&str, Vec<Value>)]) -> SnapshotError {
    match try_read(files) {
        Ok(_) => panic!("expected an error"),
        Err(error) => error,
    }
}

/// The plan for the estate's hub, as `hubspoke plan --output json` prints it.
fn plan_json(observed: &Observed) -> Value {
    let config = PlanConfig::new(vec![HUB.parse().expect("hub id")]);
    serde_json::to_value(plan(&config, observed)).expect("plan serializes")
}

fn cli_files() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        ("vnets.json", fixture("vnets.json")),
        ("route-tables.json", fixture("route-tables.json")),
        ("gateways.json", fixture("gateways.json")),
    ]
}

fn arm_plan() -> Value {
    plan_json(&read_ok(&[(
        "arm-rest-same-estate.json",
        fixture("arm-rest-same-estate.json"),
    )]))
}

/// The ARM snapshot as `az graph query -q "resources | where type in~ (...) | project id, name,
/// type, location, resourceGroup, subscriptionId, tags, properties"` prints it: `type` and
/// `resourceGroup` in lower case as Resource Graph answers them, and `resourceGroup` added by
/// the CLI to every object with an id.
fn resource_graph_answer(arm: &Value) -> Value {
    let mut rows = Vec::new();
    for key in ["virtualNetworks", "routeTables", "virtualNetworkGateways"] {
        for resource in arm[key].as_array().into_iter().flatten() {
            let id = resource["id"].as_str().expect("id");
            let segments: Vec<&str> = id.split('/').collect();
            let mut row = Map::new();
            row.insert("id".into(), json!(id));
            row.insert("name".into(), resource["name"].clone());
            row.insert(
                "type".into(),
                json!(resource["type"].as_str().expect("type").to_lowercase()),
            );
            row.insert("location".into(), resource["location"].clone());
            row.insert("resourceGroup".into(), json!(segments[4].to_lowercase()));
            row.insert("subscriptionId".into(), json!(segments[2]));
            row.insert("tags".into(), resource["tags"].clone());
            row.insert("properties".into(), resource["properties"].clone());
            let mut row = Value::Object(row);
            add_resource_groups(&mut row);
            rows.push(row);
        }
    }
    json!({"count": rows.len(), "data": rows, "skip_token": null, "total_records": rows.len()})
}

/// What every `az` command does to its output: `resourceGroup` on each object with an id.
fn add_resource_groups(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(group) = object
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.split('/').nth(4))
                .map(str::to_owned)
            {
                object.entry("resourceGroup").or_insert(json!(group));
            }
            object.values_mut().for_each(add_resource_groups);
        }
        Value::Array(items) => items.iter_mut().for_each(add_resource_groups),
        _ => {}
    }
}

fn without_etags(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(key, _)| *key != "etag")
                .map(|(key, value)| (key.clone(), without_etags(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_etags).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The same estate in every shape gives the same plan.

#[test]
fn the_cli_output_plans_exactly_as_arm_json_does() {
    let expected = arm_plan();
    let hub = &expected["hubs"][0];
    assert_eq!(hub["status"], "changes_pending", "{expected:#}");
    assert!(
        hub["changes"].as_array().is_some_and(|c| c.len() > 3),
        "a plan with something to do: {expected:#}"
    );
    assert_eq!(plan_json(&read_ok(&cli_files())), expected);

    // The CLI's arrays assembled into a snapshot object, as the README once said to do.
    let assembled = json!({
        "virtualNetworks": fixture_document("vnets.json"),
        "routeTables": fixture_document("route-tables.json"),
        "virtualNetworkGateways": fixture_document("gateways.json"),
    });
    assert_eq!(
        plan_json(&read_ok(&[("snapshot.json", vec![assembled])])),
        expected
    );

    // The order of the files does not matter.
    let mut reversed = cli_files();
    reversed.reverse();
    assert_eq!(plan_json(&read_ok(&reversed)), expected);
}

#[test]
fn cli_objects_un_flatten_to_what_arm_returns() {
    let cli = read_ok(&cli_files());
    let arm = read_ok(&[("arm.json", fixture("arm-rest-same-estate.json"))]);
    assert_eq!(cli.virtual_networks.len(), 7);
    for arm_vnet in &arm.virtual_networks {
        let cli_vnet = cli
            .virtual_networks
            .iter()
            .find(|vnet| vnet.id == arm_vnet.id)
            .expect("the same VNets");
        assert_eq!(cli_vnet.address_prefixes, arm_vnet.address_prefixes);
        assert_eq!(cli_vnet.location, arm_vnet.location);
        assert_eq!(cli_vnet.subnets.len(), arm_vnet.subnets.len());
        for (cli_subnet, arm_subnet) in cli_vnet.subnets.iter().zip(&arm_vnet.subnets) {
            // Subnets are written back as read: the CLI's, un-flattened, are ARM's (the two
            // captures differ only in etags).
            assert_eq!(
                without_etags(&cli_subnet.raw),
                without_etags(&arm_subnet.raw)
            );
            assert_eq!(cli_subnet.route_table, arm_subnet.route_table);
            assert_eq!(cli_subnet.ip_configurations, arm_subnet.ip_configurations);
        }
        assert_eq!(cli_vnet.peerings.len(), arm_vnet.peerings.len());
        for (cli_peering, arm_peering) in cli_vnet.peerings.iter().zip(&arm_vnet.peerings) {
            assert_eq!(cli_peering.id, arm_peering.id);
            assert_eq!(cli_peering.remote_vnet, arm_peering.remote_vnet);
            assert_eq!(cli_peering.flags, arm_peering.flags);
            assert_eq!(cli_peering.state, arm_peering.state);
            assert_eq!(cli_peering.sync_level, arm_peering.sync_level);
            assert_eq!(
                cli_peering.remote_address_space,
                arm_peering.remote_address_space
            );
            let raw = &cli_peering.raw;
            assert!(raw.get("resourceGroup").is_none(), "{raw:#}");
            assert!(
                raw["properties"]["remoteVirtualNetwork"]
                    .get("resourceGroup")
                    .is_none(),
                "references lose the CLI's resourceGroup: {raw:#}"
            );
        }
    }
    let gateway = &cli.gateways[0];
    assert_eq!(gateway.sku.as_deref(), Some("VpnGw1"), "sku is a property");
    assert_eq!(gateway.gateway_type, "Vpn");
    assert_eq!(gateway.subnets, arm.gateways[0].subnets);
    let table = &cli.route_tables[0];
    assert_eq!(table.routes, arm.route_tables[0].routes);
    assert_eq!(table.subnets, arm.route_tables[0].subnets);
}

#[test]
fn a_resource_graph_answer_plans_as_arm_json_does() {
    let expected = arm_plan();
    let answer = resource_graph_answer(&fixture_document("arm-rest-same-estate.json"));
    assert_eq!(
        plan_json(&read_ok(&[("graph.json", vec![answer.clone()])])),
        expected
    );

    // The REST API's own answer: camelCase keys, `$skipToken`, `resultTruncated`.
    let rest = json!({
        "totalRecords": answer["total_records"],
        "count": answer["count"],
        "resultTruncated": "false",
        "facets": [],
        "data": answer["data"],
    });
    assert_eq!(plan_json(&read_ok(&[("rest.json", vec![rest])])), expected);

    // Pages, one document after the other: every page given, every record read.
    let rows = answer["data"].as_array().expect("rows");
    let (first, second) = rows.split_at(4);
    let pages = vec![
        json!({"count": 4, "data": first, "skip_token": "next", "total_records": rows.len()}),
        json!({"count": second.len(), "data": second, "skip_token": null, "total_records": rows.len()}),
    ];
    assert_eq!(plan_json(&read_ok(&[("pages.json", pages)])), expected);
}

#[test]
fn shapes_mix_across_files_and_documents() {
    let expected = arm_plan();
    let arm = fixture_document("arm-rest-same-estate.json");

    // The VNets as `for s in ...; do az network vnet list --subscription $s -o json; done`
    // writes them: one array per subscription, one after the other.
    let vnets = fixture_document("vnets.json");
    let (first, second): (Vec<Value>, Vec<Value>) = vnets
        .as_array()
        .expect("array")
        .iter()
        .cloned()
        .partition(|vnet| vnet["id"].as_str().is_some_and(|id| id.contains("a001")));
    let stream = format!(
        "{}\n{}\n",
        serde_json::to_string_pretty(&first).expect("json"),
        serde_json::to_string_pretty(&second).expect("json")
    );
    let stream = documents(&stream).expect("a stream of arrays");
    assert_eq!(stream.len(), 2);

    // The route tables in a snapshot object, the gateway as ARM's list answer (`az rest`).
    let tables = json!({"routeTables": arm["routeTables"]});
    let gateways = json!({"value": arm["virtualNetworkGateways"], "nextLink": null});
    let observed = read_ok(&[
        ("vnets.json", stream),
        ("tables.json", vec![tables]),
        ("gateways.json", vec![gateways]),
    ]);
    assert_eq!(plan_json(&observed), expected);

    // CLI VNets, Resource Graph rows for the rest.
    let mut graph = resource_graph_answer(&json!({
        "routeTables": arm["routeTables"],
        "virtualNetworkGateways": arm["virtualNetworkGateways"],
    }));
    graph["skip_token"] = Value::Null;
    let observed = read_ok(&[
        ("vnets.json", fixture("vnets.json")),
        ("graph.json", vec![graph]),
    ]);
    assert_eq!(plan_json(&observed), expected);

    // One resource alone (`az network vnet-gateway show`, or `az rest` of one resource).
    let gateway = fixture_document("gateways.json")[0].clone();
    let observed = read_ok(&[
        ("vnets.json", fixture("vnets.json")),
        ("route-tables.json", fixture("route-tables.json")),
        ("gateway.json", vec![gateway]),
    ]);
    assert_eq!(plan_json(&observed), expected);
}

#[test]
fn a_resource_given_twice_the_same_is_read_once() {
    let mut files = cli_files();
    files.push(("vnets-again.json", fixture("vnets.json")));
    let observed = read_ok(&files);
    assert_eq!(observed.virtual_networks.len(), 7);
    assert_eq!(plan_json(&observed), arm_plan());
}

#[test]
fn delegations_of_cli_subnets_are_read() {
    let subnet = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/sql";
    let vnet = json!([{
        "addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
        "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v",
        "location": "westeurope",
        "name": "v",
        "provisioningState": "Succeeded",
        "resourceGroup": "g",
        "subnets": [{
            "addressPrefix": "10.9.0.0/24",
            "delegations": [{
                "actions": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
                "id": format!("{subnet}/delegations/mi"),
                "name": "mi",
                "provisioningState": "Succeeded",
                "resourceGroup": "g",
                "serviceName": "Microsoft.Sql/managedInstances",
                "type": "Microsoft.Network/virtualNetworks/subnets/delegations"
            }],
            "id": subnet,
            "name": "sql",
            "resourceGroup": "g",
            "type": "Microsoft.Network/virtualNetworks/subnets"
        }],
        "type": "Microsoft.Network/virtualNetworks",
        "virtualNetworkPeerings": []
    }]);
    let observed = read_ok(&[("vnets.json", vec![vnet])]);
    let subnet = &observed.virtual_networks[0].subnets[0];
    assert!(subnet.is_delegated_to("Microsoft.Sql/managedInstances"));
    assert_eq!(
        subnet.raw["properties"]["delegations"][0]["properties"]["serviceName"],
        "Microsoft.Sql/managedInstances"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors name the file, the JSON path in it and what was expected.

#[test]
fn a_resource_of_another_type_is_refused_with_its_id_and_path() {
    let nsg =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/nsg";
    let mut vnets = fixture_document("vnets.json");
    vnets.as_array_mut().expect("array").push(
        json!({"id": nsg, "name": "nsg", "type": "Microsoft.Network/networkSecurityGroups",
                     "securityRules": []}),
    );
    let error = read_err(&[("vnets.json", vec![vnets])]);
    assert_eq!(error.file, "vnets.json");
    assert_eq!(error.error.path, "$[7].type");
    assert!(
        error
            .error
            .expected
            .contains("Microsoft.Network/virtualNetworks"),
        "{error}"
    );
    assert!(error.error.found.contains(nsg), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("vnets.json: at $[7].type: expected"),
        "{message}"
    );

    // A resource without a type cannot be classified.
    let error = read_err(&[("x.json", vec![json!([{"id": nsg}])])]);
    assert_eq!(error.error.path, "$[0].type");

    // In a snapshot object, the array says the type; a contrary `type` is refused.
    let arm = fixture_document("arm-rest-same-estate.json");
    let wrong = json!({"routeTables": arm["virtualNetworkGateways"]});
    let error = read_err(&[("snapshot.json", vec![wrong])]);
    assert_eq!(error.error.path, "$.routeTables[0].type");
    assert!(error.error.expected.contains("routeTables"), "{error}");
}

#[test]
fn errors_in_flattened_objects_name_the_path_as_the_file_has_it() {
    // A route without its next hop type.
    let mut tables = fixture_document("route-tables.json");
    tables[0]["routes"][0]
        .as_object_mut()
        .expect("route")
        .remove("nextHopType");
    let mut files = cli_files();
    files[1].1 = vec![tables];
    let error = read_err(&files);
    assert_eq!(error.file, "route-tables.json");
    assert_eq!(error.document, None);
    assert_eq!(error.error.path, "$[0].routes[0].nextHopType");
    assert_eq!(error.error.expected, "a string");
    assert_eq!(error.error.found, "nothing");

    // A peering without its remote VNet.
    let mut vnets = fixture_document("vnets.json");
    vnets[1]["virtualNetworkPeerings"][0]
        .as_object_mut()
        .expect("peering")
        .remove("remoteVirtualNetwork");
    let error = read_err(&[("vnets.json", vec![vnets])]);
    assert_eq!(
        error.error.path,
        "$[1].virtualNetworkPeerings[0].remoteVirtualNetwork"
    );

    // A bad prefix at the top of a flattened VNet.
    let mut vnets = fixture_document("vnets.json");
    vnets[2]["addressSpace"]["addressPrefixes"][0] = json!("10.2.0.0/33");
    let error = read_err(&[("vnets.json", vec![vnets])]);
    assert_eq!(error.error.path, "$[2].addressSpace.addressPrefixes[0]");
    assert!(error.error.expected.contains("CIDR"), "{error}");

    // A bad reference in a flattened subnet of a flattened VNet.
    let mut vnets = fixture_document("vnets.json");
    vnets[0]["subnets"][0]["routeTable"] = json!({"id": "/subscriptions/s/nonsense"});
    let error = read_err(&[("vnets.json", vec![vnets])]);
    assert_eq!(error.error.path, "$[0].subnets[0].routeTable.id");

    // The second of several documents in a file is named.
    let stream =
        documents("[]\n[{\"id\": \"/subscriptions/s\", \"type\": \"x\"}]\n").expect("json");
    let error = read_err(&[("vnets.json", stream)]);
    assert_eq!(error.document, Some(2));
    assert!(
        error
            .to_string()
            .starts_with("vnets.json (JSON document 2): at $[0].type"),
        "{error}"
    );

    // ARM's shape keeps ARM's paths.
    let mut arm = fixture_document("arm-rest-same-estate.json");
    arm["virtualNetworks"][1]["properties"]["addressSpace"]["addressPrefixes"][0] =
        json!("10.300.0.0/16");
    let error = read_err(&[("arm.json", vec![arm])]);
    assert_eq!(
        error.error.path,
        "$.virtualNetworks[1].properties.addressSpace.addressPrefixes[0]"
    );
}

#[test]
fn a_resource_graph_table_is_refused_with_how_to_ask_for_rows() {
    let table = json!({
        "totalRecords": 1, "count": 1, "resultTruncated": "false",
        "data": {"columns": [{"name": "id", "type": "string"}], "rows": [["/subscriptions/s"]]}
    });
    let error = read_err(&[("graph.json", vec![table])]);
    assert_eq!(error.file, "graph.json");
    assert_eq!(error.error.path, "$.data");
    assert!(error.error.expected.contains("objectArray"), "{error}");
    assert!(error.error.found.contains("table"), "{error}");
}

#[test]
fn a_resource_graph_row_without_properties_is_refused() {
    let mut answer = resource_graph_answer(&fixture_document("arm-rest-same-estate.json"));
    answer["data"][3]
        .as_object_mut()
        .expect("row")
        .remove("properties");
    let error = read_err(&[("graph.json", vec![answer])]);
    assert_eq!(error.error.path, "$.data[3].properties");
    assert!(error.error.expected.contains("project"), "{error}");
}

#[test]
fn one_page_of_several_is_refused() {
    let answer = resource_graph_answer(&fixture_document("arm-rest-same-estate.json"));
    let rows = answer["data"].as_array().expect("rows");
    let page = json!({"count": 4, "data": &rows[..4], "skip_token": "ew0KICAiJGlkIjogIjEi",
                      "total_records": rows.len()});
    let error = read_err(&[("graph.json", vec![page])]);
    assert_eq!(error.error.path, "$.total_records");
    assert!(
        error
            .error
            .expected
            .contains(&format!("{} records", rows.len())),
        "{error}"
    );
    assert!(
        error.error.found.contains("ew0KICAiJGlkIjogIjEi"),
        "{error}"
    );

    let truncated = json!({"totalRecords": 9, "count": 9, "resultTruncated": "true",
                           "data": rows});
    let error = read_err(&[("graph.json", vec![truncated])]);
    assert_eq!(error.error.path, "$.resultTruncated");
}

#[test]
fn a_resource_given_twice_differently_is_refused_naming_both_files() {
    let mut files = cli_files();
    files.push((
        "arm-rest-same-estate.json",
        fixture("arm-rest-same-estate.json"),
    ));
    let error = read_err(&files);
    assert_eq!(error.file, "arm-rest-same-estate.json");
    assert_eq!(error.error.path, "$.virtualNetworks[0].id");
    assert!(error.error.found.contains(HUB), "{error}");
    assert!(error.error.found.contains("vnets.json at $[0]"), "{error}");
}

#[test]
fn an_empty_file_or_a_stray_value_is_refused() {
    let error = read_err(&[("vnets.json", Vec::new())]);
    assert_eq!(error.file, "vnets.json");
    assert!(error.error.found.contains("empty"), "{error}");

    let error = read_err(&[("vnets.json", vec![json!("vnet-hub")])]);
    assert_eq!(error.error.path, "$");
    assert!(
        error.error.expected.contains("az network vnet list"),
        "{error}"
    );

    let error = read_err(&[("snapshot.json", vec![json!({"vnets": []})])]);
    assert_eq!(error.error.path, "$.vnets");
}

#[test]
fn documents_split_a_stream_and_report_bad_json() {
    assert_eq!(documents("[1][2]").expect("adjacent").len(), 2);
    assert_eq!(documents(" [] \n {} \n").expect("spaced").len(), 2);
    assert!(documents("").expect("nothing").is_empty());
    let error = documents("[1]\n[2").expect_err("cut short");
    assert!(error.to_string().contains("line 2"), "{error}");
}
