//! Writes of virtual network peerings, the fields derived from the peered address spaces, and
//! the removal and disconnection of peerings.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::body::{find_child, new_guid, restamp, set_state, upsert_child};
use super::keys::{lower, vnet_key_of};
use super::prefixes::overlap_between;
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, ResPath, World};
use crate::json::{
    address_prefixes, name_of, obj, prop_arr, prop_arr_mut, prop_bool, prop_ref_id, prop_str, props,
};

/// A BGP community for a VNet, stable per VNet (Azure's regional community 12076:50004 style).
fn bgp_community(key: &str) -> String {
    let sum: u32 = key.bytes().fold(7u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    format!("12076:{}", 20000 + sum % 10000)
}

const PEERING_DERIVED: [&str; 4] = [
    "remoteVirtualNetworkAddressSpace",
    "peeringSyncLevel",
    "localVirtualNetworkAddressSpace",
    "localAddressSpace",
];

impl World {
    // ------------------------------------------------------------------ writes: peerings

    /// PUT of a virtual network peering, with the Network RP's validations (notes §4.5, in the
    /// order of §15: lock → referenced → disconnected → gateway checks → overlap).
    pub(crate) fn put_peering(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(vnet) = self.vnets.get(&key).cloned() else {
            return Err(Self::not_found_parent(path));
        };
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let peering_id = path.id();
        let superseded = self.check_lock(ctx, &key, &lower(&peering_id), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        let sync = match ctx.sync_remote_address_space.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) => {
                return Err(ArmError::bad_request(
                    "InvalidSyncRemoteAddressSpaceValue",
                    format!("The value '{v}' of the query parameter syncRemoteAddressSpace is not valid. The only allowed value is 'true'."),
                ))
            }
        };
        let remote_id = prop_ref_id(&body, "remoteVirtualNetwork")
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidRequestFormat",
                    format!("Cannot parse the request: peering {peering_id} has no remoteVirtualNetwork.id."),
                )
            })?;
        let remote_key = vnet_key_of(&remote_id);
        let old = find_child(&vnet.body, ChildKind::Peering, &name).cloned();
        let created = old.is_none();
        if let Some(old) = &old {
            let old_remote = prop_ref_id(old, "remoteVirtualNetwork").unwrap_or("");
            if !old_remote.eq_ignore_ascii_case(&remote_id) {
                return Err(ArmError::bad_request(
                    "CannotChangeRemoteVirtualNetworkOfPeering",
                    format!("Peering {peering_id} cannot change its remote virtual network from {old_remote} to {remote_id}."),
                ));
            }
        } else {
            let count = prop_arr(&vnet.body, "virtualNetworkPeerings").len();
            if count >= self.strict.peering_limit {
                return Err(ArmError::bad_request(
                    "PeeringLimitReached",
                    format!(
                        "Virtual network {} cannot have more than {} peerings.",
                        path.parent_id(),
                        self.strict.peering_limit
                    ),
                ));
            }
        }
        let Some(remote) = self.vnets.get(&remote_key).cloned() else {
            return Err(ArmError::bad_request(
                "InvalidResourceReference",
                format!("Resource {remote_id} referenced by resource {peering_id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
            ));
        };
        if remote_key == key {
            return Err(ArmError::bad_request(
                "CannotPeerVirtualNetworkWithItself",
                format!("Peering {peering_id} cannot reference its own virtual network."),
            ));
        }
        self.check_referenced(&remote_key, &remote_id, &peering_id)?;

        // Disconnected: the peering itself, or the remote side of the pair.
        if let Some(old) = &old {
            if prop_str(old, "peeringState") == Some("Disconnected")
                && self.strict.refuse_disconnected_peering_update
            {
                return Err(ArmError::bad_request(
                    "CannotUpdateDisconnectedPeering",
                    format!("Cannot update peering {peering_id} because it is in Disconnected state. Delete the peering and re-create both sides to get them back to Connected state."),
                ));
            }
        }
        let remote_peering = prop_arr(&remote.body, "virtualNetworkPeerings")
            .iter()
            .find(|p| {
                prop_ref_id(p, "remoteVirtualNetwork").is_some_and(|id| vnet_key_of(id) == key)
            })
            .cloned();
        if let Some(rp) = &remote_peering {
            if prop_str(rp, "peeringState") == Some("Disconnected") {
                let rp_id = rp.get("id").and_then(Value::as_str).unwrap_or("");
                return Err(ArmError::bad_request(
                    "RemotePeeringIsDisconnected",
                    format!("Cannot create or update peering {peering_id} because remote peering {rp_id} referencing parent virtual network {} is in Disconnected state. Update or re-create the remote peering to get it back to Initiated state. Peering gets Disconnected when remote vnet or remote peering is deleted and re-created.", path.parent_id()),
                ));
            }
        }
        // No second peering to the same remote VNet.
        if let Some(other) = prop_arr(&vnet.body, "virtualNetworkPeerings")
            .iter()
            .find(|p| {
                !name_of(p).eq_ignore_ascii_case(&name)
                    && prop_ref_id(p, "remoteVirtualNetwork")
                        .is_some_and(|id| vnet_key_of(id) == remote_key)
            })
        {
            return Err(ArmError::bad_request(
                "PeeringWithSameRemoteVirtualNetworkExists",
                format!(
                    "Cannot create peering {peering_id} because peering {} of the same virtual network already references remote virtual network {remote_id}.",
                    other.get("id").and_then(Value::as_str).unwrap_or("")
                ),
            ));
        }

        // Gateway checks.
        if prop_bool(&body, "useRemoteGateways") {
            if self.vnet_has_gateway(&key, false) {
                return Err(ArmError::bad_request(
                    "UseRemoteGatewaysNotAllowedWithLocalGateway",
                    format!("Peering {peering_id} cannot have UseRemoteGateways flag set to true because its virtual network {} already has a gateway.", path.parent_id()),
                ));
            }
            if !self.vnet_has_gateway(&remote_key, true) {
                return Err(ArmError::bad_request(
                    "RemoteVnetHasNoGateways",
                    format!("Peering {peering_id} cannot have UseRemoteGateway flag set to true because remote virtual network {remote_id} referenced by the peering does not have any gateways."),
                ));
            }
            let transit_ok = match &remote_peering {
                Some(rp) => prop_bool(rp, "allowGatewayTransit"),
                None => !self.strict.use_remote_gateways_needs_remote_peering,
            };
            if !transit_ok {
                return Err(ArmError::bad_request(
                    "RemotePeeringDoesNotAllowGatewayTransit",
                    "Peering-to-Gateway cannot have UseRemoteGateways flag set to true, because corresponding remote peering has AllowGatewayTransit flag set to false.",
                ));
            }
            if let Some(other) = prop_arr(&vnet.body, "virtualNetworkPeerings")
                .iter()
                .find(|p| {
                    !name_of(p).eq_ignore_ascii_case(&name) && prop_bool(p, "useRemoteGateways")
                })
            {
                return Err(ArmError::bad_request(
                    "OnlyOnePeeringCanUseRemoteGateways",
                    format!(
                        "Peering {peering_id} cannot have UseRemoteGateways flag set to true because another peering {} of the same virtual network already uses remote gateways.",
                        other.get("id").and_then(Value::as_str).unwrap_or("")
                    ),
                ));
            }
        }

        // Overlap checks.
        let local_space = address_prefixes(&vnet.body, "addressSpace");
        let remote_space = address_prefixes(&remote.body, "addressSpace");
        if let Some(overlap) = overlap_between(&local_space, &remote_space) {
            return Err(ArmError::bad_request(
                "VnetAddressSpacesOverlap",
                format!("Cannot create or update peering {peering_id}. Virtual networks {} and {remote_id} cannot be peered because their address spaces overlap. Overlapping address prefixes: {overlap}", path.parent_id()),
            ));
        }
        for (first, first_id, second_key, second_id) in [
            (&remote_space, remote_id.as_str(), &key, path.parent_id()),
            (
                &local_space,
                path.parent_id().as_str(),
                &remote_key,
                remote_id.clone(),
            ),
        ] {
            if let Some(second) = self.vnets.get(second_key.as_str()) {
                for p in prop_arr(&second.body, "virtualNetworkPeerings") {
                    let Some(third_id) = prop_ref_id(p, "remoteVirtualNetwork") else {
                        continue;
                    };
                    let third_key = vnet_key_of(third_id);
                    if third_key == key || third_key == remote_key {
                        continue;
                    }
                    let Some(third) = self.vnets.get(&third_key) else {
                        continue;
                    };
                    if let Some(overlap) =
                        overlap_between(first, &address_prefixes(&third.body, "addressSpace"))
                    {
                        return Err(ArmError::bad_request(
                            "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
                            format!("Cannot create or update peering {peering_id}. Virtual networks {first_id} and {second_id} cannot be peered because address space of the first virtual network overlaps with address space of virtual network {third_id} already peered with the second virtual network. Overlapping address prefixes: {overlap}. For more information please refer to https://aka.ms/VnetPeeringInfo"),
                        ));
                    }
                }
            }
        }

        // Accepted: build the stored peering.
        let state = match (&old, &remote_peering) {
            (Some(old), _) => prop_str(old, "peeringState")
                .unwrap_or("Initiated")
                .to_string(),
            (None, Some(_)) => "Connected".to_string(),
            (None, None) => "Initiated".to_string(),
        };
        let guid = old
            .as_ref()
            .and_then(|o| prop_str(o, "resourceGuid").map(str::to_string))
            .or_else(|| {
                remote_peering
                    .as_ref()
                    .and_then(|rp| prop_str(rp, "resourceGuid").map(str::to_string))
            })
            .unwrap_or_else(new_guid);
        let remote_programmed = match (&old, sync) {
            (Some(old), false)
                if old
                    .get("properties")
                    .and_then(|p| p.get("remoteAddressSpace"))
                    .is_some() =>
            {
                old.get("properties")
                    .and_then(|p| p.get("remoteAddressSpace"))
                    .cloned()
                    .unwrap_or(json!({"addressPrefixes": remote_space}))
            }
            _ => json!({"addressPrefixes": remote_space}),
        };
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(name));
            top.insert("id".into(), json!(peering_id));
            top.insert(
                "type".into(),
                json!("Microsoft.Network/virtualNetworks/virtualNetworkPeerings"),
            );
        }
        {
            let p = props(&mut body);
            for flag in [
                "allowVirtualNetworkAccess",
                "allowForwardedTraffic",
                "allowGatewayTransit",
                "useRemoteGateways",
            ] {
                let value = p
                    .get(flag)
                    .and_then(Value::as_bool)
                    .unwrap_or(flag == "allowVirtualNetworkAccess");
                p.insert(flag.into(), json!(value));
            }
            p.insert("remoteVirtualNetwork".into(), json!({"id": remote_id}));
            p.insert("remoteAddressSpace".into(), remote_programmed);
            p.insert("remoteBgpCommunities".into(), json!({"virtualNetworkCommunity": bgp_community(&remote_key), "regionalCommunity": "12076:50004"}));
            if let Some(enc) = remote
                .body
                .get("properties")
                .and_then(|p| p.get("encryption"))
            {
                p.insert("remoteVirtualNetworkEncryption".into(), enc.clone());
            }
            p.insert("peeringState".into(), json!(state));
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("routeServiceVips").or_insert(json!({}));
            p.remove("peeringSyncLevel");
        }
        if let Some(res) = self.vnets.get_mut(&key) {
            upsert_child(&mut res.body, ChildKind::Peering, body);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::Vnet);
        }
        // The passive side connects (no write, no event on it).
        if created && remote_peering.is_some() {
            if let Some(res) = self.vnets.get_mut(&remote_key) {
                for p in prop_arr_mut(&mut res.body, "virtualNetworkPeerings").iter_mut() {
                    if prop_ref_id(p, "remoteVirtualNetwork")
                        .is_some_and(|id| vnet_key_of(id) == key)
                    {
                        let pp = props(p);
                        pp.insert("peeringState".into(), json!("Connected"));
                        pp.insert("resourceGuid".into(), json!(guid));
                    }
                }
                restamp(&mut res.body, Kind::Vnet);
            }
        }
        self.refresh_related(&key);
        self.accept_put(
            ctx,
            path,
            "PutVirtualNetworkPeeringOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    fn vnet_has_gateway(&self, vnet_key: &str, require_succeeded: bool) -> bool {
        let gateway_subnet = format!("{vnet_key}/subnets/gatewaysubnet");
        self.gateways.values().any(|g| {
            let in_vnet = prop_arr(&g.body, "ipConfigurations")
                .iter()
                .any(|c| prop_ref_id(c, "subnet").is_some_and(|id| lower(id) == gateway_subnet));
            in_vnet
                && (!require_succeeded
                    || prop_str(&g.body, "provisioningState") == Some("Succeeded"))
        })
    }

    /// Recomputes the derived fields of the peerings of `key` and of every VNet peered with it
    /// (address spaces, sync levels); a changed VNet gets a new etag (passive change).
    pub(super) fn refresh_related(&mut self, key: &str) {
        let mut related = BTreeSet::new();
        related.insert(key.to_string());
        if let Some(v) = self.vnets.get(key) {
            for p in prop_arr(&v.body, "virtualNetworkPeerings") {
                if let Some(id) = prop_ref_id(p, "remoteVirtualNetwork") {
                    related.insert(vnet_key_of(id));
                }
            }
        }
        for (other_key, v) in &self.vnets {
            if prop_arr(&v.body, "virtualNetworkPeerings").iter().any(|p| {
                prop_ref_id(p, "remoteVirtualNetwork").is_some_and(|id| vnet_key_of(id) == key)
            }) {
                related.insert(other_key.clone());
            }
        }
        self.refresh_peerings(&related, false);
    }

    /// Recomputes peering derived fields for `keys`. With `fill_only`, given fields are kept
    /// (seeds) and only missing ones derived.
    pub(super) fn refresh_peerings(&mut self, keys: &BTreeSet<String>, fill_only: bool) {
        let mut updates: Vec<(String, usize, Map<String, Value>)> = Vec::new();
        // Per VNet, which of its peerings points at which VNet (the first, as a scan would find):
        // refreshing a hub's 500 spokes looks the hub's peerings up 500 times.
        let mut pointing: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for key in keys {
            let Some(vnet) = self.vnets.get(key) else {
                continue;
            };
            let local_space = address_prefixes(&vnet.body, "addressSpace");
            for (index, p) in prop_arr(&vnet.body, "virtualNetworkPeerings")
                .iter()
                .enumerate()
            {
                let Some(remote_id) = prop_ref_id(p, "remoteVirtualNetwork") else {
                    continue;
                };
                let remote_key = vnet_key_of(remote_id);
                let Some(remote) = self.vnets.get(&remote_key) else {
                    continue;
                };
                let remote_space = address_prefixes(&remote.body, "addressSpace");
                let programmed = {
                    let given = address_prefixes(p, "remoteAddressSpace");
                    if p.get("properties")
                        .and_then(|pp| pp.get("remoteAddressSpace"))
                        .is_some()
                    {
                        given
                    } else {
                        remote_space.clone()
                    }
                };
                let remote_peerings = prop_arr(&remote.body, "virtualNetworkPeerings");
                let remote_index = pointing.entry(remote_key.clone()).or_insert_with(|| {
                    let mut index = HashMap::new();
                    for (at, rp) in remote_peerings.iter().enumerate() {
                        if let Some(id) = prop_ref_id(rp, "remoteVirtualNetwork") {
                            index.entry(vnet_key_of(id)).or_insert(at);
                        }
                    }
                    index
                });
                let remote_peering = remote_index
                    .get(key.as_str())
                    .and_then(|at| remote_peerings.get(*at));
                let remote_programmed = remote_peering.map(|rp| {
                    if rp
                        .get("properties")
                        .and_then(|pp| pp.get("remoteAddressSpace"))
                        .is_some()
                    {
                        address_prefixes(rp, "remoteAddressSpace")
                    } else {
                        local_space.clone()
                    }
                });
                let local_not = !same_set(&programmed, &remote_space);
                let remote_not = remote_programmed
                    .as_ref()
                    .is_some_and(|rp| !same_set(rp, &local_space));
                let level = match (local_not, remote_not) {
                    (false, false) => "FullyInSync",
                    (true, false) => "LocalNotInSync",
                    (false, true) => "RemoteNotInSync",
                    (true, true) => "LocalAndRemoteNotInSync",
                };
                let mut set = Map::new();
                set.insert(
                    "remoteAddressSpace".into(),
                    json!({"addressPrefixes": programmed}),
                );
                set.insert(
                    "remoteVirtualNetworkAddressSpace".into(),
                    json!({"addressPrefixes": remote_space}),
                );
                set.insert(
                    "localVirtualNetworkAddressSpace".into(),
                    json!({"addressPrefixes": local_space}),
                );
                set.insert(
                    "localAddressSpace".into(),
                    json!({"addressPrefixes": remote_programmed.clone().unwrap_or_else(|| local_space.clone())}),
                );
                set.insert("peeringSyncLevel".into(), json!(level));
                set.insert(
                    "remoteBgpCommunities".into(),
                    json!({"virtualNetworkCommunity": bgp_community(&remote_key), "regionalCommunity": "12076:50004"}),
                );
                if let Some(encryption) = remote
                    .body
                    .get("properties")
                    .and_then(|pp| pp.get("encryption"))
                {
                    set.insert("remoteVirtualNetworkEncryption".into(), encryption.clone());
                }
                if fill_only {
                    let existing = p.get("properties").and_then(Value::as_object);
                    set.retain(|k, _| existing.is_none_or(|e| !e.contains_key(k)));
                }
                updates.push((key.clone(), index, set));
            }
        }
        let mut changed = BTreeSet::new();
        for (key, index, set) in updates {
            let Some(vnet) = self.vnets.get_mut(&key) else {
                continue;
            };
            let peerings = prop_arr_mut(&mut vnet.body, "virtualNetworkPeerings");
            let Some(p) = peerings.get_mut(index) else {
                continue;
            };
            let pp = props(p);
            for (k, v) in set {
                if pp.get(&k) != Some(&v) {
                    if PEERING_DERIVED.contains(&k.as_str()) || k == "remoteAddressSpace" {
                        changed.insert(key.clone());
                    }
                    pp.insert(k, v);
                }
            }
        }
        for key in changed {
            if let Some(vnet) = self.vnets.get_mut(&key) {
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
    }

    pub(super) fn remove_peering(&mut self, key: &str, name: &str) {
        let mut remote_key = None;
        if let Some(res) = self.vnets.get_mut(key) {
            let items = prop_arr_mut(&mut res.body, "virtualNetworkPeerings");
            if let Some(at) = items
                .iter()
                .position(|p| name_of(p).eq_ignore_ascii_case(name))
            {
                let removed = items.remove(at);
                remote_key = prop_ref_id(&removed, "remoteVirtualNetwork").map(vnet_key_of);
            }
            set_state(&mut res.body, "Succeeded");
            restamp(&mut res.body, Kind::Vnet);
        }
        if let Some(remote_key) = remote_key {
            self.disconnect_peerings_to(&remote_key, key);
        }
    }

    /// The peerings of `vnet_key` that point at `target_key` become Disconnected.
    pub(super) fn disconnect_peerings_to(&mut self, vnet_key: &str, target_key: &str) {
        if let Some(res) = self.vnets.get_mut(vnet_key) {
            let mut changed = false;
            for p in prop_arr_mut(&mut res.body, "virtualNetworkPeerings").iter_mut() {
                if prop_ref_id(p, "remoteVirtualNetwork")
                    .is_some_and(|id| vnet_key_of(id) == target_key)
                {
                    props(p).insert("peeringState".into(), json!("Disconnected"));
                    changed = true;
                }
            }
            if changed {
                restamp(&mut res.body, Kind::Vnet);
            }
        }
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut x: Vec<String> = a.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut y: Vec<String> = b.iter().map(|s| s.to_ascii_lowercase()).collect();
    x.sort();
    y.sort();
    x == y
}
