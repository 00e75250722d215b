//! The reconcile planner: `plan(config, observed) -> Plan`, the rules of DESIGN.md section 2.
//!
//! # Guarantees
//! - Pure and deterministic: the same input gives the same plan, byte for byte once serialized
//!   (every iteration is over sorted ids).
//! - Applying the plan to the observed state and planning again gives no changes (tested as a
//!   property over random estates).
//! - Only managed routes are written or deleted; foreign routes, tables and peerings are only
//!   read, except the peering flags of section 2 and the route table association of a subnet
//!   that has none.
//! - Routing is symmetric: spoke V gets a route to spoke W exactly when W gets one to V.
//! - Transit flags are only turned on by a ready gateway and only turned off when the gateway is
//!   gone; no write targets a `Disconnected` peering or its pair.
//!
//! # Assumptions
//! - The observed state is one consistent read of every subscription in scope. A resource that
//!   changes between the read and the write is the executor's concern (it re-reads subnets and
//!   skips changed ones; the next pass re-plans).
pub mod render;
mod routes;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};

use crate::config::{Enrollment, PlanConfig};
use crate::id::{PeeringId, RouteTableId, SubnetId, VnetId};
use crate::model::{
    Gateway, Observed, Peering, PeeringFlags, PeeringState, RoutePrefix, RouteTable, Subnet,
    VirtualNetwork,
};
pub use types::*;

/// Tag that enrolls a VNet when `HUBSPOKE_ENROLLMENT=tagged`.
pub const TAG_ENROLL: &str = "hubspoke:enroll";
/// Tag that keeps hubspoke off a VNet or a route table.
pub const TAG_EXCLUDE: &str = "hubspoke:exclude";
/// Tag that puts a spoke in a routing group.
pub const TAG_GROUP: &str = "hubspoke:group";
/// Tag on the route tables hubspoke created.
pub const TAG_MANAGED: &str = "hubspoke:managed";
/// Prefix of the name of the route table hubspoke creates for a spoke.
pub const MANAGED_TABLE_PREFIX: &str = "hubspoke-rt-";

/// Subnets that never get a route table from hubspoke, by name.
const RESERVED_SUBNETS: [&str; 5] = [
    "GatewaySubnet",
    "AzureFirewallSubnet",
    "AzureFirewallManagementSubnet",
    "AzureBastionSubnet",
    "RouteServerSubnet",
];
/// Delegations whose subnets cannot carry a user route table (reported).
const INELIGIBLE_DELEGATIONS: [&str; 2] = [
    "Microsoft.NetApp/volumes",
    "Microsoft.Databricks/workspaces",
];
/// The delegation whose subnets already have a table that hubspoke may write but whose subnet it
/// never writes.
const SQL_MANAGED_INSTANCE: &str = "Microsoft.Sql/managedInstances";

/// The id of the route table hubspoke creates for `vnet`.
pub fn managed_table_id(vnet: &VnetId) -> RouteTableId {
    let mut name = format!("{MANAGED_TABLE_PREFIX}{}", vnet.name());
    name.truncate(80);
    RouteTableId::new(vnet.subscription(), vnet.resource_group(), &name)
}

/// Plans every configured hub.
pub fn plan(config: &PlanConfig, observed: &Observed) -> Plan {
    let index = Index::new(config, observed);
    let claims = claim_tables(config, &index);
    let hubs = config
        .hubs
        .iter()
        .map(|hub| plan_hub(config, &index, &claims, hub))
        .collect();
    Plan { hubs }
}

// ---------------------------------------------------------------------------------------------
// Indexing the observed state.

