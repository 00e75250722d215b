//! The adapter: the one place that speaks the host's protocol, as `lambda_runtime` does for
//! Lambda. Each function is a plain async fn from an [`Invocation`] of its typed input to a
//! [`Reply`] or a [`Failure`]; the adapter
//! - answers `GET /` at once (the host's readiness probe and health ping);
//! - decodes the envelope and the trigger's input; input that is not valid is refused with a
//!   `rejected` outcome and a success answer (a retry could not fix it);
//! - opens the invocation's span with the host's `X-Azure-Functions-InvocationId`, so every log
//!   line carries it, and returns the lines made under it in `Logs`;
//! - runs the function as a task of its own, so that a panic fails the invocation (500) and
//!   leaves the process serving;
//! - encodes the answer: `Outputs` (the outcome always, as an object; work items; the HTTP
//!   response), `Logs`, `ReturnValue: null`;
//! - on a failure (a retry may fix it) answers 500, so that the trigger retries (the queue's
//!   dequeue count and poison queue, Event Grid's redelivery). The host drops the outputs of a
//!   failed invocation, so its outcome is handed to the [`OutcomeSink`] instead;
//! - when the host drops the request before the answer (its timeout, a closed connection), the
//!   function still runs to its end in its own task, and its outcome, marked `failed` with
//!   `request_dropped` (the host counts the invocation as failed and writes none of its
//!   outputs), goes to the [`OutcomeSink`]; its log lines are taken all the same.
//!
//! [`app`] builds the router: the single composition root, driven by tests without a socket.
use std::future::Future;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::envelope::{
    bindings, EventGridInput, HttpInput, InvocationRequest, InvocationResponse, QueueInput,
    TimerInput, TriggerInput,
};
use crate::functions::{backfill, drift_check, on_network_event, reconcile_hub};
pub use crate::invocation::{Failure, HttpReply, Invocation, Reply};
use crate::logs::INVOCATION_SPAN;
use crate::outcome::{ErrorRecord, Outcome, Trigger};
pub use crate::state::{AppState, State};
use crate::work::WorkItem;

/// The largest invocation body taken. An Event Grid event is at most 1 MB, and arrives indented
/// and encoded twice; nothing the host sends this app comes near 4 MiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The header carrying the host's invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// The function names, as the folders of `function-definitions/` spell them.
pub const FUNCTIONS: [&str; 4] = ["OnNetworkEvent", "ReconcileHub", "Backfill", "DriftCheck"];

/// The router: `GET /` and one `POST /<FunctionName>` per function.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(ready))
        .route(
            "/OnNetworkEvent",
            function::<EventGridInput, _, _>("OnNetworkEvent", on_network_event::run),
        )
        .route(
            "/ReconcileHub",
            function::<QueueInput, _, _>("ReconcileHub", reconcile_hub::run),
        )
        .route(
            "/Backfill",
            function::<HttpInput, _, _>("Backfill", backfill::run),
        )
        .route(
            "/DriftCheck",
            function::<TimerInput, _, _>("DriftCheck", drift_check::run),
        )
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The route of one function: the adapter around `run`, whose input is `I`.
pub fn function<I, F, Fut>(name: &'static str, run: F) -> MethodRouter<AppState>
where
    I: TriggerInput,
    F: FnOnce(Invocation<I>, AppState) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Failure>> + Send + 'static,
{
    post(
        move |state: AxumState<AppState>, headers: HeaderMap, body: Bytes| {
            invoke::<I, F, Fut>(state.0, headers, body, name, run)
        },
    )
}

async fn ready() -> &'static str {
    "hubspoke handler ready"
}

async fn unknown(uri: axum::http::Uri) -> Response {
    tracing::warn!(path = %uri.path(), "request for no function");
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!(
            "no function at {}: this handler serves POST /{}",
            uri.path(),
            FUNCTIONS.join(", POST /")
        )})),
    )
        .into_response()
}

/// The trigger kind of an input, for the outcome.
fn trigger_kind(binding: &str) -> &'static str {
    match binding {
        bindings::EVENT => "event_grid",
        bindings::WORK_ITEM => "queue",
        bindings::REQUEST => "http",
        _ => "timer",
    }
}

