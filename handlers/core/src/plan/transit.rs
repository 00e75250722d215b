//! Stage 4, transit spokes (`docs/design.md` section 1, *transit spoke*; section 2, rules 2, 3,
//! 5, 8 and 9): whether each spoke is transit after this plan and, when it is not, every reason
//! why, each with its warning code; the IPv4 prefixes the others reach it at (rule 8) and the
//! space its own subnets reach without a route (rule 9c).

use std::collections::BTreeSet;

use ipnet::{IpNet, Ipv4Net};
use serde_json::json;

use super::builder::Builder;
use super::enrolled::EnrolledSpoke;
use super::peerings::{ConnectedPair, Pair, RemoteGateways, SpokePeerings};
use super::types::WarningCode;
use crate::model::{Peering, PeeringState, VirtualNetwork};

/// What being (or not being) a transit spoke means for one spoke.
pub(crate) struct SpokeTransit {
    /// Why the spoke is not transit; empty exactly when it is.
    pub(crate) not_transit: Vec<NotTransit>,
    /// Its IPv4 prefixes as programmed on the hub→spoke peering after this plan's sync (rule 8);
    /// empty unless the pair is connected.
    pub(crate) prefixes: Vec<Ipv4Net>,
    /// What its subnets reach without a route: its own space, the hub's, and every connected
    /// peering's remote space, as programmed and as it currently is (rule 9c).
    pub(crate) direct: Vec<IpNet>,
}

impl SpokeTransit {
    pub(crate) fn is_transit(&self) -> bool {
        self.not_transit.is_empty()
    }
}

/// Why a spoke is not transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum NotTransit {
    /// A peering of the pair is `Disconnected` (rule 5; `peering_disconnected` on it).
    PeeringDisconnected,
    /// A side is missing and is not created (rule 5; `spoke_not_transit`, `peering_missing`).
    PeeringMissing,
    /// Both sides exist but are not both `Connected` (rule 5; `spoke_not_transit`,
    /// `pair_not_connected`).
    PairNotConnected,
    /// The spoke has a gateway of its own (section 1; `spoke_not_transit`, `own_gateway`,
    /// reported once the hub's gateway is ready for transit).
    OwnGateway,
    /// Another peering of the spoke already uses remote gateways (rule 2; `spoke_not_transit`,
    /// `remote_gateways_used_elsewhere`).
    RemoteGatewaysUsedElsewhere,
    /// `allowVirtualNetworkAccess` is false on a side (rule 3; `access_disabled` on it).
    AccessDisabled,
    /// The hub's gateway is neither ready nor gone and the transit flags are not already both
    /// on (rule 3; the hub's `gateway_not_ready`).
    GatewayNotReady,
    /// The hub's gateway is gone, so transit is turned off (rule 3; no warning).
    GatewayGone,
}

impl NotTransit {
    /// The warning the plan gives for this reason, if any.
    pub(crate) fn code(self) -> Option<WarningCode> {
        match self {
            NotTransit::PeeringDisconnected => Some(WarningCode::PeeringDisconnected),
            NotTransit::PeeringMissing
            | NotTransit::PairNotConnected
            | NotTransit::OwnGateway
            | NotTransit::RemoteGatewaysUsedElsewhere => Some(WarningCode::SpokeNotTransit),
            NotTransit::AccessDisabled => Some(WarningCode::AccessDisabled),
            NotTransit::GatewayNotReady => Some(WarningCode::GatewayNotReady),
            NotTransit::GatewayGone => None,
        }
    }

    /// The reason in snake case: the `detail` of a `spoke_not_transit` warning.
    pub(crate) fn detail(self) -> &'static str {
        match self {
            NotTransit::PeeringDisconnected => "peering_disconnected",
            NotTransit::PeeringMissing => "peering_missing",
            NotTransit::PairNotConnected => "pair_not_connected",
            NotTransit::OwnGateway => "own_gateway",
            NotTransit::RemoteGatewaysUsedElsewhere => "remote_gateways_used_elsewhere",
            NotTransit::AccessDisabled => "access_disabled",
            NotTransit::GatewayNotReady => "gateway_not_ready",
            NotTransit::GatewayGone => "gateway_gone",
        }
    }
}

