//! The host's HTTP front, on 127.0.0.1 only: the Event Grid webhook, HTTP triggers behind
//! function keys, and the admin route that runs a non-HTTP function now.
//!
//! - `/runtime/webhooks/eventgrid?functionName=<Name>&code=<key>` (Event Grid extension
//!   `HttpRequestProcessor` of the Functions host): the system key (or the master key) in `code` or
//!   `x-functions-key`, else 401; an unknown or missing function 404; `OPTIONS` answers the
//!   CloudEvents abuse-protection handshake; `aeg-event-type: SubscriptionValidation` answers
//!   `{"validationResponse": code}`; `Notification` takes an array (Event Grid schema) or one
//!   object (CloudEvents), invokes the function once per event, all at once, and answers 202
//!   when all succeeded, else 500 with the first failure's message (Event Grid then redelivers
//!   the whole batch); `Unsubscribe` 202; any other or missing `aeg-event-type` 400. The
//!   handler never sees the handshake or the `aeg-*` headers.
//! - `/<routePrefix>/<route>`: HTTP triggers. `authLevel: function` needs a function key, the
//!   master key also works (`x-functions-key` wins over `code`); missing or wrong: 401 with an
//!   empty body before the handler runs. A method not listed answers 404. A failed invocation
//!   answers 500 with an empty body.
//! - `POST /admin/functions/<Name>` with the master key: runs a timer function now (as Core
//!   Tools and the real host allow for non-HTTP functions); 202.
//!
//! Route matching ignores case, as ASP.NET routing does.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::config::{AuthLevel, Function, Trigger};
use crate::in_flight::InFlight;
use crate::invocation::{double_encoded, event_grid, Invoker, Outcome};
use crate::keys::{same_key, Keys};

type HttpResponse = Response<Full<Bytes>>;

/// What the front needs.
pub struct Front {
    pub functions: Vec<Arc<Function>>,
    pub invoker: Arc<Invoker>,
    pub keys: Keys,
    pub route_prefix: String,
    pub in_flight: Arc<InFlight>,
    /// Timer functions that can be run now through the admin route.
    pub manual: HashMap<String, Arc<Notify>>,
    /// Flips to true when the host stops: new requests get 503.
    pub stopping: watch::Receiver<bool>,
    /// The host's own URL (`Url` of HTTP requests).
    pub base_url: String,
}

