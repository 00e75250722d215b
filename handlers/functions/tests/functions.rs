//! The four functions through the router, against the simulator over HTTPS: events in, work
//! items out, passes that converge, Backfill and DriftCheck, refusals and retries. Every outcome
//! is checked against `docs/outcome.schema.json`.
#![allow(clippy::unwrap_used)]
mod common;

use axum::http::StatusCode;
use common::*;
use hubspoke_sim::FaultSpec;
use serde_json::{json, Value};

const PEERING_WRITE: &str = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write";
const WRITE: &str = "Microsoft.Resources.ResourceWriteSuccess";
const DELETE: &str = "Microsoft.Resources.ResourceDeleteSuccess";

fn peering_id(estate: &hubspoke_core::synth::Estate, vnet: &str, peering: &str) -> String {
    format!("{}/virtualNetworkPeerings/{peering}", estate.vnet_id(vnet))
}

/// A work item of the drift check for the estate's hub.
fn drift_item(estate: &hubspoke_core::synth::Estate) -> Value {
    json!({"schema": "hubspoke.work/v1", "item_id": "w", "hub": estate.vnet_id("hub"),
        "reason": "drift", "requested_by": {"function": "DriftCheck", "invocation_id": "i"},
        "queued_at": "2026-11-30T00:00:00.000Z"})
}

/// The routes (prefix → next hop type) of table `name`.
async fn routes(bed: &Bed, name: &str) -> Vec<String> {
    let table = bed
        .state
        .arm
        .get(&bed.estate.table_id(name))
        .await
        .unwrap_or(Value::Null);
    let mut routes: Vec<String> = table["properties"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {}",
                r["properties"]["addressPrefix"].as_str().unwrap_or(""),
                r["properties"]["nextHopType"].as_str().unwrap_or("")
            )
        })
        .collect();
    routes.sort();
    routes
}

#[tokio::test]
async fn a_peering_event_queues_its_hub_and_the_work_item_converges_the_estate() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    let subject = peering_id(&estate, "spoke1", "spoke1-to-hub");
    let event = arm_event(WRITE, PEERING_WRITE, &subject, SOMEONE);
    let answer = invoke(&bed.app, "OnNetworkEvent", &event_body(&event)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let outcome = answer.outcome();
    assert_eq!(outcome["status"], "queued", "{outcome:#}");
    assert_eq!(outcome["trigger"]["kind"], "event_grid");
    assert_eq!(outcome["trigger"]["events"][0]["id"], event["id"]);
    assert_eq!(
        outcome["requests"]["writes"], 0,
        "OnNetworkEvent never writes"
    );
    let work = answer.work();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0]["hub"], estate.vnet_id("hub"));
    assert_eq!(work[0]["requested_by"]["event_id"], event["id"]);
    assert_eq!(outcome["work_items"][0], work[0]["item_id"]);
    assert!(writes(&bed.sim).is_empty());

    let answer = invoke(&bed.app, "ReconcileHub", &work_body(&work[0])).await;
    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    let outcome = answer.outcome();
    assert_eq!(outcome["status"], "changed", "{outcome:#}");
    assert_eq!(
        outcome["trigger"]["message"]["work_item"],
        work[0]["item_id"]
    );
    let hub = &outcome["hubs"][0];
    assert_eq!(hub["hub"], estate.vnet_id("hub"));
    let changes = hub["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["status"] == "applied"));
    let update = changes
        .iter()
        .find(|c| c["kind"] == "update_peering")
        .unwrap();
    assert_eq!(update["before"]["flags"]["useRemoteGateways"], false);
    assert_eq!(update["after"]["flags"]["useRemoteGateways"], true);
    assert_eq!(
        outcome["requests"]["writes"].as_u64().unwrap() as usize,
        changes.len()
    );
    assert_eq!(
        routes(&bed, "hubspoke-rt-spoke1").await,
        ["10.2.0.0/16 VirtualNetworkGateway"]
    );
    assert_eq!(
        routes(&bed, "hubspoke-rt-spoke2").await,
        ["10.1.0.0/16 VirtualNetworkGateway"]
    );

    // The same item again (at least once): a read-only pass.
    bed.sim.clear_requests();
    let again = invoke(&bed.app, "ReconcileHub", &work_body(&work[0])).await;
    assert_eq!(again.outcome()["status"], "unchanged");
    assert!(writes(&bed.sim).is_empty());
}

