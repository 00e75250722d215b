//! The simulated estate and the Network RP's rules: virtual networks with their subnets and
//! peerings, route tables with their routes, virtual network gateways, network interfaces
//! (minimal: enough to tie an effective route table to a subnet), and the long-running
//! operations that change them. Everything is kept as ARM JSON, as Azure returns it.
//!
//! This module knows nothing of HTTP: the ARM front end (`arm.rs`) parses requests into
//! [`ResPath`]s and bodies, calls these methods under one lock, and turns [`Reply`] /
//! [`ArmError`] into responses. Each rule cites its public source where it is implemented.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::config::{LatencySpec, LockConflict, Strictness};
use crate::json::{name_of, prop_arr, prop_arr_mut, prop_ref_id};

mod body;
mod delete;
mod error;
mod gateways;
mod keys;
mod nics;
mod path;
mod peering_put;
mod peerings;
mod prefixes;
mod route_tables;
mod snapshot;
mod tags;
mod vnets;

use body::{find_child, find_child_mut, restamp, set_state};
pub use error::ArmError;
use keys::lower;
pub(crate) use path::{ChildKind, Kind, ResPath};

/// A successful answer from the estate.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    /// Operations to complete later: (operation id, due time).
    pub scheduled: Vec<(String, Instant)>,
    /// For a write that started a long-running operation: the operations in progress in its
    /// subscription once it started (itself included), for the request log.
    pub operations_in_flight: Option<u32>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body: Some(body),
            headers: Vec::new(),
            scheduled: Vec::new(),
            operations_in_flight: None,
        }
    }

    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            headers: Vec::new(),
            scheduled: Vec::new(),
            operations_in_flight: None,
        }
    }
}

/// The caller's view of one request, as the estate needs it.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub base_url: String,
    pub api_version: String,
    pub request_id: String,
    pub correlation_id: String,
    pub client_request_id: String,
    pub method: String,
    pub url: String,
    pub client_ip: String,
    pub claims: Map<String, Value>,
    pub if_match: Option<String>,
    pub sync_remote_address_space: Option<String>,
    pub lro_fault: Option<LroFault>,
    pub now: Instant,
}

/// An event to emit when an operation completes.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub delete: bool,
    pub subject: String,
    pub operation_name: String,
    pub resource_provider: &'static str,
    pub subscription_id: String,
    pub claims: Map<String, Value>,
    pub correlation_id: String,
    pub http_request: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum OpStatus {
    InProgress,
    Succeeded,
    Failed(ArmError),
    Canceled(String),
}

/// An injected end for a long-running operation (fault actions `lro-fail[:CODE]`, `lro-cancel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LroFault {
    /// `Failed` with this error code.
    Fail(String),
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OpKind {
    Put,
    Delete,
}

#[derive(Debug, Clone)]
struct Op {
    id: String,
    name: &'static str,
    lock_key: String,
    target_key: String,
    target_path: ResPath,
    kind: OpKind,
    status: OpStatus,
    event: PendingEvent,
    status_url: String,
    seq: u64,
    forced: Option<LroFault>,
    /// The lower-case subscription, for the count of operations in flight.
    subscription: String,
}

#[derive(Debug, Clone)]
struct Res {
    body: Value,
}

/// The whole simulated estate.
#[derive(Debug, Default)]
pub(crate) struct World {
    vnets: BTreeMap<String, Res>,
    tables: BTreeMap<String, Res>,
    gateways: BTreeMap<String, Res>,
    nics: BTreeMap<String, Res>,
    /// Results of `effectiveRouteTable` operations: id -> (due, routes), polled through the
    /// NIC's `operationResults`.
    route_results: HashMap<String, (Instant, Value)>,
    ops: HashMap<String, Op>,
    /// Operations by due time, so that every request sees those whose time has come as done,
    /// whenever the scheduler's timer fires.
    due: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// Operations in progress per (lower-case) subscription.
    in_flight: HashMap<String, u32>,
    locks: HashMap<String, String>,
    pub strict: Strictness,
    pub latency: LatencySpec,
    /// Events of completed operations, drained by the caller.
    pub outbox: Vec<PendingEvent>,
    conflict_toggle: bool,
    op_seq: u64,
}

impl World {
    /// An empty estate with these rules and latencies.
    pub(crate) fn new(strict: Strictness, latency: LatencySpec) -> Self {
        Self {
            strict,
            latency,
            ..Self::default()
        }
    }

