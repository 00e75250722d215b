//! A minimal Azure Queue Storage service, in memory, for the demo on a machine without Azurite:
//! the subset of the REST API that `azure_storage_queue` uses for creating a queue and putting,
//! getting, peeking, deleting and updating messages, with visibility timeouts, dequeue counts,
//! pop receipts and expiry, answered in the service's XML (learn.microsoft.com/rest/api/
//! storageservices/queue-service-rest-api: "Put Message", "Get Messages", "Peek Messages",
//! "Delete Message", "Update Message", "Create Queue", "Get Queue Metadata").
//!
//! It serves one account (`devstoreaccount1`, path-style like Azurite:
//! `https://127.0.0.1:PORT/devstoreaccount1/<queue>`) over the simulator's HTTPS, and only to
//! Entra bearer tokens, checked as Azurite's `--oauth basic` checks them: audience
//! `https://storage.azure.com`, issuer `https://sts.windows.net/…`, `nbf` ≤ now ≤ `exp`; no
//! signature check. The simulator's managed identity endpoint mints such tokens.
//!
//! Not imitated: shared keys and SAS, queue listing, queue metadata and ACLs, CORS, service
//! properties, geo-replication; limits other than the 64 KiB message and the documented ranges
//! of `numofmessages`, `visibilitytimeout` and `messagettl`. Order of messages: oldest first,
//! which the real service only approximates.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The account served.
pub const ACCOUNT: &str = "devstoreaccount1";

const MAX_MESSAGE_BYTES: usize = 64 * 1024;
const SEVEN_DAYS: i64 = 7 * 24 * 3600;

/// The queues and their messages.
#[derive(Default)]
pub(crate) struct QueueStore {
    queues: Mutex<BTreeMap<String, Vec<Message>>>,
}

#[derive(Clone)]
struct Message {
    id: String,
    text: String,
    inserted: u64,
    /// `None`: never expires (`messagettl=-1`).
    expires: Option<u64>,
    visible_at: f64,
    dequeue_count: u32,
    pop_receipt: String,
}

pub(crate) type HttpResponse = Response<Full<Bytes>>;
/// An error answer, boxed: it travels through `Result`s.
pub(crate) type Refusal = Box<HttpResponse>;

/// Serves the queue service on `listener` (TLS) until `shutdown` flips.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    store: Arc<QueueStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let tls = tls.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let store = store.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&store, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// RFC 1123 (`Mon, 30 Nov 2026 03:00:00 GMT`), as the service writes times.
pub(crate) fn http_date(secs: u64) -> String {
    crate::clock::rfc1123(secs)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find(';')? + start;
        let entity = &rest[start + 1..end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ if entity.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&entity[2..], 16).ok()?)?
            }
            _ if entity.starts_with('#') => char::from_u32(entity[1..].parse().ok()?)?,
            _ => return None,
        };
        out.push(decoded);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

pub(crate) fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}\nRequestId:{}\nTime:{}</Message></Error>",
        escape(message),
        uuid::Uuid::new_v4(),
        crate::clock::now_rfc3339()
    );
    response(status, &[("x-ms-error-code", code)], body, true)
}

