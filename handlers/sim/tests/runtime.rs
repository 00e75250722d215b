//! The simulator's runtime behaviour: throttling, faults, the control API, Event Grid delivery,
//! TLS and the managed identity endpoint.
#![allow(clippy::unwrap_used)]
mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hubspoke_sim::{EventKnobs, EventSchema, FaultSpec, LatencySpec, SimConfig, ThrottleSpec};
use serde_json::{json, Value};

#[tokio::test]
async fn writes_are_throttled_per_subscription_with_retry_after() {
    let (sim, client) = start_sim(SimConfig {
        throttle: ThrottleSpec {
            writes: (3.0, 1.0),
            ..ThrottleSpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let body = json!({"location": "westus", "properties": {}});
    for i in 0..3 {
        let answer = client
            .put(&table_id("rg", &format!("t{i}")), body.clone())
            .await;
        assert_eq!(answer.status, 201);
        assert_eq!(
            answer
                .header("x-ms-ratelimit-remaining-subscription-writes")
                .as_deref(),
            Some((2 - i).to_string().as_str())
        );
    }
    let throttled = client.put(&table_id("rg", "t3"), body.clone()).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.code(), "SubscriptionRequestsThrottled");
    assert_eq!(throttled.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        throttled
            .header("x-ms-ratelimit-remaining-subscription-writes")
            .as_deref(),
        Some("0")
    );
    // Reads have their own bucket.
    assert_eq!(client.get(&table_id("rg", "t0")).await.status, 200);
    let reads = client.get(&table_id("rg", "t0")).await;
    assert!(reads
        .header("x-ms-ratelimit-remaining-subscription-reads")
        .is_some());

    // Compressed time: the bucket refills a thousand times faster.
    sim.set_throttle(ThrottleSpec {
        writes: (1.0, 1.0),
        time_factor: 1000.0,
        ..ThrottleSpec::default()
    });
    assert_eq!(
        client.put(&table_id("rg", "t3"), body.clone()).await.status,
        201
    );
    let refilled = eventually(|| async {
        let answer = client.put(&table_id("rg", "t4"), body.clone()).await;
        (answer.status == 201).then_some(answer)
    })
    .await;
    assert_eq!(refilled.status, 201);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_answer_reports_the_budget_left_and_the_log_counts_operations_in_flight() {
    let (sim, client) = start_sim(SimConfig {
        // Operations outlast the test: the three writes are in flight together.
        latency: LatencySpec {
            lro: Duration::from_secs(600),
            ..LatencySpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let body = json!({"location": "westus", "properties": {}});
    for i in 0..3 {
        let answer = client
            .put(&table_id("rg", &format!("t{i}")), body.clone())
            .await;
        assert_eq!(answer.status, 201);
    }
    // Answers that took no token still tell what is left: an injected fault, a missing resource,
    // a request without api-version.
    sim.set_faults(FaultSpec::parse("GET */routeTables/t0=500").unwrap());
    let failed = client.get(&table_id("rg", "t0")).await;
    assert_eq!(failed.status, 500);
    assert!(failed
        .header("x-ms-ratelimit-remaining-subscription-reads")
        .is_some());
    let missing = client.get(&table_id("rg", "absent")).await;
    assert_eq!(missing.status, 404);
    assert!(missing
        .header("x-ms-ratelimit-remaining-subscription-reads")
        .is_some());
    let deleted = client.delete(&table_id("rg", "absent")).await;
    assert!(deleted
        .header("x-ms-ratelimit-remaining-subscription-deletes")
        .is_some());

    let log = sim.requests();
    let in_flight: Vec<u32> = log
        .iter()
        .filter(|r| r.method == "PUT")
        .filter_map(|r| r.operations_in_flight)
        .collect();
    assert_eq!(in_flight, [1, 2, 3]);
    assert!(log.iter().all(|r| r.ratelimit_remaining.is_some()));
    let writes_left: Vec<u64> = log
        .iter()
        .filter(|r| r.method == "PUT")
        .filter_map(|r| r.ratelimit_remaining)
        .collect();
    assert!(
        writes_left.iter().all(|left| *left < 200),
        "{writes_left:?}"
    );
    // The control API shows the same fields.
    let listed: Value = client
        .http
        .get(format!("{}/_sim/requests", client.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"][2]["operations_in_flight"], 3);
    assert!(listed["value"][0]["ratelimit_remaining"].is_u64());
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_follow_their_script_and_the_control_api_sets_them() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    client.vnet("rg", "v", &["10.1.0.0/16"], json!([])).await;
    let control = format!("{}/_sim/faults", client.base);
    let set = client
        .http
        .put(&control)
        .json(&json!({"spec": "GET */virtualNetworks/*=script:503,drop,ok,slow:10ms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let spec: Value = client
        .http
        .get(&control)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["spec"].as_str().unwrap().contains("script:503"));

    let unavailable = client.get(&vnet_id("rg", "v")).await;
    assert_eq!(unavailable.status, 503);
    assert!(unavailable.header("retry-after").is_some());
    let dropped = client
        .http
        .get(client.url(&vnet_id("rg", "v")))
        .bearer_auth(&client.token)
        .send()
        .await;
    assert!(dropped.is_err(), "the connection is dropped");
    assert_eq!(client.get(&vnet_id("rg", "v")).await.status, 200);
    assert_eq!(client.get(&vnet_id("rg", "v")).await.status, 200);

    let requests: Value = client
        .http
        .get(format!("{}/_sim/requests", client.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let faults: Vec<&str> = requests["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["fault"].as_str())
        .collect();
    assert_eq!(faults, ["503", "drop", "slow:10ms"]);
    assert!(requests["value"][0]["method"].is_string() && requests["value"][0]["time"].is_string());

    // Rates: a rule at rate 1 for PUTs only, spent after two firings.
    sim.set_faults(FaultSpec::parse("PUT *=500#2").unwrap());
    let body = json!({"location": "westus", "properties": {}});
    assert_eq!(
        client.put(&table_id("rg", "t"), body.clone()).await.status,
        500
    );
    assert_eq!(
        client.put(&table_id("rg", "t"), body.clone()).await.code(),
        "InternalServerError"
    );
    assert_eq!(
        client.put(&table_id("rg", "t"), body.clone()).await.status,
        201
    );
    assert_eq!(
        client
            .http
            .delete(&control)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );

    let state: Value = client
        .http
        .get(format!("{}/_sim/state", client.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["virtualNetworks"][0]["name"], "v");
    assert_eq!(state["routeTables"][0]["name"], "t");
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_operation_failures_and_cancellations_end_the_lro() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    sim.set_faults(FaultSpec::parse("PUT */routeTables/*=script:lro-fail,lro-cancel").unwrap());
    let body = json!({"location": "westus", "properties": {}});
    let failed = client.put(&table_id("rg", "t"), body.clone()).await;
    assert_eq!(failed.status, 201, "accepted first");
    assert_eq!(client.wait(&failed).await, "Failed");
    let status = client
        .get(&failed.header("azure-asyncoperation").unwrap())
        .await
        .body;
    assert_eq!(status["error"]["code"], "InternalServerError");
    assert_eq!(
        client.get(&table_id("rg", "t")).await.body["properties"]["provisioningState"],
        "Failed"
    );
    let canceled = client.put(&table_id("rg", "t"), body.clone()).await;
    assert_eq!(client.wait(&canceled).await, "Canceled");
    let status = client
        .get(&canceled.header("azure-asyncoperation").unwrap())
        .await
        .body;
    assert_eq!(
        status["error"]["details"][0]["code"],
        "CanceledAndSupersededDueToAnotherOperation"
    );
    // The script is spent: the next write goes through, and only it raised an event.
    let ok = client.put_ok(&table_id("rg", "t"), body).await;
    assert_eq!(ok["properties"]["provisioningState"], "Succeeded");
    assert_eq!(sim.events().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn refusal_faults_answer_as_rbac_policy_and_locks_do() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    client
        .vnet("rg", "spoke", &["10.1.0.0/16"], json!([]))
        .await;
    sim.set_faults(
        FaultSpec::parse(
            "PUT */subnets/*=403#1; PUT */virtualNetworkPeerings/*=403-linked#1; \
             PUT */routeTables/*=403-policy#1; DELETE *=409-locked#1",
        )
        .unwrap(),
    );
    let subnet = format!("{}/subnets/app", vnet_id("rg", "spoke"));
    let denied = client
        .put(
            &subnet,
            json!({"properties": {"addressPrefix": "10.1.0.0/24"}}),
        )
        .await;
    assert_eq!(
        (denied.status, denied.code()),
        (403, "AuthorizationFailed".to_string())
    );
    assert_eq!(
        denied.body["error"]["message"],
        format!(
            "The client '11111111-2222-3333-4444-555555555555' with object id \
             '11111111-2222-3333-4444-555555555555' does not have authorization to perform action \
             'Microsoft.Network/virtualNetworks/subnets/write' over scope '{subnet}' or the scope \
             is invalid. If access was recently granted, please refresh your credentials."
        )
    );
    let linked = client
        .peer(
            &vnet_id("rg", "spoke"),
            "to-hub",
            &vnet_id("hub-rg", "hub"),
            json!({}),
        )
        .await;
    assert_eq!(
        (linked.status, linked.code()),
        (403, "LinkedAuthorizationFailed".to_string())
    );
    let message = linked.body["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains(&format!(
        "does not have permission to perform action 'Microsoft.Network/virtualNetworks/peer/action' on the linked scope(s) '{}'",
        vnet_id("hub-rg", "hub")
    )), "{message}");
    let policy = client
        .put(
            &table_id("rg", "rt"),
            json!({"location": "westus", "properties": {}}),
        )
        .await;
    assert_eq!(
        (policy.status, policy.code()),
        (403, "RequestDisallowedByPolicy".to_string())
    );
    let message = policy.body["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(
            "Resource 'rt' was disallowed by policy. Policy identifiers: '[{\"policyAssignment\":{"
        ),
        "{message}"
    );
    assert!(message.contains("\"name\":\"deny-udr\""), "{message}");
    let locked = client.delete(&vnet_id("rg", "spoke")).await;
    assert_eq!(
        (locked.status, locked.code()),
        (409, "ScopeLocked".to_string())
    );
    assert_eq!(
        locked.body["error"]["message"],
        format!(
            "The scope '{}' cannot perform delete operation because following scope(s) are locked: \
             '/subscriptions/{SUB}/resourceGroups/rg'. Please remove the lock and try again.",
            vnet_id("rg", "spoke")
        )
    );
    // Each rule fired once; nothing was changed, and the next writes go through.
    let faults: Vec<String> = sim.requests().into_iter().filter_map(|r| r.fault).collect();
    assert_eq!(faults, ["403", "403-linked", "403-policy", "409-locked"]);
    assert_eq!(client.get(&subnet).await.status, 404);
    client
        .put_ok(
            &subnet,
            json!({"properties": {"addressPrefix": "10.1.0.0/24"}}),
        )
        .await;
    sim.shutdown().await;
}

/// A webhook that records deliveries and fails the first `fail_first` of them with 500.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(hyper::HeaderMap, Value)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/events", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<(hyper::HeaderMap, Value)>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0usize));
    let store = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        let calls = calls.clone();
                        async move {
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let n = {
                                let mut c = calls.lock().unwrap();
                                *c += 1;
                                *c
                            };
                            let status = if n <= fail_first { 500 } else { 200 };
                            if status == 200 {
                                store.lock().unwrap().push((headers, value));
                            }
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn knobs() -> EventKnobs {
    EventKnobs {
        first_retry: Duration::from_millis(10),
        ..EventKnobs::default()
    }
}

#[tokio::test]
async fn writes_and_deletes_emit_events_delivered_at_least_once() {
    let (url, seen) = receiver(1).await;
    let (sim, client) = start_sim(SimConfig {
        events_to: Some(url),
        event_knobs: knobs(),
        ..SimConfig::default()
    })
    .await;
    let (a, b) = (vnet_id("rg", "a"), vnet_id("rg", "b"));
    client.vnet("rg", "a", &["10.1.0.0/16"], json!([])).await;
    client.vnet("rg", "b", &["10.2.0.0/16"], json!([])).await;
    client
        .vnet("rg", "a", &["10.1.0.0/16", "10.5.0.0/16"], json!([]))
        .await;
    client.peer_ok(&a, "a-b", &b, json!({})).await;
    client.peer_ok(&b, "b-a", &a, json!({})).await;
    client
        .delete_ok(&format!("{a}/virtualNetworkPeerings/a-b"))
        .await;

    let deliveries = eventually(|| async {
        let seen = seen.lock().unwrap();
        (seen.len() >= 6).then(|| seen.clone())
    })
    .await;
    let events: Vec<Value> = deliveries
        .iter()
        .map(|(headers, body)| {
            assert_eq!(headers["aeg-event-type"], "Notification");
            assert!(headers.contains_key("aeg-delivery-count"));
            assert_eq!(headers["aeg-data-version"], "2");
            assert_eq!(
                body.as_array().unwrap().len(),
                1,
                "Event Grid schema bodies are arrays"
            );
            body[0].clone()
        })
        .collect();
    // The first delivery failed with 500 and was retried.
    assert!(deliveries
        .iter()
        .any(|(h, _)| h["aeg-delivery-count"] == "1"));
    let mut kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["operationName"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    let mut expected = vec![
        (
            "Microsoft.Network/virtualNetworks/write".to_string(),
            a.clone(),
        ),
        (
            "Microsoft.Network/virtualNetworks/write".to_string(),
            a.clone(),
        ),
        (
            "Microsoft.Network/virtualNetworks/write".to_string(),
            b.clone(),
        ),
        (
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write".to_string(),
            format!("{a}/virtualNetworkPeerings/a-b"),
        ),
        (
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write".to_string(),
            format!("{b}/virtualNetworkPeerings/b-a"),
        ),
        (
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/delete".to_string(),
            format!("{a}/virtualNetworkPeerings/a-b"),
        ),
    ];
    expected.sort();
    assert_eq!(
        kinds, expected,
        "passive changes (a-b connecting, b-a disconnecting) emit nothing"
    );
    let delete = events
        .iter()
        .find(|e| e["eventType"] == "Microsoft.Resources.ResourceDeleteSuccess")
        .unwrap();
    assert!(delete["data"]["httpRequest"]["url"]
        .as_str()
        .unwrap()
        .contains("virtualNetworkPeerings/a-b"));
    let creates: Vec<&Value> = events.iter().filter(|e| e["subject"] == b).collect();
    assert!(
        creates[0]["data"].get("httpRequest").is_none(),
        "no httpRequest on a first create"
    );
    let update = events
        .iter()
        .filter(|e| e["subject"] == a)
        .find(|e| e["data"].get("httpRequest").is_some());
    assert!(update.is_some(), "httpRequest on an update");
    assert_eq!(
        events[0]["data"]["claims"]["oid"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        events[0]["data"]["claims"]
            ["http://schemas.microsoft.com/identity/claims/objectidentifier"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(events[0]["topic"], format!("/subscriptions/{SUB}"));
    assert_eq!(sim.events().len(), 6);
    // The receiver records an event before its answer reaches the simulator.
    eventually(|| async { sim.events().iter().all(|e| e.delivered).then_some(()) }).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn event_knobs_duplicate_and_cloudevents_schema() {
    let (url, seen) = receiver(0).await;
    let (sim, client) = start_sim(SimConfig {
        events_to: Some(url),
        event_schema: EventSchema::Cloudevents,
        event_knobs: EventKnobs {
            duplicate: 1.0,
            ..knobs()
        },
        ..SimConfig::default()
    })
    .await;
    client
        .put_ok(
            &table_id("rg", "t"),
            json!({"location": "westus", "properties": {}}),
        )
        .await;
    let deliveries = eventually(|| async {
        let seen = seen.lock().unwrap();
        (seen.len() >= 2).then(|| seen.clone())
    })
    .await;
    assert_eq!(
        deliveries[0].1["id"], deliveries[1].1["id"],
        "a duplicate carries the same id"
    );
    assert_eq!(deliveries[0].1["specversion"], "1.0");
    assert_eq!(
        deliveries[0].1["type"],
        "Microsoft.Resources.ResourceWriteSuccess"
    );
    assert!(deliveries[0].0["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/cloudevents+json"));

    let control: Value = client
        .http
        .get(format!("{}/_sim/events", client.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        control["value"][0]["event"]["data"]["operationName"],
        "Microsoft.Network/routeTables/write"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reordered_events_arrive_after_their_successor_and_held_ones_are_not_lost() {
    let (url, seen) = receiver(0).await;
    let (sim, client) = start_sim(SimConfig {
        events_to: Some(url),
        event_knobs: EventKnobs {
            reorder: 1.0,
            ..knobs()
        },
        ..SimConfig::default()
    })
    .await;
    for name in ["t1", "t2", "t3"] {
        client
            .put_ok(
                &table_id("rg", name),
                json!({"location": "westus", "properties": {}}),
            )
            .await;
        // Each event is emitted when its operation completes; wait for it before the next write.
        let expected = ["t1", "t2", "t3"].iter().position(|n| *n == name).unwrap() + 1;
        eventually(|| async { (sim.events().len() >= expected).then_some(()) }).await;
    }
    let subjects = eventually(|| async {
        let seen = seen.lock().unwrap();
        (seen.len() >= 3).then(|| {
            seen.iter()
                .map(|(_, b)| b[0]["subject"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    })
    .await;
    let names: Vec<&str> = subjects
        .iter()
        .map(|s| s.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["t2", "t1", "t3"],
        "t1 held behind t2; t3 held, then sent when nothing followed"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_events_are_never_delivered() {
    let (url, seen) = receiver(0).await;
    let (sim, client) = start_sim(SimConfig {
        events_to: Some(url),
        event_knobs: EventKnobs {
            drop: 1.0,
            ..knobs()
        },
        ..SimConfig::default()
    })
    .await;
    client
        .put_ok(
            &table_id("rg", "t"),
            json!({"location": "westus", "properties": {}}),
        )
        .await;
    let record = eventually(|| async { sim.events().into_iter().find(|e| e.dropped) }).await;
    assert_eq!(record.attempts, 0);
    assert!(seen.lock().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn tls_and_the_managed_identity_endpoint_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("ca.pem");
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        ca_cert_out: Some(cert_path.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.arm_endpoint().starts_with("https://127.0.0.1:"));
    let pem = std::fs::read_to_string(&cert_path).unwrap();
    assert_eq!(Some(pem.clone()), sim.ca_cert_pem());
    let env = sim.env();
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "HUBSPOKE_ARM_ENDPOINT",
            "HUBSPOKE_CA_CERT",
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER"
        ]
    );

    // The identity endpoint: plain HTTP, secret header, App Service's response shape.
    let plain = reqwest::Client::new();
    let refused = plain
        .get(format!(
            "{}?api-version=2019-08-01&resource=https://management.azure.com",
            sim.identity_endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let token: Value = plain
        .get(format!(
            "{}?api-version=2019-08-01&resource=https://management.azure.com",
            sim.identity_endpoint()
        ))
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_on"].as_str().unwrap().parse::<u64>().is_ok());

    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let answer = https
        .put(format!("{}{}?api-version={API}", sim.arm_endpoint(), vnet_id("rg", "v")))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    assert!(answer.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .starts_with("https://"));
    sim.shutdown().await;
}
