//! What the verification of one hub reads: the planner's stages 1 to 5 run on the observed
//! estate (their changes and warnings are not kept: the verification judges the estate as it
//! is), the spokes' facts, and what holds for the hub as a whole: whether its gateway can carry
//! transit, and how its `GatewaySubnet` reaches each spoke (the way back from the gateway).
use std::sync::Arc;

use super::facts::{spoke_facts, SpokeFacts};
use super::hops::{hop_of, located, Hop};
use super::select::Selection;
use super::subnet_routes::{subnet_routes, GatewaysByVnet};
use super::verdict::{Reason, Verdict};
use crate::config::PlanConfig;
use crate::model::VirtualNetwork;
use crate::plan::gateway::GatewayReadiness;
use crate::plan::index::Index;
use crate::plan::spokes::Spoke;

/// The hub being verified, with everything the pairs are judged from.
pub(crate) struct HubContext<'a, 'o> {
    pub(crate) config: &'a PlanConfig,
    pub(crate) spokes: &'a [Spoke<'o>],
    pub(crate) facts: Vec<SpokeFacts<'o>>,
    /// Why the hub's gateway carries no transit now, if it does not.
    pub(crate) gateway_reason: Option<Arc<Reason>>,
    /// Why each spoke cannot be reached through the gateway, as a destination, if it cannot.
    pub(crate) as_destination: Vec<Option<Arc<Reason>>>,
    /// How the gateway's subnet reaches each spoke when not through the peering with it.
    pub(crate) legs: Vec<Option<(Verdict, Arc<Reason>)>>,
}

impl<'a, 'o> HubContext<'a, 'o> {
    pub(crate) fn new(
        config: &'a PlanConfig,
        index: &Index<'o>,
        gateways: &GatewaysByVnet,
        hub: &'o VirtualNetwork,
        gateway: &GatewayReadiness,
        spokes: &'a [Spoke<'o>],
    ) -> Self {
        let facts: Vec<SpokeFacts> = spokes
            .iter()
            .map(|spoke| spoke_facts(config, index, gateways, spoke))
            .collect();
        let as_destination = spokes
            .iter()
            .zip(&facts)
            .map(|(spoke, facts)| {
                facts.not_transit_now.as_ref().map(|reason| {
                    let mut reason = Reason::clone(reason);
                    reason.message = format!("the destination spoke: {}", reason.message);
                    reason.at = Some(spoke.enrolled.vnet.id.clone());
                    Arc::new(reason)
                })
            })
            .collect();
        let legs = gateway_legs(index, gateways, hub, spokes, &facts);
        HubContext {
            config,
            spokes,
            facts,
            gateway_reason: gateway_reason(hub, gateway).map(Arc::new),
            as_destination,
            legs,
        }
    }
}

/// Why the hub's gateway carries no transit, if it does not (`docs/design.md` section 1,
/// *gateway*).
fn gateway_reason(hub: &VirtualNetwork, gateway: &GatewayReadiness) -> Option<Reason> {
    let (code, message) = if gateway.gone {
        ("gateway_gone", "the hub has no gateway")
    } else if gateway.unfit_for_routes {
        (
            "gateway_not_vpn",
            "a user route can only name a VPN gateway with no ExpressRoute gateway beside it",
        )
    } else if !gateway.ready_for_transit {
        ("gateway_not_ready", "the hub's gateway is not ready for transit (it must be Succeeded and not of the Basic SKU)")
    } else {
        return None;
    };
    let mut reason = Reason::new(code, None, message.into());
    reason.at = Some(hub.id.clone());
    Some(reason)
}

/// For each spoke, how the hub's `GatewaySubnet` sends traffic to its prefixes, when not
/// through the peering with it: the way back from the gateway (rule 14).
fn gateway_legs(
    index: &Index,
    gateways: &GatewaysByVnet,
    hub: &VirtualNetwork,
    spokes: &[Spoke],
    facts: &[SpokeFacts],
) -> Vec<Option<(Verdict, Arc<Reason>)>> {
    let Some(subnet) = hub.subnet("GatewaySubnet") else {
        return vec![None; spokes.len()];
    };
    let table = subnet.route_table.as_ref().and_then(|id| index.table(id));
    let routes = subnet_routes(hub, table, gateways);
    let selection = Selection::new(&routes);
    spokes
        .iter()
        .zip(facts)
        .map(|(spoke, facts)| {
            let destination = &spoke.enrolled.vnet.id;
            facts.prefixes.iter().find_map(|prefix| {
                selection.segments(*prefix).find_map(|segment| {
                    let route = segment.route.map(|r| &routes[r]);
                    let verdict = match hop_of(route, destination) {
                        Hop::Direct => return None,
                        Hop::Appliance => Verdict::Appliance,
                        _ => Verdict::Unreachable,
                    };
                    let reason = Reason::new(
                        "hub_gateway_subnet",
                        Some("spoke_prefixes_not_to_peering"),
                        "the hub's GatewaySubnet does not send these addresses of the destination to its peering with the hub, so traffic from the gateway does not go straight to it".into(),
                    );
                    let mut reason = located(reason, subnet, &segment, route);
                    reason.at = Some(hub.id.clone());
                    Some((verdict, Arc::new(reason)))
                })
            })
        })
        .collect()
}