struct Index<'o> {
    vnets: HashMap<&'o VnetId, &'o VirtualNetwork>,
    tables: HashMap<&'o RouteTableId, &'o RouteTable>,
    gateways: Vec<&'o Gateway>,
    /// Every subnet known to use each table: from the subnets' `routeTable` and from the tables'
    /// read-only `subnets` (which may name subnets of VNets out of scope).
    table_users: HashMap<RouteTableId, BTreeSet<SubnetId>>,
    /// Candidate spokes of each hub (VNets with a peering to or from it, hubs excluded).
    candidates: BTreeMap<VnetId, BTreeSet<VnetId>>,
    /// For each VNet that is a spoke-in-waiting (observed, enrolled, not excluded), its hubs.
    spoke_hubs: HashMap<VnetId, Vec<VnetId>>,
    hubs: BTreeSet<VnetId>,
    sorted_tables: Vec<&'o RouteTable>,
    /// VNets whose `GatewaySubnet` holds a gateway, as the gateways themselves say.
    gateway_vnets: std::collections::HashSet<VnetId>,
}

impl<'o> Index<'o> {
    fn new(config: &PlanConfig, observed: &'o Observed) -> Self {
        let hubs: BTreeSet<VnetId> = config.hubs.iter().cloned().collect();
        let mut vnets = HashMap::new();
        for vnet in &observed.virtual_networks {
            vnets.entry(&vnet.id).or_insert(vnet);
        }
        let mut tables = HashMap::new();
        for table in &observed.route_tables {
            tables.entry(&table.id).or_insert(table);
        }
        let mut table_users: HashMap<RouteTableId, BTreeSet<SubnetId>> = HashMap::new();
        for table in &observed.route_tables {
            for subnet in &table.subnets {
                table_users
                    .entry(table.id.clone())
                    .or_default()
                    .insert(subnet.clone());
            }
        }
        for vnet in &observed.virtual_networks {
            for subnet in &vnet.subnets {
                if let Some(table) = &subnet.route_table {
                    table_users
                        .entry(table.clone())
                        .or_default()
                        .insert(subnet.id.clone());
                }
            }
        }
        let mut candidates: BTreeMap<VnetId, BTreeSet<VnetId>> = BTreeMap::new();
        for hub in &hubs {
            let entry = candidates.entry(hub.clone()).or_default();
            if let Some(hub_vnet) = vnets.get(hub) {
                for peering in &hub_vnet.peerings {
                    if !hubs.contains(&peering.remote_vnet) {
                        entry.insert(peering.remote_vnet.clone());
                    }
                }
            }
        }
        for vnet in &observed.virtual_networks {
            if hubs.contains(&vnet.id) {
                continue;
            }
            for peering in &vnet.peerings {
                if let Some(entry) = candidates.get_mut(&peering.remote_vnet) {
                    entry.insert(vnet.id.clone());
                }
            }
        }
        let mut spoke_hubs: HashMap<VnetId, Vec<VnetId>> = HashMap::new();
        for (hub, members) in &candidates {
            for member in members {
                let Some(vnet) = vnets.get(member) else {
                    continue;
                };
                let enrolled = match config.enrollment {
                    Enrollment::All => true,
                    Enrollment::Tagged => vnet.tags.is_true(TAG_ENROLL),
                };
                if enrolled && !vnet.tags.is_true(TAG_EXCLUDE) {
                    spoke_hubs
                        .entry(member.clone())
                        .or_default()
                        .push(hub.clone());
                }
            }
        }
        let mut sorted_tables: Vec<&RouteTable> = tables.values().copied().collect();
        sorted_tables.sort_by(|a, b| a.id.cmp(&b.id));
        let mut gateways: Vec<&Gateway> = observed.gateways.iter().collect();
        gateways.sort_by(|a, b| a.id.cmp(&b.id));
        let gateway_vnets = gateways
            .iter()
            .flat_map(|g| g.subnets.iter())
            .filter(|s| s.name().eq_ignore_ascii_case("GatewaySubnet"))
            .map(|s| s.vnet().clone())
            .collect();
        Index {
            gateway_vnets,
            vnets,
            tables,
            gateways,
            table_users,
            candidates,
            spoke_hubs,
            hubs,
            sorted_tables,
        }
    }