pub(crate) fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: String,
    xml: bool,
) -> HttpResponse {
    let mut builder = Response::builder()
        .status(status)
        .header("x-ms-request-id", uuid::Uuid::new_v4().to_string())
        .header("x-ms-version", "2026-04-06")
        .header("date", http_date(now() as u64));
    if xml && !body.is_empty() {
        builder = builder.header("content-type", "application/xml");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The token checks of Azurite's `--oauth basic`.
pub(crate) fn authenticate(request: &Request<Incoming>) -> Result<(), Refusal> {
    let Some(token) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        let challenge = format!(
            "Bearer authorization_uri=https://login.microsoftonline.com/{}/oauth2/authorize resource_id=https://storage.azure.com",
            crate::identity::TENANT_ID
        );
        let mut answer = error(
            401,
            "NoAuthenticationInformation",
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        );
        if let Ok(value) = challenge.parse() {
            answer.headers_mut().insert("www-authenticate", value);
        }
        return Err(Box::new(answer));
    };
    let failed = |reason: &str| {
        Box::new(error(
            403,
            "AuthenticationFailed",
            &format!("Server failed to authenticate the request. {reason}"),
        ))
    };
    let token = token
        .strip_prefix("Bearer ")
        .ok_or_else(|| failed("Only bearer tokens are accepted."))?;
    let claims: Value = token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| failed("The token is not a JWT."))?;
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
    let (Some(nbf), Some(exp), Some(_)) = (number("nbf"), number("exp"), number("iat")) else {
        return Err(failed("The token has no lifetime."));
    };
    let now = now();
    if now < nbf || now > exp {
        return Err(failed("Lifetime validation failed."));
    }
    let issuer_ok = claims
        .get("iss")
        .and_then(Value::as_str)
        .is_some_and(|iss| iss.starts_with("https://sts.windows.net/"));
    if !issuer_ok {
        return Err(failed("Invalid token issuer."));
    }
    let audience_ok = claims
        .get("aud")
        .and_then(Value::as_str)
        .is_some_and(|aud| aud.trim_end_matches('/') == "https://storage.azure.com");
    if !audience_ok {
        return Err(failed("Invalid token audience."));
    }
    Ok(())
}

fn valid_queue_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// An integer query parameter within a range; `Ok(None)` when absent.
fn ranged(
    query: &[(String, String)],
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, Refusal> {
    match crate::http::query_value(query, name) {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(Box::new(error(
                400,
                "OutOfRangeQueryParameterValue",
                &format!("One of the query parameters specified in the request URI is outside the permissible range: {name}."),
            ))),
        },
    }
}

async fn handle(store: &QueueStore, request: Request<Incoming>) -> HttpResponse {
    if let Err(answer) = authenticate(&request) {
        return *answer;
    }
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = crate::http::parse_query(request.uri().query());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = match Limited::new(request.into_body(), 1024 * 1024)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                413,
                "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.",
            )
        }
    };
    match segments.as_slice() {
        [account, ..] if *account != ACCOUNT => {
            error(404, "ResourceNotFound", "The specified resource does not exist.")
        }
        [_, queue, ..] if !valid_queue_name(queue) => error(
            400,
            "InvalidResourceName",
            "The specifed resource name contains invalid characters.",
        ),
        [_, queue] => queue_operation(store, &method, queue, &query),
        [_, queue, "messages"] => messages_operation(store, &method, queue, &query, &body),
        [_, queue, "messages", id] => message_operation(store, &method, queue, id, &query, &body),
        _ => error(
            400,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb or path (not imitated by the simulator).",
        ),
    }
}

fn internal_error() -> HttpResponse {
    error(
        500,
        "InternalError",
        "The server encountered an internal error.",
    )
}

/// Runs `f` on the messages of `queue`, expired ones gone; 404 when the queue does not exist.
fn with_messages(
    store: &QueueStore,
    queue: &str,
    f: impl FnOnce(&mut Vec<Message>) -> HttpResponse,
) -> HttpResponse {
    let Ok(mut queues) = store.queues.lock() else {
        return internal_error();
    };
    let Some(messages) = queues.get_mut(queue) else {
        return queue_not_found();
    };
    expire(messages);
    f(messages)
}

fn queue_not_found() -> HttpResponse {
    error(404, "QueueNotFound", "The specified queue does not exist.")
}

fn queue_operation(
    store: &QueueStore,
    method: &str,
    queue: &str,
    query: &[(String, String)],
) -> HttpResponse {
    let Ok(mut queues) = store.queues.lock() else {
        return internal_error();
    };
    let comp = crate::http::query_value(query, "comp").unwrap_or("");
    match (method, comp) {
        ("PUT", "") => {
            if queues.contains_key(queue) {
                // Same (empty) metadata: 204, as the service answers.
                response(204, &[], String::new(), false)
            } else {
                queues.insert(queue.to_string(), Vec::new());
                response(201, &[], String::new(), false)
            }
        }
        ("DELETE", "") => match queues.remove(queue) {
            Some(_) => response(204, &[], String::new(), false),
            None => queue_not_found(),
        },
        ("GET" | "HEAD", "metadata") => match queues.get_mut(queue) {
            Some(messages) => {
                expire(messages);
                let count = messages.len().to_string();
                response(
                    200,
                    &[("x-ms-approximate-messages-count", count.as_str())],
                    String::new(),
                    false,
                )
            }
            None => queue_not_found(),
        },
        _ => error(
            400,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb (not imitated by the simulator).",
        ),
    }
}

