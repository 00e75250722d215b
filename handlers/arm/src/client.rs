//! The HTTP layer of the ARM client: one request at a time, with a token, retried while
//! transient, long-running operations followed to their end, list pages followed through
//! `nextLink`, and every request counted.
//!
//! Pacing: every request, retries and polls included, first waits for leave from the client's
//! [`Pacer`](crate::pacer) for its subscription and operation type, and hands it Azure's answer
//! (the `x-ms-ratelimit-remaining-subscription-*` header, a 429). The pacer is shared by every
//! clone of the client, [`ArmClient::with_own_counts`] included, so passes of different hubs in one
//! process share one subscription's budget.
//!
//! Retries: after each send that did not succeed, the request's `Retries` (the retry policy,
//! `retry.rs`) says whether and when it is sent again: transient failures after a capped,
//! jittered backoff that honours `Retry-After`, a throttled request once the pacer admits it
//! without spending an attempt, and the re-issue of an operation that ended `Canceled` or failed
//! transiently within the same attempts and budget.
//!
//! Long-running operations: `Azure-AsyncOperation` is polled to `Succeeded`, `Failed` or
//! `Canceled` (for a DELETE too); without it `Location` is polled until it stops answering 202;
//! without either, a PUT
//! whose body is not yet `Succeeded` is polled by GETting the resource. Polls wait for the
//! previous answer's `Retry-After`, or `base_delay` when it gives none or 0. A whole operation is
//! bounded by the operation timeout.
//!
//! Tokens are sent only to the configured endpoint's origin: a `nextLink` or operation URL
//! elsewhere is refused, not followed. Tokens are never logged.
//!
//! This module knows nothing of VNets, peerings or routes: `observe` and `apply` build the paths.
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use tracing::{debug, warn, Instrument};

use crate::credential::ARM_SCOPE;
use crate::error::{decode_error_body, ArmError, ErrorKind};
use crate::pacer::{Class, Pacer, Permit};
use crate::retry::{Next, Retries, Unfinished};
use crate::settings::{read_ca_cert, ArmSettings, RetryPolicy};

/// The requests a client made (all clones together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Every GET sent: reads, list pages, operation polls, final GETs, retries of these; and
    /// every POST, for hubspoke POSTs only to read: Resource Graph ([`ArmClient::query`]) and a
    /// network interface's effective routes.
    pub reads: u64,
    /// Every PUT and DELETE sent, retries and re-issued PUTs included.
    pub writes: u64,
    /// Requests sent again: retries after a transient failure, and PUTs re-issued after their
    /// operation was `Canceled`.
    pub retries: u64,
    /// 429 answers that were rate limiting (not `RetryableErrorDueToAnotherOperation`, which is a
    /// lock conflict).
    pub throttled: u64,
}

/// A client of Azure Resource Manager. Cheap to clone; clones share the connection pool, the
/// credential, the pacer and the counts. [`ArmClient::with_own_counts`] makes one that shares
/// everything but the counts, so that passes running at once each count their own requests;
/// [`ArmClient::with_priority`] one whose requests go first when a subscription's budget is short.
#[derive(Clone)]
pub struct ArmClient {
    inner: Arc<Inner>,
    counters: Arc<Counters>,
    priority: u32,
}

struct Inner {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    endpoint: Url,
    api_version: String,
    retry: RetryPolicy,
    operation_timeout: Duration,
    pacer: Arc<Pacer>,
    max_answer_bytes: usize,
}

/// Request counts; a client made by [`ArmClient::with_own_counts`] adds to its parent's too, so
/// that the first client still counts everything.
#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    parent: Option<Arc<Counters>>,
}

