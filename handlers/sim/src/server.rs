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

use crate::config::FaultAction;
use crate::http::{error_response, json_response, parse_query, query_value, HttpResponse};
use crate::scheduler::schedule;
use crate::shared::{record, RequestRecord, Shared};
use crate::throttle::{OpClass, Verdict};
use crate::world::{ArmError, Reply};

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
    if header != shared.identity_header {
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

/// Where ARM's pipeline runs: control API, faults, auth, api-version, throttling, then the RP.
async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, DropConnection> {
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

    if path.starts_with("/_sim/") || path == "/_sim" {
        return Ok(crate::control::handle(
            &shared, &method, &path, &query, &body,
        ));
    }

    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let mut out_headers = vec![
        ("x-ms-request-id".to_string(), request_id.clone()),
        (
            "x-ms-correlation-request-id".to_string(),
            correlation_id.clone(),
        ),
        (
            "x-ms-routing-request-id".to_string(),
            format!(
                "WESTUS:{}:{request_id}",
                time.replace(['-', ':'], "").get(..15).unwrap_or("")
            ),
        ),
    ];
    let mut fault_name = None;

    // Faults first: they imitate the network and ARM's front door.
    let fault = shared
        .faults
        .lock()
        .ok()
        .and_then(|mut f| f.pick(&method, &path, rand::random::<f64>));
    let mut forced: Option<ArmError> = None;
    let mut lro_fault = None;
    match fault {
        Some(FaultAction::Drop) => {
            record(
                &shared,
                RequestRecord {
                    method: method.clone(),
                    path: path_and_query.clone(),
                    status: 0,
                    error_code: None,
                    time: time.clone(),
                    duration_ms: 0.0,
                    fault: Some("drop".into()),
                    ratelimit_remaining: None,
                    operations_in_flight: None,
                },
                started,
            );
            return Err(DropConnection);
        }
        Some(FaultAction::Slow(delay)) => {
            fault_name = Some(format!("slow:{}ms", delay.as_millis()));
            tokio::time::sleep(delay).await;
        }
        Some(FaultAction::Status(status)) => {
            fault_name = Some(status.to_string());
            forced = Some(fault_error(status, shared.fault_retry_after));
        }
        Some(FaultAction::Refuse(refusal)) => {
            fault_name = Some(crate::faults::refusal_name(refusal).to_string());
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let object_id = crate::identity::claims_of(token)
                .get("oid")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| shared.principal_id.clone());
            forced = Some(crate::faults::refusal_error(
                refusal, &method, &path, &body, &object_id,
            ));
        }
        Some(FaultAction::LroFail) => {
            fault_name = Some("lro-fail".into());
            lro_fault = Some(crate::world::LroFault::Fail("InternalServerError".into()));
        }
        Some(FaultAction::LroFailWith(code)) => {
            fault_name = Some(format!("lro-fail:{code}"));
            lro_fault = Some(crate::world::LroFault::Fail(code));
        }
        Some(FaultAction::LroCancel) => {
            fault_name = Some("lro-cancel".into());
            lro_fault = Some(crate::world::LroFault::Cancel);
        }
        Some(FaultAction::Pass) | None => {}
    }

    let outcome: Result<Reply, ArmError> = match forced {
        Some(error) => Err(error),
        None => pipeline(
            &shared,
            &method,
            &path,
            &query,
            &headers,
            &body,
            &base_url,
            &path_and_query,
            peer,
            &request_id,
            &correlation_id,
            lro_fault,
            &mut out_headers,
        ),
    };
    if !shared.response_delay.is_zero() {
        tokio::time::sleep(shared.response_delay).await;
    }
    // Every ARM answer tells the caller what is left of its budget; an answer that took no token
    // (an injected fault, a request refused before throttling) reports the bucket as it is.
    let class = OpClass::of_method(&method);
    let remaining = match out_headers
        .iter()
        .find(|(name, _)| name == class.header())
        .and_then(|(_, value)| value.parse::<u64>().ok())
    {
        Some(remaining) => remaining,
        None => {
            let remaining = shared
                .throttle
                .lock()
                .map(|mut t| t.remaining(&subscription_of(&path), class, Instant::now()))
                .unwrap_or(0);
            out_headers.push((class.header().to_string(), remaining.to_string()));
            remaining
        }
    };
    let mut operations_in_flight = None;
    let (response, status, code) = match outcome {
        Ok(reply) => {
            schedule(&shared, &reply.scheduled);
            operations_in_flight = reply.operations_in_flight;
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
            (
                json_response(reply.status, &body, &out_headers),
                reply.status,
                None,
            )
        }
        Err(error) => {
            let status = error.status;
            let code = error.code.clone();
            (error_response(&error, &mut out_headers), status, Some(code))
        }
    };
    tracing::debug!(
        method = method.as_str(),
        path = path.as_str(),
        status,
        "request"
    );
    record(
        &shared,
        RequestRecord {
            method,
            path: path_and_query,
            status,
            error_code: code,
            time,
            duration_ms: 0.0,
            fault: fault_name,
            ratelimit_remaining: Some(remaining),
            operations_in_flight,
        },
        started,
    );
    Ok(response)
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

#[allow(clippy::too_many_arguments)]
fn pipeline(
    shared: &Arc<Shared>,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &hyper::HeaderMap,
    body: &Bytes,
    base_url: &str,
    path_and_query: &str,
    peer: SocketAddr,
    request_id: &str,
    correlation_id: &str,
    lro_fault: Option<crate::world::LroFault>,
    out_headers: &mut Vec<(String, String)>,
) -> Result<Reply, ArmError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() {
        out_headers.push((
            "WWW-Authenticate".to_string(),
            format!(
                "Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"",
                crate::identity::TENANT_ID
            ),
        ));
        return Err(ArmError::new(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    }
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
    let class = OpClass::of_method(method);
    let subscription = subscription_of(path);
    let verdict = shared
        .throttle
        .lock()
        .map(|mut t| t.take(&subscription, class, Instant::now()))
        .unwrap_or(Verdict::Allowed(0));
    match verdict {
        Verdict::Allowed(remaining) => {
            out_headers.push((class.header().to_string(), remaining.to_string()))
        }
        Verdict::Throttled {
            retry_after,
            remaining,
            by_network_rp,
        } => {
            out_headers.push((class.header().to_string(), remaining.to_string()));
            let kind = match class {
                OpClass::Read => "read",
                OpClass::Write => "write",
                OpClass::Delete => "delete",
            };
            let message = if by_network_rp {
                // UNCONFIRMED: the notes give no text for the Network RP's own throttling.
                format!("Number of '{kind}' requests for subscription '{subscription}' exceeded the limit of the resource provider 'Microsoft.Network'. Please try again after '{retry_after}' seconds.")
            } else {
                format!("Number of '{kind}' requests for subscription '{subscription}' actor '{}' exceeded. Please try again after '{retry_after}' seconds after the last request.", peer.ip())
            };
            let mut error = ArmError::new(429, "SubscriptionRequestsThrottled", message);
            error.retry_after = Some(retry_after);
            return Err(error);
        }
    }
    let claims = crate::identity::claims_of(token);
    let ctx = crate::world::Ctx {
        base_url: base_url.to_string(),
        api_version: api_version.to_string(),
        request_id: request_id.to_string(),
        correlation_id: correlation_id.to_string(),
        client_request_id: headers
            .get("x-ms-client-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        method: method.to_string(),
        url: format!("https://management.azure.com{path_and_query}"),
        client_ip: peer.ip().to_string(),
        claims,
        if_match: headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        sync_remote_address_space: query_value(query, "syncRemoteAddressSpace").map(str::to_string),
        lro_fault,
        now: Instant::now(),
    };
    crate::arm::handle(shared, &ctx, path, query, body)
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
