//! Stage 6, what each table can carry (`docs/design.md` section 2, rule 9): for every writable
//! table of a routable spoke, the foreign routes and direct space that stop it from carrying a
//! prefix, and which of the other routable spokes' prefixes it therefore cannot carry.

use std::collections::{BTreeSet, HashMap};

use ipnet::{IpNet, Ipv4Net};

use super::index::Index;
use super::names::{managed_prefix, parse_managed_route_name};
use super::next_hop::is_appliance;
use super::spokes::Spoke;
use crate::config::PlanConfig;
use crate::id::RouteTableId;
use crate::model::{RoutePrefix, RouteTable};

/// Why a table cannot carry a prefix (rule 9).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Block {
    /// A foreign route, named here, has exactly this prefix (9a, `route_conflict`).
    Exact(String),
    /// A foreign appliance or `None` route, named here, contains the prefix (9b,
    /// `route_conflict`, detail `covered_by_foreign`).
    CoveredByForeign(String),
    /// A foreign route, named here, has the name hubspoke would give the route (`name_clash`).
    NameClash(String),
    /// The table's subnets reach the prefix directly (9c; no warning: that is how it should be).
    Direct,
}

/// What one writable table can carry, precomputed from its foreign routes.
pub(crate) struct Carrier {
    pub(super) exact: HashMap<Ipv4Net, String>,
    pub(super) covering: Vec<(Ipv4Net, String)>,
    /// Foreign routes named like a managed route, by the prefix the name stands for.
    pub(super) clashing_names: HashMap<Ipv4Net, String>,
    pub(super) direct: Vec<Ipv4Net>,
    /// The table's foreign routes, which count against the route limit (rule 12).
    pub(crate) foreign_count: usize,
}

impl Carrier {
    /// What `table` (`None`: a table to create) can carry for a spoke whose subnets reach
    /// `direct` directly.
    pub(crate) fn new(config: &PlanConfig, table: Option<&RouteTable>, direct: &[IpNet]) -> Self {
        let mut carrier = Carrier {
            direct: direct
                .iter()
                .filter_map(|net| match net {
                    IpNet::V4(net) => Some(*net),
                    IpNet::V6(_) => None,
                })
                .collect(),
            ..Carrier::permissive()
        };
        let Some(table) = table else {
            return carrier;
        };
        for route in &table.routes {
            if managed_prefix(route).is_some() {
                continue;
            }
            carrier.foreign_count += 1;
            let name = route.id.name().to_owned();
            if let Some(named) = parse_managed_route_name(&name) {
                carrier.clashing_names.insert(named, name.clone());
            }
            let RoutePrefix::Cidr(IpNet::V4(prefix)) = route.address_prefix else {
                continue;
            };
            let prefix = prefix.trunc();
            carrier.exact.entry(prefix).or_insert_with(|| name.clone());
            let over_default_allowed = config.allow_over_default_route && prefix.prefix_len() == 0;
            if is_appliance(&route.next_hop_type) && !over_default_allowed {
                carrier.covering.push((prefix, name));
            }
        }
        carrier.covering.sort();
        carrier
    }

    /// A carrier that blocks nothing, for merging prefixes regardless of any table.
    pub(crate) fn permissive() -> Self {
        Carrier {
            exact: HashMap::new(),
            covering: Vec::new(),
            clashing_names: HashMap::new(),
            direct: Vec::new(),
            foreign_count: 0,
        }
    }

    /// Whether any union of carriable prefixes is carriable (no exact foreign route or clashing
    /// name could stop one).
    pub(crate) fn unions_unrestricted(&self) -> bool {
        self.exact.is_empty() && self.clashing_names.is_empty()
    }

    /// Whether the union of two carriable sibling prefixes is carriable. A prefix that contains
    /// the union contains both halves, which are carriable: so only an exact foreign route or a
    /// clashing name can stop the union.
    pub(crate) fn can_carry_union(&self, union: Ipv4Net) -> bool {
        (self.exact.is_empty() || !self.exact.contains_key(&union))
            && (self.clashing_names.is_empty() || !self.clashing_names.contains_key(&union))
    }

