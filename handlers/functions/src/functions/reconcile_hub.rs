//! `ReconcileHub` (queue trigger on `hubspoke-work`): one pass over the hub of a work item.
//!
//! Items for a hub already being reconciled in this process collapse into one more pass
//! ([`crate::passes`]). Every configured hub is planned (a spoke peered with two hubs is a
//! conflict only both reveal), only the item's hub is applied.
//!
//! # One pass per hub across instances
//! A pass holds its hub's lease ([`crate::lease`]) from before it observes until after its last
//! write. An item that finds the lease held by another instance leaves the mark that one more
//! pass is wanted, tries the lease once more (it may just have been let go), and succeeds as
//! `joined`, naming the pass that will answer it; the item that created the mark also queues a
//! check, visible once the lease could have run out, which runs the pass if the mark is still
//! waiting then (its holder died) and otherwise ends `ignored`. The holder, before it lets go,
//! looks for the mark and runs the pass it asks for — at most one further pass, and none when its own requests
//! already waited for a pass in this process; a mark it cannot serve in time gets a work item
//! of its own. Without blob storage (the handler run on its own) passes are coordinated in this
//! process only.
//!
//! # Error policy
//! - A failure a retry could fix (ARM still throttling or failing after the client's own
//!   retries, a subnet that changed under the pass, an observation that could not finish, the
//!   hub's lease lost or out of reach, a pass cut at its hard end) fails the invocation: the
//!   queue hands the item out again, and after five attempts moves it to
//!   `hubspoke-work-poison`. Its outcome is written all the same (the adapter's sink).
//! - A permanent one (a refusal: RBAC, policy, lock; a rejection: a limit, a validation) succeeds,
//!   with the failure in the outcome: retrying would only repeat the refusal.
//! - A message that is not a work item, or names a hub not in `HUBSPOKE_HUBS`, is `rejected`.
//!
//! # Time
//! A pass starts no change after `HUBSPOKE_PASS_TIME_LIMIT_SECONDS`; what it did not start is
//! `deferred`, the outcome says `continued`, and the invocation queues a work item for the same
//! hub: the next pass observes afresh and goes on. A pass still running at its hard end
//! ([`crate::timing`]) is cut. An invocation waits for at most two passes, so it answers within
//! `functionTimeout` (whose expiry would restart the handler and fail every invocation in
//! flight).
use std::collections::BTreeMap;

use hubspoke_arm::apply::{ChangeOutcome, ChangeStatus};
use hubspoke_core::id::VnetId;

use super::{hub_records, observe_error, skipped_reads};
use crate::envelope::QueueInput;
use crate::invocation::{Failure, Invocation, Reply};
use crate::outcome::{
    ChangeRecord, ErrorRecord, HubRecord, MessageRef, Outcome, PassInfo, PassRecord, Status,
};
use crate::passes::SlotStart;
use crate::retries::{observation_may_recover, retry_reason};
use crate::session::{plan_only, queue_check_item, session, PassRun, Session};
use crate::state::AppState;
use crate::work::{Reason, RequestedBy, WorkItem};

