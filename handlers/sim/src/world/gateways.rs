//! Writes of virtual network gateways, and the removal of a gateway.

use serde_json::{json, Value};

use super::body::{find_child, required_location, restamp, stamp_accepted};
use super::keys::vnet_key_of;
use super::nics::config_ids_of;
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
        stamp_accepted(
            &mut body,
            path,
            "Microsoft.Network/virtualNetworkGateways",
            &location,
            existing.as_ref().map(|e| &e.body),
        );
        {
            let p = props(&mut body);
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
            self.link_ip_config(subnet_id, &config_id);
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
        self.unlink_ip_configs(&config_ids_of(&res.body));
    }
}