impl Counters {
    fn add(&self, counter: fn(&Counters) -> &AtomicU64) {
        let mut current = Some(self);
        while let Some(counters) = current {
            counter(counters).fetch_add(1, Ordering::Relaxed);
            current = counters.parent.as_deref();
        }
    }
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("api_version", &self.inner.api_version)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// A page of a list, its items left as they came.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    value: Option<Vec<&'a RawValue>>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

/// Why an exchange has no usable answer.
enum Unanswered {
    /// None came: refused or dropped connection, timeout.
    Transport(reqwest::Error),
    /// One came, larger than the client reads.
    TooLarge { status: u16 },
}

/// An answer read to the end.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How a long-running operation ended, when it did not fail.
enum Ended {
    Succeeded,
    /// The operation was `Canceled` (superseded by another): the request may be sent again.
    Canceled {
        code: String,
        message: String,
    },
    /// The operation ended `Failed` with this error; [`classify`] says whether the request may be
    /// sent again.
    Failed {
        code: String,
        message: String,
    },
    /// Done without an operation to poll; this is the final resource (PUT only).
    Resource(Value),
}

impl ArmClient {
    /// A client for `settings.endpoint`, trusting `settings.ca_cert` besides the usual roots.
    pub fn new(
        settings: &ArmSettings,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ArmError> {
        let config_error = |message: String| {
            ArmError::new(
                ErrorKind::Transport,
                None,
                "ClientConfiguration",
                message,
                "-",
                &settings.endpoint,
            )
        };
        let endpoint = Url::parse(&settings.endpoint)
            .map_err(|error| config_error(format!("HUBSPOKE_ARM_ENDPOINT: {error}")))?;
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("hubspoke/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_cert {
            let certificates =
                read_ca_cert(path).map_err(|e| config_error(format!("HUBSPOKE_CA_CERT: {e}")))?;
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder
            .build()
            .map_err(|error| config_error(format!("building the HTTP client: {error}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                credential,
                endpoint,
                api_version: settings.api_version.clone(),
                retry: settings.retry,
                operation_timeout: settings.operation_timeout,
                pacer: Pacer::new(settings.pacing),
                max_answer_bytes: settings.max_answer_bytes,
            }),
            counters: Arc::default(),
            priority: 0,
        })
    }

    /// A client sharing everything with this one (counts included) whose requests are sent first
    /// when they wait for a subscription's budget: higher first, 0 being the default.
    pub fn with_priority(&self, priority: u32) -> Self {
        Self {
            priority,
            ..self.clone()
        }
    }

    /// A client sharing this one's connections and credential, whose requests are counted apart
    /// (from zero) by it and its clones, and still added to this client's counts.
    pub fn with_own_counts(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            counters: Arc::new(Counters {
                parent: Some(self.counters.clone()),
                ..Counters::default()
            }),
            priority: self.priority,
        }
    }

