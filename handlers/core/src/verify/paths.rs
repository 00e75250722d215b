//! The path of one direction, spoke A to spoke B: for every eligible subnet of A and every
//! address of B's IPv4 prefixes, the route Azure selects (`select.rs`), classified; the worst
//! of them is the direction's verdict, explained by the first range that has it.
use std::sync::Arc;

use super::hops::{hop_of, located, Hop};
use super::hub::HubContext;
use super::reasons::why_no_gateway_route;
use super::select::Segment;
use super::verdict::{Reason, Verdict};

/// Where one direction goes, and why when that is not fine.
#[derive(Debug, Clone)]
pub(crate) struct Direction {
    pub(crate) verdict: Verdict,
    pub(crate) reason: Option<Arc<Reason>>,
}

/// The worst range of a direction: its class, prefix, segment and hop.
struct Worst {
    class: usize,
    prefix: ipnet::Ipv4Net,
    segment: Segment,
    hop: Hop,
}

/// The path of spoke `from` to spoke `to` (positions in the hub's spokes).
pub(crate) fn direction(hub: &HubContext, from: usize, to: usize) -> Direction {
    let destination = &hub.spokes[to].enrolled.vnet.id;
    let mut worst: Option<Worst> = None;
    for (class_at, class) in hub.facts[from].classes.iter().enumerate() {
        for prefix in &hub.facts[to].prefixes {
            for segment in class.selection.segments(*prefix) {
                let route = segment.route.map(|r| &class.routes[r]);
                let hop = hop_of(route, destination);
                if worst
                    .as_ref()
                    .is_none_or(|w| hop.verdict() > w.hop.verdict())
                {
                    worst = Some(Worst {
                        class: class_at,
                        prefix: *prefix,
                        segment,
                        hop,
                    });
                }
            }
        }
    }
    let hop = worst.as_ref().map_or(Hop::Gateway, |w| w.hop);
    match (hop, worst) {
        (Hop::Direct, _) => Direction {
            verdict: Verdict::Direct,
            reason: None,
        },
        (Hop::Gateway, _) => through_gateway(hub, from, to),
        (_, Some(worst)) => off_path(hub, from, to, &worst),
        (_, None) => through_gateway(hub, from, to),
    }
}

/// A direction whose routes all lead to the gateway (or to the destination directly): fine when
/// the source uses the hub's gateway, the gateway is ready, and the gateway reaches the
/// destination the same way.
fn through_gateway(hub: &HubContext, from: usize, to: usize) -> Direction {
    let unreachable = |reason: &Arc<Reason>| Direction {
        verdict: Verdict::Unreachable,
        reason: Some(reason.clone()),
    };
    if let Some(reason) = &hub.facts[from].not_transit_now {
        return unreachable(reason);
    }
    if let Some(reason) = &hub.gateway_reason {
        return unreachable(reason);
    }
    if let Some(reason) = &hub.as_destination[to] {
        return unreachable(reason);
    }
    match &hub.legs[to] {
        None => Direction {
            verdict: Verdict::Gateway,
            reason: None,
        },
        Some((verdict, reason)) => Direction {
            verdict: *verdict,
            reason: Some(reason.clone()),
        },
    }
}

/// A direction some of whose traffic goes to an appliance, elsewhere, or nowhere.
fn off_path(hub: &HubContext, from: usize, to: usize, worst: &Worst) -> Direction {
    let class = &hub.facts[from].classes[worst.class];
    let route = worst.segment.route.map(|r| &class.routes[r]);
    let place = |reason: Reason| located(reason, class.subnet, &worst.segment, route);
    let reason = match worst.hop {
        Hop::Appliance => place(Reason::new(
            "route_to_appliance",
            None,
            "a user route sends this traffic to a virtual appliance (a firewall): not hubspoke's path".into(),
        )),
        Hop::Elsewhere => place(Reason::new(
            "address_overlap",
            None,
            "these addresses of the destination lie within the source's own space or a peered VNet's, where the traffic stays".into(),
        )),
        Hop::DroppedByUser => place(Reason::new(
            "route_conflict",
            Some(match route {
                Some(r) if r.prefix.prefix_len() <= worst.prefix.prefix_len() => {
                    "covered_by_foreign"
                }
                _ => "splits_prefix",
            }),
            "a user route with next hop None drops this traffic".into(),
        )),
        Hop::NoRoute | Hop::Direct | Hop::Gateway => {
            return Direction {
                verdict: Verdict::Unreachable,
                reason: Some(why_no_gateway_route(hub, from, to, worst.class, worst.prefix, place)),
            };
        }
    };
    Direction {
        verdict: worst.hop.verdict(),
        reason: Some(Arc::new(reason)),
    }
}