#[tokio::test]
async fn cloudevents_and_event_grid_events_are_understood_alike() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    let subject = peering_id(&estate, "spoke2", "spoke2-to-hub");
    let grid = arm_event(WRITE, PEERING_WRITE, &subject, SOMEONE);
    let cloud = json!({
        "specversion": "1.0", "type": grid["eventType"], "source": grid["topic"], "id": grid["id"],
        "time": grid["eventTime"], "subject": grid["subject"], "data": grid["data"]
    });
    let from_grid = invoke(&bed.app, "OnNetworkEvent", &event_body(&grid)).await;
    let from_cloud = invoke(&bed.app, "OnNetworkEvent", &event_body(&cloud)).await;
    for answer in [&from_grid, &from_cloud] {
        assert_eq!(answer.outcome()["status"], "queued");
        assert_eq!(answer.work()[0]["hub"], estate.vnet_id("hub"));
    }
}

#[tokio::test]
async fn the_published_wire_fixtures_decode() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    for (function, file) in [
        ("OnNetworkEvent", "OnNetworkEvent.eventgrid.json"),
        ("OnNetworkEvent", "OnNetworkEvent.cloudevents.json"),
        ("DriftCheck", "DriftCheck.timer.json"),
        ("Backfill", "Backfill.http.json"),
        ("ReconcileHub", "ReconcileHub.queue.json"),
    ] {
        let path = format!(
            "{}/../../tests/fixtures/functions/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap();
        let answer = invoke_raw(&bed.app, function, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{file}: {:#}", answer.body);
        let outcome = answer.outcome();
        assert!(
            !matches!(outcome["status"].as_str(), Some("rejected" | "failed")),
            "{file}: {outcome:#}"
        );
        assert!(answer.body["ReturnValue"].is_null());
        assert!(answer.body["Logs"].is_array());
    }
}

#[tokio::test]
async fn events_hubspoke_caused_itself_start_no_pass() {
    let estate = article();
    let me = "5e1f0000-0000-4000-8000-0000000051a0";
    let bed = bed(&estate, &[("HUBSPOKE_SELF_PRINCIPAL_ID", me)], |_| {}).await;
    let subject = peering_id(&estate, "spoke1", "spoke1-to-hub");
    let answer = invoke(
        &bed.app,
        "OnNetworkEvent",
        &event_body(&arm_event(WRITE, PEERING_WRITE, &subject, me)),
    )
    .await;
    let outcome = answer.outcome();
    assert_eq!(outcome["status"], "ignored");
    assert!(outcome["reason"].as_str().unwrap().contains("own identity"));
    assert!(answer.work().is_empty());
    assert_eq!(outcome["requests"]["reads"], 0, "not even a read");
}

#[tokio::test]
async fn unrelated_out_of_scope_and_unwatched_events_are_ignored_with_the_reason() {
    let mut estate = article();
    estate.vnet("lonely", &["10.50.0.0/16"], &[("default", "10.50.0.0/24")]);
    let bed = bed(
        &estate,
        &[(
            "HUBSPOKE_SUBSCRIPTIONS",
            "00000000-0000-0000-0000-000000000001",
        )],
        |_| {},
    )
    .await;
    let other_subscription = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v";
    let nsg = format!(
        "/subscriptions/{}/resourceGroups/rg-network/providers/Microsoft.Network/networkSecurityGroups/nsg",
        estate.subscription
    );
    let cases = [
        (
            arm_event(
                WRITE,
                "Microsoft.Network/virtualNetworks/write",
                &estate.vnet_id("lonely"),
                SOMEONE,
            ),
            "no peering with a hub",
        ),
        (
            arm_event(
                WRITE,
                "Microsoft.Network/virtualNetworks/write",
                other_subscription,
                SOMEONE,
            ),
            "outside HUBSPOKE_SUBSCRIPTIONS",
        ),
        (
            arm_event(
                WRITE,
                "Microsoft.Network/networkSecurityGroups/write",
                &nsg,
                SOMEONE,
            ),
            "not one hubspoke watches",
        ),
        (
            arm_event(
                "Microsoft.Resources.ResourceWriteFailure",
                PEERING_WRITE,
                &peering_id(&estate, "spoke1", "spoke1-to-hub"),
                SOMEONE,
            ),
            "not acted upon",
        ),
        (
            arm_event(
                WRITE,
                "Microsoft.Network/virtualNetworks/write",
                &estate.vnet_id("never-existed"),
                SOMEONE,
            ),
            "no hub has a peering",
        ),
    ];
    for (event, expected) in cases {
        let answer = invoke(&bed.app, "OnNetworkEvent", &event_body(&event)).await;
        assert_eq!(answer.status, StatusCode::OK);
        let outcome = answer.outcome();
        assert_eq!(outcome["status"], "ignored", "{expected}: {outcome:#}");
        assert!(
            outcome["reason"].as_str().unwrap().contains(expected),
            "{expected}: {outcome:#}"
        );
        assert!(answer.work().is_empty());
    }
    assert!(writes(&bed.sim).is_empty());
}

#[tokio::test]
async fn deleted_resources_are_mapped_through_the_hub_and_tables_through_their_subnets() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    // Converge first, so that the hub has its side of every pair.
    let item = json!({"schema": "hubspoke.work/v1", "item_id": "w", "hub": estate.vnet_id("hub"),
        "reason": "backfill", "requested_by": {"function": "Backfill", "invocation_id": "i"},
        "queued_at": "2026-11-30T00:00:00.000Z"});
    assert_eq!(
        invoke(&bed.app, "ReconcileHub", &work_body(&item))
            .await
            .outcome()["status"],
        "changed"
    );
    bed.state
        .arm
        .delete(&estate.vnet_id("spoke2"))
        .await
        .unwrap();
    let hub = estate.vnet_id("hub");
    let cases = [
        arm_event(DELETE, "Microsoft.Network/virtualNetworks/delete", &estate.vnet_id("spoke2"), SOMEONE),
        arm_event(
            DELETE,
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/delete",
            &peering_id(&estate, "spoke2", "spoke2-to-hub"),
            SOMEONE,
        ),
        arm_event(
            WRITE,
            "Microsoft.Network/routeTables/routes/write",
            &format!("{}/routes/mine", estate.table_id("hubspoke-rt-spoke1")),
            SOMEONE,
        ),
        arm_event(
            WRITE,
            "Microsoft.Resources/tags/write",
            &format!("{}/providers/Microsoft.Resources/tags/default", estate.vnet_id("spoke1")),
            SOMEONE,
        ),
        arm_event(
            WRITE,
            "Microsoft.Network/virtualNetworkGateways/write",
            &format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworkGateways/hub-vpngw",
                estate.subscription, estate.resource_group
            ),
            SOMEONE,
        ),
    ];
    for event in cases {
        let answer = invoke(&bed.app, "OnNetworkEvent", &event_body(&event)).await;
        let outcome = answer.outcome();
        assert_eq!(outcome["status"], "queued", "{outcome:#}");
        assert_eq!(answer.work()[0]["hub"], hub, "{outcome:#}");
    }
    let unused_table = arm_event(
        DELETE,
        "Microsoft.Network/routeTables/delete",
        &estate.table_id("gone"),
        SOMEONE,
    );
    let answer = invoke(&bed.app, "OnNetworkEvent", &event_body(&unused_table)).await;
    assert_eq!(answer.outcome()["status"], "ignored");
}

