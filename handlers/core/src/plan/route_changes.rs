//! Stage 10, route changes (`docs/design.md` section 2, rules 6, 10 and 11): the changes that
//! make every table the hub claims hold exactly its desired managed routes: tables to create,
//! subnets to associate, routes to upsert, stale managed routes to delete, in a safe order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;

use super::builder::Builder;
use super::index::Index;
use super::names::{managed_prefix, managed_table_id, TAG_EXCLUDE};
use super::routes::{Desired, TableDesire};
use super::spokes::Spoke;
use super::types::{Action, RouteSpec};
use crate::config::PlanConfig;
use crate::id::{RouteId, RouteTableId, VnetId};
use crate::model::Route;

/// Stage 10: the route changes of every table the hub claims or desires routes in, except
/// tables tagged `hubspoke:exclude=true`.
pub(crate) fn route_changes(
    index: &Index,
    claims: &HashMap<RouteTableId, VnetId>,
    hub: &VnetId,
    config: &PlanConfig,
    spokes: &[Spoke],
    desired: &Desired,
    builder: &mut Builder,
) {
    let mut domain: BTreeSet<RouteTableId> = claims
        .iter()
        .filter(|(_, owner)| *owner == hub)
        .map(|(table, _)| table.clone())
        .collect();
    domain.extend(desired.tables.keys().cloned());
    // Usually no spoke's hub side syncs: then no table needs to look for syncing peers.
    let any_sync = spokes.iter().any(|s| s.peerings.sync_change.is_some());
    for table_id in &domain {
        let table = index.table(table_id);
        if table.is_some_and(|t| t.tags.is_true(TAG_EXCLUDE)) {
            continue;
        }
        let want = desired.tables.get(table_id);
        let wanted: BTreeSet<Ipv4Net> = want.map(|w| w.all().collect()).unwrap_or_default();
        let dependencies = RouteDependencies::new(spokes, desired, want, any_sync);
        match (table, want) {
            (None, None) => {}
            (None, Some(want)) => {
                create_table(
                    builder,
                    config,
                    table_id,
                    &spokes[want.owner],
                    &wanted,
                    &dependencies,
                );
            }
            (Some(table), want) => {
                let observed: BTreeMap<Ipv4Net, &Route> = table
                    .routes
                    .iter()
                    .filter_map(|route| managed_prefix(route).map(|p| (p, route)))
                    .collect();
                let upserts = upsert_routes(builder, table_id, &observed, &wanted, &dependencies);
                delete_stale_routes(builder, &observed, &wanted, &upserts);
                if let Some(want) = want {
                    associate(builder, &spokes[want.owner], table_id, None);
                }
            }
        }
    }
}

/// What a route of one table waits for: the peering changes of the table's spoke, and the sync
/// of every routed peer whose (new) prefixes it carries, which are only reachable once
/// programmed (rule 4).
struct RouteDependencies<'a, 'o> {
    owner_changes: &'a [usize],
    syncing: Vec<&'a Spoke<'o>>,
}

impl<'a, 'o> RouteDependencies<'a, 'o> {
    /// The dependencies of the routes of a table that wants `want`; `any_sync`: some spoke's
    /// hub side syncs in this plan.
    fn new(
        spokes: &'a [Spoke<'o>],
        desired: &'a Desired,
        want: Option<&TableDesire>,
        any_sync: bool,
    ) -> Self {
        let Some(want) = want else {
            return RouteDependencies {
                owner_changes: &[],
                syncing: Vec::new(),
            };
        };
        let syncing = if any_sync {
            desired.peers[want.owner]
                .iter()
                .map(|&peer| &spokes[peer])
                .filter(|peer| peer.peerings.sync_change.is_some())
                .collect()
        } else {
            Vec::new()
        };
        RouteDependencies {
            owner_changes: &spokes[want.owner].peerings.changes,
            syncing,
        }
    }

    fn of(&self, prefix: Ipv4Net) -> Vec<usize> {
        let mut deps = self.owner_changes.to_vec();
        for peer in &self.syncing {
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
    }
}

/// A managed table to create, with its routes, then its subnets (rule 6).
fn create_table(
    builder: &mut Builder,
    config: &PlanConfig,
    table_id: &RouteTableId,
    owner: &Spoke,
    wanted: &BTreeSet<Ipv4Net>,
    dependencies: &RouteDependencies,
) {
    let routes: Vec<RouteSpec> = wanted.iter().map(|p| RouteSpec::managed(*p)).collect();
    let mut deps: Vec<usize> = wanted.iter().flat_map(|p| dependencies.of(*p)).collect();
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
}

/// The wanted routes that are missing or do not send to the gateway (rule 10), with the ids
/// of their changes.
fn upsert_routes(
    builder: &mut Builder,
    table_id: &RouteTableId,
    observed: &BTreeMap<Ipv4Net, &Route>,
    wanted: &BTreeSet<Ipv4Net>,
    dependencies: &RouteDependencies,
) -> Vec<(Ipv4Net, usize)> {
    let mut upserts = Vec::new();
    for prefix in wanted {
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
            dependencies.of(*prefix),
        );
        upserts.push((*prefix, id));
    }
    upserts
}

/// Deletes the managed routes that are not wanted (rule 11). A route whose space stays routed
/// by other routes (an aggregate that changes shape) goes after them: make before break. A
/// route of vanished space goes first (phase 0), and so do the replacements of the part of its
/// space still routed, where they wait for nothing else.
fn delete_stale_routes(
    builder: &mut Builder,
    observed: &BTreeMap<Ipv4Net, &Route>,
    wanted: &BTreeSet<Ipv4Net>,
    upserts: &[(Ipv4Net, usize)],
) {
    let covered = aggregate(wanted);
    for (prefix, route) in observed {
        if wanted.contains(prefix) {
            continue;
        }
        let before = spec_of(route);
        let target = route.id.clone();
        if covered.iter().any(|net| net.contains(prefix)) {
            let deps: Vec<usize> = upserts
                .iter()
                .filter(|(p, _)| prefix.contains(p) || p.contains(prefix))
                .map(|(_, id)| *id)
                .collect();
            builder.push(
                1,
                Action::DeleteRoute { target, before },
                format!("route {prefix} changes shape: its space is now routed by other hubspoke routes"),
                deps,
            );
        } else {
            let mut deps = Vec::new();
            for (p, id) in upserts {
                if prefix.contains(p) && builder.changes[*id].depends_on.is_empty() {
                    builder.changes[*id].phase = 0;
                    deps.push(*id);
                }
            }
            builder.push(
                0,
                Action::DeleteRoute { target, before },
                format!(
                    "route {prefix} is stale: the space it routes is no longer a routed spoke's"
                ),
                deps,
            );
        }
    }
}

/// Associates the spoke's uncovered subnets with `table` if it is the spoke's managed table
/// (rule 6), after the spoke's peering changes and the table's creation.
fn associate(builder: &mut Builder, spoke: &Spoke, table: &RouteTableId, created: Option<usize>) {
    if spoke.coverage.associate.is_empty() || managed_table_id(&spoke.enrolled.vnet.id) != *table {
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

fn spec_of(route: &Route) -> RouteSpec {
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
