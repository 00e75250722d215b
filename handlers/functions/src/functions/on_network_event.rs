//! `OnNetworkEvent` (Event Grid trigger): one ARM event in, one work item per hub concerned out.
//!
//! It keeps successful writes and deletes of the resources docs/design.md §3 lists, drops
//! what is unrelated, out of scope or caused by hubspoke's own identity (status `ignored`, with
//! the reason; `out_of_scope: ...` for a subscription outside the scope, [`crate::scope`]), and
//! maps the resource to its hubs with at most one cheap read ([`crate::mapping`]).
//! It never writes to ARM, and answers well within Event Grid's 30 seconds.
use hubspoke_core::id::VnetId;

use crate::envelope::EventGridInput;
use crate::events::{ArmEvent, Operation, Resource};
use crate::invocation::{Failure, Invocation, Reply};
use crate::mapping::{self, Mapping};
use crate::outcome::{HubRecord, Status};
use crate::scope::Verdict;
use crate::state::AppState;
use crate::work::{Reason, RequestedBy, WorkItem};

pub async fn run(
    invocation: Invocation<EventGridInput>,
    state: AppState,
) -> Result<Reply, Failure> {
    let Invocation {
        id,
        input,
        mut outcome,
    } = invocation;
    let event = match ArmEvent::decode(&input.event) {
        Ok(event) => event,
        Err(error) => {
            outcome.reject("invalid_event", error.to_string());
            return Ok(Reply::outcome(outcome));
        }
    };
    outcome.trigger.events.push(event.reference());
    if !event.is_success() {
        outcome.ignore(format!(
            "event type {} is not acted upon (only resource write and delete successes are)",
            event.event_type
        ));
        return Ok(Reply::outcome(outcome));
    }
    let Some(operation) = Operation::parse(&event.data.operation_name) else {
        outcome.ignore(format!(
            "operation {} is not one hubspoke watches",
            event.data.operation_name
        ));
        return Ok(Reply::outcome(outcome));
    };
    let resource = match Resource::parse(&event.resource_id, operation.kind) {
        Ok(resource) => resource,
        Err(error) => {
            outcome.reject("invalid_resource", error.to_string());
            return Ok(Reply::outcome(outcome));
        }
    };
    if let Some(subscription) = &event.data.subscription_id {
        if !subscription.eq_ignore_ascii_case(resource.subscription()) {
            outcome.reject(
                "inconsistent_event",
                format!(
                    "data.subscriptionId {subscription} is not the subscription of {}",
                    event.resource_id
                ),
            );
            return Ok(Reply::outcome(outcome));
        }
    }
    let settings = &state.settings;
    if let (Some(me), Some(caller)) = (&settings.self_principal_id, event.caller_object_id()) {
        if caller.eq_ignore_ascii_case(me) {
            outcome.ignore(
                "caused by hubspoke's own identity (HUBSPOKE_SELF_PRINCIPAL_ID): its own writes need no pass",
            );
            return Ok(Reply::outcome(outcome));
        }
    }
    let hubs = &settings.plan.hubs;
    let client = state.mapping_arm.with_own_counts();
    match state
        .scope
        .check(
            &client,
            &settings.reconcile.scope,
            hubs,
            resource.subscription(),
        )
        .await
    {
        Verdict::InScope => {}
        Verdict::OutOfScope(why) => {
            outcome.requests = client.counts();
            outcome.ignore(format!("out_of_scope: {why}"));
            return Ok(Reply::outcome(outcome));
        }
        // The pass reads the scope for itself: the event goes on.
        Verdict::Unknown(why) => tracing::warn!(reason = why.as_str(), "scope unknown"),
    }
    let mapping = mapping::map(&client, hubs, &resource, operation.delete).await;
    outcome.requests = client.counts();
    let (targets, detail): (Vec<VnetId>, String) = match mapping {
        Mapping::Unrelated(why) => {
            outcome.ignore(format!("unrelated to the hubs: {why}"));
            return Ok(Reply::outcome(outcome));
        }
        Mapping::Hubs(found, why) => (found, why),
        Mapping::Unsure(why) => (hubs.clone(), format!("every hub is queued: {why}")),
    };
    let mut work = Vec::new();
    for hub in &targets {
        work.push(WorkItem::new(
            hub,
            Reason::Event,
            RequestedBy {
                function: outcome.function.clone(),
                invocation_id: id.clone(),
                event_id: Some(event.id.clone()),
                subject: Some(event.resource_id.clone()),
            },
        ));
        outcome.hubs.push(HubRecord::bare(
            hub.to_string(),
            Status::Queued,
            Some(detail.clone()),
        ));
    }
    tracing::info!(
        event_id = %event.id,
        operation = %event.data.operation_name,
        resource_id = %event.resource_id,
        hubs = targets.len(),
        "queued"
    );
    Ok(Reply {
        outcome,
        work,
        http: None,
    })
}
