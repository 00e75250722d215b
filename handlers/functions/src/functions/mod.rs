//! The four functions of docs/design.md §3, each a plain async fn from an invocation of its
//! typed input to a reply. The adapter does the rest.
pub mod backfill;
pub mod drift_check;
pub mod on_network_event;
pub mod reconcile_hub;

use hubspoke_arm::apply::ChangeStatus;
use hubspoke_arm::observe::ObserveError;
use hubspoke_arm::reconcile::{HubOutcome, ReconcileResult};

use crate::outcome::{
    ChangeRecord, ErrorRecord, HubRecord, SpokeRecord, Status, VerificationRecord,
};

/// The outcome's record of a hub reconciled (or planned) by a pass.
pub(crate) fn hub_records(result: &ReconcileResult) -> Vec<HubRecord> {
    result
        .hubs
        .iter()
        .map(|hub| HubRecord {
            hub: hub.hub.to_string(),
            status: match hub.status {
                HubOutcome::Unchanged => Status::Unchanged,
                HubOutcome::Changed => Status::Changed,
                HubOutcome::Incomplete => Status::Continued,
                HubOutcome::Partial => Status::Partial,
                HubOutcome::Failed => Status::Failed,
            },
            detail: (hub.status == HubOutcome::Incomplete).then(|| {
                let deferred = hub
                    .changes
                    .iter()
                    .filter(|c| matches!(c.status, ChangeStatus::Deferred { .. }))
                    .count();
                format!(
                    "the pass reached its time limit (HUBSPOKE_PASS_TIME_LIMIT_SECONDS): \
                     {deferred} of {} changes deferred to the next pass",
                    hub.changes.len()
                )
            }),
            changes: hub.changes.iter().map(ChangeRecord::from_outcome).collect(),
            warnings: hub.warnings.clone(),
            errors: Vec::new(),
            verification: hub
                .verification
                .as_ref()
                .map(VerificationRecord::from_verified),
            spokes: hub
                .spokes
                .iter()
                .map(|spoke| SpokeRecord {
                    vnet: spoke.vnet.to_string(),
                    found_by: spoke.found_by.iter().map(|way| way.as_str()).collect(),
                })
                .collect(),
        })
        .collect()
}

/// Reads that were refused, as errors of the outcome.
pub(crate) fn skipped_reads(result: &ReconcileResult) -> Vec<ErrorRecord> {
    result
        .skipped_reads
        .iter()
        .map(|skipped| {
            let mut record = ErrorRecord::from_arm(&skipped.error);
            record.target = Some(skipped.resource.clone());
            record
        })
        .collect()
}

/// An observation that failed, as an error of the outcome.
pub(crate) fn observe_error(error: &ObserveError) -> ErrorRecord {
    match error {
        ObserveError::Arm(error) => ErrorRecord::from_arm(error),
        ObserveError::Shape { .. } => ErrorRecord::new("unreadable_answer", error.to_string()),
    }
}
