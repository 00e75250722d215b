//! Test bed for the handler: the simulator over HTTPS seeded with an estate, the handler's state
//! built from the settings the simulator prints (the production settings parser and credential
//! path), and the router driven without a socket. Invocation bodies are built in the host's wire
//! shape (strings encoded twice, as the host does). Every outcome is checked against
//! `docs/outcome.schema.json`.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use hubspoke_core::synth::Estate;
use hubspoke_functions::logs::LogStore;
use hubspoke_functions::settings::HandlerSettings;
use hubspoke_functions::sink::OutcomeSink;
use hubspoke_functions::{app, AppState, State};
use hubspoke_sim::{Seed, SimConfig, SimHandle};
use serde_json::{json, Value};
use tower::ServiceExt;

pub struct Bed {
    pub sim: SimHandle,
    pub state: AppState,
    pub app: Router,
    pub estate: Estate,
}

/// A simulator seeded with `estate` and a handler configured for its hub `hub`, with `extra`
/// settings on top.
pub async fn bed(
    estate: &Estate,
    extra: &[(&str, &str)],
    tweak: impl FnOnce(&mut SimConfig),
) -> Bed {
    let mut config = SimConfig {
        tls: true,
        seed: Some(Seed::Value(estate.snapshot())),
        ..SimConfig::default()
    };
    tweak(&mut config);
    let sim = hubspoke_sim::start(config).await.unwrap();
    let hub = estate.vnet_id("hub");
    let mut env: Vec<(String, String)> = sim.env();
    env.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), "7071".into()));
    env.push(("HUBSPOKE_HUBS".into(), hub));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut settings = HandlerSettings::from_settings(|name| {
        env.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap();
    // Real retries, fast delays; attempts and budget as the settings say.
    settings.arm.retry.base_delay = Duration::from_millis(5);
    settings.arm.retry.max_delay = Duration::from_millis(40);
    if !extra
        .iter()
        .any(|(k, _)| *k == "HUBSPOKE_ARM_RETRY_BUDGET_SECONDS")
    {
        settings.arm.retry.budget = Duration::from_secs(5);
    }
    settings.arm.operation_timeout = Duration::from_secs(30);
    let state =
        Arc::new(State::new(settings, LogStore::default(), OutcomeSink::log_only()).unwrap());
    let app = app(state.clone());
    Bed {
        sim,
        state,
        app,
        estate: estate.clone(),
    }
}

/// The article's estate: a hub with a VPN gateway, two spokes peered from their side only.
pub fn article() -> Estate {
    use hubspoke_core::synth::Flags;
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    estate.vnet("spoke1", &["10.1.0.0/16"], &[("default", "10.1.0.0/24")]);
    estate.vnet("spoke2", &["10.2.0.0/16"], &[("default", "10.2.0.0/24")]);
    estate.peer("spoke1", "hub", Flags::default(), "Initiated");
    estate.peer("spoke2", "hub", Flags::default(), "Initiated");
    estate
}

/// An answer: status and JSON body (`Value::Null` when the body is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The outcome among the outputs, checked against the schema.
    pub fn outcome(&self) -> &Value {
        let outcome = &self.body["Outputs"]["outcome"];
        assert_valid_outcome(outcome);
        outcome
    }

    /// The work items among the outputs.
    pub fn work(&self) -> Vec<Value> {
        self.body["Outputs"]["work"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// POSTs `body` to `/<function>` as the host does.
pub async fn invoke(app: &Router, function: &str, body: &Value) -> Answer {
    invoke_raw(app, function, body.to_string().into_bytes()).await
}

pub async fn invoke_raw(app: &Router, function: &str, body: Vec<u8>) -> Answer {
    let request = Request::post(format!("/{function}"))
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "x-azure-functions-invocationid",
            uuid::Uuid::new_v4().to_string(),
        )
        .header("user-agent", "Azure-Functions-Host/4.1037.0")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body }
}

/// A value as the host passes a string input: serialized once more.
pub fn host_string(text: &str) -> Value {
    Value::String(Value::String(text.to_string()).to_string())
}

/// An Event Grid trigger invocation for `event` (indented text, then encoded by the host).
pub fn event_body(event: &Value) -> Value {
    let indented = serde_json::to_string_pretty(event).unwrap();
    json!({"Data": {"eventGridEvent": host_string(&indented)},
           "Metadata": {"data": event["data"], "id": host_string(event["id"].as_str().unwrap_or("")),
                        "sys": {"MethodName": "OnNetworkEvent", "UtcNow": "2026-11-30T02:16:22Z", "RandGuid": "g"}}})
}

/// An ARM event in the Event Grid schema.
pub fn arm_event(event_type: &str, operation: &str, subject: &str, caller: &str) -> Value {
    let subscription = subject.split('/').nth(2).unwrap_or("");
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": format!("/subscriptions/{subscription}"),
        "subject": subject,
        "eventType": event_type,
        "eventTime": "2026-11-30T02:16:21.6117357Z",
        "data": {
            "authorization": {"scope": subject, "action": operation},
            "claims": {"http://schemas.microsoft.com/identity/claims/objectidentifier": caller, "appid": "app"},
            "correlationId": "c",
            "resourceProvider": "Microsoft.Network",
            "resourceUri": subject,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": subscription,
            "tenantId": "t"
        },
        "dataVersion": "2",
        "metadataVersion": "1"
    })
}

/// The object id of a person (not hubspoke).
pub const SOMEONE: &str = "7a1c0000-0000-4000-8000-00000000b0b0";

/// A queue trigger invocation for the message text `text`.
pub fn queue_body(text: &str, dequeue_count: u32) -> Value {
    json!({"Data": {"workItem": host_string(text)},
           "Metadata": {"DequeueCount": dequeue_count.to_string(), "Id": host_string("m-1"),
                        "PopReceipt": host_string("p"), "sys": {"MethodName": "ReconcileHub"}}})
}

/// A queue trigger invocation for a work item, stored indented as the host's output writes it.
pub fn work_body(item: &Value) -> Value {
    queue_body(&serde_json::to_string_pretty(item).unwrap(), 1)
}

/// A Backfill invocation with the query string `query` (with a function key, which the host
/// passes on).
pub fn backfill_body(method: &str, query: &str) -> Value {
    let separator = if query.is_empty() { "" } else { "&" };
    json!({"Data": {"req": {
        "Url": format!("https://app.azurewebsites.net/api/backfill?{query}{separator}code=the-key"),
        "Method": method,
        "Query": {},
        "Headers": {"x-functions-key": ["the-key"], "Content-Type": ["application/json"]},
        "Params": {},
        "Identities": []
    }}, "Metadata": {"sys": {"MethodName": "Backfill"}}})
}

pub fn timer_body() -> Value {
    json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
           "Metadata": {"sys": {"MethodName": "DriftCheck"}}})
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Checks `outcome` against `docs/outcome.schema.json`.
pub fn assert_valid_outcome(outcome: &Value) {
    if let Err(error) = hubspoke_stack::check_outcome(outcome) {
        panic!("{error:#}");
    }
}

/// The simulator's write requests (method, path), `/_sim` excluded.
pub fn writes(sim: &SimHandle) -> Vec<(String, String)> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" || r.method == "DELETE")
        .filter(|r| !r.path.starts_with("/_sim"))
        .map(|r| (r.method, r.path))
        .collect()
}