fn expire(messages: &mut Vec<Message>) {
    let now = now() as u64;
    messages.retain(|m| m.expires.is_none_or(|expires| expires > now));
}

fn message_text(body: &Bytes) -> Result<String, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| {
        error(
            400,
            "InvalidXmlDocument",
            "XML specified is not syntactically valid.",
        )
    })?;
    let start = text
        .find("<MessageText>")
        .map(|i| i + "<MessageText>".len());
    let end = text.find("</MessageText>");
    let raw = match (start, end) {
        (Some(start), Some(end)) if start <= end => &text[start..end],
        _ if text.contains("<MessageText/>") || text.contains("<MessageText />") => "",
        _ => {
            return Err(Box::new(error(
                400,
                "InvalidXmlDocument",
                "XML specified is not syntactically valid.",
            )))
        }
    };
    let decoded = unescape(raw).ok_or_else(|| {
        error(
            400,
            "InvalidXmlDocument",
            "XML specified is not syntactically valid.",
        )
    })?;
    if decoded.len() > MAX_MESSAGE_BYTES {
        return Err(Box::new(error(
            413,
            "RequestBodyTooLarge",
            "The request body is too large and exceeds the maximum permissible limit.",
        )));
    }
    Ok(decoded)
}

fn messages_operation(
    store: &QueueStore,
    method: &str,
    queue: &str,
    query: &[(String, String)],
    body: &Bytes,
) -> HttpResponse {
    with_messages(store, queue, |messages| {
        let now = now();
        match method {
            "POST" => {
                let text = match message_text(body) {
                    Ok(text) => text,
                    Err(answer) => return *answer,
                };
                let ttl = match ranged(query, "messagettl", -1..=i64::MAX) {
                    Ok(ttl) => ttl.unwrap_or(SEVEN_DAYS),
                    Err(answer) => return *answer,
                };
                if ttl == 0 {
                    return error(400, "OutOfRangeQueryParameterValue", "One of the query parameters specified in the request URI is outside the permissible range: messagettl.");
                }
                let visibility = match ranged(query, "visibilitytimeout", 0..=SEVEN_DAYS) {
                    Ok(v) => v.unwrap_or(0),
                    Err(answer) => return *answer,
                };
                let inserted = now as u64;
                let message = Message {
                    id: uuid::Uuid::new_v4().to_string(),
                    text,
                    inserted,
                    expires: (ttl > 0).then(|| inserted + ttl as u64),
                    visible_at: now + visibility as f64,
                    dequeue_count: 0,
                    pop_receipt: pop_receipt(),
                };
                let xml = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList><QueueMessage><MessageId>{}</MessageId><InsertionTime>{}</InsertionTime><ExpirationTime>{}</ExpirationTime><PopReceipt>{}</PopReceipt><TimeNextVisible>{}</TimeNextVisible></QueueMessage></QueueMessagesList>",
                message.id,
                http_date(message.inserted),
                expiration(&message),
                message.pop_receipt,
                http_date(message.visible_at as u64)
            );
                messages.push(message);
                response(201, &[], xml, true)
            }
            "GET" => {
                let count = match ranged(query, "numofmessages", 1..=32) {
                    Ok(count) => count.unwrap_or(1) as usize,
                    Err(answer) => return *answer,
                };
                let peek = crate::http::query_value(query, "peekonly")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let mut xml =
                    String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList>");
                if peek {
                    for message in messages.iter().filter(|m| m.visible_at <= now).take(count) {
                        xml.push_str(&format!(
                        "<QueueMessage><MessageId>{}</MessageId><InsertionTime>{}</InsertionTime><ExpirationTime>{}</ExpirationTime><DequeueCount>{}</DequeueCount><MessageText>{}</MessageText></QueueMessage>",
                        message.id,
                        http_date(message.inserted),
                        expiration(message),
                        message.dequeue_count,
                        escape(&message.text)
                    ));
                    }
                } else {
                    let visibility = match ranged(query, "visibilitytimeout", 1..=SEVEN_DAYS) {
                        Ok(v) => v.unwrap_or(30),
                        Err(answer) => return *answer,
                    };
                    for message in messages
                        .iter_mut()
                        .filter(|m| m.visible_at <= now)
                        .take(count)
                    {
                        message.dequeue_count += 1;
                        message.visible_at = now + visibility as f64;
                        message.pop_receipt = pop_receipt();
                        xml.push_str(&format!(
                        "<QueueMessage><MessageId>{}</MessageId><InsertionTime>{}</InsertionTime><ExpirationTime>{}</ExpirationTime><PopReceipt>{}</PopReceipt><TimeNextVisible>{}</TimeNextVisible><DequeueCount>{}</DequeueCount><MessageText>{}</MessageText></QueueMessage>",
                        message.id,
                        http_date(message.inserted),
                        expiration(message),
                        message.pop_receipt,
                        http_date(message.visible_at as u64),
                        message.dequeue_count,
                        escape(&message.text)
                    ));
                    }
                }
                xml.push_str("</QueueMessagesList>");
                response(200, &[], xml, true)
            }
            "DELETE" => {
                messages.clear();
                response(204, &[], String::new(), false)
            }
            _ => error(
                400,
                "UnsupportedHttpVerb",
                "The resource doesn't support the specified HTTP verb.",
            ),
        }
    })
}

