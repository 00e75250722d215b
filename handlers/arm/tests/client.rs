//! The ARM client against the simulator over HTTPS, with the simulator's certificate and its
//! managed identity endpoint: requests, long-running operations, paging, retries, refusals,
//! credentials, settings and counts. No mocks: every request crosses loopback.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use hubspoke_arm::client::RequestCounts;
use hubspoke_arm::error::ErrorKind;
use hubspoke_arm::settings::{ArmSettings, IdentitySource, API_VERSION, DEFAULT_ENDPOINT};
use hubspoke_sim::{FaultSpec, LatencySpec, SimConfig};
use serde_json::json;

fn faults(spec: &str) -> FaultSpec {
    FaultSpec::parse(spec).unwrap()
}

/// Reads and writes as the simulator saw them.
fn seen(sim: &hubspoke_sim::SimHandle) -> (u64, u64) {
    let log = requests(sim);
    let reads = log.iter().filter(|(m, _, _)| m == "GET").count() as u64;
    let writes = log
        .iter()
        .filter(|(m, _, _)| m == "PUT" || m == "DELETE")
        .count() as u64;
    (reads, writes)
}

// ---- requests, operations, paging ----

#[tokio::test]
async fn get_returns_the_resource_with_one_read() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.load(&vnets_snapshot("rg", 1)).unwrap();
    let vnet = client.get(&vnet_id("rg", "vnet-0")).await.unwrap();
    assert_eq!(vnet["name"], "vnet-0");
    assert_eq!(vnet["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads: 1,
            writes: 0,
            retries: 0,
            throttled: 0
        }
    );
    let log = sim.requests();
    assert_eq!(log.len(), 1);
    assert!(log[0].path.contains(&format!("api-version={API_VERSION}")));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_answer_larger_than_the_limit_is_refused_as_it_arrives_and_not_retried() {
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.load(&vnets_snapshot("rg", 20)).unwrap();
    let mut settings = settings_for(&sim, &[]);
    settings.max_answer_bytes = 2048;
    let client = client_for(&settings);
    let error = client
        .list(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.Network/virtualNetworks"
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code, "ResponseTooLarge");
    assert_eq!(error.kind, ErrorKind::Rejected);
    assert_eq!(client.counts().reads, 1, "not sent again");
    // A small answer is read as before.
    assert_eq!(
        client.get(&vnet_id("rg", "vnet-0")).await.unwrap()["name"],
        "vnet-0"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_missing_resource_is_not_found_and_not_retried() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let error = client.get(&vnet_id("rg", "absent")).await.unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(error.status, Some(404));
    assert_eq!(error.code, "ResourceNotFound");
    assert!(error.hint().is_none());
    let line = error.to_string();
    assert!(
        line.starts_with("GET /subscriptions/") && line.contains(": 404 ResourceNotFound: "),
        "{line}"
    );
    assert_eq!(requests(&sim).len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_follows_next_link_through_every_page() {
    let (sim, client) = sim_and_client(SimConfig {
        page_size: 2,
        ..Default::default()
    })
    .await;
    sim.load(&vnets_snapshot("rg", 5)).unwrap();
    let items = client
        .list(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.Network/virtualNetworks"
        ))
        .await
        .unwrap();
    let mut names: Vec<String> = items
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["vnet-0", "vnet-1", "vnet-2", "vnet-3", "vnet-4"]);
    assert_eq!(client.counts().reads, 3, "three pages of at most two");
    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert!(log[1].path.contains("skiptoken"), "{}", log[1].path);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_with_its_own_counts_counts_apart_and_adds_to_its_parent() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.load(&vnets_snapshot("rg", 1)).unwrap();
    let path = vnet_id("rg", "vnet-0");
    client.get(&path).await.unwrap();
    let first = client.with_own_counts();
    let second = client.with_own_counts();
    first.get(&path).await.unwrap();
    second.get(&path).await.unwrap();
    second.get(&path).await.unwrap();
    assert_eq!(first.counts().reads, 1);
    assert_eq!(second.counts().reads, 2);
    assert_eq!(client.counts().reads, 4, "the parent counts everything");
    sim.shutdown().await;
}

#[tokio::test]
async fn put_follows_the_operation_and_returns_the_succeeded_resource() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let vnet = client
        .put(&vnet_id("rg", "hub"), None, &vnet_body(&["10.0.0.0/16"]))
        .await
        .unwrap();
    assert_eq!(vnet["properties"]["provisioningState"], "Succeeded");
    assert_eq!(vnet["id"], vnet_id("rg", "hub"));
    let log = requests(&sim);
    assert_eq!(
        (log[0].0.as_str(), log[0].2),
        ("PUT", 201),
        "created, operation accepted"
    );
    assert!(log[1..log.len() - 1]
        .iter()
        .all(|(m, p, _)| m == "GET" && p.contains("/operations/")));
    assert_eq!(
        log.last().unwrap(),
        &("GET".to_string(), vnet_id("rg", "hub"), 200)
    );
    let (reads, writes) = seen(&sim);
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads,
            writes,
            retries: 0,
            throttled: 0
        }
    );
    assert_eq!(writes, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn put_with_sync_remote_address_space_brings_a_resized_peering_in_sync() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let (hub, spoke) = (vnet_id("rg", "hub"), vnet_id("rg", "spoke"));
    client
        .put(&hub, None, &vnet_body(&["10.0.0.0/16"]))
        .await
        .unwrap();
    client
        .put(&spoke, None, &vnet_body(&["10.1.0.0/16"]))
        .await
        .unwrap();
    let peering = |to: &str| json!({"properties": {"allowVirtualNetworkAccess": true, "remoteVirtualNetwork": {"id": to}}});
    client
        .put(
            &format!("{hub}/virtualNetworkPeerings/to-spoke"),
            None,
            &peering(&spoke),
        )
        .await
        .unwrap();
    let connected = client
        .put(
            &format!("{spoke}/virtualNetworkPeerings/to-hub"),
            None,
            &peering(&hub),
        )
        .await
        .unwrap();
    assert_eq!(connected["properties"]["peeringState"], "Connected");
    client
        .put(&spoke, None, &vnet_body(&["10.1.0.0/16", "10.2.0.0/16"]))
        .await
        .unwrap();
    let stale = client
        .get(&format!("{hub}/virtualNetworkPeerings/to-spoke"))
        .await
        .unwrap();
    assert_eq!(stale["properties"]["peeringSyncLevel"], "LocalNotInSync");

    let synced = client
        .put(
            &format!("{hub}/virtualNetworkPeerings/to-spoke"),
            Some(("syncRemoteAddressSpace", "true")),
            &stale,
        )
        .await
        .unwrap();
    assert_eq!(synced["properties"]["peeringSyncLevel"], "FullyInSync");
    let sent = sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT" && r.path.contains("to-spoke"))
        .unwrap();
    assert!(
        sent.path.contains("syncRemoteAddressSpace=true"),
        "{}",
        sent.path
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_follows_its_operation_to_the_end_and_absent_is_fine() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.load(&vnets_snapshot("rg", 1)).unwrap();
    client.delete(&vnet_id("rg", "vnet-0")).await.unwrap();
    let log = requests(&sim);
    assert_eq!((log[0].0.as_str(), log[0].2), ("DELETE", 202));
    // Azure-AsyncOperation rather than Location, both being given: its status tells the
    // operation's failure from a failure to read it.
    assert!(log[1..]
        .iter()
        .all(|(m, p, s)| m == "GET" && p.contains("/operations/") && *s == 200));
    assert!(client
        .get(&vnet_id("rg", "vnet-0"))
        .await
        .unwrap_err()
        .is_not_found());
    client.delete(&vnet_id("rg", "vnet-0")).await.unwrap();
    let (reads, writes) = seen(&sim);
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads,
            writes,
            retries: 0,
            throttled: 0
        }
    );
    assert_eq!(writes, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_link_to_another_host_is_refused_without_sending_the_token() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let error = client
        .get("https://elsewhere.example/subscriptions/x?api-version=2024-05-01")
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Rejected);
    assert!(requests(&sim).is_empty());
    assert_eq!(client.counts(), RequestCounts::default());
    sim.shutdown().await;
}

