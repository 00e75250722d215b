//! One pass per hub across instances, in process: two handler states (two "instances", each with
//! its own `WEBSITE_INSTANCE_ID`) on one simulator and one Azurite, driven through the router as
//! the host drives it. The hub's lease, the mark a joiner leaves and the further pass the holder
//! runs for it; a lease broken from outside; a request the host drops. Needs Azurite under
//! `tests/node_modules` (`npm ci --prefix tests`); without it these tests fail, naming that step.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::{article, assert_valid_outcome, invoke, work_body};
use hubspoke_core::synth::{Estate, Flags};
use hubspoke_functions::lease::HubLeases;
use hubspoke_functions::logs::LogStore;
use hubspoke_functions::settings::HandlerSettings;
use hubspoke_functions::sink::OutcomeSink;
use hubspoke_functions::{app, AppState, State};
use hubspoke_queue::azurite::Azurite;
use hubspoke_queue::message::decode_text;
use hubspoke_queue::{BlobService, QueueService, StorageSettings};
use hubspoke_sim::{LatencySpec, Seed, SimConfig, SimHandle};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Instances {
    sim: SimHandle,
    _azurite: Azurite,
    _dir: tempfile::TempDir,
    storage: StorageSettings,
    a: AppState,
    b: AppState,
    estate: Estate,
}

