//! Apply: execute one hub's plan exactly as written.
//!
//! # Guarantees
//! - Every change of phase 0 has finished (succeeded or failed) before any change of phase 1
//!   starts; within a phase a change starts once every change it depends on has succeeded, and
//!   is skipped, with the reason, when one of them did not.
//! - Independent changes run in parallel, and never two writes to the peerings and subnets of one
//!   VNet, or to the routes of one table, at the same time (Azure locks the parent while a child
//!   is written and refuses concurrent writes). A write also waits for the resources it
//!   references: a peering for its remote VNet, a subnet for the route table it is given (Azure
//!   refuses a write that references a resource being updated,
//!   `ReferencedResourceNotProvisioned`).
//! - How many changes are in flight is not fixed: every change whose turn has come starts, and
//!   the client's pacer sends its requests as fast as each subscription's budget allows
//!   (`client.rs`, `pacer.rs`). `concurrency`, when given, is an upper bound on changes in flight.
//!   When the budget is short, the change with the longest chain of changes waiting behind it is
//!   sent first, so that the dependency chains that bound the pass are never held up by the many
//!   changes nothing waits for.
//! - Every change is attempted; a failure is recorded with its ARM error and the others go on.
//! - With a deadline (a pass that must end within the Functions host's timeout), no change
//!   starts after it: what has not started is reported `Deferred`, for the next pass. The changes
//!   ready when the plan begins always start, so that every pass makes progress; changes in
//!   flight at the deadline run to their end (a long-running operation is never abandoned
//!   half-way).
//! - With a [`Halt`] (the pass lost what entitled it to write, e.g. its hub's lease), no change
//!   starts once it is set, not even those ready at the start: what has not started is
//!   reported `Deferred` with the halt's reason. Changes in flight run to their end.
//! - A subnet is re-read right before its PUT and written exactly as read with only
//!   `routeTable` set; if it changed since the plan was made, the change is skipped and the
//!   next pass re-plans.
//!
//! # Assumptions
//! - Writes are idempotent: re-running a change that already took effect (another instance of
//!   hubspoke, a retried pass) does no harm. Routes are written one by one through the
//!   `routes` sub-resource, never by a whole-table PUT that would race with the table's owner.
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use hubspoke_core::plan::{Action, Change, HubPlan};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::ArmClient;
use crate::error::ArmError;

/// How a change ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Written (or found already done).
    Applied,
    /// Not sent because a dry run only plans.
    Planned,
    /// Azure refused it or it kept failing.
    Failed { error: ArmError },
    /// Not sent, with why.
    Skipped { reason: String },
    /// Not started because the pass reached its time limit; the next pass continues.
    Deferred { reason: String },
}

/// One change of the plan and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeOutcome {
    #[serde(flatten)]
    pub change: Change,
    #[serde(flatten)]
    pub status: ChangeStatus,
    pub duration_ms: u64,
}

impl ChangeOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self.status, ChangeStatus::Applied)
    }
}

/// Progress reports while a plan runs: (the change that ended, how many ended, how many in all).
pub type Progress<'a> = &'a (dyn Fn(&ChangeOutcome, usize, usize) + Send + Sync);

/// When a plan's changes may start.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// At most this many changes in flight at once; `None`: as many as the pacer allows.
    pub concurrency: Option<usize>,
    /// No change starts after this instant but those ready at the start (module docs).
    pub deadline: Option<Instant>,
    /// No change starts once this is set (module docs).
    pub halt: Option<Halt>,
}

/// A signal that a pass must start no further change, with why; set from another task (the
/// renewal of a lease). Cheap to clone; every clone sees the same signal.
#[derive(Debug, Clone, Default)]
pub struct Halt(std::sync::Arc<std::sync::OnceLock<String>>);

impl Halt {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the signal with its reason (the first reason stays).
    pub fn halt(&self, reason: impl Into<String>) {
        let _ = self.0.set(reason.into());
    }

