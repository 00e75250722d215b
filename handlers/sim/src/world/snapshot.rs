//! The estate as a snapshot document, and the load of a seed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::body::{find_child_mut, new_guid, restamp};
use super::keys::{lower, vnet_key_of};
use super::{ChildKind, Kind, Res, World};
use crate::json::{name_of, obj, prop_arr, prop_arr_mut, prop_ref_id, prop_str, props};

impl World {
    // ------------------------------------------------------------------ snapshot and seed

    /// The ids of every resource, in the snapshot's order (VNets, route tables, gateways, NICs):
    /// what the tenant's subscriptions are derived from, without copying the estate.
    pub(crate) fn resource_ids(&self) -> impl Iterator<Item = &str> {
        self.vnets
            .values()
            .chain(self.tables.values())
            .chain(self.gateways.values())
            .chain(self.nics.values())
            .filter_map(|r| r.body.get("id").and_then(Value::as_str))
    }

    /// A copy of every resource Resource Graph holds (VNets, route tables, gateways, NICs), as GET
    /// returns them: the snapshot's arrays, without building the snapshot.
    pub(crate) fn graph_resources(&self) -> Vec<Value> {
        self.vnets
            .values()
            .chain(self.tables.values())
            .chain(self.gateways.values())
            .chain(self.nics.values())
            .map(|r| r.body.clone())
            .collect()
    }

    /// The estate in the snapshot format of `hubspoke plan --snapshot`.
    pub(crate) fn snapshot(&self) -> Value {
        let mut snapshot = json!({
            "virtualNetworks": self.vnets.values().map(|r| r.body.clone()).collect::<Vec<_>>(),
            "routeTables": self.tables.values().map(|r| r.body.clone()).collect::<Vec<_>>(),
            "virtualNetworkGateways": self.gateways.values().map(|r| r.body.clone()).collect::<Vec<_>>(),
        });
        // Only when there are some: the snapshot format of `hubspoke plan` predates NICs.
        if !self.nics.is_empty() {
            obj(&mut snapshot).insert(
                "networkInterfaces".into(),
                Value::Array(self.nics.values().map(|r| r.body.clone()).collect()),
            );
        }
        snapshot
    }

