//! Stages 2 to 5, spoke by spoke: each enrolled spoke of the hub through its peering changes,
//! transit and coverage, with their results kept together in one `Spoke`. The later stages read
//! these results (`docs/design.md` section 2; the stages are listed in `mod.rs`).
use super::builder::Builder;
use super::coverage::{coverage, Coverage};
use super::enrolled::{enrolled_spokes, EnrolledSpoke};
use super::gateway::GatewayReadiness;
use super::index::Index;
use super::peering_writes::HubPeerings;
use super::peerings::{peering_changes, SpokePeerings};
use super::transit::{transit_spoke, SpokeTransit};
use crate::config::PlanConfig;
use crate::model::VirtualNetwork;

/// A spoke of the hub being planned: what the spoke stages found and decided about it.
pub(crate) struct Spoke<'o> {
    pub(crate) enrolled: EnrolledSpoke<'o>,
    pub(crate) peerings: SpokePeerings<'o>,
    pub(crate) transit: SpokeTransit,
    pub(crate) coverage: Coverage<'o>,
}

impl Spoke<'_> {
    /// A transit spoke with at least one table hubspoke writes: routes are planned between these.
    pub(crate) fn is_routable(&self) -> bool {
        self.transit.is_transit() && !self.coverage.writable_tables.is_empty()
    }
}

/// Stages 2 to 5: the hub's enrolled spokes, each through its peering changes, transit and
/// coverage (of transit spokes, while the hub's gateway may take routes).
pub(crate) fn spoke_stages<'o>(
    config: &PlanConfig,
    index: &Index<'o>,
    hub: &'o VirtualNetwork,
    gateway: &GatewayReadiness,
    builder: &mut Builder,
) -> Vec<Spoke<'o>> {
    let hub_peerings = HubPeerings::new(hub);
    enrolled_spokes(index, hub, builder)
        .into_iter()
        .map(|enrolled| {
            let peerings = peering_changes(config, hub, &hub_peerings, &enrolled, gateway, builder);
            let transit = transit_spoke(hub, &enrolled, &peerings, builder);
            let coverage = if transit.is_transit() && !gateway.unfit_for_routes {
                coverage(config, index, hub, enrolled.vnet, builder)
            } else {
                Coverage::default()
            };
            Spoke {
                enrolled,
                peerings,
                transit,
                coverage,
            }
        })
        .collect()
}