#[tokio::test]
async fn backfill_dry_run_answers_the_plan_and_writes_nothing() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    let hub = estate.vnet_id("hub");
    let answer = invoke(
        &bed.app,
        "Backfill",
        &backfill_body("POST", &format!("hub={}&dryRun=true", encode(&hub))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let res = &answer.body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    assert!(res["headers"]["Content-Type"]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
    let plan = &res["body"]["plan"];
    assert_eq!(plan["hubs"][0]["hub"], hub);
    assert!(!plan["hubs"][0]["changes"].as_array().unwrap().is_empty());
    let outcome = answer.outcome();
    assert_eq!(outcome["dry_run"], true);
    assert!(outcome["hubs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "planned"));
    assert!(answer.work().is_empty(), "a dry run queues nothing");
    assert!(writes(&bed.sim).is_empty(), "a dry run writes nothing");
}

#[tokio::test]
async fn a_backfill_that_cannot_observe_within_an_http_request_answers_202_and_plans_in_a_work_item(
) {
    let estate = article();
    // Every ARM answer takes 1.5 s, the answer limit is 1 s: the observation cannot finish.
    let bed = bed(
        &estate,
        &[("HUBSPOKE_BACKFILL_ANSWER_SECONDS", "1")],
        |config| {
            config.latency.response = std::time::Duration::from_millis(1500);
        },
    )
    .await;
    let hub = estate.vnet_id("hub");
    let answer = invoke(
        &bed.app,
        "Backfill",
        &backfill_body("POST", &format!("hub={}&dryRun=true", encode(&hub))),
    )
    .await;
    let res = &answer.body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202, "{:#}", answer.body);
    assert!(res["body"]["plan"].is_null());
    assert!(res["body"]["message"].as_str().unwrap().contains("outcome"));
    let work = answer.work();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0]["dry_run"], true);
    assert_eq!(res["body"]["work_items"][0]["item_id"], work[0]["item_id"]);
    assert_eq!(answer.outcome()["status"], "queued");
    assert_valid_outcome(answer.outcome());

    // The work item delivers the plan as its outcome, and writes nothing.
    let planned = invoke(&bed.app, "ReconcileHub", &work_body(&work[0])).await;
    let outcome = planned.outcome();
    assert_eq!(outcome["dry_run"], true, "{outcome:#}");
    let changes = outcome["hubs"][0]["changes"].as_array().unwrap();
    assert!(!changes.is_empty(), "{outcome:#}");
    assert!(changes.iter().all(|c| c["status"] == "planned"));
    assert!(writes(&bed.sim).is_empty(), "a dry run writes nothing");

    // A real backfill that cannot answer in time queues the usual work.
    let answer = invoke(&bed.app, "Backfill", &backfill_body("POST", "")).await;
    let res = &answer.body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202, "{:#}", answer.body);
    let work = answer.work();
    assert_eq!(work.len(), 1);
    assert!(work[0].get("dry_run").is_none(), "{:#}", work[0]);
}

