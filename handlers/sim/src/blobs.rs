//! A minimal Azure Blob Storage service, in memory, beside the simulator's queues, for the demo
//! on a machine without Azurite: the subset hubspoke's leases use — Create Container, Put Blob
//! (empty block blobs with metadata, `If-None-Match: *`), Get Blob Properties, Set Blob Metadata,
//! Delete Blob (`If-Match`) and Lease Blob (acquire, renew, release, break) — with the service's
//! lease rules (learn.microsoft.com/rest/api/storageservices: "Lease Blob", "Put Blob", "Set Blob
//! Metadata", "Delete Blob", "Specifying conditional headers for Blob service operations"):
//! a lease of 15 to 60 seconds or infinite; acquiring a leased blob answers 409
//! `LeaseAlreadyPresent`; renewing or releasing with another id 409; writing a leased blob
//! without its lease id 412 `LeaseIdMissing`, with another id 412 `LeaseIdMismatchWithBlobOperation`;
//! a broken lease may not be renewed; `If-None-Match: *` on an existing blob 409
//! `BlobAlreadyExists`; `If-Match` on a changed blob 412 `ConditionNotMet`.
//!
//! Same account and tokens as the queues (`devstoreaccount1`, path-style; Entra bearer tokens
//! checked as Azurite's `--oauth basic` does). Not imitated: blob contents, listing, other blob
//! types, container leases, SAS, shared keys, versions and snapshots.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::queues::{authenticate, error, http_date, now, response, HttpResponse, ACCOUNT};

/// The containers and their blobs.
#[derive(Default)]
pub(crate) struct BlobStore {
    containers: Mutex<HashMap<String, BTreeMap<String, StoredBlob>>>,
}

#[derive(Clone)]
struct StoredBlob {
    metadata: BTreeMap<String, String>,
    etag: String,
    modified: u64,
    lease: LeaseState,
}

#[derive(Clone)]
enum LeaseState {
    Available,
    /// Held by `id` until `until` (`None`: infinite).
    Leased {
        id: String,
        until: Option<f64>,
    },
    /// Being broken until `until`, by then broken.
    Breaking {
        until: f64,
    },
}

impl StoredBlob {
    /// The lease as of now: a lease past its time is expired (available), a break past its
    /// period is broken (available).
    fn settle(&mut self) {
        let now = now();
        match &self.lease {
            LeaseState::Leased {
                until: Some(until), ..
            } if *until <= now => self.lease = LeaseState::Available,
            LeaseState::Breaking { until } if *until <= now => self.lease = LeaseState::Available,
            _ => {}
        }
    }

    fn held_by(&self) -> Option<&str> {
        match &self.lease {
            LeaseState::Leased { id, .. } => Some(id),
            _ => None,
        }
    }

    fn touch(&mut self) {
        self.etag = format!("\"0x{:X}\"", uuid::Uuid::new_v4().as_u128() >> 64);
        self.modified = now() as u64;
    }
}

