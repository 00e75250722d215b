//! One invocation, as the Functions host makes it (the custom handler protocol: Microsoft Learn, "Azure Functions custom handlers", request and response payloads): the request body
//! `{"Data": …, "Metadata": …}` built per trigger type, the handler's answer judged, its `Logs`
//! logged with the invocation id, and its `Outputs` written as the host's bindings write them.
//!
//! The answer (in this order): a non-2xx status fails the invocation, its body, Logs and Outputs
//! discarded; an empty 2xx body or the literal `null` never completes the invocation in the real
//! host, so here it fails when the function timeout expires, and the handler is restarted as a
//! timeout does; a content type other than `application/json` or `text/json` fails; a body that
//! is not a JSON object fails. `Outputs`, `Logs`, `ReturnValue` are matched ignoring case; keys
//! inside `Outputs` must equal the binding names exactly; undeclared and null outputs are
//! ignored; without a `$return` binding, an object `ReturnValue` overwrites outputs of the same
//! names. An output that cannot be written (storage down, message too large) fails the
//! invocation after the handler answered.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubspoke_queue::message::{
    json_net_indented, json_net_indented_verbatim, json_net_string_cast,
};
use hubspoke_queue::{MessageEncoding, QueueService};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tracing::{error, info, warn, Instrument};

use crate::config::{Function, OutputKind};
use crate::worker::Worker;

/// What an invocation ended as.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Completed; for an HTTP trigger with an `http` output, the response to give.
    Succeeded { http: Option<HttpResult> },
    /// Failed; the message is what the host would log.
    Failed(String),
}

/// The response of an HTTP-triggered function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResult {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What invocations share.
pub struct Invoker {
    pub worker: Worker,
    /// Queue services by connection prefix.
    pub queues: HashMap<String, QueueService>,
    pub encoding: MessageEncoding,
    pub function_timeout: Option<Duration>,
    /// Listeners of queues in this host, poked when a function writes to their queue (the
    /// queue extension's shared watcher).
    pub watchers: HashMap<String, Arc<Notify>>,
    /// Invocations started, by function: what the host did, counted where it happens, for the
    /// checks that every invocation left its outcome.
    pub started: Mutex<BTreeMap<String, u64>>,
}

