//! The Azure CLI, unchanged, against `hubspoke sim`, as a network engineer would use it: register
//! the simulator as a cloud by its Resource Manager URL, `az login --identity` through the
//! simulator's managed identity endpoint, then ordinary network commands, listing the estate as
//! the README's offline recipe does. What they print must hold what the simulator holds, and
//! `hubspoke plan` of what they print must plan exactly what a plan of the simulator's own state
//! plans.
//!
//! The CLI is the pinned `azure-cli` that `scripts/test` installs into `.venv/azure-cli` and names
//! in `HUBSPOKE_TEST_AZ`. It keeps its configuration in a temporary `AZURE_CONFIG_DIR`, never the
//! user's, and runs with only the environment given here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};
use support::{run, start_sim_with_latency, temp_dir, Sim};

/// The estate: a hub with a VPN gateway and six spokes over two subscriptions.
const ESTATE: &str = include_str!("../../../tests/fixtures/az-cli/arm-rest-same-estate.json");

/// The name the simulator's cloud is registered under.
const CLOUD: &str = "hubspoke-sim";

/// A property of the simulator's peerings that the CLI 2.91 does not print: its model of a
/// peering has no such field, and it prints only the fields of its model.
const NOT_IN_THE_CLI_MODEL: [&str; 1] = ["routeServiceVips"];

/// The CLI, from `HUBSPOKE_TEST_AZ`; fails naming the install step when it is not there.
fn az_cli() -> PathBuf {
    let hint = "HUBSPOKE_TEST_AZ must name the Azure CLI (azure-cli==2.91.0): `scripts/test` \
                installs it into .venv/azure-cli (step \"azure cli for the simulator tests\") and \
                sets HUBSPOKE_TEST_AZ=$PWD/.venv/azure-cli/bin/az";
    let path = std::env::var_os("HUBSPOKE_TEST_AZ")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{hint}"));
    assert!(path.is_file(), "{} is missing. {hint}", path.display());
    path
}

/// The seed: the estate plus a network interface in the spoke whose subnet has its own table.
fn seed() -> Value {
    let mut seed: Value = serde_json::from_str(ESTATE).unwrap();
    let spoke = seed["virtualNetworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vnet| vnet["name"] == "vnet-s005")
        .expect("vnet-s005 in the estate")
        .clone();
    let spoke_id = spoke["id"].as_str().unwrap();
    let nic_id = spoke_id.replace("virtualNetworks/vnet-s005", "networkInterfaces/nic-s005");
    seed["networkInterfaces"] = json!([{
        "id": nic_id,
        "location": spoke["location"],
        "properties": {"ipConfigurations": [{
            "name": "ipconfig1",
            "properties": {
                "privateIPAddress": "10.5.0.4",
                "subnet": {"id": format!("{spoke_id}/subnets/default")},
            },
        }]},
    }]);
    seed
}

/// A seeded simulator over TLS whose operations finish at once (what the test reads of them
/// never waits on a timer), and its folder.
fn seeded_sim(name: &str) -> (Sim, PathBuf) {
    let dir = temp_dir(name);
    let seed_path = dir.join("seed.json");
    std::fs::write(&seed_path, seed().to_string()).unwrap();
    let sim = start_sim_with_latency(&seed_path, &dir, "lro=0ms,delete=0ms,retry-after=0");
    (sim, dir)
}

fn setting<'a>(sim: &'a Sim, key: &str) -> &'a str {
    sim.env
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the simulator printed no {key}"))
}

/// The Azure CLI with a configuration of its own, in an environment of only what it needs: the
/// simulator's certificate (`REQUESTS_CA_BUNDLE`) and managed identity endpoint
/// (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, as App Service sets them).
struct Az {
    program: PathBuf,
    env: Vec<(String, String)>,
}

impl Az {
    fn new(program: PathBuf, sim: &Sim, dir: &Path) -> Self {
        let home = dir.join("home");
        let config = dir.join("azure-config");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&config).unwrap();
        let path = |p: &Path| p.display().to_string();
        Az {
            program,
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                ("HOME".into(), path(&home)),
                ("AZURE_CONFIG_DIR".into(), path(&config)),
                ("AZURE_CORE_COLLECT_TELEMETRY".into(), "false".into()),
                ("AZURE_CORE_NO_COLOR".into(), "true".into()),
                (
                    "REQUESTS_CA_BUNDLE".into(),
                    setting(sim, "HUBSPOKE_CA_CERT").into(),
                ),
                (
                    "IDENTITY_ENDPOINT".into(),
                    setting(sim, "IDENTITY_ENDPOINT").into(),
                ),
                (
                    "IDENTITY_HEADER".into(),
                    setting(sim, "IDENTITY_HEADER").into(),
                ),
            ],
        }
    }

    /// Runs `az ARGS`; fails with what the CLI printed unless it succeeds; returns its stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.program)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("the Azure CLI runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "az {}: {}\n{stdout}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs `az ARGS -o json` and parses what it printed.
    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.run(&[args, &["--output", "json"]].concat());
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("az {}: not JSON ({e}): {stdout}", args.join(" ")))
    }

    /// Registers the simulator as a cloud from its metadata, makes it the active cloud and logs
    /// in with the managed identity; returns what `az login` printed.
    fn log_in(&self, sim: &Sim) -> Value {
        let arm = setting(sim, "HUBSPOKE_ARM_ENDPOINT");
        self.run(&[
            "cloud",
            "register",
            "--name",
            CLOUD,
            "--endpoint-resource-manager",
            arm,
        ]);
        self.run(&["cloud", "set", "--name", CLOUD]);
        self.json(&["login", "--identity"])
    }
}

