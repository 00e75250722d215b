//! The peering writes of stage 3 (`docs/design.md` section 2, rules 1, 3 and 4): creations of a
//! missing side under a unique name, flag updates, syncs, and the order of the two sides.

use std::collections::{BTreeSet, HashMap};

use super::builder::Builder;
use super::types::Action;
use crate::id::{PeeringId, VnetId};
use crate::model::{Peering, PeeringFlags, VirtualNetwork};

/// The hub's peerings, indexed once per plan (a hub may have hundreds).
pub(crate) struct HubPeerings<'o> {
    by_remote: HashMap<&'o VnetId, &'o Peering>,
    names: BTreeSet<String>,
}

impl<'o> HubPeerings<'o> {
    pub(crate) fn new(hub: &'o VirtualNetwork) -> Self {
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

    /// The hub's (first) peering to `remote`: an existing peering is adopted whatever its name.
    pub(crate) fn toward(&self, remote: &VnetId) -> Option<&'o Peering> {
        self.by_remote.get(remote).copied()
    }

    /// A name for a new hub-side peering to `remote` that no peering of the hub has.
    pub(super) fn new_name(&self, remote: &VnetId) -> String {
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
pub(super) fn peering_name(local: &VirtualNetwork, remote: &VnetId) -> String {
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

/// A peering's four flags as observed (the defaults for a side to create) and after this plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlagChange {
    pub(crate) before: PeeringFlags,
    pub(crate) after: PeeringFlags,
}

/// One side of a pair, as this plan wants it.
pub(super) struct PeeringWrite<'a> {
    pub(super) local: &'a VirtualNetwork,
    pub(super) remote: &'a VirtualNetwork,
    /// The side as observed; `None` to create it.
    pub(super) existing: Option<&'a Peering>,
    pub(super) name: String,
    pub(super) flags: FlagChange,
    /// Its remote address space is out of sync (rule 4).
    pub(super) sync: bool,
}

/// Writes both sides of a connected pair. Transit goes on hub side first, and off spoke side
/// first (rule 3); a spoke side also waits for a hub side this plan creates.
pub(super) fn write_pair(
    builder: &mut Builder,
    hub: &PeeringWrite,
    spoke: &PeeringWrite,
    gateway_gone: bool,
    create_hub_side: bool,
) -> (Option<usize>, Option<usize>) {
    if gateway_gone {
        let spoke_change = spoke.push(builder, Vec::new());
        let hub_turns_off =
            !hub.flags.after.allow_gateway_transit && hub.flags.before.allow_gateway_transit;
        let waits = if hub_turns_off { spoke_change } else { None };
        let hub_change = hub.push(builder, waits.into_iter().collect());
        (hub_change, spoke_change)
    } else {
        let hub_change = hub.push(builder, Vec::new());
        let spoke_turns_on =
            spoke.flags.after.use_remote_gateways && !spoke.flags.before.use_remote_gateways;
        let waits = if spoke_turns_on || create_hub_side {
            hub_change
        } else {
            None
        };
        let spoke_change = spoke.push(builder, waits.into_iter().collect());
        (hub_change, spoke_change)
    }
}

impl PeeringWrite<'_> {
    /// The change that writes this side, if it needs one.
    fn push(&self, builder: &mut Builder, depends_on: Vec<usize>) -> Option<usize> {
        let target = PeeringId::new(&self.local.id, &self.name);
        let FlagChange { before, after } = self.flags;
        let Some(existing) = self.existing else {
            return Some(builder.push(
                1,
                Action::CreatePeering {
                    target,
                    remote_virtual_network: self.remote.id.clone(),
                    after,
                },
                format!(
                    "{} has no peering to {}: create it so the pair connects",
                    self.local.id.name(),
                    self.remote.id.name()
                ),
                depends_on,
            ));
        };
        if self.sync {
            return Some(self.push_sync(builder, existing, target, depends_on));
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

    /// A sync, with any flag change in the same PUT (rule 4).
    fn push_sync(
        &self,
        builder: &mut Builder,
        existing: &Peering,
        target: PeeringId,
        depends_on: Vec<usize>,
    ) -> usize {
        let remote_after = if existing.remote_virtual_network_address_space.is_empty() {
            self.remote.address_prefixes.clone()
        } else {
            existing.remote_virtual_network_address_space.clone()
        };
        builder.push(
            1,
            Action::SyncPeering {
                target,
                before: self.flags.before,
                after: self.flags.after,
                remote_address_space_before: existing.remote_address_space.clone(),
                remote_address_space_after: remote_after,
                as_read: existing.raw.clone(),
            },
            format!(
                "the address space of {} changed ({:?}): sync the peering so the new prefixes are reachable",
                self.remote.id.name(),
                existing.sync_level
            ),
            depends_on,
        )
    }
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