    /// Why the pass must stop, once set.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Runs `plan`'s changes against ARM within `limits`.
pub async fn apply(
    client: &ArmClient,
    plan: &HubPlan,
    limits: Limits,
    progress: Option<Progress<'_>>,
) -> Vec<ChangeOutcome> {
    let total = plan.changes.len();
    let mut outcomes: Vec<Option<ChangeOutcome>> = vec![None; total];
    let limit = limits.concurrency.unwrap_or(usize::MAX).max(1);
    let mut started_any = false;
    let (keys, key_count) = interned_lock_keys(plan);
    let priorities = chain_lengths(plan);
    let mut busy = vec![false; key_count];
    let mut done = 0;
    for phase in [0u8, 1] {
        let ids: Vec<usize> = plan
            .changes
            .iter()
            .filter(|c| c.phase == phase)
            .map(|c| c.id)
            .collect();
        let mut waiting: BTreeSet<usize> = ids.iter().copied().collect();
        let mut running = JoinSet::new();
        loop {
            // Skip what can no longer run, start what can, in plan order.
            let mut started_or_skipped = true;
            while started_or_skipped {
                started_or_skipped = false;
                let candidates: Vec<usize> = waiting.iter().copied().collect();
                let past_deadline =
                    started_any && limits.deadline.is_some_and(|d| Instant::now() >= d);
                let halted = limits.halt.as_ref().and_then(Halt::reason);
                for id in candidates {
                    let change = &plan.changes[id];
                    let failed_dependency = change.depends_on.iter().find(|d| {
                        outcomes[**d].as_ref().is_some_and(|o| {
                            matches!(
                                o.status,
                                ChangeStatus::Failed { .. } | ChangeStatus::Skipped { .. }
                            )
                        })
                    });
                    let status = match failed_dependency {
                        Some(dependency) => Some(ChangeStatus::Skipped {
                            reason: format!("change #{dependency} it depends on did not succeed"),
                        }),
                        None if halted.is_some() => Some(ChangeStatus::Deferred {
                            reason: format!(
                                "not started: {}; the next pass continues",
                                halted.unwrap_or_default()
                            ),
                        }),
                        None if past_deadline => Some(ChangeStatus::Deferred {
                            reason: "not started: the pass reached its time limit; the next \
                                     pass continues"
                                .into(),
                        }),
                        None => None,
                    };
                    if let Some(status) = status {
                        waiting.remove(&id);
                        let outcome = ChangeOutcome {
                            change: change.clone(),
                            status,
                            duration_ms: 0,
                        };
                        done += 1;
                        if let Some(report) = progress {
                            report(&outcome, done, total);
                        }
                        outcomes[id] = Some(outcome);
                        started_or_skipped = true;
                        continue;
                    }
                    let ready = change.depends_on.iter().all(|d| outcomes[*d].is_some());
                    let free = keys[id].iter().all(|key| !busy[*key]);
                    if ready && free && running.len() < limit {
                        waiting.remove(&id);
                        started_any = true;
                        for key in &keys[id] {
                            busy[*key] = true;
                        }
                        let client = client.with_priority(priorities[id]);
                        let change = change.clone();
                        running.spawn(
                            async move {
                                let start = Instant::now();
                                let status = execute(&client, &change).await;
                                ChangeOutcome {
                                    change,
                                    status,
                                    duration_ms: u64::try_from(start.elapsed().as_millis())
                                        .unwrap_or(u64::MAX),
                                }
                            }
                            // The caller's span (an invocation, a hub) goes with the task.
                            .in_current_span(),
                        );
                        started_or_skipped = true;
                    }
                }
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let Ok(outcome) = joined else {
                // A panicking task is a bug; the change it ran is reported as failed below.
                continue;
            };
            let id = outcome.change.id;
            for key in &keys[id] {
                busy[*key] = false;
            }
            done += 1;
            if let Some(report) = progress {
                report(&outcome, done, total);
            }
            outcomes[id] = Some(outcome);
        }
        // Anything left waiting could not start (a task that panicked): report it.
        for id in ids {
            if outcomes[id].is_none() {
                outcomes[id] = Some(ChangeOutcome {
                    change: plan.changes[id].clone(),
                    status: ChangeStatus::Skipped {
                        reason: "the change could not be run (internal error)".into(),
                    },
                    duration_ms: 0,
                });
            }
        }
    }
    outcomes.into_iter().flatten().collect()
}

/// Each change's lock keys ([`lock_keys`]) as small numbers, and how many keys there are: the
/// executor checks them for every waiting change each time a change ends.
fn interned_lock_keys(plan: &HubPlan) -> (Vec<Vec<usize>>, usize) {
    let mut numbers: HashMap<String, usize> = HashMap::new();
    let keys = plan
        .changes
        .iter()
        .map(|change| {
            lock_keys(&change.action)
                .into_iter()
                .map(|key| {
                    let next = numbers.len();
                    *numbers.entry(key).or_insert(next)
                })
                .collect()
        })
        .collect();
    (keys, numbers.len())
}

/// For each change, the number of changes on the longest chain that starts with it: itself, what
/// depends on it, what depends on that, ... A change of phase 0 comes before every change of
/// phase 1. The pacer sends the longest chains first when a subscription's budget is short.
pub fn chain_lengths(plan: &HubPlan) -> Vec<u32> {
    let count = plan.changes.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for change in &plan.changes {
        for dependency in &change.depends_on {
            if let Some(list) = dependents.get_mut(*dependency) {
                list.push(change.id);
            }
        }
    }
    let mut lengths = vec![1u32; count];
    // A change comes after the changes it depends on, so dependents have larger ids.
    for id in (0..count).rev() {
        let longest = dependents[id]
            .iter()
            .filter(|dependent| **dependent > id)
            .map(|dependent| lengths[*dependent])
            .max()
            .unwrap_or(0);
        lengths[id] = 1 + longest;
    }
    let longest_of_phase_1 = plan
        .changes
        .iter()
        .filter(|c| c.phase == 1)
        .map(|c| lengths[c.id])
        .max()
        .unwrap_or(0);
    for change in plan.changes.iter().filter(|c| c.phase == 0) {
        lengths[change.id] = lengths[change.id].max(1 + longest_of_phase_1);
    }
    lengths
}

/// What Azure locks, or must find settled, while the change is written: the VNet of a peering
/// or subnet, the table of a route (or the table itself), and what the write references (a
/// peering's remote VNet, a subnet's new route table). Lower-cased, as ARM compares ids. Two
/// changes sharing a key never run at once.
pub fn lock_keys(action: &Action) -> Vec<String> {
    let mut keys = match action {
        Action::UpsertRoute { target, .. } | Action::DeleteRoute { target, .. } => {
            vec![target.route_table().to_string()]
        }
        Action::CreateRouteTable { target, .. } => vec![target.to_string()],
        Action::AssociateRouteTable {
            target,
            route_table,
            ..
        } => vec![target.vnet().to_string(), route_table.to_string()],
        other => {
            let mut keys: Vec<String> = other.vnet().map(ToString::to_string).into_iter().collect();
            keys.extend(other.remote_vnet().map(|vnet| vnet.to_string()));
            if keys.is_empty() {
                keys.push(other.target());
            }
            keys
        }
    };
    for key in &mut keys {
        key.make_ascii_lowercase();
    }
    keys
}

/// Records every change of `plan` as planned, for a dry run.
pub fn planned(plan: &HubPlan) -> Vec<ChangeOutcome> {
    plan.changes
        .iter()
        .map(|change| ChangeOutcome {
            change: change.clone(),
            status: ChangeStatus::Planned,
            duration_ms: 0,
        })
        .collect()
}

async fn execute(client: &ArmClient, change: &Change) -> ChangeStatus {
    let target = change.action.target();
    let result = match &change.action {
        Action::AssociateRouteTable {
            route_table,
            subnet_as_read,
            ..
        } => {
            // Re-read: the PUT replaces the whole subnet, so it must carry what is there now.
            let current = match client.get(&target).await {
                Ok(current) => current,
                Err(error) => return ChangeStatus::Failed { error },
            };
            let already = current["properties"]["routeTable"]["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(&route_table.to_string()));
            if already {
                tracing::info!(change = "associate_route_table", resource_id = %target, "already associated");
                return ChangeStatus::Applied;
            }
            if writable_view(&current) != writable_view(subnet_as_read) {
                return ChangeStatus::Skipped {
                    reason: "the subnet changed since the plan was made; the next pass re-plans"
                        .into(),
                };
            }
            let mut body = current;
            body["properties"]["routeTable"] = serde_json::json!({ "id": route_table.to_string() });
            let result = client.put_and_wait(&target, None, &body).await;
            if let Err(error) = &result {
                if error.kind == crate::error::ErrorKind::Refused {
                    // Azure names the one action it missed; the others it checks are these.
                    let needed = crate::subnet_links::required_actions(&body);
                    tracing::warn!(resource_id = %target, needed = ?needed, "a subnet PUT is checked for the join of everything it references");
                }
            }
            result
        }
        Action::DeleteRoute { .. } => client.delete(&target).await,
        action => match action.request_body() {
            Some(body) => {
                client
                    .put_and_wait(&target, action.extra_query(), &body)
                    .await
            }
            None => Err(ArmError {
                kind: crate::error::ErrorKind::Rejected,
                status: None,
                code: "NoRequestBody".into(),
                message: "the change has no request body".into(),
                method: "PUT".into(),
                url: target.clone(),
            }),
        },
    };
    match result {
        Ok(()) => {
            tracing::info!(change = change.action.kind(), resource_id = %target, "applied");
            ChangeStatus::Applied
        }
        Err(error) => {
            tracing::warn!(change = change.action.kind(), resource_id = %target, code = %error.code, "failed");
            ChangeStatus::Failed { error }
        }
    }
}

/// What of a subnet a PUT carries: everything but the etag and the read-only properties that
/// change by themselves (provisioning state, the NICs and endpoints attached).
fn writable_view(subnet: &Value) -> Value {
    let mut view = subnet.clone();
    if let Some(object) = view.as_object_mut() {
        object.remove("etag");
    }
    if let Some(properties) = view.get_mut("properties").and_then(Value::as_object_mut) {
        for read_only in [
            "provisioningState",
            "ipConfigurations",
            "ipConfigurationProfiles",
            "privateEndpoints",
            "resourceNavigationLinks",
            "serviceAssociationLinks",
            "purpose",
        ] {
            properties.remove(read_only);
        }
    }
    view
}
