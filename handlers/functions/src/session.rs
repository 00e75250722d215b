//! The passes one slot of this process runs for a hub's work items, under the hub's lease
//! ([`crate::lease`]): take the lease or join the pass of the instance that holds it (leaving the
//! mark, trying the lease once more, queueing the mark's check), run the pass under the mark's id,
//! run at most one further pass for the marks other instances left, and let go, looking once more
//! for a mark left in between. `ReconcileHub` ([`crate::functions::reconcile_hub`]) turns what
//! this gives back into its outcome; the rules are in its module docs and in
//! `docs/operations.md`, "Several instances".
use std::sync::Mutex;

use hubspoke_arm::apply::ChangeOutcome;
use hubspoke_arm::client::RequestCounts;
use hubspoke_arm::observe::ObserveError;
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions, ReconcileResult};
use hubspoke_core::id::VnetId;

use crate::lease::{HeldLease, HubLeases};
use crate::outcome::now;
use crate::passes::SlotStart;
use crate::retries::retry_reason;
use crate::state::AppState;
use crate::work::{Reason, RequestedBy, WorkItem};

/// What one pass produced.
pub(crate) type PassResult = Result<ReconcileResult, ObserveError>;

/// One pass run by this instance.
#[derive(Debug)]
pub(crate) struct PassRun {
    pub id: String,
    pub instance: String,
    pub start_time: String,
    pub end_time: String,
    /// `held`, `lost` or `none`.
    pub lease: &'static str,
    /// Why the lease was lost, if it was.
    pub lost: Option<String>,
    /// The requests the pass sent, counted even when it was cut or could not observe.
    pub requests: RequestCounts,
    /// The pass's result, or what is known of it when it was cut at its hard end.
    pub result: Result<PassResult, Cut>,
}

/// A pass cut at its hard end ([`crate::timing`]): its reconcile stopped where it was.
#[derive(Debug)]
pub(crate) struct Cut {
    /// Why, with what had ended and what had not, as the outcome tells it.
    pub reason: String,
    /// The changes that had ended, in the order they ended.
    pub ended: Vec<ChangeOutcome>,
}

/// What the requests of one slot get.
#[derive(Debug)]
pub(crate) enum Session {
    /// This instance ran the pass (and at most one further pass for other instances' items);
    /// `leave_item`: a mark is left that it could not serve in time, for a new work item.
    Ran {
        first: Box<PassRun>,
        further: Vec<PassRun>,
        leave_item: bool,
    },
    /// Another instance holds the hub's lease: the request joined pass `pass_id` there;
    /// `check`: a check item must be queued (this request created the mark, or is the check of
    /// a holder still running).
    Elsewhere {
        pass_id: String,
        holder: Option<String>,
        check: bool,
    },
    /// A check item found no mark waiting: the pass it checks for ran.
    NothingWanted,
    /// The hub's lease could not be taken or read.
    Unavailable(String),
}

/// The passes a slot of this process runs for its requests (module docs).
pub(crate) async fn session(
    state: &AppState,
    hub: &VnetId,
    start: SlotStart,
    check: bool,
    event_resource: Option<&str>,
) -> Session {
    let Some(leases) = &state.leases else {
        let first = run_pass(state, hub, new_pass_id(), None, event_resource).await;
        return Session::Ran {
            first: Box::new(first),
            further: Vec::new(),
            leave_item: false,
        };
    };
    match leases.try_acquire(hub).await {
        Ok(Some(held)) => {
            if check {
                match leases.mark_waiting(hub).await {
                    Ok(true) => {}
                    Ok(false) => {
                        held.release().await;
                        return Session::NothingWanted;
                    }
                    Err(error) => {
                        held.release().await;
                        return Session::Unavailable(error.to_string());
                    }
                }
            }
            hold(state, leases, hub, held, &start, event_resource).await
        }
        Ok(None) => join_elsewhere(state, leases, hub, &start, check, event_resource).await,
        Err(error) => Session::Unavailable(error.to_string()),
    }
}