#[tokio::test]
async fn backfill_queues_every_hub_and_answers_the_plan_it_expects() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    let answer = invoke(&bed.app, "Backfill", &backfill_body("POST", "")).await;
    let res = &answer.body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202, "{:#}", answer.body);
    let work = answer.work();
    assert_eq!(work.len(), 1);
    assert_eq!(res["body"]["work_items"][0]["item_id"], work[0]["item_id"]);
    assert_eq!(work[0]["reason"], "backfill");
    let outcome = answer.outcome();
    assert_eq!(outcome["status"], "queued");
    assert_eq!(outcome["dry_run"], false);
    assert!(writes(&bed.sim).is_empty(), "the work is ReconcileHub's");
    let converged = invoke(&bed.app, "ReconcileHub", &work_body(&work[0])).await;
    assert_eq!(converged.outcome()["status"], "changed");
}

#[tokio::test]
async fn backfill_refuses_bad_parameters_and_queues_nothing() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    let other = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/virtualNetworks/spoke1";
    let cases = [
        ("POST", format!("hub={}", encode(other)), 400, "not a configured hub"),
        ("POST", "hub=nonsense".to_string(), 400, "parameter hub"),
        ("POST", format!("hub={}", encode("/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/.."), ), 400, "parameter hub"),
        ("POST", "dryRun=maybe".to_string(), 400, "parameter dryRun"),
        ("POST", "dryrun=true&dryRun=false".to_string(), 400, "more than once"),
        ("POST", "dry_run=true".to_string(), 400, "\"dry_run\" is not known"),
        ("GET", String::new(), 405, "takes POST"),
    ];
    for (method, query, status, expected) in cases {
        let answer = invoke(&bed.app, "Backfill", &backfill_body(method, &query)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "the invocation itself succeeds"
        );
        let res = &answer.body["Outputs"]["res"];
        assert_eq!(res["statusCode"], status, "{query}");
        assert!(
            res["body"]["error"].as_str().unwrap().contains(expected),
            "{query}: {res:#}"
        );
        assert!(answer.work().is_empty(), "{query}: nothing queued");
        assert_eq!(answer.outcome()["status"], "rejected");
    }
    assert!(bed.sim.requests().is_empty(), "not even a read");
}

