//! Stage 3, peering changes (`docs/design.md` section 2, rules 1 to 5): how each spoke's pair of
//! peerings with the hub stands after this plan's own creations, the flags each side should
//! have, and the writes that get them there (`peering_writes.rs`). This stage decides and
//! writes; the transit stage says what it means for the spoke and reports it.

use super::builder::Builder;
use super::enrolled::EnrolledSpoke;
use super::gateway::GatewayReadiness;
use super::peering_writes::{peering_name, write_pair, FlagChange, HubPeerings, PeeringWrite};
use crate::config::PlanConfig;
use crate::id::VnetId;
use crate::model::{Peering, PeeringFlags, PeeringState, VirtualNetwork};

/// The spoke's two peerings with the hub, and what this plan does to them.
pub(crate) struct SpokePeerings<'o> {
    /// The hub→spoke peering, as observed.
    pub(crate) hub_side: Option<&'o Peering>,
    /// The spoke→hub peering, as observed.
    pub(crate) spoke_side: Option<&'o Peering>,
    /// How the pair stands after this plan.
    pub(crate) pair: Pair,
    /// The ids of this pair's peering changes (the spoke's routes and tables wait for them).
    pub(crate) changes: Vec<usize>,
    /// The hub side's sync, if any (routes to the spoke's new prefixes wait for it, rule 4).
    pub(crate) sync_change: Option<usize>,
}

impl SpokePeerings<'_> {
    /// Both peerings `Connected` after this plan.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.pair, Pair::Connected(_))
    }
}

/// How a spoke's pair of peerings stands after this plan (rules 1 and 5).
pub(crate) enum Pair {
    /// A side is `Disconnected` (its other side was deleted): nothing is written (rule 5).
    Disconnected,
    /// Not both `Connected`, even after this plan's own creations. `missing`: a side is absent
    /// (and not created, e.g. `HUBSPOKE_CREATE_MISSING_PEERINGS` is off).
    NotConnected { missing: bool },
    /// Both `Connected` after this plan (creating the missing side of an `Initiated` pair
    /// connects both).
    Connected(ConnectedPair),
}

/// The flags of a connected pair, before and after this plan.
pub(crate) struct ConnectedPair {
    pub(crate) hub: FlagChange,
    pub(crate) spoke: FlagChange,
    /// What this plan does with gateway transit (rules 2 and 3).
    pub(crate) remote_gateways: RemoteGateways,
    /// The hub side's remote address space is re-synced by this plan (rule 4).
    pub(crate) hub_sync: bool,
}

/// What this plan does with `allowGatewayTransit` (hub side) and `useRemoteGateways` (spoke side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteGateways {
    /// The hub's gateway is gone: both go off, spoke side first (rule 3).
    Off,
    /// The gateway is ready for transit: both go on, hub side first (rules 1 and 2).
    On,
    /// The gateway is ready, but the spoke has a gateway of its own: the hub side goes on, the
    /// spoke side stays as it is (rule 2).
    WithheldOwnGateway,
    /// The gateway is ready, but another peering of the spoke already uses remote gateways, and
    /// only one may: the hub side goes on, the spoke side stays off (rule 2).
    WithheldUsedElsewhere,
    /// The gateway is neither ready nor gone: both stay as they are (rule 3).
    AsTheyAre,
}

