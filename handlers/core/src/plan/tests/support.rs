//! Shared by the stages' unit tests: a hub with spokes, and a run of the stages on it.

use crate::config::PlanConfig;
use crate::model::Observed;
use crate::plan::builder::Builder;
use crate::plan::carry::{carrying_tables, CarryingTables};
use crate::plan::claims::claim_tables;
use crate::plan::gateway::gateway_readiness;
use crate::plan::index::Index;
use crate::plan::pairs::{routed_pairs, RoutedPairs};
use crate::plan::route_changes::route_changes;
use crate::plan::routes::{desired_routes, Desired};
use crate::plan::spokes::{spoke_stages, Spoke};
use crate::plan::summaries::{usable_summaries, Summaries};
use crate::plan::types::{Change, HubPlan, WarningCode};
use crate::synth::Estate;

/// A hub `hub` (10.0.0.0/16) whose VPN gateway is in `gateway_state`, or has none.
pub(super) fn hub(gateway_state: Option<&str>) -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", gateway_state);
    estate
}

/// Adds VNet `name` with space 10.`n`.0.0/16 and one subnet `default`, 10.`n`.0.0/24.
pub(super) fn vnet(estate: &mut Estate, name: &str, n: u8) {
    estate.vnet(
        name,
        &[&format!("10.{n}.0.0/16")],
        &[("default", &format!("10.{n}.0.0/24"))],
    );
}

/// The snapshot of `estate`, parsed, and the config of hub `hub` as `configure` makes it.
fn observe(estate: &Estate, configure: impl FnOnce(&mut PlanConfig)) -> (Observed, PlanConfig) {
    let observed = Observed::from_snapshot(&estate.snapshot()).expect("snapshot");
    let mut config = PlanConfig::new(vec![estate.vnet_id("hub").parse().expect("hub id")]);
    configure(&mut config);
    (observed, config)
}

/// Runs the stages up to the spoke stages on `estate` (hub `hub`, config as `configure` makes
/// it) and hands their result and the hub's plan so far to `check`.
pub(super) fn with_spokes(
    estate: &Estate,
    configure: impl FnOnce(&mut PlanConfig),
    check: impl FnOnce(&[Spoke], &HubPlan),
) {
    let (observed, config) = observe(estate, configure);
    let index = Index::new(&config, &observed);
    let hub = index.vnet(&config.hubs[0]).expect("hub");
    let mut builder = Builder::default();
    let gateway = gateway_readiness(&index, hub, &mut builder);
    let spokes = spoke_stages(&config, &index, hub, &gateway, &mut builder);
    let plan = builder.finish(hub.id.clone());
    check(&spokes, &plan);
}

/// The results of the route stages 6 to 8, and the hub's plan so far.
pub(super) struct RouteStages<'a, 'o> {
    pub(super) spokes: &'a [Spoke<'o>],
    pub(super) tables: &'a CarryingTables,
    pub(super) summaries: &'a Summaries,
    pub(super) pairs: &'a RoutedPairs,
    pub(super) plan: &'a HubPlan,
}

impl RouteStages<'_, '_> {
    /// The position of spoke `name`.
    pub(super) fn spoke(&self, name: &str) -> usize {
        self.spokes
            .iter()
            .position(|s| s.enrolled.vnet.id.name() == name)
            .expect("a spoke of that name")
    }

    /// The names of the spokes `name` is routed to.
    pub(super) fn peers(&self, name: &str) -> Vec<&str> {
        self.pairs.peers[self.spoke(name)]
            .iter()
            .map(|&peer| self.spokes[peer].enrolled.vnet.id.name())
            .collect()
    }

