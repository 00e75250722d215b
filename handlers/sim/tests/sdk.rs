//! The official Azure SDK for Python (`azure-mgmt-network` + `azure-identity`) drives the
//! simulator over HTTPS with the managed identity credential: `tests/sdk/azure_sdk_check.py`.
//!
//! The Python interpreter comes from `HUBSPOKE_TEST_PYTHON` (exported by `scripts/test`, which
//! creates `.venv` and installs the pinned packages). Without it the test fails, naming that
//! step.
#![allow(clippy::unwrap_used)]
use std::process::Command;

use hubspoke_sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_drives_the_simulator_end_to_end() {
    let python = match std::env::var("HUBSPOKE_TEST_PYTHON") {
        Ok(python) if !python.is_empty() => python,
        _ => panic!(
            "HUBSPOKE_TEST_PYTHON is not set: run the tests through scripts/test, whose step \"python sdk for the simulator tests\" installs the Azure SDK into .venv and sets it"
        ),
    };
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        page_size: 2,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/azure_sdk_check.py");
    let mut command = Command::new(&python);
    command
        .arg(script)
        .envs(sim.env())
        .env("SUBSCRIPTION_ID", "00000000-0000-0000-0000-00000000cafe")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    // The SDK's requests all reached the simulator over TLS with a token.
    let requests = sim.requests();
    assert!(requests
        .iter()
        .any(|r| r.method == "PUT" && r.path.contains("syncRemoteAddressSpace=true")));
    assert!(requests.iter().all(|r| r.status != 401));
    sim.shutdown().await;
}