impl Invoker {
    /// Runs one invocation of `function` with the trigger's `data` and `metadata` (without
    /// `sys`, added here).
    pub async fn invoke(
        &self,
        function: &Function,
        data: Map<String, Value>,
        mut metadata: Map<String, Value>,
    ) -> Outcome {
        let invocation_id = uuid::Uuid::new_v4().to_string();
        *self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(function.name.clone())
            .or_default() += 1;
        metadata.insert(
            "sys".to_string(),
            json!({
                "MethodName": function.name,
                "UtcNow": utc_now_7(),
                "RandGuid": uuid::Uuid::new_v4().to_string(),
            }),
        );
        let body = json!({"Data": data, "Metadata": metadata}).to_string();
        let started = Instant::now();
        let span = tracing::info_span!("invocation", function = %function.name, invocation_id = %invocation_id);
        // Instrumented, never entered across an await: a task that moves to another thread
        // would leave the span current on the first one after it closed.
        async {
            info!(
                "Executing 'Functions.{}' (Id={invocation_id})",
                function.name
            );
            let outcome = self.run(function, &invocation_id, body).await;
            let elapsed = started.elapsed().as_millis();
            match &outcome {
                Outcome::Succeeded { .. } => info!(
                    "Executed 'Functions.{}' (Succeeded, Id={invocation_id}, Duration={elapsed}ms)",
                    function.name
                ),
                Outcome::Failed(reason) => error!(
                    "Executed 'Functions.{}' (Failed, Id={invocation_id}, Duration={elapsed}ms): {reason}",
                    function.name
                ),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn run(&self, function: &Function, invocation_id: &str, body: String) -> Outcome {
        let deadline = self
            .function_timeout
            .map(|t| tokio::time::Instant::now() + t);
        let timed_out = || {
            self.worker.restart();
            Outcome::Failed(format!(
                "Timeout value of {} was exceeded by function: Functions.{}",
                self.function_timeout
                    .map(|t| format!("{:?}", t))
                    .unwrap_or_default(),
                function.name
            ))
        };
        let post = self
            .worker
            .post(&function.name, invocation_id, body.into_bytes());
        let answer = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, post).await {
                Ok(answer) => answer,
                Err(_) => return timed_out(),
            },
            None => post.await,
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(reason) => return Outcome::Failed(reason),
        };
        if !(200..300).contains(&answer.status) {
            return Outcome::Failed(format!(
                "Response status code does not indicate success: {}",
                answer.status
            ));
        }
        let trimmed = std::str::from_utf8(&answer.body).unwrap_or("").trim();
        if answer.body.is_empty() || trimmed == "null" {
            warn!("the handler answered {} with an empty body (or null): the invocation never completes until the function timeout", answer.status);
            match deadline {
                Some(deadline) => {
                    tokio::time::sleep_until(deadline).await;
                    return timed_out();
                }
                None => std::future::pending::<()>().await,
            }
        }
        let media_type = answer
            .content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media_type != "application/json" && media_type != "text/json" {
            return Outcome::Failed(format!(
                "No MediaTypeFormatter is available to read an object of type \
                 'HttpScriptInvocationResult' from content with media type '{media_type}'."
            ));
        }
        let result: Map<String, Value> = match serde_json::from_slice(&answer.body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Outcome::Failed(format!(
                    "Invalid HttpScriptInvocationResult: {}",
                    String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(500)
                        .collect::<String>()
                ))
            }
        };
        let field = |name: &str| {
            result
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if let Some(Value::Array(logs)) = field("Logs") {
            for line in logs {
                match line {
                    Value::String(text) => info!(invocation_id, "{text}"),
                    Value::Null => {}
                    other => info!(invocation_id, "{other}"),
                }
            }
        }
        let outputs_present = matches!(field("Outputs"), Some(Value::Object(_)));
        let mut outputs = match field("Outputs") {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let has_return_binding = function.outputs.iter().any(|o| o.name == "$return");
        match field("ReturnValue") {
            Some(value) if has_return_binding && !value.is_null() => {
                outputs.insert("$return".to_string(), value);
            }
            Some(Value::Object(spread)) if !has_return_binding => {
                for (key, value) in spread {
                    outputs.insert(key, value);
                }
            }
            _ => {}
        }
        let mut http = None;
        for output in &function.outputs {
            let value = outputs.get(&output.name).cloned().unwrap_or(Value::Null);
            match &output.kind {
                OutputKind::Http => {
                    http = Some(if !outputs_present {
                        Ok(HttpResult {
                            status: 200,
                            headers: Vec::new(),
                            body: Vec::new(),
                        })
                    } else if value.is_null() {
                        Ok(HttpResult {
                            status: 200,
                            headers: Vec::new(),
                            body: b"{}".to_vec(),
                        })
                    } else {
                        http_result(&value)
                    });
                }
                _ if value.is_null() => {}
                OutputKind::Queue { queue, connection } => {
                    if let Err(reason) = self.write_queue(queue, connection, &value).await {
                        return Outcome::Failed(format!(
                            "Error while handling parameter {}: {reason}",
                            output.name
                        ));
                    }
                }
                OutputKind::Unsupported { binding_type } => {
                    warn!(binding = %output.name, binding_type, "output binding type not supported by this host: ignored");
                }
            }
        }
        match http {
            Some(Err(reason)) => Outcome::Failed(reason),
            Some(Ok(result)) => Outcome::Succeeded { http: Some(result) },
            None => Outcome::Succeeded { http: None },
        }
    }

    async fn write_queue(
        &self,
        queue: &str,
        connection: &str,
        value: &Value,
    ) -> Result<(), String> {
        let service = self
            .queues
            .get(connection)
            .ok_or_else(|| format!("no storage connection {connection}"))?;
        let client = service.queue(queue).map_err(|e| e.to_string())?;
        client
            .send_output(value, self.encoding)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(watcher) = self.watchers.get(queue) {
            watcher.notify_one();
        }
        Ok(())
    }
}

/// The `res` output: `{statusCode, status, body, headers}` (names ignoring case), or a string
/// holding such an object.
fn http_result(value: &Value) -> Result<HttpResult, String> {
    let object = match value {
        Value::Object(map) => map.clone(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(format!("the http output is not an object: {text}")),
        },
        other => return Err(format!("the http output is not an object: {other}")),
    };
    let get = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    // `status` is never consulted: the intermediate object always has a StatusCode key.
    let status = match get("statusCode") {
        Value::Null => 200,
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| format!("invalid statusCode {n}"))?,
        Value::String(s) => s
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid statusCode {s:?}"))?,
        other => return Err(format!("invalid statusCode {other}")),
    };
    let mut headers: Vec<(String, String)> = match get("headers") {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
        _ => Vec::new(),
    };
    let body = match get("body") {
        Value::Null => Vec::new(),
        Value::String(text) => text.into_bytes(),
        other => json_net_indented(&other).into_bytes(),
    };
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".to_string(), "text/plain".to_string()));
    }
    Ok(HttpResult {
        status,
        headers,
        body,
    })
}

