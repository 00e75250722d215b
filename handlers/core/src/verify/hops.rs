//! What a selected route does with a spoke's traffic to another (the hop of one range), and how
//! a reason names the route and the addresses.
use super::routes::{EffectiveRoute, HopKind, RouteSource};
use super::select::Segment;
use super::verdict::{Reason, RouteRef, Verdict};
use crate::id::VnetId;
use crate::model::Subnet;

/// What a selected route does with traffic to the destination spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// To the destination through a peering with it.
    Direct,
    /// To a gateway.
    Gateway,
    /// To an appliance a user route names.
    Appliance,
    /// Into the source's own space, or a peered VNet that is not the destination.
    Elsewhere,
    /// Dropped by a user route.
    DroppedByUser,
    /// No route to the destination: dropped by a system route, sent to the Internet, or no
    /// active route at all.
    NoRoute,
}

impl Hop {
    pub(crate) fn verdict(self) -> Verdict {
        match self {
            Hop::Direct => Verdict::Direct,
            Hop::Gateway => Verdict::Gateway,
            Hop::Appliance => Verdict::Appliance,
            Hop::Elsewhere | Hop::DroppedByUser | Hop::NoRoute => Verdict::Unreachable,
        }
    }
}

/// What `route` (selected for traffic to spoke `to`) does with it.
pub(crate) fn hop_of(route: Option<&EffectiveRoute<'_>>, to: &VnetId) -> Hop {
    let Some(route) = route else {
        return Hop::NoRoute;
    };
    match route.hop {
        HopKind::VirtualNetworkGateway => Hop::Gateway,
        HopKind::VnetPeering if route.peer.as_ref() == Some(to) => Hop::Direct,
        HopKind::VnetPeering | HopKind::VnetLocal => Hop::Elsewhere,
        HopKind::VirtualAppliance => Hop::Appliance,
        HopKind::Drop if route.source == RouteSource::User => Hop::DroppedByUser,
        HopKind::Drop | HopKind::Internet | HopKind::ServiceEndpoint | HopKind::Other => {
            Hop::NoRoute
        }
    }
}

/// `reason`, located: the subnet, the addresses and the route selected for them.
pub(crate) fn located(
    mut reason: Reason,
    subnet: &Subnet,
    segment: &Segment,
    route: Option<&EffectiveRoute<'_>>,
) -> Reason {
    reason.subnet = Some(subnet.id.clone());
    reason.prefix = Some(segment.render());
    reason.route = route.map(route_ref);
    reason
}

/// A route as a reason names it.
pub(crate) fn route_ref(route: &EffectiveRoute<'_>) -> RouteRef {
    RouteRef {
        source: route.source.as_str(),
        prefix: route.prefix.to_string(),
        next_hop_type: route.hop_type.to_string(),
        next_hop_ip: route.next_hop_ip.map(|ip| ip.to_string()),
        name: route.name.as_ref().map(|name| name.to_string()),
    }
}
