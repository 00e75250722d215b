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
//! | `GET /_sim/managementGroups` | the management groups, their parents and subscriptions, and every subscription |
//! | `PUT /_sim/managementGroups/{id}` | creates or replaces a group: body `{"displayName", "parent", "subscriptions": [...]}` |
//! | `DELETE /_sim/managementGroups/{id}` | deletes an empty group |
//! | `PUT /_sim/subscriptions/{id}` | declares a subscription with no resource yet (vended after start) |
//! | `GET /_sim/graph` | whether Resource Graph is frozen, and its lag |
//! | `PUT /_sim/graph` | body `{"frozen": true}` freezes it at the estate now, `false` thaws it; `{"lag_ms": N}` sets its lag |
use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::FaultSpec;
use crate::http::{json_response, HttpResponse};
use crate::management_groups::GroupSpec;
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
    if let Some(answer) = tenancy_route(shared, method, path.trim_end_matches('/'), body) {
        return answer;
    }
    match (method, route.as_str()) {
        ("GET", "/_sim") => json_response(
            200,
            &json!({"routes": ["GET|PUT /_sim/state", "GET|DELETE /_sim/requests", "GET|PUT|DELETE /_sim/faults", "GET|DELETE /_sim/events", "GET /_sim/managementGroups", "PUT|DELETE /_sim/managementGroups/{id}", "PUT /_sim/subscriptions/{id}", "GET|PUT /_sim/graph"]}),
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

/// The routes of the tenant's directory and of Resource Graph's view, if `path` is one of them.
/// Locks in the order the ARM front end does: the estate, the directory, the graph.
fn tenancy_route(shared: &Shared, method: &str, path: &str, body: &Bytes) -> Option<HttpResponse> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let unavailable = || bad_request("state unavailable".into());
    let answer = match (method, lower.as_slice()) {
        ("GET", ["_sim", "managementgroups"]) => {
            let Ok(world) = shared.world.lock() else {
                return Some(unavailable());
            };
            let Ok(directory) = shared.directory.lock() else {
                return Some(unavailable());
            };
            let all = crate::tenancy::all_subscriptions(&world.snapshot(), &directory);
            json_response(200, &directory.describe(&all), &[])
        }
        ("PUT", ["_sim", "managementgroups", _]) => {
            let spec = match group_spec(body) {
                Ok(spec) => spec,
                Err(message) => return Some(bad_request(message)),
            };
            let Ok(mut directory) = shared.directory.lock() else {
                return Some(unavailable());
            };
            match directory.put_group(segments[2], &spec) {
                Ok(()) => json_response(200, &json!({"id": segments[2]}), &[]),
                Err(message) => bad_request(message),
            }
        }
        ("DELETE", ["_sim", "managementgroups", _]) => {
            let Ok(mut directory) = shared.directory.lock() else {
                return Some(unavailable());
            };
            match directory.delete_group(segments[2]) {
                Ok(_) => json_response(204, &Value::Null, &[]),
                Err(message) => bad_request(message),
            }
        }
        ("PUT", ["_sim", "subscriptions", _]) => {
            let Ok(mut directory) = shared.directory.lock() else {
                return Some(unavailable());
            };
            match directory.declare_subscription(segments[2]) {
                Ok(()) => json_response(200, &json!({"subscriptionId": segments[2]}), &[]),
                Err(message) => bad_request(message),
            }
        }
        ("GET", ["_sim", "graph"]) => match shared.graph.lock() {
            Ok(view) => json_response(200, &view.describe(), &[]),
            Err(_) => unavailable(),
        },
        ("PUT", ["_sim", "graph"]) => {
            let Ok(request) = serde_json::from_slice::<Value>(body) else {
                return Some(bad_request(
                    "body must be {\"frozen\": true|false} and/or {\"lag_ms\": N}".into(),
                ));
            };
            let frozen = request.get("frozen").map(Value::as_bool);
            let lag = request.get("lag_ms").map(Value::as_u64);
            if matches!(frozen, Some(None))
                || matches!(lag, Some(None))
                || (frozen.is_none() && lag.is_none())
            {
                return Some(bad_request(
                    "body must be {\"frozen\": true|false} and/or {\"lag_ms\": N}".into(),
                ));
            }
            // The estate is read before the graph is locked, in the front end's order.
            let copy = match frozen.flatten() {
                Some(true) => {
                    let Ok(world) = shared.world.lock() else {
                        return Some(unavailable());
                    };
                    let Ok(directory) = shared.directory.lock() else {
                        return Some(unavailable());
                    };
                    Some((world.graph_resources(), directory.clone()))
                }
                _ => None,
            };
            let Ok(mut view) = shared.graph.lock() else {
                return Some(unavailable());
            };
            if let Some(frozen) = frozen.flatten() {
                view.set_frozen(if frozen { copy } else { None });
            }
            if let Some(lag) = lag.flatten() {
                view.set_lag(std::time::Duration::from_millis(lag));
            }
            json_response(200, &view.describe(), &[])
        }
        _ => return None,
    };
    Some(answer)
}

/// The body of `PUT /_sim/managementGroups/{id}`.
fn group_spec(body: &Bytes) -> Result<GroupSpec, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    };
    let subscriptions = match value.get("subscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "subscriptions must be an array of ids".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("subscriptions must be an array of ids".into()),
    };
    Ok(GroupSpec {
        display_name: text("displayName")?,
        parent: text("parent")?,
        subscriptions,
    })
}