/// Serves the blob service on `listener` (TLS) until `shutdown` flips.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    store: Arc<BlobStore>,
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

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn metadata_of(request: &Request<Incoming>) -> BTreeMap<String, String> {
    request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix("x-ms-meta-")?;
            Some((name.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

async fn handle(store: &BlobStore, request: Request<Incoming>) -> HttpResponse {
    if let Err(answer) = authenticate(&request) {
        return *answer;
    }
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = crate::http::parse_query(request.uri().query());
    let comp = crate::http::query_value(&query, "comp")
        .unwrap_or("")
        .to_string();
    let restype = crate::http::query_value(&query, "restype")
        .unwrap_or("")
        .to_string();
    let (account, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path.trim_start_matches('/'), ""));
    if account != ACCOUNT {
        return error(
            404,
            "ResourceNotFound",
            "The specified resource does not exist.",
        );
    }
    let (container, blob) = match rest.split_once('/') {
        Some((container, blob)) => (container.to_string(), percent_decode(blob)),
        None => (rest.to_string(), String::new()),
    };
    let metadata = metadata_of(&request);
    let lease_id = header(&request, "x-ms-lease-id").map(str::to_string);
    let if_match = header(&request, "if-match").map(str::to_string);
    let if_none_match = header(&request, "if-none-match").map(str::to_string);
    let action = header(&request, "x-ms-lease-action").map(str::to_ascii_lowercase);
    let duration = header(&request, "x-ms-lease-duration").map(str::to_string);
    let break_period = header(&request, "x-ms-lease-break-period").map(str::to_string);
    let proposed = header(&request, "x-ms-proposed-lease-id").map(str::to_string);
    // The body is read and dropped: blobs hold metadata only.
    if Limited::new(request.into_body(), 4 * 1024 * 1024)
        .collect()
        .await
        .is_err()
    {
        return error(413, "RequestBodyTooLarge", "The request body is too large.");
    }
    let Ok(mut containers) = store.containers.lock() else {
        return error(
            500,
            "InternalError",
            "The server encountered an internal error.",
        );
    };
    if blob.is_empty() {
        return match (method.as_str(), restype.as_str()) {
            ("PUT", "container") => match containers.entry(container) {
                std::collections::hash_map::Entry::Occupied(_) => error(
                    409,
                    "ContainerAlreadyExists",
                    "The specified container already exists.",
                ),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(BTreeMap::new());
                    response(201, &[], String::new(), false)
                }
            },
            ("GET" | "HEAD", "container") => match containers.get(&container) {
                Some(_) => response(200, &[], String::new(), false),
                None => container_not_found(),
            },
            _ => unsupported(),
        };
    }
    let Some(blobs) = containers.get_mut(&container) else {
        return container_not_found();
    };
    if let Some(stored) = blobs.get_mut(&blob) {
        stored.settle();
    }
    match (method.as_str(), comp.as_str()) {
        ("PUT", "") => {
            if let Some(stored) = blobs.get(&blob) {
                if if_none_match.as_deref() == Some("*") {
                    return error(
                        409,
                        "BlobAlreadyExists",
                        "The specified blob already exists.",
                    );
                }
                if let Some(refusal) = write_refused(stored, lease_id.as_deref()) {
                    return refusal;
                }
                if let Some(refusal) = condition_refused(stored, if_match.as_deref()) {
                    return refusal;
                }
            }
            let lease = blobs
                .get(&blob)
                .map(|b| b.lease.clone())
                .unwrap_or(LeaseState::Available);
            let mut stored = StoredBlob {
                metadata,
                etag: String::new(),
                modified: 0,
                lease,
            };
            stored.touch();
            let etag = stored.etag.clone();
            blobs.insert(blob, stored);
            response(201, &[("etag", etag.as_str())], String::new(), false)
        }
        ("HEAD" | "GET", "") => {
            let Some(stored) = blobs.get(&blob) else {
                return blob_not_found();
            };
            let (state, status, length) = match &stored.lease {
                LeaseState::Available => ("available", "unlocked", None),
                LeaseState::Leased { until, .. } => (
                    "leased",
                    "locked",
                    Some(if until.is_some() { "fixed" } else { "infinite" }),
                ),
                LeaseState::Breaking { .. } => ("breaking", "locked", None),
            };
            let modified = http_date(stored.modified);
            let mut headers: Vec<(String, String)> = vec![
                ("etag".into(), stored.etag.clone()),
                ("last-modified".into(), modified),
                ("x-ms-blob-type".into(), "BlockBlob".into()),
                ("x-ms-lease-state".into(), state.into()),
                ("x-ms-lease-status".into(), status.into()),
                ("content-length".into(), "0".into()),
            ];
            if let Some(length) = length {
                headers.push(("x-ms-lease-duration".into(), length.into()));
            }
            for (name, value) in &stored.metadata {
                headers.push((format!("x-ms-meta-{name}"), value.clone()));
            }
            let borrowed: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            response(200, &borrowed, String::new(), false)
        }
        ("PUT", "metadata") => {
            let Some(stored) = blobs.get_mut(&blob) else {
                return blob_not_found();
            };
            if let Some(refusal) = write_refused(stored, lease_id.as_deref()) {
                return refusal;
            }
            stored.metadata = metadata;
            stored.touch();
            let etag = stored.etag.clone();
            response(200, &[("etag", etag.as_str())], String::new(), false)
        }
        ("DELETE", "") => {
            let Some(stored) = blobs.get(&blob) else {
                return blob_not_found();
            };
            if let Some(refusal) = write_refused(stored, lease_id.as_deref()) {
                return refusal;
            }
            if let Some(refusal) = condition_refused(stored, if_match.as_deref()) {
                return refusal;
            }
            blobs.remove(&blob);
            response(202, &[], String::new(), false)
        }
        ("PUT", "lease") => {
            let Some(stored) = blobs.get_mut(&blob) else {
                return blob_not_found();
            };
            lease(
                stored,
                action.as_deref(),
                LeaseRequest {
                    id: lease_id,
                    duration,
                    break_period,
                    proposed,
                },
            )
        }
        _ => unsupported(),
    }
}

struct LeaseRequest {
    id: Option<String>,
    duration: Option<String>,
    break_period: Option<String>,
    proposed: Option<String>,
}

fn lease(stored: &mut StoredBlob, action: Option<&str>, request: LeaseRequest) -> HttpResponse {
    let now = now();
    match action {
        Some("acquire") => {
            let seconds: i64 = request
                .duration
                .as_deref()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            if seconds != -1 && !(15..=60).contains(&seconds) {
                return error(400, "InvalidHeaderValue", "The value for x-ms-lease-duration is invalid: 15 to 60 seconds, or -1.");
            }
            match &stored.lease {
                LeaseState::Leased { id, .. } if Some(id.as_str()) != request.proposed.as_deref() => {
                    return error(409, "LeaseAlreadyPresent", "There is already a lease present.")
                }
                LeaseState::Breaking { .. } => {
                    return error(409, "LeaseIsBreakingAndCannotBeAcquired", "There is already a breaking lease present.")
                }
                _ => {}
            }
            let id = request
                .proposed
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            stored.lease = LeaseState::Leased {
                id: id.clone(),
                until: (seconds > 0).then_some(now + seconds as f64),
            };
            response(201, &[("x-ms-lease-id", id.as_str())], String::new(), false)
        }
        Some("renew") => match (&stored.lease, request.id.as_deref()) {
            (LeaseState::Leased { id, until }, Some(given)) if id == given => {
                let id = id.clone();
                let length = until.map(|_| 60.0);
                stored.lease = LeaseState::Leased {
                    id: id.clone(),
                    until: length.map(|length| now + length),
                };
                response(200, &[("x-ms-lease-id", id.as_str())], String::new(), false)
            }
            (LeaseState::Breaking { .. }, _) => error(409, "LeaseIsBrokenAndCannotBeRenewed", "The lease ID matched, but the lease has been broken explicitly and cannot be renewed."),
            (LeaseState::Leased { .. }, _) => error(409, "LeaseIdMismatchWithLeaseOperation", "The lease ID specified did not match the lease ID for the blob."),
            (LeaseState::Available, _) => error(409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob."),
        },
        Some("release") => match (&stored.lease, request.id.as_deref()) {
            (LeaseState::Leased { id, .. }, Some(given)) if id == given => {
                stored.lease = LeaseState::Available;
                response(200, &[], String::new(), false)
            }
            (LeaseState::Leased { .. }, _) => error(409, "LeaseIdMismatchWithLeaseOperation", "The lease ID specified did not match the lease ID for the blob."),
            _ => error(409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob."),
        },
        Some("break") => {
            let period: f64 = request
                .break_period
                .as_deref()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0.0);
            match &stored.lease {
                LeaseState::Leased { until, .. } => {
                    let remaining = until.map_or(period, |until| (until - now).max(0.0));
                    let wait = period.min(remaining);
                    stored.lease = if wait <= 0.0 {
                        LeaseState::Available
                    } else {
                        LeaseState::Breaking { until: now + wait }
                    };
                    let time = (wait.ceil() as u64).to_string();
                    response(202, &[("x-ms-lease-time", time.as_str())], String::new(), false)
                }
                LeaseState::Breaking { until } => {
                    let time = ((until - now).max(0.0).ceil() as u64).to_string();
                    response(202, &[("x-ms-lease-time", time.as_str())], String::new(), false)
                }
                LeaseState::Available => error(409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob."),
            }
        }
        _ => error(400, "InvalidHeaderValue", "The value for x-ms-lease-action is invalid."),
    }
}

/// Writing a leased blob needs its lease id.
fn write_refused(stored: &StoredBlob, given: Option<&str>) -> Option<HttpResponse> {
    match (stored.held_by(), given) {
        (Some(_), None) => Some(error(
            412,
            "LeaseIdMissing",
            "There is currently a lease on the blob and no lease ID was specified in the request.",
        )),
        (Some(id), Some(given)) if id != given => Some(error(
            412,
            "LeaseIdMismatchWithBlobOperation",
            "The lease ID specified did not match the lease ID for the blob.",
        )),
        (None, Some(_)) => Some(error(
            412,
            "LeaseNotPresentWithBlobOperation",
            "There is currently no lease on the blob.",
        )),
        _ => None,
    }
}

fn condition_refused(stored: &StoredBlob, if_match: Option<&str>) -> Option<HttpResponse> {
    match if_match {
        Some(expected) if expected != "*" && expected != stored.etag => Some(error(
            412,
            "ConditionNotMet",
            "The condition specified using HTTP conditional header(s) is not met.",
        )),
        _ => None,
    }
}

fn container_not_found() -> HttpResponse {
    error(
        404,
        "ContainerNotFound",
        "The specified container does not exist.",
    )
}

fn blob_not_found() -> HttpResponse {
    error(404, "BlobNotFound", "The specified blob does not exist.")
}

fn unsupported() -> HttpResponse {
    error(
        400,
        "UnsupportedHttpVerb",
        "The resource doesn't support the specified HTTP verb (not imitated by the simulator).",
    )
}

/// `%XX` escapes of a path segment, decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
