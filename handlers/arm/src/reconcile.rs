//! One reconcile pass: observe → plan → apply → verify, returned as a value.
//!
//! The verification (`hubspoke_core::verify`) judges the estate as Azure reports it: a pass that
//! wrote something observes once more (the same few list reads) and verifies that, not what it
//! expected; one that wrote nothing verifies what it observed. With `HUBSPOKE_VERIFY_EFFECTIVE`
//! it also reads interfaces' effective routes and compares them with the model (`effective.rs`);
//! every difference is a `model_disagrees` warning of the hub.
//!
//! # Guarantees
//! - A pass that finds nothing to do makes zero writes (the planner's no-op rule).
//! - Every change is attempted and reported; a failure never stops the others.
//! - A dry run observes and plans, and writes nothing.
//!
//! # Assumptions
//! - Several passes may run at once (other instances, the timer and an event): every pass
//!   re-observes, writes are idempotent, and a pass that lost a race finds less to do next time.
use std::time::{Duration, Instant};

use hubspoke_core::config::{parse_bool, PlanConfig, Scope, SettingError};
use hubspoke_core::id::{portal_name, VnetId};
use hubspoke_core::model::Observed;
use hubspoke_core::plan::{plan, Action, HubPlan, HubStatus, Plan, Warning, WarningCode};
use hubspoke_core::verify::{verify_hubs, HubVerification};
use serde::Serialize;
use serde_json::json;

use crate::apply::{apply, planned, ChangeOutcome, ChangeStatus, Limits, Progress};
use crate::client::{ArmClient, RequestCounts};
use crate::effective::{check_effective, EffectiveCheck, EffectiveMode};
use crate::observe::{observe_in_scope, FoundBy, Observation, ObserveError, Skipped};

/// How a reconcile runs. The default: apply, adaptive pace, the subscriptions the hubs reach.
#[derive(Debug, Clone, Default)]
pub struct ReconcileOptions {
    /// Observe and plan only.
    pub dry_run: bool,
    /// At most this many changes in flight at once; `None` (the default): as many as Azure's
    /// budgets allow, the client's pacer reading them from every answer.
    pub concurrency: Option<usize>,
    /// Where spokes are discovered and written: `HUBSPOKE_SUBSCRIPTIONS` or
    /// `HUBSPOKE_MANAGEMENT_GROUPS`.
    pub scope: Scope,
    /// The resource of the event this pass answers, if any: with a scope that discovers, its
    /// subscription is read too (when in scope), so the spoke is found before Resource Graph
    /// shows it.
    pub event_resource: Option<String>,
    /// Apply and report only these hubs' plans. Every configured hub is still planned: a spoke
    /// peered with two hubs is a conflict only the whole configuration reveals.
    pub only_hubs: Option<Vec<VnetId>>,
    /// No change starts this long after the pass began, but those ready when a hub's plan
    /// begins: the rest are deferred to the next pass (a pass run by the Functions host must end
    /// within its `functionTimeout`). `None`: no limit.
    pub time_limit: Option<Duration>,
    /// `HUBSPOKE_VERIFY_EFFECTIVE`: which interfaces' effective routes the verification reads.
    pub verify_effective: EffectiveMode,
    /// Set when the pass must start no further change (its hub's lease was lost): what has not
    /// started is deferred, with the halt's reason.
    pub halt: Option<crate::apply::Halt>,
}

impl ReconcileOptions {
    /// The defaults, with the scope (`HUBSPOKE_SUBSCRIPTIONS`, `HUBSPOKE_MANAGEMENT_GROUPS`) and
    /// `HUBSPOKE_DRY_RUN` read through `lookup` (empty values count as unset). A bad value is an
    /// error naming the setting.
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut options = ReconcileOptions {
            scope: Scope::from_settings(&lookup)?,
            ..ReconcileOptions::default()
        };
        if let Some(value) = get("HUBSPOKE_VERIFY_EFFECTIVE") {
            options.verify_effective = EffectiveMode::from_setting(&value)?;
        }
        if let Some(value) = get("HUBSPOKE_DRY_RUN") {
            options.dry_run = parse_bool(&value).ok_or_else(|| SettingError {
                setting: "HUBSPOKE_DRY_RUN",
                value,
                reason: "expected true or false".into(),
            })?;
        }
        Ok(options)
    }
}

