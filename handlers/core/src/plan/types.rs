//! What a plan is made of: changes with their dependencies, and warnings with stable codes.
use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;
use serde_json::Value;

use super::names::{managed_route_name, TAG_MANAGED};
use crate::id::{PeeringId, RouteId, RouteTableId, SubnetId, VnetId};
use crate::model::PeeringFlags;

/// The plan for every configured hub.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub hubs: Vec<HubPlan>,
}

/// What must change for one hub.
///
/// `changes` is ordered so that every change comes after the changes it depends on. Changes of
/// `phase` 0 (routes whose prefixes vanished) run before every change of phase 1; within a
/// phase, a change runs once every change in its `depends_on` has succeeded, and independent
/// changes may run in parallel. The executor makes no other choice.
#[derive(Debug, Clone, Serialize)]
pub struct HubPlan {
    pub hub: VnetId,
    pub status: HubStatus,
    pub changes: Vec<Change>,
    pub warnings: Vec<Warning>,
}

/// The state of a hub's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HubStatus {
    /// Nothing to change.
    UpToDate,
    /// Changes are planned.
    ChangesPending,
    /// The hub VNet is not in the observed state (deleted, mistyped or not readable).
    HubNotFound,
}

/// One write to Azure.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Position in the hub's list of changes.
    pub id: usize,
    /// 0 for the removal of routes whose prefixes vanished, 1 for everything else.
    pub phase: u8,
    /// Ids of changes that must succeed first.
    pub depends_on: Vec<usize>,
    /// Why, in a sentence.
    pub reason: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What a change does. `target` is the resource written.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// PUT a new peering.
    CreatePeering {
        target: PeeringId,
        remote_virtual_network: VnetId,
        after: PeeringFlags,
    },
    /// PUT an existing peering with changed flags, everything else as read.
    UpdatePeering {
        target: PeeringId,
        before: PeeringFlags,
        after: PeeringFlags,
        /// The peering as read: the PUT carries it back with only the flags changed.
        #[serde(skip)]
        as_read: Value,
    },
    /// PUT an existing peering with `?syncRemoteAddressSpace=true` (and any flag changes).
    SyncPeering {
        target: PeeringId,
        before: PeeringFlags,
        after: PeeringFlags,
        /// The remote address space as programmed now, and as it will be.
        remote_address_space_before: Vec<IpNet>,
        remote_address_space_after: Vec<IpNet>,
        #[serde(skip)]
        as_read: Value,
    },
    /// PUT a new managed route table, with its routes.
    CreateRouteTable {
        target: RouteTableId,
        location: String,
        disable_bgp_route_propagation: bool,
        routes: Vec<RouteSpec>,
    },
    /// PUT a subnet exactly as read, with `routeTable` set.
    AssociateRouteTable {
        target: SubnetId,
        route_table: RouteTableId,
        /// The subnet as read when planning: the executor re-reads it and skips the change if
        /// it differs.
        #[serde(skip)]
        subnet_as_read: Value,
    },
    /// PUT one route through the `routes` sub-resource.
    UpsertRoute {
        target: RouteId,
        before: Option<RouteSpec>,
        after: RouteSpec,
    },
    /// DELETE one route.
    DeleteRoute { target: RouteId, before: RouteSpec },
}

