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