/// Stage 3: the peering changes of one spoke's pair (rules 1 to 5).
pub(crate) fn peering_changes<'o>(
    config: &PlanConfig,
    hub: &'o VirtualNetwork,
    hub_peerings: &HubPeerings<'o>,
    spoke: &EnrolledSpoke<'o>,
    gateway: &GatewayReadiness,
    builder: &mut Builder,
) -> SpokePeerings<'o> {
    let hub_side = hub_peerings.toward(&spoke.vnet.id);
    let spoke_side = spoke.vnet.peerings.iter().find(|p| p.remote_vnet == hub.id);
    let mut peerings = SpokePeerings {
        hub_side,
        spoke_side,
        pair: Pair::Disconnected,
        changes: Vec::new(),
        sync_change: None,
    };
    let create_hub_side = match standing(config, hub_side, spoke_side) {
        Standing::Disconnected => return peerings,
        Standing::NotConnected { missing } => {
            peerings.pair = Pair::NotConnected { missing };
            return peerings;
        }
        Standing::Connects { create_hub_side } => create_hub_side,
    };
    let remote_gateways = remote_gateways(&hub.id, spoke, spoke_side, gateway);
    let (hub_flags, spoke_flags) = desired_flags(hub_side, spoke_side, remote_gateways);
    let hub_sync = hub_side.is_some_and(|p| p.sync_level.local_needs_sync());
    let spoke_sync = spoke_side.is_some_and(|p| p.sync_level.local_needs_sync());
    let hub_write = PeeringWrite {
        local: hub,
        remote: spoke.vnet,
        existing: hub_side,
        name: hub_side
            .map(|p| p.id.name().to_owned())
            .unwrap_or_else(|| hub_peerings.new_name(&spoke.vnet.id)),
        flags: hub_flags,
        sync: hub_sync,
    };
    let spoke_write = PeeringWrite {
        local: spoke.vnet,
        remote: hub,
        existing: spoke_side,
        name: peering_name(spoke.vnet, &hub.id),
        flags: spoke_flags,
        sync: spoke_sync,
    };
    let (hub_change, spoke_change) = write_pair(
        builder,
        &hub_write,
        &spoke_write,
        remote_gateways == RemoteGateways::Off,
        create_hub_side,
    );
    peerings.changes = hub_change.into_iter().chain(spoke_change).collect();
    peerings.sync_change = hub_change.filter(|_| hub_sync);
    peerings.pair = Pair::Connected(ConnectedPair {
        hub: hub_flags,
        spoke: spoke_flags,
        remote_gateways,
        hub_sync,
    });
    peerings
}

/// How the pair stands once this plan has created a missing side (rules 1 and 5).
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    Disconnected,
    NotConnected { missing: bool },
    Connects { create_hub_side: bool },
}

fn standing(
    config: &PlanConfig,
    hub_side: Option<&Peering>,
    spoke_side: Option<&Peering>,
) -> Standing {
    let disconnected =
        |side: Option<&Peering>| side.is_some_and(|p| p.state == PeeringState::Disconnected);
    if disconnected(hub_side) || disconnected(spoke_side) {
        return Standing::Disconnected;
    }
    let created = |side: Option<&Peering>, other: Option<&Peering>| {
        side.is_none() && config.create_missing_peerings && other.is_some()
    };
    let create_hub_side = created(hub_side, spoke_side);
    let create_spoke_side = created(spoke_side, hub_side);
    // Creating the missing side of a pair whose other side is `Initiated` connects both.
    let connected = match (hub_side, spoke_side) {
        (Some(a), Some(b)) => {
            a.state == PeeringState::Connected && b.state == PeeringState::Connected
        }
        (None, Some(other)) if create_hub_side => other.state == PeeringState::Initiated,
        (Some(other), None) if create_spoke_side => other.state == PeeringState::Initiated,
        _ => false,
    };
    if connected {
        Standing::Connects { create_hub_side }
    } else {
        Standing::NotConnected {
            missing: hub_side.is_none() || spoke_side.is_none(),
        }
    }
}

/// What this plan does with gateway transit, from the gateway's readiness (rules 2 and 3).
fn remote_gateways(
    hub: &VnetId,
    spoke: &EnrolledSpoke,
    spoke_side: Option<&Peering>,
    gateway: &GatewayReadiness,
) -> RemoteGateways {
    let uses_remote = spoke_side.is_some_and(|p| p.flags.use_remote_gateways);
    let used_elsewhere = spoke
        .vnet
        .peerings
        .iter()
        .any(|p| p.remote_vnet != *hub && p.flags.use_remote_gateways);
    if gateway.gone {
        RemoteGateways::Off
    } else if !gateway.ready_for_transit {
        RemoteGateways::AsTheyAre
    } else if spoke.own_gateway {
        RemoteGateways::WithheldOwnGateway
    } else if used_elsewhere && !uses_remote {
        RemoteGateways::WithheldUsedElsewhere
    } else {
        RemoteGateways::On
    }
}

