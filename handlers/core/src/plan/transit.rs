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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{hub, vnet, with_spokes};
    use crate::synth::{Estate, Flags};
    use NotTransit::*;

    const TRANSIT_HUB: Flags = Flags {
        access_disabled: false,
        forwarded: true,
        gateway_transit: true,
        remote_gateways: false,
    };
    const TRANSIT_SPOKE: Flags = Flags {
        access_disabled: false,
        forwarded: true,
        gateway_transit: false,
        remote_gateways: true,
    };

    struct Case {
        name: &'static str,
        gateway: Option<&'static str>,
        create_missing: bool,
        /// Builds spoke `spoke` (10.1.0.0/16) and its peerings.
        setup: fn(&mut Estate),
        not_transit: &'static [NotTransit],
        codes: &'static [WarningCode],
    }

    fn fresh(estate: &mut Estate) {
        vnet(estate, "spoke", 1);
        estate.peer("spoke", "hub", Flags::default(), "Initiated");
    }

    fn connected(estate: &mut Estate) {
        vnet(estate, "spoke", 1);
        estate.connect("hub", "spoke");
    }

    fn transit_flags(estate: &mut Estate) {
        vnet(estate, "spoke", 1);
        estate.connect_transit("hub", "spoke");
    }

    fn own_gateway(estate: &mut Estate) {
        estate.vnet(
            "spoke",
            &["10.1.0.0/16"],
            &[
                ("default", "10.1.0.0/24"),
                ("GatewaySubnet", "10.1.255.0/27"),
            ],
        );
        estate.gateway("spoke", "spoke-gw", "Vpn", "VpnGw1", "Succeeded");
        estate.connect("hub", "spoke");
    }

    const CASES: &[Case] = &[
        Case {
            name: "a spoke peered from its side only becomes transit",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: fresh,
            not_transit: &[],
            codes: &[],
        },
        Case {
            name: "a missing side that is not created",
            gateway: Some("Succeeded"),
            create_missing: false,
            setup: fresh,
            not_transit: &[PeeringMissing],
            codes: &[WarningCode::SpokeNotTransit],
        },
        Case {
            name: "both sides exist, neither connected",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: |estate| {
                vnet(estate, "spoke", 1);
                estate.peer("spoke", "hub", Flags::default(), "Initiated");
                estate.peer("hub", "spoke", Flags::default(), "Initiated");
            },
            not_transit: &[PairNotConnected],
            codes: &[WarningCode::SpokeNotTransit],
        },
        Case {
            name: "a side left Disconnected",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: |estate| {
                vnet(estate, "spoke", 1);
                estate.peer("spoke", "hub", Flags::default(), "Disconnected");
            },
            not_transit: &[PeeringDisconnected],
            codes: &[WarningCode::PeeringDisconnected],
        },
        Case {
            name: "a gateway that is updating holds a new spoke back",
            gateway: Some("Updating"),
            create_missing: true,
            setup: connected,
            not_transit: &[GatewayNotReady],
            codes: &[WarningCode::GatewayNotReady],
        },
        Case {
            name: "a gateway that is updating leaves a transit spoke transit",
            gateway: Some("Updating"),
            create_missing: true,
            setup: transit_flags,
            not_transit: &[],
            codes: &[WarningCode::GatewayNotReady],
        },
        Case {
            name: "a gateway that is gone ends transit",
            gateway: None,
            create_missing: true,
            setup: transit_flags,
            not_transit: &[GatewayGone],
            codes: &[],
        },
        Case {
            name: "a spoke with its own gateway, reported once the hub's is ready",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: own_gateway,
            not_transit: &[OwnGateway],
            codes: &[WarningCode::SpokeNotTransit],
        },
        Case {
            name: "a spoke with its own gateway while the hub's is updating",
            gateway: Some("Updating"),
            create_missing: true,
            setup: own_gateway,
            not_transit: &[OwnGateway, GatewayNotReady],
            codes: &[WarningCode::GatewayNotReady],
        },
        Case {
            name: "access disabled on the spoke side",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: |estate| {
                vnet(estate, "spoke", 1);
                estate.peer("hub", "spoke", TRANSIT_HUB, "Connected");
                let flags = Flags {
                    access_disabled: true,
                    ..TRANSIT_SPOKE
                };
                estate.peer("spoke", "hub", flags, "Connected");
            },
            not_transit: &[AccessDisabled],
            codes: &[WarningCode::AccessDisabled],
        },
        Case {
            name: "another peering of the spoke uses remote gateways",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: |estate| {
                vnet(estate, "spoke", 1);
                vnet(estate, "other", 2);
                estate.connect("hub", "spoke");
                estate.peer("spoke", "other", TRANSIT_SPOKE, "Connected");
                estate.peer("other", "spoke", TRANSIT_HUB, "Connected");
            },
            not_transit: &[RemoteGatewaysUsedElsewhere],
            codes: &[WarningCode::SpokeNotTransit],
        },
    ];

    #[test]
    fn every_reason_a_spoke_is_not_transit_is_named_and_reported() {
        for case in CASES {
            let mut estate = hub(case.gateway);
            (case.setup)(&mut estate);
            let configure = |config: &mut crate::config::PlanConfig| {
                config.create_missing_peerings = case.create_missing;
            };
            with_spokes(&estate, configure, |spokes, plan| {
                assert_eq!(spokes.len(), 1, "{}", case.name);
                let transit = &spokes[0].transit;
                assert_eq!(transit.not_transit, case.not_transit, "{}", case.name);
                assert_eq!(transit.is_transit(), case.not_transit.is_empty());
                let codes: Vec<WarningCode> = plan.warnings.iter().map(|w| w.code).collect();
                assert_eq!(codes, case.codes, "{}", case.name);
            });
        }
    }

    #[test]
    fn prefixes_are_the_programmed_ipv4_space_and_direct_space_what_needs_no_route() {
        let mut estate = hub(Some("Succeeded"));
        estate.vnet(
            "spoke",
            &["10.1.0.0/16", "fd00::/48"],
            &[("default", "10.1.0.0/24")],
        );
        estate.vnet("neighbour", &["10.9.0.0/16"], &[("default", "10.9.0.0/24")]);
        estate.connect("hub", "spoke");
        estate.connect("spoke", "neighbour");
        // The spoke grew since the hub side was programmed: the hub side syncs it (rule 4).
        estate.vnet_mut("spoke")["properties"]["addressSpace"]["addressPrefixes"] =
            serde_json::json!(["10.1.0.0/16", "10.2.0.0/16", "fd00::/48"]);
        let hub_side = &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"][0];
        hub_side["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
        hub_side["properties"]["remoteVirtualNetworkAddressSpace"]["addressPrefixes"] =
            serde_json::json!(["10.1.0.0/16", "10.2.0.0/16", "fd00::/48"]);
        with_spokes(
            &estate,
            |_| {},
            |spokes, plan| {
                let transit = &spokes[0].transit;
                let prefixes: Vec<String> =
                    transit.prefixes.iter().map(|p| p.to_string()).collect();
                assert_eq!(prefixes, ["10.1.0.0/16", "10.2.0.0/16"]);
                let direct: Vec<String> = transit.direct.iter().map(|p| p.to_string()).collect();
                assert_eq!(
                    direct,
                    [
                        "10.0.0.0/16",
                        "10.1.0.0/16",
                        "10.2.0.0/16",
                        "10.9.0.0/16",
                        "fd00::/48"
                    ]
                );
                let codes: Vec<WarningCode> = plan.warnings.iter().map(|w| w.code).collect();
                assert_eq!(codes, [WarningCode::Ipv6Skipped]);
            },
        );
    }
}
