//! The HTTP side: listeners (plain or TLS), the per-request pipeline that ARM applies before a
//! resource provider sees a request (faults, authentication, `api-version`, throttling), the
//! common response headers and the request log; then the control API ([`crate::control`]) or
//! the ARM front end ([`crate::arm`]) answers.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{FaultAction, Refusal};
use crate::http::{error_response, json_response, parse_query, query_value, HttpResponse};
use crate::scheduler::schedule;
use crate::shared::{record, RequestRecord, Shared};
use crate::throttle::{OpClass, Verdict};
use crate::world::{ArmError, Ctx, LroFault, Reply};

/// Marker error that makes hyper close the connection without answering.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a fault rule")
    }
}

impl std::error::Error for DropConnection {}

fn well_formed_api_version(version: &str) -> bool {
    let (date, rest) = version.split_at(version.len().min(10));
    let date_ok = date.len() == 10
        && date.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    date_ok
        && (rest.is_empty()
            || rest.starts_with("-preview")
            || rest.starts_with("-beta")
            || rest.starts_with("-alpha"))
}

/// Serves connections from `listener` until `shutdown` flips. With `tls`, each connection is a
/// TLS handshake first (in its own task, so a slow client does not block the others).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    identity_only: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        serve_connection(stream, peer, shared, identity_only, shutdown).await
                    }
                    Err(error) => tracing::debug!(%error, "TLS handshake failed"),
                },
                None => serve_connection(stream, peer, shared, identity_only, shutdown).await,
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    shared: Arc<Shared>,
    identity_only: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move {
            if identity_only {
                Ok::<_, DropConnection>(identity(&shared, &req))
            } else {
                handle(shared, req, peer).await
            }
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection closed");
            }
        }
        _ = shutdown.changed() => {}
    }
}

fn identity(shared: &Shared, req: &Request<Incoming>) -> HttpResponse {
    let header = req
        .headers()
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Compared in constant time, as the platform's endpoint would: the header is its secret.
    let matches: bool =
        subtle::ConstantTimeEq::ct_eq(header.as_bytes(), shared.identity_header.as_bytes()).into();
    if !matches {
        return json_response(
            401,
            &json!({"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or wrong."}),
            &[],
        );
    }
    let query = parse_query(req.uri().query());
    let Some(resource) = query_value(&query, "resource").filter(|r| !r.is_empty()) else {
        return json_response(
            400,
            &json!({"statusCode": 400, "message": "The resource parameter is required."}),
            &[],
        );
    };
    let client_id = query_value(&query, "client_id")
        .unwrap_or(&shared.client_id)
        .to_string();
    let principal = query_value(&query, "object_id")
        .unwrap_or(&shared.principal_id)
        .to_string();
    json_response(
        200,
        &crate::identity::token_response(resource, &principal, &client_id),
        &[],
    )
}

/// Where ARM's pipeline runs: control API, faults, auth, api-version, throttling, then the RP;
/// every answer reports the budget left and goes to the request log.
async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, DropConnection> {
    let request = Received::read(&shared, req, peer).await;
    if request.path.starts_with("/_sim/") || request.path == "/_sim" {
        return Ok(crate::control::handle(
            &shared,
            &request.method,
            &request.path,
            &request.query,
            &request.body,
        ));
    }
    if request.path.eq_ignore_ascii_case("/metadata/endpoints") {
        return Ok(crate::cloud::metadata_endpoints(
            &request.method,
            &request.query,
            &request.base_url,
        ));
    }
    let ids = RequestIds::for_request(&request);
    let mut out_headers = ids.headers(&request.time);
    // Faults first: they imitate the network and ARM's front door.
    let fault = shared
        .faults
        .lock()
        .ok()
        .and_then(|mut f| f.pick(&request.method, &request.path, rand::random::<f64>));
    let faulted = apply_fault(&shared, &request, fault).await?;
    let outcome: Result<Reply, ArmError> = match faulted.forced {
        Some(error) => Err(error),
        None => pipeline(&shared, &request, &ids, faulted.lro_fault, &mut out_headers),
    };
    if !shared.response_delay.is_zero() {
        tokio::time::sleep(shared.response_delay).await;
    }
    let remaining = budget_left(&shared, &request, &mut out_headers);
    let answered = answer(&shared, &request.method, outcome, &mut out_headers);
    tracing::debug!(
        method = request.method.as_str(),
        path = request.path.as_str(),
        status = answered.status,
        "request"
    );
    record(
        &shared,
        RequestRecord {
            method: request.method,
            path: request.path_and_query,
            status: answered.status,
            error_code: answered.error_code,
            time: request.time,
            duration_ms: 0.0,
            fault: faulted.name,
            ratelimit_remaining: Some(remaining),
            operations_in_flight: answered.operations_in_flight,
        },
        request.started,
    );
    Ok(answered.response)
}