    /// The routes of `name`'s first table, as text.
    pub(super) fn routes(&self, name: &str) -> Vec<String> {
        let table = self.tables.of_spoke[self.spoke(name)][0];
        self.pairs.routes[table]
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    /// The warnings' codes.
    pub(super) fn codes(&self) -> Vec<WarningCode> {
        self.plan.warnings.iter().map(|w| w.code).collect()
    }
}

/// Runs the stages up to the routed pairs on `estate` and hands their results to `check`.
pub(super) fn with_route_stages(
    estate: &Estate,
    configure: impl FnOnce(&mut PlanConfig),
    check: impl FnOnce(&RouteStages),
) {
    let (observed, config) = observe(estate, configure);
    let index = Index::new(&config, &observed);
    let hub = index.vnet(&config.hubs[0]).expect("hub");
    let mut builder = Builder::default();
    let gateway = gateway_readiness(&index, hub, &mut builder);
    let spokes = spoke_stages(&config, &index, hub, &gateway, &mut builder);
    let tables = carrying_tables(&config, &index, &spokes);
    let summaries = usable_summaries(&config, &index, hub, &spokes, &tables, &mut builder);
    let pairs = routed_pairs(&config, &spokes, &tables, &summaries, &mut builder);
    let plan = builder.finish(hub.id.clone());
    check(&RouteStages {
        spokes: &spokes,
        tables: &tables,
        summaries: &summaries,
        pairs: &pairs,
        plan: &plan,
    });
}

/// A hub with a ready gateway and transit spokes `name` (10.`n`.0.0/16, one subnet
/// 10.`n`.0.0/24 without a table), for each `(name, n)`.
pub(super) fn transit_spokes(spokes: &[(&str, u8)]) -> Estate {
    let mut estate = hub(Some("Succeeded"));
    for (name, n) in spokes {
        vnet(&mut estate, name, *n);
        estate.connect_transit("hub", name);
    }
    estate
}

/// Runs the stages up to the desired routes on `estate` and hands them to `check`.
pub(super) fn with_desired(
    estate: &Estate,
    configure: impl FnOnce(&mut PlanConfig),
    check: impl FnOnce(&[Spoke], &Desired),
) {
    let (observed, config) = observe(estate, configure);
    let index = Index::new(&config, &observed);
    let hub = index.vnet(&config.hubs[0]).expect("hub");
    let mut builder = Builder::default();
    let gateway = gateway_readiness(&index, hub, &mut builder);
    let spokes = spoke_stages(&config, &index, hub, &gateway, &mut builder);
    let tables = carrying_tables(&config, &index, &spokes);
    let summaries = usable_summaries(&config, &index, hub, &spokes, &tables, &mut builder);
    let pairs = routed_pairs(&config, &spokes, &tables, &summaries, &mut builder);
    check(&spokes, &desired_routes(tables, pairs, &summaries));
}

/// Runs every stage before the route changes on `estate`, then the route changes alone into a
/// builder of their own, and hands the spokes' peering changes (by spoke name) and the route
/// changes, as pushed, to `check`.
pub(super) fn with_route_changes(
    estate: &Estate,
    configure: impl FnOnce(&mut PlanConfig),
    check: impl FnOnce(&[(String, Vec<usize>)], &[Change]),
) {
    let (observed, config) = observe(estate, configure);
    let index = Index::new(&config, &observed);
    let claims = claim_tables(&config, &index);
    let hub = index.vnet(&config.hubs[0]).expect("hub");
    let mut builder = Builder::default();
    let gateway = gateway_readiness(&index, hub, &mut builder);
    let spokes = spoke_stages(&config, &index, hub, &gateway, &mut builder);
    let tables = carrying_tables(&config, &index, &spokes);
    let summaries = usable_summaries(&config, &index, hub, &spokes, &tables, &mut builder);
    let pairs = routed_pairs(&config, &spokes, &tables, &summaries, &mut builder);
    let desired = desired_routes(tables, pairs, &summaries);
    let mut changes = Builder::default();
    route_changes(
        &index,
        &claims,
        &hub.id,
        &config,
        &spokes,
        &desired,
        &mut changes,
    );
    let peering_changes: Vec<(String, Vec<usize>)> = spokes
        .iter()
        .map(|s| {
            (
                s.enrolled.vnet.id.name().to_owned(),
                s.peerings.changes.clone(),
            )
        })
        .collect();
    check(&peering_changes, &changes.changes);
}
