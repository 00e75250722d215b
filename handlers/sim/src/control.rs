//! The control API under `/_sim/` (not part of ARM, no authentication): dump or replace the
//! estate, list the requests received, set fault rules, read the events emitted.
//!
//! | Route | Does |
//! | --- | --- |
//! | `GET /_sim/state` | the estate in the snapshot format |
//! | `PUT /_sim/state` | replaces the estate with a snapshot (body) |
//! | `GET /_sim/requests` | requests received: method, path, status, error code, time, fault, budget left, operations in flight |
//! | `DELETE /_sim/requests` | forgets them |
//! | `GET /_sim/faults` | the fault SPEC in force |
//! | `PUT /_sim/faults` | sets fault rules: body `{"spec": "PUT *=429@0.5"}` |
//! | `DELETE /_sim/faults` | removes all fault rules |
//! | `GET /_sim/events` | events emitted, with their delivery outcome |
//! | `DELETE /_sim/events` | forgets them |
use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::FaultSpec;
use crate::http::{json_response, HttpResponse};
use crate::shared::Shared;

fn bad_request(message: String) -> HttpResponse {
    json_response(
        400,
        &json!({"error": {"code": "BadRequest", "message": message}}),
        &[],
    )
}

/// Handles one control request.
pub(crate) fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    _query: &[(String, String)],
    body: &Bytes,
) -> HttpResponse {
    let route = path.trim_end_matches('/').to_ascii_lowercase();
    match (method, route.as_str()) {
        ("GET", "/_sim") => json_response(
            200,
            &json!({"routes": ["GET|PUT /_sim/state", "GET|DELETE /_sim/requests", "GET|PUT|DELETE /_sim/faults", "GET|DELETE /_sim/events"]}),
            &[],
        ),
        ("GET", "/_sim/state") => match shared.world.lock() {
            Ok(world) => json_response(200, &world.snapshot(), &[]),
            Err(_) => bad_request("state unavailable".into()),
        },
        ("PUT", "/_sim/state") => {
            let seed: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return bad_request(format!("body: {e}")),
            };
            match shared.world.lock() {
                Ok(mut world) => match world.load(&seed) {
                    Ok(()) => json_response(200, &world.snapshot(), &[]),
                    Err(e) => bad_request(format!("{e:#}")),
                },
                Err(_) => bad_request("state unavailable".into()),
            }
        }
        ("GET", "/_sim/requests") => {
            let requests = shared
                .requests
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default();
            json_response(200, &json!({"value": requests}), &[])
        }
        ("DELETE", "/_sim/requests") => {
            if let Ok(mut r) = shared.requests.lock() {
                r.clear();
            }
            json_response(204, &Value::Null, &[])
        }
        ("GET", "/_sim/faults") => {
            let text = shared
                .faults
                .lock()
                .map(|f| f.text.clone())
                .unwrap_or_default();
            json_response(200, &json!({"spec": text}), &[])
        }
        ("PUT", "/_sim/faults") => {
            let spec_text = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("spec").and_then(Value::as_str).map(str::to_string));
            let Some(spec_text) = spec_text else {
                return bad_request("body must be {\"spec\": \"...\"}".into());
            };
            match FaultSpec::parse(&spec_text) {
                Ok(spec) => {
                    if let Ok(mut faults) = shared.faults.lock() {
                        faults.set(spec);
                        faults.text = spec_text.clone();
                    }
                    json_response(200, &json!({"spec": spec_text}), &[])
                }
                Err(e) => bad_request(format!("{e:#}")),
            }
        }
        ("DELETE", "/_sim/faults") => {
            if let Ok(mut faults) = shared.faults.lock() {
                faults.set(FaultSpec::default());
                faults.text.clear();
            }
            json_response(204, &Value::Null, &[])
        }
        ("GET", "/_sim/events") => {
            let events = shared
                .events
                .records
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default();
            json_response(200, &json!({"value": events}), &[])
        }
        ("DELETE", "/_sim/events") => {
            if let Ok(mut r) = shared.events.records.lock() {
                r.clear();
            }
            json_response(204, &Value::Null, &[])
        }
        _ => json_response(
            404,
            &json!({"error": {"code": "NotFound", "message": format!("No control route {method} {path}.")}}),
            &[],
        ),
    }
}