/// Stage 4: whether `spoke` is transit after its peering changes, and where it is reached.
pub(crate) fn transit_spoke(
    hub: &VirtualNetwork,
    spoke: &EnrolledSpoke,
    peerings: &SpokePeerings,
    builder: &mut Builder,
) -> SpokeTransit {
    let not_transit = not_transit(spoke, &peerings.pair);
    report(spoke, peerings, &not_transit, builder);
    let prefixes = match &peerings.pair {
        Pair::Connected(pair) => {
            programmed_prefixes(spoke.vnet, peerings.hub_side, pair.hub_sync, builder)
        }
        Pair::Disconnected | Pair::NotConnected { .. } => Vec::new(),
    };
    SpokeTransit {
        not_transit,
        prefixes,
        direct: direct_prefixes(hub, spoke.vnet),
    }
}

/// Every reason the spoke is not transit: a transit spoke's pair is connected, both its transit
/// flags are on after this plan, access is allowed both ways, and it has no gateway of its own.
fn not_transit(spoke: &EnrolledSpoke, pair: &Pair) -> Vec<NotTransit> {
    let connected = match pair {
        Pair::Disconnected => return vec![NotTransit::PeeringDisconnected],
        Pair::NotConnected { missing: true } => return vec![NotTransit::PeeringMissing],
        Pair::NotConnected { missing: false } => return vec![NotTransit::PairNotConnected],
        Pair::Connected(connected) => connected,
    };
    let ConnectedPair {
        hub,
        spoke: spoke_flags,
        remote_gateways,
        ..
    } = connected;
    let mut reasons = Vec::new();
    if spoke.own_gateway {
        reasons.push(NotTransit::OwnGateway);
    }
    if !hub.after.allow_virtual_network_access || !spoke_flags.after.allow_virtual_network_access {
        reasons.push(NotTransit::AccessDisabled);
    }
    let flags_on = hub.after.allow_gateway_transit && spoke_flags.after.use_remote_gateways;
    match remote_gateways {
        RemoteGateways::Off => reasons.push(NotTransit::GatewayGone),
        RemoteGateways::WithheldUsedElsewhere => {
            reasons.push(NotTransit::RemoteGatewaysUsedElsewhere)
        }
        RemoteGateways::AsTheyAre if !flags_on => reasons.push(NotTransit::GatewayNotReady),
        RemoteGateways::On | RemoteGateways::WithheldOwnGateway | RemoteGateways::AsTheyAre => {}
    }
    reasons
}

/// The warnings of the reasons: each on the spoke, or on the peering concerned.
fn report(
    spoke: &EnrolledSpoke,
    peerings: &SpokePeerings,
    reasons: &[NotTransit],
    builder: &mut Builder,
) {
    let target = spoke.vnet.id.to_string();
    for &reason in reasons {
        let Some(code) = reason.code() else {
            continue;
        };
        let detail = reason.detail();
        match reason {
            NotTransit::PeeringDisconnected => {
                for peering in [peerings.hub_side, peerings.spoke_side]
                    .into_iter()
                    .flatten()
                {
                    if peering.state == PeeringState::Disconnected {
                        report_disconnected(peering, builder);
                    }
                }
            }
            NotTransit::PeeringMissing | NotTransit::PairNotConnected => builder.warn(
                code,
                target.clone(),
                "the spoke's peerings with the hub are not both Connected, so it cannot be transit"
                    .into(),
                json!({
                    "detail": detail,
                    "hubSide": peerings.hub_side.map(|p| p.id.to_string()),
                    "spokeSide": peerings.spoke_side.map(|p| p.id.to_string()),
                }),
            ),
            // Reported only once the hub's gateway is ready: until then the hub's warning stands.
            NotTransit::OwnGateway if withheld_for_own_gateway(&peerings.pair) => builder.warn(
                code,
                target.clone(),
                "the spoke has a gateway of its own, so it cannot use the hub's".into(),
                json!({ "detail": detail }),
            ),
            NotTransit::RemoteGatewaysUsedElsewhere => builder.warn(
                code,
                target.clone(),
                "another peering of the spoke already uses remote gateways, and only one may"
                    .into(),
                json!({ "detail": detail }),
            ),
            NotTransit::AccessDisabled => report_access_disabled(peerings, builder),
            // The gateway readiness stage reports the hub's gateway, once for all its spokes.
            NotTransit::OwnGateway | NotTransit::GatewayNotReady | NotTransit::GatewayGone => {}
        }
    }
}

