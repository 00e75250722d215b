//! Queue triggers and queue outputs against real Azurite (`--oauth basic`, HTTPS), with storage
//! tokens from the simulator's managed identity endpoint, as in production. Needs Azurite under
//! `tests/node_modules` (`scripts/test` installs it); without it these tests fail, naming that
//! step.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{http, unquote, App, Recorder};
use hubspoke_queue::azurite::Azurite;
use hubspoke_queue::message::decode_text;
use hubspoke_queue::{MessageEncoding, Queue, QueueService, StorageSettings};
use serde_json::{json, Value};

struct Storage {
    _azurite: Azurite,
    sim: hubspoke_sim::SimHandle,
    _dir: tempfile::TempDir,
    settings: Vec<(String, String)>,
    service: QueueService,
}

async fn storage() -> Storage {
    let azurite = match Azurite::start().await {
        Ok(azurite) => azurite,
        Err(error) => panic!("{error}"),
    };
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
            "AzureWebJobsStorage__credential".to_string(),
            "managedidentity".to_string(),
        ),
        ("HUBSPOKE_CA_CERT".to_string(), bundle.display().to_string()),
    ]);
    let lookup = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let service = QueueService::connect(
        &StorageSettings::from_lookup("AzureWebJobsStorage", lookup).unwrap(),
    )
    .unwrap();
    Storage {
        _azurite: azurite,
        sim,
        _dir: dir,
        settings,
        service,
    }
}

fn functions() -> Vec<(&'static str, Value)> {
    let outcome = json!({"type": "queue", "direction": "out", "name": "outcome", "queueName": "hubspoke-outcomes", "connection": "AzureWebJobsStorage"});
    let work = json!({"type": "queue", "direction": "out", "name": "work", "queueName": "hubspoke-work", "connection": "AzureWebJobsStorage"});
    vec![
        (
            "Backfill",
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["post"], "route": "backfill"},
                {"type": "http", "direction": "out", "name": "res"},
                outcome.clone(), work
            ]}),
        ),
        (
            "ReconcileHub",
            json!({"bindings": [
                {"type": "queueTrigger", "direction": "in", "name": "workItem", "queueName": "hubspoke-work", "connection": "AzureWebJobsStorage"},
                outcome
            ]}),
        ),
    ]
}

/// Messages of a queue as text (decoded from base64).
async fn texts(queue: &Queue) -> Vec<String> {
    let peeked = match queue.peek(32).await {
        Ok(peeked) => peeked,
        Err(e) if e.code() == Some("QueueNotFound") => Vec::new(),
        Err(e) => panic!("{e}"),
    };
    peeked
        .iter()
        .map(|m| decode_text(&m.text).text().unwrap().to_string())
        .collect()
}