/// Reads the simulator over HTTPS, trusting its certificate.
struct Reader {
    runtime: tokio::runtime::Runtime,
    https: reqwest::Client,
    arm: String,
    identity_endpoint: String,
    identity_header: String,
}

impl Reader {
    fn new(sim: &Sim) -> Self {
        let pem = std::fs::read(setting(sim, "HUBSPOKE_CA_CERT")).unwrap();
        Reader {
            runtime: tokio::runtime::Runtime::new().unwrap(),
            https: reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
                .build()
                .unwrap(),
            arm: setting(sim, "HUBSPOKE_ARM_ENDPOINT").to_string(),
            identity_endpoint: setting(sim, "IDENTITY_ENDPOINT").to_string(),
            identity_header: setting(sim, "IDENTITY_HEADER").to_string(),
        }
    }

    /// The estate as the simulator holds it (`GET /_sim/state`).
    fn state(&self) -> Value {
        self.runtime.block_on(async {
            let response = self
                .https
                .get(format!("{}/_sim/state", self.arm))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json().await.unwrap()
        })
    }

    /// A token of the simulator's managed identity endpoint.
    async fn token(&self) -> String {
        let answer: Value = reqwest::Client::new()
            .get(format!(
                "{}?api-version=2019-08-01&resource=https://management.azure.com/",
                self.identity_endpoint
            ))
            .header("X-IDENTITY-HEADER", &self.identity_header)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_string()
    }

