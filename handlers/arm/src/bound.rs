//! A lower bound on the time Azure makes a hub's plan take: no executor can apply the plan
//! faster, given how long Azure's operations take, which writes Azure serializes, and each
//! subscription's write budget. The reconcile benchmark prints it next to the time measured.
//!
//! What it counts, all from the plan's own dependency graph and a [`Model`] of Azure:
//! - An operation is known to have ended one answer after it ends: a client learns it from a
//!   poll. So a change takes `operation + response` from the moment its write is admitted, and
//!   what depends on it, or waits for the same lock, starts no earlier.
//! - Dependencies (`depends_on`) and phases (every change of phase 0 before any of phase 1).
//! - Writes that share a lock key ([`crate::apply::lock_keys`]: a VNet, a route table, the VNet a
//!   peering points at, the table a subnet gets) run one after another, as Azure requires.
//! - Per subscription, ARM's writes and deletes buckets and the resource provider's budget of
//!   writes and deletes together, each a token bucket full when the plan starts: the k-th write
//!   of a subscription released at time t is admitted no earlier than t + (k - size) / rate.
//!
//! Each of these alone gives a bound (the longest dependency chain with its tail; for a lock key,
//! the jobs released after some time run one after another, then the shortest tail; for a budget,
//! the writes released after some time wait for tokens, then the shortest tail); the bound is the
//! largest, so it is a true lower bound, not an estimate of a schedule.
//!
//! What it leaves out: the time the client needs for itself (planning, scheduling, TLS), reads
//! (polls and the subnet re-read before its PUT) and their budget, retries, and the observation
//! before the plan, which the caller adds (`start`).
use std::collections::HashMap;
use std::time::Duration;

use hubspoke_core::plan::{Action, HubPlan};

use crate::apply::lock_keys;

/// A token bucket: `size` tokens when full, `per_second` added per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Tokens when full: writes admitted at once.
    pub size: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

/// What Azure does, as far as the bound is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// From a PUT's admission to the end of its operation.
    pub write_operation: Duration,
    /// From a DELETE's admission to the end of its operation.
    pub delete_operation: Duration,
    /// One answer's latency.
    pub response: Duration,
    /// ARM's per-subscription writes bucket.
    pub writes: Budget,
    /// ARM's per-subscription deletes bucket.
    pub deletes: Budget,
    /// The resource provider's per-subscription budget of writes and deletes together.
    pub provider_writes: Budget,
}

/// The bound and what set it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// `start` plus the largest of the parts below.
    pub total: Duration,
    /// The longest chain of dependent changes.
    pub dependencies: Duration,
    /// The busiest lock key, and the time its writes need.
    pub serialized: (String, Duration),
    /// The tightest budget (`writes`, `deletes` or `provider` of a subscription), and the time
    /// its writes need.
    pub budget: (String, Duration),
}

impl Bound {
    /// Which part sets the bound: `dependencies`, `serialized` or `budget` (on a tie, the first).
    pub fn binding(&self) -> &'static str {
        let (dependencies, serialized, budget) =
            (self.dependencies, self.serialized.1, self.budget.1);
        if dependencies >= serialized && dependencies >= budget {
            "dependencies"
        } else if serialized >= budget {
            "serialized"
        } else {
            "budget"
        }
    }
}