    fn vnet(&self, id: &VnetId) -> Option<&'o VirtualNetwork> {
        self.vnets.get(id).copied()
    }

    fn table(&self, id: &RouteTableId) -> Option<&'o RouteTable> {
        self.tables.get(id).copied()
    }

    fn subnet(&self, id: &SubnetId) -> Option<&'o Subnet> {
        self.vnet(id.vnet())?
            .subnets
            .iter()
            .find(|subnet| subnet.id == *id)
    }

    /// Whether `vnet` is a spoke of exactly `hub`.
    fn is_spoke_of(&self, vnet: &VnetId, hub: &VnetId) -> bool {
        self.spoke_hubs
            .get(vnet)
            .is_some_and(|hubs| hubs.len() == 1 && hubs[0] == *hub)
    }

    fn is_multi_hub(&self, vnet: &VnetId) -> bool {
        self.spoke_hubs.get(vnet).is_some_and(|hubs| hubs.len() > 1)
    }
}

/// Decides which hub's plan may delete stale managed routes in which table, so that no two
/// hubs fight over one table: first the tables of each hub's spokes, then those of other VNets
/// peered with a hub, then orphans (tables holding managed routes that no hub reaches any more,
/// e.g. of a spoke whose peering was deleted) go to the first hub.
fn claim_tables(config: &PlanConfig, index: &Index) -> HashMap<RouteTableId, VnetId> {
    let mut claims: HashMap<RouteTableId, VnetId> = HashMap::new();
    let vnet_tables = |vnet: &VirtualNetwork| -> Vec<RouteTableId> {
        let mut tables: Vec<RouteTableId> = vnet
            .subnets
            .iter()
            .filter_map(|subnet| subnet.route_table.clone())
            .collect();
        tables.push(managed_table_id(&vnet.id));
        tables
    };
    for only_spokes in [true, false] {
        for (hub, members) in &index.candidates {
            for member in members {
                let Some(vnet) = index.vnet(member) else {
                    continue;
                };
                if index.is_multi_hub(member) || (only_spokes && !index.is_spoke_of(member, hub)) {
                    continue;
                }
                for table in vnet_tables(vnet) {
                    claims.entry(table).or_insert_with(|| hub.clone());
                }
            }
        }
    }
    let Some(first_hub) = config.hubs.first() else {
        return claims;
    };
    // Tables used by hubs or by multi-hub spokes are never claimed as orphans.
    let mut untouchable: BTreeSet<RouteTableId> = BTreeSet::new();
    for vnet in index.vnets.values() {
        if index.hubs.contains(&vnet.id) || index.is_multi_hub(&vnet.id) {
            untouchable.extend(vnet_tables(vnet));
        }
    }
    for table in &index.sorted_tables {
        let users_in_hubs = index.table_users.get(&table.id).is_some_and(|users| {
            users.iter().any(|subnet| {
                index.hubs.contains(subnet.vnet()) || index.is_multi_hub(subnet.vnet())
            })
        });
        let has_managed = table
            .routes
            .iter()
            .any(|route| managed_prefix(route).is_some());
        if has_managed
            && !users_in_hubs
            && !untouchable.contains(&table.id)
            && !claims.contains_key(&table.id)
        {
            claims.insert(table.id.clone(), first_hub.clone());
        }
    }
    claims
}

