//! What the stages of one hub's plan add to it: changes, with their dependencies, and warnings.

use std::collections::BTreeMap;

use serde_json::Value;

use super::order::in_phase_order;
use super::types::{Action, Change, HubPlan, HubStatus, Warning, WarningCode};
use crate::id::VnetId;

/// The changes and warnings of one hub's plan, as the stages add them.
#[derive(Default)]
pub(crate) struct Builder {
    /// In the order the stages pushed them; a change's id is its position here until `finish`.
    pub(super) changes: Vec<Change>,
    /// Keyed by (code, target, details, message) so the order is stable and duplicates merge.
    warnings: BTreeMap<(WarningCode, String, String, String), Warning>,
}

impl Builder {
    /// Adds a change that waits for `depends_on`, and returns its id.
    pub(crate) fn push(
        &mut self,
        phase: u8,
        action: Action,
        reason: String,
        depends_on: Vec<usize>,
    ) -> usize {
        let id = self.changes.len();
        let mut depends_on = depends_on;
        depends_on.sort_unstable();
        depends_on.dedup();
        self.changes.push(Change {
            id,
            phase,
            depends_on,
            reason,
            action,
        });
        id
    }

    /// Adds a warning; the same warning twice is kept once.
    pub(crate) fn warn(
        &mut self,
        code: WarningCode,
        target: String,
        message: String,
        details: Value,
    ) {
        let key = (code, target.clone(), details.to_string(), message.clone());
        self.warnings.entry(key).or_insert(Warning {
            code,
            target,
            message,
            details,
        });
    }

    /// The hub's plan: the changes in order (the last stage), the warnings sorted.
    pub(crate) fn finish(self, hub: VnetId) -> HubPlan {
        let changes = in_phase_order(self.changes);
        let status = if changes.is_empty() {
            HubStatus::UpToDate
        } else {
            HubStatus::ChangesPending
        };
        HubPlan {
            hub,
            status,
            changes,
            warnings: self.warnings.into_values().collect(),
        }
    }
}
