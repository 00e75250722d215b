//! Writes of network interfaces (minimal), the links of their ip configurations to subnets,
//! and the results of `effectiveRouteTable` operations.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::{json, Value};

use super::body::{find_child, find_child_mut, required_location, restamp, stamp_accepted};
use super::keys::{lower, vnet_key_of};
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, Res, ResPath, World};
use crate::json::{name_of, obj, prop_arr, prop_arr_mut, prop_bool, prop_ref_id, prop_str, props};

impl World {
    // ------------------------------------------------------------------ writes: NICs

    /// PUT of a network interface, minimal: its ip configurations must name existing subnets,
    /// which then list them (read-only `ipConfigurations`, as for gateways); a configuration
    /// without `privateIPAddress` gets the first free one of its subnet. No NSG, VM or
    /// accelerated-networking semantics.
    pub(crate) fn put_nic(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = required_location(&body)?;
        let existing = self.nics.get(&key).cloned();
        let created = existing.is_none();
        if prop_arr(&body, "ipConfigurations").is_empty() {
            return Err(ArmError::bad_request(
                "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                format!(
                    "Network interface {} must have at least one IP configuration.",
                    path.id()
                ),
            ));
        }
        let old_ids: Vec<String> = existing
            .as_ref()
            .map(|e| config_ids_of(&e.body))
            .unwrap_or_default();
        // Addresses held by the other NICs, so a new configuration gets a free one.
        let mut taken: BTreeSet<String> = self
            .nics
            .iter()
            .filter(|(k, _)| **k != key)
            .flat_map(|(_, n)| {
                prop_arr(&n.body, "ipConfigurations")
                    .iter()
                    .filter_map(|c| prop_str(c, "privateIPAddress").map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        let has_primary = prop_arr(&body, "ipConfigurations")
            .iter()
            .any(|c| prop_bool(c, "primary"));
        let mut links = Vec::new();
        for (index, config) in prop_arr_mut(&mut body, "ipConfigurations")
            .iter_mut()
            .enumerate()
        {
            let subnet_id = prop_ref_id(config, "subnet").unwrap_or("").to_string();
            let vnet_key = vnet_key_of(&subnet_id);
            let subnet_name = subnet_id.rsplit('/').next().unwrap_or("").to_string();
            let subnet = self
                .vnets
                .get(&vnet_key)
                .and_then(|v| find_child(&v.body, ChildKind::Subnet, &subnet_name))
                .cloned();
            let Some(subnet) =
                subnet.filter(|_| subnet_id.to_ascii_lowercase().contains("/subnets/"))
            else {
                return Err(ArmError::bad_request(
                    "InvalidResourceReference",
                    format!(
                        "Resource {subnet_id} referenced by resource {} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.",
                        path.id()
                    ),
                ));
            };
            self.check_referenced(&vnet_key, &subnet_id, &path.id())?;
            let name = match name_of(config) {
                "" => format!("ipconfig{}", index + 1),
                given => given.to_string(),
            };
            let id = format!("{}/ipConfigurations/{name}", path.id());
            let previous = existing.as_ref().and_then(|e| {
                prop_arr(&e.body, "ipConfigurations")
                    .iter()
                    .find(|c| name_of(c).eq_ignore_ascii_case(&name))
                    .and_then(|c| prop_str(c, "privateIPAddress").map(str::to_string))
            });
            let address = match prop_str(config, "privateIPAddress") {
                Some(given) => Some(given.to_string()),
                None => previous.or_else(|| first_free_address(&subnet, &taken)),
            };
            {
                let top = obj(config);
                top.insert("name".into(), json!(name));
                top.insert("id".into(), json!(id));
                top.insert(
                    "type".into(),
                    json!("Microsoft.Network/networkInterfaces/ipConfigurations"),
                );
            }
            let static_given = prop_str(config, "privateIPAddress").is_some();
            let p = props(config);
            p.insert("provisioningState".into(), json!("Updating"));
            p.entry("privateIPAllocationMethod")
                .or_insert(json!(if static_given { "Static" } else { "Dynamic" }));
            if let Some(address) = address {
                taken.insert(address.clone());
                p.insert("privateIPAddress".into(), json!(address));
                p.entry("privateIPAddressVersion").or_insert(json!("IPv4"));
            }
            p.entry("primary")
                .or_insert(json!(!has_primary && index == 0));
            links.push((subnet_id, id));
        }
        stamp_accepted(
            &mut body,
            path,
            "Microsoft.Network/networkInterfaces",
            &location,
            existing.as_ref().map(|e| &e.body),
        );
        {
            let p = props(&mut body);
            p.entry("enableAcceleratedNetworking")
                .or_insert(json!(false));
            p.entry("enableIPForwarding").or_insert(json!(false));
        }
        restamp(&mut body, Kind::Nic);
        self.nics.insert(key.clone(), Res { body });
        self.unlink_ip_configs(&old_ids);
        for (subnet_id, config_id) in &links {
            self.link_ip_config(subnet_id, config_id);
        }
        self.accept_put(
            ctx,
            path,
            "PutNetworkInterfaceOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    pub(super) fn remove_nic(&mut self, key: &str) {
        if let Some(res) = self.nics.remove(key) {
            self.unlink_ip_configs(&config_ids_of(&res.body));
        }
    }

    /// Adds `config_id` to the read-only `ipConfigurations` of the subnet `subnet_id`.
    pub(super) fn link_ip_config(&mut self, subnet_id: &str, config_id: &str) {
        let vnet_key = vnet_key_of(subnet_id);
        let subnet_name = subnet_id.rsplit('/').next().unwrap_or("");
        if let Some(vnet) = self.vnets.get_mut(&vnet_key) {
            if let Some(subnet) = find_child_mut(&mut vnet.body, ChildKind::Subnet, subnet_name) {
                let configs = prop_arr_mut(subnet, "ipConfigurations");
                if !configs.iter().any(|c| {
                    c.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|i| i.eq_ignore_ascii_case(config_id))
                }) {
                    configs.push(json!({"id": config_id}));
                }
            }
            restamp(&mut vnet.body, Kind::Vnet);
        }
    }

    /// Removes these ip configuration ids (lower-cased) from every subnet that lists them.
    pub(super) fn unlink_ip_configs(&mut self, config_ids: &[String]) {
        if config_ids.is_empty() {
            return;
        }
        for vnet in self.vnets.values_mut() {
            let mut changed = false;
            for subnet in prop_arr_mut(&mut vnet.body, "subnets").iter_mut() {
                let p = props(subnet);
                if let Some(Value::Array(configs)) = p.get_mut("ipConfigurations") {
                    let before = configs.len();
                    configs.retain(|c| {
                        !c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| config_ids.contains(&lower(id)))
                    });
                    changed |= configs.len() != before;
                    if configs.is_empty() {
                        p.remove("ipConfigurations");
                    }
                }
            }
            if changed {
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
    }

    /// Keeps the result of an `effectiveRouteTable` operation until it is polled.
    pub(crate) fn store_route_result(&mut self, op_id: &str, due: Instant, routes: Value) {
        // A long-running simulator forgets results older than ten minutes past their due time.
        if self.route_results.len() > 1_000 {
            let horizon = Duration::from_secs(600);
            self.route_results
                .retain(|_, (d, _)| d.checked_add(horizon).is_some_and(|end| end > due));
        }
        self.route_results.insert(op_id.to_string(), (due, routes));
    }

    /// `GET …/networkInterfaces/{nic}/operationResults/{id}`: 202 until due, then 200 with
    /// the effective routes.
    pub(crate) fn route_result(&self, op_id: &str, now: Instant) -> Option<Reply> {
        let (due, routes) = self.route_results.get(op_id)?;
        if now < *due {
            let mut reply = Reply::empty(202);
            reply.headers.push((
                "Retry-After".to_string(),
                self.latency.retry_after_secs.to_string(),
            ));
            return Some(reply);
        }
        Some(Reply::ok(routes.clone()))
    }
}

/// The lower-case ids of a gateway's or NIC's ip configurations.
pub(super) fn config_ids_of(body: &Value) -> Vec<String> {
    prop_arr(body, "ipConfigurations")
        .iter()
        .filter_map(|c| c.get("id").and_then(Value::as_str).map(lower))
        .collect()
}

/// The first IPv4 address of the subnet Azure would hand out (it reserves the network address,
/// the next three and the broadcast address) that is not `taken`; `None` for IPv6 or a full
/// subnet.
fn first_free_address(subnet: &Value, taken: &BTreeSet<String>) -> Option<String> {
    let prefix = prop_str(subnet, "addressPrefix")
        .map(str::to_string)
        .or_else(|| {
            prop_arr(subnet, "addressPrefixes")
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
        })?;
    let IpNet::V4(net) = IpNet::from_str(&prefix).ok()? else {
        return None;
    };
    let first = u32::from(net.network()).checked_add(4)?;
    let last = u32::from(net.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(|n| std::net::Ipv4Addr::from(n).to_string())
        .find(|a| !taken.contains(a))
}