fn message_operation(
    store: &QueueStore,
    method: &str,
    queue: &str,
    id: &str,
    query: &[(String, String)],
    body: &Bytes,
) -> HttpResponse {
    with_messages(store, queue, |messages| {
        let Some(receipt) = crate::http::query_value(query, "popreceipt").map(str::to_string)
        else {
            return error(
                400,
                "MissingRequiredQueryParameter",
                "A query parameter that's mandatory for this request is not specified: popreceipt.",
            );
        };
        let Some(index) = messages.iter().position(|m| m.id == id) else {
            return error(
                404,
                "MessageNotFound",
                "The specified message does not exist.",
            );
        };
        if messages[index].pop_receipt != receipt {
            return error(
                400,
                "PopReceiptMismatch",
                "The specified pop receipt did not match the pop receipt for a dequeued message.",
            );
        }
        match method {
            "DELETE" => {
                messages.remove(index);
                response(204, &[], String::new(), false)
            }
            "PUT" => {
                let visibility = match ranged(query, "visibilitytimeout", 0..=SEVEN_DAYS) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    return error(
                        400,
                        "MissingRequiredQueryParameter",
                        "A query parameter that's mandatory for this request is not specified: visibilitytimeout.",
                    )
                }
                Err(answer) => return *answer,
            };
                let text = if body.is_empty() {
                    None
                } else {
                    match message_text(body) {
                        Ok(text) => Some(text),
                        Err(answer) => return *answer,
                    }
                };
                let message = &mut messages[index];
                if let Some(text) = text {
                    message.text = text;
                }
                message.visible_at = now() + visibility as f64;
                message.pop_receipt = pop_receipt();
                let next = http_date(message.visible_at as u64);
                let receipt = message.pop_receipt.clone();
                response(
                    204,
                    &[
                        ("x-ms-popreceipt", receipt.as_str()),
                        ("x-ms-time-next-visible", next.as_str()),
                    ],
                    String::new(),
                    false,
                )
            }
            _ => error(
                400,
                "UnsupportedHttpVerb",
                "The resource doesn't support the specified HTTP verb.",
            ),
        }
    })
}

fn expiration(message: &Message) -> String {
    // A message that never expires shows the service's far date.
    http_date(message.expires.unwrap_or(253_402_300_799))
}

fn pop_receipt() -> String {
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}