fn withheld_for_own_gateway(pair: &Pair) -> bool {
    matches!(
        pair,
        Pair::Connected(ConnectedPair {
            remote_gateways: RemoteGateways::WithheldOwnGateway,
            ..
        })
    )
}

fn report_disconnected(peering: &Peering, builder: &mut Builder) {
    builder.warn(
        WarningCode::PeeringDisconnected,
        peering.id.to_string(),
        "this peering is Disconnected (its other side was deleted) and Azure refuses any write to it or its pair: delete it, and hubspoke re-creates the hub side once the spoke side is back".into(),
        json!({ "remoteVirtualNetwork": peering.remote_vnet.to_string() }),
    );
}

fn report_access_disabled(peerings: &SpokePeerings, builder: &mut Builder) {
    let Pair::Connected(pair) = &peerings.pair else {
        return;
    };
    for (side, flags) in [
        (peerings.hub_side, pair.hub),
        (peerings.spoke_side, pair.spoke),
    ] {
        if !flags.after.allow_virtual_network_access {
            let target = side.map(|p| p.id.to_string()).unwrap_or_default();
            builder.warn(
                WarningCode::AccessDisabled,
                target,
                "allowVirtualNetworkAccess is false on this peering: that is the owner's intent, so hubspoke leaves it and does not route through it".into(),
                json!({}),
            );
        }
    }
}

/// The spoke's prefixes as the hub→spoke peering will program them (rules 4 and 8): its
/// current space when the hub side is created or synced (or shows none), else the space the
/// peering has. IPv6 prefixes are reported and left out (`ipv6_skipped`).
fn programmed_prefixes(
    vnet: &VirtualNetwork,
    hub_side: Option<&Peering>,
    hub_sync: bool,
    builder: &mut Builder,
) -> Vec<Ipv4Net> {
    let programmed: Vec<IpNet> = match hub_side {
        None => vnet.address_prefixes.clone(),
        Some(peering) if hub_sync => {
            if peering.remote_virtual_network_address_space.is_empty() {
                vnet.address_prefixes.clone()
            } else {
                peering.remote_virtual_network_address_space.clone()
            }
        }
        Some(peering) if peering.remote_address_space.is_empty() => vnet.address_prefixes.clone(),
        Some(peering) => peering.remote_address_space.clone(),
    };
    let mut v4 = BTreeSet::new();
    let mut v6 = Vec::new();
    for prefix in programmed {
        match prefix.trunc() {
            IpNet::V4(net) => {
                v4.insert(net);
            }
            IpNet::V6(net) => v6.push(net.to_string()),
        }
    }
    if !v6.is_empty() {
        builder.warn(
            WarningCode::Ipv6Skipped,
            vnet.id.to_string(),
            "IPv6 prefixes are not routed: the gateway next hop is IPv4 only".into(),
            json!({ "prefixes": v6 }),
        );
    }
    v4.into_iter().collect()
}

/// What the subnets of `vnet` reach without a route: its own space, the hub's, and every
/// connected peering's remote space (both as programmed and as it currently is).
fn direct_prefixes(hub: &VirtualNetwork, vnet: &VirtualNetwork) -> Vec<IpNet> {
    let mut direct: BTreeSet<IpNet> = BTreeSet::new();
    direct.extend(vnet.address_prefixes.iter().map(IpNet::trunc));
    direct.extend(hub.address_prefixes.iter().map(IpNet::trunc));
    for peering in &vnet.peerings {
        if peering.state == PeeringState::Connected {
            direct.extend(peering.remote_address_space.iter().map(IpNet::trunc));
            direct.extend(
                peering
                    .remote_virtual_network_address_space
                    .iter()
                    .map(IpNet::trunc),
            );
        }
    }
    direct.into_iter().collect()
}