    /// Whether the table can carry `prefix`, and if not why (rule 9).
    pub(crate) fn check(&self, prefix: Ipv4Net) -> Result<(), Block> {
        // Most tables have no foreign routes at all: skip the lookups then.
        if !self.exact.is_empty() {
            if let Some(name) = self.exact.get(&prefix) {
                return Err(Block::Exact(name.clone()));
            }
        }
        if let Some((_, name)) = self.covering.iter().find(|(net, _)| net.contains(&prefix)) {
            return Err(Block::CoveredByForeign(name.clone()));
        }
        if !self.clashing_names.is_empty() {
            if let Some(name) = self.clashing_names.get(&prefix) {
                return Err(Block::NameClash(name.clone()));
            }
        }
        if self.direct.iter().any(|net| net.contains(&prefix)) {
            return Err(Block::Direct);
        }
        Ok(())
    }

    /// The prefixes that may block something: every prefix the table cannot carry is inside one.
    fn blockers(&self) -> Vec<Ipv4Net> {
        let mut blockers: Vec<Ipv4Net> = self.exact.keys().copied().collect();
        blockers.extend(self.covering.iter().map(|(net, _)| *net));
        blockers.extend(self.clashing_names.keys().copied());
        blockers.extend(self.direct.iter().copied());
        blockers
    }
}

/// A writable table of a routable spoke, and what it cannot carry.
pub(crate) struct CarryingTable {
    pub(crate) id: RouteTableId,
    /// The spoke (by position) whose subnets use the table.
    pub(crate) owner: usize,
    pub(crate) carrier: Carrier,
    /// The other routable spokes' prefixes it cannot carry, by spoke position (usually empty).
    pub(crate) blocked: HashMap<usize, Vec<(Ipv4Net, Block)>>,
}

/// The writable tables of the routable spokes.
pub(crate) struct CarryingTables {
    pub(crate) tables: Vec<CarryingTable>,
    /// For each spoke (by position), its tables (by position in `tables`). A writable table
    /// belongs to exactly one spoke (shared ones are not writable), so positions never collide.
    pub(crate) of_spoke: Vec<Vec<usize>>,
}

impl CarryingTables {
    /// Whether every table of `spoke` can carry `prefix`.
    pub(crate) fn all_can_carry(&self, spoke: usize, prefix: Ipv4Net) -> bool {
        self.of_spoke[spoke]
            .iter()
            .all(|&t| self.tables[t].carrier.check(prefix).is_ok())
    }
}

/// Stage 6: what the writable tables of the routable spokes can carry.
pub(crate) fn carrying_tables(
    config: &PlanConfig,
    index: &Index,
    spokes: &[Spoke],
) -> CarryingTables {
    let mut tables = Vec::new();
    let mut of_spoke = vec![Vec::new(); spokes.len()];
    for (i, spoke) in spokes.iter().enumerate().filter(|(_, s)| s.is_routable()) {
        for table in &spoke.coverage.writable_tables {
            of_spoke[i].push(tables.len());
            tables.push(CarryingTable {
                id: table.clone(),
                owner: i,
                carrier: Carrier::new(config, index.table(table), &spoke.transit.direct),
                blocked: HashMap::new(),
            });
        }
    }
    let mut all_prefixes: Vec<(Ipv4Net, usize)> = spokes
        .iter()
        .enumerate()
        .filter(|(_, spoke)| spoke.is_routable())
        .flat_map(|(i, spoke)| spoke.transit.prefixes.iter().map(move |p| (*p, i)))
        .collect();
    all_prefixes.sort_unstable();
    for table in &mut tables {
        table.blocked = blocked_prefixes(&table.carrier, table.owner, &all_prefixes);
    }
    CarryingTables { tables, of_spoke }
}

/// Which of `all_prefixes` (sorted, with their spoke) a table of spoke `owner` cannot carry,
/// found from the table's few blockers rather than by checking every prefix against every
/// table: this keeps the pair stage linear in the number of pairs.
fn blocked_prefixes(
    carrier: &Carrier,
    owner: usize,
    all_prefixes: &[(Ipv4Net, usize)],
) -> HashMap<usize, Vec<(Ipv4Net, Block)>> {
    let mut blocked: HashMap<usize, Vec<(Ipv4Net, Block)>> = HashMap::new();
    let mut seen: BTreeSet<(usize, Ipv4Net)> = BTreeSet::new();
    for blocker in carrier.blockers() {
        let start = all_prefixes.partition_point(|(p, _)| p.network() < blocker.network());
        for &(prefix, spoke) in &all_prefixes[start..] {
            if prefix.network() > blocker.broadcast() {
                break;
            }
            if spoke == owner || !blocker.contains(&prefix) || !seen.insert((spoke, prefix)) {
                continue;
            }
            if let Err(block) = carrier.check(prefix) {
                blocked.entry(spoke).or_default().push((prefix, block));
            }
        }
    }
    blocked
}