/// Serves until `stop` flips.
pub async fn serve(listener: TcpListener, front: Arc<Front>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let front = front.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let front = front.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&front, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> HttpResponse {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    respond(
        status,
        &[("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
}

/// Query parameters in order, percent-decoded.
fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key a request carries: `x-functions-key` wins over `code`.
fn presented_key(request: &Request<Incoming>, query: &[(String, String)]) -> Option<String> {
    request
        .headers()
        .get("x-functions-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("code"))
                .map(|(_, v)| v.clone())
        })
}

async fn handle(front: &Front, request: Request<Incoming>) -> HttpResponse {
    if *front.stopping.borrow() {
        return respond(503, &[], "");
    }
    let path = request.uri().path().to_string();
    let lower = path.to_ascii_lowercase();
    let query = parse_query(request.uri().query());
    if lower == "/runtime/webhooks/eventgrid" {
        return event_grid_webhook(front, request, &query).await;
    }
    if let Some(name) = lower.strip_prefix("/admin/functions/") {
        return admin_run(front, &request, &query, name);
    }
    let prefix = if front.route_prefix.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", front.route_prefix.to_ascii_lowercase())
    };
    if let Some(route) = lower.strip_prefix(&prefix) {
        let route = route.trim_end_matches('/');
        let function = front.functions.iter().find(|f| {
            matches!(&f.trigger, Trigger::Http { route: r, .. } if r.eq_ignore_ascii_case(route))
        });
        if let Some(function) = function {
            return http_trigger(front, function.clone(), request, query).await;
        }
    }
    respond(404, &[], "")
}

fn admin_run(
    front: &Front,
    request: &Request<Incoming>,
    query: &[(String, String)],
    name: &str,
) -> HttpResponse {
    let key = presented_key(request, query);
    if !key
        .as_deref()
        .is_some_and(|k| same_key(k, &front.keys.master))
    {
        return respond(401, &[], "");
    }
    if request.method() != hyper::Method::POST {
        return respond(405, &[], "");
    }
    match front
        .manual
        .iter()
        .find(|(function, _)| function.eq_ignore_ascii_case(name))
    {
        Some((_, notify)) => {
            notify.notify_one();
            respond(202, &[], "")
        }
        None => respond(404, &[], ""),
    }
}

async fn read_body(
    request: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), HttpResponse> {
    let (parts, body) = request.into_parts();
    match Limited::new(body, 100 * 1024 * 1024).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(_) => Err(respond(413, &[], "")),
    }
}

async fn event_grid_webhook(
    front: &Front,
    request: Request<Incoming>,
    query: &[(String, String)],
) -> HttpResponse {
    let key = presented_key(&request, query);
    let authorised = key
        .as_deref()
        .is_some_and(|k| same_key(k, &front.keys.event_grid) | same_key(k, &front.keys.master));
    if !authorised {
        return respond(401, &[], "");
    }
    let method = request.method().clone();
    if !matches!(
        method.as_str(),
        "GET" | "PUT" | "POST" | "DELETE" | "OPTIONS"
    ) {
        return respond(405, &[], "");
    }
    let name = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("functionName"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let function = front.functions.iter().find(|f| {
        f.name.eq_ignore_ascii_case(&name) && matches!(f.trigger, Trigger::EventGrid { .. })
    });
    let Some(function) = function.cloned() else {
        return respond(404, &[], format!("cannot find function: '{name}'"));
    };
    if method == hyper::Method::OPTIONS {
        let origin = request
            .headers()
            .get("webhook-request-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let known = [
            "eventgrid.azure.net",
            "eventgrid.azure.us",
            "eventgrid.azure.cn",
        ]
        .iter()
        .any(|suffix| origin.to_ascii_lowercase().ends_with(suffix));
        let allowed = if known {
            origin.as_str()
        } else {
            "eventgrid.azure.net"
        };
        return respond(200, &[("WebHook-Allowed-Origin", allowed)], "");
    }
    let event_type = request
        .headers()
        .get("aeg-event-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (_, body) = match read_body(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    // The extension compares the header ignoring case.
    match event_type.to_ascii_lowercase().as_str() {
        "subscriptionvalidation" => {
            let first = match &parsed {
                Some(Value::Array(events)) => events.first().cloned(),
                Some(object @ Value::Object(_)) => Some(object.clone()),
                _ => None,
            };
            let data = first.and_then(|event| event.get("data").cloned());
            // A CloudEvent's data may arrive as a string holding JSON.
            let data = match data {
                Some(Value::String(text)) => serde_json::from_str(&text).ok(),
                other => other,
            };
            match data
                .as_ref()
                .and_then(|d| d.get("validationCode"))
                .and_then(Value::as_str)
            {
                Some(code) => json_response(200, &json!({"validationResponse": code})),
                None => respond(400, &[], "the validation event has no data.validationCode"),
            }
        }
        "notification" => {
            let events = match parsed {
                Some(Value::Array(events)) => events,
                Some(object @ Value::Object(_)) => vec![object],
                _ => return respond(400, &[], "the body is not a JSON array or object of events"),
            };
            let binding = function.trigger.binding_name().to_string();
            let invocations = events.iter().map(|event| {
                let (data, metadata) = event_grid(&binding, event);
                let function = function.clone();
                let invoker = front.invoker.clone();
                let guard = front.in_flight.enter();
                async move {
                    let _guard = guard;
                    invoker.invoke(&function, data, metadata).await
                }
            });
            let outcomes: Vec<Outcome> = join_all(invocations).await;
            match outcomes.iter().find_map(|o| match o {
                Outcome::Failed(reason) => Some(reason.clone()),
                Outcome::Succeeded { .. } => None,
            }) {
                None => respond(202, &[], ""),
                Some(reason) => respond(500, &[], reason),
            }
        }
        "unsubscribe" => respond(202, &[], ""),
        _ => respond(400, &[], ""),
    }
}

/// Runs futures at once and waits for all (the extension's `Task.WhenAll`).
async fn join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(output) = handle.await {
            out.push(output);
        }
    }
    out
}

async fn http_trigger(
    front: &Front,
    function: Arc<Function>,
    request: Request<Incoming>,
    query: Vec<(String, String)>,
) -> HttpResponse {
    let Trigger::Http {
        name: binding,
        auth_level,
        methods,
        ..
    } = &function.trigger
    else {
        return respond(404, &[], "");
    };
    let method = request.method().as_str().to_ascii_uppercase();
    if !methods.is_empty() && !methods.contains(&method) {
        return respond(404, &[], "");
    }
    let key = presented_key(&request, &query);
    let key_name = match (auth_level, key.as_deref()) {
        (AuthLevel::Anonymous, _) => None,
        (AuthLevel::Function, Some(k)) if same_key(k, &front.keys.function) => Some("default"),
        (AuthLevel::Function | AuthLevel::Admin, Some(k)) if same_key(k, &front.keys.master) => {
            Some("_master")
        }
        _ => return respond(401, &[], ""),
    };
    let url = format!(
        "{}{}",
        front.base_url,
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let (parts, body) = match read_body(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let (data, metadata) = http_payload(binding, &parts, &body, &url, &query, key_name);
    let _guard = front.in_flight.enter();
    match front.invoker.invoke(&function, data, metadata).await {
        Outcome::Succeeded { http: Some(result) } => {
            let mut builder = Response::builder().status(result.status);
            for (name, value) in &result.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            builder
                .body(Full::new(Bytes::from(result.body)))
                .unwrap_or_else(|_| respond(500, &[], ""))
        }
        Outcome::Succeeded { http: None } => respond(204, &[], ""),
        Outcome::Failed(_) => respond(500, &[], ""),
    }
}

/// `Data.req` and the HTTP trigger's Metadata (the custom handler protocol's HTTP trigger payload).
fn http_payload(
    binding: &str,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    url: &str,
    query: &[(String, String)],
    key_name: Option<&str>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut query_object = Map::new();
    for (key, value) in query {
        match query_object.get_mut(key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                query_object.insert(key.clone(), Value::String(value.clone()));
            }
        }
    }
    let mut headers_arrays = Map::new();
    let mut headers_joined = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers_joined.insert(name.as_str().to_string(), Value::String(values.join(",")));
        headers_arrays.insert(
            name.as_str().to_string(),
            Value::Array(values.into_iter().map(Value::String).collect()),
        );
    }
    let identity = match key_name {
        Some(key) => json!({
            "AuthenticationType": "WebJobsAuthLevel",
            "IsAuthenticated": true,
            "Actor": null,
            "BootstrapContext": null,
            "Claims": [
                {"Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": if key == "_master" { "Admin" } else { "Function" }},
                {"Type": "http://schemas.microsoft.com/2017/07/functions/claims/keyid", "Value": key},
            ],
            "Label": null,
            "Name": null,
            "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        }),
        None => json!({
            "AuthenticationType": null,
            "IsAuthenticated": false,
            "Actor": null,
            "BootstrapContext": null,
            "Claims": [],
            "Label": null,
            "Name": null,
            "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        }),
    };
    let mut req = Map::new();
    req.insert("Url".to_string(), Value::String(url.to_string()));
    req.insert(
        "Method".to_string(),
        Value::String(parts.method.as_str().to_string()),
    );
    req.insert("Query".to_string(), Value::Object(query_object.clone()));
    req.insert("Headers".to_string(), Value::Object(headers_arrays));
    req.insert("Params".to_string(), json!({}));
    req.insert("Identities".to_string(), json!([identity]));
    // The body is absent when Content-Length is missing or 0 (chunked uploads lose it).
    let content_length = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let body_text = (content_length > 0).then(|| {
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/octet-stream")
            || content_type.starts_with("multipart/")
        {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            String::from_utf8_lossy(body).into_owned()
        }
    });
    if let Some(text) = &body_text {
        req.insert("Body".to_string(), Value::String(text.clone()));
    }
    let mut data = Map::new();
    data.insert(binding.to_string(), Value::Object(req));

    let mut metadata = Map::new();
    query_object.retain(|k, _| !k.eq_ignore_ascii_case("code"));
    metadata.insert("Query".to_string(), Value::Object(query_object.clone()));
    metadata.insert("Headers".to_string(), Value::Object(headers_joined));
    for (key, value) in &query_object {
        if let Value::String(text) = value {
            metadata.insert(key.clone(), double_encoded(text));
        }
    }
    if let Some(text) = &body_text {
        crate::invocation::apply_binding_data(text, &mut metadata);
    }
    (data, metadata)
}

/// The address a listener bound, as a URL.
pub fn base_url(address: SocketAddr) -> String {
    format!("http://{address}")
}
