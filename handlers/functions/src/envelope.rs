//! The host's invocation envelope and the typed trigger inputs decoded from it.
//!
//! The Functions host POSTs `{"Data": {...}, "Metadata": {...}}` to `/<FunctionName>`: `Data`
//! holds one key per input binding (its `name` in `function.json`), `Metadata` the trigger's
//! binding data and `sys`. The host passes string values through `JsonConvert.SerializeObject`
//! once more, so a string arrives as JSON text of a JSON string, and an Event Grid event (a
//! `JToken` turned into indented text first) arrives encoded twice. [`decode_layers`] undoes any
//! number of such layers. HTTP requests and timer information arrive as plain objects.
//!
//! The answer is `{"Outputs": {...}, "Logs": [...], "ReturnValue": null}`: always a non-empty
//! JSON object (an empty 2xx body hangs the invocation in the host until its timeout), outputs as
//! JSON objects or arrays (a string output that looks like base64 is decoded by the host), and
//! `ReturnValue` null (an object would be spread over the outputs).
//!
//! This module knows the wire; it knows nothing of what the functions do with their input.
use serde::Serialize;
use serde_json::{Map, Value};

/// The binding names the four `function.json` files declare.
pub mod bindings {
    /// `OnNetworkEvent`'s trigger.
    pub const EVENT: &str = "eventGridEvent";
    /// `ReconcileHub`'s trigger.
    pub const WORK_ITEM: &str = "workItem";
    /// `Backfill`'s trigger.
    pub const REQUEST: &str = "req";
    /// `DriftCheck`'s trigger.
    pub const TIMER: &str = "timer";
    /// The queue output to `hubspoke-outcomes` every function has.
    pub const OUTCOME: &str = "outcome";
    /// The queue output to `hubspoke-work`.
    pub const WORK: &str = "work";
    /// `Backfill`'s HTTP answer.
    pub const RESPONSE: &str = "res";
}

/// A body that is not an invocation envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvelopeError(pub String);

/// A trigger input that does not have the shape its binding gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The envelope, split into its two maps.
#[derive(Debug, Clone)]
pub struct InvocationRequest {
    pub data: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

impl InvocationRequest {
    /// Parses the body the host sent. `Data` must be an object; `Metadata` may be absent.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| EnvelopeError(format!("the body is not JSON: {error}")))?;
        let Value::Object(mut object) = value else {
            return Err(EnvelopeError(format!(
                "the body is {}, not an object with \"Data\" and \"Metadata\"",
                kind_of(&value)
            )));
        };
        let data = match object.remove("Data") {
            Some(Value::Object(data)) => data,
            Some(other) => {
                return Err(EnvelopeError(format!(
                    "\"Data\" is {}, not an object",
                    kind_of(&other)
                )))
            }
            None => return Err(EnvelopeError("the body has no \"Data\"".into())),
        };
        let metadata = match object.remove("Metadata") {
            Some(Value::Object(metadata)) => metadata,
            None | Some(Value::Null) => Map::new(),
            Some(other) => {
                return Err(EnvelopeError(format!(
                    "\"Metadata\" is {}, not an object",
                    kind_of(&other)
                )))
            }
        };
        Ok(Self { data, metadata })
    }

    /// The input binding `name`, or an error naming it.
    pub fn input(&self, name: &str) -> Result<&Value, InputError> {
        self.data
            .get(name)
            .ok_or_else(|| InputError(format!("\"Data\" has no \"{name}\" (the trigger binding)")))
    }