/// The result of a pass.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileResult {
    pub dry_run: bool,
    pub hubs: Vec<HubResult>,
    /// Reads that were refused and left out of the plan.
    pub skipped_reads: Vec<Skipped>,
    /// ARM requests of the whole pass, observation included.
    pub requests: RequestCounts,
    pub duration_ms: u64,
}

/// What happened to one hub.
#[derive(Debug, Clone, Serialize)]
pub struct HubResult {
    pub hub: VnetId,
    pub status: HubOutcome,
    pub changes: Vec<ChangeOutcome>,
    pub warnings: Vec<Warning>,
    /// The hub's verification after the pass (absent when the estate could not be observed
    /// again after the writes). Rendered by the callers: every pair would be a large JSON.
    #[serde(skip)]
    pub verification: Option<Verified>,
    /// The spokes this pass changed something of (a peering of theirs, or one of theirs with the
    /// hub, a subnet), and how the pass found each.
    pub spokes: Vec<FoundSpoke>,
}

/// A spoke a pass changed, and how the pass found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundSpoke {
    pub vnet: VnetId,
    pub found_by: Vec<FoundBy>,
}

/// A hub's verification, as the pass made it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub verification: HubVerification,
    /// Azure's effective routes compared with the model, unless `HUBSPOKE_VERIFY_EFFECTIVE` is
    /// `off`.
    pub effective: Option<EffectiveCheck>,
    /// The estate was observed again after the pass's writes.
    pub observed_after_writes: bool,
}

/// The status of a hub after a pass (docs/design.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HubOutcome {
    /// Nothing to change.
    Unchanged,
    /// Every change applied (or, in a dry run, planned).
    Changed,
    /// Every change started applied; the pass reached its time limit and deferred the rest.
    Incomplete,
    /// Some changes failed or were skipped.
    Partial,
    /// Every change failed or was skipped, or the hub could not be read.
    Failed,
}

impl ReconcileResult {
    /// Whether any change failed or was skipped.
    pub fn has_failures(&self) -> bool {
        self.hubs
            .iter()
            .any(|hub| matches!(hub.status, HubOutcome::Partial | HubOutcome::Failed))
    }

    /// Whether the pass deferred changes to the next pass (its time limit).
    pub fn has_deferred(&self) -> bool {
        self.hubs
            .iter()
            .flat_map(|hub| &hub.changes)
            .any(|c| matches!(c.status, ChangeStatus::Deferred { .. }))
    }

    /// Changes applied in the pass.
    pub fn applied(&self) -> usize {
        self.hubs
            .iter()
            .flat_map(|hub| &hub.changes)
            .filter(|c| c.succeeded())
            .count()
    }
}

