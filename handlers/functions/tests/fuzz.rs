//! Generated hostile input against every decoder that faces the outside: the invocation envelope,
//! Event Grid and CloudEvents events, resource ids, queue work items and Backfill's query. No
//! panic, no ARM write, every rejection a clear message; the handler keeps serving.
//!
//! Bounded here (proptest's case count); for a longer campaign:
//! `PROPTEST_CASES=20000 cargo nextest run -p hubspoke-functions --test fuzz`.
#![allow(clippy::unwrap_used)]
mod common;

use axum::http::StatusCode;
use common::*;
use hubspoke_core::id::{PeeringId, RouteId, RouteTableId, SubnetId, VnetId};
use hubspoke_functions::envelope::{
    EventGridInput, HttpInput, InvocationRequest, QueueInput, TimerInput, TriggerInput,
};
use hubspoke_functions::events::{ArmEvent, Operation, Resource, ResourceKind};
use hubspoke_functions::functions::backfill::Params;
use hubspoke_functions::work::WorkItem;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        text_like_ids().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_names(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names the decoders look for, and others.
fn field_names() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Data",
            "Metadata",
            "eventGridEvent",
            "workItem",
            "req",
            "timer",
            "id",
            "subject",
            "eventType",
            "type",
            "specversion",
            "source",
            "topic",
            "eventTime",
            "time",
            "data",
            "operationName",
            "resourceUri",
            "subscriptionId",
            "claims",
            "schema",
            "item_id",
            "hub",
            "reason",
            "requested_by",
            "queued_at",
            "function",
            "invocation_id",
            "Method",
            "Url",
            "Query",
            "IsPastDue",
            "DequeueCount",
            "Id",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z_]{1,12}",
    ]
}

/// Strings shaped like resource ids, with hostile segments spliced in.
fn text_like_ids() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("subscriptions".to_string()),
        Just("resourceGroups".to_string()),
        Just("providers".to_string()),
        Just("Microsoft.Network".to_string()),
        Just("virtualNetworks".to_string()),
        Just("virtualNetworkPeerings".to_string()),
        Just("subnets".to_string()),
        Just("routeTables".to_string()),
        Just("routes".to_string()),
        Just("virtualNetworkGateways".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("%2e%2e".to_string()),
        Just("a?b=c".to_string()),
        Just("x#y".to_string()),
        Just("".to_string()),
        "[a-z0-9-]{1,10}",
        ".{0,6}",
    ];
    prop::collection::vec(segment, 0..12).prop_map(|segments| format!("/{}", segments.join("/")))
}