/// Two instances of the handler on one simulator (seeded with `estate`, operations taking
/// `lro`) and one Azurite.
async fn instances(estate: Estate, lro: Duration, extra: &[(&str, &str)]) -> Instances {
    let azurite = Azurite::start()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        seed: Some(Seed::Value(estate.snapshot())),
        latency: LatencySpec {
            lro,
            ..LatencySpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    azurite
        .write_ca_bundle(&bundle, &[&sim.ca_cert_pem().unwrap()])
        .unwrap();
    let mut env = sim.env();
    env.retain(|(k, _)| k != "HUBSPOKE_CA_CERT");
    env.extend([
        (
            "FUNCTIONS_CUSTOMHANDLER_PORT".to_string(),
            "7071".to_string(),
        ),
        ("HUBSPOKE_HUBS".to_string(), estate.vnet_id("hub")),
        ("HUBSPOKE_CA_CERT".to_string(), bundle.display().to_string()),
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
    ]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let state = |instance: &str| {
        let mut env = env.clone();
        env.push(("WEBSITE_INSTANCE_ID".to_string(), instance.to_string()));
        let mut settings = HandlerSettings::from_settings(|name| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        settings.arm.retry.base_delay = Duration::from_millis(5);
        settings.arm.retry.max_delay = Duration::from_millis(40);
        let storage = settings.storage.clone().unwrap();
        let mut state = State::new(
            settings.clone(),
            LogStore::default(),
            OutcomeSink::to_queue(&storage).unwrap(),
        )
        .unwrap();
        state.leases =
            Some(HubLeases::new(&storage, &settings.instance_id, settings.lease_renew).unwrap());
        Arc::new(state)
    };
    let a = state("instance-a");
    let b = state("instance-b");
    let storage = a.settings.storage.clone().unwrap();
    Instances {
        sim,
        _azurite: azurite,
        _dir: dir,
        storage,
        a,
        b,
        estate,
    }
}

/// The article's estate with `extra` more spokes peered from their side: work for a pass of
/// several sequential writes on the hub.
fn estate(extra: usize) -> Estate {
    let mut estate = article();
    for n in 0..extra {
        let name = format!("more{n}");
        estate.vnet(
            &name,
            &[&format!("10.{}.0.0/16", 20 + n)],
            &[("default", &format!("10.{}.0.0/24", 20 + n))],
        );
        estate.peer(&name, "hub", Flags::default(), "Initiated");
    }
    estate
}

fn item(hub: &str) -> Value {
    json!({"schema": "hubspoke.work/v1", "item_id": uuid::Uuid::new_v4().to_string(), "hub": hub,
           "reason": "event", "requested_by": {"function": "OnNetworkEvent", "invocation_id": "i"},
           "queued_at": "2026-11-30T02:16:22.123Z"})
}

/// hubspoke's successful writes, from the simulator's event log.
fn writes(sim: &SimHandle) -> usize {
    sim.events()
        .iter()
        .filter(|r| {
            r.event["data"]["claims"]["oid"] == hubspoke_sim::identity::DEFAULT_PRINCIPAL_ID
        })
        .count()
}

/// Waits until `instance` holds the hub's lease.
async fn held_by(state: &AppState, hub: &hubspoke_core::id::VnetId, instance: &str) {
    let leases = state.leases.as_ref().unwrap();
    let started = Instant::now();
    loop {
        let holder = leases.holder(hub).await.unwrap();
        if holder.and_then(|h| h.instance).as_deref() == Some(instance) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{instance} never held the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_on_another_instance_joins_the_holders_next_pass_and_nothing_is_written_twice() {
    let setup = instances(estate(3), Duration::from_millis(300), &[]).await;
    let hub_text = setup.estate.vnet_id("hub");
    let hub = hub_text.parse().unwrap();
    let observed = hubspoke_core::model::Observed::from_snapshot(&setup.sim.state()).unwrap();
    let config = hubspoke_core::config::PlanConfig::new(vec![hub_text.parse().unwrap()]);
    let expected: usize = hubspoke_core::plan::plan(&config, &observed)
        .hubs
        .iter()
        .map(|h| h.changes.len())
        .sum();

    let app_a = app(setup.a.clone());
    let first = {
        let body = work_body(&item(&hub_text));
        tokio::spawn(async move { invoke(&app_a, "ReconcileHub", &body).await })
    };
    held_by(&setup.a, &hub, "instance-a").await;
    let joined = invoke(
        &app(setup.b.clone()),
        "ReconcileHub",
        &work_body(&item(&hub_text)),
    )
    .await;
    assert!(joined.status.is_success(), "{:#}", joined.body);
    let joined = joined.outcome().clone();
    assert_eq!(joined["status"], "joined", "{joined:#}");
    assert_eq!(joined["pass"]["elsewhere"], true);
    assert_eq!(joined["pass"]["instance"], "instance-a");
    let pass_id = joined["pass"]["id"].as_str().unwrap().to_string();

    let first = first.await.unwrap();
    assert!(first.status.is_success(), "{:#}", first.body);
    let holder = first.outcome().clone();
    assert_eq!(holder["pass"]["instance"], "instance-a");
    assert_eq!(holder["pass"]["lease"], "held");
    assert_eq!(holder["status"], "changed", "{holder:#}");
    let further = holder["further_passes"].as_array().unwrap();
    assert_eq!(
        further.len(),
        1,
        "the holder ran the pass the mark asked for"
    );
    assert_eq!(further[0]["id"], pass_id.as_str());
    assert_eq!(further[0]["status"], "unchanged", "nothing left to do");
    assert!(
        holder["pass"]["end_time"].as_str().unwrap() <= further[0]["start_time"].as_str().unwrap(),
        "one pass at a time"
    );
    assert_eq!(writes(&setup.sim), expected, "every write once");
    assert!(setup
        .sim
        .requests()
        .iter()
        .all(|r| r.error_code.as_deref() != Some("AnotherOperationInProgress")));
    // Let go: the next item on either instance takes the lease at once.
    let again = invoke(
        &app(setup.b.clone()),
        "ReconcileHub",
        &work_body(&item(&hub_text)),
    )
    .await;
    let again = again.outcome();
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["pass"]["instance"], "instance-b");
    assert!(setup.a.logs.in_flight() == 0 && setup.b.logs.in_flight() == 0);
}

/// Starts a `ReconcileHub` invocation on instance a and, once its pass holds the hub's lease and
/// its first write succeeded, breaks the lease from outside; the invocation, to await.
async fn break_the_lease_after_the_first_write(
    setup: &Instances,
) -> tokio::task::JoinHandle<common::Answer> {
    let hub_text = setup.estate.vnet_id("hub");
    let hub = hub_text.parse().unwrap();
    let app_a = app(setup.a.clone());
    let body = work_body(&item(&hub_text));
    let first = tokio::spawn(async move { invoke(&app_a, "ReconcileHub", &body).await });
    held_by(&setup.a, &hub, "instance-a").await;
    let started = Instant::now();
    while writes(&setup.sim) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no write started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    BlobService::connect(&setup.storage)
        .unwrap()
        .container("hubspoke-leases")
        .unwrap()
        .blob(&hubspoke_functions::lease::blob_name(&hub))
        .break_lease(Duration::ZERO)
        .await
        .unwrap();
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_broken_mid_pass_starts_no_further_change_and_the_item_is_tried_again() {
    let setup = instances(
        estate(6),
        Duration::from_millis(700),
        &[("HUBSPOKE_LEASE_RENEW_SECONDS", "1")],
    )
    .await;
    let hub_text = setup.estate.vnet_id("hub");
    let hub = hub_text.parse().unwrap();
    // An operator (or a stuck instance's successor) breaks the lease.
    let first = break_the_lease_after_the_first_write(&setup).await;
    let broken_at = writes(&setup.sim);

    let answer = first.await.unwrap();
    assert_eq!(
        answer.status.as_u16(),
        500,
        "the queue tries the item again"
    );
    let outcome = answer.body["outcome"].clone();
    assert_valid_outcome(&outcome);
    assert_eq!(outcome["status"], "failed", "{outcome:#}");
    assert_eq!(outcome["pass"]["lease"], "lost");
    assert!(outcome["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "lease_lost"));
    let deferred: Vec<&Value> = outcome["hubs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "deferred")
        .collect();
    assert!(
        !deferred.is_empty(),
        "changes were left unstarted: {outcome:#}"
    );
    assert!(deferred
        .iter()
        .all(|c| c["skipped_because"].as_str().unwrap().contains("lease")));
    // At most the writes in flight when the renewal noticed (one per VNet at a time) ended after.
    assert!(
        writes(&setup.sim) < broken_at + 3,
        "no change started once the lease was lost"
    );
    // The retried item converges.
    let retried = invoke(
        &app(setup.b.clone()),
        "ReconcileHub",
        &work_body(&item(&hub_text)),
    )
    .await;
    assert!(retried.status.is_success(), "{:#}", retried.body);
    let after = hubspoke_core::model::Observed::from_snapshot(&setup.sim.state()).unwrap();
    let config = hubspoke_core::config::PlanConfig::new(vec![hub]);
    assert!(hubspoke_core::plan::plan(&config, &after)
        .hubs
        .iter()
        .all(|h| h.changes.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_broken_after_its_last_renewal_is_found_when_the_pass_ends() {
    // Renewed every 40 s: the pass (a few seconds) ends before any renewal would notice.
    let setup = instances(
        estate(2),
        Duration::from_millis(400),
        &[("HUBSPOKE_LEASE_RENEW_SECONDS", "40")],
    )
    .await;
    let first = break_the_lease_after_the_first_write(&setup).await;

    let answer = first.await.unwrap();
    let outcome = if answer.status.is_success() {
        answer.outcome().clone()
    } else {
        answer.body["outcome"].clone()
    };
    assert_valid_outcome(&outcome);
    assert_eq!(
        outcome["pass"]["lease"], "lost",
        "the pass did not hold its lease to its end: {outcome:#}"
    );
    assert_eq!(outcome["status"], "failed", "{outcome:#}");
    assert!(outcome["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "lease_lost"));
    assert_eq!(
        answer.status.as_u16(),
        500,
        "the queue tries the item again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_host_drops_still_leaves_its_outcome_and_holds_nothing() {
    let setup = instances(estate(2), Duration::from_millis(400), &[]).await;
    let hub_text = setup.estate.vnet_id("hub");
    let hub = hub_text.parse().unwrap();
    let item = item(&hub_text);
    let request = Request::post("/ReconcileHub")
        .header("content-type", "application/json; charset=utf-8")
        .header("x-azure-functions-invocationid", "dropped-1")
        .body(Body::from(work_body(&item).to_string()))
        .unwrap();
    // The host gives up on the request mid-pass (its timeout, or the connection closed).
    let dropped = tokio::time::timeout(
        Duration::from_millis(500),
        app(setup.a.clone()).oneshot(request),
    )
    .await;
    assert!(
        dropped.is_err(),
        "the pass takes longer than the host waited"
    );

    let queue = QueueService::connect(&setup.storage)
        .unwrap()
        .queue("hubspoke-outcomes")
        .unwrap();
    let started = Instant::now();
    let outcome = loop {
        if queue.exists().await.unwrap() {
            if let Some(message) = queue
                .receive(1, Duration::from_secs(30))
                .await
                .unwrap()
                .pop()
            {
                break decode_text(&message.text).json().unwrap();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no outcome was written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_valid_outcome(&outcome);
    assert_eq!(outcome["invocation_id"], "dropped-1");
    assert_eq!(outcome["status"], "failed");
    assert!(outcome["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "request_dropped"));
    assert_eq!(outcome["trigger"]["message"]["work_item"], item["item_id"]);
    assert_eq!(outcome["pass"]["lease"], "held", "the pass ran to its end");
    // Nothing it held is left: its log lines were taken, the lease let go.
    assert_eq!(setup.a.logs.in_flight(), 0);
    assert_eq!(
        setup.a.leases.as_ref().unwrap().holder(&hub).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_restarted_on_its_instance_takes_its_dead_predecessors_lease_at_once() {
    let setup = instances(estate(1), Duration::from_millis(50), &[]).await;
    let hub_text = setup.estate.vnet_id("hub");
    let hub = hub_text.parse().unwrap();
    // The handler process of instance A dies holding the lease: nothing lets it go.
    let predecessor =
        HubLeases::new(&setup.storage, "instance-a", Duration::from_secs(20)).unwrap();
    let held = predecessor.try_acquire(&hub).await.unwrap().unwrap();
    held.name_holder("instance-a", "the-dead-pass", "2026-11-30T02:16:22.123Z")
        .await;
    drop(held);

    // Instance B finds the lease held and joins the next pass, leaving the mark.
    let joined = invoke(
        &app(setup.b.clone()),
        "ReconcileHub",
        &work_body(&item(&hub_text)),
    )
    .await;
    let joined = joined.outcome().clone();
    assert_eq!(joined["status"], "joined", "{joined:#}");
    assert_eq!(joined["pass"]["instance"], "instance-a");

    // The host restarted A's handler (one process per instance): it takes the lease at once,
    // with the instance's own lease id, and runs the pass the mark asked for.
    let restarted = invoke(
        &app(setup.a.clone()),
        "ReconcileHub",
        &work_body(&item(&hub_text)),
    )
    .await;
    assert!(restarted.status.is_success(), "{:#}", restarted.body);
    let restarted = restarted.outcome();
    assert_eq!(restarted["status"], "changed", "{restarted:#}");
    assert_eq!(restarted["pass"]["instance"], "instance-a");
    assert_eq!(
        restarted["pass"]["id"], joined["pass"]["id"],
        "the pass B joined"
    );
}
