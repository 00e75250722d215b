//! Stage 9, desired routes (`docs/design.md` section 2, rule 10): the managed routes every
//! writable table must hold, each with next hop the hub's gateway: the routes to its spoke's
//! routed peers and the summaries it holds. No routes at all when the hub's gateway is gone or
//! unfit for routes (rule 11): every managed route is then stale.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::carry::CarryingTables;
use super::pairs::RoutedPairs;
use super::summaries::Summaries;
use crate::id::RouteTableId;

/// What the writable tables of the hub's transit spokes must hold.
pub(crate) struct Desired {
    pub(crate) tables: BTreeMap<RouteTableId, TableDesire>,
    /// For each spoke (by position), the spokes it is routed to.
    pub(crate) peers: Vec<Vec<usize>>,
}

/// The managed routes one table must hold.
pub(crate) struct TableDesire {
    /// The spoke (by position) whose subnets use the table.
    pub(crate) owner: usize,
    /// Routes to other spokes' prefixes, merged into exact unions where carriable.
    pub(crate) routes: BTreeSet<Ipv4Net>,
    /// Summary prefixes (`HUBSPOKE_SUMMARY_PREFIXES`) the table holds.
    pub(crate) summaries: BTreeSet<Ipv4Net>,
}

impl TableDesire {
    /// Every prefix the table must route to the gateway.
    pub(crate) fn all(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.routes.iter().chain(self.summaries.iter()).copied()
    }
}

impl Desired {
    /// No routes anywhere (rule 11), for `spokes` spokes.
    pub(crate) fn none(spokes: usize) -> Self {
        Desired {
            tables: BTreeMap::new(),
            peers: vec![Vec::new(); spokes],
        }
    }
}

/// Stage 9: the routes of every carrying table, from the routed pairs and the summaries.
pub(crate) fn desired_routes(
    tables: CarryingTables,
    pairs: RoutedPairs,
    summaries: &Summaries,
) -> Desired {
    let mut desired = Desired {
        tables: BTreeMap::new(),
        peers: pairs.peers,
    };
    for (table, routes) in tables.tables.into_iter().zip(pairs.routes) {
        desired.tables.insert(
            table.id,
            TableDesire {
                owner: table.owner,
                routes: routes.into_iter().collect(),
                summaries: summaries.held[table.owner].iter().copied().collect(),
            },
        );
    }
    desired
}
