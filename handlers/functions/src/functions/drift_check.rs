//! `DriftCheck` (timer, `%HUBSPOKE_DRIFT_SCHEDULE%`): queues every configured hub.
//!
//! It catches what no event reports — the passive side of a peering changing state or sync
//! level, subscriptions outside the Event Grid wiring, dead-lettered deliveries. A hub that has
//! converged costs one read-only pass. It reads and writes nothing itself.
use crate::envelope::TimerInput;
use crate::invocation::{Failure, Invocation, Reply};
use crate::outcome::{HubRecord, Status, TimerRef};
use crate::state::AppState;
use crate::work::{Reason, RequestedBy, WorkItem};

pub async fn run(invocation: Invocation<TimerInput>, state: AppState) -> Result<Reply, Failure> {
    let Invocation {
        id,
        input,
        mut outcome,
    } = invocation;
    outcome.trigger.timer = Some(TimerRef {
        past_due: input.is_past_due,
    });
    let mut work = Vec::new();
    for hub in &state.settings.plan.hubs {
        work.push(WorkItem::new(
            hub,
            Reason::Drift,
            RequestedBy {
                function: outcome.function.clone(),
                invocation_id: id.clone(),
                event_id: None,
                subject: None,
            },
        ));
        outcome.hubs.push(HubRecord::bare(
            hub.to_string(),
            Status::Queued,
            Some("the drift check queues every hub".into()),
        ));
    }
    Ok(Reply {
        outcome,
        work,
        http: None,
    })
}