/// The prefix of a managed route: its name is `hubspoke-a-b-c-d-len` and its prefix matches.
pub fn managed_prefix(route: &crate::model::Route) -> Option<Ipv4Net> {
    let named = parse_managed_route_name(route.id.name())?;
    match route.address_prefix {
        RoutePrefix::Cidr(IpNet::V4(prefix)) if prefix == named => Some(named),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The hub's gateway.

/// What the hub's gateway allows, per DESIGN.md section 1.
struct GatewayView {
    /// `GatewaySubnet` holds no gateway and no gateway of the hub was found.
    gone: bool,
    /// A gateway in `GatewaySubnet` is `Succeeded` and not of the `Basic` SKU.
    ready_for_transit: bool,
    /// Definitively unfit for routes: an ExpressRoute gateway (alone or beside a VPN one).
    unfit_for_routes: bool,
}

use crate::id::GatewayId;

fn assess_gateway(index: &Index, hub: &VirtualNetwork, builder: &mut Builder) -> GatewayView {
    let gateway_subnet = hub.subnet("GatewaySubnet");
    let mut referenced: BTreeSet<GatewayId> = gateway_subnet
        .map(|subnet| subnet.gateways().collect())
        .unwrap_or_default();
    let found: Vec<&Gateway> = index
        .gateways
        .iter()
        .copied()
        .filter(|gateway| {
            referenced.contains(&gateway.id)
                || gateway.subnets.iter().any(|subnet| {
                    subnet.vnet() == &hub.id && subnet.name().eq_ignore_ascii_case("GatewaySubnet")
                })
        })
        .collect();
    for gateway in &found {
        referenced.remove(&gateway.id);
    }
    let unreadable: Vec<GatewayId> = referenced.into_iter().collect();
    let present: Vec<GatewayId> = found
        .iter()
        .map(|gateway| gateway.id.clone())
        .chain(unreadable.iter().cloned())
        .collect();
    if present.is_empty() {
        return GatewayView {
            gone: true,
            ready_for_transit: false,
            unfit_for_routes: false,
        };
    }
    let succeeded = |gateway: &&Gateway| {
        gateway.provisioning_state.eq_ignore_ascii_case("Succeeded")
            && !gateway
                .sku
                .as_deref()
                .is_some_and(|sku| sku.eq_ignore_ascii_case("Basic"))
    };
    let is_type = |gateway: &&Gateway, kind: &str| gateway.gateway_type.eq_ignore_ascii_case(kind);
    let ready_for_transit = found.iter().any(succeeded);
    let express_route = found.iter().any(|g| is_type(g, "ExpressRoute"));
    let vpn = found.iter().any(|g| is_type(g, "Vpn"));
    let unfit_for_routes = express_route || (!vpn && unreadable.is_empty() && !found.is_empty());
    if !ready_for_transit {
        let states: Vec<Value> = found
            .iter()
            .map(|gateway| {
                json!({
                    "gateway": gateway.id.to_string(),
                    "provisioningState": gateway.provisioning_state,
                    "sku": gateway.sku,
                })
            })
            .chain(unreadable.iter().map(|id| {
                json!({"gateway": id.to_string(), "provisioningState": "unknown (not readable)"})
            }))
            .collect();
        builder.warn(
            WarningCode::GatewayNotReady,
            hub.id.to_string(),
            "the hub's gateway is not ready for transit (it must be Succeeded and not of the Basic SKU); flags that depend on it stay as they are and new spokes wait".into(),
            json!({ "gateways": states }),
        );
    }
    if unfit_for_routes {
        builder.warn(
            WarningCode::GatewayNotVpn,
            hub.id.to_string(),
            "a user-defined route can only name a VPN gateway that has no ExpressRoute gateway beside it; hubspoke writes no routes for this hub and removes its own".into(),
            json!({ "gateways": found.iter().map(|g| json!({"gateway": g.id.to_string(), "gatewayType": g.gateway_type})).collect::<Vec<_>>() }),
        );
    }
    GatewayView {
        gone: false,
        ready_for_transit,
        unfit_for_routes,
    }
}

// ---------------------------------------------------------------------------------------------
// Building the plan of one hub.

#[derive(Default)]
struct Builder {
    changes: Vec<Change>,
    /// Keyed by (code, target, details, message) so the order is stable and duplicates merge.
    warnings: BTreeMap<(WarningCode, String, String, String), Warning>,
}

impl Builder {
    fn push(&mut self, phase: u8, action: Action, reason: String, depends_on: Vec<usize>) -> usize {
        let id = self.changes.len();
        let mut depends_on = depends_on;
        depends_on.sort_unstable();
        depends_on.dedup();
        self.changes.push(Change {
            id,
            phase,
            depends_on,
            reason,
            action,
        });
        id
    }

    fn warn(&mut self, code: WarningCode, target: String, message: String, details: Value) {
        let key = (code, target.clone(), details.to_string(), message.clone());
        self.warnings.entry(key).or_insert(Warning {
            code,
            target,
            message,
            details,
        });
    }

    /// Orders changes by phase, keeping the build order within a phase, and renumbers them.
    fn finish(self, hub: VnetId) -> HubPlan {
        let mut changes = self.changes;
        let mut order: Vec<usize> = (0..changes.len()).collect();
        order.sort_by_key(|&index| (changes[index].phase, index));
        let mut new_id = vec![0; changes.len()];
        for (position, &old) in order.iter().enumerate() {
            new_id[old] = position;
        }
        let mut slots: Vec<Option<Change>> = changes.drain(..).map(Some).collect();
        let mut ordered = Vec::with_capacity(slots.len());
        for &old in &order {
            if let Some(mut change) = slots[old].take() {
                change.id = new_id[old];
                for dependency in &mut change.depends_on {
                    *dependency = new_id[*dependency];
                }
                change.depends_on.sort_unstable();
                ordered.push(change);
            }
        }
        let status = if ordered.is_empty() {
            HubStatus::UpToDate
        } else {
            HubStatus::ChangesPending
        };
        HubPlan {
            hub,
            status,
            changes: ordered,
            warnings: self.warnings.into_values().collect(),
        }
    }
}

/// A spoke of the hub being planned, and what this plan does to it.
struct Spoke<'o> {
    vnet: &'o VirtualNetwork,
    group: String,
    /// The peering changes of this pair (routes and tables of the spoke wait for them).
    peering_changes: Vec<usize>,
    /// The hub-side sync, if any (routes to the spoke's new prefixes wait for it).
    sync_change: Option<usize>,
    /// Both peerings `Connected` after this plan.
    connected: bool,
    /// Transit spoke, per DESIGN.md section 1.
    transit: bool,
    /// IPv4 prefixes as programmed on the hub→spoke peering after this plan.
    prefixes: Vec<Ipv4Net>,
    /// Prefixes its subnets reach directly (own space, the hub's, connected peerings').
    direct: Vec<IpNet>,
    /// The tables hubspoke writes routes into for this spoke.
    writable_tables: Vec<RouteTableId>,
    /// Subnets without a table, to associate with the spoke's managed table.
    associate: Vec<&'o Subnet>,
}

fn plan_hub(
    config: &PlanConfig,
    index: &Index,
    claims: &HashMap<RouteTableId, VnetId>,
    hub_id: &VnetId,
) -> HubPlan {
    let mut builder = Builder::default();
    let Some(hub) = index.vnet(hub_id) else {
        builder.warn(
            WarningCode::OutOfScope,
            hub_id.to_string(),
            "the hub VNet was not found in the observed state: it is deleted, mistyped or not readable".into(),
            json!({}),
        );
        let mut plan = builder.finish(hub_id.clone());
        plan.status = HubStatus::HubNotFound;
        return plan;
    };
    let gateway = assess_gateway(index, hub, &mut builder);

    let mut spokes: Vec<Spoke> = Vec::new();
    let hub_peerings = HubPeerings::new(hub);
    let empty = BTreeSet::new();
    let members = index.candidates.get(hub_id).unwrap_or(&empty);
    for member in members {
        let Some(vnet) = index.vnet(member) else {
            for peering in hub.peerings.iter().filter(|p| p.remote_vnet == *member) {
                if peering.state == PeeringState::Disconnected {
                    // Azure leaves the surviving side Disconnected when the remote VNet (or its
                    // side) is deleted: the VNet is gone, not unreadable.
                    builder.warn(
                        WarningCode::PeeringDisconnected,
                        peering.id.to_string(),
                        "this peering is Disconnected: its remote VNet was deleted. Azure refuses any write to it; delete it (hubspoke never deletes a peering)".into(),
                        json!({ "remoteVirtualNetwork": member.to_string() }),
                    );
                    continue;
                }
                builder.warn(
                    WarningCode::OutOfScope,
                    peering.id.to_string(),
                    format!("the remote VNet {member} is not readable in the subscriptions in scope; add its subscription to HUBSPOKE_SUBSCRIPTIONS and grant read access"),
                    json!({ "remoteVirtualNetwork": member.to_string() }),
                );
            }
            continue;
        };
        if index.is_multi_hub(member) {
            builder.warn(
                WarningCode::MultiHubSpoke,
                member.to_string(),
                "this VNet is peered with more than one hub; hubspoke leaves it alone".into(),
                json!({ "hubs": index.spoke_hubs.get(member).map(|hubs| hubs.iter().map(|h| h.to_string()).collect::<Vec<_>>()) }),
            );
            continue;
        }
        if !index.is_spoke_of(member, hub_id) {
            continue;
        }
        spokes.push(plan_peerings(
            config,
            index,
            hub,
            &hub_peerings,
            vnet,
            &gateway,
            &mut builder,
        ));
    }

    hub_checks(index, hub, &spokes, &mut builder);
    if !gateway.unfit_for_routes {
        plan_coverage(config, index, hub, &mut spokes, &mut builder);
    }
    let unmanaged = unmanaged_connected(index, hub, &spokes);
    let desired =
        routes::desired_routes(config, index, &spokes, &unmanaged, &gateway, &mut builder);
    routes::plan_route_changes(
        index,
        claims,
        hub_id,
        &spokes,
        &desired,
        config,
        &mut builder,
    );
    builder.finish(hub_id.clone())
}

/// VNets connected to the hub that are not its spokes (excluded, not enrolled, multi-hub,
/// other hubs), with the IPv4 space the hub reaches in them.
fn unmanaged_connected(
    index: &Index,
    hub: &VirtualNetwork,
    spokes: &[Spoke],
) -> Vec<(VnetId, Vec<Ipv4Net>)> {
    let spoke_ids: std::collections::HashSet<&VnetId> =
        spokes.iter().map(|spoke| &spoke.vnet.id).collect();
    hub.peerings
        .iter()
        .filter(|peering| peering.state == PeeringState::Connected)
        .filter(|peering| !spoke_ids.contains(&peering.remote_vnet))
        .map(|peering| {
            let current = index
                .vnet(&peering.remote_vnet)
                .map(|v| v.address_prefixes.clone())
                .unwrap_or_default();
            let prefixes = peering
                .remote_address_space
                .iter()
                .chain(&peering.remote_virtual_network_address_space)
                .chain(&current)
                .filter_map(|net| match net.trunc() {
                    IpNet::V4(net) => Some(net),
                    IpNet::V6(_) => None,
                })
                .collect();
            (peering.remote_vnet.clone(), prefixes)
        })
        .collect()
}

/// Plans the two peerings of a spoke (rules 1 to 5) and says whether it is a transit spoke.
fn plan_peerings<'o>(
    config: &PlanConfig,
    index: &Index<'o>,
    hub: &'o VirtualNetwork,
    hub_peerings: &HubPeerings<'o>,
    vnet: &'o VirtualNetwork,
    gateway: &GatewayView,
    builder: &mut Builder,
) -> Spoke<'o> {
    let hub_side = hub_peerings.by_remote.get(&vnet.id).copied();
    let spoke_side = vnet.peerings.iter().find(|p| p.remote_vnet == hub.id);
    let group = vnet
        .tags
        .get(TAG_GROUP)
        .map(|g| g.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let own_gateway = vnet
        .subnet("GatewaySubnet")
        .is_some_and(|subnet| subnet.gateways().next().is_some())
        || index.gateway_vnets.contains(&vnet.id);
    let mut spoke = Spoke {
        vnet,
        group,
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
struct HubPeerings<'o> {
    by_remote: HashMap<&'o VnetId, &'o Peering>,
    names: BTreeSet<String>,
}

impl<'o> HubPeerings<'o> {
    fn new(hub: &'o VirtualNetwork) -> Self {
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

/// Hub checks (rule 14), read-only.
fn hub_checks(index: &Index, hub: &VirtualNetwork, spokes: &[Spoke], builder: &mut Builder) {
    let Some(gateway_subnet) = hub.subnet("GatewaySubnet") else {
        return;
    };
    let Some(table_id) = &gateway_subnet.route_table else {
        return;
    };
    let Some(table) = index.table(table_id) else {
        return;
    };
    if table.disable_bgp_route_propagation {
        builder.warn(
            WarningCode::HubGatewaySubnet,
            table.id.to_string(),
            "the hub's GatewaySubnet uses a route table with BGP route propagation disabled: the gateway stops working".into(),
            json!({ "detail": "bgp_propagation_disabled" }),
        );
    }
    for route in &table.routes {
        let RoutePrefix::Cidr(prefix) = route.address_prefix else {
            continue;
        };
        if !is_appliance(&route.next_hop_type) {
            continue;
        }
        let hits: Vec<String> = spokes
            .iter()
            .flat_map(|spoke| spoke.prefixes.iter())
            .filter(|p| overlaps(&prefix, &IpNet::V4(**p)))
            .map(|p| p.to_string())
            .collect();
        if !hits.is_empty() {
            builder.warn(
                WarningCode::HubGatewaySubnet,
                route.id.to_string(),
                "the hub's GatewaySubnet sends spoke prefixes to an appliance, so spoke-to-spoke traffic would not go straight back through the gateway".into(),
                json!({ "detail": "spoke_prefixes_to_appliance", "prefixes": hits }),
            );
        }
    }
}

fn is_appliance(next_hop_type: &str) -> bool {
    ["VirtualAppliance", "VirtualApplianceEcmp", "None"]
        .iter()
        .any(|kind| kind.eq_ignore_ascii_case(next_hop_type))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Coverage (rule 6) and writable tables (rule 7) of the transit spokes.
fn plan_coverage(
    config: &PlanConfig,
    index: &Index,
    hub: &VirtualNetwork,
    spokes: &mut [Spoke<'_>],
    builder: &mut Builder,
) {
    for spoke in spokes.iter_mut().filter(|spoke| spoke.transit) {
        let vnet = spoke.vnet;
        let managed_id = managed_table_id(&vnet.id);
        let managed_existing = index.table(&managed_id);
        let mut used: BTreeSet<RouteTableId> = BTreeSet::new();
        let mut uncovered: Vec<&Subnet> = Vec::new();
        for subnet in &vnet.subnets {
            match eligibility(config, subnet) {
                Eligibility::Reserved => {}
                Eligibility::Ineligible(reason) => builder.warn(
                    WarningCode::SubnetIneligible,
                    subnet.id.to_string(),
                    format!("this subnet cannot take a user route table ({reason}); it is left alone"),
                    json!({ "detail": reason }),
                ),
                Eligibility::TableOnly => match &subnet.route_table {
                    Some(table) => {
                        used.insert(table.clone());
                    }
                    None => builder.warn(
                        WarningCode::SubnetIneligible,
                        subnet.id.to_string(),
                        "a SQL Managed Instance subnet is never written, and this one has no route table to write routes into".into(),
                        json!({ "detail": "sql_managed_instance_without_route_table" }),
                    ),
                },
                Eligibility::Eligible => match &subnet.route_table {
                    Some(table) => {
                        used.insert(table.clone());
                    }
                    None => uncovered.push(subnet),
                },
            }
        }
        if !uncovered.is_empty() {
            match managed_existing {
                Some(table) if !table.tags.is_true(TAG_MANAGED) => {
                    builder.warn(
                        WarningCode::NameClash,
                        table.id.to_string(),
                        "a route table that hubspoke did not create has the name hubspoke would give the spoke's table; the spoke's uncovered subnets are left uncovered".into(),
                        json!({ "subnets": uncovered.iter().map(|s| s.id.to_string()).collect::<Vec<_>>() }),
                    );
                    uncovered.clear();
                }
                _ => {
                    used.insert(managed_id.clone());
                }
            }
        }
        let new_users: BTreeSet<SubnetId> = uncovered.iter().map(|s| s.id.clone()).collect();
        for table_id in used {
            let planned = if table_id == managed_id {
                Some(&new_users)
            } else {
                None
            };
            if let Some(reason) = unwritable(config, index, hub, spoke, &table_id, planned) {
                builder.warn(reason.0, table_id.to_string(), reason.1, reason.2);
                continue;
            }
            spoke.writable_tables.push(table_id);
        }
        // Uncovered subnets join the managed table only when hubspoke can write it.
        if spoke.writable_tables.contains(&managed_id) {
            spoke.associate = uncovered;
        }
    }
}

enum Eligibility {
    /// Reserved names and subnets excluded by setting: silently left alone.
    Reserved,
    /// Delegated to a service that cannot take a route table: reported.
    Ineligible(&'static str),
    /// SQL Managed Instance: its table may be written, its subnet never.
    TableOnly,
    Eligible,
}

fn eligibility(config: &PlanConfig, subnet: &Subnet) -> Eligibility {
    let name = subnet.id.name();
    if RESERVED_SUBNETS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
        || config.exclude_subnets.contains(&name.to_ascii_lowercase())
    {
        return Eligibility::Reserved;
    }
    if subnet.is_delegated_to(INELIGIBLE_DELEGATIONS[0]) {
        return Eligibility::Ineligible("delegated_to_netapp");
    }
    if subnet.is_delegated_to(INELIGIBLE_DELEGATIONS[1]) {
        return Eligibility::Ineligible("delegated_to_databricks");
    }
    if subnet.is_delegated_to(SQL_MANAGED_INSTANCE) {
        return Eligibility::TableOnly;
    }
    Eligibility::Eligible
}

/// Why a table used by a transit spoke is not written (rule 7), if it is not.
fn unwritable(
    config: &PlanConfig,
    index: &Index,
    hub: &VirtualNetwork,
    spoke: &Spoke,
    table_id: &RouteTableId,
    planned_users: Option<&BTreeSet<SubnetId>>,
) -> Option<(WarningCode, String, Value)> {
    let table = index.table(table_id);
    if let Some(table) = table {
        if table.tags.is_true(TAG_EXCLUDE) {
            return Some((
                WarningCode::TableExcluded,
                "the route table is tagged hubspoke:exclude=true: hubspoke never writes it".into(),
                json!({ "detail": "tagged" }),
            ));
        }
        if config.managed_tables_only && !table.tags.is_true(TAG_MANAGED) {
            return Some((
                WarningCode::TableExcluded,
                "HUBSPOKE_MANAGED_TABLES_ONLY is on and hubspoke did not create this table".into(),
                json!({ "detail": "managed_tables_only" }),
            ));
        }
    }
    let mut users: BTreeSet<SubnetId> =
        index.table_users.get(table_id).cloned().unwrap_or_default();
    if let Some(planned) = planned_users {
        users.extend(planned.iter().cloned());
    }
    let mut others = Vec::new();
    for user in &users {
        let foreign_vnet = user.vnet() != &spoke.vnet.id;
        let ineligible_here = !foreign_vnet
            && index.subnet(user).is_some_and(|subnet| {
                matches!(
                    eligibility(config, subnet),
                    Eligibility::Reserved | Eligibility::Ineligible(_)
                )
            });
        if foreign_vnet || ineligible_here {
            others.push(user.to_string());
        }
    }
    if others.is_empty() {
        return None;
    }
    let hub_uses = users.iter().any(|user| user.vnet() == &hub.id);
    Some((
        WarningCode::SharedRouteTable,
        "the route table is also used by subnets that are not eligible subnets of this spoke; writing it would route them too".into(),
        json!({ "otherSubnets": others, "usedByHub": hub_uses }),
    ))
}
