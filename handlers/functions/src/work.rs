//! Work items: what `OnNetworkEvent`, `Backfill` and `DriftCheck` queue to `hubspoke-work` (and
//! `ReconcileHub` itself, to continue a pass that reached its time limit), and `ReconcileHub`
//! takes. One item asks for one pass over one hub; it carries no state of the
//! estate (the pass observes Azure afresh), only why it was asked for, so that duplicates and
//! reordering are harmless.
//!
//! ```json
//! {"schema": "hubspoke.work/v1", "item_id": "<uuid>", "hub": "<hub VNet id>",
//!  "reason": "event", "requested_by": {"function": "OnNetworkEvent", "invocation_id": "...",
//!  "event_id": "...", "subject": "..."}, "queued_at": "2026-11-30T02:16:22.123Z"}
//! ```
//!
//! `"dry_run": true` (absent otherwise) asks for a plan only: such an item writes nothing, joins
//! no pass that writes, and its outcome carries the plan.
use hubspoke_core::id::VnetId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::kind_of;
use crate::outcome::now;

/// The schema name of a work item.
pub const SCHEMA: &str = "hubspoke.work/v1";

/// The queue of work items (the `work` output bindings and `ReconcileHub`'s trigger).
pub const WORK_QUEUE: &str = "hubspoke-work";

/// One request for a reconcile pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkItem {
    pub schema: String,
    /// Not `id`: the Functions host copies a JSON message's top-level properties into the
    /// trigger's metadata, where an `id` would hide the queue message's own `Id`.
    pub item_id: String,
    pub hub: String,
    pub reason: Reason,
    pub requested_by: RequestedBy,
    pub queued_at: String,
    /// Plan only, write nothing: a Backfill dry run whose observation could not finish within
    /// an HTTP request delivers its plan as this item's outcome.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Why the pass was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An ARM event concerned the hub.
    Event,
    /// Someone called Backfill.
    Backfill,
    /// The drift check's timer.
    Drift,
    /// A pass that reached its time limit asks for the next one.
    Continuation,
    /// Work items of other instances joined a pass its holder could not run in time (an
    /// invocation waits for two passes at most): this item asks for it.
    Wanted,
    /// Left, delayed by the lease's duration, by the work item that found the hub's lease held
    /// elsewhere and left the mark: if the mark is still waiting when it runs (its holder died),
    /// it runs the pass; otherwise it ends `ignored`.
    Check,
}

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedBy {
    pub function: String,
    pub invocation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// A message that is not a valid work item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkItemError(pub String);

impl WorkItem {
    /// A new item for `hub`.
    pub fn new(hub: &VnetId, reason: Reason, requested_by: RequestedBy) -> Self {
        Self {
            schema: SCHEMA.to_string(),
            item_id: uuid::Uuid::new_v4().to_string(),
            hub: hub.to_string(),
            reason,
            requested_by,
            queued_at: now(),
            dry_run: false,
        }
    }

    /// Reads a queue message (with the host's string layers already removed) as a work item,
    /// and its hub as an id.
    pub fn decode(message: &Value) -> Result<(Self, VnetId), WorkItemError> {
        if !message.is_object() {
            return Err(WorkItemError(format!(
                "the message is {}, not a work item (a JSON object with \"schema\": \"{SCHEMA}\")",
                kind_of(message)
            )));
        }
        match message.get("schema").and_then(Value::as_str) {
            Some(SCHEMA) => {}
            Some(other) => {
                return Err(WorkItemError(format!(
                    "the message's schema is {other:?}, not \"{SCHEMA}\""
                )))
            }
            None => {
                return Err(WorkItemError(format!(
                    "the message has no \"schema\": \"{SCHEMA}\"; it is not a work item"
                )))
            }
        }
        let item: WorkItem = serde_json::from_value(message.clone())
            .map_err(|error| WorkItemError(format!("the work item is malformed: {error}")))?;
        let hub: VnetId = item
            .hub
            .parse()
            .map_err(|error| WorkItemError(format!("the work item's hub: {error}")))?;
        Ok((item, hub))
    }

    /// The item as the JSON object the queue output takes.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const HUB: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/hub";

    #[test]
    fn an_item_round_trips() {
        let hub: VnetId = HUB.parse().unwrap();
        let item = WorkItem::new(
            &hub,
            Reason::Drift,
            RequestedBy {
                function: "DriftCheck".into(),
                invocation_id: "i".into(),
                event_id: None,
                subject: None,
            },
        );
        let (decoded, decoded_hub) = WorkItem::decode(&item.to_value()).unwrap();
        assert_eq!(decoded, item);
        assert_eq!(decoded_hub, hub);
        assert!(item.queued_at.ends_with('Z'));
    }

    #[test]
    fn what_is_not_a_work_item_is_refused_with_why() {
        let good = json!({"schema": SCHEMA, "item_id": "1", "hub": HUB, "reason": "drift",
            "requested_by": {"function": "DriftCheck", "invocation_id": "i"}, "queued_at": "t"});
        let mut unknown_field = good.clone();
        unknown_field["extra"] = json!(1);
        let mut bad_hub = good.clone();
        bad_hub["hub"] = json!(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/.."
        );
        let mut bad_reason = good.clone();
        bad_reason["reason"] = json!("whim");
        let cases = [
            (json!("hello"), "a string"),
            (json!([1]), "an array"),
            (json!({"hub": HUB}), "no \"schema\""),
            (json!({"schema": "other/v9"}), "\"other/v9\""),
            (unknown_field, "extra"),
            (bad_hub, "hub"),
            (bad_reason, "whim"),
        ];
        for (message, expected) in cases {
            let error = WorkItem::decode(&message).unwrap_err();
            assert!(error.0.contains(expected), "{message}: {error}");
        }
        assert!(WorkItem::decode(&good).is_ok());
    }
}
