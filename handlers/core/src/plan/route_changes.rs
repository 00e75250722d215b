//! Stage 10, route changes (`docs/design.md` section 2, rules 6, 10 and 11): the changes that
//! make every table the hub claims hold exactly its desired managed routes: tables to create,
//! subnets to associate, routes to upsert, stale managed routes to delete, in a safe order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;

use super::builder::Builder;
use super::index::Index;
use super::routes::Desired;
use super::{managed_prefix, Action, RouteSpec, Spoke, TAG_EXCLUDE};
use crate::config::PlanConfig;
use crate::id::{RouteId, RouteTableId, VnetId};

/// Turns the desired routes into changes (rules 6, 10, 11): table creations, associations,
/// upserts, and deletions of stale managed routes in every table the hub claims.
pub(crate) fn plan_route_changes(
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