    /// A metadata value as text, with the host's extra JSON layers removed (`"\"abc\""` → `abc`;
    /// numbers as written).
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        match decode_layers(self.metadata.get(key)?) {
            Value::String(text) => Some(text),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Removes the JSON-in-a-string layers the host adds: while the value is a string holding JSON,
/// parse it. A string that is not JSON is the value itself.
pub fn decode_layers(value: &Value) -> Value {
    let mut current = value.clone();
    // A handful of layers at most are ever added; the bound keeps hostile input cheap.
    for _ in 0..8 {
        let Value::String(text) = &current else {
            return current;
        };
        match serde_json::from_str::<Value>(text) {
            Ok(inner) => current = inner,
            Err(_) => return current,
        }
    }
    current
}

/// Words for the JSON type of `value`, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the handler answers: outputs by binding name, log lines, and always `ReturnValue: null`.
#[derive(Debug, Clone, Serialize)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvocationResponse {
    pub fn new(outputs: Map<String, Value>, logs: Vec<String>) -> Self {
        Self {
            outputs,
            logs,
            return_value: Value::Null,
        }
    }
}

/// The input of an Event Grid trigger: one event, as an object.
#[derive(Debug, Clone)]
pub struct EventGridInput {
    pub event: Map<String, Value>,
}

/// The input of a queue trigger: the message and what the host says of it.
#[derive(Debug, Clone)]
pub struct QueueInput {
    /// The message with the host's string layers removed (an object for a work item).
    pub message: Value,
    pub id: Option<String>,
    /// How many times the message has been handed out, this time included.
    pub dequeue_count: Option<u32>,
    pub insertion_time: Option<String>,
}

/// The input of an HTTP trigger: the parts of `req` the functions use.
#[derive(Debug, Clone)]
pub struct HttpInput {
    pub method: String,
    /// The query parameters in order, repeated keys repeated, percent-decoded. `code` (the
    /// function key) is kept out.
    pub query: Vec<(String, String)>,
    /// The request path (without query), for the outcome.
    pub path: String,
}

/// The input of a timer trigger.
#[derive(Debug, Clone)]
pub struct TimerInput {
    /// The host fires a tick it missed (the app was down) late, and says so.
    pub is_past_due: bool,
}

/// Decoding a trigger's input from the envelope.
pub trait TriggerInput: Sized + Send + 'static {
    /// The input binding's name.
    const BINDING: &'static str;
    fn decode(request: &InvocationRequest) -> Result<Self, InputError>;
}

impl TriggerInput for EventGridInput {
    const BINDING: &'static str = bindings::EVENT;

    fn decode(request: &InvocationRequest) -> Result<Self, InputError> {
        match decode_layers(request.input(Self::BINDING)?) {
            Value::Object(event) => Ok(Self { event }),
            other => Err(InputError(format!(
                "the event is {}, not a JSON object",
                kind_of(&other)
            ))),
        }
    }
}

impl TriggerInput for QueueInput {
    const BINDING: &'static str = bindings::WORK_ITEM;

    fn decode(request: &InvocationRequest) -> Result<Self, InputError> {
        let message = decode_layers(request.input(Self::BINDING)?);
        let dequeue_count = match request.metadata_text("DequeueCount") {
            None => None,
            Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                InputError(format!(
                    "\"Metadata.DequeueCount\" is {text:?}, not a whole number"
                ))
            })?),
        };
        Ok(Self {
            message,
            id: request.metadata_text("Id"),
            dequeue_count,
            insertion_time: request.metadata_text("InsertionTime"),
        })
    }
}

impl TriggerInput for HttpInput {
    const BINDING: &'static str = bindings::REQUEST;

    fn decode(request: &InvocationRequest) -> Result<Self, InputError> {
        let Value::Object(req) = decode_layers(request.input(Self::BINDING)?) else {
            return Err(InputError("\"req\" is not an object".into()));
        };
        let method = match req.get("Method") {
            Some(Value::String(method)) => method.to_ascii_uppercase(),
            _ => {
                return Err(InputError(
                    "\"req.Method\" is missing or not a string".into(),
                ))
            }
        };
        // The URL keeps repeated parameters apart; the host's `Query` object joins them with
        // commas. Prefer the URL, fall back to `Query`.
        let (path, query) = match req.get("Url").and_then(Value::as_str) {
            Some(url) => split_url(url),
            None => (String::new(), query_from_object(req.get("Query"))?),
        };
        let query = query
            .into_iter()
            .filter(|(key, _)| !key.eq_ignore_ascii_case("code"))
            .collect();
        Ok(Self {
            method,
            query,
            path,
        })
    }
}

impl TriggerInput for TimerInput {
    const BINDING: &'static str = bindings::TIMER;

    fn decode(request: &InvocationRequest) -> Result<Self, InputError> {
        let Value::Object(timer) = decode_layers(request.input(Self::BINDING)?) else {
            return Err(InputError("\"timer\" is not an object".into()));
        };
        let is_past_due = match timer.get("IsPastDue") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(value)) => *value,
            Some(other) => {
                return Err(InputError(format!(
                    "\"timer.IsPastDue\" is {}, not a boolean",
                    kind_of(other)
                )))
            }
        };
        Ok(Self { is_past_due })
    }
}