    // ------------------------------------------------------------------ reads

    fn map(&self, kind: Kind) -> &BTreeMap<String, Res> {
        match kind {
            Kind::Vnet => &self.vnets,
            Kind::RouteTable => &self.tables,
            Kind::Gateway => &self.gateways,
            Kind::Nic => &self.nics,
        }
    }

    fn map_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, Res> {
        match kind {
            Kind::Vnet => &mut self.vnets,
            Kind::RouteTable => &mut self.tables,
            Kind::Gateway => &mut self.gateways,
            Kind::Nic => &mut self.nics,
        }
    }

    fn not_found_parent(path: &ResPath) -> ArmError {
        ArmError::new(
            404,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.Network/{}/{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                path.kind.segment(),
                path.name,
                path.rg
            ),
        )
    }

    fn not_found_child(path: &ResPath) -> ArmError {
        ArmError::new(
            404,
            "NotFound",
            format!("Resource {} not found.", path.id()),
        )
    }

    /// GET of one resource.
    pub(crate) fn get(&self, path: &ResPath) -> Result<Value, ArmError> {
        let parent = self
            .map(path.kind)
            .get(&path.parent_key())
            .ok_or_else(|| Self::not_found_parent(path))?;
        match &path.child {
            None => Ok(parent.body.clone()),
            Some((kind, name)) => find_child(&parent.body, *kind, name)
                .cloned()
                .ok_or_else(|| Self::not_found_child(path)),
        }
    }

    /// The etag of a resource (for `If-Match` and the `ETag` header).
    fn etag_of(&self, path: &ResPath) -> Option<String> {
        self.get(path)
            .ok()
            .and_then(|v| v.get("etag").and_then(Value::as_str).map(str::to_string))
    }