/// The lower bound of `plan` under `model`, the plan starting at `start` (the observation before
/// it).
pub fn lower_bound(plan: &HubPlan, model: &Model, start: Duration) -> Bound {
    let count = plan.changes.len();
    let response = model.response.as_secs_f64();
    let duration: Vec<f64> = plan
        .changes
        .iter()
        .map(|change| match change.action {
            Action::DeleteRoute { .. } => model.delete_operation.as_secs_f64() + response,
            _ => model.write_operation.as_secs_f64() + response,
        })
        .collect();

    // Earliest start (release) by dependencies and phases: changes come after what they
    // depend on, and phase 0 first.
    let mut release = vec![0.0f64; count];
    let mut end_of_phase_0 = 0.0f64;
    for change in &plan.changes {
        let after_dependencies = change
            .depends_on
            .iter()
            .filter(|d| **d < count)
            .map(|d| release[*d] + duration[*d])
            .fold(0.0, f64::max);
        release[change.id] = if change.phase == 0 {
            after_dependencies
        } else {
            after_dependencies.max(end_of_phase_0)
        };
        if change.phase == 0 {
            end_of_phase_0 = end_of_phase_0.max(release[change.id] + duration[change.id]);
        }
    }
    // The shortest time that must follow a change: its longest chain of dependents, and for
    // phase 0, the whole of phase 1 (which waits for it).
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for change in &plan.changes {
        for dependency in change.depends_on.iter().filter(|d| **d < change.id) {
            dependents[*dependency].push(change.id);
        }
    }
    let mut tail = vec![0.0f64; count];
    for id in (0..count).rev() {
        tail[id] = dependents[id]
            .iter()
            .map(|dependent| duration[*dependent] + tail[*dependent])
            .fold(0.0, f64::max);
    }
    let phase_1_whole = plan
        .changes
        .iter()
        .filter(|c| c.phase == 1)
        .map(|c| release[c.id] - end_of_phase_0.min(release[c.id]) + duration[c.id] + tail[c.id])
        .fold(0.0, f64::max);
    for change in plan.changes.iter().filter(|c| c.phase == 0) {
        tail[change.id] = tail[change.id].max(phase_1_whole);
    }

    let dependencies = (0..count)
        .map(|id| release[id] + duration[id] + tail[id])
        .fold(0.0, f64::max);

    // One machine per lock key: the jobs released at or after r run one after another.
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for change in &plan.changes {
        for key in lock_keys(&change.action) {
            by_key.entry(key).or_default().push(change.id);
        }
    }
    let mut serialized = (String::new(), 0.0f64);
    for (key, jobs) in &by_key {
        let time = sequence_bound(jobs, &release, &tail, |id| duration[id], 0.0, 0.0);
        if time > serialized.1 {
            serialized = (key.clone(), time);
        }
    }

    // Per subscription budgets: the writes released at or after r wait for tokens.
    let mut budgets: HashMap<(String, &'static str), Vec<usize>> = HashMap::new();
    for change in &plan.changes {
        let subscription = subscription_of(&change.action.target());
        let class = if matches!(change.action, Action::DeleteRoute { .. }) {
            "deletes"
        } else {
            "writes"
        };
        budgets
            .entry((subscription.clone(), class))
            .or_default()
            .push(change.id);
        budgets
            .entry((subscription, "provider"))
            .or_default()
            .push(change.id);
    }
    let mut budget = (String::new(), 0.0f64);
    for ((subscription, class), jobs) in &budgets {
        let bucket = match *class {
            "writes" => model.writes,
            "deletes" => model.deletes,
            _ => model.provider_writes,
        };
        // Once admitted, a write still has its operation and the answer that tells of its end.
        let time = sequence_bound(
            jobs,
            &release,
            &tail,
            |id| duration[id],
            bucket.size,
            bucket.per_second,
        );
        if time > budget.1 {
            budget = (format!("{class} of subscription {subscription}"), time);
        }
    }

    let largest = dependencies.max(serialized.1).max(budget.1);
    Bound {
        total: start + seconds(largest),
        dependencies: seconds(dependencies),
        serialized: (serialized.0, seconds(serialized.1)),
        budget: (budget.0, seconds(budget.1)),
    }
}

/// For jobs that go through one resource: the largest, over every release time r, of r plus
/// the time the jobs released at or after r need there, plus the shortest of their own time and
/// tail after it.
///
/// Without a bucket (`size` and `per_second` 0) the resource is a lock: they run one after
/// another, so they need the sum of their times, and then the shortest tail. With a bucket it is
/// a budget: the m jobs are admitted no faster than the bucket allows, the last one after
/// (m - size) / per_second, and then it still takes its own time and tail.
fn sequence_bound(
    jobs: &[usize],
    release: &[f64],
    tail: &[f64],
    duration: impl Fn(usize) -> f64,
    size: f64,
    per_second: f64,
) -> f64 {
    let mut sorted: Vec<usize> = jobs.to_vec();
    sorted.sort_by(|a, b| release[*b].total_cmp(&release[*a]));
    // From the latest release backwards, so each suffix is accumulated once.
    let mut best = 0.0f64;
    let mut sum = 0.0f64;
    let mut shortest_tail = f64::INFINITY;
    let mut shortest_after = f64::INFINITY;
    for (taken, id) in sorted.iter().enumerate() {
        sum += duration(*id);
        shortest_tail = shortest_tail.min(tail[*id]);
        shortest_after = shortest_after.min(duration(*id) + tail[*id]);
        let count = (taken + 1) as f64;
        let time = if per_second > 0.0 {
            release[*id] + ((count - size).max(0.0) / per_second) + shortest_after
        } else {
            release[*id] + sum + shortest_tail
        };
        best = best.max(time);
    }
    best
}

fn subscription_of(id: &str) -> String {
    let mut parts = id.split('/');
    parts
        .by_ref()
        .find(|part| part.eq_ignore_ascii_case("subscriptions"));
    parts.next().unwrap_or("").to_ascii_lowercase()
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hubspoke_core::id::{RouteId, RouteTableId};
    use hubspoke_core::plan::{Change, HubStatus, RouteSpec};

    fn table(subscription: &str, name: &str) -> RouteTableId {
        format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Network/routeTables/{name}")
            .parse()
            .unwrap()
    }

    fn route(id: usize, table_id: &RouteTableId, depends_on: Vec<usize>) -> Change {
        let spec = RouteSpec::managed(format!("10.{id}.0.0/16").parse().unwrap());
        Change {
            id,
            phase: 1,
            depends_on,
            reason: String::new(),
            action: Action::UpsertRoute {
                target: RouteId::new(table_id, &spec.name),
                before: None,
                after: spec,
            },
        }
    }

    fn plan(changes: Vec<Change>) -> HubPlan {
        HubPlan {
            hub:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub"
                    .parse()
                    .unwrap(),
            status: HubStatus::ChangesPending,
            changes,
            warnings: Vec::new(),
        }
    }

    fn model(size: f64, per_second: f64) -> Model {
        Model {
            write_operation: Duration::from_secs(10),
            delete_operation: Duration::from_secs(10),
            response: Duration::ZERO,
            writes: Budget { size, per_second },
            deletes: Budget { size, per_second },
            provider_writes: Budget {
                size: 1000.0,
                per_second: 1000.0 / 300.0,
            },
        }
    }

    #[test]
    fn a_chain_of_dependencies_adds_up() {
        let t = |n: &str| table("s", n);
        let changes = vec![
            route(0, &t("a"), vec![]),
            route(1, &t("b"), vec![0]),
            route(2, &t("c"), vec![1]),
            route(3, &t("d"), vec![]),
        ];
        let bound = lower_bound(&plan(changes), &model(200.0, 10.0), Duration::from_secs(1));
        assert_eq!(bound.dependencies, Duration::from_secs(30));
        assert_eq!(bound.total, Duration::from_secs(31));
        assert_eq!(bound.binding(), "dependencies");
    }

    #[test]
    fn writes_sharing_a_lock_run_one_after_another() {
        let changes = (0..5)
            .map(|id| route(id, &table("s", "one"), vec![]))
            .collect();
        let bound = lower_bound(&plan(changes), &model(200.0, 10.0), Duration::ZERO);
        assert_eq!(bound.serialized.1, Duration::from_secs(50));
        assert_eq!(bound.binding(), "serialized");
    }

    #[test]
    fn a_budget_admits_its_size_then_its_rate() {
        // 30 independent writes, a bucket of 10 refilling 1 per second: the 30th is admitted
        // after 20 s and ends 10 s later. In another subscription they would not wait.
        let changes: Vec<Change> = (0..30)
            .map(|id| route(id, &table("s", &format!("t{id}")), vec![]))
            .collect();
        let bound = lower_bound(&plan(changes), &model(10.0, 1.0), Duration::ZERO);
        assert_eq!(bound.budget.1, Duration::from_secs(30));
        assert_eq!(bound.binding(), "budget");
        assert!(bound.budget.0.contains("writes of subscription s"));
        let spread: Vec<Change> = (0..30)
            .map(|id| {
                route(
                    id,
                    &table(&format!("s{}", id % 3), &format!("t{id}")),
                    vec![],
                )
            })
            .collect();
        let bound = lower_bound(&plan(spread), &model(10.0, 1.0), Duration::ZERO);
        assert_eq!(bound.total, Duration::from_secs(10));
    }
}