    /// Loads an estate (replacing the current one). Seeded peerings keep their given
    /// `peeringState`, `peeringSyncLevel` and `remoteAddressSpace`; the rest is derived.
    pub(crate) fn load(&mut self, seed: &Value) -> anyhow::Result<()> {
        let mut vnets = BTreeMap::new();
        let mut tables = BTreeMap::new();
        let mut gateways = BTreeMap::new();
        let mut nics = BTreeMap::new();
        for (field, kind) in [
            ("virtualNetworks", Kind::Vnet),
            ("routeTables", Kind::RouteTable),
            ("virtualNetworkGateways", Kind::Gateway),
            ("networkInterfaces", Kind::Nic),
        ] {
            let items = seed
                .get(field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for mut item in items {
                let id = item
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| anyhow::anyhow!("seed: an item of {field} has no id"))?;
                let name = id.rsplit('/').next().unwrap_or("").to_string();
                {
                    let top = obj(&mut item);
                    top.entry("name").or_insert(json!(name));
                    top.entry("type")
                        .or_insert(json!(format!("Microsoft.Network/{}", kind.segment())));
                    top.entry("location").or_insert(json!("westus"));
                }
                {
                    let p = props(&mut item);
                    p.entry("provisioningState").or_insert(json!("Succeeded"));
                    p.entry("resourceGuid").or_insert(json!(new_guid()));
                }
                let child_arrays: &[(&str, &str)] = match kind {
                    Kind::Vnet => &[
                        ("subnets", "Microsoft.Network/virtualNetworks/subnets"),
                        (
                            "virtualNetworkPeerings",
                            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
                        ),
                    ],
                    Kind::RouteTable => &[("routes", "Microsoft.Network/routeTables/routes")],
                    Kind::Gateway => &[],
                    Kind::Nic => &[(
                        "ipConfigurations",
                        "Microsoft.Network/networkInterfaces/ipConfigurations",
                    )],
                };
                for (array, type_name) in child_arrays {
                    for child in prop_arr_mut(&mut item, array).iter_mut() {
                        let child_name = name_of(child).to_string();
                        let top = obj(child);
                        top.entry("id")
                            .or_insert(json!(format!("{id}/{array}/{child_name}")));
                        top.entry("type").or_insert(json!(type_name));
                        let p = props(child);
                        p.entry("provisioningState").or_insert(json!("Succeeded"));
                        if *array == "virtualNetworkPeerings" {
                            for flag in [
                                "allowVirtualNetworkAccess",
                                "allowForwardedTraffic",
                                "allowGatewayTransit",
                                "useRemoteGateways",
                            ] {
                                p.entry(flag)
                                    .or_insert(json!(flag == "allowVirtualNetworkAccess"));
                            }
                        }
                    }
                }
                restamp(&mut item, kind);
                let target = match kind {
                    Kind::Vnet => &mut vnets,
                    Kind::RouteTable => &mut tables,
                    Kind::Gateway => &mut gateways,
                    Kind::Nic => &mut nics,
                };
                target.insert(lower(&id), Res { body: item });
            }
        }
        self.vnets = vnets;
        self.tables = tables;
        self.gateways = gateways;
        self.nics = nics;
        self.route_results.clear();
        self.ops.clear();
        self.due.clear();
        self.in_flight.clear();
        self.locks.clear();
        // Peering states not given: Connected when the other side exists, else Initiated.
        let keys: Vec<String> = self.vnets.keys().cloned().collect();
        let mut states = Vec::new();
        for key in &keys {
            let Some(v) = self.vnets.get(key) else {
                continue;
            };
            for (i, p) in prop_arr(&v.body, "virtualNetworkPeerings")
                .iter()
                .enumerate()
            {
                if prop_str(p, "peeringState").is_some() {
                    continue;
                }
                let remote_key = prop_ref_id(p, "remoteVirtualNetwork")
                    .map(vnet_key_of)
                    .unwrap_or_default();
                let state = match self.vnets.get(&remote_key) {
                    None => "Disconnected",
                    Some(remote) => {
                        if prop_arr(&remote.body, "virtualNetworkPeerings")
                            .iter()
                            .any(|rp| {
                                prop_ref_id(rp, "remoteVirtualNetwork")
                                    .is_some_and(|id| vnet_key_of(id) == *key)
                            })
                        {
                            "Connected"
                        } else {
                            "Initiated"
                        }
                    }
                };
                states.push((key.clone(), i, state));
            }
        }
        for (key, i, state) in states {
            if let Some(v) = self.vnets.get_mut(&key) {
                if let Some(p) = prop_arr_mut(&mut v.body, "virtualNetworkPeerings").get_mut(i) {
                    props(p).insert("peeringState".into(), json!(state));
                }
            }
        }
        self.refresh_peerings(&keys.iter().cloned().collect(), true);
        // Subnets list the ip configurations of the gateways and NICs in them.
        let links: Vec<(String, String)> = self
            .gateways
            .values()
            .chain(self.nics.values())
            .flat_map(|g| {
                let gid = g
                    .body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                prop_arr(&g.body, "ipConfigurations")
                    .iter()
                    .filter_map(|c| {
                        let subnet = prop_ref_id(c, "subnet")?.to_string();
                        let cid = c
                            .get("id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{gid}/ipConfigurations/{}", name_of(c)));
                        Some((subnet, cid))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (subnet_id, config_id) in links {
            let vnet_key = vnet_key_of(&subnet_id);
            let subnet_name = subnet_id.rsplit('/').next().unwrap_or("").to_string();
            if let Some(v) = self.vnets.get_mut(&vnet_key) {
                if let Some(s) = find_child_mut(&mut v.body, ChildKind::Subnet, &subnet_name) {
                    let configs = prop_arr_mut(s, "ipConfigurations");
                    if !configs.iter().any(|c| {
                        c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|i| i.eq_ignore_ascii_case(&config_id))
                    }) {
                        configs.push(json!({"id": config_id}));
                    }
                }
                restamp(&mut v.body, Kind::Vnet);
            }
        }
        let table_keys: BTreeSet<String> = self.tables.keys().cloned().collect();
        self.rebuild_table_subnets(&table_keys);
        Ok(())
    }
}
