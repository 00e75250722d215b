//! Stage 8, routed pairs (`docs/design.md` section 2, rules 8, 9 and 12): which routable spokes
//! are routed to each other, and the routes each writable table then holds. Two spokes of one
//! group are routed to each other only when every table of each can carry the other's prefixes
//! (symmetric, so traffic never goes out through the gateway and back another way) and stays
//! within the route limit. Pairs are admitted in a fixed order so that the result is stable;
//! the common case, a group with nothing in the way, is decided without visiting pairs.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ipnet::Ipv4Net;
use serde_json::json;

use super::builder::Builder;
use super::carry::{Block, Carrier, CarryingTables};
use super::merge::{aggregate_carriable, push_merging, subtract};
use super::spokes::Spoke;
use super::summaries::Summaries;
use super::types::WarningCode;
use crate::config::PlanConfig;
use crate::id::{RouteId, RouteTableId};

/// Who is routed to whom, and the routes that takes.
pub(crate) struct RoutedPairs {
    /// For each spoke (by position), the spokes it is routed to.
    pub(crate) peers: Vec<Vec<usize>>,
    /// For each carrying table (by position), the routes to its spoke's peers that its
    /// summaries do not cover, merged into exact carriable unions (rule 10).
    pub(crate) routes: Vec<Vec<Ipv4Net>>,
}

/// Stage 8: the routed pairs of each group, with the pairs that are not reported
/// (`route_conflict`, `name_clash`, `route_limit_exceeded`).
pub(crate) fn routed_pairs(
    config: &PlanConfig,
    spokes: &[Spoke],
    tables: &CarryingTables,
    summaries: &Summaries,
    builder: &mut Builder,
) -> RoutedPairs {
    let mut router = Router::new(config.route_limit, spokes, tables, summaries);
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, spoke) in spokes.iter().enumerate().filter(|(_, s)| s.is_routable()) {
        groups
            .entry(spoke.enrolled.group.as_str())
            .or_default()
            .push(i);
    }
    for group in groups.values() {
        router.route_group(group);
    }
    router.report(builder);
    router.finish()
}

/// What spoke V needs to reach W: W's prefixes outside the summaries V holds. Spokes hold one
/// of a few distinct sets of summaries, so these are computed once per set.
struct Needs {
    /// For each spoke, the position of its set of summaries.
    held_key: Vec<usize>,
    /// For each spoke, its prefixes outside each set of summaries.
    residual: Vec<Vec<Vec<Ipv4Net>>>,
}

