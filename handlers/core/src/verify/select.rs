//! Route selection over address ranges: which of a subnet's effective routes Azure uses for
//! every IPv4 address, as a sorted list of disjoint ranges, so that a spoke's prefix is answered
//! whole (every address counts: a more specific route inside it that goes elsewhere splits the
//! answer) in logarithmic time.
//!
//! The rules are those of "Virtual network traffic routing", "How Azure selects a route"
//! (learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#how-azure-selects-a-route):
//! - Azure selects the route with the longest prefix that contains the destination address;
//! - when several routes contain the same prefix, a user-defined route wins over a BGP route,
//!   which wins over a system route;
//! - except that system routes for traffic related to the virtual network, its peerings and its
//!   service endpoints are preferred over BGP routes, even when the BGP routes are more specific.
//!
//! Only `Active` routes are selected; an address no active route contains is dropped (no route).
//! Route prefixes are CIDR blocks, so any two are nested or disjoint: one sweep over them sorted
//! by start (the wider first) yields the ranges.
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use super::routes::{EffectiveRoute, RouteSource};

/// For every IPv4 address, the route selected (by position in the routes it was made from).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// First address of each range; ranges are sorted, disjoint and cover the whole space.
    starts: Vec<u32>,
    /// Last address of each range (inclusive).
    ends: Vec<u32>,
    /// The route of each range; `None`: no active route, the traffic is dropped.
    chosen: Vec<Option<u32>>,
}

/// A range of addresses that one route carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    /// The route selected, by position; `None` when none is.
    pub route: Option<usize>,
}

impl Segment {
    /// The range as a prefix when it is one, else `first-last`.
    pub fn render(&self) -> String {
        let (first, last) = (u32::from(self.first), u32::from(self.last));
        let size = u64::from(last - first) + 1;
        if size.is_power_of_two() && u64::from(first) % size == 0 {
            let len = 32 - size.trailing_zeros();
            return format!("{}/{len}", self.first);
        }
        format!("{}-{}", self.first, self.last)
    }
}

impl Selection {
    /// The selection Azure makes among `routes` (the IPv4 ones; others are ignored).
    pub fn new(routes: &[EffectiveRoute<'_>]) -> Self {
        let candidates = candidates(routes);
        let mut selection = Selection::default();
        let mut stack: Vec<(u64, u32)> = Vec::new();
        let mut cursor: u64 = 0;
        for (net, route) in candidates {
            let (start, end) = bounds(net);
            while let Some(&(top_end, top)) = stack.last() {
                if top_end >= start {
                    break;
                }
                selection.push(&mut cursor, top_end, Some(top));
                stack.pop();
            }
            if cursor < start {
                selection.push(&mut cursor, start - 1, stack.last().map(|(_, r)| *r));
            }
            stack.push((end, route));
        }
        while let Some((top_end, top)) = stack.pop() {
            selection.push(&mut cursor, top_end, Some(top));
        }
        selection.push(&mut cursor, u64::from(u32::MAX), None);
        selection
    }

    /// Adds the range from `cursor` to `end` (if not empty) and moves the cursor past it,
    /// merging it into the previous range when they have the same route.
    fn push(&mut self, cursor: &mut u64, end: u64, route: Option<u32>) {
        if *cursor > end {
            return;
        }
        let (start, end32) = (*cursor as u32, end as u32);
        *cursor = end + 1;
        if self.chosen.last() == Some(&route) && self.ends.last() == Some(&(start.wrapping_sub(1)))
        {
            if let Some(last) = self.ends.last_mut() {
                *last = end32;
            }
            return;
        }
        self.starts.push(start);
        self.ends.push(end32);
        self.chosen.push(route);
    }

    /// The routes that carry the addresses of `net`, range by range, in address order.
    pub fn segments(&self, net: Ipv4Net) -> impl Iterator<Item = Segment> + '_ {
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        let from = self.ends.partition_point(|end| *end < first);
        (from..self.starts.len())
            .take_while(move |&i| self.starts[i] <= last)
            .map(move |i| Segment {
                first: Ipv4Addr::from(self.starts[i].max(first)),
                last: Ipv4Addr::from(self.ends[i].min(last)),
                route: self.chosen[i].map(|r| r as usize),
            })
    }

    /// The route that carries `address`, if any.
    pub fn at(&self, address: Ipv4Addr) -> Option<usize> {
        self.segments(Ipv4Net::from(address))
            .next()
            .and_then(|s| s.route)
    }
}

/// The first and last address of `net`, widened so that one past the end does not overflow.
fn bounds(net: Ipv4Net) -> (u64, u64) {
    (
        u64::from(u32::from(net.network())),
        u64::from(u32::from(net.broadcast())),
    )
}

