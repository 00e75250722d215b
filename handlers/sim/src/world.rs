//! The simulated estate and the Network RP's rules: virtual networks with their subnets and
//! peerings, route tables with their routes, virtual network gateways, network interfaces
//! (minimal: enough to tie an effective route table to a subnet), and the long-running
//! operations that change them. Everything is kept as ARM JSON, as Azure returns it.
//!
//! This module knows nothing of HTTP: the ARM front end (`arm.rs`) parses requests into
//! [`ResPath`]s and bodies, calls these methods under one lock, and turns [`Reply`] /
//! [`ArmError`] into responses. The rules and their sources are in `notes/arm-network.md`.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::str::FromStr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use crate::config::{LatencySpec, LockConflict, Strictness};
use crate::json::{
    address_prefixes, name_of, obj, prop_arr, prop_arr_mut, prop_bool, prop_ref_id, prop_str, props,
};

/// An ARM error: status, `error.code`, `error.message`, optional `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `Retry-After` seconds, for 429s.
    pub retry_after: Option<u64>,
    /// `error.details`.
    pub details: Vec<Value>,
}

impl ArmError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
            details: Vec::new(),
        }
    }

    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The CloudError body: `{"error":{"code","message","details":[]}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}

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

/// The top-level resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Vnet,
    RouteTable,
    Gateway,
    Nic,
}

impl Kind {
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Kind::Vnet => "virtualNetworks",
            Kind::RouteTable => "routeTables",
            Kind::Gateway => "virtualNetworkGateways",
            Kind::Nic => "networkInterfaces",
        }
    }
}

/// The child resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildKind {
    Subnet,
    Peering,
    Route,
}

impl ChildKind {
    pub(crate) fn segment(self) -> &'static str {
        match self {
            ChildKind::Subnet => "subnets",
            ChildKind::Peering => "virtualNetworkPeerings",
            ChildKind::Route => "routes",
        }
    }

    fn parent_array(self) -> &'static str {
        match self {
            ChildKind::Subnet => "subnets",
            ChildKind::Peering => "virtualNetworkPeerings",
            ChildKind::Route => "routes",
        }
    }
}

/// A resource address as the caller wrote it (casing kept for ids).
#[derive(Debug, Clone)]
pub(crate) struct ResPath {
    pub sub: String,
    pub rg: String,
    pub kind: Kind,
    pub name: String,
    pub child: Option<(ChildKind, String)>,
}

impl ResPath {
    pub(crate) fn parent_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/{}/{}",
            self.sub,
            self.rg,
            self.kind.segment(),
            self.name
        )
    }

    pub(crate) fn id(&self) -> String {
        match &self.child {
            Some((kind, name)) => format!("{}/{}/{}", self.parent_id(), kind.segment(), name),
            None => self.parent_id(),
        }
    }

    fn parent_key(&self) -> String {
        self.parent_id().to_ascii_lowercase()
    }

    fn type_name(&self) -> String {
        match &self.child {
            Some((child, _)) => format!(
                "Microsoft.Network/{}/{}",
                self.kind.segment(),
                child.segment()
            ),
            None => format!("Microsoft.Network/{}", self.kind.segment()),
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

fn new_etag() -> String {
    format!("W/\"{}\"", uuid::Uuid::new_v4())
}

fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn lower(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// The lower-case key of the VNet a subnet, peering or VNet id belongs to.
fn vnet_key_of(id: &str) -> String {
    let lowered = lower(id);
    match lowered
        .find("/subnets/")
        .or_else(|| lowered.find("/virtualnetworkpeerings/"))
    {
        Some(at) => lowered[..at].to_string(),
        None => lowered,
    }
}

/// Parses a prefix and tells whether it is canonical (host bits zero).
fn parse_prefix(text: &str) -> Option<(IpNet, bool)> {
    let net = IpNet::from_str(text.trim()).ok()?;
    Some((net, net.trunc() == net))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(&b.network()) || b.contains(&a.network())
        }
        _ => false,
    }
}

fn nets(prefixes: &[String]) -> Vec<IpNet> {
    prefixes
        .iter()
        .filter_map(|p| IpNet::from_str(p).ok())
        .collect()
}

fn overlap_between(a: &[String], b: &[String]) -> Option<String> {
    let (an, bn) = (nets(a), nets(b));
    for x in &an {
        for y in &bn {
            if overlaps(x, y) {
                let inner = if x.prefix_len() >= y.prefix_len() {
                    x
                } else {
                    y
                };
                return Some(inner.to_string());
            }
        }
    }
    None
}

/// A BGP community for a VNet, stable per VNet (Azure's regional community 12076:50004 style).
fn bgp_community(key: &str) -> String {
    let sum: u32 = key.bytes().fold(7u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    format!("12076:{}", 20000 + sum % 10000)
}

const PEERING_DERIVED: [&str; 4] = [
    "remoteVirtualNetworkAddressSpace",
    "peeringSyncLevel",
    "localVirtualNetworkAddressSpace",
    "localAddressSpace",
];

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

    fn lro_reply(
        &self,
        created: bool,
        body: Value,
        headers: Vec<(String, String)>,
        scheduled: (String, Instant),
    ) -> Reply {
        Reply {
            status: if created { 201 } else { 200 },
            body: Some(body),
            headers,
            scheduled: vec![scheduled],
            operations_in_flight: None,
        }
    }

    // ------------------------------------------------------------------ writes: VNets

    /// PUT of a virtual network.
    pub(crate) fn put_vnet(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        let prefixes = address_prefixes(&body, "addressSpace");
        let prefix_nets = self.validate_prefixes(&prefixes)?;
        if prefix_nets.is_empty() {
            return Err(ArmError::bad_request(
                "InvalidAddressSpace",
                format!(
                    "Virtual network {} must have at least one address prefix in addressSpace.",
                    path.id()
                ),
            ));
        }
        for (i, a) in prefix_nets.iter().enumerate() {
            for b in &prefix_nets[i + 1..] {
                if overlaps(a, b) {
                    return Err(ArmError::bad_request(
                        "NetcfgInvalidAddressPrefixes",
                        format!(
                            "Address prefixes {a} and {b} of virtual network {} overlap.",
                            path.id()
                        ),
                    ));
                }
            }
        }
        let existing = self.vnets.get(&key).cloned();
        let created = existing.is_none();

        // Subnets: given → replace the set; omitted → kept (api-version >= 2023-09-01, notes §3).
        let given_subnets = body
            .get("properties")
            .and_then(|p| p.get("subnets"))
            .and_then(Value::as_array)
            .cloned();
        let old_subnets: Vec<Value> = existing
            .as_ref()
            .map(|e| prop_arr(&e.body, "subnets").to_vec())
            .unwrap_or_default();
        let keep_omitted = ctx.api_version.as_str() >= "2023-09-01";
        let new_subnet_bodies: Vec<Value> = match given_subnets {
            Some(list) => list,
            None if keep_omitted => old_subnets.clone(),
            None => Vec::new(),
        };
        let mut subnets = Vec::new();
        for given in new_subnet_bodies {
            let name = name_of(&given).to_string();
            if name.is_empty() {
                return Err(ArmError::bad_request(
                    "InvalidRequestFormat",
                    "Cannot parse the request: a subnet has no name.",
                ));
            }
            let old = old_subnets
                .iter()
                .find(|s| name_of(s).eq_ignore_ascii_case(&name));
            let sub_path = ResPath {
                child: Some((ChildKind::Subnet, name.clone())),
                ..path.clone()
            };
            subnets.push(self.build_subnet(&sub_path, given, old, &prefix_nets)?);
        }
        check_subnet_overlaps(&subnets)?;
        for old in &old_subnets {
            if !subnets
                .iter()
                .any(|s| name_of(s).eq_ignore_ascii_case(name_of(old)))
            {
                check_subnet_deletable(old)?;
            }
        }
        // Peered VNets must not overlap the new space.
        if let Some(existing) = &existing {
            for peering in prop_arr(&existing.body, "virtualNetworkPeerings") {
                let Some(remote) = prop_ref_id(peering, "remoteVirtualNetwork") else {
                    continue;
                };
                if let Some(remote_vnet) = self.vnets.get(&lower(remote)) {
                    let remote_prefixes = address_prefixes(&remote_vnet.body, "addressSpace");
                    if let Some(overlap) = overlap_between(&prefixes, &remote_prefixes) {
                        return Err(ArmError::bad_request(
                            "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
                            format!(
                                "Cannot update virtual network {}. Its address space overlaps with address space of virtual network {} already peered with it. Overlapping address prefixes: {overlap}. For more information please refer to https://aka.ms/VnetPeeringInfo",
                                path.id(),
                                remote
                            ),
                        ));
                    }
                }
            }
        }

        // Build the stored body: caller's body, server fields, existing peerings kept.
        let peerings: Vec<Value> = existing
            .as_ref()
            .map(|e| prop_arr(&e.body, "virtualNetworkPeerings").to_vec())
            .unwrap_or_default();
        let guid = existing
            .as_ref()
            .and_then(|e| prop_str(&e.body, "resourceGuid").map(str::to_string))
            .unwrap_or_else(new_guid);
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(path.name));
            top.insert("id".into(), json!(path.id()));
            top.insert("type".into(), json!("Microsoft.Network/virtualNetworks"));
            top.insert("location".into(), json!(location));
        }
        {
            let p = props(&mut body);
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("dhcpOptions").or_insert(json!({"dnsServers": []}));
            p.entry("enableDdosProtection").or_insert(json!(false));
            p.insert("subnets".into(), Value::Array(subnets));
            p.insert("virtualNetworkPeerings".into(), Value::Array(peerings));
        }
        for subnet in prop_arr_mut(&mut body, "subnets").iter_mut() {
            set_state(subnet, "Updating");
        }
        restamp(&mut body, Kind::Vnet);
        let old_tables: BTreeSet<String> = old_subnets
            .iter()
            .filter_map(|s| prop_ref_id(s, "routeTable").map(lower))
            .collect();
        self.vnets.insert(key.clone(), Res { body });
        let mut tables = old_tables;
        if let Some(v) = self.vnets.get(&key) {
            tables.extend(
                prop_arr(&v.body, "subnets")
                    .iter()
                    .filter_map(|s| prop_ref_id(s, "routeTable").map(lower)),
            );
        }
        self.rebuild_table_subnets(&tables);
        self.refresh_related(&key);
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutVirtualNetworkOperation",
            superseded,
            created,
            self.latency.lro,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    fn validate_prefixes(&self, prefixes: &[String]) -> Result<Vec<IpNet>, ArmError> {
        let mut out = Vec::new();
        for prefix in prefixes {
            match parse_prefix(prefix) {
                Some((net, true)) => out.push(net),
                Some((net, false)) => {
                    return Err(ArmError::bad_request(
                        &self.strict.invalid_cidr_code,
                        format!(
                            "{prefix} is not a valid CIDR: its host bits are set. Did you mean {}?",
                            net.trunc()
                        ),
                    ))
                }
                None => {
                    return Err(ArmError::bad_request(
                        "InvalidAddressPrefixFormat",
                        format!("Address prefix {prefix} has an invalid format."),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Builds a stored subnet from a PUT body: the whole subnet is replaced; only the read-only
    /// fields owned by other resources (ip configurations, links) are kept.
    fn build_subnet(
        &self,
        path: &ResPath,
        mut given: Value,
        old: Option<&Value>,
        vnet_space: &[IpNet],
    ) -> Result<Value, ArmError> {
        let mut prefixes: Vec<String> = Vec::new();
        if let Some(p) = prop_str(&given, "addressPrefix") {
            prefixes.push(p.to_string());
        }
        prefixes.extend(
            prop_arr(&given, "addressPrefixes")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
        if prefixes.is_empty() {
            return Err(ArmError::bad_request(
                "InvalidRequestFormat",
                format!(
                    "Cannot parse the request: subnet {} has no addressPrefix.",
                    path.id()
                ),
            ));
        }
        for net in self.validate_prefixes(&prefixes)? {
            let inside = vnet_space.iter().any(|space| space.contains(&net));
            if !inside {
                return Err(ArmError::bad_request(
                    "NetcfgSubnetRangeOutsideVnet",
                    format!(
                        "Subnet '{}' is not valid because its IP address range is outside the IP address range of virtual network '{}'.",
                        path.child.as_ref().map(|c| c.1.as_str()).unwrap_or(""),
                        path.name
                    ),
                ));
            }
        }
        if let Some(table_id) = prop_ref_id(&given, "routeTable") {
            let table_key = lower(table_id);
            if !self.tables.contains_key(&table_key) {
                return Err(ArmError::bad_request(
                    "InvalidResourceReference",
                    format!("Resource {table_id} referenced by resource {} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", path.id()),
                ));
            }
            self.check_referenced(&table_key, table_id, &path.id())?;
        }
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        {
            let top = obj(&mut given);
            top.insert("name".into(), json!(name));
            top.insert("id".into(), json!(path.id()));
            top.insert(
                "type".into(),
                json!("Microsoft.Network/virtualNetworks/subnets"),
            );
        }
        let p = props(&mut given);
        p.insert("provisioningState".into(), json!("Updating"));
        p.remove("ipConfigurations");
        p.remove("serviceAssociationLinks");
        p.remove("resourceNavigationLinks");
        if let Some(old) = old {
            for key in [
                "ipConfigurations",
                "serviceAssociationLinks",
                "resourceNavigationLinks",
            ] {
                if let Some(v) = old.get("properties").and_then(|p| p.get(key)) {
                    p.insert(key.into(), v.clone());
                }
            }
        }
        // A subnet held by a service keeps the delegation that service needs.
        if let Some(old) = old {
            for link in prop_arr(old, "serviceAssociationLinks") {
                let service = prop_str(link, "linkedResourceType").unwrap_or("");
                let delegated = prop_arr(&given, "delegations").iter().any(|d| {
                    prop_str(d, "serviceName").is_some_and(|s| s.eq_ignore_ascii_case(service))
                });
                if !service.is_empty() && !delegated {
                    return Err(ArmError::bad_request(
                        "SubnetMissingRequiredDelegation",
                        format!("Subnet {} requires any of the following delegation(s) [{service}] to reference service association link.", path.id()),
                    ));
                }
            }
        }
        Ok(given)
    }

    /// PUT of a subnet: replaces the whole subnet.
    pub(crate) fn put_subnet(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(vnet) = self.vnets.get(&key).cloned() else {
            return Err(Self::not_found_parent(path));
        };
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let superseded = self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        let space = nets(&address_prefixes(&vnet.body, "addressSpace"));
        let old = find_child(&vnet.body, ChildKind::Subnet, &name).cloned();
        let created = old.is_none();
        let subnet = self.build_subnet(path, body, old.as_ref(), &space)?;
        let mut all: Vec<Value> = prop_arr(&vnet.body, "subnets")
            .iter()
            .filter(|s| !name_of(s).eq_ignore_ascii_case(&name))
            .cloned()
            .collect();
        all.push(subnet.clone());
        check_subnet_overlaps(&all)?;
        let mut tables = BTreeSet::new();
        if let Some(old) = &old {
            if let Some(t) = prop_ref_id(old, "routeTable") {
                tables.insert(lower(t));
            }
        }
        if let Some(t) = prop_ref_id(&subnet, "routeTable") {
            tables.insert(lower(t));
        }
        if let Some(res) = self.vnets.get_mut(&key) {
            upsert_child(&mut res.body, ChildKind::Subnet, subnet);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::Vnet);
        }
        self.rebuild_table_subnets(&tables);
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutSubnetOperation",
            superseded,
            created,
            self.latency.lro,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    fn check_if_match_child(&self, ctx: &Ctx, path: &ResPath) -> Result<(), ArmError> {
        if ctx.if_match.is_none() {
            return Ok(());
        }
        self.check_if_match(ctx, path)
    }

    // ------------------------------------------------------------------ writes: peerings

    /// PUT of a virtual network peering, with the Network RP's validations (notes §4.5, in the
    /// order of §15: lock → referenced → disconnected → gateway checks → overlap).
    pub(crate) fn put_peering(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(vnet) = self.vnets.get(&key).cloned() else {
            return Err(Self::not_found_parent(path));
        };
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let peering_id = path.id();
        let superseded = self.check_lock(ctx, &key, &lower(&peering_id), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        let sync = match ctx.sync_remote_address_space.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) => {
                return Err(ArmError::bad_request(
                    "InvalidSyncRemoteAddressSpaceValue",
                    format!("The value '{v}' of the query parameter syncRemoteAddressSpace is not valid. The only allowed value is 'true'."),
                ))
            }
        };
        let remote_id = prop_ref_id(&body, "remoteVirtualNetwork")
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidRequestFormat",
                    format!("Cannot parse the request: peering {peering_id} has no remoteVirtualNetwork.id."),
                )
            })?;
        let remote_key = vnet_key_of(&remote_id);
        let old = find_child(&vnet.body, ChildKind::Peering, &name).cloned();
        let created = old.is_none();
        if let Some(old) = &old {
            let old_remote = prop_ref_id(old, "remoteVirtualNetwork").unwrap_or("");
            if !old_remote.eq_ignore_ascii_case(&remote_id) {
                return Err(ArmError::bad_request(
                    "CannotChangeRemoteVirtualNetworkOfPeering",
                    format!("Peering {peering_id} cannot change its remote virtual network from {old_remote} to {remote_id}."),
                ));
            }
        } else {
            let count = prop_arr(&vnet.body, "virtualNetworkPeerings").len();
            if count >= self.strict.peering_limit {
                return Err(ArmError::bad_request(
                    "PeeringLimitReached",
                    format!(
                        "Virtual network {} cannot have more than {} peerings.",
                        path.parent_id(),
                        self.strict.peering_limit
                    ),
                ));
            }
        }
        let Some(remote) = self.vnets.get(&remote_key).cloned() else {
            return Err(ArmError::bad_request(
                "InvalidResourceReference",
                format!("Resource {remote_id} referenced by resource {peering_id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
            ));
        };
        if remote_key == key {
            return Err(ArmError::bad_request(
                "CannotPeerVirtualNetworkWithItself",
                format!("Peering {peering_id} cannot reference its own virtual network."),
            ));
        }
        self.check_referenced(&remote_key, &remote_id, &peering_id)?;

        // Disconnected: the peering itself, or the remote side of the pair.
        if let Some(old) = &old {
            if prop_str(old, "peeringState") == Some("Disconnected")
                && self.strict.refuse_disconnected_peering_update
            {
                return Err(ArmError::bad_request(
                    "CannotUpdateDisconnectedPeering",
                    format!("Cannot update peering {peering_id} because it is in Disconnected state. Delete the peering and re-create both sides to get them back to Connected state."),
                ));
            }
        }
        let remote_peering = prop_arr(&remote.body, "virtualNetworkPeerings")
            .iter()
            .find(|p| {
                prop_ref_id(p, "remoteVirtualNetwork").is_some_and(|id| vnet_key_of(id) == key)
            })
            .cloned();
        if let Some(rp) = &remote_peering {
            if prop_str(rp, "peeringState") == Some("Disconnected") {
                let rp_id = rp.get("id").and_then(Value::as_str).unwrap_or("");
                return Err(ArmError::bad_request(
                    "RemotePeeringIsDisconnected",
                    format!("Cannot create or update peering {peering_id} because remote peering {rp_id} referencing parent virtual network {} is in Disconnected state. Update or re-create the remote peering to get it back to Initiated state. Peering gets Disconnected when remote vnet or remote peering is deleted and re-created.", path.parent_id()),
                ));
            }
        }
        // No second peering to the same remote VNet.
        if let Some(other) = prop_arr(&vnet.body, "virtualNetworkPeerings")
            .iter()
            .find(|p| {
                !name_of(p).eq_ignore_ascii_case(&name)
                    && prop_ref_id(p, "remoteVirtualNetwork")
                        .is_some_and(|id| vnet_key_of(id) == remote_key)
            })
        {
            return Err(ArmError::bad_request(
                "PeeringWithSameRemoteVirtualNetworkExists",
                format!(
                    "Cannot create peering {peering_id} because peering {} of the same virtual network already references remote virtual network {remote_id}.",
                    other.get("id").and_then(Value::as_str).unwrap_or("")
                ),
            ));
        }

        // Gateway checks.
        if prop_bool(&body, "useRemoteGateways") {
            if self.vnet_has_gateway(&key, false) {
                return Err(ArmError::bad_request(
                    "UseRemoteGatewaysNotAllowedWithLocalGateway",
                    format!("Peering {peering_id} cannot have UseRemoteGateways flag set to true because its virtual network {} already has a gateway.", path.parent_id()),
                ));
            }
            if !self.vnet_has_gateway(&remote_key, true) {
                return Err(ArmError::bad_request(
                    "RemoteVnetHasNoGateways",
                    format!("Peering {peering_id} cannot have UseRemoteGateway flag set to true because remote virtual network {remote_id} referenced by the peering does not have any gateways."),
                ));
            }
            let transit_ok = match &remote_peering {
                Some(rp) => prop_bool(rp, "allowGatewayTransit"),
                None => !self.strict.use_remote_gateways_needs_remote_peering,
            };
            if !transit_ok {
                return Err(ArmError::bad_request(
                    "RemotePeeringDoesNotAllowGatewayTransit",
                    "Peering-to-Gateway cannot have UseRemoteGateways flag set to true, because corresponding remote peering has AllowGatewayTransit flag set to false.",
                ));
            }
            if let Some(other) = prop_arr(&vnet.body, "virtualNetworkPeerings")
                .iter()
                .find(|p| {
                    !name_of(p).eq_ignore_ascii_case(&name) && prop_bool(p, "useRemoteGateways")
                })
            {
                return Err(ArmError::bad_request(
                    "OnlyOnePeeringCanUseRemoteGateways",
                    format!(
                        "Peering {peering_id} cannot have UseRemoteGateways flag set to true because another peering {} of the same virtual network already uses remote gateways.",
                        other.get("id").and_then(Value::as_str).unwrap_or("")
                    ),
                ));
            }
        }

        // Overlap checks.
        let local_space = address_prefixes(&vnet.body, "addressSpace");
        let remote_space = address_prefixes(&remote.body, "addressSpace");
        if let Some(overlap) = overlap_between(&local_space, &remote_space) {
            return Err(ArmError::bad_request(
                "VnetAddressSpacesOverlap",
                format!("Cannot create or update peering {peering_id}. Virtual networks {} and {remote_id} cannot be peered because their address spaces overlap. Overlapping address prefixes: {overlap}", path.parent_id()),
            ));
        }
        for (first, first_id, second_key, second_id) in [
            (&remote_space, remote_id.as_str(), &key, path.parent_id()),
            (
                &local_space,
                path.parent_id().as_str(),
                &remote_key,
                remote_id.clone(),
            ),
        ] {
            if let Some(second) = self.vnets.get(second_key.as_str()) {
                for p in prop_arr(&second.body, "virtualNetworkPeerings") {
                    let Some(third_id) = prop_ref_id(p, "remoteVirtualNetwork") else {
                        continue;
                    };
                    let third_key = vnet_key_of(third_id);
                    if third_key == key || third_key == remote_key {
                        continue;
                    }
                    let Some(third) = self.vnets.get(&third_key) else {
                        continue;
                    };
                    if let Some(overlap) =
                        overlap_between(first, &address_prefixes(&third.body, "addressSpace"))
                    {
                        return Err(ArmError::bad_request(
                            "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
                            format!("Cannot create or update peering {peering_id}. Virtual networks {first_id} and {second_id} cannot be peered because address space of the first virtual network overlaps with address space of virtual network {third_id} already peered with the second virtual network. Overlapping address prefixes: {overlap}. For more information please refer to https://aka.ms/VnetPeeringInfo"),
                        ));
                    }
                }
            }
        }

        // Accepted: build the stored peering.
        let state = match (&old, &remote_peering) {
            (Some(old), _) => prop_str(old, "peeringState")
                .unwrap_or("Initiated")
                .to_string(),
            (None, Some(_)) => "Connected".to_string(),
            (None, None) => "Initiated".to_string(),
        };
        let guid = old
            .as_ref()
            .and_then(|o| prop_str(o, "resourceGuid").map(str::to_string))
            .or_else(|| {
                remote_peering
                    .as_ref()
                    .and_then(|rp| prop_str(rp, "resourceGuid").map(str::to_string))
            })
            .unwrap_or_else(new_guid);
        let remote_programmed = match (&old, sync) {
            (Some(old), false)
                if old
                    .get("properties")
                    .and_then(|p| p.get("remoteAddressSpace"))
                    .is_some() =>
            {
                old.get("properties")
                    .and_then(|p| p.get("remoteAddressSpace"))
                    .cloned()
                    .unwrap_or(json!({"addressPrefixes": remote_space}))
            }
            _ => json!({"addressPrefixes": remote_space}),
        };
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(name));
            top.insert("id".into(), json!(peering_id));
            top.insert(
                "type".into(),
                json!("Microsoft.Network/virtualNetworks/virtualNetworkPeerings"),
            );
        }
        {
            let p = props(&mut body);
            for flag in [
                "allowVirtualNetworkAccess",
                "allowForwardedTraffic",
                "allowGatewayTransit",
                "useRemoteGateways",
            ] {
                let value = p
                    .get(flag)
                    .and_then(Value::as_bool)
                    .unwrap_or(flag == "allowVirtualNetworkAccess");
                p.insert(flag.into(), json!(value));
            }
            p.insert("remoteVirtualNetwork".into(), json!({"id": remote_id}));
            p.insert("remoteAddressSpace".into(), remote_programmed);
            p.insert("remoteBgpCommunities".into(), json!({"virtualNetworkCommunity": bgp_community(&remote_key), "regionalCommunity": "12076:50004"}));
            if let Some(enc) = remote
                .body
                .get("properties")
                .and_then(|p| p.get("encryption"))
            {
                p.insert("remoteVirtualNetworkEncryption".into(), enc.clone());
            }
            p.insert("peeringState".into(), json!(state));
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("routeServiceVips").or_insert(json!({}));
            p.remove("peeringSyncLevel");
        }
        if let Some(res) = self.vnets.get_mut(&key) {
            upsert_child(&mut res.body, ChildKind::Peering, body);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::Vnet);
        }
        // The passive side connects (no write, no event on it).
        if created && remote_peering.is_some() {
            if let Some(res) = self.vnets.get_mut(&remote_key) {
                for p in prop_arr_mut(&mut res.body, "virtualNetworkPeerings").iter_mut() {
                    if prop_ref_id(p, "remoteVirtualNetwork")
                        .is_some_and(|id| vnet_key_of(id) == key)
                    {
                        let pp = props(p);
                        pp.insert("peeringState".into(), json!("Connected"));
                        pp.insert("resourceGuid".into(), json!(guid));
                    }
                }
                restamp(&mut res.body, Kind::Vnet);
            }
        }
        self.refresh_related(&key);
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutVirtualNetworkPeeringOperation",
            superseded,
            created,
            self.latency.lro,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    fn vnet_has_gateway(&self, vnet_key: &str, require_succeeded: bool) -> bool {
        let gateway_subnet = format!("{vnet_key}/subnets/gatewaysubnet");
        self.gateways.values().any(|g| {
            let in_vnet = prop_arr(&g.body, "ipConfigurations")
                .iter()
                .any(|c| prop_ref_id(c, "subnet").is_some_and(|id| lower(id) == gateway_subnet));
            in_vnet
                && (!require_succeeded
                    || prop_str(&g.body, "provisioningState") == Some("Succeeded"))
        })
    }

    /// Recomputes the derived fields of the peerings of `key` and of every VNet peered with it
    /// (address spaces, sync levels); a changed VNet gets a new etag (passive change).
    fn refresh_related(&mut self, key: &str) {
        let mut related = BTreeSet::new();
        related.insert(key.to_string());
        if let Some(v) = self.vnets.get(key) {
            for p in prop_arr(&v.body, "virtualNetworkPeerings") {
                if let Some(id) = prop_ref_id(p, "remoteVirtualNetwork") {
                    related.insert(vnet_key_of(id));
                }
            }
        }
        for (other_key, v) in &self.vnets {
            if prop_arr(&v.body, "virtualNetworkPeerings").iter().any(|p| {
                prop_ref_id(p, "remoteVirtualNetwork").is_some_and(|id| vnet_key_of(id) == key)
            }) {
                related.insert(other_key.clone());
            }
        }
        self.refresh_peerings(&related, false);
    }

    /// Recomputes peering derived fields for `keys`. With `fill_only`, given fields are kept
    /// (seeds) and only missing ones derived.
    fn refresh_peerings(&mut self, keys: &BTreeSet<String>, fill_only: bool) {
        let mut updates: Vec<(String, usize, Map<String, Value>)> = Vec::new();
        // Per VNet, which of its peerings points at which VNet (the first, as a scan would find):
        // refreshing a hub's 500 spokes looks the hub's peerings up 500 times.
        let mut pointing: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for key in keys {
            let Some(vnet) = self.vnets.get(key) else {
                continue;
            };
            let local_space = address_prefixes(&vnet.body, "addressSpace");
            for (index, p) in prop_arr(&vnet.body, "virtualNetworkPeerings")
                .iter()
                .enumerate()
            {
                let Some(remote_id) = prop_ref_id(p, "remoteVirtualNetwork") else {
                    continue;
                };
                let remote_key = vnet_key_of(remote_id);
                let Some(remote) = self.vnets.get(&remote_key) else {
                    continue;
                };
                let remote_space = address_prefixes(&remote.body, "addressSpace");
                let programmed = {
                    let given = address_prefixes(p, "remoteAddressSpace");
                    if p.get("properties")
                        .and_then(|pp| pp.get("remoteAddressSpace"))
                        .is_some()
                    {
                        given
                    } else {
                        remote_space.clone()
                    }
                };
                let remote_peerings = prop_arr(&remote.body, "virtualNetworkPeerings");
                let remote_index = pointing.entry(remote_key.clone()).or_insert_with(|| {
                    let mut index = HashMap::new();
                    for (at, rp) in remote_peerings.iter().enumerate() {
                        if let Some(id) = prop_ref_id(rp, "remoteVirtualNetwork") {
                            index.entry(vnet_key_of(id)).or_insert(at);
                        }
                    }
                    index
                });
                let remote_peering = remote_index
                    .get(key.as_str())
                    .and_then(|at| remote_peerings.get(*at));
                let remote_programmed = remote_peering.map(|rp| {
                    if rp
                        .get("properties")
                        .and_then(|pp| pp.get("remoteAddressSpace"))
                        .is_some()
                    {
                        address_prefixes(rp, "remoteAddressSpace")
                    } else {
                        local_space.clone()
                    }
                });
                let local_not = !same_set(&programmed, &remote_space);
                let remote_not = remote_programmed
                    .as_ref()
                    .is_some_and(|rp| !same_set(rp, &local_space));
                let level = match (local_not, remote_not) {
                    (false, false) => "FullyInSync",
                    (true, false) => "LocalNotInSync",
                    (false, true) => "RemoteNotInSync",
                    (true, true) => "LocalAndRemoteNotInSync",
                };
                let mut set = Map::new();
                set.insert(
                    "remoteAddressSpace".into(),
                    json!({"addressPrefixes": programmed}),
                );
                set.insert(
                    "remoteVirtualNetworkAddressSpace".into(),
                    json!({"addressPrefixes": remote_space}),
                );
                set.insert(
                    "localVirtualNetworkAddressSpace".into(),
                    json!({"addressPrefixes": local_space}),
                );
                set.insert(
                    "localAddressSpace".into(),
                    json!({"addressPrefixes": remote_programmed.clone().unwrap_or_else(|| local_space.clone())}),
                );
                set.insert("peeringSyncLevel".into(), json!(level));
                set.insert(
                    "remoteBgpCommunities".into(),
                    json!({"virtualNetworkCommunity": bgp_community(&remote_key), "regionalCommunity": "12076:50004"}),
                );
                if let Some(encryption) = remote
                    .body
                    .get("properties")
                    .and_then(|pp| pp.get("encryption"))
                {
                    set.insert("remoteVirtualNetworkEncryption".into(), encryption.clone());
                }
                if fill_only {
                    let existing = p.get("properties").and_then(Value::as_object);
                    set.retain(|k, _| existing.is_none_or(|e| !e.contains_key(k)));
                }
                updates.push((key.clone(), index, set));
            }
        }
        let mut changed = BTreeSet::new();
        for (key, index, set) in updates {
            let Some(vnet) = self.vnets.get_mut(&key) else {
                continue;
            };
            let peerings = prop_arr_mut(&mut vnet.body, "virtualNetworkPeerings");
            let Some(p) = peerings.get_mut(index) else {
                continue;
            };
            let pp = props(p);
            for (k, v) in set {
                if pp.get(&k) != Some(&v) {
                    if PEERING_DERIVED.contains(&k.as_str()) || k == "remoteAddressSpace" {
                        changed.insert(key.clone());
                    }
                    pp.insert(k, v);
                }
            }
        }
        for key in changed {
            if let Some(vnet) = self.vnets.get_mut(&key) {
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
    }

    fn remove_peering(&mut self, key: &str, name: &str) {
        let mut remote_key = None;
        if let Some(res) = self.vnets.get_mut(key) {
            let items = prop_arr_mut(&mut res.body, "virtualNetworkPeerings");
            if let Some(at) = items
                .iter()
                .position(|p| name_of(p).eq_ignore_ascii_case(name))
            {
                let removed = items.remove(at);
                remote_key = prop_ref_id(&removed, "remoteVirtualNetwork").map(vnet_key_of);
            }
            set_state(&mut res.body, "Succeeded");
            restamp(&mut res.body, Kind::Vnet);
        }
        if let Some(remote_key) = remote_key {
            self.disconnect_peerings_to(&remote_key, key);
        }
    }

    /// The peerings of `vnet_key` that point at `target_key` become Disconnected.
    fn disconnect_peerings_to(&mut self, vnet_key: &str, target_key: &str) {
        if let Some(res) = self.vnets.get_mut(vnet_key) {
            let mut changed = false;
            for p in prop_arr_mut(&mut res.body, "virtualNetworkPeerings").iter_mut() {
                if prop_ref_id(p, "remoteVirtualNetwork")
                    .is_some_and(|id| vnet_key_of(id) == target_key)
                {
                    props(p).insert("peeringState".into(), json!("Disconnected"));
                    changed = true;
                }
            }
            if changed {
                restamp(&mut res.body, Kind::Vnet);
            }
        }
    }

    fn remove_vnet(&mut self, key: &str) {
        let Some(res) = self.vnets.remove(key) else {
            return;
        };
        let tables: BTreeSet<String> = prop_arr(&res.body, "subnets")
            .iter()
            .filter_map(|s| prop_ref_id(s, "routeTable").map(lower))
            .collect();
        self.rebuild_table_subnets(&tables);
        let others: Vec<String> = self.vnets.keys().cloned().collect();
        for other in others {
            self.disconnect_peerings_to(&other, key);
        }
    }

    fn remove_gateway(&mut self, key: &str) {
        let Some(res) = self.gateways.remove(key) else {
            return;
        };
        let config_ids: Vec<String> = prop_arr(&res.body, "ipConfigurations")
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str).map(lower))
            .collect();
        for vnet in self.vnets.values_mut() {
            let mut changed = false;
            for subnet in prop_arr_mut(&mut vnet.body, "subnets").iter_mut() {
                let p = props(subnet);
                if let Some(Value::Array(configs)) = p.get_mut("ipConfigurations") {
                    let before = configs.len();
                    configs.retain(|c| {
                        !c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| config_ids.contains(&lower(id)))
                    });
                    changed |= configs.len() != before;
                    if configs.is_empty() {
                        p.remove("ipConfigurations");
                    }
                }
            }
            if changed {
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
    }

    /// Recomputes the read-only `subnets` of the given route tables.
    fn rebuild_table_subnets(&mut self, table_keys: &BTreeSet<String>) {
        for table_key in table_keys {
            let mut ids = Vec::new();
            for vnet in self.vnets.values() {
                for s in prop_arr(&vnet.body, "subnets") {
                    if prop_ref_id(s, "routeTable").is_some_and(|id| lower(id) == *table_key) {
                        if let Some(id) = s.get("id").and_then(Value::as_str) {
                            ids.push(json!({"id": id}));
                        }
                    }
                }
            }
            if let Some(table) = self.tables.get_mut(table_key) {
                let p = props(&mut table.body);
                let current = p.get("subnets").cloned();
                let wanted = (!ids.is_empty()).then(|| Value::Array(ids));
                if current != wanted {
                    match wanted {
                        Some(v) => p.insert("subnets".into(), v),
                        None => p.remove("subnets"),
                    };
                    restamp(&mut table.body, Kind::RouteTable);
                }
            }
        }
    }

    // ------------------------------------------------------------------ writes: route tables

    fn validate_route(&self, route_id: &str, route: &mut Value) -> Result<String, ArmError> {
        let prefix = prop_str(route, "addressPrefix")
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidRequestFormat",
                    format!("Cannot parse the request: route {route_id} has no addressPrefix."),
                )
            })?;
        let hop = prop_str(route, "nextHopType").ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestFormat",
                format!("Cannot parse the request: route {route_id} has no nextHopType."),
            )
        })?;
        const HOPS: [&str; 6] = [
            "VirtualNetworkGateway",
            "VnetLocal",
            "Internet",
            "VirtualAppliance",
            "None",
            "VirtualApplianceEcmp",
        ];
        let Some(hop) = HOPS.iter().find(|h| h.eq_ignore_ascii_case(hop)).copied() else {
            return Err(ArmError::bad_request(
                "InvalidRequestFormat",
                format!(
                    "Cannot parse the request: '{hop}' is not a valid nextHopType ({}).",
                    HOPS.join(", ")
                ),
            ));
        };
        let net = match parse_prefix(&prefix) {
            Some((net, true)) => Some(net),
            Some((net, false)) => {
                return Err(ArmError::bad_request(
                    &self.strict.invalid_cidr_code,
                    format!("Route {route_id} has an invalid address prefix {prefix}: host bits are set. Did you mean {}?", net.trunc()),
                ))
            }
            None => {
                // Service tags (e.g. `AzureCloud`) are valid address prefixes.
                let tag_like = prefix.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
                if !tag_like {
                    return Err(ArmError::bad_request(
                        "InvalidAddressPrefixFormat",
                        format!("Route {route_id} has an invalid address prefix {prefix}."),
                    ));
                }
                None
            }
        };
        let has_ip = prop_str(route, "nextHopIpAddress").is_some_and(|s| !s.is_empty());
        if hop == "VirtualAppliance" && !has_ip {
            return Err(ArmError::bad_request(
                "NextHopIpAddressRequired",
                format!("Route {route_id} with next hop type VirtualAppliance must have a nextHopIpAddress."),
            ));
        }
        if hop != "VirtualAppliance" && hop != "VirtualApplianceEcmp" && has_ip {
            return Err(ArmError::bad_request(
                "NextHopIpAddressNotAllowed",
                format!("Route {route_id} has next hop type {hop}; nextHopIpAddress can only be specified with next hop type VirtualAppliance."),
            ));
        }
        if hop == "VirtualNetworkGateway"
            && self.strict.reject_ipv6_gateway_routes
            && matches!(net, Some(IpNet::V6(_)))
        {
            return Err(ArmError::bad_request(
                "InvalidRouteNextHopTypeForIPv6",
                format!("Route {route_id} with IPv6 address prefix {prefix} cannot have next hop type VirtualNetworkGateway."),
            ));
        }
        props(route).insert("nextHopType".into(), json!(hop));
        Ok(prefix)
    }

    fn finish_route(path: &ResPath, name: &str, route: &mut Value) {
        let id = format!("{}/routes/{name}", path.parent_id());
        let top = obj(route);
        top.insert("name".into(), json!(name));
        top.insert("id".into(), json!(id));
        top.insert("type".into(), json!("Microsoft.Network/routeTables/routes"));
        let p = props(route);
        p.insert("provisioningState".into(), json!("Updating"));
        p.entry("hasBgpOverride").or_insert(json!(false));
    }

    fn check_route_set(&self, path: &ResPath, routes: &[Value]) -> Result<(), ArmError> {
        if routes.len() > self.strict.route_limit {
            return Err(ArmError::bad_request(
                "RouteTableRouteLimitReached",
                format!(
                    "Route table {} cannot have more than {} routes.",
                    path.parent_id(),
                    self.strict.route_limit
                ),
            ));
        }
        let mut seen: HashMap<String, &str> = HashMap::new();
        for r in routes {
            let prefix = prop_str(r, "addressPrefix")
                .unwrap_or("")
                .to_ascii_lowercase();
            let name = r.get("id").and_then(Value::as_str).unwrap_or("");
            if let Some(first) = seen.insert(prefix, name) {
                return Err(ArmError::bad_request(
                    "RouteConflict",
                    format!("Route: {name} conflicts with Route: {first}. Routes cannot have the same AddressPrefix."),
                ));
            }
        }
        Ok(())
    }

    /// PUT of a route table (replaces the inline routes).
    pub(crate) fn put_route_table(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        let existing = self.tables.get(&key).cloned();
        let created = existing.is_none();
        let mut routes: Vec<Value> = prop_arr(&body, "routes").to_vec();
        for route in routes.iter_mut() {
            let name = name_of(route).to_string();
            if name.is_empty() {
                return Err(ArmError::bad_request(
                    "InvalidRequestFormat",
                    "Cannot parse the request: a route has no name.",
                ));
            }
            let id = format!("{}/routes/{name}", path.parent_id());
            self.validate_route(&id, route)?;
            Self::finish_route(path, &name, route);
        }
        self.check_route_set(path, &routes)?;
        let guid = existing
            .as_ref()
            .and_then(|e| prop_str(&e.body, "resourceGuid").map(str::to_string))
            .unwrap_or_else(new_guid);
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(path.name));
            top.insert("id".into(), json!(path.id()));
            top.insert("type".into(), json!("Microsoft.Network/routeTables"));
            top.insert("location".into(), json!(location));
        }
        {
            let p = props(&mut body);
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("disableBgpRoutePropagation")
                .or_insert(json!(false));
            p.insert("routes".into(), Value::Array(routes));
            p.remove("subnets");
        }
        restamp(&mut body, Kind::RouteTable);
        self.tables.insert(key.clone(), Res { body });
        self.rebuild_table_subnets(&BTreeSet::from([key]));
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutRouteTableOperation",
            superseded,
            created,
            self.latency.lro,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    /// PUT of one route.
    pub(crate) fn put_route(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(table) = self.tables.get(&key).cloned() else {
            return Err(Self::not_found_parent(path));
        };
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let superseded = self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        self.validate_route(&path.id(), &mut body)?;
        Self::finish_route(path, &name, &mut body);
        let created = find_child(&table.body, ChildKind::Route, &name).is_none();
        let mut all: Vec<Value> = prop_arr(&table.body, "routes")
            .iter()
            .filter(|r| !name_of(r).eq_ignore_ascii_case(&name))
            .cloned()
            .collect();
        all.push(body.clone());
        self.check_route_set(path, &all)?;
        if let Some(res) = self.tables.get_mut(&key) {
            upsert_child(&mut res.body, ChildKind::Route, body);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::RouteTable);
        }
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutRouteOperation",
            superseded,
            created,
            self.latency.lro,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    // ------------------------------------------------------------------ writes: gateways

    /// PUT of a virtual network gateway: provisions for the latency's gateway time.
    pub(crate) fn put_gateway(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        let existing = self.gateways.get(&key).cloned();
        let created = existing.is_none();
        let configs = prop_arr(&body, "ipConfigurations").to_vec();
        if configs.is_empty() {
            return Err(ArmError::bad_request(
                "VirtualNetworkGatewayMustHaveIpConfiguration",
                format!(
                    "Virtual network gateway {} must have at least one ip configuration.",
                    path.id()
                ),
            ));
        }
        let mut subnet_ids = Vec::new();
        for config in &configs {
            let subnet_id = prop_ref_id(config, "subnet").unwrap_or("").to_string();
            let vnet_key = vnet_key_of(&subnet_id);
            let subnet_name = subnet_id.rsplit('/').next().unwrap_or("");
            let exists = self
                .vnets
                .get(&vnet_key)
                .is_some_and(|v| find_child(&v.body, ChildKind::Subnet, subnet_name).is_some());
            if !exists {
                return Err(ArmError::bad_request(
                    "InvalidResourceReference",
                    format!(
                        "Resource {subnet_id} referenced by resource {} was not found.",
                        path.id()
                    ),
                ));
            }
            if !subnet_name.eq_ignore_ascii_case("GatewaySubnet") {
                return Err(ArmError::bad_request(
                    "InvalidGatewaySubnet",
                    format!("Subnet {subnet_id} referenced by virtual network gateway {} must be named GatewaySubnet.", path.id()),
                ));
            }
            let gateway_type = prop_str(&body, "gatewayType").unwrap_or("Vpn");
            if created {
                let same_type_elsewhere = self.gateways.values().any(|g| {
                    prop_str(&g.body, "gatewayType")
                        .unwrap_or("Vpn")
                        .eq_ignore_ascii_case(gateway_type)
                        && prop_arr(&g.body, "ipConfigurations").iter().any(|c| {
                            prop_ref_id(c, "subnet").is_some_and(|id| vnet_key_of(id) == vnet_key)
                        })
                });
                if same_type_elsewhere {
                    return Err(ArmError::bad_request(
                        "VnetCanHaveOnlyOneGatewayOfType",
                        format!("Virtual network {vnet_key} already has a gateway of type {gateway_type}."),
                    ));
                }
            }
            self.check_referenced(&vnet_key, &subnet_id, &path.id())?;
            subnet_ids.push(subnet_id);
        }
        let guid = existing
            .as_ref()
            .and_then(|e| prop_str(&e.body, "resourceGuid").map(str::to_string))
            .unwrap_or_else(new_guid);
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(path.name));
            top.insert("id".into(), json!(path.id()));
            top.insert(
                "type".into(),
                json!("Microsoft.Network/virtualNetworkGateways"),
            );
            top.insert("location".into(), json!(location));
        }
        {
            let p = props(&mut body);
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("gatewayType").or_insert(json!("Vpn"));
            p.entry("vpnType").or_insert(json!("RouteBased"));
            p.entry("enableBgp").or_insert(json!(false));
            p.entry("activeActive").or_insert(json!(false));
            p.entry("sku")
                .or_insert(json!({"name": "VpnGw1", "tier": "VpnGw1"}));
        }
        let mut config_ids = Vec::new();
        for config in prop_arr_mut(&mut body, "ipConfigurations").iter_mut() {
            let name = name_of(config).to_string();
            let name = if name.is_empty() {
                "default".to_string()
            } else {
                name
            };
            let id = format!("{}/ipConfigurations/{name}", path.id());
            config_ids.push(id.clone());
            let top = obj(config);
            top.insert("name".into(), json!(name));
            top.insert("id".into(), json!(id));
            let p = props(config);
            p.insert("provisioningState".into(), json!("Updating"));
            p.entry("privateIPAllocationMethod")
                .or_insert(json!("Dynamic"));
        }
        restamp(&mut body, Kind::Gateway);
        self.gateways.insert(key.clone(), Res { body });
        // The gateway subnet lists the gateway's ip configurations.
        for (subnet_id, config_id) in subnet_ids.iter().zip(config_ids) {
            let vnet_key = vnet_key_of(subnet_id);
            if let Some(vnet) = self.vnets.get_mut(&vnet_key) {
                if let Some(subnet) =
                    find_child_mut(&mut vnet.body, ChildKind::Subnet, "GatewaySubnet")
                {
                    let configs = prop_arr_mut(subnet, "ipConfigurations");
                    if !configs.iter().any(|c| {
                        c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|i| i.eq_ignore_ascii_case(&config_id))
                    }) {
                        configs.push(json!({"id": config_id}));
                    }
                }
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutVirtualNetworkGatewayOperation",
            superseded,
            created,
            self.latency.gateway,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    // ------------------------------------------------------------------ writes: NICs

    /// PUT of a network interface, minimal: its ip configurations must name existing subnets,
    /// which then list them (read-only `ipConfigurations`, as for gateways); a configuration
    /// without `privateIPAddress` gets the first free one of its subnet. No NSG, VM or
    /// accelerated-networking semantics.
    pub(crate) fn put_nic(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?;
        let existing = self.nics.get(&key).cloned();
        let created = existing.is_none();
        if prop_arr(&body, "ipConfigurations").is_empty() {
            return Err(ArmError::bad_request(
                "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                format!(
                    "Network interface {} must have at least one IP configuration.",
                    path.id()
                ),
            ));
        }
        let old_ids: Vec<String> = existing
            .as_ref()
            .map(|e| config_ids_of(&e.body))
            .unwrap_or_default();
        // Addresses held by the other NICs, so a new configuration gets a free one.
        let mut taken: BTreeSet<String> = self
            .nics
            .iter()
            .filter(|(k, _)| **k != key)
            .flat_map(|(_, n)| {
                prop_arr(&n.body, "ipConfigurations")
                    .iter()
                    .filter_map(|c| prop_str(c, "privateIPAddress").map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        let has_primary = prop_arr(&body, "ipConfigurations")
            .iter()
            .any(|c| prop_bool(c, "primary"));
        let mut links = Vec::new();
        for (index, config) in prop_arr_mut(&mut body, "ipConfigurations")
            .iter_mut()
            .enumerate()
        {
            let subnet_id = prop_ref_id(config, "subnet").unwrap_or("").to_string();
            let vnet_key = vnet_key_of(&subnet_id);
            let subnet_name = subnet_id.rsplit('/').next().unwrap_or("").to_string();
            let subnet = self
                .vnets
                .get(&vnet_key)
                .and_then(|v| find_child(&v.body, ChildKind::Subnet, &subnet_name))
                .cloned();
            let Some(subnet) =
                subnet.filter(|_| subnet_id.to_ascii_lowercase().contains("/subnets/"))
            else {
                return Err(ArmError::bad_request(
                    "InvalidResourceReference",
                    format!(
                        "Resource {subnet_id} referenced by resource {} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.",
                        path.id()
                    ),
                ));
            };
            self.check_referenced(&vnet_key, &subnet_id, &path.id())?;
            let name = match name_of(config) {
                "" => format!("ipconfig{}", index + 1),
                given => given.to_string(),
            };
            let id = format!("{}/ipConfigurations/{name}", path.id());
            let previous = existing.as_ref().and_then(|e| {
                prop_arr(&e.body, "ipConfigurations")
                    .iter()
                    .find(|c| name_of(c).eq_ignore_ascii_case(&name))
                    .and_then(|c| prop_str(c, "privateIPAddress").map(str::to_string))
            });
            let address = match prop_str(config, "privateIPAddress") {
                Some(given) => Some(given.to_string()),
                None => previous.or_else(|| first_free_address(&subnet, &taken)),
            };
            {
                let top = obj(config);
                top.insert("name".into(), json!(name));
                top.insert("id".into(), json!(id));
                top.insert(
                    "type".into(),
                    json!("Microsoft.Network/networkInterfaces/ipConfigurations"),
                );
            }
            let static_given = prop_str(config, "privateIPAddress").is_some();
            let p = props(config);
            p.insert("provisioningState".into(), json!("Updating"));
            p.entry("privateIPAllocationMethod")
                .or_insert(json!(if static_given { "Static" } else { "Dynamic" }));
            if let Some(address) = address {
                taken.insert(address.clone());
                p.insert("privateIPAddress".into(), json!(address));
                p.entry("privateIPAddressVersion").or_insert(json!("IPv4"));
            }
            p.entry("primary")
                .or_insert(json!(!has_primary && index == 0));
            links.push((subnet_id, id));
        }
        let guid = existing
            .as_ref()
            .and_then(|e| prop_str(&e.body, "resourceGuid").map(str::to_string))
            .unwrap_or_else(new_guid);
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(path.name));
            top.insert("id".into(), json!(path.id()));
            top.insert("type".into(), json!("Microsoft.Network/networkInterfaces"));
            top.insert("location".into(), json!(location));
        }
        {
            let p = props(&mut body);
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("enableAcceleratedNetworking")
                .or_insert(json!(false));
            p.entry("enableIPForwarding").or_insert(json!(false));
        }
        restamp(&mut body, Kind::Nic);
        self.nics.insert(key.clone(), Res { body });
        self.unlink_ip_configs(&old_ids);
        for (subnet_id, config_id) in &links {
            self.link_ip_config(subnet_id, config_id);
        }
        let (_, headers, scheduled) = self.begin(
            ctx,
            path,
            OpKind::Put,
            "PutNetworkInterfaceOperation",
            superseded,
            created,
            self.latency.lro,
        );
        let body = self.get(path)?;
        Ok(self.lro_reply(created, body, headers, scheduled))
    }

    fn remove_nic(&mut self, key: &str) {
        if let Some(res) = self.nics.remove(key) {
            self.unlink_ip_configs(&config_ids_of(&res.body));
        }
    }

    /// Adds `config_id` to the read-only `ipConfigurations` of the subnet `subnet_id`.
    fn link_ip_config(&mut self, subnet_id: &str, config_id: &str) {
        let vnet_key = vnet_key_of(subnet_id);
        let subnet_name = subnet_id.rsplit('/').next().unwrap_or("");
        if let Some(vnet) = self.vnets.get_mut(&vnet_key) {
            if let Some(subnet) = find_child_mut(&mut vnet.body, ChildKind::Subnet, subnet_name) {
                let configs = prop_arr_mut(subnet, "ipConfigurations");
                if !configs.iter().any(|c| {
                    c.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|i| i.eq_ignore_ascii_case(config_id))
                }) {
                    configs.push(json!({"id": config_id}));
                }
            }
            restamp(&mut vnet.body, Kind::Vnet);
        }
    }

    /// Removes these ip configuration ids (lower-cased) from every subnet that lists them.
    fn unlink_ip_configs(&mut self, config_ids: &[String]) {
        if config_ids.is_empty() {
            return;
        }
        for vnet in self.vnets.values_mut() {
            let mut changed = false;
            for subnet in prop_arr_mut(&mut vnet.body, "subnets").iter_mut() {
                let p = props(subnet);
                if let Some(Value::Array(configs)) = p.get_mut("ipConfigurations") {
                    let before = configs.len();
                    configs.retain(|c| {
                        !c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| config_ids.contains(&lower(id)))
                    });
                    changed |= configs.len() != before;
                    if configs.is_empty() {
                        p.remove("ipConfigurations");
                    }
                }
            }
            if changed {
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
    }

    /// Keeps the result of an `effectiveRouteTable` operation until it is polled.
    pub(crate) fn store_route_result(&mut self, op_id: &str, due: Instant, routes: Value) {
        // A long-running simulator forgets results older than ten minutes past their due time.
        if self.route_results.len() > 1_000 {
            let horizon = Duration::from_secs(600);
            self.route_results
                .retain(|_, (d, _)| d.checked_add(horizon).is_some_and(|end| end > due));
        }
        self.route_results.insert(op_id.to_string(), (due, routes));
    }

    /// `GET …/networkInterfaces/{nic}/operationResults/{id}`: 202 until due, then 200 with
    /// the effective routes.
    pub(crate) fn route_result(&self, op_id: &str, now: Instant) -> Option<Reply> {
        let (due, routes) = self.route_results.get(op_id)?;
        if now < *due {
            let mut reply = Reply::empty(202);
            reply.headers.push((
                "Retry-After".to_string(),
                self.latency.retry_after_secs.to_string(),
            ));
            return Some(reply);
        }
        Some(Reply::ok(routes.clone()))
    }

    // ------------------------------------------------------------------ PATCH (tags), DELETE

    /// PATCH of a top-level resource's tags (synchronous, 200).
    pub(crate) fn patch_tags(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: &Value,
    ) -> Result<Reply, ArmError> {
        let tags = body.get("tags").cloned().unwrap_or(json!({}));
        let operation = format!("{}/write", path.type_name());
        let value = self.set_tags(ctx, path, tags, path.id(), operation, "Microsoft.Network")?;
        Ok(Reply::ok(value))
    }

    /// Replaces the tags of a top-level resource (synchronously) and queues the write event.
    fn set_tags(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        tags: Value,
        subject: String,
        operation_name: String,
        resource_provider: &'static str,
    ) -> Result<Value, ArmError> {
        let key = path.parent_key();
        self.check_lock(ctx, &key, &format!("{key}#tags"), OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let kind = path.kind;
        let res = self
            .map_mut(kind)
            .get_mut(&key)
            .ok_or_else(|| Self::not_found_parent(path))?;
        obj(&mut res.body).insert("tags".into(), tags);
        restamp(&mut res.body, kind);
        let value = res.body.clone();
        self.outbox.push(PendingEvent {
            delete: false,
            subject,
            operation_name,
            resource_provider,
            subscription_id: path.sub.clone(),
            claims: ctx.claims.clone(),
            correlation_id: ctx.correlation_id.clone(),
            http_request: Some(json!({
                "clientRequestId": ctx.client_request_id,
                "clientIpAddress": ctx.client_ip,
                "method": ctx.method,
                "url": ctx.url,
            })),
        });
        Ok(value)
    }

    /// The tags API (`{resource}/providers/Microsoft.Resources/tags/default`): GET, PUT
    /// (replace) and PATCH (`operation`: `Merge`, `Replace` or `Delete`). Writes raise a
    /// `Microsoft.Resources/tags/write` event whose subject is the tags resource id.
    pub(crate) fn tags_resource(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: Option<&Value>,
    ) -> Result<Reply, ArmError> {
        let id = format!("{}/providers/Microsoft.Resources/tags/default", path.id());
        let current = self.get(path)?.get("tags").cloned().unwrap_or(json!({}));
        let answer = |tags: Value| json!({"id": id, "name": "default", "type": "Microsoft.Resources/tags", "properties": {"tags": tags}});
        let Some(body) = body else {
            return Ok(Reply::ok(answer(current)));
        };
        let given = body
            .get("properties")
            .and_then(|p| p.get("tags"))
            .cloned()
            .unwrap_or(json!({}));
        let tags = match (
            ctx.method.as_str(),
            body.get("operation").and_then(Value::as_str),
        ) {
            ("PUT", _) | ("PATCH", Some("Replace")) => given,
            ("PATCH", Some("Merge")) => {
                let mut merged = current;
                if let (Some(target), Some(extra)) = (merged.as_object_mut(), given.as_object()) {
                    for (k, v) in extra {
                        target.insert(k.clone(), v.clone());
                    }
                }
                merged
            }
            ("PATCH", Some("Delete")) => {
                let mut kept = current;
                if let (Some(target), Some(gone)) = (kept.as_object_mut(), given.as_object()) {
                    target.retain(|k, v| gone.get(k).is_none_or(|g| g != v));
                }
                kept
            }
            _ => return Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid: 'operation' must be Merge, Replace or Delete.",
            )),
        };
        let value = self.set_tags(
            ctx,
            path,
            tags,
            id.clone(),
            "Microsoft.Resources/tags/write".to_string(),
            "Microsoft.Resources",
        )?;
        Ok(Reply::ok(answer(
            value.get("tags").cloned().unwrap_or(json!({})),
        )))
    }

    /// DELETE of any resource: 202 + `Location` while it is deleted, 204 when absent.
    pub(crate) fn delete(&mut self, ctx: &Ctx, path: &ResPath) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(parent) = self.map(path.kind).get(&key).cloned() else {
            return if path.child.is_some() {
                Err(Self::not_found_parent(path))
            } else {
                Ok(Reply::empty(204))
            };
        };
        let target = match &path.child {
            None => parent.body.clone(),
            Some((kind, name)) => match find_child(&parent.body, *kind, name) {
                Some(child) => child.clone(),
                None => return Ok(Reply::empty(204)),
            },
        };
        self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Delete)?;
        self.check_if_match_child(ctx, path)?;
        let name = match (&path.child, path.kind) {
            (None, Kind::Vnet) => {
                for subnet in prop_arr(&target, "subnets") {
                    check_subnet_deletable(subnet)?;
                }
                "DeleteVirtualNetworkOperation"
            }
            (None, Kind::RouteTable) => {
                if !prop_arr(&target, "subnets").is_empty() {
                    return Err(ArmError::bad_request(
                        "InUseRouteTableCannotBeDeleted",
                        format!("Route table {} is in use and cannot be deleted.", path.id()),
                    ));
                }
                "DeleteRouteTableOperation"
            }
            (None, Kind::Gateway) => "DeleteVirtualNetworkGatewayOperation",
            (None, Kind::Nic) => "DeleteNetworkInterfaceOperation",
            (Some((ChildKind::Subnet, _)), _) => {
                check_subnet_deletable(&target)?;
                "DeleteSubnetOperation"
            }
            (Some((ChildKind::Peering, _)), _) => "DeleteVirtualNetworkPeeringOperation",
            (Some((ChildKind::Route, _)), _) => "DeleteRouteOperation",
        };
        let kind = path.kind;
        if let Some(res) = self.map_mut(kind).get_mut(&key) {
            match &path.child {
                None => set_state(&mut res.body, "Deleting"),
                Some((child_kind, child_name)) => {
                    if let Some(child) = find_child_mut(&mut res.body, *child_kind, child_name) {
                        set_state(child, "Deleting");
                    }
                    set_state(&mut res.body, "Updating");
                }
            }
            restamp(&mut res.body, kind);
        }
        let duration = self.latency.delete;
        let (_, headers, scheduled) =
            self.begin(ctx, path, OpKind::Delete, name, None, false, duration);
        Ok(Reply {
            status: 202,
            body: None,
            headers,
            scheduled: vec![scheduled],
            operations_in_flight: None,
        })
    }

    // ------------------------------------------------------------------ snapshot and seed

    /// The estate in the snapshot format of `hubspoke plan --snapshot`.
    pub(crate) fn snapshot(&self) -> Value {
        let mut snapshot = json!({
            "virtualNetworks": self.vnets.values().map(|r| r.body.clone()).collect::<Vec<_>>(),
            "routeTables": self.tables.values().map(|r| r.body.clone()).collect::<Vec<_>>(),
            "virtualNetworkGateways": self.gateways.values().map(|r| r.body.clone()).collect::<Vec<_>>(),
        });
        // Only when there are some: the snapshot format of `hubspoke plan` predates NICs.
        if !self.nics.is_empty() {
            obj(&mut snapshot).insert(
                "networkInterfaces".into(),
                Value::Array(self.nics.values().map(|r| r.body.clone()).collect()),
            );
        }
        snapshot
    }

    /// Loads an estate (replacing the current one). Seeded peerings keep their given
    /// `peeringState`, `peeringSyncLevel` and `remoteAddressSpace`; the rest is derived.
    pub(crate) fn load(&mut self, seed: &Value) -> anyhow::Result<()> {
        let mut vnets = BTreeMap::new();
        let mut tables = BTreeMap::new();
        let mut gateways = BTreeMap::new();
        let mut nics = BTreeMap::new();
        for (field, kind) in [
            ("virtualNetworks", Kind::Vnet),
            ("routeTables", Kind::RouteTable),
            ("virtualNetworkGateways", Kind::Gateway),
            ("networkInterfaces", Kind::Nic),
        ] {
            let items = seed
                .get(field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for mut item in items {
                let id = item
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| anyhow::anyhow!("seed: an item of {field} has no id"))?;
                let name = id.rsplit('/').next().unwrap_or("").to_string();
                {
                    let top = obj(&mut item);
                    top.entry("name").or_insert(json!(name));
                    top.entry("type")
                        .or_insert(json!(format!("Microsoft.Network/{}", kind.segment())));
                    top.entry("location").or_insert(json!("westus"));
                }
                {
                    let p = props(&mut item);
                    p.entry("provisioningState").or_insert(json!("Succeeded"));
                    p.entry("resourceGuid").or_insert(json!(new_guid()));
                }
                let child_arrays: &[(&str, &str)] = match kind {
                    Kind::Vnet => &[
                        ("subnets", "Microsoft.Network/virtualNetworks/subnets"),
                        (
                            "virtualNetworkPeerings",
                            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
                        ),
                    ],
                    Kind::RouteTable => &[("routes", "Microsoft.Network/routeTables/routes")],
                    Kind::Gateway => &[],
                    Kind::Nic => &[(
                        "ipConfigurations",
                        "Microsoft.Network/networkInterfaces/ipConfigurations",
                    )],
                };
                for (array, type_name) in child_arrays {
                    for child in prop_arr_mut(&mut item, array).iter_mut() {
                        let child_name = name_of(child).to_string();
                        let top = obj(child);
                        top.entry("id")
                            .or_insert(json!(format!("{id}/{array}/{child_name}")));
                        top.entry("type").or_insert(json!(type_name));
                        let p = props(child);
                        p.entry("provisioningState").or_insert(json!("Succeeded"));
                        if *array == "virtualNetworkPeerings" {
                            for flag in [
                                "allowVirtualNetworkAccess",
                                "allowForwardedTraffic",
                                "allowGatewayTransit",
                                "useRemoteGateways",
                            ] {
                                p.entry(flag)
                                    .or_insert(json!(flag == "allowVirtualNetworkAccess"));
                            }
                        }
                    }
                }
                restamp(&mut item, kind);
                let target = match kind {
                    Kind::Vnet => &mut vnets,
                    Kind::RouteTable => &mut tables,
                    Kind::Gateway => &mut gateways,
                    Kind::Nic => &mut nics,
                };
                target.insert(lower(&id), Res { body: item });
            }
        }
        self.vnets = vnets;
        self.tables = tables;
        self.gateways = gateways;
        self.nics = nics;
        self.route_results.clear();
        self.ops.clear();
        self.due.clear();
        self.in_flight.clear();
        self.locks.clear();
        // Peering states not given: Connected when the other side exists, else Initiated.
        let keys: Vec<String> = self.vnets.keys().cloned().collect();
        let mut states = Vec::new();
        for key in &keys {
            let Some(v) = self.vnets.get(key) else {
                continue;
            };
            for (i, p) in prop_arr(&v.body, "virtualNetworkPeerings")
                .iter()
                .enumerate()
            {
                if prop_str(p, "peeringState").is_some() {
                    continue;
                }
                let remote_key = prop_ref_id(p, "remoteVirtualNetwork")
                    .map(vnet_key_of)
                    .unwrap_or_default();
                let state = match self.vnets.get(&remote_key) {
                    None => "Disconnected",
                    Some(remote) => {
                        if prop_arr(&remote.body, "virtualNetworkPeerings")
                            .iter()
                            .any(|rp| {
                                prop_ref_id(rp, "remoteVirtualNetwork")
                                    .is_some_and(|id| vnet_key_of(id) == *key)
                            })
                        {
                            "Connected"
                        } else {
                            "Initiated"
                        }
                    }
                };
                states.push((key.clone(), i, state));
            }
        }
        for (key, i, state) in states {
            if let Some(v) = self.vnets.get_mut(&key) {
                if let Some(p) = prop_arr_mut(&mut v.body, "virtualNetworkPeerings").get_mut(i) {
                    props(p).insert("peeringState".into(), json!(state));
                }
            }
        }
        self.refresh_peerings(&keys.iter().cloned().collect(), true);
        // Subnets list the ip configurations of the gateways and NICs in them.
        let links: Vec<(String, String)> = self
            .gateways
            .values()
            .chain(self.nics.values())
            .flat_map(|g| {
                let gid = g
                    .body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                prop_arr(&g.body, "ipConfigurations")
                    .iter()
                    .filter_map(|c| {
                        let subnet = prop_ref_id(c, "subnet")?.to_string();
                        let cid = c
                            .get("id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{gid}/ipConfigurations/{}", name_of(c)));
                        Some((subnet, cid))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (subnet_id, config_id) in links {
            let vnet_key = vnet_key_of(&subnet_id);
            let subnet_name = subnet_id.rsplit('/').next().unwrap_or("").to_string();
            if let Some(v) = self.vnets.get_mut(&vnet_key) {
                if let Some(s) = find_child_mut(&mut v.body, ChildKind::Subnet, &subnet_name) {
                    let configs = prop_arr_mut(s, "ipConfigurations");
                    if !configs.iter().any(|c| {
                        c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|i| i.eq_ignore_ascii_case(&config_id))
                    }) {
                        configs.push(json!({"id": config_id}));
                    }
                }
                restamp(&mut v.body, Kind::Vnet);
            }
        }
        let table_keys: BTreeSet<String> = self.tables.keys().cloned().collect();
        self.rebuild_table_subnets(&table_keys);
        Ok(())
    }
}

/// The lower-case ids of a gateway's or NIC's ip configurations.
fn config_ids_of(body: &Value) -> Vec<String> {
    prop_arr(body, "ipConfigurations")
        .iter()
        .filter_map(|c| c.get("id").and_then(Value::as_str).map(lower))
        .collect()
}

/// The first IPv4 address of the subnet Azure would hand out (it reserves the network address,
/// the next three and the broadcast address) that is not `taken`; `None` for IPv6 or a full
/// subnet.
fn first_free_address(subnet: &Value, taken: &BTreeSet<String>) -> Option<String> {
    let prefix = prop_str(subnet, "addressPrefix")
        .map(str::to_string)
        .or_else(|| {
            prop_arr(subnet, "addressPrefixes")
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
        })?;
    let IpNet::V4(net) = IpNet::from_str(&prefix).ok()? else {
        return None;
    };
    let first = u32::from(net.network()).checked_add(4)?;
    let last = u32::from(net.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(|n| std::net::Ipv4Addr::from(n).to_string())
        .find(|a| !taken.contains(a))
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

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut x: Vec<String> = a.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut y: Vec<String> = b.iter().map(|s| s.to_ascii_lowercase()).collect();
    x.sort();
    y.sort();
    x == y
}

fn set_state(value: &mut Value, state: &str) {
    props(value).insert("provisioningState".into(), json!(state));
}

/// A new weak etag for a resource, shared by its embedded children (notes §3, §9).
fn restamp(body: &mut Value, kind: Kind) {
    let etag = new_etag();
    obj(body).insert("etag".into(), json!(etag));
    canonical_order(body);
    let arrays: &[&str] = match kind {
        Kind::Vnet => &["subnets", "virtualNetworkPeerings"],
        Kind::RouteTable => &["routes"],
        Kind::Gateway | Kind::Nic => &["ipConfigurations"],
    };
    for array in arrays {
        if let Some(Value::Array(items)) = obj(body)
            .get_mut("properties")
            .and_then(|p| p.get_mut(*array))
        {
            for item in items.iter_mut() {
                obj(item).insert("etag".into(), json!(etag));
                canonical_order(item);
            }
        }
    }
}

/// Puts the envelope keys first, in ARM's order (name, id, etag, type, location, tags, ...),
/// for resources and their embedded children.
fn canonical_order(body: &mut Value) {
    const FIRST: [&str; 6] = ["name", "id", "etag", "type", "location", "tags"];
    let map = obj(body);
    let mut old = std::mem::take(map);
    for key in FIRST {
        if let Some(value) = old.shift_remove(key) {
            map.insert(key.to_string(), value);
        }
    }
    map.extend(old);
}

fn find_child<'a>(parent: &'a Value, kind: ChildKind, name: &str) -> Option<&'a Value> {
    prop_arr(parent, kind.parent_array())
        .iter()
        .find(|c| name_of(c).eq_ignore_ascii_case(name))
}

fn find_child_mut<'a>(parent: &'a mut Value, kind: ChildKind, name: &str) -> Option<&'a mut Value> {
    prop_arr_mut(parent, kind.parent_array())
        .iter_mut()
        .find(|c| name_of(c).eq_ignore_ascii_case(name))
}

fn upsert_child(parent: &mut Value, kind: ChildKind, child: Value) {
    let items = prop_arr_mut(parent, kind.parent_array());
    let name = name_of(&child).to_string();
    match items
        .iter_mut()
        .find(|c| name_of(c).eq_ignore_ascii_case(&name))
    {
        Some(slot) => *slot = child,
        None => items.push(child),
    }
}

fn check_subnet_overlaps(subnets: &[Value]) -> Result<(), ArmError> {
    let mut seen: Vec<(String, IpNet)> = Vec::new();
    for s in subnets {
        let mut prefixes: Vec<String> = prop_str(s, "addressPrefix")
            .map(str::to_string)
            .into_iter()
            .collect();
        prefixes.extend(
            prop_arr(s, "addressPrefixes")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
        for net in nets(&prefixes) {
            if let Some((other, _)) = seen.iter().find(|(_, n)| overlaps(n, &net)) {
                return Err(ArmError::bad_request(
                    "NetcfgSubnetRangesOverlap",
                    format!("Subnet '{}' is not valid because its IP address range overlaps with that of an existing subnet '{other}' in virtual network.", name_of(s)),
                ));
            }
            seen.push((name_of(s).to_string(), net));
        }
    }
    Ok(())
}

fn check_subnet_deletable(subnet: &Value) -> Result<(), ArmError> {
    if let Some(first) = prop_arr(subnet, "ipConfigurations").first() {
        return Err(ArmError::bad_request(
            "InUseSubnetCannotBeDeleted",
            format!(
                "Subnet {} is in use by {} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                name_of(subnet),
                first.get("id").and_then(Value::as_str).unwrap_or("")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_prefixes_are_recognised() {
        assert_eq!(parse_prefix("10.0.0.0/16").map(|p| p.1), Some(true));
        assert_eq!(parse_prefix("10.0.0.1/16").map(|p| p.1), Some(false));
        assert!(parse_prefix("banana").is_none());
    }

    #[test]
    fn overlap_is_reported_with_the_inner_prefix() {
        let a = vec!["10.0.0.0/16".to_string()];
        let b = vec!["10.0.1.0/24".to_string(), "192.168.0.0/24".to_string()];
        assert_eq!(overlap_between(&a, &b).as_deref(), Some("10.0.1.0/24"));
        assert_eq!(overlap_between(&a, &["10.1.0.0/16".to_string()]), None);
    }

    #[test]
    fn vnet_key_of_children() {
        assert_eq!(
            vnet_key_of("/subscriptions/S/resourceGroups/R/providers/Microsoft.Network/virtualNetworks/V/subnets/GatewaySubnet"),
            "/subscriptions/s/resourcegroups/r/providers/microsoft.network/virtualnetworks/v"
        );
    }
}
