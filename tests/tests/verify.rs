//! `hubspoke verify` and the verification in outcomes, end to end on the local stack: after the
//! demo's estate converges, every pair of spokes is `gateway` and Azure's effective routes of an
//! interface in each spoke agree with the model; a `None` route or a firewall default route
//! added by hand turns exactly the pairs it affects `unreachable` or `appliance`, in the outcome
//! of the pass that follows. Azurite is required (`npm ci --prefix tests`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use hubspoke_core::id::portal_name;
use hubspoke_core::synth::Estate;
use hubspoke_stack::{hubspoke_binary, Options, Stack, Storage};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const CONVERGE: Duration = Duration::from_secs(90);

const FIREWALL: &str = "10.0.1.4";

/// `from -> to` (portal names, without the resource group) to `verdict reason` for every pair
/// listed.
fn pairs(pairs: &Value) -> BTreeMap<String, String> {
    let name = |id: &Value| {
        portal_name(id.as_str().unwrap())
            .rsplit(" / ")
            .next()
            .unwrap()
            .to_string()
    };
    pairs
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let reason = pair["reason"]
                .as_str()
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            (
                format!("{} -> {}", name(&pair["from"]), name(&pair["to"])),
                format!("{}{reason}", pair["verdict"].as_str().unwrap()),
            )
        })
        .collect()
}