/// An ARM event: mostly well formed, with fields replaced or removed at random.
fn arm_event_like() -> impl Strategy<Value = Value> {
    let operation = prop::sample::select(vec![
        "Microsoft.Network/virtualNetworks/write",
        "Microsoft.Network/virtualNetworks/delete",
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
        "Microsoft.Network/virtualNetworks/subnets/delete",
        "Microsoft.Network/routeTables/routes/write",
        "Microsoft.Network/virtualNetworkGateways/write",
        "Microsoft.Resources/tags/write",
        "Microsoft.Storage/storageAccounts/write",
        "write",
    ]);
    let vnet = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/virtualNetworks";
    let real = prop::sample::select(vec![
        format!("{vnet}/hub"),
        format!("{vnet}/spoke1"),
        format!("{vnet}/spoke1/virtualNetworkPeerings/spoke1-to-hub"),
        format!("{vnet}/hub/subnets/GatewaySubnet"),
        format!("{vnet}/ghost"),
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/routeTables/t/routes/r".to_string(),
    ]);
    (
        operation,
        prop_oneof![text_like_ids(), real],
        any::<bool>(),
        prop::collection::vec((field_names(), any_json()), 0..3),
        prop::collection::vec(field_names(), 0..2),
    )
        .prop_map(|(operation, subject, cloud, replaced, removed)| {
            let mut event = arm_event(
                "Microsoft.Resources.ResourceWriteSuccess",
                operation,
                &subject,
                SOMEONE,
            );
            if cloud {
                event = json!({"specversion": "1.0", "type": event["eventType"], "source": event["topic"],
                    "id": event["id"], "subject": event["subject"], "data": event["data"]});
            }
            for (key, value) in replaced {
                if key.len() % 2 == 0 {
                    event["data"][key] = value;
                } else {
                    event[key] = value;
                }
            }
            if let Some(map) = event.as_object_mut() {
                for key in removed {
                    map.remove(&key);
                }
            }
            event
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn envelope_and_trigger_decoders_never_panic(body in prop::collection::vec(any::<u8>(), 0..300), value in any_json()) {
        let _ = InvocationRequest::parse(&body);
        let text = value.to_string();
        if let Ok(request) = InvocationRequest::parse(text.as_bytes()) {
            let _ = EventGridInput::decode(&request);
            let _ = QueueInput::decode(&request);
            let _ = HttpInput::decode(&request);
            let _ = TimerInput::decode(&request);
        }
        let wrapped = json!({"Data": {"eventGridEvent": value.clone(), "workItem": value.clone(),
            "req": value.clone(), "timer": value}, "Metadata": {"DequeueCount": "x"}});
        let request = InvocationRequest::parse(wrapped.to_string().as_bytes()).unwrap();
        for error in [
            EventGridInput::decode(&request).err().map(|e| e.0),
            HttpInput::decode(&request).err().map(|e| e.0),
            TimerInput::decode(&request).err().map(|e| e.0),
        ].into_iter().flatten() {
            prop_assert!(!error.is_empty());
        }
    }

    #[test]
    fn ids_that_parse_round_trip_and_cannot_change_a_url(text in text_like_ids()) {
        macro_rules! check {
            ($ty:ty) => {
                match text.parse::<$ty>() {
                    Ok(id) => {
                        let printed = id.to_string();
                        prop_assert_eq!(printed.parse::<$ty>().unwrap(), id);
                        for segment in printed.split('/') {
                            prop_assert!(segment != "." && segment != "..", "{}", printed);
                            prop_assert!(!segment.contains(['?', '#', '%']), "{}", printed);
                        }
                    }
                    Err(error) => prop_assert!(error.to_string().contains("malformed"), "{}", error),
                }
            };
        }
        check!(VnetId);
        check!(SubnetId);
        check!(PeeringId);
        check!(RouteTableId);
        check!(RouteId);
        for kind in [ResourceKind::VirtualNetwork, ResourceKind::Peering, ResourceKind::Subnet,
                     ResourceKind::RouteTable, ResourceKind::Route, ResourceKind::Gateway, ResourceKind::Tags] {
            if let Err(error) = Resource::parse(&text, kind) {
                prop_assert!(!error.0.is_empty());
            }
        }
    }

    #[test]
    fn events_decode_or_are_refused_with_a_reason(event in arm_event_like()) {
        if let Value::Object(map) = &event {
            match ArmEvent::decode(map) {
                Ok(decoded) => {
                    let _ = Operation::parse(&decoded.data.operation_name);
                }
                Err(error) => prop_assert!(!error.0.is_empty()),
            }
        }
    }

    #[test]
    fn messages_that_are_not_work_items_are_refused_with_a_reason(message in any_json()) {
        if let Err(error) = WorkItem::decode(&message) {
            prop_assert!(!error.0.is_empty());
        }
    }

    #[test]
    fn backfill_parameters_are_accepted_or_named(query in prop::collection::vec((prop_oneof![Just("hub".to_string()), Just("dryRun".to_string()), Just("code".to_string()), ".{0,8}"], prop_oneof![text_like_ids(), ".{0,12}"]), 0..5)) {
        let hubs: Vec<VnetId> = vec!["/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/hub".parse().unwrap()];
        match Params::parse(&query, &hubs) {
            Ok(params) => prop_assert!(!params.hubs.is_empty()),
            Err(message) => prop_assert!(message.starts_with("parameter "), "{}", message),
        }
    }
}

/// Generated invocations through the router against the simulator: every answer is a 200 with
/// a valid outcome (or a 400 for a body that is no envelope), no ARM write is ever made, and the
/// handler keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_invocations_write_nothing_and_every_answer_is_clear() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let bed = bed(&article(), &[], |_| {}).await;
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150u32);
    let mut runner = TestRunner::new(Config::default());
    let strategy = (0..4usize, arm_event_like(), any_json(), ".{0,60}");
    for _ in 0..cases {
        let (which, event, value, text) = strategy.new_tree(&mut runner).unwrap().current();
        let (function, body) = match which {
            0 => ("OnNetworkEvent", event_body(&event)),
            1 => ("ReconcileHub", queue_body(&value.to_string(), 1)),
            2 => ("Backfill", backfill_body("POST", &text)),
            _ => (
                "DriftCheck",
                json!({"Data": {"timer": value}, "Metadata": {}}),
            ),
        };
        let answer = invoke(&bed.app, function, &body).await;
        match answer.status {
            StatusCode::OK => {
                let outcome = answer.outcome();
                if function == "ReconcileHub" {
                    assert_eq!(
                        outcome["status"], "rejected",
                        "generated messages are no work items: {outcome:#}"
                    );
                }
            }
            StatusCode::BAD_REQUEST => assert!(answer.body["error"].is_string()),
            other => panic!("{function} answered {other}: {:#}", answer.body),
        }
    }
    assert!(
        writes(&bed.sim).is_empty(),
        "no ARM write: {:?}",
        writes(&bed.sim)
    );
    // The handler still serves, and the bed was live all along: a real event is mapped with a
    // read (so "no write" above is not for want of reaching ARM).
    bed.sim.clear_requests();
    let subject = format!(
        "{}/virtualNetworkPeerings/spoke1-to-hub",
        bed.estate.vnet_id("spoke1")
    );
    let event = arm_event(
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
        &subject,
        SOMEONE,
    );
    let answer = invoke(&bed.app, "OnNetworkEvent", &event_body(&event)).await;
    assert_eq!(answer.outcome()["status"], "queued");
    assert!(bed.sim.requests().iter().any(|r| r.method == "GET"));
    let answer = invoke(&bed.app, "DriftCheck", &timer_body()).await;
    assert_eq!(answer.status, StatusCode::OK);
}
