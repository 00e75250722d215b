//! Rules 8 to 12: which spokes are routed to each other, what each writable table must hold,
//! and the route changes that get it there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::{IpNet, Ipv4Net};
use serde_json::json;

use super::{
    is_appliance, managed_prefix, Action, Builder, GatewayReadiness, Index, RouteSpec, Spoke,
    WarningCode, TAG_EXCLUDE,
};
use crate::config::PlanConfig;
use crate::id::{RouteId, RouteTableId, VnetId};
use crate::model::{RoutePrefix, RouteTable};

/// What the writable tables of the hub's transit spokes must hold.
pub(super) struct Desired {
    pub tables: BTreeMap<RouteTableId, TableDesire>,
    /// For each spoke (by position), the spokes it is routed to.
    pub peers: Vec<Vec<usize>>,
}

/// The managed routes one table must hold.
pub(super) struct TableDesire {
    /// The spoke (by position) whose subnets use the table.
    pub owner: usize,
    /// Routes to other spokes' prefixes, merged into exact unions where carriable.
    pub routes: BTreeSet<Ipv4Net>,
    /// Summary prefixes (`HUBSPOKE_SUMMARY_PREFIXES`) the table holds.
    pub summaries: BTreeSet<Ipv4Net>,
}

impl TableDesire {
    fn all(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.routes.iter().chain(self.summaries.iter()).copied()
    }
}

/// Why a table cannot carry a prefix (rule 9).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Block {
    /// A foreign route has exactly this prefix.
    Exact(String),
    /// A foreign appliance or `None` route contains the prefix.
    CoveredByForeign(String),
    /// A foreign route has the name hubspoke would give the route.
    NameClash(String),
    /// The table's subnets reach the prefix directly (no warning: that is how it should be).
    Direct,
}

/// What one writable table can carry, precomputed from its foreign routes.
struct Carrier {
    exact: HashMap<Ipv4Net, String>,
    covering: Vec<(Ipv4Net, String)>,
    /// Foreign routes named like a managed route, by the prefix the name stands for.
    clashing_names: HashMap<Ipv4Net, String>,
    direct: Vec<Ipv4Net>,
    foreign_count: usize,
}

