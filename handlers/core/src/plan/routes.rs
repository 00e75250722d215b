//! Rules 8 to 12: which spokes are routed to each other, what each writable table must hold,
//! and the route changes that get it there.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::{IpNet, Ipv4Net};
use serde_json::json;

use super::{
    is_appliance, managed_prefix, Action, Builder, GatewayView, Index, RouteSpec, Spoke,
    WarningCode, TAG_EXCLUDE, TAG_MANAGED,
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
    clashing_names: HashMap<String, String>,
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
            if super::parse_managed_route_name(&name).is_some() {
                carrier
                    .clashing_names
                    .insert(name.to_ascii_lowercase(), name.clone());
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

    fn check(&self, prefix: Ipv4Net) -> Result<(), Block> {
        if let Some(name) = self.exact.get(&prefix) {
            return Err(Block::Exact(name.clone()));
        }
        if let Some((_, name)) = self.covering.iter().find(|(net, _)| net.contains(&prefix)) {
            return Err(Block::CoveredByForeign(name.clone()));
        }
        if let Some(name) = self
            .clashing_names
            .get(&super::managed_route_name(prefix).to_ascii_lowercase())
        {
            return Err(Block::NameClash(name.clone()));
        }
        if self.direct.iter().any(|net| net.contains(&prefix)) {
            return Err(Block::Direct);
        }
        Ok(())
    }
}

/// A table's managed prefixes as they are being decided: kept as exact unions where the union
/// itself is carriable.
#[derive(Clone, Default)]
struct RouteSet {
    nets: BTreeSet<Ipv4Net>,
}

impl RouteSet {
    fn covers(&self, prefix: Ipv4Net) -> bool {
        (0..=prefix.prefix_len()).any(|len| {
            Ipv4Net::new(prefix.network(), len)
                .map(|net| self.nets.contains(&net.trunc()))
                .unwrap_or(false)
        })
    }

    fn insert(&mut self, prefix: Ipv4Net, carrier: &Carrier) {
        if self.covers(prefix) {
            return;
        }
        let inside: Vec<Ipv4Net> = self
            .nets
            .range(prefix..)
            .take_while(|net| net.network() <= prefix.broadcast())
            .filter(|net| prefix.contains(*net))
            .copied()
            .collect();
        for net in inside {
            self.nets.remove(&net);
        }
        let mut current = prefix;
        while let Some(parent) = current.supernet() {
            let sibling = parent
                .subnets(current.prefix_len())
                .ok()
                .and_then(|mut halves| halves.find(|half| *half != current));
            match sibling {
                Some(sibling) if self.nets.contains(&sibling) && carrier.check(parent).is_ok() => {
                    self.nets.remove(&sibling);
                    current = parent;
                }
                _ => break,
            }
        }
        self.nets.insert(current);
    }
}

/// Computes the routes every writable table must hold (rules 8 to 12).
pub(super) fn desired_routes(
    config: &PlanConfig,
    index: &Index,
    spokes: &[Spoke],
    unmanaged: &[(VnetId, Vec<Ipv4Net>)],
    gateway: &GatewayView,
    builder: &mut Builder,
) -> Desired {
    let mut desired = Desired {
        tables: BTreeMap::new(),
        peers: vec![Vec::new(); spokes.len()],
    };
    // Rule 11: when the gateway is gone or unfit for routes, every managed route is stale.
    if gateway.gone || gateway.unfit_for_routes {
        return desired;
    }
    let members: Vec<usize> = (0..spokes.len())
        .filter(|&i| spokes[i].transit && !spokes[i].writable_tables.is_empty())
        .collect();
    let mut carriers: HashMap<RouteTableId, Carrier> = HashMap::new();
    for &i in &members {
        for table in &spokes[i].writable_tables {
            carriers.insert(
                table.clone(),
                Carrier::new(config, index.table(table), &spokes[i].direct),
            );
        }
    }
    let tables_of = |i: usize| spokes[i].writable_tables.iter();
    let can_carry_all = |i: usize, prefix: Ipv4Net| {
        tables_of(i).all(|table| carriers.get(table).is_some_and(|c| c.check(prefix).is_ok()))
    };

    // Summary prefixes (rule 10): usable when every connected spoke inside is a routable member
    // of one group that can carry the summary, so that routing stays symmetric.
    let mut held: Vec<Vec<Ipv4Net>> = vec![Vec::new(); spokes.len()];
    for &summary in &config.summary_prefixes {
        let inside: Vec<usize> = (0..spokes.len())
            .filter(|&i| {
                spokes[i].connected
                    && spokes[i]
                        .prefixes
                        .iter()
                        .any(|p| p.contains(&summary) || summary.contains(p))
            })
            .collect();
        if inside.is_empty() {
            continue;
        }
        let group = &spokes[inside[0]].group;
        let mut blockers: Vec<String> = inside
            .iter()
            .filter(|&&i| {
                !members.contains(&i) || spokes[i].group != *group || !can_carry_all(i, summary)
            })
            .map(|&i| spokes[i].vnet.id.to_string())
            .collect();
        // The gateway would also deliver to VNets connected to the hub that hubspoke does not
        // manage (excluded, not enrolled, other hubs): they would have no route back.
        blockers.extend(
            unmanaged
                .iter()
                .filter(|(_, prefixes)| {
                    prefixes
                        .iter()
                        .any(|p| p.contains(&summary) || summary.contains(p))
                })
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
                "the summary prefix cannot be used: some spokes inside it are not transit, are in another group, or cannot carry it; their prefixes are routed one by one instead".into(),
                json!({ "detail": "summary_not_usable", "spokes": blockers }),
            );
        }
    }

    let mut sets: HashMap<RouteTableId, RouteSet> = HashMap::new();
    let mut blocked: BTreeMap<(RouteTableId, Block), BTreeSet<Ipv4Net>> = BTreeMap::new();
    let mut over_limit: BTreeMap<RouteTableId, BTreeSet<String>> = BTreeMap::new();
    let limit = config.route_limit;
    let count = |sets: &HashMap<RouteTableId, RouteSet>, table: &RouteTableId, i: usize| {
        carriers.get(table).map_or(0, |c| c.foreign_count)
            + held[i].len()
            + sets.get(table).map_or(0, |s| s.nets.len())
    };
    for &summary_holder in &members {
        for table in tables_of(summary_holder) {
            if count(&sets, table, summary_holder) > limit {
                over_limit
                    .entry(table.clone())
                    .or_default()
                    .insert("summary prefixes".into());
            }
        }
    }

    // Routed pairs (rules 8, 9, 12), admitted in a fixed order so the result is stable.
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in &members {
        by_group
            .entry(spokes[i].group.as_str())
            .or_default()
            .push(i);
    }
    for group in by_group.values() {
        for (position, &v) in group.iter().enumerate() {
            for &w in &group[position + 1..] {
                let needs = |to: usize, from: usize| -> Vec<Ipv4Net> {
                    spokes[from]
                        .prefixes
                        .iter()
                        .filter(|p| !held[to].iter().any(|s| s.contains(*p)))
                        .copied()
                        .collect()
                };
                let needs_v = needs(v, w);
                let needs_w = needs(w, v);
                if needs_v.is_empty() && needs_w.is_empty() {
                    desired.peers[v].push(w);
                    desired.peers[w].push(v);
                    continue;
                }
                // Limit first: it is the cheap check, and it fails most often at scale.
                let fits = |sets: &HashMap<RouteTableId, RouteSet>, i: usize, needs: &[Ipv4Net]| {
                    tables_of(i).all(|table| {
                        let current = count(sets, table, i);
                        if current + needs.len() <= limit {
                            return true;
                        }
                        let (Some(carrier), mut set) = (
                            carriers.get(table),
                            sets.get(table).cloned().unwrap_or_default(),
                        ) else {
                            return false;
                        };
                        for prefix in needs {
                            set.insert(*prefix, carrier);
                        }
                        current - sets.get(table).map_or(0, |s| s.nets.len()) + set.nets.len()
                            <= limit
                    })
                };
                let mut pair_blocked = false;
                for (i, needs) in [(v, &needs_v), (w, &needs_w)] {
                    for table in tables_of(i) {
                        let Some(carrier) = carriers.get(table) else {
                            pair_blocked = true;
                            continue;
                        };
                        for prefix in needs.iter() {
                            if let Err(block) = carrier.check(*prefix) {
                                pair_blocked = true;
                                if block != Block::Direct {
                                    blocked
                                        .entry((table.clone(), block))
                                        .or_default()
                                        .insert(*prefix);
                                }
                            }
                        }
                    }
                }
                if pair_blocked {
                    continue;
                }
                if !fits(&sets, v, &needs_v) || !fits(&sets, w, &needs_w) {
                    for (i, other) in [(v, w), (w, v)] {
                        for table in tables_of(i) {
                            over_limit
                                .entry(table.clone())
                                .or_default()
                                .insert(spokes[other].vnet.id.to_string());
                        }
                    }
                    continue;
                }
                for (i, needs) in [(v, &needs_v), (w, &needs_w)] {
                    for table in tables_of(i) {
                        let Some(carrier) = carriers.get(table) else {
                            continue;
                        };
                        let set = sets.entry(table.clone()).or_default();
                        for prefix in needs.iter() {
                            set.insert(*prefix, carrier);
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

    for &i in &members {
        for table in tables_of(i) {
            desired.tables.insert(
                table.clone(),
                TableDesire {
                    owner: i,
                    routes: sets.get(table).map(|s| s.nets.clone()).unwrap_or_default(),
                    summaries: held[i].iter().copied().collect(),
                },
            );
        }
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
        let route_deps = |prefix: Ipv4Net| -> Vec<usize> {
            let Some(want) = want else {
                return Vec::new();
            };
            let owner = &spokes[want.owner];
            let mut deps = owner.peering_changes.clone();
            if want.routes.contains(&prefix) {
                for &peer in &desired.peers[want.owner] {
                    let peer = &spokes[peer];
                    if peer
                        .prefixes
                        .iter()
                        .any(|p| prefix.contains(p) || p.contains(&prefix))
                    {
                        deps.extend(peer.peering_changes.iter().copied());
                        deps.extend(peer.sync_change);
                    }
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
            deps.extend(owner.peering_changes.iter().copied());
            let body = json!({
                "location": owner.vnet.location,
                "tags": { TAG_MANAGED: "true" },
                "properties": {
                    "disableBgpRoutePropagation": config.disable_bgp_propagation,
                    "routes": routes.iter().map(|r| {
                        let mut route = r.body();
                        route["name"] = r.name.clone().into();
                        route
                    }).collect::<Vec<_>>(),
                },
            });
            let created = builder.push(
                1,
                Action::CreateRouteTable {
                    target: table_id.clone(),
                    location: owner.vnet.location.clone(),
                    disable_bgp_route_propagation: config.disable_bgp_propagation,
                    routes,
                    body,
                },
                format!(
                    "{} has subnets without a route table: create hubspoke's table for it",
                    owner.vnet.id.name()
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
    if spoke.associate.is_empty() || super::managed_table_id(&spoke.vnet.id) != *table {
        return;
    }
    for subnet in &spoke.associate {
        let mut body = subnet.raw.clone();
        if !body
            .get("properties")
            .is_some_and(serde_json::Value::is_object)
        {
            body["properties"] = json!({});
        }
        body["properties"]["routeTable"] = json!({ "id": table.to_string() });
        let mut deps = spoke.peering_changes.clone();
        deps.extend(created);
        builder.push(
            1,
            Action::AssociateRouteTable {
                target: subnet.id.clone(),
                route_table: table.clone(),
                subnet_as_read: subnet.raw.clone(),
                body,
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