/// One request as read from its connection.
struct Received {
    /// When it arrived, for its duration, and as RFC 3339 for the log.
    started: Instant,
    time: String,
    /// Upper case.
    method: String,
    path: String,
    path_and_query: String,
    /// `scheme://host` as the caller addressed the simulator, for the URLs it answers.
    base_url: String,
    headers: hyper::HeaderMap,
    query: Vec<(String, String)>,
    /// Up to 8 MiB; empty when it could not be read.
    body: Bytes,
    peer: SocketAddr,
}

impl Received {
    async fn read(shared: &Shared, req: Request<Incoming>, peer: SocketAddr) -> Self {
        let started = Instant::now();
        let time = crate::clock::now_rfc3339();
        let method = req.method().as_str().to_ascii_uppercase();
        let path = req.uri().path().to_string();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone());
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| shared.fallback_host.clone());
        let base_url = format!("{}://{host}", shared.scheme);
        let headers = req.headers().clone();
        let query = parse_query(req.uri().query());
        let body = match Limited::new(req.into_body(), 8 * 1024 * 1024)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        Self {
            started,
            time,
            method,
            path,
            path_and_query,
            base_url,
            headers,
            query,
            body,
            peer,
        }
    }

    /// A header's value, when it is text.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The ids ARM gives a request: its own, and the correlation id (the caller's, else its own).
struct RequestIds {
    request_id: String,
    correlation_id: String,
}

impl RequestIds {
    fn for_request(request: &Received) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = request
            .header("x-ms-correlation-request-id")
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        Self {
            request_id,
            correlation_id,
        }
    }

    /// The headers every ARM answer carries: the request, correlation and routing ids.
    fn headers(&self, time: &str) -> Vec<(String, String)> {
        let request_id = &self.request_id;
        vec![
            ("x-ms-request-id".to_string(), request_id.clone()),
            (
                "x-ms-correlation-request-id".to_string(),
                self.correlation_id.clone(),
            ),
            (
                "x-ms-routing-request-id".to_string(),
                format!(
                    "WESTUS:{}:{request_id}",
                    time.replace(['-', ':'], "").get(..15).unwrap_or("")
                ),
            ),
        ]
    }
}

/// What a fault rule did to a request: its name for the log, an answer forced instead of the
/// resource provider's, or an end forced on the operation the request starts.
#[derive(Default)]
struct Faulted {
    name: Option<String>,
    forced: Option<ArmError>,
    lro_fault: Option<LroFault>,
}

/// Applies the fault picked for `request`: a dropped connection is logged (status 0) and
/// dropped; a slow one waits here; the others are returned for the pipeline.
async fn apply_fault(
    shared: &Shared,
    request: &Received,
    fault: Option<FaultAction>,
) -> Result<Faulted, DropConnection> {
    let mut faulted = Faulted::default();
    match fault {
        Some(FaultAction::Drop) => {
            let entry = RequestRecord {
                method: request.method.clone(),
                path: request.path_and_query.clone(),
                status: 0,
                error_code: None,
                time: request.time.clone(),
                duration_ms: 0.0,
                fault: Some("drop".into()),
                ratelimit_remaining: None,
                operations_in_flight: None,
            };
            record(shared, entry, request.started);
            return Err(DropConnection);
        }
        Some(FaultAction::Slow(delay)) => {
            faulted.name = Some(format!("slow:{}ms", delay.as_millis()));
            tokio::time::sleep(delay).await;
        }
        Some(FaultAction::Status(status)) => {
            faulted.name = Some(status.to_string());
            faulted.forced = Some(fault_error(status, shared.fault_retry_after));
        }
        Some(FaultAction::Refuse(refusal)) => {
            faulted.name = Some(crate::faults::refusal_name(refusal).to_string());
            faulted.forced = Some(refusal_of(shared, request, refusal));
        }
        Some(FaultAction::LroFail) => {
            faulted.name = Some("lro-fail".into());
            faulted.lro_fault = Some(LroFault::Fail("InternalServerError".into()));
        }
        Some(FaultAction::LroFailWith(code)) => {
            faulted.name = Some(format!("lro-fail:{code}"));
            faulted.lro_fault = Some(LroFault::Fail(code));
        }
        Some(FaultAction::LroCancel) => {
            faulted.name = Some("lro-cancel".into());
            faulted.lro_fault = Some(LroFault::Cancel);
        }
        Some(FaultAction::Pass) | None => {}
    }
    Ok(faulted)
}

