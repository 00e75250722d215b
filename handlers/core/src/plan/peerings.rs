//! The two peerings of each spoke (rules 1 to 5): flags, sync, names and the peering writes.

use std::collections::{BTreeSet, HashMap};

use ipnet::IpNet;
use serde_json::json;

use super::enrolled::EnrolledSpoke;
use super::{Action, Builder, GatewayReadiness, Spoke, WarningCode};
use crate::config::PlanConfig;
use crate::id::{PeeringId, VnetId};
use crate::model::{Peering, PeeringFlags, PeeringState, VirtualNetwork};

/// Plans the two peerings of a spoke (rules 1 to 5) and says whether it is a transit spoke.
pub(super) fn plan_peerings<'o>(
    config: &PlanConfig,
    hub: &'o VirtualNetwork,
    hub_peerings: &HubPeerings<'o>,
    enrolled: &EnrolledSpoke<'o>,
    gateway: &GatewayReadiness,
    builder: &mut Builder,
) -> Spoke<'o> {
    let vnet = enrolled.vnet;
    let own_gateway = enrolled.own_gateway;
    let hub_side = hub_peerings.by_remote.get(&vnet.id).copied();
    let spoke_side = vnet.peerings.iter().find(|p| p.remote_vnet == hub.id);
    let mut spoke = Spoke {
        vnet,
        group: enrolled.group.clone(),
        peering_changes: Vec::new(),
        sync_change: None,
        connected: false,
        transit: false,
        prefixes: Vec::new(),
        direct: Vec::new(),
        writable_tables: Vec::new(),
        associate: Vec::new(),
    };

    let disconnected: Vec<&Peering> = [hub_side, spoke_side]
        .into_iter()
        .flatten()
        .filter(|p| p.state == PeeringState::Disconnected)
        .collect();
    for peering in &disconnected {
        builder.warn(
            WarningCode::PeeringDisconnected,
            peering.id.to_string(),
            "this peering is Disconnected (its other side was deleted) and Azure refuses any write to it or its pair: delete it, and hubspoke re-creates the hub side once the spoke side is back".into(),
            json!({ "remoteVirtualNetwork": peering.remote_vnet.to_string() }),
        );
    }
    if !disconnected.is_empty() {
        spoke.direct = direct_prefixes(hub, vnet);
        return spoke;
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
    spoke.connected = connected;
    if !connected {
        let detail = if hub_side.is_none() || spoke_side.is_none() {
            "peering_missing"
        } else {
            "pair_not_connected"
        };
        builder.warn(
            WarningCode::SpokeNotTransit,
            vnet.id.to_string(),
            "the spoke's peerings with the hub are not both Connected, so it cannot be transit".into(),
            json!({ "detail": detail, "hubSide": hub_side.map(|p| p.id.to_string()), "spokeSide": spoke_side.map(|p| p.id.to_string()) }),
        );
        spoke.direct = direct_prefixes(hub, vnet);
        return spoke;
    }

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
    let other_uses_remote = vnet
        .peerings
        .iter()
        .any(|p| p.remote_vnet != hub.id && p.flags.use_remote_gateways);
    if gateway.gone {
        hub_after.allow_gateway_transit = false;
        spoke_after.use_remote_gateways = false;
    } else if gateway.ready_for_transit {
        hub_after.allow_gateway_transit = true;
        if own_gateway {
            builder.warn(
                WarningCode::SpokeNotTransit,
                vnet.id.to_string(),
                "the spoke has a gateway of its own, so it cannot use the hub's".into(),
                json!({ "detail": "own_gateway" }),
            );
        } else if other_uses_remote && !spoke_before.use_remote_gateways {
            builder.warn(
                WarningCode::SpokeNotTransit,
                vnet.id.to_string(),
                "another peering of the spoke already uses remote gateways, and only one may"
                    .into(),
                json!({ "detail": "remote_gateways_used_elsewhere" }),
            );
        } else {
            spoke_after.use_remote_gateways = true;
        }
    }
    for (side, flags) in [(hub_side, hub_after), (spoke_side, spoke_after)] {
        if !flags.allow_virtual_network_access {
            let target = side.map(|p| p.id.to_string()).unwrap_or_default();
            builder.warn(
                WarningCode::AccessDisabled,
                target,
                "allowVirtualNetworkAccess is false on this peering: that is the owner's intent, so hubspoke leaves it and does not route through it".into(),
                json!({}),
            );
        }
    }

    let hub_sync = hub_side.is_some_and(|p| p.sync_level.local_needs_sync());
    let spoke_sync = spoke_side.is_some_and(|p| p.sync_level.local_needs_sync());
    let spoke_turns_on = spoke_after.use_remote_gateways && !spoke_before.use_remote_gateways;
    let hub_turns_off = !hub_after.allow_gateway_transit && hub_before.allow_gateway_transit;
    let hub_name = hub_side
        .map(|p| p.id.name().to_owned())
        .unwrap_or_else(|| hub_peerings.new_name(&vnet.id));
    let spoke_name = peering_name(vnet, &hub.id);
    let hub_write = |builder: &mut Builder, depends_on: Vec<usize>| {
        write_peering(
            builder, hub, hub_side, &hub_name, &vnet.id, hub_before, hub_after, hub_sync, vnet,
            depends_on,
        )
    };
    let spoke_write = |builder: &mut Builder, depends_on: Vec<usize>| {
        write_peering(
            builder,
            vnet,
            spoke_side,
            &spoke_name,
            &hub.id,
            spoke_before,
            spoke_after,
            spoke_sync,
            hub,
            depends_on,
        )
    };
    // Transit goes on hub side first, and off spoke side first (rule 3).
    let (hub_change, spoke_change) = if gateway.gone {
        let spoke_change = spoke_write(builder, Vec::new());
        let hub_change = hub_write(
            builder,
            if hub_turns_off {
                spoke_change.into_iter().collect()
            } else {
                Vec::new()
            },
        );
        (hub_change, spoke_change)
    } else {
        let hub_change = hub_write(builder, Vec::new());
        let needs_hub = spoke_turns_on || create_hub_side;
        let spoke_change = spoke_write(
            builder,
            if needs_hub {
                hub_change.into_iter().collect()
            } else {
                Vec::new()
            },
        );
        (hub_change, spoke_change)
    };
    spoke.peering_changes = hub_change.into_iter().chain(spoke_change).collect();
    if hub_sync {
        spoke.sync_change = hub_change;
    }

    // The spoke's prefixes as the hub→spoke peering will program them.
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
    spoke.prefixes = v4.into_iter().collect();
    spoke.transit = spoke_after.use_remote_gateways
        && hub_after.allow_gateway_transit
        && hub_after.allow_virtual_network_access
        && spoke_after.allow_virtual_network_access
        && !own_gateway;
    spoke.direct = direct_prefixes(hub, vnet);
    spoke
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

/// The hub's peerings, indexed once per plan (a hub may have hundreds).
pub(super) struct HubPeerings<'o> {
    by_remote: HashMap<&'o VnetId, &'o Peering>,
    names: BTreeSet<String>,
}