/// Queues the check of a mark: a work item visible once the hub's lease could have run out.
pub(crate) async fn queue_check_item(
    state: &AppState,
    hub: &VnetId,
    requested_by: RequestedBy,
) -> Result<Option<String>, String> {
    let Some(queue) = &state.work_queue else {
        return Ok(None);
    };
    let item = WorkItem::new(hub, Reason::Check, requested_by);
    let texts = hubspoke_queue::message::encoded_messages(
        &item.to_value(),
        hubspoke_queue::MessageEncoding::Base64,
    )
    .map_err(|e| e.to_string())?;
    let delay = crate::lease::LEASE_DURATION + std::time::Duration::from_secs(5);
    for text in texts {
        queue
            .send_text(&text, Some(delay))
            .await
            .map_err(|e| format!("cannot queue the check of the mark: {e}"))?;
    }
    Ok(Some(item.item_id))
}

/// The lease is held elsewhere: leave the mark, try the lease once more, else join.
async fn join_elsewhere(
    state: &AppState,
    leases: &HubLeases,
    hub: &VnetId,
    start: &SlotStart,
    check: bool,
    event_resource: Option<&str>,
) -> Session {
    let (pass_id, created) = match leases.mark(hub).await {
        Ok(mark) => mark,
        Err(error) => return Session::Unavailable(error.to_string()),
    };
    match leases.try_acquire(hub).await {
        Ok(Some(held)) => return hold(state, leases, hub, held, start, event_resource).await,
        Ok(None) => {}
        Err(error) => return Session::Unavailable(error.to_string()),
    }
    let holder = match leases.holder(hub).await {
        Ok(holder) => holder.and_then(|holder| holder.instance),
        Err(_) => None,
    };
    tracing::info!(%hub, pass = %pass_id, holder = ?holder, "the hub's lease is held elsewhere: joined its next pass");
    Session::Elsewhere {
        pass_id,
        holder,
        check: created || check,
    }
}

/// Runs passes while holding the hub's lease: the first, then at most one further pass for the
/// marks other instances left, then lets go (module docs).
async fn hold(
    state: &AppState,
    leases: &HubLeases,
    hub: &VnetId,
    held: HeldLease,
    start: &SlotStart,
    event_resource: Option<&str>,
) -> Session {
    let mut runs: Vec<PassRun> = Vec::new();
    let mut leave_item = false;
    let mut held = Some(held);
    // Whether this slot's requests can wait for one more pass.
    let may_run_more = |runs: &Vec<PassRun>| !start.waited && runs.len() < 2;
    while let Some(lease) = held.take() {
        let stopped = loop {
            let id = match leases.take_mark(hub).await {
                Ok(Some(id)) => id,
                Ok(None) => new_pass_id(),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the hub's mark: a pass runs under a new id");
                    new_pass_id()
                }
            };
            let run = run_pass(state, hub, id, Some(&lease), event_resource).await;
            let stops = run_stops(&run);
            runs.push(run);
            if stops || start.pending() {
                break stops;
            }
            match leases.mark_waiting(hub).await {
                Ok(true) if may_run_more(&runs) => continue,
                Ok(true) => leave_item = true,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot look for the hub's mark: a work item asks for one more pass");
                    leave_item = true;
                }
            }
            break false;
        };
        lease.release().await;
        // A mark left between the last look and the release: its joiner found the lease held.
        if stopped || leave_item || start.pending() {
            break;
        }
        match leases.mark_waiting(hub).await {
            Ok(false) => {}
            Ok(true) if !may_run_more(&runs) => leave_item = true,
            Ok(true) => match leases.try_acquire(hub).await {
                Ok(Some(again)) => held = Some(again),
                // Its holder looks for the mark before it lets go.
                Ok(None) => {}
                Err(_) => leave_item = true,
            },
            Err(_) => leave_item = true,
        }
    }
    let mut runs = runs.into_iter();
    match runs.next() {
        Some(first) => Session::Ran {
            first: Box::new(first),
            further: runs.collect(),
            leave_item,
        },
        None => Session::Unavailable("no pass ran".into()),
    }
}