/// Runs `hubspoke verify ARGS --output json` with the app's settings: its exit code and JSON.
async fn verify(stack: &Stack, args: &[&str]) -> (i32, Value) {
    let output = tokio::process::Command::new(hubspoke_binary().unwrap())
        .arg("verify")
        .args(args)
        .args(["--output", "json"])
        .envs(stack.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let document = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (output.status.code().unwrap_or(-1), document)
}

/// A network interface in `spoke`'s workload subnet, created by a user.
async fn add_interface(stack: &Stack, spoke: &str) {
    let estate = &stack.estate;
    let nic = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{spoke}-nic",
        estate.subscription, estate.resource_group
    );
    let subnet = format!("{}/subnets/workload", estate.vnet_id(spoke));
    let body = json!({"location": estate.location, "properties": {"ipConfigurations": [
        {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}});
    stack.landing_zone.put(&nic, None, &body).await.unwrap();
}

/// A route written by hand into table `table`.
async fn add_route(
    stack: &Stack,
    table: &str,
    name: &str,
    prefix: &str,
    hop: &str,
    ip: Option<&str>,
) {
    let mut properties = json!({"addressPrefix": prefix, "nextHopType": hop});
    if let Some(ip) = ip {
        properties["nextHopIpAddress"] = json!(ip);
    }
    let path = format!("{}/routes/{name}", stack.estate.table_id(table));
    stack
        .landing_zone
        .put(&path, None, &json!({ "properties": properties }))
        .await
        .unwrap();
}

/// An outcome's timestamp. Compared as times, not text: the host's Json.NET drops the trailing
/// zeros of the fraction (`…:37.41Z`), so `…:37.418Z` sorts before it as text.
fn time_of(value: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()
}

/// The verification of the first `ReconcileHub` pass that started after the event of the write
/// to `subject` (a resource id's end) was queued, among the outcomes after the `seen` first.
async fn next_verification(stack: &Stack, seen: usize, subject: &str) -> Value {
    let queued_at = |outcomes: &[Value]| -> Option<OffsetDateTime> {
        outcomes[seen..]
            .iter()
            .filter(|o| o["function"] == "OnNetworkEvent" && o["status"] == "queued")
            .find(|o| {
                o["trigger"]["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["subject"].as_str().unwrap_or("").ends_with(subject))
            })
            .and_then(|o| time_of(&o["end_time"]))
    };
    let pass_after = |outcomes: &[Value]| -> Option<Value> {
        let queued = queued_at(outcomes)?;
        outcomes[seen..]
            .iter()
            .find(|o| {
                o["function"] == "ReconcileHub"
                    && time_of(&o["start_time"]).is_some_and(|start| start >= queued)
            })
            .cloned()
    };
    let outcomes = match stack
        .wait_outcomes(CONVERGE, |o| pass_after(o).is_some())
        .await
    {
        Ok(outcomes) => outcomes,
        Err(error) => {
            let outcomes = stack.outcomes().await.unwrap();
            let listed: Vec<String> = outcomes[seen..]
                .iter()
                .map(|o| {
                    format!(
                        "{} {} {} {} {}",
                        o["function"],
                        o["status"],
                        o["start_time"],
                        o["end_time"],
                        o["trigger"]["events"]
                    )
                })
                .collect();
            panic!("{error}\n{}", listed.join("\n"));
        }
    };
    pass_after(&outcomes).unwrap()["hubs"][0]["verification"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_is_verified_live_and_a_hand_made_route_turns_exactly_its_pairs() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    let mut options = Options::new(estate);
    options.storage = Storage::for_tests();
    options
        .settings
        .push(("HUBSPOKE_VERIFY_EFFECTIVE".into(), "all".into()));
    let stack = Stack::start(options).await.unwrap();
    for (name, n) in [("spoke1", 1), ("spoke2", 2), ("spoke3", 3)] {
        stack
            .add_spoke(name, &format!("10.{n}.0.0/16"), &format!("10.{n}.0.0/24"))
            .await
            .unwrap();
    }
    stack.wait_converged(CONVERGE).await.unwrap();
    for spoke in ["spoke1", "spoke2", "spoke3"] {
        add_interface(&stack, spoke).await;
    }

    // Converged: every pair through the gateway, and Azure agrees with the model.
    let (code, document) = verify(&stack, &["--effective", "all"]).await;
    let hub = &document["hubs"][0];
    assert_eq!(code, 0, "{document:#}");
    let all: BTreeMap<String, String> = pairs(&hub["pairs"]);
    assert_eq!(all.len(), 6, "{all:#?}");
    assert!(all.values().all(|v| v == "gateway"), "{all:#?}");
    assert_eq!(hub["effective"]["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(hub["effective"]["disagreements"], json!([]));
    for pair in hub["pairs"].as_array().unwrap() {
        assert_eq!(pair["asymmetric"], false);
        assert_eq!(pair["detail"], Value::Null);
    }

    // Backfill answers with the verification too.
    let key = stack.host.keys().function.clone();
    let (status, body) = stack
        .backfill("dryRun=true&verify=true", Some(&key))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body:#}");
    let answered = &body["verification"][stack.hub().to_string()];
    assert_eq!(answered["counts"]["gateway"], 6, "{body:#}");
    assert_eq!(answered["transit_pairs_fine"], true);

    // A foreign None route inside spoke2's space, in spoke1's table: spoke1 -> spoke2 only.
    let seen = stack.outcomes().await.unwrap().len();
    add_route(
        &stack,
        "hubspoke-rt-spoke1",
        "block",
        "10.2.5.0/24",
        "None",
        None,
    )
    .await;
    let verification = next_verification(&stack, seen, "/routes/block").await;
    assert_eq!(verification["counts"]["unreachable"], 1, "{verification:#}");
    assert_eq!(verification["counts"]["gateway"], 5);
    assert_eq!(
        pairs(&verification["pairs"]),
        BTreeMap::from([(
            "spoke1 -> spoke2".into(),
            "unreachable route_conflict".into()
        )])
    );
    let detail = &verification["pairs"][0]["detail"];
    assert_eq!(detail["prefix"], "10.2.5.0/24");
    assert_eq!(detail["route"]["name"], "block");
    assert_eq!(verification["effective"]["interfaces_checked"], 3);
    assert_eq!(verification["effective"]["disagreements"], json!([]));

    // A firewall default route in spoke3's table: hubspoke takes its routes out of the way
    // (rule 9b) and the routes to spoke3 (rule 8); spoke3's traffic goes to the firewall.
    let seen = stack.outcomes().await.unwrap().len();
    add_route(
        &stack,
        "hubspoke-rt-spoke3",
        "to-firewall",
        "0.0.0.0/0",
        "VirtualAppliance",
        Some(FIREWALL),
    )
    .await;
    let verification = next_verification(&stack, seen, "/routes/to-firewall").await;
    assert_eq!(
        verification["observed_after_writes"], true,
        "{verification:#}"
    );
    assert_eq!(
        pairs(&verification["pairs"]),
        BTreeMap::from([
            (
                "spoke1 -> spoke2".into(),
                "unreachable route_conflict".into()
            ),
            (
                "spoke1 -> spoke3".into(),
                "unreachable route_conflict".into()
            ),
            (
                "spoke2 -> spoke3".into(),
                "unreachable route_conflict".into()
            ),
            (
                "spoke3 -> spoke1".into(),
                "appliance route_to_appliance".into()
            ),
            (
                "spoke3 -> spoke2".into(),
                "appliance route_to_appliance".into()
            ),
        ]),
        "{verification:#}"
    );
    assert_eq!(
        verification["counts"]["gateway"], 1,
        "spoke2 -> spoke1 only"
    );
    assert_eq!(verification["effective"]["disagreements"], json!([]));

    // The command says so too, and exits 1.
    let (code, document) = verify(&stack, &["--effective", "sample"]).await;
    assert_eq!(code, 1, "{document:#}");
    let listed = pairs(&document["hubs"][0]["pairs"]);
    assert_eq!(listed["spoke3 -> spoke1"], "appliance route_to_appliance");
    assert_eq!(listed["spoke2 -> spoke1"], "gateway");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn verify_refuses_effective_routes_from_a_snapshot_and_a_bad_snapshot_with_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("hubspoke-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet("spoke1", &["10.1.0.0/16"], &[("workload", "10.1.0.0/24")]);
    estate.connect_transit("hub", "spoke1");
    estate.vnet("spoke2", &["10.2.0.0/16"], &[("workload", "10.2.0.0/24")]);
    estate.connect_transit("hub", "spoke2");
    let good = dir.join("estate.json");
    std::fs::write(&good, estate.snapshot().to_string()).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"virtualNetworks\": 3}").unwrap();
    let run = |args: Vec<String>| async move {
        let output = tokio::process::Command::new(hubspoke_binary().unwrap())
            .arg("verify")
            .args(&args)
            .env_remove("HUBSPOKE_HUBS")
            .env_remove("HUBSPOKE_VERIFY_EFFECTIVE")
            .output()
            .await
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).to_string()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let hub = estate.vnet_id("hub");
    let snapshot = |file: &std::path::Path| {
        vec![
            "--hub".to_string(),
            hub.clone(),
            "--snapshot".into(),
            file.display().to_string(),
        ]
    };
    // No route is written yet: both pairs are unreachable, and they are transit spokes.
    let (code, text) = run(snapshot(&good)).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("route_missing"), "{text}");
    let (code, text) =
        run([snapshot(&good), vec!["--effective".into(), "all".into()]].concat()).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--snapshot"), "{text}");
    let (code, text) = run(snapshot(&bad)).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("virtualNetworks"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
