//! The verification: does every spoke of a hub reach every other, and if not, why? For every
//! ordered pair of spokes (A, B) of one group, every eligible subnet of A and every address of
//! B's IPv4 prefixes, where Azure sends the traffic, decided from the observed estate the way
//! Azure selects a route; then a verdict per pair with a stable code (`gateway`, `direct`,
//! `appliance`, `unreachable`) and, when it is not fine, the reason in the planner's terms.
//! `compare` checks the model against the effective routes Azure lists for a network interface.
//!
//! # Layers
//! Each file is one idea, and imports only those above it in this list:
//! - `routes.rs`: effective routes (the model's and Azure's alike) and next hop kinds;
//! - `select.rs`: route selection over address ranges (Azure's documented rules);
//! - `subnet_routes.rs`: the model's effective routes of a subnet;
//! - `verdict.rs`: what the verification says (verdicts, reasons, counts);
//! - `hops.rs`: what a selected route does with a spoke's traffic to another;
//! - `facts.rs`: the spokes as verified, built on the planner's stage results;
//! - `hub.rs`: the hub as a whole (its gateway, the way back from it);
//! - `reasons.rs`: why a direction has no gateway route, in the planner's terms;
//! - `paths.rs`: the path of one direction;
//! - `pairs.rs`: the verdicts of every pair;
//! - `compare.rs`: the model against Azure's effective routes;
//! - `render.rs`: JSON and text.
//!
//! The planner never imports this module (`scripts/check-imports`): the verification reads the
//! planner's stages, not the other way round.
//!
//! # Guarantees
//! - Pure and deterministic, like the planner.
//! - Every address counts: a route inside a spoke's prefix that goes elsewhere makes the pair
//!   what that route makes it.
//! - The model's next hop for an address agrees with the effective routes the simulator lists
//!   for an interface in the subnet (property-tested in `handlers/arm/tests/verify_model.rs`).
mod compare;
mod facts;
mod hops;
mod hub;
mod pairs;
mod paths;
mod reasons;
pub mod render;
mod routes;
mod select;
mod subnet_routes;
mod verdict;

pub use compare::{compare, Disagreement, InterfaceRoutes};
pub use routes::{EffectiveRoute, HopKind, RouteSource};
pub use select::{Segment, Selection};
pub use verdict::{
    HubVerification, Interface, PairVerdict, Reason, RouteRef, SpokeEntry, Verdict, VerdictCounts,
};

use crate::config::PlanConfig;
use crate::id::VnetId;
use crate::model::Observed;
use crate::plan::builder::Builder;
use crate::plan::gateway::gateway_readiness;
use crate::plan::index::Index;
use crate::plan::spokes::spoke_stages;
use hub::HubContext;
use pairs::pair_verdicts;
use subnet_routes::GatewaysByVnet;

/// Verifies every configured hub.
pub fn verify(config: &PlanConfig, observed: &Observed) -> Vec<HubVerification> {
    verify_hubs(config, observed, &config.hubs)
}

/// Verifies `hubs` (configured hubs: every configured hub is still read, since a spoke peered
/// with two hubs is a spoke of neither).
pub fn verify_hubs(
    config: &PlanConfig,
    observed: &Observed,
    hubs: &[VnetId],
) -> Vec<HubVerification> {
    let index = Index::new(config, observed);
    let gateways = GatewaysByVnet::new(observed);
    hubs.iter()
        .map(|hub| verify_hub(config, &index, &gateways, hub))
        .collect()
}

/// Verifies one hub: the planner's stages 1 to 5 (their changes and warnings are dropped: the
/// estate is judged as it is), then every pair.
fn verify_hub(
    config: &PlanConfig,
    index: &Index,
    gateways: &GatewaysByVnet,
    hub_id: &VnetId,
) -> HubVerification {
    let Some(hub) = index.vnet(hub_id) else {
        return HubVerification {
            hub: Some(hub_id.clone()),
            ..HubVerification::default()
        };
    };
    let mut builder = Builder::default();
    let gateway = gateway_readiness(index, hub, &mut builder);
    let spokes = spoke_stages(config, index, hub, &gateway, &mut builder);
    let context = HubContext::new(config, index, gateways, hub, &gateway, &spokes);
    let (pairs, counts) = pair_verdicts(&context);
    let entries = spokes
        .iter()
        .zip(&context.facts)
        .map(|(spoke, facts)| SpokeEntry {
            id: spoke.enrolled.vnet.id.clone(),
            transit: spoke.transit.is_transit(),
            group: spoke.enrolled.group.clone(),
            prefixes: facts.prefixes.clone(),
            interfaces: facts.interfaces.clone(),
        })
        .collect();
    HubVerification {
        hub: Some(hub_id.clone()),
        spokes: entries,
        pairs,
        counts,
    }
}

/// The model's effective routes of a subnet of the observed estate (its VNet's and its route
/// table's), for the property tests that compare them with the simulator's.
pub fn model_routes<'o>(
    observed: &'o Observed,
    subnet: &crate::id::SubnetId,
) -> Option<Vec<EffectiveRoute<'o>>> {
    let vnet = observed
        .virtual_networks
        .iter()
        .find(|v| &v.id == subnet.vnet())?;
    let subnet = vnet.subnets.iter().find(|s| &s.id == subnet)?;
    let table = subnet
        .route_table
        .as_ref()
        .and_then(|id| observed.route_tables.iter().find(|t| &t.id == id));
    Some(subnet_routes::subnet_routes(
        vnet,
        table,
        &GatewaysByVnet::new(observed),
    ))
}