/// The path and the decoded query pairs of a URL as the host gives it (absolute, or a path).
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let without_fragment = url.split('#').next().unwrap_or_default();
    let (before_query, query) = match without_fragment.split_once('?') {
        Some((before, query)) => (before, query),
        None => (without_fragment, ""),
    };
    let path = match before_query.find("://") {
        Some(at) => {
            let rest = &before_query[at + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => before_query,
    };
    let pairs = form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    (path.to_string(), pairs)
}

fn query_from_object(query: Option<&Value>) -> Result<Vec<(String, String)>, InputError> {
    match query.map(decode_layers) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key, text)),
                other => Err(InputError(format!(
                    "\"req.Query.{key}\" is {}, not a string",
                    kind_of(&other)
                ))),
            })
            .collect(),
        Some(other) => Err(InputError(format!(
            "\"req.Query\" is {}, not an object",
            kind_of(&other)
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(data: Value, metadata: Value) -> InvocationRequest {
        InvocationRequest::parse(
            json!({"Data": data, "Metadata": metadata})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_twice_encoded_event_is_decoded_to_its_object() {
        let event = json!({"id": "e1", "eventType": "Microsoft.Resources.ResourceWriteSuccess"});
        let indented = serde_json::to_string_pretty(&event).unwrap();
        let once = Value::String(indented);
        let twice = Value::String(once.to_string());
        let decoded =
            EventGridInput::decode(&request(json!({"eventGridEvent": twice}), json!({}))).unwrap();
        assert_eq!(Value::Object(decoded.event), event);
        let plain =
            EventGridInput::decode(&request(json!({"eventGridEvent": event}), json!({}))).unwrap();
        assert_eq!(plain.event["id"], "e1");
    }

    #[test]
    fn queue_metadata_is_read_through_its_quotes() {
        let input = QueueInput::decode(&request(
            json!({"workItem": "\"{\\\"a\\\":1}\""}),
            json!({"DequeueCount": "2", "Id": "\"m-1\"", "InsertionTime": "\"2026-01-01T00:00:00Z\""}),
        ))
        .unwrap();
        assert_eq!(input.message, json!({"a": 1}));
        assert_eq!(input.dequeue_count, Some(2));
        assert_eq!(input.id.as_deref(), Some("m-1"));
        let bad = QueueInput::decode(&request(
            json!({"workItem": "x"}),
            json!({"DequeueCount": "two"}),
        ));
        assert!(bad.unwrap_err().0.contains("DequeueCount"));
    }

    #[test]
    fn http_query_comes_from_the_url_with_repeats_and_without_the_key() {
        let input = HttpInput::decode(&request(
            json!({"req": {"Method": "post", "Url": "https://app.azurewebsites.net/api/backfill?hub=a&hub=b%2Fc&code=secret&dryRun=true",
                            "Query": {"hub": "a,b/c", "code": "secret", "dryRun": "true"}}}),
            json!({}),
        ))
        .unwrap();
        assert_eq!(input.method, "POST");
        assert_eq!(input.path, "/api/backfill");
        assert_eq!(
            input.query,
            [
                ("hub".to_string(), "a".to_string()),
                ("hub".to_string(), "b/c".to_string()),
                ("dryRun".to_string(), "true".to_string())
            ]
        );
    }

    #[test]
    fn envelope_errors_say_what_is_wrong() {
        for (body, expected) in [
            ("not json", "not JSON"),
            ("[1]", "an array"),
            ("{}", "no \"Data\""),
            ("{\"Data\": 3}", "\"Data\" is a number"),
            (
                "{\"Data\": {}, \"Metadata\": []}",
                "\"Metadata\" is an array",
            ),
        ] {
            let error = InvocationRequest::parse(body.as_bytes()).unwrap_err();
            assert!(error.0.contains(expected), "{body}: {error}");
        }
        let missing = EventGridInput::decode(&request(json!({}), json!({}))).unwrap_err();
        assert!(missing.0.contains("eventGridEvent"), "{missing}");
        let not_object =
            EventGridInput::decode(&request(json!({"eventGridEvent": "\"[1,2]\""}), json!({})))
                .unwrap_err();
        assert!(not_object.0.contains("an array"), "{not_object}");
    }

    #[test]
    fn layers_stop_at_plain_text_and_at_a_bound() {
        assert_eq!(decode_layers(&json!("hello")), json!("hello"));
        assert_eq!(decode_layers(&json!("\"\\\"x\\\"\"")), json!("x"));
        let mut deep = json!({"a": 1});
        for _ in 0..20 {
            deep = Value::String(deep.to_string());
        }
        assert!(
            decode_layers(&deep).is_string(),
            "bounded, not unwrapped forever"
        );
    }
}