impl Needs {
    fn new(spokes: &[Spoke], summaries: &Summaries) -> Self {
        let mut held_sets: Vec<&Vec<Ipv4Net>> = Vec::new();
        let held_key: Vec<usize> = summaries
            .held
            .iter()
            .map(
                |set| match held_sets.iter().position(|known| *known == set) {
                    Some(key) => key,
                    None => {
                        held_sets.push(set);
                        held_sets.len() - 1
                    }
                },
            )
            .collect();
        let residual = spokes
            .iter()
            .map(|spoke| {
                held_sets
                    .iter()
                    .map(|set| {
                        spoke
                            .transit
                            .prefixes
                            .iter()
                            .filter(|p| !set.iter().any(|s| s.contains(*p)))
                            .copied()
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Needs { held_key, residual }
    }

    /// What `to` needs to reach `from`.
    fn of(&self, to: usize, from: usize) -> &[Ipv4Net] {
        &self.residual[from][self.held_key[to]]
    }
}

/// The routes admitted to one table so far.
#[derive(Default)]
struct TableFill {
    /// Sorted and merged: prefixes mostly arrive in address order, and then merge as they come.
    merged: Vec<Ipv4Net>,
    /// Prefixes that arrived out of order, merged in when the count matters.
    pending: Vec<Ipv4Net>,
}

impl TableFill {
    fn add(&mut self, prefix: Ipv4Net, carrier: &Carrier) {
        let in_order = self.pending.is_empty()
            && self
                .merged
                .last()
                .is_none_or(|last| last.contains(&prefix) || last.broadcast() < prefix.network());
        if in_order {
            push_merging(&mut self.merged, prefix, carrier);
        } else {
            self.pending.push(prefix);
        }
    }

    fn settle(&mut self, carrier: &Carrier) {
        if !self.pending.is_empty() {
            self.merged.append(&mut self.pending);
            aggregate_carriable(&mut self.merged, carrier);
        }
    }

    /// Whether `needs` fit under `limit` besides the `fixed` routes (foreign and summaries):
    /// an upper bound first, the exact merged count only near the limit.
    fn fits(&mut self, carrier: &Carrier, fixed: usize, needs: &[Ipv4Net], limit: usize) -> bool {
        if fixed + self.merged.len() + self.pending.len() + needs.len() <= limit {
            return true;
        }
        self.settle(carrier);
        if fixed + self.merged.len() + needs.len() <= limit {
            return true;
        }
        let mut trial = self.merged.clone();
        trial.extend_from_slice(needs);
        aggregate_carriable(&mut trial, carrier);
        fixed + trial.len() <= limit
    }
}

/// The pair stage's state: the tables' fills and what was not routed, and why.
struct Router<'a, 'o> {
    limit: usize,
    spokes: &'a [Spoke<'o>],
    tables: &'a CarryingTables,
    needs: Needs,
    /// The routes each table holds besides those admitted: its foreign routes and summaries.
    fixed: Vec<usize>,
    fills: Vec<TableFill>,
    peers: Vec<Vec<usize>>,
    /// Prefixes not routed because a table cannot carry them (rule 9), by table and reason.
    blocked: BTreeMap<(RouteTableId, Block), BTreeSet<Ipv4Net>>,
    /// Spokes not routed to a table's spoke because of the route limit (rule 12).
    over_limit: BTreeMap<RouteTableId, BTreeSet<String>>,
}

impl<'a, 'o> Router<'a, 'o> {
    fn new(
        limit: usize,
        spokes: &'a [Spoke<'o>],
        tables: &'a CarryingTables,
        summaries: &Summaries,
    ) -> Self {
        let fixed: Vec<usize> = tables
            .tables
            .iter()
            .map(|table| table.carrier.foreign_count + summaries.held[table.owner].len())
            .collect();
        let mut over_limit: BTreeMap<RouteTableId, BTreeSet<String>> = BTreeMap::new();
        for (table, fixed) in tables.tables.iter().zip(&fixed) {
            if *fixed > limit {
                over_limit
                    .entry(table.id.clone())
                    .or_default()
                    .insert("summary prefixes".into());
            }
        }
        Router {
            limit,
            spokes,
            tables,
            needs: Needs::new(spokes, summaries),
            fixed,
            fills: tables.tables.iter().map(|_| TableFill::default()).collect(),
            peers: vec![Vec::new(); spokes.len()],
            blocked: BTreeMap::new(),
            over_limit,
        }
    }

    fn route_group(&mut self, group: &[usize]) {
        if self.route_whole_group(group) {
            for &v in group {
                self.peers[v].extend(group.iter().copied().filter(|&w| w != v));
            }
            return;
        }
        for (position, &v) in group.iter().enumerate() {
            for &w in &group[position + 1..] {
                self.admit_pair(v, w);
            }
        }
    }

    /// The common case, decided without visiting pairs: when no table of the group blocks any
    /// prefix of another member, no two members overlap, and every table can hold the routes to
    /// all other members, every pair is routed. Returns false (and changes nothing) otherwise,
    /// and the pairs are then admitted one by one.
    fn route_whole_group(&mut self, group: &[usize]) -> bool {
        let tables = &self.tables.tables;
        let tables_of = &self.tables.of_spoke;
        let in_group: HashSet<usize> = group.iter().copied().collect();
        let blocks = group.iter().flat_map(|&v| &tables_of[v]).any(|&t| {
            tables[t]
                .blocked
                .keys()
                .any(|spoke| in_group.contains(spoke))
        });
        if blocks {
            return false;
        }
        let Needs { held_key, residual } = &self.needs;
        let keys: BTreeSet<usize> = group.iter().map(|&v| held_key[v]).collect();
        let mut proposals: Vec<(usize, Vec<Ipv4Net>)> = Vec::new();
        for key in keys {
            let mut all: Vec<Ipv4Net> = group
                .iter()
                .flat_map(|&w| residual[w][key].iter().copied())
                .collect();
            all.sort_unstable();
            if all
                .windows(2)
                .any(|pair| pair[0].contains(&pair[1]) || pair[1].contains(&pair[0]))
            {
                return false;
            }
            let mut merged = all.clone();
            aggregate_carriable(&mut merged, &Carrier::permissive());
            for &v in group.iter().filter(|&&v| held_key[v] == key) {
                let own = &residual[v][key];
                for &t in &tables_of[v] {
                    let routes = if tables[t].carrier.unions_unrestricted() {
                        subtract(&merged, own)
                    } else {
                        let mut others: Vec<Ipv4Net> =
                            all.iter().filter(|p| !own.contains(p)).copied().collect();
                        aggregate_carriable(&mut others, &tables[t].carrier);
                        others
                    };
                    if self.fixed[t] + routes.len() > self.limit {
                        return false;
                    }
                    proposals.push((t, routes));
                }
            }
        }
        for (t, routes) in proposals {
            self.fills[t].merged = routes;
            self.fills[t].pending.clear();
        }
        true
    }

    /// Routes `v` and `w` to each other if every table of each can carry and hold what it
    /// needs to reach the other; otherwise records why not.
    fn admit_pair(&mut self, v: usize, w: usize) {
        let needs_v = self.needs.of(v, w);
        let needs_w = self.needs.of(w, v);
        if needs_v.is_empty() && needs_w.is_empty() {
            self.peers[v].push(w);
            self.peers[w].push(v);
            return;
        }
        let tables = &self.tables.tables;
        let tables_of = &self.tables.of_spoke;
        let sides = [(v, w, needs_v), (w, v, needs_w)];
        if pair_blocked(self.tables, &sides, &mut self.blocked) {
            return;
        }
        let mut fits = true;
        for (i, _, needs) in sides {
            for &t in &tables_of[i] {
                fits &= self.fills[t].fits(&tables[t].carrier, self.fixed[t], needs, self.limit);
            }
        }
        if !fits {
            for (i, other, _) in sides {
                for &t in &tables_of[i] {
                    self.over_limit
                        .entry(tables[t].id.clone())
                        .or_default()
                        .insert(self.spokes[other].enrolled.vnet.id.to_string());
                }
            }
            return;
        }
        for (i, _, needs) in sides {
            for &t in &tables_of[i] {
                for prefix in needs.iter() {
                    self.fills[t].add(*prefix, &tables[t].carrier);
                }
            }
        }
        self.peers[v].push(w);
        self.peers[w].push(v);
    }

    /// The warnings of the pairs that are not routed: by table and reason for prefixes a table
    /// cannot carry (a route of the spoke's own direct space is no conflict), by table for the
    /// route limit.
    fn report(&self, builder: &mut Builder) {
        for ((table, block), prefixes) in &self.blocked {
            report_blocked(table, block, prefixes, builder);
        }
        for (table, peers) in &self.over_limit {
            builder.warn(
                WarningCode::RouteLimitExceeded,
                table.to_string(),
                format!("routes to these spokes would take the table past {} routes (HUBSPOKE_ROUTE_LIMIT); they are not routed to this table's spoke, in either direction. Consider HUBSPOKE_SUMMARY_PREFIXES.", self.limit),
                json!({ "limit": self.limit, "notRouted": peers }),
            );
        }
    }

    fn finish(self) -> RoutedPairs {
        let routes = self
            .fills
            .into_iter()
            .zip(&self.tables.tables)
            .map(|(mut fill, table)| {
                fill.settle(&table.carrier);
                fill.merged
            })
            .collect();
        RoutedPairs {
            peers: self.peers,
            routes,
        }
    }
}

/// Whether a table of either side cannot carry a prefix the side needs to reach the other
/// (`sides`: spoke, other spoke, what it needs); records the blocks worth reporting.
fn pair_blocked(
    tables: &CarryingTables,
    sides: &[(usize, usize, &[Ipv4Net]); 2],
    blocked: &mut BTreeMap<(RouteTableId, Block), BTreeSet<Ipv4Net>>,
) -> bool {
    let mut pair_blocked = false;
    for &(i, other, needs) in sides {
        for &t in &tables.of_spoke[i] {
            let table = &tables.tables[t];
            if table.blocked.is_empty() {
                continue;
            }
            let Some(list) = table.blocked.get(&other) else {
                continue;
            };
            for (prefix, block) in list {
                if !needs.contains(prefix) {
                    continue;
                }
                pair_blocked = true;
                if *block != Block::Direct {
                    blocked
                        .entry((table.id.clone(), block.clone()))
                        .or_default()
                        .insert(*prefix);
                }
            }
        }
    }
    pair_blocked
}

fn report_blocked(
    table: &RouteTableId,
    block: &Block,
    prefixes: &BTreeSet<Ipv4Net>,
    builder: &mut Builder,
) {
    let (code, detail, route, message) = match block {
        Block::Exact(route) => (
            WarningCode::RouteConflict,
            "exact",
            route,
            "a route hubspoke did not write has the same prefix; the spokes behind it are not routed to this table's spoke (in either direction)",
        ),
        Block::CoveredByForeign(route) => (
            WarningCode::RouteConflict,
            "covered_by_foreign",
            route,
            "a route of the table sends these prefixes to an appliance or drops them, and a more specific route would bypass it; the spokes behind them are not routed to this table's spoke (in either direction)",
        ),
        Block::NameClash(route) => (
            WarningCode::NameClash,
            "route_name",
            route,
            "a route hubspoke did not write has the name hubspoke would give its route; the spokes it would reach are not routed to this table's spoke",
        ),
        Block::Direct => return,
    };
    builder.warn(
        code,
        table.to_string(),
        message.to_owned(),
        json!({
            "detail": detail,
            "route": RouteId::new(table, route).to_string(),
            "prefixes": prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        }),
    );
}
