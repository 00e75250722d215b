//! Synthetic estates in ARM JSON: the snapshot format of `hubspoke plan --snapshot`, built
//! resource by resource the way Azure would return them. Used by the tests, the benchmarks and
//! the demo; never by the planner itself.
use serde_json::{json, Value};

/// Builds a snapshot (`{"virtualNetworks", "routeTables", "virtualNetworkGateways"}`).
#[derive(Debug, Clone)]
pub struct Estate {
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    pub virtual_networks: Vec<Value>,
    pub route_tables: Vec<Value>,
    pub gateways: Vec<Value>,
}

/// Peering flags for [`Estate::peer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub access_disabled: bool,
    pub forwarded: bool,
    pub gateway_transit: bool,
    pub remote_gateways: bool,
}

impl Default for Estate {
    fn default() -> Self {
        Estate::new(
            "00000000-0000-0000-0000-000000000001",
            "rg-network",
            "westeurope",
        )
    }
}

impl Estate {
    pub fn new(subscription: &str, resource_group: &str, location: &str) -> Self {
        Estate {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            location: location.into(),
            virtual_networks: Vec::new(),
            route_tables: Vec::new(),
            gateways: Vec::new(),
        }
    }

    fn provider(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network",
            self.subscription, self.resource_group
        )
    }

    /// The id of VNet `name`.
    pub fn vnet_id(&self, name: &str) -> String {
        format!("{}/virtualNetworks/{name}", self.provider())
    }

    /// The id of route table `name`.
    pub fn table_id(&self, name: &str) -> String {
        format!("{}/routeTables/{name}", self.provider())
    }

    /// Adds a VNet with the given address prefixes and subnets (`(name, prefix)`).
    pub fn vnet(&mut self, name: &str, prefixes: &[&str], subnets: &[(&str, &str)]) -> String {
        let id = self.vnet_id(name);
        let subnets: Vec<Value> = subnets
            .iter()
            .map(|(subnet, prefix)| {
                json!({
                    "name": subnet,
                    "id": format!("{id}/subnets/{subnet}"),
                    "etag": "W/\"00000000-0000-0000-0000-000000000000\"",
                    "type": "Microsoft.Network/virtualNetworks/subnets",
                    "properties": {"provisioningState": "Succeeded", "addressPrefix": prefix},
                })
            })
            .collect();
        self.virtual_networks.push(json!({
            "name": name,
            "id": id,
            "etag": "W/\"00000000-0000-0000-0000-000000000000\"",
            "type": "Microsoft.Network/virtualNetworks",
            "location": self.location,
            "tags": {},
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": "00000000-0000-0000-0000-000000000000",
                "addressSpace": {"addressPrefixes": prefixes},
                "subnets": subnets,
                "virtualNetworkPeerings": [],
            }
        }));
        id
    }

    /// The VNet object named `name`, to edit.
    pub fn vnet_mut(&mut self, name: &str) -> &mut Value {
        let id = self.vnet_id(name);
        self.virtual_networks
            .iter_mut()
            .find(|v| v["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no VNet {name} in the estate"))
    }

    /// The subnet `subnet` of VNet `vnet`, to edit.
    pub fn subnet_mut(&mut self, vnet: &str, subnet: &str) -> &mut Value {
        let vnet_value = self.vnet_mut(vnet);
        vnet_value["properties"]["subnets"]
            .as_array_mut()
            .and_then(|subnets| subnets.iter_mut().find(|s| s["name"] == subnet))
            .unwrap_or_else(|| panic!("no subnet {subnet} in {vnet}"))
    }

    /// Sets a tag on VNet `name`.
    pub fn tag_vnet(&mut self, name: &str, key: &str, value: &str) {
        self.vnet_mut(name)["tags"][key] = value.into();
    }

    /// Adds a hub: a VNet with a `GatewaySubnet`, and a VPN gateway in the given state and SKU
    /// unless `gateway_state` is `None`.
    pub fn hub(
        &mut self,
        name: &str,
        prefix: &str,
        gateway_subnet: &str,
        gateway_state: Option<&str>,
    ) -> String {
        let id = self.vnet(name, &[prefix], &[("GatewaySubnet", gateway_subnet)]);
        if let Some(state) = gateway_state {
            self.gateway(name, &format!("{name}-vpngw"), "Vpn", "VpnGw1", state);
        }
        id
    }

    /// Adds a gateway of the given type in VNet `vnet`'s `GatewaySubnet`.
    pub fn gateway(&mut self, vnet: &str, name: &str, gateway_type: &str, sku: &str, state: &str) {
        let gateway_id = format!("{}/virtualNetworkGateways/{name}", self.provider());
        let config_id = format!("{gateway_id}/ipConfigurations/default");
        let subnet_id = format!("{}/subnets/GatewaySubnet", self.vnet_id(vnet));
        let subnet = self.subnet_mut(vnet, "GatewaySubnet");
        let configs = subnet["properties"]
            .as_object_mut()
            .map(|p| p.entry("ipConfigurations").or_insert_with(|| json!([])));
        if let Some(Value::Array(configs)) = configs {
            configs.push(json!({ "id": config_id }));
        }
        self.gateways.push(json!({
            "name": name,
            "id": gateway_id,
            "type": "Microsoft.Network/virtualNetworkGateways",
            "location": self.location,
            "properties": {
                "provisioningState": state,
                "gatewayType": gateway_type,
                "vpnType": "RouteBased",
                "sku": {"name": sku, "tier": sku},
                "ipConfigurations": [{
                    "name": "default",
                    "id": config_id,
                    "properties": {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic"}
                }]
            }
        }));
    }

    /// Sets the provisioning state of every gateway.
    pub fn set_gateway_state(&mut self, state: &str) {
        for gateway in &mut self.gateways {
            gateway["properties"]["provisioningState"] = state.into();
        }
    }

    /// Adds the peering `from`→`to` with the given flags and state; its address spaces are
    /// `to`'s current space, in sync.
    pub fn peer(&mut self, from: &str, to: &str, flags: Flags, state: &str) -> String {
        let to_id = self.vnet_id(to);
        let to_space = self.vnet_mut(to)["properties"]["addressSpace"].clone();
        let from_id = self.vnet_id(from);
        let name = format!("{from}-to-{to}");
        let id = format!("{from_id}/virtualNetworkPeerings/{name}");
        let peering = json!({
            "name": name,
            "id": id,
            "etag": "W/\"00000000-0000-0000-0000-000000000000\"",
            "type": "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
            "properties": {
                "provisioningState": "Succeeded",
                "peeringState": state,
                "peeringSyncLevel": "FullyInSync",
                "allowVirtualNetworkAccess": !flags.access_disabled,
                "allowForwardedTraffic": flags.forwarded,
                "allowGatewayTransit": flags.gateway_transit,
                "useRemoteGateways": flags.remote_gateways,
                "remoteVirtualNetwork": {"id": to_id},
                "remoteAddressSpace": to_space,
                "remoteVirtualNetworkAddressSpace": to_space,
            }
        });
        if let Some(list) =
            self.vnet_mut(from)["properties"]["virtualNetworkPeerings"].as_array_mut()
        {
            list.push(peering);
        }
        id
    }

    /// Peers `a` and `b` both ways, `Connected`, with default flags (what the portal makes).
    pub fn connect(&mut self, a: &str, b: &str) {
        self.peer(a, b, Flags::default(), "Connected");
        self.peer(b, a, Flags::default(), "Connected");
    }

    /// Peers hub and spoke both ways with every transit flag right, as hubspoke leaves them.
    pub fn connect_transit(&mut self, hub: &str, spoke: &str) {
        let hub_flags = Flags {
            forwarded: true,
            gateway_transit: true,
            ..Flags::default()
        };
        let spoke_flags = Flags {
            forwarded: true,
            remote_gateways: true,
            ..Flags::default()
        };
        self.peer(hub, spoke, hub_flags, "Connected");
        self.peer(spoke, hub, spoke_flags, "Connected");
    }

    /// Adds a route table with routes `(name, prefix, next hop type, next hop ip)`.
    pub fn table(
        &mut self,
        name: &str,
        routes: &[(&str, &str, &str, Option<&str>)],
        tags: Value,
    ) -> String {
        let id = self.table_id(name);
        let routes: Vec<Value> = routes
            .iter()
            .map(|(route, prefix, hop, ip)| {
                let mut properties = json!({
                    "provisioningState": "Succeeded",
                    "addressPrefix": prefix,
                    "nextHopType": hop,
                });
                if let Some(ip) = ip {
                    properties["nextHopIpAddress"] = (*ip).into();
                }
                json!({
                    "name": route,
                    "id": format!("{id}/routes/{route}"),
                    "type": "Microsoft.Network/routeTables/routes",
                    "properties": properties,
                })
            })
            .collect();
        self.route_tables.push(json!({
            "name": name,
            "id": id,
            "type": "Microsoft.Network/routeTables",
            "location": self.location,
            "tags": tags,
            "properties": {
                "provisioningState": "Succeeded",
                "disableBgpRoutePropagation": false,
                "routes": routes,
                "subnets": [],
            }
        }));
        id
    }

    /// Associates subnet `subnet` of `vnet` with table `table`, on both sides as ARM shows it.
    pub fn associate(&mut self, vnet: &str, subnet: &str, table: &str) {
        let table_id = self.table_id(table);
        let subnet_id = format!("{}/subnets/{subnet}", self.vnet_id(vnet));
        self.subnet_mut(vnet, subnet)["properties"]["routeTable"] = json!({ "id": table_id });
        let table_value = self
            .route_tables
            .iter_mut()
            .find(|t| t["id"] == table_id.as_str())
            .unwrap_or_else(|| panic!("no table {table}"));
        if let Some(subnets) = table_value["properties"]["subnets"].as_array_mut() {
            subnets.push(json!({ "id": subnet_id }));
        }
    }

    /// The two PUTs (path, body), in order, by which a landing zone adds VNet `name` with one
    /// subnet to this estate's subscription and peers it with `hub` from its side only, with
    /// default flags.
    pub fn landing_zone_spoke(
        &self,
        name: &str,
        prefix: &str,
        subnet: &str,
        hub: &str,
    ) -> [(String, Value); 2] {
        let vnet_id = self.vnet_id(name);
        let vnet = json!({
            "location": self.location,
            "properties": {
                "addressSpace": {"addressPrefixes": [prefix]},
                "subnets": [{"name": "workload", "properties": {"addressPrefix": subnet}}],
            }
        });
        let peering = json!({"properties": {
            "allowVirtualNetworkAccess": true,
            "remoteVirtualNetwork": {"id": self.vnet_id(hub)},
        }});
        let peering_id = format!("{vnet_id}/virtualNetworkPeerings/{name}-to-{hub}");
        [(vnet_id, vnet), (peering_id, peering)]
    }

    /// The snapshot document.
    pub fn snapshot(&self) -> Value {
        json!({
            "virtualNetworks": self.virtual_networks,
            "routeTables": self.route_tables,
            "virtualNetworkGateways": self.gateways,
        })
    }
}

/// A hub with a ready VPN gateway and `spokes` spokes of `prefixes_each` /24 prefixes, peered
/// only from the spoke side with default flags (the state a landing zone leaves), each with one
/// workload subnet: what the planner and the simulator are measured on.
pub fn hub_and_spokes(spokes: usize, prefixes_each: usize, peered_from_hub_too: bool) -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.0.0/27", Some("Succeeded"));
    for n in 0..spokes {
        let name = format!("spoke{n:04}");
        let prefixes: Vec<String> = (0..prefixes_each)
            .map(|k| {
                let block = n * prefixes_each + k;
                format!("10.{}.{}.0/24", 1 + block / 256, block % 256)
            })
            .collect();
        let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        let first = prefixes[0].replace(".0/24", ".0/26");
        estate.vnet(&name, &refs, &[("workload", &first)]);
        if peered_from_hub_too {
            estate.connect("hub", &name);
        } else {
            estate.peer(&name, "hub", Flags::default(), "Initiated");
        }
    }
    estate
}
