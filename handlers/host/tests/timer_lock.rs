//! A timer runs on one instance at a time: two hosts of one app on one Azurite (blob service,
//! `--oauth basic`, tokens from the simulator's managed identity endpoint) fire a timer of every
//! second from one of them only, the holder of the timer's listener lock; the admin route still
//! runs it on the other. And each host gives its handler an instance id of its own. Needs Azurite
//! under `tests/node_modules` (`npm ci --prefix tests`); without it this test fails, naming that
//! step.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{http, App, Recorder};
use hubspoke_queue::azurite::Azurite;
use hubspoke_queue::{BlobService, Lease, StorageSettings};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_fire_a_timer_from_the_lock_holder_only() {
    let azurite = Azurite::start()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let sim = hubspoke_sim::start(hubspoke_sim::SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    azurite.write_ca_bundle(&bundle, &[]).unwrap();
    let mut settings = sim.env();
    settings.extend([
        (
            "AzureWebJobsStorage__queueServiceUri".to_string(),
            azurite.queue_service_url(),
        ),
        (
            "AzureWebJobsStorage__blobServiceUri".to_string(),
            azurite.blob_service_url(),
        ),
        (
            "AzureWebJobsStorage__credential".to_string(),
            "managedidentity".to_string(),
        ),
        ("HUBSPOKE_CA_CERT".to_string(), bundle.display().to_string()),
        (
            "AzureFunctionsWebHost__hostid".to_string(),
            "the-app".to_string(),
        ),
    ]);
    let timer = json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "* * * * * *"}]});
    let app = App::new(&[("DriftCheck", timer)], json!({}));
    let (first_recorder, second_recorder) = (Recorder::start().await, Recorder::start().await);
    let first = app.start(&first_recorder, &settings).await;
    let second = app.start(&second_recorder, &settings).await;
    assert_ne!(first.instance_id(), second.instance_id());

    // The lock is a blob lease in the host's container, as the real host's listener lock.
    let storage = StorageSettings::from_lookup("AzureWebJobsStorage", |name| {
        settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let lock = BlobService::connect(&storage)
        .unwrap()
        .container("azure-webjobs-hosts")
        .unwrap()
        .blob("locks/the-app/Host.Functions.DriftCheck.Listener");
    let (holder, other) = tokio::select! {
        _ = first_recorder.invocation() => (&first_recorder, &second_recorder),
        _ = second_recorder.invocation() => (&second_recorder, &first_recorder),
    };
    for _ in 0..3 {
        holder.invocation().await;
    }
    assert_eq!(
        other.pending_invocations().await.len(),
        0,
        "the other instance ran no occurrence of the schedule"
    );
    let properties = lock.properties().await.unwrap().unwrap();
    assert_eq!(properties.lease, Lease::Leased);
    assert!(
        [first.instance_id(), second.instance_id()]
            .contains(&properties.metadata["functioninstance"].as_str()),
        "{properties:?}"
    );

    // A manual run fires where it is asked, lock or not.
    let other_host = if std::ptr::eq(other, &first_recorder) {
        &first
    } else {
        &second
    };
    let answer = http()
        .post(format!("{}/admin/functions/DriftCheck", other_host.url()))
        .header("x-functions-key", "master-key")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    other.next("invocation", Duration::from_secs(20)).await;

    first.shutdown(Duration::from_secs(5)).await;
    second.shutdown(Duration::from_secs(5)).await;
}
