//! The reconcile planner: `plan(config, observed) -> Plan`, the rules of `docs/design.md`
//! section 2 (rule numbers below are that section's).
//!
//! # Stages
//! `plan()` indexes the observed state once (`index.rs`) and decides which hub may clean which
//! table (`claims.rs`, rule 11); then each hub is planned as a sequence of named stages, each a
//! function from the previous stages' typed results to its own, testable alone:
//!
//! 1. **Gateway readiness** (`gateway.rs`; section 1 *gateway*, rules 3 and 11): whether the hub's
//!    gateway is ready for transit, gone, or unfit for routes.
//! 2. **Enrolled spokes** (`enrolled.rs`; section 1 *spoke*): the hub's spokes, and the warnings
//!    for peered VNets that are not (out of scope, multi-hub).
//! 3. **Peering changes** (`peerings.rs`, `peering_writes.rs`; rules 1 to 5): each pair's state
//!    after this plan's own creations, the flags it should have, and the peering writes, in
//!    their order.
//! 4. **Transit spokes** (`transit.rs`; section 1 *transit spoke*, rules 2, 3, 5 and 8): which
//!    spokes are transit and why the others are not, with the warning codes; the IPv4 prefixes
//!    each is reached at and the space its subnets reach directly. The hub checks (rule 14,
//!    `checks.rs`) read the result.
//! 5. **Coverage** (`coverage.rs`; rules 6 and 7): each subnet's eligibility and table, the tables
//!    hubspoke may write, and the subnets that get the spoke's managed table.
//! 6. **What each table can carry** (`carry.rs`; rule 9): the foreign routes and direct space that
//!    block a prefix, and the routable spokes' prefixes each writable table cannot carry.
//! 7. **Summaries** (`summaries.rs`; rule 10): the summary prefixes each spoke's tables hold.
//! 8. **Routed pairs** (`pairs.rs`; rules 8, 9 and 12): which spokes are routed to each other
//!    (symmetric, within a group, within the route limit), and the routes each table then
//!    holds, merged into exact carriable unions (`merge.rs`, rule 10).
//! 9. **Desired routes** (`routes.rs`; rule 10): the managed routes every writable table must hold.
//! 10. **Route changes** (`route_changes.rs`; rules 6, 10 and 11): table creations, associations,
//!     upserts, and deletions of stale managed routes in every table the hub claims.
//! 11. **Order** (`order.rs`): the changes by phase, renumbered, dependencies pointing backwards.
//!
//! `spoke_stages` (`spokes.rs`) runs stages 2 to 5, 3 to 5 spoke by spoke, and keeps their
//! results together in one `Spoke` per spoke; stages 6 to 9 run only while the hub's gateway may
//! take routes (rule 11: otherwise no route is desired, and every managed route is stale).
//!
//! Changes and warnings are collected by one `Builder` (`builder.rs`) as the stages go; warnings
//! are kept sorted, so only the order in which changes are pushed matters. The stages' results
//! are crate-visible types, so that other parts of the crate can reason from the same facts.
//!
//! # Layers
//! No file here imports a file that imports it back (`scripts/check-imports`); they read top-down:
//! - Leaves, which import no stage: what a plan is made of (`types.rs`), the tags and the names of
//!   what hubspoke creates (`names.rs`), what a next hop means (`next_hop.rs`), the index of the
//!   observed state (`index.rs`), and the `Builder` (`builder.rs`) with the order it finishes
//!   with (`order.rs`).
//! - The stages, each importing leaves and the results of earlier stages only.
//! - This file, which declares the modules, re-exports the public API for other crates, and runs
//!   the stages. Nothing in the crate imports it: the stages import the leaves directly.
//!
//! The stages' tests that run the earlier stages first live in `tests/`, apart from the stages'
//! files, for the same reason.
//!
//! # Guarantees
//! - Pure and deterministic: the same input gives the same plan, byte for byte once serialized
//!   (every iteration is over sorted ids).
//! - Applying the plan to the observed state and planning again gives no changes (tested as a
//!   property over random estates).
//! - Only managed routes are written or deleted; foreign routes, tables and peerings are only
//!   read, except the peering flags of section 2 and the route table association of a subnet
//!   that has none.
//! - Routing is symmetric: spoke V gets a route to spoke W exactly when W gets one to V.
//! - Transit flags are only turned on by a ready gateway and only turned off when the gateway is
//!   gone; no write targets a `Disconnected` peering or its pair.
//!
//! # Assumptions
//! - The observed state is one consistent read of every subscription in scope. A resource that
//!   changes between the read and the write is the executor's concern (it re-reads subnets and
//!   skips changed ones; the next pass re-plans).
pub(crate) mod builder;
pub(crate) mod carry;
mod checks;
pub(crate) mod claims;
pub(crate) mod coverage;
pub(crate) mod enrolled;
pub(crate) mod gateway;
pub(crate) mod index;
mod merge;
mod names;
mod next_hop;
pub(crate) mod order;
pub(crate) mod pairs;
mod peering_writes;
pub(crate) mod peerings;
pub mod render;
pub(crate) mod route_changes;
pub(crate) mod routes;
pub(crate) mod spokes;
pub(crate) mod summaries;
#[cfg(test)]
mod tests;
pub(crate) mod transit;
mod types;