impl<'o> HubPeerings<'o> {
    pub(super) fn new(hub: &'o VirtualNetwork) -> Self {
        let mut by_remote = HashMap::new();
        for peering in &hub.peerings {
            by_remote.entry(&peering.remote_vnet).or_insert(peering);
        }
        HubPeerings {
            by_remote,
            names: hub
                .peerings
                .iter()
                .map(|p| p.id.name().to_ascii_lowercase())
                .collect(),
        }
    }

    /// A name for a new hub-side peering to `remote` that no peering of the hub has.
    fn new_name(&self, remote: &VnetId) -> String {
        unique_name(remote, |name| {
            self.names.contains(&name.to_ascii_lowercase())
        })
    }
}

/// `hubspoke-<remote name>`, with a numeric suffix if `taken`; at most 80 characters.
fn unique_name(remote: &VnetId, taken: impl Fn(&str) -> bool) -> String {
    let mut base = format!("hubspoke-{}", remote.name());
    base.truncate(74);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken(name))
        .unwrap_or(base)
}

/// The name of the peering from `local` to `remote`: the existing one's, or a new unique name.
fn peering_name(local: &VirtualNetwork, remote: &VnetId) -> String {
    if let Some(existing) = local.peerings.iter().find(|p| p.remote_vnet == *remote) {
        return existing.id.name().to_owned();
    }
    unique_name(remote, |name| {
        local
            .peerings
            .iter()
            .any(|p| p.id.name().eq_ignore_ascii_case(name))
    })
}

#[allow(clippy::too_many_arguments)]
fn write_peering(
    builder: &mut Builder,
    local: &VirtualNetwork,
    existing: Option<&Peering>,
    name: &str,
    remote: &VnetId,
    before: PeeringFlags,
    after: PeeringFlags,
    sync: bool,
    remote_vnet: &VirtualNetwork,
    depends_on: Vec<usize>,
) -> Option<usize> {
    let target = PeeringId::new(&local.id, name);
    let Some(existing) = existing else {
        return Some(builder.push(
            1,
            Action::CreatePeering {
                target,
                remote_virtual_network: remote.clone(),
                after,
            },
            format!(
                "{} has no peering to {}: create it so the pair connects",
                local.id.name(),
                remote.name()
            ),
            depends_on,
        ));
    };
    if sync {
        let remote_after = if existing.remote_virtual_network_address_space.is_empty() {
            remote_vnet.address_prefixes.clone()
        } else {
            existing.remote_virtual_network_address_space.clone()
        };
        return Some(builder.push(
            1,
            Action::SyncPeering {
                target,
                before,
                after,
                remote_address_space_before: existing.remote_address_space.clone(),
                                remote_address_space_after: remote_after,
                as_read: existing.raw.clone(),
            },
            format!(
                "the address space of {} changed ({:?}): sync the peering so the new prefixes are reachable",
                remote.name(),
                existing.sync_level
            ),
            depends_on,
        ));
    }
    if before == after {
        return None;
    }
    Some(builder.push(
        1,
        Action::UpdatePeering {
            target,
            before,
            after,
            as_read: existing.raw.clone(),
        },
        describe_flag_change(before, after),
        depends_on,
    ))
}

fn describe_flag_change(before: PeeringFlags, after: PeeringFlags) -> String {
    let mut parts = Vec::new();
    let mut note = |name: &str, old: bool, new: bool| {
        if old != new {
            parts.push(format!("{name} {old} -> {new}"));
        }
    };
    note(
        "allowForwardedTraffic",
        before.allow_forwarded_traffic,
        after.allow_forwarded_traffic,
    );
    note(
        "allowGatewayTransit",
        before.allow_gateway_transit,
        after.allow_gateway_transit,
    );
    note(
        "useRemoteGateways",
        before.use_remote_gateways,
        after.use_remote_gateways,
    );
    format!(
        "set peering flags for gateway transit: {}",
        parts.join(", ")
    )
}
