//! Writes of virtual network gateways, and the removal of a gateway.

use serde_json::{json, Value};

use super::body::{find_child, find_child_mut, new_guid, required_location, restamp};
use super::keys::{lower, vnet_key_of};
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, Res, ResPath, World};
use crate::json::{name_of, obj, prop_arr, prop_arr_mut, prop_ref_id, prop_str, props};

impl World {
    // ------------------------------------------------------------------ writes: gateways

    /// PUT of a virtual network gateway: provisions for the latency's gateway time.
    pub(crate) fn put_gateway(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = required_location(&body)?;
        let existing = self.gateways.get(&key).cloned();
        let created = existing.is_none();
        let configs = prop_arr(&body, "ipConfigurations").to_vec();
        if configs.is_empty() {
            return Err(ArmError::bad_request(
                "VirtualNetworkGatewayMustHaveIpConfiguration",
                format!(
                    "Virtual network gateway {} must have at least one ip configuration.",
                    path.id()
                ),
            ));
        }
        let mut subnet_ids = Vec::new();
        for config in &configs {
            let subnet_id = prop_ref_id(config, "subnet").unwrap_or("").to_string();
            let vnet_key = vnet_key_of(&subnet_id);
            let subnet_name = subnet_id.rsplit('/').next().unwrap_or("");
            let exists = self
                .vnets
                .get(&vnet_key)
                .is_some_and(|v| find_child(&v.body, ChildKind::Subnet, subnet_name).is_some());
            if !exists {
                return Err(ArmError::bad_request(
                    "InvalidResourceReference",
                    format!(
                        "Resource {subnet_id} referenced by resource {} was not found.",
                        path.id()
                    ),
                ));
            }
            if !subnet_name.eq_ignore_ascii_case("GatewaySubnet") {
                return Err(ArmError::bad_request(
                    "InvalidGatewaySubnet",
                    format!("Subnet {subnet_id} referenced by virtual network gateway {} must be named GatewaySubnet.", path.id()),
                ));
            }
            let gateway_type = prop_str(&body, "gatewayType").unwrap_or("Vpn");
            if created {
                let same_type_elsewhere = self.gateways.values().any(|g| {
                    prop_str(&g.body, "gatewayType")
                        .unwrap_or("Vpn")
                        .eq_ignore_ascii_case(gateway_type)
                        && prop_arr(&g.body, "ipConfigurations").iter().any(|c| {
                            prop_ref_id(c, "subnet").is_some_and(|id| vnet_key_of(id) == vnet_key)
                        })
                });
                if same_type_elsewhere {
                    return Err(ArmError::bad_request(
                        "VnetCanHaveOnlyOneGatewayOfType",
                        format!("Virtual network {vnet_key} already has a gateway of type {gateway_type}."),
                    ));
                }
            }
            self.check_referenced(&vnet_key, &subnet_id, &path.id())?;
            subnet_ids.push(subnet_id);
        }
        let guid = existing
            .as_ref()
            .and_then(|e| prop_str(&e.body, "resourceGuid").map(str::to_string))
            .unwrap_or_else(new_guid);
        {
            let top = obj(&mut body);
            top.insert("name".into(), json!(path.name));
            top.insert("id".into(), json!(path.id()));
            top.insert(
                "type".into(),
                json!("Microsoft.Network/virtualNetworkGateways"),
            );
            top.insert("location".into(), json!(location));
        }
        {
            let p = props(&mut body);
            p.insert("provisioningState".into(), json!("Updating"));
            p.insert("resourceGuid".into(), json!(guid));
            p.entry("gatewayType").or_insert(json!("Vpn"));
            p.entry("vpnType").or_insert(json!("RouteBased"));
            p.entry("enableBgp").or_insert(json!(false));
            p.entry("activeActive").or_insert(json!(false));
            p.entry("sku")
                .or_insert(json!({"name": "VpnGw1", "tier": "VpnGw1"}));
        }
        let mut config_ids = Vec::new();
        for config in prop_arr_mut(&mut body, "ipConfigurations").iter_mut() {
            let name = name_of(config).to_string();
            let name = if name.is_empty() {
                "default".to_string()
            } else {
                name
            };
            let id = format!("{}/ipConfigurations/{name}", path.id());
            config_ids.push(id.clone());
            let top = obj(config);
            top.insert("name".into(), json!(name));
            top.insert("id".into(), json!(id));
            let p = props(config);
            p.insert("provisioningState".into(), json!("Updating"));
            p.entry("privateIPAllocationMethod")
                .or_insert(json!("Dynamic"));
        }
        restamp(&mut body, Kind::Gateway);
        self.gateways.insert(key.clone(), Res { body });
        // The gateway subnet lists the gateway's ip configurations.
        for (subnet_id, config_id) in subnet_ids.iter().zip(config_ids) {
            let vnet_key = vnet_key_of(subnet_id);
            if let Some(vnet) = self.vnets.get_mut(&vnet_key) {
                if let Some(subnet) =
                    find_child_mut(&mut vnet.body, ChildKind::Subnet, "GatewaySubnet")
                {
                    let configs = prop_arr_mut(subnet, "ipConfigurations");
                    if !configs.iter().any(|c| {
                        c.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|i| i.eq_ignore_ascii_case(&config_id))
                    }) {
                        configs.push(json!({"id": config_id}));
                    }
                }
                restamp(&mut vnet.body, Kind::Vnet);
            }
        }
        self.accept_put(
            ctx,
            path,
            "PutVirtualNetworkGatewayOperation",
            superseded,
            created,
            self.latency.gateway,
        )
    }

    pub(super) fn remove_gateway(&mut self, key: &str) {
        let Some(res) = self.gateways.remove(key) else {
            return;
        };
        let config_ids: Vec<String> = prop_arr(&res.body, "ipConfigurations")
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str).map(lower))
            .collect();
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
}
