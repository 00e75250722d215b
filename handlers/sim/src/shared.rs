//! What every request handler of the simulator shares: the estate, the throttle, the fault rules,
//! the request log and the event bus, with the settings of the endpoints. Built once by
//! [`crate::start`]; the server, the ARM front end and the control API each take it by reference.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::events::EventBus;
use crate::faults::Faults;
use crate::graph::GraphView;
use crate::management_groups::Directory;
use crate::throttle::Throttle;
use crate::world::World;

/// One request as the simulator saw it (`GET /_sim/requests`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Status answered; 0 when the connection was dropped on purpose.
    pub status: u16,
    /// ARM error code of the answer, if any.
    pub error_code: Option<String>,
    /// When it arrived (RFC 3339).
    pub time: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// The injected fault, if any (`429`, `drop`, `slow`, ...).
    pub fault: Option<String>,
    /// The value of the `x-ms-ratelimit-remaining-subscription-reads|writes|deletes` header the
    /// answer carried (none for the control API and dropped connections).
    pub ratelimit_remaining: Option<u64>,
    /// For a write that started a long-running operation: the operations then in progress in
    /// its subscription, itself included ("writes in flight").
    pub operations_in_flight: Option<u32>,
}

/// Everything the request handlers share.
pub(crate) struct Shared {
    pub world: Mutex<World>,
    /// Management groups and declared subscriptions. Locked after `world` when both are held.
    pub directory: Mutex<Directory>,
    /// What Resource Graph answers from. Locked after `world` and `directory`.
    pub graph: Mutex<GraphView>,
    pub throttle: Mutex<Throttle>,
    pub faults: Mutex<Faults>,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub events: Arc<EventBus>,
    pub scheme: &'static str,
    pub fallback_host: String,
    pub identity_header: String,
    pub principal_id: String,
    pub client_id: String,
    pub page_size: usize,
    pub response_delay: Duration,
    /// `Retry-After` seconds of injected 429 and 503 answers (the `retry-after` latency knob).
    pub fault_retry_after: u64,
}

/// Logs a request; `started` gives its duration.
pub(crate) fn record(shared: &Shared, mut entry: RequestRecord, started: Instant) {
    entry.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(entry);
        // Bounded: a long-running simulator keeps the last 100,000 requests.
        if requests.len() > 100_000 {
            requests.drain(..10_000);
        }
    }
}