async fn invoke<I, F, Fut>(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    function: &'static str,
    run: F,
) -> Response
where
    I: TriggerInput,
    F: FnOnce(Invocation<I>, AppState) -> Fut,
    Fut: Future<Output = Result<Reply, Failure>> + Send + 'static,
{
    let started = Instant::now();
    let invocation_id = headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 100)
        .map(str::to_string)
        .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4()));
    let span = tracing::info_span!(INVOCATION_SPAN, invocation_id = %invocation_id, function);
    state.logs.begin(&invocation_id);
    let mut outcome = Outcome::begin(
        function,
        &invocation_id,
        Trigger {
            kind: trigger_kind(I::BINDING),
            ..Trigger::default()
        },
        state.settings.reconcile.dry_run,
    );
    outcome.instance = Some(state.settings.instance_id.clone());
    let is_http = I::BINDING == bindings::REQUEST;

    let request = match InvocationRequest::parse(&body) {
        Ok(request) => request,
        Err(error) => {
            // Not an invocation the host would send: say so, and still leave an outcome.
            span.in_scope(
                || tracing::warn!(error = %error, "the invocation body is not an envelope"),
            );
            let mut outcome = outcome;
            outcome.reject("invalid_envelope", error.to_string());
            outcome.finish(started);
            state.sink.write(&outcome.fit()).await;
            state.logs.take(&invocation_id);
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid invocation body: {error}")})),
            )
                .into_response();
        }
    };
    let input = match I::decode(&request) {
        Ok(input) => input,
        Err(error) => {
            span.in_scope(|| tracing::warn!(error = %error, "the trigger's input is not valid"));
            let mut outcome = outcome;
            outcome.reject("invalid_input", error.to_string());
            let http = is_http.then(|| HttpReply {
                status: 400,
                body: json!({"error": error.to_string()}),
            });
            return answer(
                &state,
                &invocation_id,
                started,
                Reply {
                    outcome,
                    work: Vec::new(),
                    http,
                },
            )
            .0;
        }
    };

    let invocation = Invocation {
        id: invocation_id.clone(),
        input,
        outcome: outcome.clone(),
    };
    span.in_scope(|| tracing::info!("invocation started"));
    // The function and its answer run in a task of their own: a request the host drops (its
    // timeout, a closed connection) neither cuts the function short nor loses its outcome.
    let (answered, answer_receiver) = tokio::sync::oneshot::channel::<Response>();
    let finish_state = state.clone();
    let finish_span = span.clone();
    let function = run(invocation, state.clone());
    tokio::spawn(async move {
        let state = finish_state;
        let task = tokio::spawn(function.instrument(finish_span.clone()));
        let (response, delivered_outcome) = match task.await {
            Ok(Ok(reply)) => {
                let (response, outcome) = answer(&state, &invocation_id, started, reply);
                (response, Some(outcome))
            }
            Ok(Err(failure)) => {
                let mut outcome = failure.outcome;
                outcome.finish(started);
                finish_span.in_scope(|| {
                    tracing::warn!(error = %failure.message, "invocation failed; the trigger will retry")
                });
                state.sink.write(&outcome.fit()).await;
                state.logs.take(&invocation_id);
                let response = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": failure.message, "outcome": outcome.fit()})),
                )
                    .into_response();
                (response, None)
            }
            Err(error) => {
                let message = if error.is_panic() {
                    let payload = error.into_panic();
                    let text = payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    format!("the function panicked: {text}")
                } else {
                    "the function was cancelled".to_string()
                };
                finish_span.in_scope(|| tracing::error!(error = %message, "invocation failed"));
                let mut outcome = outcome;
                outcome.fail(ErrorRecord::new("internal_error", message.clone()));
                outcome.finish(started);
                state.sink.write(&outcome.fit()).await;
                state.logs.take(&invocation_id);
                let response = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": message})),
                )
                    .into_response();
                (response, None)
            }
        };
        if answered.send(response).is_err() {
            // The host went away before the answer: it counts the invocation as failed and
            // writes none of its outputs, so the outcome goes where failed ones go. (Failed
            // invocations' outcomes were written already.)
            if let Some(mut outcome) = delivered_outcome {
                outcome.fail(ErrorRecord::new(
                    "request_dropped",
                    "the host dropped the request before the answer (its timeout, or a closed \
                     connection): it counts the invocation as failed and writes none of its \
                     outputs",
                ));
                finish_span.in_scope(|| {
                    tracing::warn!(
                        "the host dropped the request; the outcome is written to the queue"
                    )
                });
                state.sink.write(&outcome.fit()).await;
            }
        }
    });
    match answer_receiver.await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "the invocation's task ended without an answer"})),
        )
            .into_response(),
    }
}

/// The success answer: outputs, logs, `ReturnValue: null`; and the outcome it carries.
fn answer(
    state: &State,
    invocation_id: &str,
    started: Instant,
    reply: Reply,
) -> (Response, Outcome) {
    let Reply {
        mut outcome,
        work,
        http,
    } = reply;
    outcome.settle_status();
    // Items queued through the `work` output, after any the function queued itself.
    outcome
        .work_items
        .extend(work.iter().map(|item| item.item_id.clone()));
    outcome.finish(started);
    tracing::info!(
        invocation_id,
        function = outcome.function.as_str(),
        status = outcome.status.as_str(),
        writes = outcome.requests.writes,
        work_items = work.len(),
        "invocation ended"
    );
    let mut outputs = Map::new();
    outputs.insert(bindings::OUTCOME.into(), outcome.fit());
    if !work.is_empty() {
        outputs.insert(
            bindings::WORK.into(),
            Value::Array(work.iter().map(WorkItem::to_value).collect()),
        );
    }
    if let Some(http) = http {
        outputs.insert(
            bindings::RESPONSE.into(),
            json!({
                "statusCode": http.status,
                "headers": {"Content-Type": "application/json; charset=utf-8"},
                "body": http.body,
            }),
        );
    }
    let mut logs = state.logs.take(invocation_id);
    logs.push(format!(
        "{} {}: {}",
        outcome.function,
        outcome.status.as_str(),
        outcome
            .reason
            .clone()
            .unwrap_or_else(|| format!("{} hub(s)", outcome.hubs.len()))
    ));
    (
        Json(InvocationResponse::new(outputs, logs)).into_response(),
        outcome,
    )
}