/// Observes the estate of `config.hubs`, plans, and (unless a dry run) applies.
pub async fn reconcile(
    client: &ArmClient,
    config: &PlanConfig,
    options: &ReconcileOptions,
    progress: Option<Progress<'_>>,
) -> Result<(ReconcileResult, Plan), ObserveError> {
    let start = Instant::now();
    // Counted apart: other passes may share the client's connections at the same time.
    let client = &client.with_own_counts();
    let observation = observe_in_scope(
        client,
        &config.hubs,
        &options.scope,
        options.event_resource.as_deref(),
    )
    .await?;
    let plan = plan(config, &observation.observed);
    let mut hubs = Vec::new();
    let selected = |hub: &VnetId| {
        options
            .only_hubs
            .as_ref()
            .is_none_or(|only| only.contains(hub))
    };
    for hub_plan in plan.hubs.iter().filter(|hub_plan| selected(&hub_plan.hub)) {
        let changes = if options.dry_run {
            planned(hub_plan)
        } else {
            let limits = Limits {
                concurrency: options.concurrency,
                deadline: options.time_limit.map(|limit| start + limit),
                halt: options.halt.clone(),
            };
            apply(client, hub_plan, limits, progress).await
        };
        let status = match hub_plan.status {
            HubStatus::HubNotFound => HubOutcome::Failed,
            HubStatus::UpToDate => HubOutcome::Unchanged,
            HubStatus::ChangesPending => {
                let count =
                    |f: fn(&ChangeStatus) -> bool| changes.iter().filter(|c| f(&c.status)).count();
                let good = count(|s| matches!(s, ChangeStatus::Applied | ChangeStatus::Planned));
                let deferred = count(|s| matches!(s, ChangeStatus::Deferred { .. }));
                if good == changes.len() {
                    HubOutcome::Changed
                } else if good + deferred == changes.len() {
                    HubOutcome::Incomplete
                } else if good == 0 {
                    HubOutcome::Failed
                } else {
                    HubOutcome::Partial
                }
            }
        };
        hubs.push(HubResult {
            hub: hub_plan.hub.clone(),
            status,
            changes,
            warnings: hub_plan.warnings.clone(),
            verification: None,
            spokes: spokes_changed(hub_plan, &observation),
        });
    }
    let mut skipped_reads = observation.skipped;
    // Past its time limit (changes deferred, or operations still ending after it), a pass does
    // not spend what is left of the invocation's time observing again: its continuation, or the
    // next pass, verifies the estate once it is no longer half-way through its changes.
    let past_limit = options
        .time_limit
        .is_some_and(|limit| start.elapsed() >= limit);
    verify_pass(
        client,
        config,
        options,
        past_limit,
        observation.observed,
        &mut hubs,
        &mut skipped_reads,
    )
    .await;
    let result = ReconcileResult {
        dry_run: options.dry_run,
        hubs,
        skipped_reads,
        requests: client.counts(),
        duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok((result, plan))
}

/// Verifies the pass's hubs: on the estate observed again when the pass wrote something, else
/// on `observed`; then, when asked, against the interfaces' effective routes. Not at all when the
/// pass is `past_limit`: the verification is then its continuation's.
async fn verify_pass(
    client: &ArmClient,
    config: &PlanConfig,
    options: &ReconcileOptions,
    past_limit: bool,
    observed: Observed,
    hubs: &mut [HubResult],
    skipped_reads: &mut Vec<Skipped>,
) {
    if past_limit {
        return;
    }
    let wrote = hubs
        .iter()
        .flat_map(|hub| &hub.changes)
        .any(|change| change.succeeded());
    let observed = if wrote {
        // The first observation goes before the second is read: a large estate's routes are
        // tens of megabytes, and a pass holds one estate at a time.
        drop(observed);
        let again = observe_in_scope(
            client,
            &config.hubs,
            &options.scope,
            options.event_resource.as_deref(),
        )
        .await;
        match again {
            Ok(again) => again.observed,
            Err(error) => {
                tracing::warn!(error = %error, "the estate could not be observed again to verify it");
                if let ObserveError::Arm(error) = error {
                    skipped_reads.push(Skipped {
                        resource: "verification: the estate observed again after the writes".into(),
                        error,
                    });
                }
                return;
            }
        }
    } else {
        observed
    };
    let ids: Vec<VnetId> = hubs.iter().map(|hub| hub.hub.clone()).collect();
    for (hub, verification) in hubs.iter_mut().zip(verify_hubs(config, &observed, &ids)) {
        let effective = match options.verify_effective {
            EffectiveMode::Off => None,
            mode => Some(check_effective(client, &observed, &verification, mode).await),
        };
        if let Some(check) = &effective {
            hub.warnings.extend(check.disagreements.iter().map(|d| Warning {
                code: WarningCode::ModelDisagrees,
                target: d.nic.clone(),
                message: format!("Azure's effective routes of this interface send {} elsewhere than hubspoke's model of its subnet does", d.prefix),
                details: json!({"subnet": d.subnet.to_string(), "prefix": d.prefix, "model": d.model, "azure": d.azure}),
            }));
        }
        hub.verification = Some(Verified {
            verification,
            effective,
            observed_after_writes: wrote,
        });
    }
}

/// The spokes whose peerings or subnets `hub_plan` writes (a hub-side peering counts for the
/// spoke it points at), with how the observation found each, in the order of the changes.
fn spokes_changed(hub_plan: &HubPlan, observation: &Observation) -> Vec<FoundSpoke> {
    let mut spokes: Vec<FoundSpoke> = Vec::new();
    for change in &hub_plan.changes {
        let vnet = match &change.action {
            Action::CreatePeering { target, .. }
            | Action::UpdatePeering { target, .. }
            | Action::SyncPeering { target, .. } => {
                if target.vnet() == &hub_plan.hub {
                    change.action.remote_vnet()
                } else {
                    Some(target.vnet().clone())
                }
            }
            Action::AssociateRouteTable { target, .. } => Some(target.vnet().clone()),
            Action::CreateRouteTable { .. }
            | Action::UpsertRoute { .. }
            | Action::DeleteRoute { .. } => None,
        };
        let Some(vnet) = vnet else {
            continue;
        };
        if spokes.iter().any(|spoke| spoke.vnet == vnet) {
            continue;
        }
        if let Some(found_by) = observation.found_by.get(&vnet) {
            spokes.push(FoundSpoke {
                vnet,
                found_by: found_by.clone(),
            });
        }
    }
    spokes
}

impl ReconcileResult {
    /// The result for a terminal or a log: what changed, what failed and why, the warnings, and
    /// the request counts. Resources are named as the portal names them; JSON keeps full ids.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for hub in &self.hubs {
            let status = match hub.status {
                HubOutcome::Unchanged => "unchanged",
                HubOutcome::Changed if self.dry_run => "changes planned",
                HubOutcome::Changed => "changed",
                HubOutcome::Incomplete => {
                    "changed up to the pass's time limit; the rest deferred to the next pass"
                }
                HubOutcome::Partial => "partial: some changes failed or were skipped",
                HubOutcome::Failed => "failed",
            };
            let _ = writeln!(out, "Hub {}: {status}", portal_name(&hub.hub.to_string()));
            for outcome in &hub.changes {
                let (mark, detail) = match &outcome.status {
                    ChangeStatus::Applied => ("ok", String::new()),
                    ChangeStatus::Planned => ("planned", String::new()),
                    ChangeStatus::Failed { error } => (
                        "FAILED",
                        format!(
                            " — {error}{}",
                            error.hint().map(|h| format!(" ({h})")).unwrap_or_default()
                        ),
                    ),
                    ChangeStatus::Skipped { reason } => ("skipped", format!(" — {reason}")),
                    ChangeStatus::Deferred { reason } => ("deferred", format!(" — {reason}")),
                };
                let _ = writeln!(
                    out,
                    "  [{mark}] #{} {} {}{detail}",
                    outcome.change.id,
                    outcome.change.action.kind(),
                    portal_name(&outcome.change.action.target())
                );
            }
            for warning in &hub.warnings {
                let _ = writeln!(
                    out,
                    "  ! {} {}: {}",
                    warning.code.as_str(),
                    portal_name(&warning.target),
                    warning.message
                );
            }
        }
        for skipped in &self.skipped_reads {
            let _ = writeln!(
                out,
                "  ! not readable: {} — {}",
                skipped.resource, skipped.error
            );
        }
        let changes: usize = self.hubs.iter().map(|h| h.changes.len()).sum();
        let _ = writeln!(
            out,
            "{} of {changes} changes {}; ARM requests: {} reads, {} writes, {} retries, {} throttled; {:.1} s",
            if self.dry_run { changes } else { self.applied() },
            if self.dry_run { "planned (dry run)" } else { "applied" },
            self.requests.reads,
            self.requests.writes,
            self.requests.retries,
            self.requests.throttled,
            self.duration_ms as f64 / 1000.0
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Result<ReconcileOptions, SettingError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ReconcileOptions::from_settings(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_scope_and_dry_run_are_read_and_bad_values_named() {
        let read = options(&[
            ("HUBSPOKE_SUBSCRIPTIONS", " a-1, B-2 ,a-1"),
            ("HUBSPOKE_DRY_RUN", "true"),
        ])
        .expect("valid");
        assert_eq!(
            read.scope,
            Scope::Listed(vec!["a-1".to_string(), "B-2".to_string()])
        );
        assert!(read.dry_run);
        let unset = options(&[("HUBSPOKE_SUBSCRIPTIONS", " ")]).expect("valid");
        assert_eq!(unset.scope, Scope::Reached);
        assert!(!unset.dry_run);
        let groups = options(&[("HUBSPOKE_MANAGEMENT_GROUPS", "mg-lz")]).expect("valid");
        assert_eq!(groups.scope, Scope::ManagementGroups(vec!["mg-lz".into()]));
        for (setting, value) in [
            ("HUBSPOKE_SUBSCRIPTIONS", "a/../b"),
            ("HUBSPOKE_SUBSCRIPTIONS", "a b"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "mg/x"),
            ("HUBSPOKE_DRY_RUN", "perhaps"),
        ] {
            let error = options(&[(setting, value)]).expect_err(value);
            assert_eq!(error.setting, setting);
        }
        let both = options(&[
            ("HUBSPOKE_SUBSCRIPTIONS", "*"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "mg-lz"),
        ])
        .expect_err("both");
        assert!(both.to_string().contains("HUBSPOKE_SUBSCRIPTIONS"));
    }
}