/// Whether the holder must stop after `run`: its lease was lost, it was cut, it deferred
/// changes (its continuation takes the marks), or it failed (the retried item does).
fn run_stops(run: &PassRun) -> bool {
    run.lost.is_some()
        || match &run.result {
            Err(_) | Ok(Err(_)) => true,
            Ok(Ok(result)) => result.has_deferred() || retry_reason(result).is_some(),
        }
}

fn new_pass_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One pass, under the hub's lease when there is one, cut at its hard end.
async fn run_pass(
    state: &AppState,
    hub: &VnetId,
    id: String,
    lease: Option<&HeldLease>,
    event_resource: Option<&str>,
) -> PassRun {
    let instance = state.settings.instance_id.clone();
    let start_time = now();
    if let Some(lease) = lease {
        lease.name_holder(&instance, &id, &start_time).await;
    }
    let options = ReconcileOptions {
        only_hubs: Some(vec![hub.clone()]),
        halt: lease.map(HeldLease::halt),
        event_resource: event_resource.map(str::to_string),
        ..state.settings.reconcile.clone()
    };
    // Counted here and followed change by change, so that a cut pass still tells what it did.
    let arm = state.arm.with_own_counts();
    let ended: Mutex<(Vec<ChangeOutcome>, usize)> = Mutex::new((Vec::new(), 0));
    let follow = |change: &ChangeOutcome, _: usize, total: usize| {
        if let Ok(mut ended) = ended.lock() {
            ended.0.push(change.clone());
            ended.1 = total;
        }
    };
    let pass = reconcile(&arm, &state.settings.plan, &options, Some(&follow));
    let result = match state.settings.timing.hard_end {
        Some(hard_end) => match tokio::time::timeout(hard_end, pass).await {
            Ok(result) => Ok(result.map(|(result, _)| result)),
            Err(_) => {
                let (ended, total) = ended.into_inner().unwrap_or_default();
                Err(Cut {
                    reason: cut_reason(hard_end, ended.len(), total),
                    ended,
                })
            }
        },
        None => Ok(pass.await.map(|(result, _)| result)),
    };
    if let Some(lease) = lease {
        lease.confirm().await;
    }
    let lost = lease.and_then(HeldLease::lost);
    PassRun {
        id,
        instance,
        start_time,
        end_time: now(),
        lease: match (lease, &lost) {
            (None, _) => "none",
            (Some(_), Some(_)) => "lost",
            (Some(_), None) => "held",
        },
        lost,
        requests: arm.counts(),
        result,
    }
}

/// Why a pass was cut at `hard_end`, `ended` of its `total` changes having ended.
fn cut_reason(hard_end: std::time::Duration, ended: usize, total: usize) -> String {
    let progress = if ended == 0 {
        "no change of it had ended (those it had started were still in flight)".to_string()
    } else if ended == total {
        format!("its {total} changes had ended (listed)")
    } else {
        format!(
            "{ended} of its {total} changes had ended (listed), the {} others were still in \
             flight or not started",
            total - ended
        )
    };
    format!(
        "the pass was still running {} s after it began, its hard end ((functionTimeout - {} s) \
         / 2): {progress}; it stopped waiting for its operations, which go on in Azure; the \
         retried work item observes them",
        hard_end.as_secs(),
        crate::timing::STORAGE_MARGIN.as_secs()
    )
}

/// A pass that observes and plans the hub and writes nothing (a Backfill dry run's work item):
/// it needs no lease and answers only its own request.
pub(crate) async fn plan_only(
    state: &AppState,
    hub: &VnetId,
    event_resource: Option<String>,
) -> Session {
    let instance = state.settings.instance_id.clone();
    let start_time = now();
    let options = ReconcileOptions {
        only_hubs: Some(vec![hub.clone()]),
        event_resource,
        dry_run: true,
        ..state.settings.reconcile.clone()
    };
    let arm = state.arm.with_own_counts();
    let result = reconcile(&arm, &state.settings.plan, &options, None)
        .await
        .map(|(result, _)| result);
    Session::Ran {
        first: Box::new(PassRun {
            id: new_pass_id(),
            instance,
            start_time,
            end_time: now(),
            lease: "none",
            lost: None,
            requests: arm.counts(),
            result: Ok(result),
        }),
        further: Vec::new(),
        leave_item: false,
    }
}