/// The flags of both sides after this plan: forwarded traffic always on (rules 1 and 2), gateway
/// transit as decided, `allowVirtualNetworkAccess` never touched (rule 3).
fn desired_flags(
    hub_side: Option<&Peering>,
    spoke_side: Option<&Peering>,
    remote_gateways: RemoteGateways,
) -> (FlagChange, FlagChange) {
    // What Azure gives a peering created without flags, and what a created side starts from.
    let defaults = PeeringFlags {
        allow_virtual_network_access: true,
        allow_forwarded_traffic: false,
        allow_gateway_transit: false,
        use_remote_gateways: false,
    };
    let hub_before = hub_side.map(|p| p.flags).unwrap_or(defaults);
    let spoke_before = spoke_side.map(|p| p.flags).unwrap_or(defaults);
    let mut hub_after = hub_before;
    let mut spoke_after = spoke_before;
    hub_after.allow_forwarded_traffic = true;
    spoke_after.allow_forwarded_traffic = true;
    match remote_gateways {
        RemoteGateways::Off => {
            hub_after.allow_gateway_transit = false;
            spoke_after.use_remote_gateways = false;
        }
        RemoteGateways::On => {
            hub_after.allow_gateway_transit = true;
            spoke_after.use_remote_gateways = true;
        }
        RemoteGateways::WithheldOwnGateway | RemoteGateways::WithheldUsedElsewhere => {
            hub_after.allow_gateway_transit = true;
        }
        RemoteGateways::AsTheyAre => {}
    }
    let hub = FlagChange {
        before: hub_before,
        after: hub_after,
    };
    let spoke = FlagChange {
        before: spoke_before,
        after: spoke_after,
    };
    (hub, spoke)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{hub, vnet, with_spokes};
    use crate::synth::{Estate, Flags};

    struct Case {
        name: &'static str,
        gateway: Option<&'static str>,
        create_missing: bool,
        /// Builds spoke `spoke` (10.1.0.0/16) and its peerings.
        setup: fn(&mut Estate),
        /// The pair after the plan, as `pair_summary` writes it.
        pair: &'static str,
        /// Each change as `<kind> <VNet written> <ids it waits for>`, in order.
        changes: &'static [&'static str],
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

    const CASES: &[Case] = &[
        Case {
            name: "the missing hub side is created first, with transit",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: fresh,
            pair: "connected On, hub FT, spoke FR",
            changes: &["create_peering hub []", "update_peering spoke [0]"],
        },
        Case {
            name: "a missing side is left missing when creation is off",
            gateway: Some("Succeeded"),
            create_missing: false,
            setup: fresh,
            pair: "not connected, a side missing",
            changes: &[],
        },
        Case {
            name: "a Disconnected pair is never written",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: |estate| {
                vnet(estate, "spoke", 1);
                estate.peer("spoke", "hub", Flags::default(), "Disconnected");
            },
            pair: "disconnected",
            changes: &[],
        },
        Case {
            name: "a converged pair needs nothing",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: transit_flags,
            pair: "connected On, hub FT, spoke FR",
            changes: &[],
        },
        Case {
            name: "a gone gateway turns transit off, spoke side first",
            gateway: None,
            create_missing: true,
            setup: transit_flags,
            pair: "connected Off, hub F, spoke F",
            changes: &["update_peering spoke []", "update_peering hub [0]"],
        },
        Case {
            name: "a gateway that is updating changes only forwarded traffic",
            gateway: Some("Updating"),
            create_missing: true,
            setup: connected,
            pair: "connected AsTheyAre, hub F, spoke F",
            changes: &["update_peering hub []", "update_peering spoke []"],
        },
        Case {
            name: "a peering out of sync is synced, with its flags",
            gateway: Some("Succeeded"),
            create_missing: true,
            setup: |estate| {
                transit_flags(estate);
                let hub_side =
                    &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"][0];
                hub_side["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
            },
            pair: "connected On, hub FT, spoke FR, hub synced",
            changes: &["sync_peering hub []"],
        },
    ];

    /// `connected <remote gateways>, hub <F if forwarded, T if transit>, spoke <F, R if remote
    /// gateways>[, hub synced]`, or how the pair is not connected.
    fn pair_summary(pair: &Pair) -> String {
        let flags = |flags: PeeringFlags| {
            let mut text = String::new();
            for (on, letter) in [
                (flags.allow_forwarded_traffic, 'F'),
                (flags.allow_gateway_transit, 'T'),
                (flags.use_remote_gateways, 'R'),
            ] {
                if on {
                    text.push(letter);
                }
            }
            text
        };
        match pair {
            Pair::Disconnected => "disconnected".into(),
            Pair::NotConnected { missing: true } => "not connected, a side missing".into(),
            Pair::NotConnected { missing: false } => "not connected".into(),
            Pair::Connected(pair) => format!(
                "connected {:?}, hub {}, spoke {}{}",
                pair.remote_gateways,
                flags(pair.hub.after),
                flags(pair.spoke.after),
                if pair.hub_sync { ", hub synced" } else { "" }
            ),
        }
    }

    #[test]
    fn each_pair_gets_its_flags_in_the_order_of_rule_3() {
        for case in CASES {
            let mut estate = hub(case.gateway);
            (case.setup)(&mut estate);
            let configure = |config: &mut PlanConfig| {
                config.create_missing_peerings = case.create_missing;
            };
            with_spokes(&estate, configure, |spokes, plan| {
                let peerings = &spokes[0].peerings;
                assert_eq!(pair_summary(&peerings.pair), case.pair, "{}", case.name);
                let changes: Vec<String> = plan
                    .changes
                    .iter()
                    .map(|change| {
                        let vnet = change.action.vnet().map(|v| v.name().to_owned());
                        let kind = change.action.kind();
                        format!(
                            "{kind} {} {:?}",
                            vnet.unwrap_or_default(),
                            change.depends_on
                        )
                    })
                    .collect();
                assert_eq!(changes, case.changes, "{}", case.name);
                let mut ids = peerings.changes.clone();
                ids.sort_unstable();
                assert_eq!(ids, (0..changes.len()).collect::<Vec<_>>(), "{}", case.name);
                let synced = pair_summary(&peerings.pair).ends_with("hub synced");
                assert_eq!(peerings.sync_change, synced.then_some(0), "{}", case.name);
            });
        }
    }

    #[test]
    fn a_new_hub_side_gets_a_name_no_peering_of_the_hub_has() {
        let mut estate = hub(Some("Succeeded"));
        fresh(&mut estate);
        vnet(&mut estate, "squatter", 2);
        // A foreign peering of the hub already has the name hubspoke would choose.
        let id = estate.peer("hub", "squatter", Flags::default(), "Initiated");
        let hub_peerings = &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"];
        hub_peerings[0]["name"] = "HUBSPOKE-spoke".into();
        hub_peerings[0]["id"] = id.replace("hub-to-squatter", "HUBSPOKE-spoke").into();
        with_spokes(
            &estate,
            |_| {},
            |_, plan| {
                let targets: Vec<String> = plan.changes.iter().map(|c| c.action.target()).collect();
                assert!(
                    targets[0]
                        .ends_with("/virtualNetworks/hub/virtualNetworkPeerings/hubspoke-spoke-2"),
                    "{targets:?}"
                );
            },
        );
    }
}