// ---- retries ----

#[tokio::test]
async fn throttling_429_is_retried_and_counted_as_throttled() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.load(&vnets_snapshot("rg", 1)).unwrap();
    sim.set_faults(faults("GET *=429#2"));
    client.get(&vnet_id("rg", "vnet-0")).await.unwrap();
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads: 3,
            writes: 0,
            retries: 2,
            throttled: 2
        }
    );
    let statuses: Vec<u16> = requests(&sim).iter().map(|r| r.2).collect();
    assert_eq!(statuses, [429, 429, 200]);
    sim.shutdown().await;
}

#[tokio::test]
async fn lock_conflicts_are_retried_but_are_not_throttling() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.set_faults(faults("PUT *=409#2"));
    let vnet = client
        .put(&vnet_id("rg", "hub"), None, &vnet_body(&["10.0.0.0/16"]))
        .await
        .unwrap();
    assert_eq!(vnet["properties"]["provisioningState"], "Succeeded");
    let counts = client.counts();
    assert_eq!((counts.writes, counts.retries, counts.throttled), (3, 2, 0));
    let conflicts = sim
        .requests()
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("AnotherOperationInProgress"))
        .count();
    assert_eq!(conflicts, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_a_dropped_connection_are_retried() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.load(&vnets_snapshot("rg", 1)).unwrap();
    sim.set_faults(faults("GET *=script:500,503,drop"));
    let vnet = client.get(&vnet_id("rg", "vnet-0")).await.unwrap();
    assert_eq!(vnet["name"], "vnet-0");
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads: 4,
            writes: 0,
            retries: 3,
            throttled: 0
        }
    );
    let statuses: Vec<u16> = requests(&sim).iter().map(|r| r.2).collect();
    assert_eq!(statuses, [500, 503, 0, 200], "0 is the dropped connection");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_transient_failure_of_an_operation_poll_is_retried() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.set_faults(faults("GET */operations/*=script:500"));
    let vnet = client
        .put(&vnet_id("rg", "hub"), None, &vnet_body(&["10.0.0.0/16"]))
        .await
        .unwrap();
    assert_eq!(vnet["properties"]["provisioningState"], "Succeeded");
    assert_eq!(client.counts().retries, 1);
    assert_eq!(client.counts().writes, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_canceled_operation_sends_the_put_again() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.set_faults(faults("PUT */routeTables/*=lro-cancel#1"));
    let table = client
        .put(
            &table_id("rg", "rt"),
            None,
            &json!({"location": "westus", "properties": {}}),
        )
        .await
        .unwrap();
    assert_eq!(table["properties"]["provisioningState"], "Succeeded");
    let counts = client.counts();
    assert_eq!((counts.writes, counts.retries), (2, 1));
    let puts: Vec<Option<String>> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.fault)
        .collect();
    assert_eq!(puts, [Some("lro-cancel".to_string()), None]);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_operation_that_failed_for_good_is_reported_with_its_code_and_not_sent_again() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let body = json!({"location": "westus", "properties": {}});
    // A validation failure Azure reports only through the operation, then a refusal.
    sim.set_faults(faults(
        "PUT */routeTables/rt=lro-fail:VnetAddressSpaceOverlapsWithAlreadyPeeredVnet#1;PUT */routeTables/rt2=lro-fail:RequestDisallowedByPolicy#1",
    ));
    let error = client
        .put(&table_id("rg", "rt"), None, &body)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed);
    assert_eq!(error.code, "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet");
    assert_eq!(error.method, "PUT");
    let refused = client
        .put(&table_id("rg", "rt2"), None, &body)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Refused);
    let counts = client.counts();
    assert_eq!(
        (counts.writes, counts.retries),
        (2, 0),
        "neither is sent again"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_operation_that_keeps_failing_transiently_is_sent_at_most_max_attempts_times() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.set_faults(faults("PUT */routeTables/*=lro-fail"));
    let error = client
        .put(
            &table_id("rg", "rt"),
            None,
            &json!({"location": "westus", "properties": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Exhausted, "InternalServerError")
    );
    let max = u64::from(fast_retry().max_attempts);
    assert_eq!(client.counts().writes, max);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_operation_that_failed_transiently_is_sent_again_within_the_budget() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.set_faults(faults(
        "PUT */routeTables/rt=lro-fail#1;DELETE */routeTables/rt=lro-fail#1",
    ));
    let table = client
        .put(
            &table_id("rg", "rt"),
            None,
            &json!({"location": "westus", "properties": {}}),
        )
        .await
        .unwrap();
    assert_eq!(table["properties"]["provisioningState"], "Succeeded");
    client.delete(&table_id("rg", "rt")).await.unwrap();
    let counts = client.counts();
    assert_eq!((counts.writes, counts.retries), (4, 2), "each sent twice");
    let writes: Vec<(String, u16)> = requests(&sim)
        .into_iter()
        .filter(|(method, _, _)| method != "GET")
        .map(|(method, _, status)| (method, status))
        .collect();
    assert_eq!(
        writes,
        [
            ("PUT".to_string(), 201),
            ("PUT".to_string(), 200),
            ("DELETE".to_string(), 202),
            ("DELETE".to_string(), 202)
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_fault_that_never_clears_exhausts_after_max_attempts() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.set_faults(faults("GET *=503"));
    let error = client.get(&vnet_id("rg", "v")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert_eq!(
        (error.status, error.code.as_str()),
        (Some(503), "ServiceUnavailable")
    );
    let max = fast_retry().max_attempts as u64;
    assert_eq!(requests(&sim).len() as u64, max);
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads: max,
            writes: 0,
            retries: max - 1,
            throttled: 0
        }
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_retry_budget_stops_a_retry_that_would_wait_too_long() {
    // Retry-After: 1 on the injected 429 exceeds a 100 ms budget: no second request, no wait.
    let config = SimConfig {
        latency: LatencySpec {
            retry_after_secs: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let (sim, _) = sim_and_client(config).await;
    let mut settings = settings_for(&sim, &[]);
    settings.retry.budget = Duration::from_millis(100);
    let client = client_for(&settings);
    sim.set_faults(faults("GET *=429"));
    let started = std::time::Instant::now();
    let error = client.get(&vnet_id("rg", "v")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert_eq!(error.status, Some(429));
    assert_eq!(requests(&sim).len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "Retry-After was not slept through"
    );
    assert_eq!(client.counts().throttled, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn max_attempts_comes_from_the_setting() {
    let (sim, _) = sim_and_client(SimConfig::default()).await;
    let settings = settings_for(&sim, &[("HUBSPOKE_ARM_MAX_ATTEMPTS", "2")]);
    assert_eq!(settings.retry.max_attempts, 2);
    let client = client_for(&settings);
    sim.set_faults(faults("PUT *=500"));
    let error = client
        .put(&vnet_id("rg", "v"), None, &vnet_body(&["10.0.0.0/16"]))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert_eq!(requests(&sim).len(), 2);
    sim.shutdown().await;
}

// ---- refusals ----

#[tokio::test]
async fn refusals_are_reported_once_with_what_to_fix() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    let subnet = format!("{}/subnets/app", vnet_id("rg", "spoke"));
    let body = json!({"properties": {"addressPrefix": "10.1.0.0/24", "routeTable": {"id": table_id("rg", "rt")}}});
    let cases = [
        (
            "403",
            403,
            "AuthorizationFailed",
            "missing permission 'Microsoft.Network/virtualNetworks/subnets/write' on '",
        ),
        (
            "403-linked",
            403,
            "LinkedAuthorizationFailed",
            "missing permission 'Microsoft.Network/routeTables/join/action' on '/subscriptions/",
        ),
        (
            "403-policy",
            403,
            "RequestDisallowedByPolicy",
            "denied by policy 'deny-udr'",
        ),
        (
            "409-locked",
            409,
            "ScopeLocked",
            &format!("the lock on '/subscriptions/{SUB}/resourceGroups/rg' must be removed"),
        ),
    ];
    for (action, status, code, hint) in cases {
        sim.clear_requests();
        sim.set_faults(faults(&format!("PUT *={action}")));
        let before = client.counts();
        let error = client.put(&subnet, None, &body).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Refused, "{action}");
        assert_eq!((error.status, error.code.as_str()), (Some(status), code));
        let named = error.hint().unwrap();
        assert!(named.starts_with(hint), "{action}: {named}");
        assert!(
            error.to_string().contains(&named),
            "the one-line report carries the hint"
        );
        assert_eq!(requests(&sim).len(), 1, "{action} is never retried");
        assert_eq!(client.counts().retries, before.retries);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_refused_delete_names_the_lock() {
    let (sim, client) = sim_and_client(SimConfig::default()).await;
    sim.load(&vnets_snapshot("rg", 1)).unwrap();
    sim.set_faults(faults("DELETE *=409-locked"));
    let error = client.delete(&vnet_id("rg", "vnet-0")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Refused);
    assert!(
        error.message.contains("cannot perform delete operation"),
        "{}",
        error.message
    );
    assert_eq!(requests(&sim).len(), 1);
    sim.shutdown().await;
}

// ---- credentials ----

#[tokio::test]
async fn the_token_comes_from_the_managed_identity_endpoint() {
    let config = SimConfig {
        principal_id: "0b1ec700-0000-4000-8000-00000000abcd".into(),
        ..Default::default()
    };
    let (sim, _) = sim_and_client(config).await;
    let settings = settings_for(
        &sim,
        &[("AZURE_CLIENT_ID", "c1e47000-0000-4000-8000-0000000000c1")],
    );
    assert!(matches!(
        settings.identity,
        IdentitySource::AppService { .. }
    ));
    let client = client_for(&settings);
    // The refusal quotes the caller's object id, read from the token it was sent.
    sim.set_faults(faults("GET *=403#1"));
    let error = client.get(&vnet_id("rg", "v")).await.unwrap_err();
    assert!(
        error
            .message
            .contains("The client '0b1ec700-0000-4000-8000-00000000abcd'"),
        "{}",
        error.message
    );
    // The user-assigned identity was asked for: the token's appid is its client id.
    client
        .put(&vnet_id("rg", "v"), None, &vnet_body(&["10.0.0.0/16"]))
        .await
        .unwrap();
    let events = sim.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event["data"]["claims"]["appid"],
        "c1e47000-0000-4000-8000-0000000000c1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_identity_header_is_a_credential_error_and_nothing_reaches_arm() {
    let (sim, _) = sim_and_client(SimConfig::default()).await;
    let settings = settings_for(&sim, &[("IDENTITY_HEADER", "not-the-secret")]);
    let client = client_for(&settings);
    let error = client.get(&vnet_id("rg", "v")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Credential);
    assert!(requests(&sim).is_empty());
    assert!(
        !format!("{settings:?}").contains("not-the-secret"),
        "the header is redacted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn two_simulators_in_one_process_each_get_their_own_identity() {
    let (sim_a, client_a) = sim_and_client(SimConfig::default()).await;
    let (sim_b, client_b) = sim_and_client(SimConfig::default()).await;
    sim_a.load(&vnets_snapshot("rg", 1)).unwrap();
    sim_b.load(&vnets_snapshot("rg", 2)).unwrap();
    let list = format!("/subscriptions/{SUB}/providers/Microsoft.Network/virtualNetworks");
    assert_eq!(client_a.list(&list).await.unwrap().len(), 1);
    assert_eq!(client_b.list(&list).await.unwrap().len(), 2);
    sim_a.shutdown().await;
    sim_b.shutdown().await;
}

// ---- settings ----

#[test]
fn settings_default_to_azure_and_developer_tools() {
    let settings = ArmSettings::from_settings(|_| None).unwrap();
    assert_eq!(settings.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(settings.ca_cert, None);
    assert_eq!(settings.client_id, None);
    assert_eq!(settings.identity, IdentitySource::DeveloperTools);
    assert_eq!(settings.api_version, "2024-05-01");
    assert_eq!(settings.retry.max_attempts, 8);
    assert_eq!(settings.retry.base_delay, Duration::from_secs(1));
    assert_eq!(settings.retry.max_delay, Duration::from_secs(60));
    assert_eq!(settings.retry.budget, Duration::from_secs(300));
    assert_eq!(settings.request_timeout, Duration::from_secs(60));
    assert_eq!(settings.operation_timeout, Duration::from_secs(900));
}

#[tokio::test]
async fn every_setting_is_read() {
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let ca = sim.ca_cert_path().unwrap();
    let ca_text = ca.display().to_string();
    let values = [
        ("HUBSPOKE_ARM_ENDPOINT", "https://127.0.0.1:4443/"),
        ("HUBSPOKE_CA_CERT", ca_text.as_str()),
        ("AZURE_CLIENT_ID", "client-1"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:4444/msi/token"),
        ("IDENTITY_HEADER", "secret-1"),
        ("HUBSPOKE_ARM_MAX_ATTEMPTS", "3"),
        ("HUBSPOKE_ARM_RETRY_BUDGET_SECONDS", "12"),
    ];
    let settings = ArmSettings::from_settings(|name| {
        values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    assert_eq!(
        settings.endpoint, "https://127.0.0.1:4443",
        "trailing slash removed"
    );
    assert_eq!(settings.ca_cert, Some(ca.clone()));
    assert_eq!(settings.client_id.as_deref(), Some("client-1"));
    assert_eq!(
        settings.identity,
        IdentitySource::AppService {
            endpoint: "http://127.0.0.1:4444/msi/token".into(),
            header: "secret-1".into()
        }
    );
    assert_eq!(settings.retry.max_attempts, 3);
    assert_eq!(settings.retry.budget, Duration::from_secs(12));
    sim.shutdown().await;
}

#[test]
fn a_bad_value_names_its_setting() {
    let dir = std::env::temp_dir().join(format!("hubspoke-arm-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.join("missing.pem");
    let cases: Vec<(&str, String)> = vec![
        ("HUBSPOKE_ARM_ENDPOINT", "management.azure.com".into()),
        ("HUBSPOKE_ARM_ENDPOINT", "ftp://management.azure.com".into()),
        (
            "HUBSPOKE_ARM_ENDPOINT",
            "https://management.azure.com?x=1".into(),
        ),
        ("HUBSPOKE_CA_CERT", missing.display().to_string()),
        ("HUBSPOKE_CA_CERT", not_pem.display().to_string()),
        ("HUBSPOKE_ARM_MAX_ATTEMPTS", "0".into()),
        ("HUBSPOKE_ARM_MAX_ATTEMPTS", "many".into()),
        ("HUBSPOKE_ARM_RETRY_BUDGET_SECONDS", "-1".into()),
        ("HUBSPOKE_ARM_RETRY_BUDGET_SECONDS", "1.5x".into()),
        ("IDENTITY_ENDPOINT", "not a url".into()),
    ];
    for (setting, value) in cases {
        let error = ArmSettings::from_settings(|name| {
            if name == setting {
                Some(value.clone())
            } else if name == "IDENTITY_HEADER" {
                Some("h".into())
            } else if name == "IDENTITY_ENDPOINT" {
                Some("http://127.0.0.1:1/msi/token".into())
            } else {
                None
            }
        })
        .unwrap_err();
        assert_eq!(error.setting, setting, "{value}");
    }
    let half = ArmSettings::from_settings(|name| {
        (name == "IDENTITY_ENDPOINT").then(|| "http://127.0.0.1:1/msi/token".to_string())
    })
    .unwrap_err();
    assert_eq!(half.setting, "IDENTITY_HEADER");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- counts ----

#[tokio::test]
async fn counts_are_exact_and_shared_by_clones() {
    let (sim, client) = sim_and_client(SimConfig {
        page_size: 2,
        ..Default::default()
    })
    .await;
    sim.load(&vnets_snapshot("rg", 3)).unwrap();
    let clone = client.clone();
    client.get(&vnet_id("rg", "vnet-0")).await.unwrap();
    clone
        .list(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks"
        ))
        .await
        .unwrap();
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads: 3,
            writes: 0,
            retries: 0,
            throttled: 0
        }
    );
    clone
        .put(&vnet_id("rg", "vnet-9"), None, &vnet_body(&["10.9.0.0/16"]))
        .await
        .unwrap();
    client.delete(&vnet_id("rg", "vnet-1")).await.unwrap();
    let (reads, writes) = seen(&sim);
    assert_eq!(writes, 2);
    assert_eq!(
        client.counts(),
        RequestCounts {
            reads,
            writes,
            retries: 0,
            throttled: 0
        }
    );
    assert_eq!(clone.counts(), client.counts());
    sim.shutdown().await;
}