    /// The requests made so far by this client and its clones.
    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            reads: self.counters.reads.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            throttled: self.counters.throttled.load(Ordering::Relaxed),
        }
    }

    /// GET `path` ("/subscriptions/..." — a resource id or a list path; api-version appended).
    pub async fn get(&self, path: &str) -> Result<Value, ArmError> {
        let url = self.url_for(path, None, "GET")?;
        let answer = self
            .send(Method::GET, &url, None, &mut self.retries())
            .await?;
        answer.json("GET", &url)
    }

    /// POST `body` to `path` (a path of the endpoint; its own `api-version` in the path, else the
    /// client's) and return the answer: for requests that only read, such as a Resource Graph
    /// query, and are counted as reads. Retried as any request; never a long-running operation.
    pub async fn query(&self, path: &str, body: &Value) -> Result<Value, ArmError> {
        let url = self.url_for(path, None, "POST")?;
        let answer = self
            .send(Method::POST, &url, Some(body), &mut self.retries())
            .await?;
        answer.json("POST", &url)
    }

    /// GET a list path and follow `nextLink` (verbatim absolute URL) to the end; returns every
    /// item of `value`.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, ArmError> {
        let mut items = Vec::new();
        self.list_each(path, |item| {
            items.push(item);
            ControlFlow::Continue(())
        })
        .await?;
        Ok(items)
    }

    /// GET a list path and hand every item of `value`, page after page, to `each`, following
    /// `nextLink` (verbatim absolute URL) to the end or until `each` breaks. A page is read one
    /// item at a time from its bytes, never held whole as a JSON tree (a page of a hundred route
    /// tables of 400 routes is some 14 MB of JSON and several times that as a tree), and the next
    /// page is fetched while this one is handed over.
    pub async fn list_each(
        &self,
        path: &str,
        mut each: impl FnMut(Value) -> ControlFlow<()>,
    ) -> Result<(), ArmError> {
        let mut url = self.url_for(path, None, "GET")?;
        let mut answer = self
            .send(Method::GET, &url, None, &mut self.retries())
            .await?;
        loop {
            let page: Page<'_> =
                serde_json::from_slice(&answer.body).map_err(|e| unreadable_page(&url, e))?;
            let next = self.next_page_url(&page, &url)?;
            let fetch = next.clone().map(|next| self.fetch_page(next));
            match (hand_over(page, &mut each), fetch, next) {
                (Err(error), fetch, _) => {
                    if let Some(fetch) = &fetch {
                        fetch.abort();
                    }
                    return Err(unreadable_page(&url, error));
                }
                (Ok(ControlFlow::Break(())), Some(fetch), _) => {
                    fetch.abort();
                    return Ok(());
                }
                (Ok(ControlFlow::Continue(())), Some(fetch), Some(next)) => {
                    answer = fetch.await.map_err(|_| {
                        ArmError::new(
                            ErrorKind::Transport,
                            None,
                            "TaskFailed",
                            "the read of the next page stopped unexpectedly",
                            "GET",
                            next.as_str(),
                        )
                    })??;
                    url = next;
                }
                _ => return Ok(()),
            }
        }
    }

    /// The URL of the page after `page` (read from `url`), if any; a `nextLink` to the page
    /// itself is an error, not a loop.
    fn next_page_url(&self, page: &Page<'_>, url: &Url) -> Result<Option<Url>, ArmError> {
        let Some(next) = page.next_link.as_deref().filter(|next| !next.is_empty()) else {
            return Ok(None);
        };
        let next = self.url_for(next, None, "GET")?;
        if &next == url {
            return Err(ArmError::new(
                ErrorKind::Transport,
                Some(200),
                "NextLinkLoop",
                "the page's nextLink is the page itself",
                "GET",
                url.as_str(),
            ));
        }
        Ok(Some(next))
    }

    /// Starts reading the page at `url` in a task of its own, while the current one is handed
    /// over.
    fn fetch_page(&self, url: Url) -> tokio::task::JoinHandle<Result<Answer, ArmError>> {
        let client = self.clone();
        tokio::spawn(
            async move {
                let mut retries = client.retries();
                client.send(Method::GET, &url, None, &mut retries).await
            }
            .in_current_span(),
        )
    }

    /// PUT `body` to `path` (plus `extra_query`, e.g. `("syncRemoteAddressSpace", "true")`),
    /// follow the long-running operation to its end, then GET and return the final resource.
    /// 200/201 with `provisioningState: Succeeded` and no operation header is done at once (the
    /// answer is the resource). A `Canceled` operation (superseded) re-issues the PUT, as a retry
    /// within the same budget, and so is one that ended `Failed` with a transient code; another
    /// `Failed` is [`ErrorKind::Failed`] (or `Refused`) with the operation's code.
    pub async fn put(
        &self,
        path: &str,
        extra_query: Option<(&str, &str)>,
        body: &Value,
    ) -> Result<Value, ArmError> {
        if let Some(resource) = self.put_to_end(path, extra_query, body).await? {
            return Ok(resource);
        }
        // The operation's end says nothing of the resource: read it as Azure now has it.
        let resource_url = self.url_for(path, None, "GET")?;
        self.send(Method::GET, &resource_url, None, &mut self.retries())
            .await?
            .json("GET", &resource_url)
    }

    /// [`ArmClient::put`] without reading the resource back at the end: for a caller that only
    /// needs to know the write took effect, one read fewer per write against the subscription's
    /// reads budget.
    pub async fn put_and_wait(
        &self,
        path: &str,
        extra_query: Option<(&str, &str)>,
        body: &Value,
    ) -> Result<(), ArmError> {
        self.put_to_end(path, extra_query, body).await.map(|_| ())
    }

    /// Sends a PUT and follows its operation to the end; the resource when the answer itself was
    /// final.
    async fn put_to_end(
        &self,
        path: &str,
        extra_query: Option<(&str, &str)>,
        body: &Value,
    ) -> Result<Option<Value>, ArmError> {
        let url = self.url_for(path, extra_query, "PUT")?;
        let deadline = Instant::now() + self.inner.operation_timeout;
        let mut retries = self.retries();
        loop {
            let answer = self
                .send(Method::PUT, &url, Some(body), &mut retries)
                .await?;
            match self.follow("PUT", &url, &answer, deadline).await? {
                Ended::Resource(resource) => return Ok(Some(resource)),
                Ended::Succeeded => return Ok(None),
                Ended::Canceled { code, message } => {
                    let ended = Unfinished::Canceled;
                    self.reissue("PUT", &url, &mut retries, ended, code, message)
                        .await?
                }
                Ended::Failed { code, message } => {
                    let ended = Unfinished::Failed;
                    self.reissue("PUT", &url, &mut retries, ended, code, message)
                        .await?
                }
            }
        }
    }

    /// DELETE `path` and follow the long-running operation (`Location`, else
    /// `Azure-AsyncOperation`) to its end. 404 on the DELETE itself means already gone: `Ok`.
    pub async fn delete(&self, path: &str) -> Result<(), ArmError> {
        let url = self.url_for(path, None, "DELETE")?;
        let deadline = Instant::now() + self.inner.operation_timeout;
        let mut retries = self.retries();
        loop {
            let answer = match self.send(Method::DELETE, &url, None, &mut retries).await {
                Ok(answer) => answer,
                Err(error) if error.is_not_found() => return Ok(()),
                Err(error) => return Err(error),
            };
            match self.follow("DELETE", &url, &answer, deadline).await? {
                Ended::Succeeded | Ended::Resource(_) => return Ok(()),
                Ended::Canceled { code, message } => {
                    let ended = Unfinished::Canceled;
                    self.reissue("DELETE", &url, &mut retries, ended, code, message)
                        .await?
                }
                Ended::Failed { code, message } => {
                    let ended = Unfinished::Failed;
                    self.reissue("DELETE", &url, &mut retries, ended, code, message)
                        .await?
                }
            }
        }
    }

    /// POST an action that only reads (a network interface's `effectiveRouteTable`, Network
    /// Watcher's `nextHop`), with `body` if any, and follow its long-running operation through
    /// `Location` to its result, which is returned. Retried like a GET while transient; paced as
    /// a write, as ARM counts a POST.
    pub async fn post_read_action(
        &self,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ArmError> {
        let url = self.url_for(path, None, "POST")?;
        let deadline = Instant::now() + self.inner.operation_timeout;
        let answer = self
            .send(Method::POST, &url, body, &mut self.retries())
            .await?;
        let location = answer.header("location");
        match location {
            Some(location) if answer.status == 202 => {
                let location_url = self.url_for(&location, None, "GET")?;
                self.poll_location(&location_url, answer.retry_after(), deadline)
                    .await?
                    .json("GET", &location_url)
            }
            _ => answer.json("POST", &url),
        }
    }

    /// The URL of `path` (or of an absolute URL of ours) with `api-version` (unless present) and
    /// `extra_query`. Absolute URLs must be on the endpoint's origin: the token goes with them.
    fn url_for(
        &self,
        path: &str,
        extra_query: Option<(&str, &str)>,
        method: &str,
    ) -> Result<Url, ArmError> {
        let endpoint = &self.inner.endpoint;
        let bad = |message: String| {
            ArmError::new(
                ErrorKind::Rejected,
                None,
                "InvalidPath",
                message,
                method,
                path,
            )
        };
        let mut url = if path.starts_with("https://") || path.starts_with("http://") {
            let url = Url::parse(path).map_err(|error| bad(format!("not a URL: {error}")))?;
            if url.origin() != endpoint.origin() {
                return Err(bad(format!(
                    "refusing to send the token to {}: not the ARM endpoint {}",
                    url.origin().ascii_serialization(),
                    endpoint.origin().ascii_serialization()
                )));
            }
            url
        } else if path.starts_with('/') {
            let base = endpoint.as_str().trim_end_matches('/');
            Url::parse(&format!("{base}{path}"))
                .map_err(|error| bad(format!("not a path: {error}")))?
        } else {
            return Err(bad("a path must start with '/'".to_string()));
        };
        let has_api_version = url.query_pairs().any(|(key, _)| key == "api-version");
        {
            let mut query = url.query_pairs_mut();
            if !has_api_version {
                query.append_pair("api-version", &self.inner.api_version);
            }
            if let Some((key, value)) = extra_query {
                query.append_pair(key, value);
            }
        }
        Ok(url)
    }

    /// Follows the operation a PUT or DELETE answer started, to its end.
    async fn follow(
        &self,
        method: &str,
        request_url: &Url,
        answer: &Answer,
        deadline: Instant,
    ) -> Result<Ended, ArmError> {
        let async_operation = answer.header("azure-asyncoperation");
        let location = answer.header("location");
        // Azure-AsyncOperation when given, for a DELETE as for a PUT: its status resource answers
        // 200 whatever became of the operation and carries the operation's error when it failed,
        // while a Location URL answers what the operation itself would have answered, so that a
        // 5xx there cannot be told from a failure to read it (Azure's resource provider contract,
        // "Asynchronous API Reference"). Location when it is the only one given.
        if let Some(status_url) = &async_operation {
            let status_url = self.url_for(status_url, None, "GET")?;
            return self
                .poll_status(&status_url, answer.retry_after(), deadline)
                .await;
        }
        if let Some(location) = &location {
            if answer.status == 202 || answer.status == 201 {
                let location_url = self.url_for(location, None, "GET")?;
                self.poll_location(&location_url, answer.retry_after(), deadline)
                    .await?;
                return Ok(Ended::Succeeded);
            }
        }
        if method == "DELETE" {
            return Ok(Ended::Succeeded);
        }
        // No operation to follow: the resource itself tells.
        let mut resource = answer.json(method, request_url)?;
        let mut retry_after = answer.retry_after();
        let resource_url = {
            let mut url = request_url.clone();
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(key, _)| key == "api-version")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            url
        };
        loop {
            match provisioning_state(&resource).as_deref() {
                None | Some("Succeeded") => return Ok(Ended::Resource(resource)),
                Some("Failed") => {
                    return Err(ArmError::new(
                        ErrorKind::Failed,
                        Some(answer.status),
                        "ProvisioningFailed",
                        "the resource's provisioningState is Failed",
                        method,
                        request_url.as_str(),
                    ))
                }
                Some("Canceled") => {
                    return Ok(Ended::Canceled {
                        code: "Canceled".into(),
                        message: "the resource's provisioningState is Canceled".into(),
                    })
                }
                Some(_) => {}
            }
            self.wait_poll(retry_after, deadline, method, request_url)
                .await?;
            let polled = self
                .send(Method::GET, &resource_url, None, &mut self.retries())
                .await?;
            retry_after = polled.retry_after();
            resource = polled.json("GET", &resource_url)?;
        }
    }

    /// Polls an `Azure-AsyncOperation` status resource to a terminal status.
    async fn poll_status(
        &self,
        status_url: &Url,
        mut retry_after: Option<Duration>,
        deadline: Instant,
    ) -> Result<Ended, ArmError> {
        loop {
            self.wait_poll(retry_after, deadline, "GET", status_url)
                .await?;
            let answer = self
                .send(Method::GET, status_url, None, &mut self.retries())
                .await?;
            retry_after = answer.retry_after();
            let status = answer.json("GET", status_url)?;
            let error_of = |status: &Value| {
                let error = status.get("error");
                let text = |key: &str| {
                    error
                        .and_then(|e| e.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                (text("code"), text("message"))
            };
            match status.get("status").and_then(Value::as_str) {
                Some(s) if s.eq_ignore_ascii_case("Succeeded") => return Ok(Ended::Succeeded),
                Some(s) if s.eq_ignore_ascii_case("Failed") => {
                    let (code, message) = error_of(&status);
                    let code = if code.is_empty() {
                        "OperationFailed".into()
                    } else {
                        code
                    };
                    return Ok(Ended::Failed { code, message });
                }
                Some(s) if s.eq_ignore_ascii_case("Canceled") => {
                    let (code, message) = error_of(&status);
                    return Ok(Ended::Canceled { code, message });
                }
                _ => {}
            }
        }
    }

    /// Polls a `Location` URL until it stops answering 202; that last answer is the operation's
    /// result.
    async fn poll_location(
        &self,
        location: &Url,
        mut retry_after: Option<Duration>,
        deadline: Instant,
    ) -> Result<Answer, ArmError> {
        loop {
            self.wait_poll(retry_after, deadline, "GET", location)
                .await?;
            let answer = self
                .send(Method::GET, location, None, &mut self.retries())
                .await?;
            if answer.status != 202 {
                return Ok(answer);
            }
            retry_after = answer.retry_after();
        }
    }

    /// Waits before a poll: `Retry-After`, or `base_delay` when absent or 0; fails
    /// [`ErrorKind::Exhausted`] if that would pass the operation's deadline.
    async fn wait_poll(
        &self,
        retry_after: Option<Duration>,
        deadline: Instant,
        method: &str,
        url: &Url,
    ) -> Result<(), ArmError> {
        let delay = retry_after
            .filter(|d| !d.is_zero())
            .unwrap_or(self.inner.retry.base_delay);
        if Instant::now() + delay > deadline {
            return Err(ArmError::new(
                ErrorKind::Exhausted,
                None,
                "OperationTimedOut",
                format!(
                    "the operation was still running after {} s",
                    self.inner.operation_timeout.as_secs()
                ),
                method,
                url.as_str(),
            ));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// After the operation of a PUT or DELETE ended without effect: waits to send the request
    /// again when the retry policy allows (the re-issue spends the request's attempts and budget
    /// like any retry), else fails with the operation's code.
    async fn reissue(
        &self,
        method: &str,
        url: &Url,
        retries: &mut Retries,
        ended: Unfinished,
        code: String,
        message: String,
    ) -> Result<(), ArmError> {
        match retries.after_operation(ended, &code) {
            Ok(delay) => {
                warn!(
                    attempt = retries.attempts() + 1,
                    status = 200u16,
                    code = code.as_str(),
                    arm_request_id = "",
                    delay_ms = delay.as_millis() as u64,
                    method,
                    url = url.path(),
                    ended = ended.as_str(),
                    "operation ended without effect; sending the request again"
                );
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Err(kind) => Err(ArmError::new(
                kind,
                Some(200),
                code,
                message,
                method,
                url.as_str(),
            )),
        }
    }

    /// A fresh account of retries under this client's policy, for one request.
    fn retries(&self) -> Retries {
        Retries::new(self.inner.retry)
    }

    /// Sends one request until it succeeds (2xx), fails for good, or its retries run out. Every
    /// send waits for the pacer's leave and hands it the answer; whether and when an unsuccessful
    /// one is sent again is for the request's [`Retries`] to say.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        retries: &mut Retries,
    ) -> Result<Answer, ArmError> {
        let (class, subscription) = (Class::of(&method), subscription_of(url));
        // The error of a throttled answer, reported if the wait for the pacer runs the budget out.
        let mut throttled: Option<ArmError> = None;
        loop {
            if retries.begin_send() {
                self.counters.add(|c| &c.retries);
            }
            let authorization = self.authorization(&method, url).await?;
            let permit = self
                .inner
                .pacer
                .admit(&subscription, class, self.priority)
                .await;
            if let Some(error) = throttled.take() {
                if !retries.after_pacing() {
                    return Err(error);
                }
            }
            let started = Instant::now();
            let answer = match self.exchange(&method, url, body, authorization).await {
                Ok(answer) => answer,
                Err(Unanswered::Transport(error)) => {
                    // No answer: Azure may or may not have counted the request.
                    drop(permit);
                    self.after_no_answer(&method, url, retries, &error, started)
                        .await?;
                    continue;
                }
                Err(Unanswered::TooLarge { status }) => {
                    return Err(ArmError::new(
                        ErrorKind::Rejected,
                        Some(status),
                        "ResponseTooLarge",
                        format!(
                            "the answer was larger than {} bytes and was not read",
                            self.inner.max_answer_bytes
                        ),
                        method.as_str(),
                        url.as_str(),
                    ));
                }
            };
            let request_id = answer.header("x-ms-request-id").unwrap_or_default();
            debug!(
                method = method.as_str(),
                url = url.path(),
                status = answer.status,
                attempt = retries.attempts(),
                arm_request_id = request_id.as_str(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "ARM request"
            );
            if (200..300).contains(&answer.status) {
                permit.answered(&answer.headers, true, false, None);
                return Ok(answer);
            }
            throttled = self
                .after_answer(&method, url, &answer, permit, retries)
                .await?;
        }
    }

    /// After an unsuccessful answer: hands it to the pacer, then fails, or waits its backoff and
    /// answers `None`, or (throttled) answers the error to report if the wait for the pacer runs
    /// the budget out.
    async fn after_answer(
        &self,
        method: &Method,
        url: &Url,
        answer: &Answer,
        permit: Permit,
        retries: &mut Retries,
    ) -> Result<Option<ArmError>, ArmError> {
        let (code, message) = answer.error_code_and_message();
        let error = |kind| {
            ArmError::new(
                kind,
                Some(answer.status),
                code.clone(),
                message.clone(),
                method.as_str(),
                url.as_str(),
            )
        };
        let next = retries.after_answer(answer.status, &code, answer.retry_after());
        permit.answered(
            &answer.headers,
            false,
            next.is_throttling(),
            answer.retry_after(),
        );
        if next.is_throttling() {
            self.note_throttled(method, url, answer, &code, retries.attempts());
        }
        match next {
            Next::Stop(kind) => Err(error(kind)),
            Next::ThrottledPastBudget => Err(error(ErrorKind::Exhausted)),
            Next::SendWhenPaced => Ok(Some(error(ErrorKind::Exhausted))),
            Next::SendAfter(delay) => {
                warn!(
                    attempt = retries.attempts() + 1,
                    status = answer.status,
                    code = code.as_str(),
                    arm_request_id = answer
                        .header("x-ms-request-id")
                        .unwrap_or_default()
                        .as_str(),
                    delay_ms = delay.as_millis() as u64,
                    method = method.as_str(),
                    url = url.path(),
                    "retrying ARM request"
                );
                tokio::time::sleep(delay).await;
                Ok(None)
            }
        }
    }

    /// The `Authorization` header of a request: a token for ARM from the credential.
    async fn authorization(&self, method: &Method, url: &Url) -> Result<HeaderValue, ArmError> {
        let credential_error = |code: &str, message: String| {
            ArmError::new(
                ErrorKind::Credential,
                None,
                code,
                message,
                method.as_str(),
                url.as_str(),
            )
        };
        let token = self
            .inner
            .credential
            .get_token(&[ARM_SCOPE], None)
            .await
            .map_err(|error| credential_error("CredentialUnavailable", error.to_string()))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.token.secret()))
            .map_err(|_| {
                credential_error(
                    "InvalidToken",
                    "the token is not a valid header value".to_string(),
                )
            })?;
        authorization.set_sensitive(true);
        Ok(authorization)
    }

    /// One HTTP exchange, counted as a read (GET) or a write: the request sent and its answer
    /// read to the end.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        authorization: HeaderValue,
    ) -> Result<Answer, Unanswered> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, authorization);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        // hubspoke POSTs only to read (Resource Graph, effective routes).
        if method == Method::GET || method == Method::POST {
            self.counters.add(|c| &c.reads);
        } else {
            self.counters.add(|c| &c.writes);
        }
        let mut response = request.send().await.map_err(Unanswered::Transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // Read as it arrives, and refused past the limit rather than held whole.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Unanswered::Transport)? {
            if body.len() + chunk.len() > self.inner.max_answer_bytes {
                return Err(Unanswered::TooLarge { status });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// After a send that had no answer: waits to send again, or fails `Transport` when the
    /// retries are spent.
    async fn after_no_answer(
        &self,
        method: &Method,
        url: &Url,
        retries: &mut Retries,
        error: &reqwest::Error,
        started: Instant,
    ) -> Result<(), ArmError> {
        let message = error_chain(error);
        debug!(
            method = method.as_str(),
            url = url.path(),
            attempt = retries.attempts(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            error = message.as_str(),
            "ARM request failed without an answer"
        );
        let code = if error.is_timeout() {
            "Timeout"
        } else {
            "ConnectionError"
        };
        let Some(delay) = retries.after_no_answer() else {
            return Err(ArmError::new(
                ErrorKind::Transport,
                None,
                code,
                message,
                method.as_str(),
                url.as_str(),
            ));
        };
        warn!(
            attempt = retries.attempts() + 1,
            status = 0u16,
            code,
            arm_request_id = "",
            delay_ms = delay.as_millis() as u64,
            method = method.as_str(),
            url = url.path(),
            error = message.as_str(),
            "retrying ARM request"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Counts a throttled answer and says so. Pacing, not failure: the pacer holds this
    /// subscription's requests until `Retry-After` has passed and its budget has refilled.
    fn note_throttled(
        &self,
        method: &Method,
        url: &Url,
        answer: &Answer,
        code: &str,
        attempt: u32,
    ) {
        self.counters.add(|c| &c.throttled);
        warn!(
            attempt,
            status = answer.status,
            code,
            arm_request_id = answer
                .header("x-ms-request-id")
                .unwrap_or_default()
                .as_str(),
            retry_after_ms = answer.retry_after().map_or(0, |d| d.as_millis() as u64),
            method = method.as_str(),
            url = url.path(),
            "throttled; sending again when the subscription's budget allows"
        );
    }
}

/// Hands the items of `page` to `each`, one at a time, each read from the page's bytes as it
/// comes; `Break` when `each` stopped.
fn hand_over(
    page: Page<'_>,
    each: &mut impl FnMut(Value) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, serde_json::Error> {
    for raw in page.value.unwrap_or_default() {
        let item = serde_json::from_str(raw.get())?;
        if each(item).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A list page that is not JSON, or holds an item that is not.
fn unreadable_page(url: &Url, error: serde_json::Error) -> ArmError {
    ArmError::new(
        ErrorKind::Transport,
        Some(200),
        "UnreadableBody",
        format!("the list page is not JSON: {error}"),
        "GET",
        url.as_str(),
    )
}

/// The subscription a request is counted in (lower case), empty for tenant-level requests.
fn subscription_of(url: &Url) -> String {
    let mut segments = url.path_segments().into_iter().flatten();
    segments
        .by_ref()
        .find(|segment| segment.eq_ignore_ascii_case("subscriptions"));
    segments.next().unwrap_or("").to_ascii_lowercase()
}

fn provisioning_state(resource: &Value) -> Option<String> {
    resource
        .get("properties")
        .and_then(|p| p.get("provisioningState"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The error and its sources on one line (reqwest's own Display hides the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// `Retry-After` (seconds), or Azure's `retry-after-ms` / `x-ms-retry-after-ms`.
    fn retry_after(&self) -> Option<Duration> {
        for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
            if let Some(ms) = self.header(name).and_then(|v| v.trim().parse::<u64>().ok()) {
                return Some(Duration::from_millis(ms));
            }
        }
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
    }

    /// The error code and message of an unsuccessful answer: ARM's error body, else the status
    /// and the start of the body.
    fn error_code_and_message(&self) -> (String, String) {
        decode_error_body(&self.body).unwrap_or_else(|| {
            (
                format!("Http{}", self.status),
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(500)
                    .collect(),
            )
        })
    }

    /// The body as JSON; an empty body is `null`.
    fn json(&self, method: &str, url: &Url) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|error| {
            ArmError::new(
                ErrorKind::Transport,
                Some(self.status),
                "UnreadableBody",
                format!("the answer is not JSON: {error}"),
                method,
                url.as_str(),
            )
        })
    }
}