/// The refusal of a request, naming the caller's object id (from its token, else the
/// simulator's own principal).
fn refusal_of(shared: &Shared, request: &Received, refusal: Refusal) -> ArmError {
    let token = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let object_id = crate::identity::claims_of(token)
        .get("oid")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| shared.principal_id.clone());
    crate::faults::refusal_error(
        refusal,
        &request.method,
        &request.path,
        &request.body,
        &object_id,
    )
}

/// Every ARM answer tells the caller what is left of its budget; an answer that took no token
/// (an injected fault, a request refused before throttling) reports the bucket as it is.
fn budget_left(
    shared: &Shared,
    request: &Received,
    out_headers: &mut Vec<(String, String)>,
) -> u64 {
    let class = OpClass::of_method(&request.method);
    if let Some(remaining) = out_headers
        .iter()
        .find(|(name, _)| name == class.header())
        .and_then(|(_, value)| value.parse::<u64>().ok())
    {
        return remaining;
    }
    let remaining = shared
        .throttle
        .lock()
        .map(|mut t| t.remaining(&subscription_of(&request.path), class, Instant::now()))
        .unwrap_or(0);
    out_headers.push((class.header().to_string(), remaining.to_string()));
    remaining
}

/// An ARM answer as sent, and what the request log keeps of it.
struct Answered {
    response: HttpResponse,
    status: u16,
    error_code: Option<String>,
    operations_in_flight: Option<u32>,
}

/// The answer of the resource provider (its operations scheduled, a GET's `ETag`) or its error.
fn answer(
    shared: &Arc<Shared>,
    method: &str,
    outcome: Result<Reply, ArmError>,
    out_headers: &mut Vec<(String, String)>,
) -> Answered {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(error) => {
            return Answered {
                response: error_response(&error, out_headers),
                status: error.status,
                error_code: Some(error.code),
                operations_in_flight: None,
            }
        }
    };
    schedule(shared, &reply.scheduled);
    out_headers.extend(reply.headers.iter().cloned());
    if method == "GET" {
        if let Some(etag) = reply
            .body
            .as_ref()
            .and_then(|b| b.get("etag"))
            .and_then(Value::as_str)
        {
            out_headers.push(("ETag".to_string(), etag.to_string()));
        }
    }
    let body = reply.body.unwrap_or(Value::Null);
    Answered {
        response: json_response(reply.status, &body, out_headers),
        status: reply.status,
        error_code: None,
        operations_in_flight: reply.operations_in_flight,
    }
}

fn fault_error(status: u16, retry_after: u64) -> ArmError {
    let mut error = match status {
        429 => ArmError::new(
            429,
            "TooManyRequests",
            "The request is being throttled (injected fault).",
        ),
        409 => ArmError::new(
            409,
            "AnotherOperationInProgress",
            "Another operation on this or dependent resource is in progress (injected fault).",
        ),
        500 => ArmError::new(
            500,
            "InternalServerError",
            "An error occurred (injected fault).",
        ),
        503 => ArmError::new(
            503,
            "ServiceUnavailable",
            "The service is unavailable (injected fault).",
        ),
        other => ArmError::new(other, "InjectedFault", format!("Injected fault {other}.")),
    };
    if matches!(status, 429 | 503) {
        error.retry_after = Some(retry_after);
    }
    error
}