#[tokio::test]
async fn drift_check_queues_every_configured_hub() {
    let mut estate = article();
    estate.hub(
        "hub2",
        "10.100.0.0/16",
        "10.100.255.0/27",
        Some("Succeeded"),
    );
    let hubs = format!("{},{}", estate.vnet_id("hub"), estate.vnet_id("hub2"));
    let bed = bed(&estate, &[("HUBSPOKE_HUBS", &hubs)], |_| {}).await;
    let answer = invoke(&bed.app, "DriftCheck", &timer_body()).await;
    let outcome = answer.outcome();
    assert_eq!(outcome["status"], "queued");
    let hubs: Vec<Value> = answer.work().iter().map(|w| w["hub"].clone()).collect();
    assert_eq!(hubs, [estate.vnet_id("hub"), estate.vnet_id("hub2")]);
    assert!(bed.sim.requests().is_empty());
}

#[tokio::test]
async fn a_refused_write_ends_in_the_outcome_not_in_a_retry() {
    let estate = article();
    let bed = bed(&estate, &[], |config| {
        config.faults = FaultSpec::parse("PUT */routeTables/hubspoke-rt-spoke1=403").unwrap();
    })
    .await;
    let item = drift_item(&estate);
    let answer = invoke(&bed.app, "ReconcileHub", &work_body(&item)).await;
    assert_eq!(answer.status, StatusCode::OK, "a refusal is not retried");
    let outcome = answer.outcome();
    assert_eq!(outcome["status"], "partial", "{outcome:#}");
    let changes = outcome["hubs"][0]["changes"].as_array().unwrap();
    let refused = changes.iter().find(|c| c["status"] == "failed").unwrap();
    assert_eq!(refused["error"]["code"], "AuthorizationFailed");
    assert!(refused["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("Microsoft.Network/routeTables/write"));
    let skipped = changes.iter().find(|c| c["status"] == "skipped").unwrap();
    assert!(skipped["skipped_because"]
        .as_str()
        .unwrap()
        .contains("depends on"));
}

#[tokio::test]
async fn a_write_still_throttled_after_the_retries_fails_the_invocation_for_the_queue_to_retry() {
    let estate = article();
    let bed = bed(&estate, &[("HUBSPOKE_ARM_MAX_ATTEMPTS", "2")], |config| {
        config.faults = FaultSpec::parse("PUT */routeTables/*=429").unwrap();
    })
    .await;
    let item = drift_item(&estate);
    let answer = invoke(&bed.app, "ReconcileHub", &work_body(&item)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let error = answer.body["error"].as_str().unwrap();
    assert!(error.contains("failed"), "{error}");
    // The host drops a failed invocation's outputs; the adapter still produced the outcome.
    let outcome = &answer.body["outcome"];
    assert_valid_outcome(outcome);
    assert_eq!(outcome["status"], "partial");
    assert!(outcome["requests"]["throttled"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn work_items_for_a_busy_hub_collapse_into_one_more_pass() {
    let estate = article();
    let bed = bed(&estate, &[], |config| {
        // Slow operations, so that the items arrive while the first pass runs.
        config.latency.lro = std::time::Duration::from_millis(150);
    })
    .await;
    let item = |n: usize| {
        json!({"schema": "hubspoke.work/v1", "item_id": format!("w{n}"), "hub": estate.vnet_id("hub"),
            "reason": "event", "requested_by": {"function": "OnNetworkEvent", "invocation_id": "i"},
            "queued_at": "2026-11-30T00:00:00.000Z"})
    };
    let mut tasks = Vec::new();
    for n in 0..6 {
        let app = bed.app.clone();
        let body = work_body(&item(n));
        tasks.push(tokio::spawn(async move {
            invoke(&app, "ReconcileHub", &body).await
        }));
    }
    let mut passes = std::collections::BTreeSet::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        let outcome = answer.outcome();
        passes.insert(outcome["pass"]["id"].as_str().unwrap().to_string());
    }
    assert!(passes.len() <= 2, "six items, {} passes", passes.len());
}

#[tokio::test]
async fn a_pass_that_reaches_its_time_limit_continues_in_a_work_item_it_queues() {
    let estate = article();
    // One second: the pass starts what is ready at once, the operations take longer.
    let bed = bed(
        &estate,
        &[("HUBSPOKE_PASS_TIME_LIMIT_SECONDS", "1")],
        |config| {
            config.latency.lro = std::time::Duration::from_millis(1200);
        },
    )
    .await;
    let mut item = drift_item(&estate);
    let mut slices = 0;
    loop {
        slices += 1;
        assert!(slices <= 10, "every slice makes progress");
        let answer = invoke(&bed.app, "ReconcileHub", &work_body(&item)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "a slice is no failed attempt"
        );
        let outcome = answer.outcome();
        let work = answer.work();
        match outcome["status"].as_str().unwrap() {
            "continued" => {
                let hub = &outcome["hubs"][0];
                assert!(
                    hub["detail"].as_str().unwrap().contains("time limit"),
                    "{hub:#}"
                );
                let changes = hub["changes"].as_array().unwrap();
                assert!(changes.iter().any(|c| c["status"] == "applied"));
                let deferred = changes.iter().find(|c| c["status"] == "deferred").unwrap();
                assert!(deferred["skipped_because"]
                    .as_str()
                    .unwrap()
                    .contains("next pass"));
                assert!(changes
                    .iter()
                    .all(|c| c["status"] == "applied" || c["status"] == "deferred"));
                assert_eq!(work.len(), 1, "one continuation: {outcome:#}");
                assert_eq!(work[0]["hub"], estate.vnet_id("hub"));
                assert_eq!(work[0]["reason"], "continuation");
                assert_eq!(work[0]["requested_by"]["function"], "ReconcileHub");
                assert_eq!(outcome["work_items"][0], work[0]["item_id"]);
                item = work[0].clone();
            }
            "changed" | "unchanged" => {
                assert!(work.is_empty(), "nothing left to continue: {outcome:#}");
                break;
            }
            other => panic!("{other}: {outcome:#}"),
        }
    }
    assert!(slices >= 2, "the time limit cut the first pass");
    assert_eq!(
        routes(&bed, "hubspoke-rt-spoke1").await,
        ["10.2.0.0/16 VirtualNetworkGateway"]
    );
    assert_eq!(
        routes(&bed, "hubspoke-rt-spoke2").await,
        ["10.1.0.0/16 VirtualNetworkGateway"]
    );
}

#[tokio::test]
async fn a_pass_still_running_at_its_hard_end_is_cut_and_its_outcome_tells_what_it_did() {
    let estate = article();
    // functionTimeout 130 s: the pass's hard end is (130 - 120) / 2 = 5 s. The write of one route
    // table is answered only after 30 s, so the pass is still waiting for it then.
    let bed = bed(
        &estate,
        &[("AzureFunctionsJobHost__functionTimeout", "00:02:10")],
        |config| {
            config.faults =
                FaultSpec::parse("PUT */routeTables/hubspoke-rt-spoke2*=slow:30s#1").unwrap();
        },
    )
    .await;
    let item = drift_item(&estate);
    let answer = invoke(&bed.app, "ReconcileHub", &work_body(&item)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.body["error"].as_str().unwrap().contains("hard end"));
    let outcome = &answer.body["outcome"];
    assert_valid_outcome(outcome);
    assert_eq!(outcome["status"], "failed");
    assert!(
        outcome["duration_ms"].as_u64().unwrap() < 30_000,
        "it did not wait for the slow write: {outcome:#}"
    );
    assert_eq!(outcome["errors"][0]["code"], "pass_cut");
    // What the pass did before the cut is told, not lost with it.
    let requests = &outcome["requests"];
    assert!(requests["reads"].as_u64().unwrap() > 0, "{outcome:#}");
    let written = writes(&bed.sim).len() as u64;
    assert!(written >= 2, "writes that ended before the cut: {written}");
    assert_eq!(
        requests["writes"].as_u64().unwrap(),
        written + 1,
        "the writes answered, and the one still waiting: {outcome:#}"
    );
    let hub = &outcome["hubs"][0];
    let changes = hub["changes"].as_array().unwrap();
    assert!(
        !changes.is_empty() && changes.iter().all(|c| c["status"] == "applied"),
        "the changes that ended before the cut: {hub:#}"
    );
    assert!(changes
        .iter()
        .all(|c| !c["target"].as_str().unwrap().contains("hubspoke-rt-spoke2")));
    let detail = hub["detail"].as_str().unwrap();
    assert!(detail.contains("still in flight"), "{detail}");
    // The queue's retry of the item observes what was done and finishes the rest.
    let retry = queue_body(&serde_json::to_string_pretty(&item).unwrap(), 2);
    let answer = invoke(&bed.app, "ReconcileHub", &retry).await;
    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    assert_eq!(answer.outcome()["status"], "changed");
    assert_eq!(
        routes(&bed, "hubspoke-rt-spoke2").await,
        ["10.1.0.0/16 VirtualNetworkGateway"]
    );
}

#[tokio::test]
async fn with_a_management_group_scope_an_event_is_triaged_by_where_its_subscription_sits() {
    let estate = article();
    let bed = bed(&estate, &[("HUBSPOKE_MANAGEMENT_GROUPS", "mg-lz")], |_| {}).await;
    let vended = "00000000-0000-0000-0000-0000000000a5";
    let vnet_in = |subscription: &str| {
        format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v")
    };
    let spec = |subscriptions: &[&str]| hubspoke_sim::GroupSpec {
        display_name: None,
        parent: None,
        subscriptions: subscriptions.iter().map(|s| s.to_string()).collect(),
    };
    bed.sim.put_management_group("mg-lz", &spec(&[])).unwrap();
    let event = |subject: &str| {
        event_body(&arm_event(
            WRITE,
            "Microsoft.Network/virtualNetworks/write",
            subject,
            SOMEONE,
        ))
    };
    // The hub's own subscription is always in scope, with no listing.
    let hub_side = invoke(
        &bed.app,
        "OnNetworkEvent",
        &event(&estate.vnet_id("spoke1")),
    )
    .await;
    assert_eq!(hub_side.outcome()["status"], "queued");
    // Not (yet) under the group: ignored, out_of_scope.
    let outside = invoke(&bed.app, "OnNetworkEvent", &event(&vnet_in(vended))).await;
    let outcome = outside.outcome();
    assert_eq!(outcome["status"], "ignored", "{outcome:#}");
    assert!(
        outcome["reason"]
            .as_str()
            .unwrap()
            .starts_with("out_of_scope: subscription 00000000-0000-0000-0000-0000000000a5 is not in HUBSPOKE_MANAGEMENT_GROUPS (mg-lz)"),
        "{outcome:#}"
    );
    assert_eq!(outcome["requests"]["reads"], 1, "one listing of the group");
    // The same subscription again at once: no second listing.
    let again = invoke(&bed.app, "OnNetworkEvent", &event(&vnet_in(vended))).await;
    assert_eq!(again.outcome()["requests"]["reads"], 0);
    // Another subscription vended into the group: a miss lists the group again, and it is in.
    let newer = "00000000-0000-0000-0000-0000000000a6";
    bed.sim
        .put_management_group("mg-lz", &spec(&[newer]))
        .unwrap();
    let inside = invoke(&bed.app, "OnNetworkEvent", &event(&vnet_in(newer))).await;
    let outcome = inside.outcome();
    assert!(
        !outcome["reason"]
            .as_str()
            .unwrap_or("")
            .contains("out_of_scope"),
        "{outcome:#}"
    );
    // The VNet does not exist: the mapping reads it, then the hub's peerings, and finds no hub.
    assert_eq!(outcome["status"], "ignored");
    assert_eq!(
        outcome["requests"]["reads"], 3,
        "the listing, the VNet, the hub"
    );
    bed.sim.shutdown().await;
}
