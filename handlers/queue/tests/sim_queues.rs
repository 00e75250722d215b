//! The simulator's in-memory queue service (`SimConfig::queues`) through the official client
//! (`azure_storage_queue`, via this crate) with tokens from the simulator's managed identity
//! endpoint: what the demo uses where Azurite is not installed. The same operations as against
//! Azurite (`azurite.rs`), with the same answers.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hubspoke_queue::message::{decode_text, MessageEncoding};
use hubspoke_queue::{QueueService, StorageSettings};
use hubspoke_sim::{SimConfig, SimHandle};
use serde_json::json;

async fn sim_and_service() -> (SimHandle, QueueService) {
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        queues: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let env = sim.env();
    // Everything a Functions app needs comes from the simulator's settings.
    let settings = StorageSettings::from_lookup("AzureWebJobsStorage", |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    assert_eq!(Some(settings.service_url.clone()), sim.queue_service_url());
    (sim, QueueService::connect(&settings).unwrap())
}

#[tokio::test]
async fn the_official_client_works_against_the_simulated_queues() {
    let (sim, service) = sim_and_service().await;
    let queue = service.queue("hubspoke-outcomes").unwrap();
    assert!(!queue.exists().await.unwrap());
    assert!(queue.create_if_missing().await.unwrap());
    assert!(!queue.create_if_missing().await.unwrap());
    assert!(queue.exists().await.unwrap());

    let sent = queue
        .send_output(&json!([{"a": "<&>"}, {"b": 2}]), MessageEncoding::Base64)
        .await
        .unwrap();
    assert_eq!(sent.len(), 2);
    let plain = queue.send_text("plain <text> & more", None).await.unwrap();
    let peeked = queue.peek(32).await.unwrap();
    assert_eq!(peeked.len(), 3);
    assert_eq!(
        decode_text(&peeked[0].text).text().unwrap(),
        "{\n  \"a\": \"<&>\"\n}"
    );
    assert_eq!(
        peeked[2].text, "plain <text> & more",
        "XML escaping round-trips"
    );
    assert_eq!(peeked[2].id, plain.id);
    assert_eq!(peeked[0].dequeue_count, 0);

    let received = queue.receive(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].dequeue_count, 1);
    assert!(received[0].insertion_time.is_some());
    assert!(received[0].next_visible_time.is_some());
    assert_eq!(
        queue.peek(32).await.unwrap().len(),
        2,
        "invisible while received"
    );

    let updated = queue
        .update_visibility(&received[0].id, &received[0].pop_receipt, Duration::ZERO)
        .await
        .unwrap();
    assert_ne!(updated.pop_receipt, received[0].pop_receipt);
    let stale = queue
        .delete(&received[0].id, &received[0].pop_receipt)
        .await
        .unwrap_err();
    assert!(stale.is_message_gone(), "{stale}");
    assert_eq!(stale.code(), Some("PopReceiptMismatch"));

    let again = queue.receive(32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 3);
    let same = again.iter().find(|m| m.id == received[0].id).unwrap();
    assert_eq!(same.dequeue_count, 2);
    for message in &again {
        queue
            .delete(&message.id, &message.pop_receipt)
            .await
            .unwrap();
    }
    assert!(queue.peek(32).await.unwrap().is_empty());
    let gone = queue.delete(&same.id, &same.pop_receipt).await.unwrap_err();
    assert_eq!(gone.code(), Some("MessageNotFound"));

    let missing = service.queue("never-created").unwrap();
    let error = missing.peek(1).await.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(404), Some("QueueNotFound"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_simulated_queues_check_tokens_as_azurite_does() {
    let (sim, _service) = sim_and_service().await;
    let url = format!("{}/q-one", sim.queue_service_url().unwrap());
    let http = reqwest::Client::builder()
        .tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(sim.ca_cert_pem().unwrap().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let status = |token: Option<String>| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let mut request = http.put(&url).header("x-ms-version", "2026-04-06");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response
                    .headers()
                    .get("x-ms-error-code")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }
    };
    assert_eq!(
        status(None).await,
        (401, Some("NoAuthenticationInformation".into()))
    );
    assert_eq!(
        status(Some(sim.token_for("oid"))).await,
        (403, Some("AuthenticationFailed".into())),
        "an ARM token is not a storage token"
    );
    let storage = hubspoke_sim::identity::mint_token("oid", "c", "https://storage.azure.com");
    assert_eq!(status(Some(storage)).await, (201, None));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_simulated_queues_need_tls() {
    let error = hubspoke_sim::start(SimConfig {
        queues: true,
        ..SimConfig::default()
    })
    .await
    .err()
    .unwrap();
    assert!(error.to_string().contains("TLS"), "{error}");
}