impl Action {
    /// The stable kind, as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreatePeering { .. } => "create_peering",
            Action::UpdatePeering { .. } => "update_peering",
            Action::SyncPeering { .. } => "sync_peering",
            Action::CreateRouteTable { .. } => "create_route_table",
            Action::AssociateRouteTable { .. } => "associate_route_table",
            Action::UpsertRoute { .. } => "upsert_route",
            Action::DeleteRoute { .. } => "delete_route",
        }
    }

    /// The id of the resource written.
    pub fn target(&self) -> String {
        match self {
            Action::CreatePeering { target, .. }
            | Action::UpdatePeering { target, .. }
            | Action::SyncPeering { target, .. } => target.to_string(),
            Action::CreateRouteTable { target, .. } => target.to_string(),
            Action::AssociateRouteTable { target, .. } => target.to_string(),
            Action::UpsertRoute { target, .. } | Action::DeleteRoute { target, .. } => {
                target.to_string()
            }
        }
    }

    /// The VNet a peering change points at (Azure refuses a peering write while that VNet is
    /// `Updating`, so the executor keeps the two from being written at once).
    pub fn remote_vnet(&self) -> Option<VnetId> {
        match self {
            Action::CreatePeering {
                remote_virtual_network,
                ..
            } => Some(remote_virtual_network.clone()),
            Action::UpdatePeering { as_read, .. } | Action::SyncPeering { as_read, .. } => as_read
                ["properties"]["remoteVirtualNetwork"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok()),
            _ => None,
        }
    }

    /// The body of the PUT this change sends (`None` for a delete). Peering and subnet bodies
    /// carry back everything read, with only what the change is about altered: a PUT replaces
    /// the whole resource.
    pub fn request_body(&self) -> Option<Value> {
        match self {
            Action::CreatePeering {
                remote_virtual_network,
                after,
                ..
            } => Some(peering_body(
                serde_json::json!({ "properties": {} }),
                remote_virtual_network,
                *after,
            )),
            Action::UpdatePeering { after, as_read, .. }
            | Action::SyncPeering { after, as_read, .. } => {
                let remote = as_read["properties"]["remoteVirtualNetwork"]["id"]
                    .as_str()
                    .and_then(|id| id.parse::<VnetId>().ok());
                remote.map(|remote| peering_body(as_read.clone(), &remote, *after))
            }
            Action::CreateRouteTable {
                location,
                disable_bgp_route_propagation,
                routes,
                ..
            } => {
                let routes: Vec<Value> = routes
                    .iter()
                    .map(|route| {
                        let mut body = route.body();
                        body["name"] = route.name.clone().into();
                        body
                    })
                    .collect();
                Some(serde_json::json!({
                    "location": location,
                    "tags": { TAG_MANAGED: "true" },
                    "properties": {
                        "disableBgpRoutePropagation": disable_bgp_route_propagation,
                        "routes": routes,
                    },
                }))
            }
            Action::AssociateRouteTable {
                route_table,
                subnet_as_read,
                ..
            } => {
                let mut body = subnet_as_read.clone();
                if !body.get("properties").is_some_and(Value::is_object) {
                    body["properties"] = serde_json::json!({});
                }
                body["properties"]["routeTable"] =
                    serde_json::json!({ "id": route_table.to_string() });
                Some(body)
            }
            Action::UpsertRoute { after, .. } => Some(after.body()),
            Action::DeleteRoute { .. } => None,
        }
    }

    /// What the target looked like before the change and what it looks like after, as data for
    /// people and logs (`null` where there was or will be nothing): a peering's flags (and the
    /// remote address space of a sync), a route, a subnet's route table, a new table.
    pub fn before_after(&self) -> (Value, Value) {
        use serde_json::json;
        let flags = |flags: &PeeringFlags| serde_json::to_value(flags).unwrap_or(Value::Null);
        match self {
            Action::CreatePeering {
                remote_virtual_network,
                after,
                ..
            } => (
                Value::Null,
                json!({ "remoteVirtualNetwork": remote_virtual_network.to_string(), "flags": flags(after) }),
            ),
            Action::UpdatePeering { before, after, .. } => (
                json!({ "flags": flags(before) }),
                json!({ "flags": flags(after) }),
            ),
            Action::SyncPeering {
                before,
                after,
                remote_address_space_before,
                remote_address_space_after,
                ..
            } => (
                json!({ "flags": flags(before), "remoteAddressSpace": remote_address_space_before }),
                json!({ "flags": flags(after), "remoteAddressSpace": remote_address_space_after }),
            ),
            Action::CreateRouteTable {
                location,
                disable_bgp_route_propagation,
                routes,
                ..
            } => (
                Value::Null,
                json!({
                    "location": location,
                    "disableBgpRoutePropagation": disable_bgp_route_propagation,
                    "routes": routes,
                }),
            ),
            Action::AssociateRouteTable {
                route_table,
                subnet_as_read,
                ..
            } => (
                json!({ "routeTable": subnet_as_read["properties"]["routeTable"]["id"] }),
                json!({ "routeTable": route_table.to_string() }),
            ),
            Action::UpsertRoute { before, after, .. } => (
                before.as_ref().map_or(Value::Null, |route| json!(route)),
                json!(after),
            ),
            Action::DeleteRoute { before, .. } => (json!(before), Value::Null),
        }
    }

    /// The query the write needs besides `api-version`, if any.
    pub fn extra_query(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Action::SyncPeering { .. } => Some(("syncRemoteAddressSpace", "true")),
            _ => None,
        }
    }

    /// The VNet whose peerings or subnets this change writes, if any: the executor serializes
    /// writes per VNet, as Azure requires.
    pub fn vnet(&self) -> Option<&VnetId> {
        match self {
            Action::CreatePeering { target, .. }
            | Action::UpdatePeering { target, .. }
            | Action::SyncPeering { target, .. } => Some(target.vnet()),
            Action::AssociateRouteTable { target, .. } => Some(target.vnet()),
            _ => None,
        }
    }
}

