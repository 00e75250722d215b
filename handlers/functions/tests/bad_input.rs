//! Bad input at every level, each with a clear answer, no ARM write, and the handler still
//! serving afterwards: malformed envelopes, wrong types, events for unknown or hostile resource
//! ids, work items that are not, oversized bodies, unknown functions, and a function that panics.
#![allow(clippy::unwrap_used)]
mod common;

use axum::http::StatusCode;
use axum::Router;
use common::*;
use hubspoke_functions::adapter::{function, Failure, Invocation, Reply};
use hubspoke_functions::envelope::TimerInput;
use hubspoke_functions::AppState;
use serde_json::{json, Value};

/// After each bad input, the handler still answers a good one.
async fn still_serving(app: &Router) {
    let answer = invoke(app, "DriftCheck", &timer_body()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.outcome()["status"], "queued");
}

#[tokio::test]
async fn malformed_envelopes_are_answered_400_with_what_is_wrong() {
    let bed = bed(&article(), &[], |_| {}).await;
    let cases: [(&[u8], &str); 6] = [
        (b"", "not JSON"),
        (b"{\"Data\": ", "not JSON"),
        (b"[]", "an array"),
        (b"{\"Metadata\": {}}", "no \"Data\""),
        (b"{\"Data\": \"x\"}", "\"Data\" is a string"),
        (
            b"{\"Data\": {}, \"Metadata\": 7}",
            "\"Metadata\" is a number",
        ),
    ];
    for function in ["OnNetworkEvent", "ReconcileHub", "Backfill", "DriftCheck"] {
        for (body, expected) in cases {
            let answer = invoke_raw(&bed.app, function, body.to_vec()).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{function}");
            let error = answer.body["error"].as_str().unwrap();
            assert!(error.contains(expected), "{function}: {error}");
        }
    }
    still_serving(&bed.app).await;
    assert!(writes(&bed.sim).is_empty());
}

#[tokio::test]
async fn inputs_of_the_wrong_type_are_rejected_with_an_outcome_and_not_retried() {
    let bed = bed(&article(), &[], |_| {}).await;
    let cases = [
        ("OnNetworkEvent", json!({"Data": {}}), "eventGridEvent"),
        (
            "OnNetworkEvent",
            json!({"Data": {"eventGridEvent": 5}}),
            "a number",
        ),
        (
            "OnNetworkEvent",
            json!({"Data": {"eventGridEvent": "\"[1]\""}}),
            "an array",
        ),
        (
            "OnNetworkEvent",
            json!({"Data": {"eventGridEvent": {"id": 1}}}),
            "not an Event Grid ARM event",
        ),
        (
            "OnNetworkEvent",
            json!({"Data": {"eventGridEvent": {"specversion": "0.3", "type": "t", "source": "s", "id": "i", "data": {"operationName": "x"}}}}),
            "not 1.0",
        ),
        (
            "ReconcileHub",
            json!({"Data": {"workItem": "\"hello\""}, "Metadata": {"DequeueCount": "1"}}),
            "not a work item",
        ),
        (
            "ReconcileHub",
            json!({"Data": {"workItem": "\"{}\""}, "Metadata": {"DequeueCount": "1"}}),
            "no \"schema\"",
        ),
        (
            "ReconcileHub",
            json!({"Data": {"workItem": {"schema": "hubspoke.work/v1"}}, "Metadata": {"DequeueCount": "one"}}),
            "DequeueCount",
        ),
        ("Backfill", json!({"Data": {"req": "x"}}), "not an object"),
        (
            "Backfill",
            json!({"Data": {"req": {"Url": "https://a/api/backfill"}}}),
            "req.Method",
        ),
        (
            "DriftCheck",
            json!({"Data": {"timer": {"IsPastDue": "no"}}}),
            "IsPastDue",
        ),
    ];
    for (function, body, expected) in cases {
        let answer = invoke(&bed.app, function, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{function} {body}: a retry cannot fix bad input"
        );
        let outcome = answer.outcome();
        assert_eq!(outcome["status"], "rejected", "{function} {body}");
        assert!(
            outcome["reason"].as_str().unwrap().contains(expected),
            "{function} {body}: {outcome:#}"
        );
        assert!(answer.work().is_empty());
        if function == "Backfill" {
            assert_eq!(answer.body["Outputs"]["res"]["statusCode"], 400);
        }
    }
    still_serving(&bed.app).await;
    assert!(bed.sim.requests().is_empty(), "no ARM request at all");
}