/// Polls a queue until it holds `count` messages, for at most 20 s: the host writes outputs,
/// deletes and poisons after the invocation ended, so no record tells the test when.
async fn until_count(queue: &Queue, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let texts = texts(queue).await;
        if texts.len() == count || Instant::now() > deadline {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn outputs_are_written_as_the_host_writes_them_and_trigger_the_queue_function() {
    let storage = storage().await;
    let recorder = Recorder::start().await;
    let app = App::new(&functions(), json!({}));
    app.set_plan(json!({
        "Backfill": {"body": {
            "Outputs": {
                "res": {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": {"queued": 1}},
                "outcome": {"schema": "hubspoke.outcome/v1", "status": "queued", "started": "2026-11-30T02:26:30.1200Z"},
                "work": [{"hub": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub", "id": "w1"}],
                "undeclared": {"ignored": true}
            },
            "Logs": ["queued"], "ReturnValue": null}},
        "ReconcileHub": {"body": {"Outputs": {"outcome": {"schema": "hubspoke.outcome/v1", "status": "unchanged"}}}}
    }));
    let host = app.start(&recorder, &storage.settings).await;
    let response = http()
        .post(format!("{}/api/backfill?code=function-key", host.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "{\n  \"queued\": 1\n}");
    recorder.invocation().await;

    // The work item triggered ReconcileHub (the write woke the listener at once).
    let record = recorder.invocation().await;
    assert_eq!(record["path"], "/ReconcileHub");
    let text = unquote(&record["body"]["Data"]["workItem"]);
    assert_eq!(
        text,
        "{\n  \"hub\": \"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub\",\n  \"id\": \"w1\"\n}",
        "the message text, indented by the host, double-encoded"
    );
    let metadata = &record["body"]["Metadata"];
    assert_eq!(metadata["DequeueCount"], "1");
    assert!(metadata["PopReceipt"].as_str().unwrap().starts_with('"'));
    assert!(metadata["InsertionTime"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    assert!(metadata["NextVisibleTime"].is_string());
    assert!(metadata["ExpirationTime"].is_string());
    // The host copies the JSON message's top-level properties into Metadata, ignoring case: the
    // work item's "id" replaces the message's "Id".
    assert_eq!(metadata["id"], "\"w1\"");
    assert!(metadata.get("Id").is_none());
    assert_eq!(metadata["sys"]["MethodName"], "ReconcileHub");

    let outcomes = storage.service.queue("hubspoke-outcomes").unwrap();
    let written = until_count(&outcomes, 2).await;
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written.contains(
        &"{\n  \"schema\": \"hubspoke.outcome/v1\",\n  \"status\": \"queued\",\n  \"started\": \"2026-11-30T02:26:30.12Z\"\n}".to_string()
    ), "{written:?}");
    // Base64 on the wire.
    let raw = outcomes.peek(1).await.unwrap();
    assert!(base64::engine::general_purpose::STANDARD
        .decode(&raw[0].text)
        .is_ok());
    // The processed work item is gone.
    let work = storage.service.queue("hubspoke-work").unwrap();
    assert!(until_count(&work, 0).await.is_empty());
    host.shutdown(Duration::from_secs(10)).await;
    storage.sim.shutdown().await;
}

#[tokio::test]
async fn a_work_item_that_always_fails_lands_in_the_poison_queue_after_5_attempts() {
    let storage = storage().await;
    let recorder = Recorder::start().await;
    let app = App::new(&functions(), json!({}));
    app.set_plan(
        json!({"ReconcileHub": {"status": 500, "body": {"Outputs": {"outcome": {"lost": true}}}}}),
    );
    let host = app.start(&recorder, &storage.settings).await;
    let work = storage.service.queue("hubspoke-work").unwrap();
    work.send_output(&json!({"hub": "h1"}), MessageEncoding::Base64)
        .await
        .unwrap();
    for attempt in 1..=5 {
        let record = recorder.invocation().await;
        assert_eq!(record["path"], "/ReconcileHub");
        assert_eq!(
            record["body"]["Metadata"]["DequeueCount"],
            attempt.to_string()
        );
    }
    let poison = storage.service.queue("hubspoke-work-poison").unwrap();
    let poisoned = until_count(&poison, 1).await;
    assert_eq!(poisoned, ["{\n  \"hub\": \"h1\"\n}"]);
    assert!(texts(&work).await.is_empty(), "moved, not copied");
    // A failed invocation's outputs are discarded.
    let outcomes = storage.service.queue("hubspoke-outcomes").unwrap();
    assert!(!outcomes.exists().await.unwrap() || texts(&outcomes).await.is_empty());
    assert!(
        recorder.pending_invocations().await.is_empty(),
        "no sixth attempt"
    );
    host.shutdown(Duration::from_secs(10)).await;
    storage.sim.shutdown().await;
}

#[tokio::test]
async fn a_handler_killed_mid_invocation_loses_no_work_item() {
    let storage = storage().await;
    let recorder = Recorder::start().await;
    let app = App::new(&functions(), json!({}));
    app.set_plan(json!({"ReconcileHub": {"exit_on_dequeue_count": "1"}}));
    let host = app.start(&recorder, &storage.settings).await;
    recorder.next("started", Duration::from_secs(20)).await;
    let work = storage.service.queue("hubspoke-work").unwrap();
    work.create_if_missing().await.unwrap();
    work.send_output(&json!({"hub": "h2"}), MessageEncoding::Base64)
        .await
        .unwrap();
    let first = recorder.invocation().await;
    assert_eq!(first["body"]["Metadata"]["DequeueCount"], "1");
    // The handler died; once restarted it gets the same work item again.
    recorder.next("started", Duration::from_secs(20)).await;
    let second = recorder.invocation().await;
    assert_eq!(second["body"]["Metadata"]["DequeueCount"], "2");
    assert_eq!(
        unquote(&second["body"]["Data"]["workItem"]),
        "{\n  \"hub\": \"h2\"\n}"
    );
    assert!(
        until_count(&work, 0).await.is_empty(),
        "deleted once it succeeded"
    );
    host.shutdown(Duration::from_secs(10)).await;
    storage.sim.shutdown().await;
}

/// The demo's fallback: the simulator's own queue service instead of Azurite, same host.
#[tokio::test]
async fn the_simulators_queue_service_serves_the_host_as_azurite_does() {
    let sim = hubspoke_sim::start(hubspoke_sim::SimConfig {
        tls: true,
        queues: true,
        ..hubspoke_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let settings = sim.env();
    let service = QueueService::connect(
        &StorageSettings::from_lookup("AzureWebJobsStorage", |name| {
            settings
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap(),
    )
    .unwrap();
    let recorder = Recorder::start().await;
    let app = App::new(&functions(), json!({}));
    app.set_plan(json!({"ReconcileHub": {"status": 500}}));
    let host = app.start(&recorder, &settings).await;
    let work = service.queue("hubspoke-work").unwrap();
    work.send_output(&json!({"hub": "h3"}), MessageEncoding::Base64)
        .await
        .unwrap();
    for attempt in 1..=5 {
        let record = recorder.invocation().await;
        assert_eq!(
            record["body"]["Metadata"]["DequeueCount"],
            attempt.to_string()
        );
    }
    let poison = service.queue("hubspoke-work-poison").unwrap();
    assert_eq!(until_count(&poison, 1).await, ["{\n  \"hub\": \"h3\"\n}"]);
    assert!(texts(&work).await.is_empty());
    host.shutdown(Duration::from_secs(10)).await;
    sim.shutdown().await;
}