/// The active IPv4 routes that can be selected, one per prefix (the preferred source, then the
/// first listed), sorted by start with the wider first. A BGP route inside (or equal to) a
/// system route of the VNet, its peerings or its service endpoints can never be selected.
fn candidates(routes: &[EffectiveRoute<'_>]) -> Vec<(Ipv4Net, u32)> {
    let v4 = |route: &EffectiveRoute| match route.prefix {
        IpNet::V4(net) if route.active => Some(net.trunc()),
        _ => None,
    };
    let vnet_system: Vec<Ipv4Net> = routes
        .iter()
        .filter(|r| r.source == RouteSource::System && r.hop.is_vnet_system())
        .filter_map(v4)
        .collect();
    let mut listed: Vec<(u32, u8, std::cmp::Reverse<RouteSource>, u32)> = routes
        .iter()
        .enumerate()
        .filter_map(|(position, route)| {
            let net = v4(route)?;
            if route.source == RouteSource::Bgp && vnet_system.iter().any(|s| s.contains(&net)) {
                return None;
            }
            let key = (
                u32::from(net.network()),
                net.prefix_len(),
                std::cmp::Reverse(route.source),
                position as u32,
            );
            Some(key)
        })
        .collect();
    listed.sort_unstable();
    listed.dedup_by_key(|(start, len, _, _)| (*start, *len));
    listed
        .into_iter()
        .filter_map(|(start, len, _, position)| {
            Some((Ipv4Net::new(Ipv4Addr::from(start), len).ok()?, position))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(source: RouteSource, prefix: &str, hop: &'static str) -> EffectiveRoute<'static> {
        EffectiveRoute::new(source, prefix.parse().unwrap(), hop.into())
    }

    fn picked(selection: &Selection, routes: &[EffectiveRoute], address: &str) -> String {
        match selection.at(address.parse().unwrap()) {
            Some(r) => format!("{} {}", routes[r].source.as_str(), routes[r].hop_type),
            None => "dropped".into(),
        }
    }

    #[test]
    fn the_longest_prefix_wins_then_user_over_bgp_over_system() {
        use RouteSource::*;
        let mut invalid = route(User, "10.9.0.0/16", "VirtualAppliance");
        invalid.active = false;
        let routes = [
            route(System, "10.1.0.0/16", "VnetLocal"),
            route(System, "0.0.0.0/0", "Internet"),
            route(System, "10.0.0.0/8", "None"),
            route(User, "10.2.0.0/16", "VirtualNetworkGateway"),
            route(Bgp, "10.2.0.0/16", "VirtualNetworkGateway"),
            route(System, "10.2.0.0/16", "VNetPeering"),
            route(User, "10.2.128.0/17", "None"),
            route(Bgp, "10.1.5.0/24", "VirtualNetworkGateway"),
            route(Bgp, "10.3.0.0/16", "VirtualNetworkGateway"),
            route(System, "10.3.0.0/16", "Internet"),
            invalid,
        ];
        let s = Selection::new(&routes);
        assert_eq!(picked(&s, &routes, "10.1.2.3"), "Default VnetLocal");
        // The VNet's own space wins over a more specific BGP route.
        assert_eq!(picked(&s, &routes, "10.1.5.1"), "Default VnetLocal");
        assert_eq!(
            picked(&s, &routes, "10.2.0.1"),
            "User VirtualNetworkGateway"
        );
        assert_eq!(picked(&s, &routes, "10.2.200.1"), "User None");
        assert_eq!(
            picked(&s, &routes, "10.3.0.1"),
            "VirtualNetworkGateway VirtualNetworkGateway"
        );
        assert_eq!(picked(&s, &routes, "10.9.0.1"), "Default None");
        assert_eq!(picked(&s, &routes, "8.8.8.8"), "Default Internet");
        assert_eq!(picked(&s, &routes, "255.255.255.255"), "Default Internet");
        assert_eq!(picked(&s, &routes, "0.0.0.0"), "Default Internet");
        assert_eq!(
            picked(&Selection::new(&routes[..1]), &routes, "8.8.8.8"),
            "dropped"
        );
    }

    #[test]
    fn a_prefix_is_answered_range_by_range() {
        use RouteSource::*;
        let routes = [
            route(System, "0.0.0.0/0", "Internet"),
            route(User, "10.2.0.0/16", "VirtualNetworkGateway"),
            route(User, "10.2.64.0/18", "None"),
            route(User, "10.2.64.0/24", "VirtualAppliance"),
        ];
        let s = Selection::new(&routes);
        let got: Vec<(String, Option<usize>)> = s
            .segments("10.2.0.0/16".parse().unwrap())
            .map(|seg| (seg.render(), seg.route))
            .collect();
        assert_eq!(
            got,
            [
                ("10.2.0.0/18".into(), Some(1)),
                ("10.2.64.0/24".into(), Some(3)),
                ("10.2.65.0-10.2.127.255".into(), Some(2)),
                ("10.2.128.0/17".into(), Some(1)),
            ]
        );
        let whole: Vec<_> = s.segments("0.0.0.0/0".parse().unwrap()).collect();
        assert_eq!(whole.first().unwrap().first, Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(
            whole.last().unwrap().last,
            Ipv4Addr::new(255, 255, 255, 255)
        );
        let single: Vec<_> = s.segments("10.2.64.7/32".parse().unwrap()).collect();
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].route, Some(3));
    }
}