pub async fn run(invocation: Invocation<QueueInput>, state: AppState) -> Result<Reply, Failure> {
    let Invocation {
        id: invocation_id,
        input,
        mut outcome,
    } = invocation;
    let mut message = MessageRef {
        id: input.id.clone(),
        dequeue_count: input.dequeue_count,
        work_item: None,
    };
    let decoded = WorkItem::decode(&input.message);
    if let Ok((item, _)) = &decoded {
        message.work_item = Some(item.item_id.clone());
    }
    outcome.trigger.message = Some(message);
    let (hub, check, dry_run, event_resource) = match decoded {
        Ok((item, hub)) => {
            // The resource of the event that asked for the pass: its subscription is read too.
            let event_resource = (item.reason == Reason::Event)
                .then(|| item.requested_by.subject.clone())
                .flatten();
            (
                hub,
                item.reason == Reason::Check,
                item.dry_run,
                event_resource,
            )
        }
        Err(error) => {
            outcome.reject("invalid_work_item", error.to_string());
            return Ok(Reply::outcome(outcome));
        }
    };
    if !state.settings.plan.hubs.contains(&hub) {
        outcome.reject(
            "hub_not_configured",
            format!(
                "hub {hub} is not in HUBSPOKE_HUBS: a work item may only name a configured hub"
            ),
        );
        return Ok(Reply::outcome(outcome));
    }

    let session_state = state.clone();
    let session_hub = hub.clone();
    let joined = if dry_run {
        // A plan only writes nothing: it joins no pass (passes write) and needs no lease.
        crate::passes::Joined {
            pass_id: String::new(),
            shared: false,
            result: Ok(std::sync::Arc::new(
                plan_only(&state, &hub, event_resource).await,
            )),
        }
    } else if check {
        // A check runs outside the slots: it must not answer for other requests (it may end
        // without a pass). The lease keeps it from running beside a pass of this process.
        let session = session(&state, &hub, SlotStart::alone(), true, None).await;
        crate::passes::Joined {
            pass_id: String::new(),
            shared: false,
            result: Ok(std::sync::Arc::new(session)),
        }
    } else {
        state
            .passes
            .run(&hub, move |start| async move {
                session(
                    &session_state,
                    &session_hub,
                    start,
                    false,
                    event_resource.as_deref(),
                )
                .await
            })
            .await
    };
    let session = match joined.result {
        Ok(session) => session,
        Err(message) => {
            outcome.pass = Some(PassInfo {
                id: joined.pass_id,
                shared: joined.shared,
                instance: Some(state.settings.instance_id.clone()),
                start_time: None,
                end_time: None,
                elsewhere: false,
                lease: None,
            });
            outcome.fail(ErrorRecord::new("internal_error", message.clone()));
            return Err(Failure { outcome, message });
        }
    };
    let requested_by = || RequestedBy {
        function: "ReconcileHub".into(),
        invocation_id: invocation_id.clone(),
        event_id: None,
        subject: None,
    };
    match session.as_ref() {
        Session::Unavailable(message) => {
            let message = format!("the hub's lease is out of reach: {message}");
            outcome.fail(ErrorRecord::new("lease_unavailable", message.clone()));
            Err(Failure { outcome, message })
        }
        Session::NothingWanted => {
            outcome.ignore("a check: the pass it stood for ran (no mark of the hub is waiting)");
            Ok(Reply::outcome(outcome))
        }
        Session::Elsewhere {
            pass_id,
            holder,
            check: queue_check,
        } => {
            if *queue_check {
                match queue_check_item(&state, &hub, requested_by()).await {
                    Ok(item) => outcome.work_items.extend(item),
                    Err(message) => {
                        outcome.fail(ErrorRecord::new("check_not_queued", message.clone()));
                        return Err(Failure { outcome, message });
                    }
                }
            }
            outcome.pass = Some(PassInfo {
                id: pass_id.clone(),
                shared: true,
                instance: holder.clone(),
                start_time: None,
                end_time: None,
                elsewhere: true,
                lease: None,
            });
            outcome.hubs.push(HubRecord::bare(
                hub.to_string(),
                Status::Joined,
                Some(format!(
                    "another instance{} holds the hub's lease: pass {pass_id}, which it runs \
                     next, answers this work item",
                    holder
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )),
            ));
            Ok(Reply::outcome(outcome))
        }
        Session::Ran {
            first,
            further,
            leave_item,
        } => {
            outcome.pass = Some(PassInfo {
                id: first.id.clone(),
                shared: joined.shared,
                instance: Some(first.instance.clone()),
                start_time: Some(first.start_time.clone()),
                end_time: Some(first.end_time.clone()),
                elsewhere: false,
                lease: Some(first.lease),
            });
            outcome.further_passes = further.iter().map(pass_record).collect();
            let retry = first_pass(&hub, first, &mut outcome).or_else(|| {
                further.iter().find_map(|run| {
                    retry_of_run(run).map(|why| format!("further pass {}: {why}", run.id))
                })
            });
            if let Some(message) = retry {
                return Err(Failure { outcome, message });
            }
            let mut reply = Reply::outcome(outcome);
            // The request that ran the passes continues them; those that shared them need not.
            if !joined.shared {
                let deferred = std::iter::once(first.as_ref())
                    .chain(further)
                    .any(|run| matches!(&run.result, Ok(Ok(result)) if result.has_deferred()));
                if deferred {
                    reply
                        .work
                        .push(WorkItem::new(&hub, Reason::Continuation, requested_by()));
                } else if *leave_item {
                    reply
                        .work
                        .push(WorkItem::new(&hub, Reason::Wanted, requested_by()));
                }
            }
            Ok(reply)
        }
    }
}

