//! `ReconcileHub` (queue trigger on `hubspoke-work`): one pass over the hub of a work item.
//!
//! Items for a hub already being reconciled in this process collapse into one more pass
//! ([`crate::passes`]). Every configured hub is planned (a spoke peered with two hubs is a
//! conflict only both reveal), only the item's hub is applied.
//!
//! # Error policy
//! - A failure a retry could fix (ARM still throttling or failing after the client's own
//!   retries, a subnet that changed under the pass, an observation that could not finish) fails
//!   the invocation: the queue hands the item out again, and after five attempts moves it to
//!   `hubspoke-work-poison`. Its outcome is written all the same (the adapter's sink).
//! - A permanent one (a refusal: RBAC, policy, lock; a rejection: a limit, a validation) succeeds,
//!   with the failure in the outcome: retrying would only repeat the refusal.
//! - A message that is not a work item, or names a hub not in `HUBSPOKE_HUBS`, is `rejected`.
//!
//! # Time limit
//! A pass starts no change after `HUBSPOKE_PASS_TIME_LIMIT_SECONDS` (20 minutes by default; a
//! first reconcile of hundreds of spokes takes hours, because Azure writes a hub's peerings one
//! at a time). What it did not start is `deferred`, the outcome says `continued`, and the
//! invocation queues a work item for the same hub to `hubspoke-work`: the next pass observes
//! afresh and goes on. So an invocation always ends well within `functionTimeout` (whose expiry
//! would restart the handler and fail every invocation in flight), and none of it counts as a
//! failed attempt towards the poison queue.
use std::collections::BTreeSet;

use hubspoke_arm::apply::ChangeStatus;
use hubspoke_arm::error::ErrorKind;
use hubspoke_arm::observe::ObserveError;
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions, ReconcileResult};
use hubspoke_core::id::VnetId;

use super::{hub_records, observe_error, skipped_reads};
use crate::envelope::QueueInput;
use crate::invocation::{Failure, Invocation, Reply};
use crate::outcome::{ErrorRecord, HubRecord, MessageRef, PassInfo, Status};
use crate::state::AppState;
use crate::work::{Reason, RequestedBy, WorkItem};

/// What one pass produced.
type PassResult = Result<ReconcileResult, ObserveError>;

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
    let (dry_run, hub, event_resource) = match decoded {
        Ok((item, hub)) => {
            // The resource of the event that asked for the pass: its subscription is read too.
            let event_resource = (item.reason == Reason::Event)
                .then(|| item.requested_by.subject.clone())
                .flatten();
            (item.dry_run, hub, event_resource)
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

    let joined = if dry_run {
        // A plan only writes nothing: it joins no pass (passes write) and needs no turn.
        crate::passes::Joined {
            pass_id: uuid::Uuid::new_v4().to_string(),
            shared: false,
            result: Ok(std::sync::Arc::new(
                plan_only(&state, hub.clone(), event_resource).await,
            )),
        }
    } else {
        let pass_state = state.clone();
        let pass_hub = hub.clone();
        state
            .passes
            .run(&hub, move || async move {
                pass(&pass_state, pass_hub, event_resource).await
            })
            .await
    };
    outcome.pass = Some(PassInfo {
        id: joined.pass_id,
        shared: joined.shared,
    });
    let result = match joined.result {
        Ok(result) => result,
        Err(message) => {
            outcome.fail(ErrorRecord::new("internal_error", message.clone()));
            return Err(Failure { outcome, message });
        }
    };
    match result.as_ref() {
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
                let message = format!("observing the estate failed: {error}");
                return Err(Failure { outcome, message });
            }
            Ok(Reply::outcome(outcome))
        }
        Ok(result) => {
            outcome.dry_run = result.dry_run;
            outcome.requests = result.requests;
            outcome.hubs = hub_records(result);
            outcome.errors.extend(skipped_reads(result));
            outcome.settle_status();
            if let Some(message) = retry_reason(result) {
                return Err(Failure { outcome, message });
            }
            let mut reply = Reply::outcome(outcome);
            // The request that ran the pass continues it; those that shared it need not.
            if result.has_deferred() && !joined.shared {
                reply.work.push(WorkItem::new(
                    &hub,
                    Reason::Continuation,
                    RequestedBy {
                        function: "ReconcileHub".into(),
                        invocation_id,
                        event_id: None,
                        subject: None,
                    },
                ));
            }
            Ok(reply)
        }
    }
}

async fn pass(state: &AppState, hub: VnetId, event_resource: Option<String>) -> PassResult {
    let options = ReconcileOptions {
        only_hubs: Some(vec![hub]),
        event_resource,
        ..state.settings.reconcile.clone()
    };
    reconcile(&state.arm, &state.settings.plan, &options, None)
        .await
        .map(|(result, _)| result)
}

/// A pass that observes and plans the hub, and writes nothing.
async fn plan_only(state: &AppState, hub: VnetId, event_resource: Option<String>) -> PassResult {
    let options = ReconcileOptions {
        only_hubs: Some(vec![hub]),
        event_resource,
        dry_run: true,
        ..state.settings.reconcile.clone()
    };
    reconcile(&state.arm, &state.settings.plan, &options, None)
        .await
        .map(|(result, _)| result)
}

/// Whether a retry may get further than this observation did.
fn observation_may_recover(error: &ObserveError) -> bool {
    match error {
        ObserveError::Arm(error) => !matches!(
            error.kind,
            ErrorKind::Refused | ErrorKind::Rejected | ErrorKind::NotFound
        ),
        ObserveError::Shape { .. } => false,
    }
}

/// Why the pass should run again soon, if it should: a change failed in a way a retry may fix,
/// or was skipped for a reason other than depending on a change refused for good.
pub(crate) fn retry_reason(result: &ReconcileResult) -> Option<String> {
    for hub in &result.hubs {
        let permanent: BTreeSet<usize> = hub
            .changes
            .iter()
            .filter(|outcome| match &outcome.status {
                ChangeStatus::Failed { error } => is_permanent(error.kind),
                _ => false,
            })
            .map(|outcome| outcome.change.id)
            .collect();
        // Changes that (transitively) wait for a permanent failure cannot get further either.
        let mut blocked = permanent.clone();
        for outcome in &hub.changes {
            if outcome
                .change
                .depends_on
                .iter()
                .any(|dependency| blocked.contains(dependency))
            {
                blocked.insert(outcome.change.id);
            }
        }
        for outcome in &hub.changes {
            match &outcome.status {
                ChangeStatus::Failed { error } if !is_permanent(error.kind) => {
                    return Some(format!(
                        "change #{} ({} {}) failed: {error}",
                        outcome.change.id,
                        outcome.change.action.kind(),
                        outcome.change.action.target()
                    ));
                }
                ChangeStatus::Skipped { reason } if !blocked.contains(&outcome.change.id) => {
                    return Some(format!(
                        "change #{} ({} {}) was skipped: {reason}",
                        outcome.change.id,
                        outcome.change.action.kind(),
                        outcome.change.action.target()
                    ));
                }
                _ => {}
            }
        }
    }
    None
}

/// Refusals and rejections stay what they are until a person acts.
fn is_permanent(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Refused | ErrorKind::Rejected)
}
