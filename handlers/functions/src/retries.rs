//! What a retry of a `ReconcileHub` invocation could fix: the queue hands a failed item out again
//! (and after five attempts moves it to `hubspoke-work-poison`), which helps only when Azure
//! failed rather than refused. A refusal (RBAC, policy, lock) or a rejection (a limit, a
//! validation) stays what it is until a person acts, so retrying it would only repeat it.
use std::collections::BTreeSet;

use hubspoke_arm::apply::ChangeStatus;
use hubspoke_arm::error::ErrorKind;
use hubspoke_arm::observe::ObserveError;
use hubspoke_arm::reconcile::ReconcileResult;

/// Whether a retry may get further than this observation did.
pub(crate) fn observation_may_recover(error: &ObserveError) -> bool {
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
