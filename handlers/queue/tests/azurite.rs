//! The queue client against real Azurite (`--oauth basic`, HTTPS) with tokens from the
//! simulator's managed identity endpoint: the same credential path as production. Needs Azurite
//! under `tests/node_modules` (`npm ci --prefix tests`, done by `scripts/test`); without it these
//! tests fail, naming that step.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hubspoke_queue::azurite::{Azurite, AzuriteError};
use hubspoke_queue::message::{decode_text, MessageEncoding};
use hubspoke_queue::{QueueError, QueueService, StorageSettings};
use hubspoke_sim::{SimConfig, SimHandle};
use serde_json::json;

/// Azurite, which must be installed: a test never passes without the part it tests.
async fn azurite() -> Azurite {
    match Azurite::start().await {
        Ok(azurite) => azurite,
        Err(error) => panic!("{error}"),
    }
}

struct Setup {
    sim: SimHandle,
    azurite: Azurite,
    _dir: tempfile::TempDir,
    settings: StorageSettings,
}

async fn setup() -> Setup {
    let azurite = azurite().await;
    let sim = hubspoke_sim::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    azurite.write_ca_bundle(&bundle, &[]).unwrap();
    let mut env = sim.env();
    env.extend([
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
    let settings = StorageSettings::from_lookup("AzureWebJobsStorage", |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    Setup {
        sim,
        azurite,
        _dir: dir,
        settings,
    }
}

#[tokio::test]
async fn messages_round_trip_through_azurite_with_a_managed_identity_token() {
    let setup = setup().await;
    let service = QueueService::connect(&setup.settings).unwrap();
    let queue = service.queue("hubspoke-outcomes").unwrap();
    assert!(queue.create_if_missing().await.unwrap(), "created");
    assert!(!queue.create_if_missing().await.unwrap(), "already there");

    let outcome = json!({"schema": "hubspoke.outcome/v1", "hubs": [{"status": "unchanged"}]});
    let sent = queue
        .send_output(&json!([outcome, {"second": true}]), MessageEncoding::Base64)
        .await
        .unwrap();
    assert_eq!(sent.len(), 2, "one message per array element");

    let peeked = queue.peek(32).await.unwrap();
    assert_eq!(peeked.len(), 2);
    let decoded = decode_text(&peeked[0].text);
    assert!(decoded.was_base64);
    assert_eq!(
        decoded.text().unwrap(),
        "{\n  \"schema\": \"hubspoke.outcome/v1\",\n  \"hubs\": [\n    {\n      \"status\": \"unchanged\"\n    }\n  ]\n}"
    );

    assert_eq!(queue.approximate_count().await.unwrap(), 2);
    let received = queue.receive(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].dequeue_count, 1);
    // A received message is invisible to a peek, and still in the count until it is deleted.
    assert_eq!(queue.peek(32).await.unwrap().len(), 1);
    assert_eq!(queue.approximate_count().await.unwrap(), 2);
    assert!(received[0].insertion_time.is_some());
    // Made visible again at once, it is received again with a higher dequeue count.
    let updated = queue
        .update_visibility(&received[0].id, &received[0].pop_receipt, Duration::ZERO)
        .await
        .unwrap();
    assert_ne!(updated.pop_receipt, received[0].pop_receipt);
    let error = queue
        .delete(&received[0].id, &received[0].pop_receipt)
        .await
        .unwrap_err();
    assert!(
        error.is_message_gone(),
        "the old receipt no longer works: {error}"
    );
    let again = queue.receive(32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 2, "both messages are visible");
    let same = again.iter().find(|m| m.id == received[0].id).unwrap();
    assert_eq!(same.dequeue_count, 2);
    queue.delete(&same.id, &same.pop_receipt).await.unwrap();
    let other = again.iter().find(|m| m.id != received[0].id).unwrap();
    queue
        .update_visibility(&other.id, &other.pop_receipt, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queue.peek(32).await.unwrap().len(), 1);
    assert_eq!(queue.approximate_count().await.unwrap(), 1);
    // The token came from the simulator's identity endpoint; Azurite logged nothing alarming.
    assert!(
        !setup.azurite.output().contains("Error"),
        "{}",
        setup.azurite.output()
    );
    setup.sim.shutdown().await;
}

#[tokio::test]
async fn a_message_over_64_kib_is_refused_before_sending() {
    let setup = setup().await;
    let queue = QueueService::connect(&setup.settings)
        .unwrap()
        .queue("too-large")
        .unwrap();
    queue.create_if_missing().await.unwrap();
    let big = json!({"text": "x".repeat(48 * 1024)});
    let error = queue
        .send_output(&big, MessageEncoding::Base64)
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::TooLarge { .. }), "{error}");
    assert!(queue.peek(1).await.unwrap().is_empty(), "nothing was sent");
    setup.sim.shutdown().await;
}

/// What Azurite `--oauth basic` checks, verified on the wire with hand-made tokens.
#[tokio::test]
async fn azurite_checks_the_token_audience_and_issuer() {
    let setup = setup().await;
    let http = reqwest::Client::builder()
        .tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(setup.azurite.cert_pem().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let url = format!("{}?comp=list", setup.azurite.queue_service_url());
    let status = |token: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("x-ms-version", "2025-11-05")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let storage = hubspoke_sim::identity::mint_token("oid", "client", "https://storage.azure.com");
    assert_eq!(status(storage).await, 200);
    // An ARM token (the simulator's default audience) is refused, as is a token that is not a
    // JWT: 403 AuthenticationFailed, as Azure Storage answers.
    let arm = setup.sim.token_for("oid");
    assert_eq!(status(arm).await, 403);
    assert_eq!(status("not-a-jwt".to_string()).await, 403);
    setup.sim.shutdown().await;
}

#[tokio::test]
async fn azurite_missing_is_a_distinct_result() {
    let dir = tempfile::tempdir().unwrap();
    let error = Azurite::start_from(dir.path()).await.unwrap_err();
    assert!(
        matches!(error, AzuriteError::NotInstalled { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("npm ci --prefix tests"));
}

#[tokio::test]
async fn a_wrong_sas_is_refused_and_never_printed() {
    let setup = setup().await;
    let url = format!(
        "{}?sv=2025-11-05&ss=q&srt=sco&sp=rl&se=2099-01-01T00:00:00Z&sig=NOTTHESECRET%3D",
        setup.azurite.queue_service_url()
    );
    let bundle = setup.settings.ca_cert.clone().unwrap();
    let settings = StorageSettings::from_url("--queue-url", &url, |name| {
        (name == "HUBSPOKE_CA_CERT").then(|| bundle.display().to_string())
    })
    .unwrap();
    assert!(!format!("{settings:?}").contains("NOTTHESECRET"));
    let queue = QueueService::connect(&settings)
        .unwrap()
        .queue("q-sas")
        .unwrap();
    let error = queue.peek(1).await.unwrap_err();
    assert_eq!(error.status(), Some(403), "{error}");
    assert!(!error.to_string().contains("NOTTHESECRET"), "{error}");
    setup.sim.shutdown().await;
}