/// Fills `outcome` with the first pass's result; why the invocation must fail, if it must.
fn first_pass(hub: &VnetId, run: &PassRun, outcome: &mut Outcome) -> Option<String> {
    outcome.requests = run.requests;
    let result = match &run.result {
        Err(cut) => {
            let record = ErrorRecord::new("pass_cut", cut.reason.clone());
            let mut hub_record =
                HubRecord::bare(hub.to_string(), Status::Failed, Some(cut.reason.clone()));
            hub_record.changes = cut.ended.iter().map(ChangeRecord::from_outcome).collect();
            outcome.hubs.push(hub_record);
            outcome.fail(record);
            return Some(cut.reason.clone());
        }
        Ok(result) => result,
    };
    match result {
        Err(error) => {
            let record = observe_error(error);
            let mut hub_record = HubRecord::bare(
                hub.to_string(),
                Status::Failed,
                Some("the estate could not be observed".into()),
            );
            hub_record.errors.push(record.clone());
            outcome.hubs.push(hub_record);
            outcome.fail(record);
            if observation_may_recover(error) {
                return Some(format!("observing the estate failed: {error}"));
            }
            run.lost.clone()
        }
        Ok(result) => {
            outcome.dry_run = result.dry_run;
            outcome.hubs = hub_records(result);
            outcome.errors.extend(skipped_reads(result));
            if let Some(lost) = &run.lost {
                outcome
                    .errors
                    .push(ErrorRecord::new("lease_lost", lost.clone()));
                outcome.status = Status::Failed;
                outcome.reason = Some(lost.clone());
                return Some(lost.clone());
            }
            outcome.settle_status();
            retry_reason(result)
        }
    }
}

/// Why a further pass asks for its invocation to be tried again, if it does.
fn retry_of_run(run: &PassRun) -> Option<String> {
    match &run.result {
        Err(cut) => Some(cut.reason.clone()),
        Ok(Err(error)) if observation_may_recover(error) => {
            Some(format!("observing the estate failed: {error}"))
        }
        Ok(Err(_)) => run.lost.clone(),
        Ok(Ok(result)) => run.lost.clone().or_else(|| retry_reason(result)),
    }
}

/// The outcome's record of a further pass.
fn pass_record(run: &PassRun) -> PassRecord {
    let mut changes_by_status = BTreeMap::new();
    let (status, error) = match &run.result {
        Err(cut) => {
            for change in &cut.ended {
                count_change(&mut changes_by_status, change);
            }
            (
                Status::Failed,
                Some(ErrorRecord::new("pass_cut", cut.reason.clone())),
            )
        }
        Ok(Err(error)) => (Status::Failed, Some(observe_error(error))),
        Ok(Ok(result)) => {
            for change in result.hubs.iter().flat_map(|hub| &hub.changes) {
                count_change(&mut changes_by_status, change);
            }
            let status = hub_records(result)
                .iter()
                .map(|hub| hub.status)
                .max()
                .unwrap_or(Status::Unchanged);
            (
                status,
                run.lost
                    .clone()
                    .map(|lost| ErrorRecord::new("lease_lost", lost)),
            )
        }
    };
    PassRecord {
        id: run.id.clone(),
        instance: run.instance.clone(),
        start_time: run.start_time.clone(),
        end_time: run.end_time.clone(),
        status,
        lease: run.lease,
        requests: run.requests,
        changes_by_status,
        error,
    }
}

/// Counts `change` under its status in a pass's `changes_by_status`.
fn count_change(changes_by_status: &mut BTreeMap<String, usize>, change: &ChangeOutcome) {
    let status = match change.status {
        ChangeStatus::Applied => "applied",
        ChangeStatus::Planned => "planned",
        ChangeStatus::Failed { .. } => "failed",
        ChangeStatus::Skipped { .. } => "skipped",
        ChangeStatus::Deferred { .. } => "deferred",
    };
    *changes_by_status.entry(status.to_string()).or_insert(0) += 1;
}