/// `DateTime.UtcNow` as the host serializes it in `sys.UtcNow`: seven fraction digits, `Z`.
pub fn utc_now_7() -> String {
    seven_digits(chrono::Utc::now(), "Z")
}

/// `yyyy-MM-ddTHH:mm:ss.fffffff` and `suffix` (chrono has no seven-digit fraction: .NET ticks
/// are 100 ns).
pub fn seven_digits(time: chrono::DateTime<chrono::Utc>, suffix: &str) -> String {
    use chrono::Timelike;
    format!(
        "{}.{:07}{suffix}",
        time.format("%Y-%m-%dT%H:%M:%S"),
        time.nanosecond() % 1_000_000_000 / 100
    )
}

/// A string value as the host sends it: JSON-serialized once more (`"abc"` → `"\"abc\""`).
pub fn double_encoded(text: &str) -> Value {
    Value::String(Value::String(text.to_string()).to_string())
}

/// The host's `ApplyBindingData`: the top-level properties of a JSON trigger value (an object
/// given as text) go into the binding data, replacing keys that differ only in case: objects as
/// objects, arrays skipped, anything else as Json.NET's `(string)` cast, double-encoded.
pub fn apply_binding_data(text: &str, metadata: &mut Map<String, Value>) {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return;
    }
    let Ok(Value::Object(parsed)) = serde_json::from_str::<Value>(trimmed) else {
        return;
    };
    for (key, value) in parsed {
        let converted = match &value {
            Value::Object(_) => value.clone(),
            Value::Array(_) | Value::Null => continue,
            other => match json_net_string_cast(other) {
                Some(text) => double_encoded(&text),
                None => continue,
            },
        };
        let existing: Vec<String> = metadata
            .keys()
            .filter(|k| k.eq_ignore_ascii_case(&key))
            .cloned()
            .collect();
        for old in existing {
            metadata.remove(&old);
        }
        metadata.insert(key, converted);
    }
}

/// `Data` and `Metadata` of an Event Grid event: the event as a double-encoded string of its
/// indented JSON (dates kept as written, `DateParseHandling.None`); Metadata `data` and the
/// event's top-level properties.
pub fn event_grid(binding: &str, event: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let indented = json_net_indented_verbatim(event);
    let mut data = Map::new();
    data.insert(binding.to_string(), double_encoded(&indented));
    let mut metadata = Map::new();
    metadata.insert(
        "data".to_string(),
        event.get("data").cloned().unwrap_or(Value::Null),
    );
    apply_binding_data(&event.to_string(), &mut metadata);
    (data, metadata)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_double_encoded_and_its_properties_copied() {
        let event = json!({"id": "e1", "eventTime": "2017-06-26T18:41:00.9584103Z", "data": {"a": 1}, "dataVersion": "2"});
        let (data, metadata) = event_grid("eventGridEvent", &event);
        let once: String = serde_json::from_str(data["eventGridEvent"].as_str().unwrap()).unwrap();
        assert_eq!(
            once,
            "{\n  \"id\": \"e1\",\n  \"eventTime\": \"2017-06-26T18:41:00.9584103Z\",\n  \"data\": {\n    \"a\": 1\n  },\n  \"dataVersion\": \"2\"\n}"
        );
        assert_eq!(metadata["id"], "\"e1\"");
        assert_eq!(metadata["eventTime"], "\"06/26/2017 18:41:00\"");
        assert_eq!(metadata["data"], json!({"a": 1}));
    }

    #[test]
    fn the_http_output_follows_the_host() {
        let r = http_result(&json!({"status": 404, "body": {"a": 1}})).unwrap();
        assert_eq!(r.status, 200, "status is never consulted");
        assert_eq!(r.body, b"{\n  \"a\": 1\n}");
        assert!(r
            .headers
            .contains(&("Content-Type".into(), "text/plain".into())));
        let r = http_result(
            &json!({"statusCode": "202", "headers": {"Content-Type": "application/json"}}),
        )
        .unwrap();
        assert_eq!(r.status, 202);
        assert!(r.body.is_empty());
        assert!(http_result(&json!("hello")).is_err());
    }
}