    /// The simulator's one tenant (`GET /tenants`).
    fn tenant(&self) -> String {
        self.runtime.block_on(async {
            let tenants: Value = self
                .https
                .get(format!("{}/tenants?api-version=2022-12-01", self.arm))
                .bearer_auth(self.token().await)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(tenants["value"].as_array().map(Vec::len), Some(1));
            tenants["value"][0]["tenantId"]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    /// The effective routes of a NIC through the simulator's own ARM endpoint: the POST answers
    /// 202 with a `Location` that answers 200 with the routes once the operation's time has come
    /// (at once here: the simulator's operations take no time).
    fn effective_routes(&self, nic_id: &str) -> Value {
        self.runtime.block_on(async {
            let token = self.token().await;
            let started = self
                .https
                .post(format!(
                    "{}{nic_id}/effectiveRouteTable?api-version=2024-05-01",
                    self.arm
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(started.status().as_u16(), 202);
            let location = started.headers()["location"].to_str().unwrap().to_string();
            let done = self
                .https
                .get(location)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(done.status().as_u16(), 200, "the routes are ready at once");
            done.json().await.unwrap()
        })
    }
}

/// An ARM object as the CLI prints it: the `properties` of every object merged into it.
fn flattened(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("properties", Value::Object(properties)) => {
                        for (key, item) in properties {
                            out.insert(key.clone(), flattened(item));
                        }
                    }
                    _ => {
                        out.insert(key.clone(), flattened(item));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(flattened).collect()),
        other => other.clone(),
    }
}

/// Where `printed` (the CLI's) does not hold `held` (the simulator's, flattened): every field
/// the simulator holds is printed with the same value (the CLI adds fields of its own, such as
/// `resourceGroup`), arrays element by element.
fn not_held(held: &Value, printed: &Value, path: &str, out: &mut Vec<String>) {
    match (held, printed) {
        (Value::Object(held), Value::Object(printed)) => {
            for (key, value) in held {
                match printed.get(key) {
                    Some(printed) => not_held(value, printed, &format!("{path}.{key}"), out),
                    None if NOT_IN_THE_CLI_MODEL.contains(&key.as_str()) => {}
                    None => out.push(format!("{path}.{key}: not printed (held: {value})")),
                }
            }
        }
        (Value::Array(held), Value::Array(printed)) if held.len() == printed.len() => {
            for (index, (held, printed)) in held.iter().zip(printed).enumerate() {
                not_held(held, printed, &format!("{path}[{index}]"), out);
            }
        }
        (held, printed) if held == printed => {}
        (held, printed) => out.push(format!("{path}: held {held}, printed {printed}")),
    }
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Checks that `printed` lists exactly the resources of `held`, each holding what it holds.
fn assert_lists(what: &str, held: &[Value], printed: &[Value]) {
    let mut held_ids: Vec<String> = held.iter().map(id_of).collect();
    let mut printed_ids: Vec<String> = printed.iter().map(id_of).collect();
    held_ids.sort();
    printed_ids.sort();
    assert_eq!(printed_ids, held_ids, "{what}: the resources listed");
    let mut problems = Vec::new();
    for resource in held {
        let printed = printed
            .iter()
            .find(|p| id_of(p) == id_of(resource))
            .unwrap();
        not_held(
            &flattened(resource),
            printed,
            &id_of(resource),
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

fn array<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value[field].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `(subscription, resource group)` of an id.
fn scope_of(id: &str) -> (String, String) {
    let parts: Vec<&str> = id.split('/').collect();
    (parts[2].to_string(), parts[4].to_string())
}

/// The subscriptions of the estate, each once.
fn subscriptions_of(state: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for field in ["virtualNetworks", "routeTables", "virtualNetworkGateways"] {
        for resource in array(state, field) {
            let (subscription, _) = scope_of(resource["id"].as_str().unwrap());
            if !out.iter().any(|s| s.eq_ignore_ascii_case(&subscription)) {
                out.push(subscription);
            }
        }
    }
    out
}

/// The README's query for the resource groups to list route tables and gateways in: those of
/// the VNets, of the route tables their subnets use and of their gateways.
const GROUPS_QUERY: &str = "[].[resourceGroup, subnets[].routeTable.resourceGroup, \
    subnets[?name=='GatewaySubnet'].ipConfigurations[].resourceGroup][][]";

/// What the CLI listed, each list all the answers of its command concatenated into one array.
struct Listed {
    vnets: Vec<Value>,
    route_tables: Vec<Value>,
    gateways: Vec<Value>,
}

/// Lists the estate as the README's offline recipe does, one file per call in `folder`: the
/// VNets of every subscription (`az network vnet list`), then the route tables and gateways of
/// every resource group the README's query names (this CLI refuses `route-table list` and
/// `vnet-gateway list` without `-g`).
fn list_estate(az: &Az, subscriptions: &[String], folder: &Path) -> Listed {
    std::fs::create_dir_all(folder).unwrap();
    let mut listed = Listed {
        vnets: Vec::new(),
        route_tables: Vec::new(),
        gateways: Vec::new(),
    };
    let mut save = |name: String, printed: String, into: fn(&mut Listed) -> &mut Vec<Value>| {
        let value: Value = serde_json::from_str(&printed).unwrap();
        into(&mut listed).extend(value.as_array().unwrap().iter().cloned());
        std::fs::write(folder.join(name), printed).unwrap();
    };
    for subscription in subscriptions {
        let subscription = subscription.as_str();
        let args = ["network", "vnet", "list", "--subscription", subscription];
        save(
            format!("vnets-{subscription}.json"),
            az.run(&[&args[..], &["-o", "json"]].concat()),
            |l| &mut l.vnets,
        );
        let groups = az.run(&[&args[..], &["-o", "tsv", "--query", GROUPS_QUERY]].concat());
        let mut groups: Vec<&str> = groups.lines().filter(|g| !g.is_empty()).collect();
        groups.sort();
        groups.dedup();
        assert!(!groups.is_empty(), "no resource group in {subscription}");
        for group in groups {
            let scope = ["--subscription", subscription, "-g", group, "-o", "json"];
            save(
                format!("route-tables-{subscription}-{group}.json"),
                az.run(&[&["network", "route-table", "list"][..], &scope].concat()),
                |l| &mut l.route_tables,
            );
            save(
                format!("gateways-{subscription}-{group}.json"),
                az.run(&[&["network", "vnet-gateway", "list"][..], &scope].concat()),
                |l| &mut l.gateways,
            );
        }
    }
    listed
}

/// Plans, for the hub of the estate, what the CLI listed (`hubspoke plan --snapshot FOLDER`, as
/// the README's recipe does) and the simulator's own state: the two plans must be the same, and
/// not empty.
fn assert_plans_alike(dir: &Path, state: &Value, listed_folder: &Path) {
    // The hub: the VNet of the gateway's subnet.
    let gateway = &array(state, "virtualNetworkGateways")[0];
    let subnet = gateway["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"]
        .as_str()
        .unwrap();
    let hub = &subnet[..subnet.to_ascii_lowercase().find("/subnets/").unwrap()];

    // The simulator's own state, in the snapshot format (its NICs left out: a snapshot holds
    // only these three).
    let own = dir.join("state.json");
    let snapshot = json!({
        "virtualNetworks": state["virtualNetworks"],
        "routeTables": state["routeTables"],
        "virtualNetworkGateways": state["virtualNetworkGateways"],
    });
    std::fs::write(&own, snapshot.to_string()).unwrap();

    let plan = |snapshot: &Path| -> Value {
        let snapshot = snapshot.display().to_string();
        let args = [
            "plan",
            "--snapshot",
            &snapshot,
            "--hub",
            hub,
            "--output",
            "json",
        ];
        let output = run(&args, &[]);
        assert!(
            output.status.success(),
            "hubspoke {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let of_state = plan(&own);
    let of_cli = plan(listed_folder);
    assert_eq!(of_cli, of_state);
    // Not an empty agreement: the estate has half-open peerings and missing routes.
    assert_eq!(of_state["hubs"][0]["status"], "changes_pending");
    assert!(of_state["hubs"][0]["changes"]
        .as_array()
        .is_some_and(|changes| !changes.is_empty()));
}

#[test]
fn the_azure_cli_logs_in_to_the_simulator_prints_what_it_holds_and_plans_alike() {
    let program = az_cli();
    let (sim, dir) = seeded_sim("az-cli");
    let reader = Reader::new(&sim);
    let az = Az::new(program, &sim, &dir);
    let state = reader.state();
    let subscriptions = subscriptions_of(&state);
    assert_eq!(subscriptions.len(), 2, "the estate spans two subscriptions");

    // `az login --identity` finds the estate's subscriptions, in the simulator's tenant.
    let tenant = reader.tenant();
    let accounts = az.log_in(&sim);
    let mut logged_in: Vec<String> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|account| {
            assert_eq!(account["tenantId"], tenant.as_str());
            assert_eq!(account["environmentName"], CLOUD);
            assert_eq!(account["user"]["type"], "servicePrincipal");
            account["id"].as_str().unwrap().to_string()
        })
        .collect();
    logged_in.sort();
    let mut expected = subscriptions.clone();
    expected.sort();
    assert_eq!(logged_in, expected);

    // az network vnet list / route-table list -g / vnet-gateway list -g.
    let listed_folder = dir.join("estate");
    let listed = list_estate(&az, &subscriptions, &listed_folder);
    assert_lists(
        "az network vnet list",
        array(&state, "virtualNetworks"),
        &listed.vnets,
    );
    assert_lists(
        "az network route-table list -g",
        array(&state, "routeTables"),
        &listed.route_tables,
    );
    assert_lists(
        "az network vnet-gateway list -g",
        array(&state, "virtualNetworkGateways"),
        &listed.gateways,
    );
    assert!(!listed.route_tables.is_empty() && !listed.gateways.is_empty());

    // az network vnet peering list, for every VNet.
    let mut peerings = 0;
    for vnet in array(&state, "virtualNetworks") {
        let (subscription, group) = scope_of(vnet["id"].as_str().unwrap());
        let name = vnet["name"].as_str().unwrap();
        let printed = az.json(&[
            "network",
            "vnet",
            "peering",
            "list",
            "--subscription",
            &subscription,
            "--resource-group",
            &group,
            "--vnet-name",
            name,
        ]);
        let held = array(&vnet["properties"], "virtualNetworkPeerings");
        peerings += held.len();
        assert_lists(
            &format!("az network vnet peering list --vnet-name {name}"),
            held,
            printed.as_array().unwrap(),
        );
    }
    assert!(peerings > 5, "{peerings} peerings");

    // az network nic show-effective-route-table: the routes the simulator computes.
    let nic = &array(&state, "networkInterfaces")[0];
    let nic_id = nic["id"].as_str().unwrap();
    let (subscription, group) = scope_of(nic_id);
    let printed = az.json(&[
        "network",
        "nic",
        "show-effective-route-table",
        "--subscription",
        &subscription,
        "--resource-group",
        &group,
        "--name",
        nic["name"].as_str().unwrap(),
    ]);
    let held = reader.effective_routes(nic_id);
    assert_eq!(printed["value"], held["value"]);
    // The spoke's own table sends everything to an appliance: a user route the CLI shows.
    assert!(
        printed["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|route| route["source"] == "User"
                && route["nextHopType"] == "VirtualAppliance"
                && route["state"] == "Active"),
        "{printed}"
    );

    // hubspoke plan --snapshot of the first three lists.
    assert_plans_alike(&dir, &state, &listed_folder);
    drop(sim);
    std::fs::remove_dir_all(&dir).unwrap();
}