use std::collections::HashMap;

use serde_json::json;

use crate::config::PlanConfig;
use crate::id::{RouteTableId, VnetId};
use crate::model::Observed;
use builder::Builder;
use carry::carrying_tables;
use checks::hub_checks;
use claims::claim_tables;
use gateway::gateway_readiness;
use index::Index;
pub use names::{
    managed_prefix, managed_route_name, managed_table_id, parse_managed_route_name,
    MANAGED_TABLE_PREFIX, TAG_ENROLL, TAG_EXCLUDE, TAG_GROUP, TAG_MANAGED,
};
use pairs::routed_pairs;
use route_changes::route_changes;
use routes::{desired_routes, Desired};
use spokes::spoke_stages;
use summaries::usable_summaries;
pub use types::{Action, Change, HubPlan, HubStatus, Plan, RouteSpec, Warning, WarningCode};

/// Plans every configured hub.
pub fn plan(config: &PlanConfig, observed: &Observed) -> Plan {
    let index = Index::new(config, observed);
    let claims = claim_tables(config, &index);
    let hubs = config
        .hubs
        .iter()
        .map(|hub| plan_hub(config, &index, &claims, hub))
        .collect();
    Plan { hubs }
}

/// Plans one hub: its stages, in order.
fn plan_hub(
    config: &PlanConfig,
    index: &Index,
    claims: &HashMap<RouteTableId, VnetId>,
    hub_id: &VnetId,
) -> HubPlan {
    let Some(hub) = index.vnet(hub_id) else {
        return hub_not_found(hub_id);
    };
    let mut builder = Builder::default();
    let gateway = gateway_readiness(index, hub, &mut builder);
    let spokes = spoke_stages(config, index, hub, &gateway, &mut builder);
    hub_checks(index, hub, &spokes, &mut builder);
    // Rule 11: when the gateway is gone or unfit for routes, every managed route is stale.
    let desired = if gateway.routes_allowed() {
        let tables = carrying_tables(config, index, &spokes);
        let summaries = usable_summaries(config, index, hub, &spokes, &tables, &mut builder);
        let pairs = routed_pairs(config, &spokes, &tables, &summaries, &mut builder);
        desired_routes(tables, pairs, &summaries)
    } else {
        Desired::none(spokes.len())
    };
    route_changes(
        index,
        claims,
        hub_id,
        config,
        &spokes,
        &desired,
        &mut builder,
    );
    builder.finish(hub_id.clone())
}

/// The plan of a hub that is not in the observed state: nothing to do, and why.
fn hub_not_found(hub_id: &VnetId) -> HubPlan {
    let mut builder = Builder::default();
    builder.warn(
        WarningCode::OutOfScope,
        hub_id.to_string(),
        "the hub VNet was not found in the observed state: it is deleted, mistyped or not readable"
            .into(),
        json!({}),
    );
    let mut plan = builder.finish(hub_id.clone());
    plan.status = HubStatus::HubNotFound;
    plan
}