impl Carrier {
    fn new(config: &PlanConfig, table: Option<&RouteTable>, direct: &[IpNet]) -> Self {
        let mut carrier = Carrier {
            exact: HashMap::new(),
            covering: Vec::new(),
            clashing_names: HashMap::new(),
            direct: direct
                .iter()
                .filter_map(|net| match net {
                    IpNet::V4(net) => Some(*net),
                    IpNet::V6(_) => None,
                })
                .collect(),
            foreign_count: 0,
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
            if let Some(named) = super::parse_managed_route_name(&name) {
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
    fn permissive() -> Self {
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
    fn unions_unrestricted(&self) -> bool {
        self.exact.is_empty() && self.clashing_names.is_empty()
    }

    /// Whether the union of two carriable sibling prefixes is carriable. A prefix that contains
    /// the union contains both halves, which are carriable: so only an exact foreign route or a
    /// clashing name can stop the union.
    fn can_carry_union(&self, union: Ipv4Net) -> bool {
        (self.exact.is_empty() || !self.exact.contains_key(&union))
            && (self.clashing_names.is_empty() || !self.clashing_names.contains_key(&union))
    }

    fn check(&self, prefix: Ipv4Net) -> Result<(), Block> {
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
}

/// Merges `prefixes` into their exact union, as few prefixes as the table can carry: two
/// sibling prefixes become their parent only if the parent is itself carriable.
fn aggregate_carriable(prefixes: &mut Vec<Ipv4Net>, carrier: &Carrier) {
    prefixes.sort_unstable();
    prefixes.dedup();
    let mut stack: Vec<Ipv4Net> = Vec::with_capacity(prefixes.len());
    for &prefix in prefixes.iter() {
        push_merging(&mut stack, prefix, carrier);
    }
    *prefixes = stack;
}

/// Pushes `prefix`, which starts at or after every prefix of the sorted, merged `stack`, and
/// merges siblings upwards.
fn push_merging(stack: &mut Vec<Ipv4Net>, prefix: Ipv4Net, carrier: &Carrier) {
    if stack.last().is_some_and(|last| last.contains(&prefix)) {
        return;
    }
    stack.push(prefix);
    while stack.len() >= 2 {
        let upper = stack[stack.len() - 1];
        let lower = stack[stack.len() - 2];
        let parent = match (lower.supernet(), upper.supernet()) {
            (Some(a), Some(b)) if a == b && lower.prefix_len() == upper.prefix_len() => a,
            _ => break,
        };
        if !carrier.can_carry_union(parent) {
            break;
        }
        stack.truncate(stack.len() - 2);
        stack.push(parent);
    }
}

/// A writable table while routes are being decided.
struct TableState {
    id: RouteTableId,
    owner: usize,
    carrier: Carrier,
    /// Admitted prefixes, sorted and merged: prefixes mostly arrive in address order, and then
    /// merge as they come.
    merged: Vec<Ipv4Net>,
    /// Admitted prefixes that arrived out of order, merged in when the count matters.
    pending: Vec<Ipv4Net>,
    /// The spokes' prefixes this table cannot carry, by spoke position (usually empty).
    blocked: HashMap<usize, Vec<(Ipv4Net, Block)>>,
}

impl TableState {
    fn add(&mut self, prefix: Ipv4Net) {
        let in_order = self.pending.is_empty()
            && self
                .merged
                .last()
                .is_none_or(|last| last.contains(&prefix) || last.broadcast() < prefix.network());
        if in_order {
            push_merging(&mut self.merged, prefix, &self.carrier);
        } else {
            self.pending.push(prefix);
        }
    }

    fn settle(&mut self) {
        if !self.pending.is_empty() {
            self.merged.append(&mut self.pending);
            aggregate_carriable(&mut self.merged, &self.carrier);
        }
    }

    /// Whether `needs` fit under `limit` besides the `fixed` routes (foreign and summaries):
    /// an upper bound first, the exact merged count only near the limit.
    fn fits(&mut self, fixed: usize, needs: &[Ipv4Net], limit: usize) -> bool {
        if fixed + self.merged.len() + self.pending.len() + needs.len() <= limit {
            return true;
        }
        self.settle();
        if fixed + self.merged.len() + needs.len() <= limit {
            return true;
        }
        let mut trial = self.merged.clone();
        trial.extend_from_slice(needs);
        aggregate_carriable(&mut trial, &self.carrier);
        fixed + trial.len() <= limit
    }
}

/// The routes of every table but those of its own spoke: `all` minus `own`, both sorted, with
/// `all` merged and `own` inside it.
fn subtract(all: &[Ipv4Net], own: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut result = all.to_vec();
    for prefix in own {
        let index = result.partition_point(|net| net.network() <= prefix.network());
        let Some(index) = index.checked_sub(1) else {
            continue;
        };
        let holder = result[index];
        if !holder.contains(prefix) {
            continue;
        }
        // What remains of `holder` without `prefix`: the other half at each level down to it.
        let mut pieces = Vec::new();
        let mut current = holder;
        while current != *prefix {
            let Ok(mut halves) = current.subnets(current.prefix_len() + 1) else {
                break;
            };
            let (Some(low), Some(high)) = (halves.next(), halves.next()) else {
                break;
            };
            if low.contains(prefix) {
                pieces.push(high);
                current = low;
            } else {
                pieces.push(low);
                current = high;
            }
        }
        pieces.sort_unstable();
        result.splice(index..=index, pieces);
    }
    result
}

fn fixed_counts(tables: &[TableState], held: &[Vec<Ipv4Net>]) -> Vec<usize> {
    tables
        .iter()
        .map(|table| table.carrier.foreign_count + held[table.owner].len())
        .collect()
}

/// The common case, decided without visiting pairs: when no table of the group blocks any
/// prefix of another member, no two members overlap, and every table can hold the routes to
/// all other members, every pair is routed. Returns false (and changes nothing) otherwise, and
/// the pairs are then admitted one by one.
fn route_whole_group(
    group: &[usize],
    tables: &mut [TableState],
    tables_of: &[Vec<usize>],
    held_key: &[usize],
    residual: &[Vec<Vec<Ipv4Net>>],
    fixed: &[usize],
    limit: usize,
) -> bool {
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
                if fixed[t] + routes.len() > limit {
                    return false;
                }
                proposals.push((t, routes));
            }
        }
    }
    for (t, routes) in proposals {
        tables[t].merged = routes;
        tables[t].pending.clear();
    }
    true
}

/// Computes the routes every writable table must hold (rules 8 to 12).
pub(super) fn desired_routes(
    config: &PlanConfig,
    index: &Index,
    spokes: &[Spoke],
    unmanaged: &[(VnetId, Vec<Ipv4Net>)],
    gateway: &GatewayReadiness,
    builder: &mut Builder,
) -> Desired {
    let mut desired = Desired {
        tables: BTreeMap::new(),
        peers: vec![Vec::new(); spokes.len()],
    };
    // Rule 11: when the gateway is gone or unfit for routes, every managed route is stale.
    if !gateway.routes_allowed() {
        return desired;
    }
    let is_member: Vec<bool> = spokes
        .iter()
        .map(|spoke| spoke.transit.is_transit() && !spoke.coverage.writable_tables.is_empty())
        .collect();
    // Tables by position: a writable table belongs to exactly one spoke (shared ones are not
    // writable), so positions never collide.
    let mut tables: Vec<TableState> = Vec::new();
    let mut tables_of: Vec<Vec<usize>> = vec![Vec::new(); spokes.len()];
    for (i, spoke) in spokes.iter().enumerate().filter(|(i, _)| is_member[*i]) {
        for table in &spoke.coverage.writable_tables {
            tables_of[i].push(tables.len());
            tables.push(TableState {
                id: table.clone(),
                owner: i,
                carrier: Carrier::new(config, index.table(table), &spoke.transit.direct),
                merged: Vec::new(),
                pending: Vec::new(),
                blocked: HashMap::new(),
            });
        }
    }
    // Which spoke prefixes each table cannot carry, found from the table's few blockers rather
    // than by checking every prefix against every table: this keeps the pair loop linear in the
    // number of pairs.
    let mut all_prefixes: Vec<(Ipv4Net, usize)> = spokes
        .iter()
        .enumerate()
        .filter(|(i, _)| is_member[*i])
        .flat_map(|(i, spoke)| spoke.transit.prefixes.iter().map(move |p| (*p, i)))
        .collect();
    all_prefixes.sort_unstable();
    for table in &mut tables {
        let mut blockers: Vec<Ipv4Net> = table.carrier.exact.keys().copied().collect();
        blockers.extend(table.carrier.covering.iter().map(|(net, _)| *net));
        blockers.extend(table.carrier.clashing_names.keys().copied());
        blockers.extend(table.carrier.direct.iter().copied());
        let mut seen: BTreeSet<(usize, Ipv4Net)> = BTreeSet::new();
        for blocker in blockers {
            let start = all_prefixes.partition_point(|(p, _)| p.network() < blocker.network());
            for &(prefix, spoke) in &all_prefixes[start..] {
                if prefix.network() > blocker.broadcast() {
                    break;
                }
                if spoke == table.owner
                    || !blocker.contains(&prefix)
                    || !seen.insert((spoke, prefix))
                {
                    continue;
                }
                if let Err(block) = table.carrier.check(prefix) {
                    table
                        .blocked
                        .entry(spoke)
                        .or_default()
                        .push((prefix, block));
                }
            }
        }
    }
    let can_carry_all = |tables: &[TableState], i: usize, prefix: Ipv4Net| {
        tables_of[i]
            .iter()
            .all(|&t| tables[t].carrier.check(prefix).is_ok())
    };

    // Summary prefixes (rule 10): usable when every VNet connected to the hub inside the
    // summary is a routable spoke of one group that can carry it, so routing stays symmetric.
    let mut held: Vec<Vec<Ipv4Net>> = vec![Vec::new(); spokes.len()];
    for &summary in &config.summary_prefixes {
        let overlaps = |p: &Ipv4Net| p.contains(&summary) || summary.contains(p);
        let inside: Vec<usize> = (0..spokes.len())
            .filter(|&i| {
                spokes[i].peerings.is_connected() && spokes[i].transit.prefixes.iter().any(overlaps)
            })
            .collect();
        if inside.is_empty() {
            continue;
        }
        let group = &spokes[inside[0]].enrolled.group;
        let mut blockers: Vec<String> = inside
            .iter()
            .filter(|&&i| {
                !is_member[i]
                    || spokes[i].enrolled.group != *group
                    || !can_carry_all(&tables, i, summary)
            })
            .map(|&i| spokes[i].enrolled.vnet.id.to_string())
            .collect();
        // The gateway would also deliver to VNets connected to the hub that hubspoke does not
        // manage (excluded, not enrolled, other hubs): they would have no route back.
        blockers.extend(
            unmanaged
                .iter()
                .filter(|(_, prefixes)| prefixes.iter().any(overlaps))
                .map(|(id, _)| id.to_string()),
        );
        if blockers.is_empty() {
            for &i in &inside {
                held[i].push(summary);
            }
        } else {
            builder.warn(
                WarningCode::RouteConflict,
                summary.to_string(),
                "the summary prefix cannot be used: some VNets connected to the hub inside it are not transit spokes of one group that can carry it; prefixes are routed one by one instead".into(),
                json!({ "detail": "summary_not_usable", "vnets": blockers }),
            );
        }
    }

    let limit = config.route_limit;
    let fixed = |tables: &[TableState], t: usize| {
        tables[t].carrier.foreign_count + held[tables[t].owner].len()
    };
    let mut blocked: BTreeMap<(RouteTableId, Block), BTreeSet<Ipv4Net>> = BTreeMap::new();
    let mut over_limit: BTreeMap<RouteTableId, BTreeSet<String>> = BTreeMap::new();
    for t in 0..tables.len() {
        if fixed(&tables, t) > limit {
            over_limit
                .entry(tables[t].id.clone())
                .or_default()
                .insert("summary prefixes".into());
        }
    }

    // Routed pairs (rules 8, 9, 12), admitted in a fixed order so the result is stable.
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in (0..spokes.len()).filter(|&i| is_member[i]) {
        by_group
            .entry(spokes[i].enrolled.group.as_str())
            .or_default()
            .push(i);
    }
    // What V needs to reach W: W's prefixes outside the summaries V holds. Spokes hold one of
    // a few distinct sets of summaries, so the residuals are computed once per set.
    let mut held_sets: Vec<&Vec<Ipv4Net>> = Vec::new();
    let held_key: Vec<usize> = held
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
    let residual: Vec<Vec<Vec<Ipv4Net>>> = spokes
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
    let needs = |to: usize, from: usize| -> &[Ipv4Net] { &residual[from][held_key[to]] };
    for group in by_group.values() {
        let fixed_now = fixed_counts(&tables, &held);
        if route_whole_group(
            group,
            &mut tables,
            &tables_of,
            &held_key,
            &residual,
            &fixed_now,
            limit,
        ) {
            for &v in group {
                desired.peers[v].extend(group.iter().copied().filter(|&w| w != v));
            }
            continue;
        }
        for (position, &v) in group.iter().enumerate() {
            for &w in &group[position + 1..] {
                let needs_v = needs(v, w);
                let needs_w = needs(w, v);
                if needs_v.is_empty() && needs_w.is_empty() {
                    desired.peers[v].push(w);
                    desired.peers[w].push(v);
                    continue;
                }
                let mut pair_blocked = false;
                for (i, other, needs) in [(v, w, &needs_v), (w, v, &needs_w)] {
                    for &t in &tables_of[i] {
                        if tables[t].blocked.is_empty() {
                            continue;
                        }
                        let Some(list) = tables[t].blocked.get(&other) else {
                            continue;
                        };
                        for (prefix, block) in list {
                            if !needs.contains(prefix) {
                                continue;
                            }
                            pair_blocked = true;
                            if *block != Block::Direct {
                                blocked
                                    .entry((tables[t].id.clone(), block.clone()))
                                    .or_default()
                                    .insert(*prefix);
                            }
                        }
                    }
                }
                if pair_blocked {
                    continue;
                }
                let mut fits = true;
                for (i, needs) in [(v, &needs_v), (w, &needs_w)] {
                    for &t in &tables_of[i] {
                        let fixed = fixed(&tables, t);
                        fits &= tables[t].fits(fixed, needs, limit);
                    }
                }
                if !fits {
                    for (i, other) in [(v, w), (w, v)] {
                        for &t in &tables_of[i] {
                            over_limit
                                .entry(tables[t].id.clone())
                                .or_default()
                                .insert(spokes[other].enrolled.vnet.id.to_string());
                        }
                    }
                    continue;
                }
                for (i, needs) in [(v, &needs_v), (w, &needs_w)] {
                    for &t in &tables_of[i] {
                        for prefix in needs.iter() {
                            tables[t].add(*prefix);
                        }
                    }
                }
                desired.peers[v].push(w);
                desired.peers[w].push(v);
            }
        }
    }

    for ((table, block), prefixes) in blocked {
        let (code, detail, route) = match block {
            Block::Exact(route) => (WarningCode::RouteConflict, "exact", route),
            Block::CoveredByForeign(route) => {
                (WarningCode::RouteConflict, "covered_by_foreign", route)
            }
            Block::NameClash(route) => (WarningCode::NameClash, "route_name", route),
            Block::Direct => continue,
        };
        let message = match code {
            WarningCode::NameClash => "a route hubspoke did not write has the name hubspoke would give its route; the spokes it would reach are not routed to this table's spoke".to_owned(),
            _ if detail == "exact" => "a route hubspoke did not write has the same prefix; the spokes behind it are not routed to this table's spoke (in either direction)".to_owned(),
            _ => "a route of the table sends these prefixes to an appliance or drops them, and a more specific route would bypass it; the spokes behind them are not routed to this table's spoke (in either direction)".to_owned(),
        };
        builder.warn(
            code,
            table.to_string(),
            message,
            json!({
                "detail": detail,
                "route": RouteId::new(&table, &route).to_string(),
                "prefixes": prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            }),
        );
    }
    for (table, peers) in over_limit {
        builder.warn(
            WarningCode::RouteLimitExceeded,
            table.to_string(),
            format!("routes to these spokes would take the table past {limit} routes (HUBSPOKE_ROUTE_LIMIT); they are not routed to this table's spoke, in either direction. Consider HUBSPOKE_SUMMARY_PREFIXES."),
            json!({ "limit": limit, "notRouted": peers }),
        );
    }

    for mut table in tables {
        table.settle();
        desired.tables.insert(
            table.id,
            TableDesire {
                owner: table.owner,
                routes: table.merged.into_iter().collect(),
                summaries: held[table.owner].iter().copied().collect(),
            },
        );
    }
    desired
}

/// Turns the desired routes into changes (rules 6, 10, 11): table creations, associations,
/// upserts, and deletions of stale managed routes in every table the hub claims.
pub(super) fn plan_route_changes(
    index: &Index,
    claims: &HashMap<RouteTableId, VnetId>,
    hub: &VnetId,
    spokes: &[Spoke],
    desired: &Desired,
    config: &PlanConfig,
    builder: &mut Builder,
) {
    let mut domain: BTreeSet<RouteTableId> = claims
        .iter()
        .filter(|(_, owner)| *owner == hub)
        .map(|(table, _)| table.clone())
        .collect();
    domain.extend(desired.tables.keys().cloned());
    for table_id in &domain {
        let table = index.table(table_id);
        if table.is_some_and(|t| t.tags.is_true(TAG_EXCLUDE)) {
            continue;
        }
        let want = desired.tables.get(table_id);
        let wanted: BTreeSet<Ipv4Net> = want.map(|w| w.all().collect()).unwrap_or_default();
        // A route waits for its spoke's peering changes, and for the sync of every spoke whose
        // (new) prefixes it carries: the prefixes are only reachable once programmed.
        let syncing: Vec<&Spoke> = want
            .map(|w| {
                desired.peers[w.owner]
                    .iter()
                    .map(|&peer| &spokes[peer])
                    .filter(|peer| peer.peerings.sync_change.is_some())
                    .collect()
            })
            .unwrap_or_default();
        let route_deps = |prefix: Ipv4Net| -> Vec<usize> {
            let Some(want) = want else {
                return Vec::new();
            };
            let mut deps = spokes[want.owner].peerings.changes.clone();
            for peer in &syncing {
                if peer
                    .transit
                    .prefixes
                    .iter()
                    .any(|p| prefix.contains(p) || p.contains(&prefix))
                {
                    deps.extend(peer.peerings.sync_change);
                }
            }
            deps
        };
        let Some(table) = table else {
            // A managed table to create, with its routes, then its subnets.
            let Some(want) = want else {
                continue;
            };
            let owner = &spokes[want.owner];
            let routes: Vec<RouteSpec> = wanted.iter().map(|p| RouteSpec::managed(*p)).collect();
            let mut deps: Vec<usize> = wanted.iter().flat_map(|p| route_deps(*p)).collect();
            deps.extend(owner.peerings.changes.iter().copied());
            let created = builder.push(
                1,
                Action::CreateRouteTable {
                    target: table_id.clone(),
                    location: owner.enrolled.vnet.location.clone(),
                    disable_bgp_route_propagation: config.disable_bgp_propagation,
                    routes,
                },
                format!(
                    "{} has subnets without a route table: create hubspoke's table for it",
                    owner.enrolled.vnet.id.name()
                ),
                deps,
            );
            associate(builder, owner, table_id, Some(created));
            continue;
        };

        let observed: BTreeMap<Ipv4Net, &crate::model::Route> = table
            .routes
            .iter()
            .filter_map(|route| managed_prefix(route).map(|p| (p, route)))
            .collect();
        let mut upserts: Vec<(Ipv4Net, usize)> = Vec::new();
        for prefix in &wanted {
            let after = RouteSpec::managed(*prefix);
            let before = observed.get(prefix).map(|route| spec_of(route));
            let current = before.as_ref().is_some_and(|b| {
                b.next_hop_type.eq_ignore_ascii_case(&after.next_hop_type)
                    && b.next_hop_ip_address.is_none()
            });
            if current {
                continue;
            }
            let reason = match &before {
                None => format!("route {prefix} to the hub gateway is missing"),
                Some(b) => format!(
                    "route {prefix} sends to {} instead of the hub gateway",
                    b.next_hop_type
                ),
            };
            let id = builder.push(
                1,
                Action::UpsertRoute {
                    target: RouteId::new(table_id, &after.name),
                    before,
                    after,
                },
                reason,
                route_deps(*prefix),
            );
            upserts.push((*prefix, id));
        }
        let covered = aggregate(&wanted);
        for (prefix, route) in &observed {
            if wanted.contains(prefix) {
                continue;
            }
            let still_routed = covered.iter().any(|net| net.contains(prefix));
            let before = spec_of(route);
            if still_routed {
                // Make before break: the routes that take over go first.
                let deps: Vec<usize> = upserts
                    .iter()
                    .filter(|(p, _)| prefix.contains(p) || p.contains(prefix))
                    .map(|(_, id)| *id)
                    .collect();
                builder.push(
                    1,
                    Action::DeleteRoute {
                        target: route.id.clone(),
                        before,
                    },
                    format!("route {prefix} changes shape: its space is now routed by other hubspoke routes"),
                    deps,
                );
            } else {
                // Vanished space leaves first. Where part of the route's space is still routed by
                // a replacement that waits for nothing else, the replacement goes first too, so
                // the surviving spokes never lose their route.
                let mut deps = Vec::new();
                for (p, id) in &upserts {
                    if prefix.contains(p) && builder.changes[*id].depends_on.is_empty() {
                        builder.changes[*id].phase = 0;
                        deps.push(*id);
                    }
                }
                builder.push(
                    0,
                    Action::DeleteRoute {
                        target: route.id.clone(),
                        before,
                    },
                    format!("route {prefix} is stale: the space it routes is no longer a routed spoke's"),
                    deps,
                );
            }
        }
        if let Some(want) = want {
            associate(builder, &spokes[want.owner], table_id, None);
        }
    }
}

fn associate(builder: &mut Builder, spoke: &Spoke, table: &RouteTableId, created: Option<usize>) {
    if spoke.coverage.associate.is_empty()
        || super::managed_table_id(&spoke.enrolled.vnet.id) != *table
    {
        return;
    }
    for subnet in &spoke.coverage.associate {
        let mut deps = spoke.peerings.changes.clone();
        deps.extend(created);
        builder.push(
            1,
            Action::AssociateRouteTable {
                target: subnet.id.clone(),
                route_table: table.clone(),
                subnet_as_read: subnet.raw.clone(),
            },
            "the subnet has no route table: give it hubspoke's table of its VNet".into(),
            deps,
        );
    }
}

fn spec_of(route: &crate::model::Route) -> RouteSpec {
    RouteSpec {
        name: route.id.name().to_owned(),
        address_prefix: route.address_prefix.to_string(),
        next_hop_type: route.next_hop_type.clone(),
        next_hop_ip_address: route.next_hop_ip_address.map(|ip| ip.to_string()),
    }
}

/// The exact union of `nets`, as few prefixes as possible.
fn aggregate(nets: &BTreeSet<Ipv4Net>) -> Vec<Ipv4Net> {
    let list: Vec<Ipv4Net> = nets.iter().copied().collect();
    Ipv4Net::aggregate(&list)
}