/// A route as hubspoke writes or found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    pub name: String,
    pub address_prefix: String,
    pub next_hop_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop_ip_address: Option<String>,
}

impl RouteSpec {
    /// The managed route for `prefix`: next hop the hub's VPN gateway.
    pub fn managed(prefix: Ipv4Net) -> Self {
        RouteSpec {
            name: managed_route_name(prefix),
            address_prefix: prefix.to_string(),
            next_hop_type: "VirtualNetworkGateway".into(),
            next_hop_ip_address: None,
        }
    }

    /// The body of `PUT .../routes/<name>`.
    pub fn body(&self) -> Value {
        let mut properties = serde_json::Map::new();
        properties.insert("addressPrefix".into(), self.address_prefix.clone().into());
        properties.insert("nextHopType".into(), self.next_hop_type.clone().into());
        if let Some(ip) = &self.next_hop_ip_address {
            properties.insert("nextHopIpAddress".into(), ip.clone().into());
        }
        serde_json::json!({ "properties": properties })
    }
}

/// A condition the plan reports and does not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: WarningCode,
    /// The resource concerned.
    pub target: String,
    pub message: String,
    /// Structured details (always an object).
    pub details: Value,
}

/// The stable warning codes of `docs/design.md` section 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    GatewayNotReady,
    GatewayNotVpn,
    SpokeNotTransit,
    PeeringDisconnected,
    AccessDisabled,
    MultiHubSpoke,
    OutOfScope,
    Ipv6Skipped,
    SubnetIneligible,
    TableExcluded,
    SharedRouteTable,
    RouteConflict,
    RouteLimitExceeded,
    NameClash,
    HubGatewaySubnet,
    /// Not the planner's: Azure's effective routes of an interface disagree with the
    /// verification's model (`verify::compare`).
    ModelDisagrees,
}

impl WarningCode {
    /// The code as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::GatewayNotReady => "gateway_not_ready",
            WarningCode::GatewayNotVpn => "gateway_not_vpn",
            WarningCode::SpokeNotTransit => "spoke_not_transit",
            WarningCode::PeeringDisconnected => "peering_disconnected",
            WarningCode::AccessDisabled => "access_disabled",
            WarningCode::MultiHubSpoke => "multi_hub_spoke",
            WarningCode::OutOfScope => "out_of_scope",
            WarningCode::Ipv6Skipped => "ipv6_skipped",
            WarningCode::SubnetIneligible => "subnet_ineligible",
            WarningCode::TableExcluded => "table_excluded",
            WarningCode::SharedRouteTable => "shared_route_table",
            WarningCode::RouteConflict => "route_conflict",
            WarningCode::RouteLimitExceeded => "route_limit_exceeded",
            WarningCode::NameClash => "name_clash",
            WarningCode::HubGatewaySubnet => "hub_gateway_subnet",
            WarningCode::ModelDisagrees => "model_disagrees",
        }
    }
}

impl Plan {
    /// Whether any hub has a change.
    pub fn has_changes(&self) -> bool {
        self.hubs.iter().any(|hub| !hub.changes.is_empty())
    }
}

/// A peering PUT body: everything as read, the four flags as desired, the remote VNet named.
fn peering_body(mut body: Value, remote: &VnetId, flags: PeeringFlags) -> Value {
    if !body.get("properties").is_some_and(Value::is_object) {
        body["properties"] = serde_json::json!({});
    }
    let properties = &mut body["properties"];
    properties["allowVirtualNetworkAccess"] = flags.allow_virtual_network_access.into();
    properties["allowForwardedTraffic"] = flags.allow_forwarded_traffic.into();
    properties["allowGatewayTransit"] = flags.allow_gateway_transit.into();
    properties["useRemoteGateways"] = flags.use_remote_gateways.into();
    if properties.get("remoteVirtualNetwork").is_none() {
        properties["remoteVirtualNetwork"] = serde_json::json!({ "id": remote.to_string() });
    }
    body
}
