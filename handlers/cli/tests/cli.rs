//! The `hubspoke` binary as a user runs it: real processes, real sockets on 127.0.0.1.
mod support;

use std::process::{Command, Stdio};

use support::{article, run, start_sim, temp_dir, BIN};

#[test]
fn a_malformed_snapshot_is_an_error_naming_the_file_and_the_json_path() {
    let dir = temp_dir("malformed");
    let path = dir.join("bad.json");
    let mut snapshot = article().snapshot();
    snapshot["virtualNetworks"][1]["properties"]["addressSpace"]["addressPrefixes"][0] =
        "10.300.0.0/16".into();
    std::fs::write(&path, snapshot.to_string()).expect("write");
    let hub = article().vnet_id("hub");
    let output = run(
        &[
            "plan",
            "--snapshot",
            path.to_str().unwrap_or_default(),
            "--hub",
            &hub,
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing is printed as a plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(
        stderr.contains("$.virtualNetworks[1].properties.addressSpace.addressPrefixes[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("CIDR"), "{stderr}");

    std::fs::write(&path, "{\"virtualNetworks\": [").expect("write");
    let output = run(
        &[
            "plan",
            "--snapshot",
            path.to_str().unwrap_or_default(),
            "--hub",
            &hub,
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));

    let output = run(
        &[
            "plan",
            "--snapshot",
            path.to_str().unwrap_or_default(),
            "--hub",
            "/subscriptions/x",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("HUBSPOKE_HUBS"));
}

#[test]
fn plan_from_a_snapshot_prints_text_and_json() {
    let dir = temp_dir("plan");
    let path = dir.join("estate.json");
    std::fs::write(&path, article().snapshot().to_string()).expect("write");
    let hub = article().vnet_id("hub");
    let text = run(
        &[
            "plan",
            "--snapshot",
            path.to_str().unwrap_or_default(),
            "--hub",
            &hub,
        ],
        &[],
    );
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("+ create_peering") && text.contains("Plan: "),
        "{text}"
    );
    let json = run(
        &[
            "plan",
            "--snapshot",
            path.to_str().unwrap_or_default(),
            "--hub",
            &hub,
            "--output",
            "json",
        ],
        &[],
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json output");
    assert_eq!(value["hubs"][0]["status"], "changes_pending");
}

/// The Azure CLI's output of one estate and the same estate in ARM's JSON
/// (`tests/fixtures/az-cli/`).
fn az_cli_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/fixtures/az-cli/{name}"))
}

const AZ_CLI_HUB: &str = "/subscriptions/4f1c2b3a-0000-4000-8000-00000000a001/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub";

fn json_plan(snapshots: &[&std::path::Path]) -> serde_json::Value {
    let mut args = vec!["plan".to_owned()];
    for snapshot in snapshots {
        args.push("--snapshot".into());
        args.push(snapshot.to_string_lossy().into_owned());
    }
    args.extend(["--hub", AZ_CLI_HUB, "--output", "json"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(&args, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json plan")
}

#[test]
fn plan_reads_the_azure_cli_output_from_repeated_snapshots_or_a_folder() {
    let files = ["vnets.json", "route-tables.json", "gateways.json"].map(az_cli_fixture);
    let expected = json_plan(&[&az_cli_fixture("arm-rest-same-estate.json")]);
    assert_eq!(expected["hubs"][0]["status"], "changes_pending");

    let repeated = json_plan(&files.each_ref().map(|path| path.as_path()));
    assert_eq!(repeated, expected);

    // A folder: its *.json files, in name order; anything else in it is left alone.
    let dir = temp_dir("az-cli-folder");
    for file in &files {
        std::fs::copy(file, dir.join(file.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(dir.join("README.md"), "az network ... -o json > *.json\n").expect("write");
    assert_eq!(json_plan(&[&dir]), expected);

    // A folder and a file together; an error names the file and the path in it.
    let extra = temp_dir("az-cli-extra").join("nsg.json");
    std::fs::write(
        &extra,
        r#"[{"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n", "type": "Microsoft.Network/networkSecurityGroups"}]"#,
    )
    .expect("write");
    let output = run(
        &[
            "plan",
            "--snapshot",
            dir.to_str().unwrap_or_default(),
            "--snapshot",
            extra.to_str().unwrap_or_default(),
            "--hub",
            AZ_CLI_HUB,
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing is printed as a plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nsg.json: at $[0].type"), "{stderr}");
    assert!(stderr.contains("networkSecurityGroups/n"), "{stderr}");

    // A folder without a .json file is an error, not an empty estate.
    let empty = temp_dir("az-cli-empty");
    let output = run(
        &[
            "plan",
            "--snapshot",
            empty.to_str().unwrap_or_default(),
            "--hub",
            AZ_CLI_HUB,
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("has no .json file"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn two_reconciles_at_once_end_in_the_same_correct_state() {
    let dir = temp_dir("race");
    let seed = dir.join("seed.json");
    let estate = article();
    std::fs::write(&seed, estate.snapshot().to_string()).expect("write");
    let sim = start_sim(&seed, &dir);
    let mut env = sim.env.clone();
    env.push(("HUBSPOKE_HUBS".into(), estate.vnet_id("hub")));
    env.push(("HUBSPOKE_ARM_MAX_ATTEMPTS".into(), "12".into()));

    let spawn = || {
        let mut command = Command::new(BIN);
        command
            .args(["reconcile", "--output", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &env {
            command.env(key, value);
        }
        command.spawn().expect("reconcile starts")
    };
    let first = spawn();
    let second = spawn();
    let outputs = [
        first.wait_with_output().expect("first ends"),
        second.wait_with_output().expect("second ends"),
    ];
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // A third pass finds a converged estate: nothing to change, nothing written.
    let check = run(&["reconcile", "--output", "json"], &env);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&check.stdout).expect("json result");
    assert_eq!(result["hubs"][0]["status"], "unchanged", "{result:#}");
    assert_eq!(result["requests"]["writes"], 0);
    let plan = run(&["plan", "--output", "json"], &env);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("json plan");
    assert_eq!(plan["hubs"][0]["changes"].as_array().map(Vec::len), Some(0));
}

#[test]
fn the_demo_tells_the_zero_touch_story_and_ends_converged() {
    let output = run(&["demo"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        // Events arrive from the simulator's Event Grid delivery and queue the hub.
        "event  write rg-network / spoke1 / spoke1-to-hub → hub rg-network / hub queued",
        // Passes say what they changed and why.
        "✓ create_peering rg-network / hub / hubspoke-spoke1",
        "✓ associate_route_table rg-network / spoke1 / workload",
        // The renumbered spoke is synced and routed.
        "✓ sync_peering rg-network / hub / hubspoke-spoke2",
        "hubspoke-10-20-0-0-16",
        // The deleted spoke's routes leave every table; its dangling peering is reported.
        "peering_disconnected rg-network / hub / hubspoke-spoke3",
        "useRemoteGateways=true",
        "TIME                 FUNCTION",
        "Converged: a plan of the estate as it now stands has nothing left to do.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("✗"), "no change failed:\n{stdout}");
}

#[test]
fn without_a_hub_the_error_says_how_to_give_one() {
    let output = run(&["plan", "--snapshot", "whatever.json"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--hub") && stderr.contains("HUBSPOKE_HUBS"),
        "{stderr}"
    );
}
