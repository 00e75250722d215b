//! Virtual network peerings after a write: the fields derived from the peered address spaces
//! (the sync levels among them), and the removal and disconnection of peerings. The PUT of a
//! peering is `peering_put.rs`.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::body::{restamp, set_state};
use super::keys::vnet_key_of;
use super::{Kind, World};
use crate::json::{address_prefixes, name_of, prop_arr, prop_arr_mut, prop_ref_id, props};

/// A BGP community for a VNet, stable per VNet (Azure's regional community 12076:50004 style).
pub(super) fn bgp_community(key: &str) -> String {
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
