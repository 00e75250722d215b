//! Shared by the stages' unit tests: a hub with spokes, and a run of the stages on it.

use super::builder::Builder;
use super::gateway::gateway_readiness;
use super::index::Index;
use super::{spoke_stages, HubPlan, Spoke};
use crate::config::PlanConfig;
use crate::model::Observed;
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

/// Runs the stages up to the spoke stages on `estate` (hub `hub`, config as `configure` makes
/// it) and hands their result and the hub's plan so far to `check`.
pub(super) fn with_spokes(
    estate: &Estate,
    configure: impl FnOnce(&mut PlanConfig),
    check: impl FnOnce(&[Spoke], &HubPlan),
) {
    let observed = Observed::from_snapshot(&estate.snapshot()).expect("snapshot");
    let mut config = PlanConfig::new(vec![estate.vnet_id("hub").parse().expect("hub id")]);
    configure(&mut config);
    let index = Index::new(&config, &observed);
    let hub = index.vnet(&config.hubs[0]).expect("hub");
    let mut builder = Builder::default();
    let gateway = gateway_readiness(&index, hub, &mut builder);
    let spokes = spoke_stages(&config, &index, hub, &gateway, &mut builder);
    let plan = builder.finish(hub.id.clone());
    check(&spokes, &plan);
}
