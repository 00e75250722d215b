//! Why a spoke's traffic to another has no gateway route, in the planner's terms: the spokes'
//! transit (stage 4), the hub's gateway (stage 1), the subnet's table and whether hubspoke may
//! write it (stage 5), and what the table can carry (stage 6, rule 9); else the route is simply
//! not written yet.
use std::sync::Arc;

use ipnet::Ipv4Net;

use super::hub::HubContext;
use super::verdict::Reason;
use crate::plan::carry::{Block, Carrier};

/// Why the subnets of class `class` of spoke `from` have no gateway route to `prefix` of spoke
/// `to`; `place` locates a reason that concerns this subnet and prefix.
pub(crate) fn why_no_gateway_route(
    hub: &HubContext,
    from: usize,
    to: usize,
    class: usize,
    prefix: Ipv4Net,
    place: impl Fn(Reason) -> Reason,
) -> Arc<Reason> {
    let spoke_level = [
        &hub.facts[from].not_transit_now,
        &hub.gateway_reason,
        &hub.as_destination[to],
    ];
    if let Some(reason) = spoke_level.into_iter().flatten().next() {
        return reason.clone();
    }
    let spoke = &hub.spokes[from];
    let class = &hub.facts[from].classes[class];
    let Some(table_id) = &class.table_id else {
        return Arc::new(place(Reason::new(
            "route_missing",
            Some("no_route_table"),
            "the subnet has no route table (hubspoke gives it the spoke's managed table in its next pass)".into(),
        )));
    };
    if let Some(unwritable) = spoke
        .coverage
        .unwritable_tables
        .iter()
        .find(|t| &t.table == table_id)
    {
        return Arc::new(place(Reason::new(
            unwritable.code.as_str(),
            None,
            format!(
                "hubspoke does not write the subnet's route table {}",
                table_id.name()
            ),
        )));
    }
    let carrier = Carrier::new(hub.config, class.table, &spoke.transit.direct);
    if let Some(reason) = blocked(&carrier, prefix) {
        return Arc::new(place(reason));
    }
    if let Some(reason) = not_carried_back(hub, from, to) {
        return Arc::new(reason);
    }
    let routes = class.table.map_or(0, |t| t.routes.len());
    if routes >= hub.config.route_limit {
        return Arc::new(place(Reason::new(
            "route_limit_exceeded",
            None,
            format!(
                "the route table holds {routes} routes, HUBSPOKE_ROUTE_LIMIT allows {}",
                hub.config.route_limit
            ),
        )));
    }
    Arc::new(place(Reason::new(
        "route_missing",
        Some("not_written"),
        "no route sends this traffic to the gateway yet (hubspoke writes it in its next pass)"
            .into(),
    )))
}

/// Why a table cannot carry `prefix` (rule 9), if it cannot.
fn blocked(carrier: &Carrier, prefix: Ipv4Net) -> Option<Reason> {
    let (code, detail, message) = match carrier.check(prefix) {
        Err(Block::Exact(name)) => (
            "route_conflict",
            Some("exact"),
            format!("the foreign route {name} has exactly this prefix"),
        ),
        Err(Block::CoveredByForeign(name)) => (
            "route_conflict",
            Some("covered_by_foreign"),
            format!("the foreign route {name} sends this prefix to an appliance or drops it"),
        ),
        Err(Block::NameClash(name)) => (
            "name_clash",
            None,
            format!("the foreign route {name} has the name hubspoke would give its route"),
        ),
        Err(Block::Direct) => (
            "address_overlap",
            None,
            "the prefix lies within space the subnet reaches directly".to_string(),
        ),
        Ok(()) => return None,
    };
    Some(Reason::new(code, detail, message))
}

/// Why spoke `to` cannot route back to `from` (rule 8: two spokes are routed to each other only
/// when each one's tables can carry the other's prefixes), if it cannot.
fn not_carried_back(hub: &HubContext, from: usize, to: usize) -> Option<Reason> {
    let destination = &hub.spokes[to];
    for class in &hub.facts[to].classes {
        let carrier = Carrier::new(hub.config, class.table, &destination.transit.direct);
        for prefix in &hub.facts[from].prefixes {
            if let Some(mut reason) = blocked(&carrier, *prefix) {
                reason.message = format!(
                    "the destination's route table cannot carry the source's prefix {prefix} ({}), and routes are written both ways or not at all",
                    reason.message
                );
                reason.at = Some(destination.enrolled.vnet.id.clone());
                reason.subnet = Some(class.subnet.id.clone());
                reason.prefix = Some(prefix.to_string());
                return Some(reason);
            }
        }
    }
    None
}