/// ARM's checks before the resource provider, in ARM's order: a bearer token, a well-formed
/// `api-version`, a token from the subscription's bucket; then the ARM front end answers.
fn pipeline(
    shared: &Arc<Shared>,
    request: &Received,
    ids: &RequestIds,
    lro_fault: Option<LroFault>,
    out_headers: &mut Vec<(String, String)>,
) -> Result<Reply, ArmError> {
    let token = bearer_token(request, out_headers)?;
    let api_version = checked_api_version(&request.query)?;
    take_budget(shared, request, out_headers)?;
    let ctx = Ctx {
        base_url: request.base_url.clone(),
        api_version: api_version.to_string(),
        request_id: ids.request_id.clone(),
        correlation_id: ids.correlation_id.clone(),
        client_request_id: request
            .header("x-ms-client-request-id")
            .unwrap_or("")
            .to_string(),
        method: request.method.clone(),
        url: format!("https://management.azure.com{}", request.path_and_query),
        client_ip: request.peer.ip().to_string(),
        claims: crate::identity::claims_of(token),
        if_match: request.header("if-match").map(str::to_string),
        sync_remote_address_space: query_value(&request.query, "syncRemoteAddressSpace")
            .map(str::to_string),
        lro_fault,
        now: Instant::now(),
    };
    crate::arm::handle(shared, &ctx, &request.path, &request.query, &request.body)
}

/// The request's bearer token; without one, 401 with ARM's `WWW-Authenticate` challenge.
fn bearer_token<'a>(
    request: &'a Received,
    out_headers: &mut Vec<(String, String)>,
) -> Result<&'a str, ArmError> {
    let token = request
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    if !token.is_empty() {
        crate::identity::check_arm_token(token, out_headers)?;
        return Ok(token);
    }
    out_headers.push((
        "WWW-Authenticate".to_string(),
        format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"",
            crate::identity::TENANT_ID
        ),
    ));
    Err(ArmError::new(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
    ))
}

/// The `api-version` of the query, required and of the form `yyyy-MM-dd[-preview]`.
fn checked_api_version(query: &[(String, String)]) -> Result<&str, ArmError> {
    let Some(api_version) = query_value(query, "api-version") else {
        return Err(ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if !well_formed_api_version(api_version) {
        return Err(ArmError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{api_version}' is invalid. The supported versions are in the format 'yyyy-MM-dd' or 'yyyy-MM-dd-preview'."),
        ));
    }
    Ok(api_version)
}

/// Takes a token from the subscription's bucket for the request's class, reporting what is left;
/// a request the bucket cannot pay is throttled (429 with `Retry-After`).
fn take_budget(
    shared: &Shared,
    request: &Received,
    out_headers: &mut Vec<(String, String)>,
) -> Result<(), ArmError> {
    let class = OpClass::of_method(&request.method);
    let subscription = subscription_of(&request.path);
    let verdict = shared
        .throttle
        .lock()
        .map(|mut t| t.take(&subscription, class, Instant::now()))
        .unwrap_or(Verdict::Allowed(0));
    let (retry_after, remaining, by_network_rp) = match verdict {
        Verdict::Allowed(remaining) => {
            out_headers.push((class.header().to_string(), remaining.to_string()));
            return Ok(());
        }
        Verdict::Throttled {
            retry_after,
            remaining,
            by_network_rp,
        } => (retry_after, remaining, by_network_rp),
    };
    out_headers.push((class.header().to_string(), remaining.to_string()));
    let kind = match class {
        OpClass::Read => "read",
        OpClass::Write => "write",
        OpClass::Delete => "delete",
    };
    let message = if by_network_rp {
        // UNCONFIRMED: Azure's documentation gives no text for the Network RP's own throttling.
        format!("Number of '{kind}' requests for subscription '{subscription}' exceeded the limit of the resource provider 'Microsoft.Network'. Please try again after '{retry_after}' seconds.")
    } else {
        format!("Number of '{kind}' requests for subscription '{subscription}' actor '{}' exceeded. Please try again after '{retry_after}' seconds after the last request.", request.peer.ip())
    };
    let mut error = ArmError::new(429, "SubscriptionRequestsThrottled", message);
    error.retry_after = Some(retry_after);
    Err(error)
}

/// The subscription a path is under (empty for tenant-level paths).
fn subscription_of(path: &str) -> String {
    path.split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("subscriptions"))
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_checked_for_form_only() {
        assert!(well_formed_api_version("2026-01-01"));
        assert!(well_formed_api_version("2024-05-01-preview"));
        assert!(!well_formed_api_version("yesterday"));
        assert!(!well_formed_api_version("2024-5-1"));
    }
}
