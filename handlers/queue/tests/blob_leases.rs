//! The blob client against Azurite's blob service (`--oauth basic`, HTTPS, tokens from the
//! simulator's managed identity endpoint) and against the simulator's own small blob service,
//! with the same expectations: the lease semantics hubspoke's coordination rests on. Needs
//! Azurite under `tests/node_modules` (`npm ci --prefix tests`, done by `scripts/test`); without
//! it the Azurite test fails, naming that step.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use hubspoke_queue::azurite::Azurite;
use hubspoke_queue::{BlobService, Lease, StorageSettings};
use hubspoke_sim::SimConfig;

fn settings(env: &[(String, String)]) -> StorageSettings {
    StorageSettings::from_lookup("AzureWebJobsStorage", |name| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the handler and the host rely on, on any blob service.
async fn leases_behave_as_the_service_documents(blobs: &BlobService) {
    let container = blobs.container("hubspoke-leases").unwrap();
    assert!(container.create_if_missing().await.unwrap());
    assert!(!container.create_if_missing().await.unwrap(), "exists now");

    let blob = container.blob("sub/rg/hub");
    assert_eq!(blob.properties().await.unwrap(), None, "no blob yet");
    let missing = blob.acquire_lease(Duration::from_secs(60)).await;
    assert!(missing.unwrap_err().is_not_found(), "a lease needs a blob");
    assert!(blob.create_if_missing(&BTreeMap::new()).await.unwrap());
    assert!(!blob.create_if_missing(&BTreeMap::new()).await.unwrap());

    // One holder at a time.
    let first = blob
        .acquire_lease(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        blob.acquire_lease(Duration::from_secs(60)).await.unwrap(),
        None,
        "409 LeaseAlreadyPresent"
    );
    let properties = blob.properties().await.unwrap().unwrap();
    assert_eq!(properties.lease, Lease::Leased);
    // Metadata of a leased blob needs the lease: a mark from a non-holder must be a blob of its
    // own.
    let refused = blob
        .set_metadata(&metadata(&[("pass", "p1")]), None)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(412), "{refused}");
    blob.set_metadata(
        &metadata(&[("pass", "p1"), ("instance", "i1")]),
        Some(&first),
    )
    .await
    .unwrap();
    let properties = blob.properties().await.unwrap().unwrap();
    assert_eq!(properties.metadata["pass"], "p1");
    assert_eq!(properties.metadata["instance"], "i1");
    assert!(
        !blob.create_if_missing(&BTreeMap::new()).await.unwrap(),
        "a leased blob exists: left alone"
    );
    blob.renew_lease(&first).await.unwrap();

    // Broken from outside: the holder's renewal fails; someone else may take it at once.
    blob.break_lease(Duration::ZERO).await.unwrap();
    let lost = blob.renew_lease(&first).await.unwrap_err();
    assert_eq!(lost.status(), Some(409), "{lost}");
    let second = blob
        .acquire_lease(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first, second);
    // The old holder's release changes nothing; the new holder's frees it.
    blob.release_lease(&first).await.unwrap();
    assert_eq!(
        blob.acquire_lease(Duration::from_secs(15)).await.unwrap(),
        None
    );
    blob.release_lease(&second).await.unwrap();
    assert_eq!(
        blob.properties().await.unwrap().unwrap().lease,
        Lease::Available
    );

    // A lease id of one's own: taken again at once by whoever knows it, by nobody else.
    let mine = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let held = blob
        .acquire_lease_as(Duration::from_secs(60), mine)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.expose(), mine);
    let again = blob
        .acquire_lease_as(Duration::from_secs(60), mine)
        .await
        .unwrap();
    assert_eq!(again.unwrap().expose(), mine, "the same id takes it again");
    assert_eq!(
        blob.acquire_lease_as(
            Duration::from_secs(60),
            "7c9e6679-7425-40de-944b-e07fc1f90ae7"
        )
        .await
        .unwrap(),
        None
    );
    blob.release_lease(&held).await.unwrap();

    // The mark: created once, read, deleted only as read.
    let mark = container.blob("sub/rg/hub.wanted");
    assert!(mark
        .create_if_missing(&metadata(&[("pass", "p2")]))
        .await
        .unwrap());
    assert!(!mark
        .create_if_missing(&metadata(&[("pass", "p3")]))
        .await
        .unwrap());
    let read = mark.properties().await.unwrap().unwrap();
    assert_eq!(read.metadata["pass"], "p2", "the first mark stands");
    let changed = mark.delete(Some("\"0x0000\"")).await.unwrap_err();
    assert_eq!(changed.status(), Some(412), "{changed}");
    assert!(mark.delete(Some(&read.etag)).await.unwrap());
    assert!(!mark.delete(None).await.unwrap(), "gone");
}

#[tokio::test]
async fn leases_on_azurite() {
    let azurite = match Azurite::start().await {
        Ok(azurite) => azurite,
        Err(error) => panic!("{error}"),
    };
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
            "AzureWebJobsStorage__blobServiceUri".to_string(),
            azurite.blob_service_url(),
        ),
        (
            "AzureWebJobsStorage__credential".to_string(),
            "managedidentity".to_string(),
        ),
        ("HUBSPOKE_CA_CERT".to_string(), bundle.display().to_string()),
    ]);
    let blobs = BlobService::connect(&settings(&env)).unwrap();
    leases_behave_as_the_service_documents(&blobs).await;
    assert!(!azurite.output().contains("Error"), "{}", azurite.output());
}

#[tokio::test]
async fn leases_on_the_simulators_blob_service() {
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        queues: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let env = sim.env();
    let blobs = BlobService::connect(&settings(&env)).unwrap();
    leases_behave_as_the_service_documents(&blobs).await;
}

#[test]
fn no_blob_service_is_a_clear_error() {
    let only_queues = settings(&[(
        "AzureWebJobsStorage__queueServiceUri".to_string(),
        "https://acct.queue.core.windows.net".to_string(),
    )]);
    let error = BlobService::connect(&only_queues).unwrap_err();
    assert!(error.to_string().contains("__blobServiceUri"), "{error}");
    let account = settings(&[(
        "AzureWebJobsStorage__accountName".to_string(),
        "acct".to_string(),
    )]);
    assert_eq!(
        account.blob.unwrap().service_url,
        "https://acct.blob.core.windows.net"
    );
}