    /// Lists top-level resources of a kind in a subscription, optionally one resource group.
    pub(crate) fn list(&self, kind: Kind, sub: &str, rg: Option<&str>) -> Vec<&Value> {
        let prefix = match rg {
            Some(rg) => lower(&format!("/subscriptions/{sub}/resourceGroups/{rg}/")),
            None => lower(&format!("/subscriptions/{sub}/")),
        };
        self.map(kind)
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(_, res)| &res.body)
            .collect()
    }

    /// Lists the children of a resource.
    pub(crate) fn list_children(
        &self,
        path: &ResPath,
        kind: ChildKind,
    ) -> Result<Vec<&Value>, ArmError> {
        let parent = self
            .map(path.kind)
            .get(&path.parent_key())
            .ok_or_else(|| Self::not_found_parent(path))?;
        Ok(prop_arr(&parent.body, kind.parent_array()).iter().collect())
    }

    /// Whether a resource exists (for the ARM front end).
    pub(crate) fn exists(&self, path: &ResPath) -> bool {
        self.get(path).is_ok()
    }

    // ------------------------------------------------------------------ locks and operations

    fn lock_error(&mut self, op: &Op, ctx: &Ctx) -> ArmError {
        let retryable = match self.strict.lock_conflict {
            LockConflict::Conflict => false,
            LockConflict::Retryable => true,
            LockConflict::Alternate => {
                self.conflict_toggle = !self.conflict_toggle;
                !self.conflict_toggle
            }
        };
        if retryable {
            let mut error = ArmError::new(
                429,
                "RetryableErrorDueToAnotherOperation",
                format!(
                    "Operation on resource {} is retryable: another operation {} ({}) on this or a dependent resource is in progress. Retry after some time.",
                    ctx.url, op.name, op.id
                ),
            );
            error.retry_after = Some(self.latency.retry_after_secs.max(1));
            error
        } else {
            ArmError::new(
                409,
                "AnotherOperationInProgress",
                format!(
                    "Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: {}",
                    op.status_url
                ),
            )
        }
    }

    /// Checks the lock of `lock_key` for a new operation on `target_key`. A PUT on the very
    /// resource whose PUT is in flight supersedes it (returned); anything else conflicts.
    fn check_lock(
        &mut self,
        ctx: &Ctx,
        lock_key: &str,
        target_key: &str,
        kind: OpKind,
    ) -> Result<Option<String>, ArmError> {
        let Some(op_id) = self.locks.get(lock_key).cloned() else {
            return Ok(None);
        };
        let Some(op) = self.ops.get(&op_id).cloned() else {
            return Ok(None);
        };
        if op.status != OpStatus::InProgress {
            return Ok(None);
        }
        if op.target_key == target_key && op.kind == OpKind::Put && kind == OpKind::Put {
            return Ok(Some(op_id));
        }
        Err(self.lock_error(&op, ctx))
    }

    /// 400 `ReferencedResourceNotProvisioned` when `key` (a VNet or route table) is locked.
    fn check_referenced(
        &self,
        key: &str,
        referenced_id: &str,
        by_id: &str,
    ) -> Result<(), ArmError> {
        if !self.strict.check_referenced_provisioning {
            return Ok(());
        }
        if let Some(op) = self.locks.get(key).and_then(|id| self.ops.get(id)) {
            if op.status == OpStatus::InProgress {
                return Err(ArmError::bad_request(
                    "ReferencedResourceNotProvisioned",
                    format!(
                        "Cannot proceed with operation because resource {referenced_id} used by resource {by_id} is not in Succeeded state. Resource is in Updating state and the last operation that updated/is updating the resource is {}.",
                        op.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_if_match(&self, ctx: &Ctx, path: &ResPath) -> Result<(), ArmError> {
        if !self.strict.honour_if_match {
            return Ok(());
        }
        let Some(wanted) = ctx.if_match.as_deref() else {
            return Ok(());
        };
        if wanted == "*" {
            return if self.exists(path) {
                Ok(())
            } else {
                Err(precondition_failed(path))
            };
        }
        match self.etag_of(path) {
            Some(current) if strip_weak(&current) == strip_weak(wanted) => Ok(()),
            _ => Err(precondition_failed(path)),
        }
    }

    fn check_if_match_child(&self, ctx: &Ctx, path: &ResPath) -> Result<(), ArmError> {
        if ctx.if_match.is_none() {
            return Ok(());
        }
        self.check_if_match(ctx, path)
    }

    fn location_of(&self, kind: Kind, key: &str) -> String {
        self.map(kind)
            .get(key)
            .and_then(|r| r.body.get("location").and_then(Value::as_str))
            .unwrap_or("westus")
            .to_ascii_lowercase()
            .replace(' ', "")
    }

    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        kind: OpKind,
        name: &'static str,
        superseded: Option<String>,
        created: bool,
        duration: Duration,
    ) -> (String, Vec<(String, String)>, (String, Instant)) {
        let op_id = ctx.request_id.clone();
        let location = self.location_of(path.kind, &path.parent_key());
        let status_url = format!(
            "{}/subscriptions/{}/providers/Microsoft.Network/locations/{}/operations/{}?api-version={}",
            ctx.base_url, path.sub, location, op_id, ctx.api_version
        );
        let result_url = format!(
            "{}/subscriptions/{}/providers/Microsoft.Network/locations/{}/operationResults/{}?api-version={}",
            ctx.base_url, path.sub, location, op_id, ctx.api_version
        );
        if let Some(old) = superseded {
            if let Some(old_op) = self.ops.get_mut(&old) {
                if old_op.status == OpStatus::InProgress {
                    if let Some(count) = self.in_flight.get_mut(&old_op.subscription) {
                        *count = count.saturating_sub(1);
                    }
                }
                old_op.status = OpStatus::Canceled(format!(
                    "Operation {} ({}) was canceled and superseded by operation {} ({}).",
                    old_op.name, old_op.id, name, op_id
                ));
            }
        }
        let segment_path = path.type_name();
        let event = PendingEvent {
            delete: kind == OpKind::Delete,
            subject: path.id(),
            resource_provider: "Microsoft.Network",
            operation_name: format!(
                "{}/{}",
                segment_path,
                if kind == OpKind::Delete {
                    "delete"
                } else {
                    "write"
                }
            ),
            subscription_id: path.sub.clone(),
            claims: ctx.claims.clone(),
            correlation_id: ctx.correlation_id.clone(),
            http_request: (!created).then(|| {
                json!({
                    "clientRequestId": ctx.client_request_id,
                    "clientIpAddress": ctx.client_ip,
                    "method": ctx.method,
                    "url": ctx.url,
                })
            }),
        };
        let op = Op {
            id: op_id.clone(),
            name,
            lock_key: path.parent_key(),
            target_key: lower(&path.id()),
            target_path: path.clone(),
            kind,
            status: OpStatus::InProgress,
            event,
            status_url: status_url.clone(),
            seq: self.op_seq,
            forced: ctx.lro_fault.clone(),
            subscription: lower(&path.sub),
        };
        *self.in_flight.entry(lower(&path.sub)).or_default() += 1;
        self.due
            .push(Reverse((ctx.now + duration, self.op_seq, op_id.clone())));
        self.op_seq += 1;
        // A long-running simulator forgets finished operations beyond the last 20,000.
        if self.ops.len() > 40_000 {
            let keep_from = self.op_seq.saturating_sub(20_000);
            self.ops
                .retain(|_, o| o.status == OpStatus::InProgress || o.seq >= keep_from);
        }
        self.locks.insert(path.parent_key(), op_id.clone());
        self.ops.insert(op_id.clone(), op);
        let mut headers = vec![
            ("Azure-AsyncOperation".to_string(), status_url),
            ("Azure-AsyncNotification".to_string(), "Enabled".to_string()),
            (
                "Retry-After".to_string(),
                self.latency.retry_after_secs.to_string(),
            ),
        ];
        if kind == OpKind::Delete {
            headers.push(("Location".to_string(), result_url));
        }
        (op_id.clone(), headers, (op_id, ctx.now + duration))
    }

    /// Completes an operation when its time has come (called by the scheduler).
    pub(crate) fn complete(&mut self, op_id: &str) {
        let Some(op) = self.ops.get(op_id).cloned() else {
            return;
        };
        if op.status != OpStatus::InProgress {
            return;
        }
        if let Some(count) = self.in_flight.get_mut(&op.subscription) {
            *count = count.saturating_sub(1);
        }
        let status = match &op.forced {
            None => OpStatus::Succeeded,
            Some(LroFault::Fail(code)) => OpStatus::Failed(ArmError::new(
                // The status a Location poll answers for it: a server error, or the request's.
                if code == "InternalServerError" { 500 } else { 400 },
                code,
                format!("Operation {} ({}) failed (injected fault).", op.name, op.id),
            )),
            Some(LroFault::Cancel) => OpStatus::Canceled(format!(
                "Operation {} ({}) was canceled and superseded by another operation (injected fault).",
                op.name, op.id
            )),
        };
        if let Some(o) = self.ops.get_mut(op_id) {
            o.status = status;
        }
        if self.locks.get(&op.lock_key).map(String::as_str) == Some(op_id) {
            self.locks.remove(&op.lock_key);
        }
        let path = op.target_path.clone();
        if op.forced.is_some() {
            // The resource stays, `Failed`; no event (the write did not succeed).
            let kind = path.kind;
            if let Some(res) = self.map_mut(kind).get_mut(&path.parent_key()) {
                set_state(&mut res.body, "Failed");
                if let Some((child_kind, name)) = &path.child {
                    if let Some(child) = find_child_mut(&mut res.body, *child_kind, name) {
                        set_state(child, "Failed");
                    }
                }
                restamp(&mut res.body, kind);
            }
            return;
        }
        match op.kind {
            OpKind::Put => self.finish_put(&path),
            OpKind::Delete => self.finish_delete(&path),
        }
        self.outbox.push(op.event);
    }

    /// Completes every operation whose due time is `now` or earlier. Called on every ARM request
    /// before it is served, so that what a client sees never depends on when the scheduler's
    /// timer happened to fire on a loaded machine: an operation is done from its due time on.
    pub(crate) fn complete_due(&mut self, now: Instant) {
        while let Some(Reverse((due, _, _))) = self.due.peek() {
            if *due > now {
                break;
            }
            if let Some(Reverse((_, _, op_id))) = self.due.pop() {
                self.complete(&op_id);
            }
        }
    }

    /// Long-running operations in progress in `subscription` (case-insensitive).
    pub(crate) fn operations_in_flight(&self, subscription: &str) -> u32 {
        self.in_flight
            .get(&lower(subscription))
            .copied()
            .unwrap_or(0)
    }

    fn finish_put(&mut self, path: &ResPath) {
        let Some(res) = self.map_mut(path.kind).get_mut(&path.parent_key()) else {
            return;
        };
        set_state(&mut res.body, "Succeeded");
        match &path.child {
            Some((kind, name)) => {
                if let Some(child) = find_child_mut(&mut res.body, *kind, name) {
                    set_state(child, "Succeeded");
                }
            }
            None => {
                if path.kind == Kind::Vnet {
                    for subnet in prop_arr_mut(&mut res.body, "subnets").iter_mut() {
                        set_state(subnet, "Succeeded");
                    }
                }
                if path.kind == Kind::Nic {
                    for config in prop_arr_mut(&mut res.body, "ipConfigurations").iter_mut() {
                        set_state(config, "Succeeded");
                    }
                }
            }
        }
        restamp(&mut res.body, path.kind);
    }

    fn finish_delete(&mut self, path: &ResPath) {
        match (&path.child, path.kind) {
            (None, Kind::Vnet) => self.remove_vnet(&path.parent_key()),
            (None, Kind::RouteTable) => {
                self.tables.remove(&path.parent_key());
            }
            (None, Kind::Gateway) => self.remove_gateway(&path.parent_key()),
            (None, Kind::Nic) => self.remove_nic(&path.parent_key()),
            (Some((ChildKind::Peering, name)), _) => self.remove_peering(&path.parent_key(), name),
            (Some((kind, name)), _) => {
                let key = path.parent_key();
                let mut table_keys = BTreeSet::new();
                if let Some(res) = self.map_mut(path.kind).get_mut(&key) {
                    let items = prop_arr_mut(&mut res.body, kind.parent_array());
                    if let Some(at) = items
                        .iter()
                        .position(|c| name_of(c).eq_ignore_ascii_case(name))
                    {
                        let removed = items.remove(at);
                        if let Some(table) = prop_ref_id(&removed, "routeTable") {
                            table_keys.insert(lower(table));
                        }
                    }
                    set_state(&mut res.body, "Succeeded");
                    restamp(&mut res.body, path.kind);
                }
                self.rebuild_table_subnets(&table_keys);
            }
        }
    }

    /// `GET …/operations/{id}`: the `AzureAsyncOperationResult`.
    pub(crate) fn op_status(&self, op_id: &str) -> Option<Value> {
        let op = self.ops.get(op_id)?;
        Some(match &op.status {
            OpStatus::InProgress => json!({"status": "InProgress"}),
            OpStatus::Succeeded => json!({"status": "Succeeded"}),
            OpStatus::Failed(error) => json!({"status": "Failed", "error": error.body()["error"]}),
            OpStatus::Canceled(detail) => json!({
                "status": "Canceled",
                "error": {
                    "code": "Canceled",
                    "message": "Operation was canceled.",
                    "details": [{"code": "CanceledAndSupersededDueToAnotherOperation", "message": detail}]
                }
            }),
        })
    }

    /// `GET …/operationResults/{id}`: 202 while running, then 204 (delete) or 200 with the
    /// resource (put); a canceled operation answers its error.
    pub(crate) fn op_result(&self, op_id: &str) -> Option<Result<Reply, ArmError>> {
        let op = self.ops.get(op_id)?;
        Some(match &op.status {
            OpStatus::InProgress => {
                let mut reply = Reply::empty(202);
                reply.headers.push((
                    "Retry-After".to_string(),
                    self.latency.retry_after_secs.to_string(),
                ));
                Ok(reply)
            }
            OpStatus::Succeeded => match op.kind {
                OpKind::Delete => Ok(Reply::empty(204)),
                OpKind::Put => self.get(&op.target_path).map(Reply::ok),
            },
            OpStatus::Failed(error) => Err(error.clone()),
            OpStatus::Canceled(detail) => {
                let mut error = ArmError::new(409, "Canceled", "Operation was canceled.");
                error.details.push(json!({"code": "CanceledAndSupersededDueToAnotherOperation", "message": detail}));
                Err(error)
            }
        })
    }

    /// Starts a PUT's long-running operation and answers it as ARM does: 201 for a creation, 200
    /// otherwise, with the resource as it now reads.
    fn accept_put(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        name: &'static str,
        superseded: Option<String>,
        created: bool,
        duration: Duration,
    ) -> Result<Reply, ArmError> {
        let (_, headers, scheduled) =
            self.begin(ctx, path, OpKind::Put, name, superseded, created, duration);
        Ok(Reply {
            status: if created { 201 } else { 200 },
            body: Some(self.get(path)?),
            headers,
            scheduled: vec![scheduled],
            operations_in_flight: None,
        })
    }
}

fn precondition_failed(path: &ResPath) -> ArmError {
    ArmError::new(
        412,
        "PreconditionFailed",
        format!(
            "The condition specified using HTTP conditional header(s) is not met for resource {}.",
            path.id()
        ),
    )
}

fn strip_weak(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/")
}