#[tokio::test]
async fn hostile_or_unknown_resources_in_events_write_nothing() {
    let estate = article();
    let bed = bed(
        &estate,
        &[(
            "HUBSPOKE_SUBSCRIPTIONS",
            "00000000-0000-0000-0000-000000000001",
        )],
        |_| {},
    )
    .await;
    let hub = estate.vnet_id("hub");
    let write = "Microsoft.Network/virtualNetworks/write";
    let mut mismatched = arm_event(
        "Microsoft.Resources.ResourceWriteSuccess",
        write,
        &estate.vnet_id("spoke1"),
        SOMEONE,
    );
    mismatched["data"]["subscriptionId"] = json!("22222222-2222-2222-2222-222222222222");
    let mut two_names = arm_event(
        "Microsoft.Resources.ResourceWriteSuccess",
        write,
        &estate.vnet_id("spoke1"),
        SOMEONE,
    );
    two_names["subject"] = json!(estate.vnet_id("spoke2"));
    let cases: Vec<(Value, &str, &str)> = vec![
        (arm_event("Microsoft.Resources.ResourceWriteSuccess", write, &format!("{hub}/../spoke1"), SOMEONE), "rejected", "not a resource name"),
        (arm_event("Microsoft.Resources.ResourceWriteSuccess", write, &format!("{hub}%2F..%2Fx"), SOMEONE), "rejected", "not a resource name"),
        (arm_event("Microsoft.Resources.ResourceWriteSuccess", write, "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/routeTables/t", SOMEONE), "rejected", "virtual network"),
        (arm_event("Microsoft.Resources.ResourceWriteSuccess", write, "https://evil.example/subscriptions/x", SOMEONE), "rejected", "malformed"),
        (arm_event("Microsoft.Resources.ResourceWriteSuccess", write, "/subscriptions/33333333-3333-3333-3333-333333333333/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v", SOMEONE), "ignored", "outside HUBSPOKE_SUBSCRIPTIONS"),
        (mismatched, "rejected", "not the subscription"),
        (two_names, "rejected", "different resources"),
        (arm_event("Microsoft.Resources.ResourceWriteSuccess", write, &estate.vnet_id("ghost"), SOMEONE), "ignored", "no hub has a peering"),
    ];
    for (event, status, expected) in cases {
        let answer = invoke(&bed.app, "OnNetworkEvent", &event_body(&event)).await;
        assert_eq!(answer.status, StatusCode::OK);
        let outcome = answer.outcome();
        assert_eq!(outcome["status"], status, "{expected}: {outcome:#}");
        assert!(
            outcome["reason"].as_str().unwrap().contains(expected),
            "{expected}: {outcome:#}"
        );
        assert!(answer.work().is_empty());
    }
    assert!(writes(&bed.sim).is_empty());
    still_serving(&bed.app).await;
}

#[tokio::test]
async fn work_items_for_hubs_not_configured_are_rejected() {
    let estate = article();
    let bed = bed(&estate, &[], |_| {}).await;
    for hub in [
        estate.vnet_id("spoke1"),
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/.."
            .to_string(),
    ] {
        let item = json!({"schema": "hubspoke.work/v1", "item_id": "w", "hub": hub, "reason": "event",
            "requested_by": {"function": "OnNetworkEvent", "invocation_id": "i"}, "queued_at": "t"});
        let answer = invoke(&bed.app, "ReconcileHub", &work_body(&item)).await;
        assert_eq!(answer.status, StatusCode::OK);
        let outcome = answer.outcome();
        assert_eq!(outcome["status"], "rejected", "{outcome:#}");
        assert!(outcome["reason"].as_str().unwrap().contains("hub"));
    }
    assert!(bed.sim.requests().is_empty());
}

#[tokio::test]
async fn oversized_bodies_and_unknown_functions_are_refused() {
    let bed = bed(&article(), &[], |_| {}).await;
    let huge = vec![b' '; hubspoke_functions::adapter::MAX_BODY_BYTES + 1];
    let answer = invoke_raw(&bed.app, "OnNetworkEvent", huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    for path in ["Nope", "onnetworkevent", "OnNetworkEvent/extra"] {
        let answer = invoke(&bed.app, path, &timer_body()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer.body["error"]
            .as_str()
            .unwrap()
            .contains("POST /OnNetworkEvent"));
    }
    still_serving(&bed.app).await;
}

async fn panics(_invocation: Invocation<TimerInput>, _state: AppState) -> Result<Reply, Failure> {
    panic!("a bug");
}

#[tokio::test]
async fn a_panic_fails_the_invocation_and_the_handler_keeps_serving() {
    let bed = bed(&article(), &[], |_| {}).await;
    let router = Router::new()
        .route(
            "/DriftCheck",
            function::<TimerInput, _, _>("DriftCheck", panics),
        )
        .with_state(bed.state.clone());
    let answer = invoke(&router, "DriftCheck", &timer_body()).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("panicked: a bug"));
    // The same state keeps serving the real functions.
    still_serving(&bed.app).await;
    let again = invoke(&router, "DriftCheck", &timer_body()).await;
    assert_eq!(again.status, StatusCode::INTERNAL_SERVER_ERROR);
}
