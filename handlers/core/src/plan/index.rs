//! The observed state, indexed once per plan: VNets and tables by id, who uses each table, and
//! which VNets are candidate and enrolled spokes of which hub (`docs/design.md` section 1,
//! *spoke*).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::names::{TAG_ENROLL, TAG_EXCLUDE};
use crate::config::{Enrollment, PlanConfig};
use crate::id::{RouteTableId, SubnetId, VnetId};
use crate::model::{Gateway, Observed, RouteTable, Subnet, VirtualNetwork};

/// The observed state, indexed for the stages.
pub(crate) struct Index<'o> {
    pub(super) vnets: HashMap<&'o VnetId, &'o VirtualNetwork>,
    pub(super) tables: HashMap<&'o RouteTableId, &'o RouteTable>,
    pub(super) gateways: Vec<&'o Gateway>,
    /// Every subnet known to use each table: from the subnets' `routeTable` and from the tables'
    /// read-only `subnets` (which may name subnets of VNets out of scope).
    pub(super) table_users: HashMap<RouteTableId, BTreeSet<SubnetId>>,
    /// Candidate spokes of each hub (VNets with a peering to or from it, hubs excluded).
    pub(super) candidates: BTreeMap<VnetId, BTreeSet<VnetId>>,
    /// For each VNet that is a spoke-in-waiting (observed, enrolled, not excluded), its hubs.
    pub(super) spoke_hubs: HashMap<VnetId, Vec<VnetId>>,
    pub(super) hubs: BTreeSet<VnetId>,
    pub(super) sorted_tables: Vec<&'o RouteTable>,
    /// VNets whose `GatewaySubnet` holds a gateway, as the gateways themselves say.
    pub(super) gateway_vnets: HashSet<VnetId>,
}

impl<'o> Index<'o> {
    pub(crate) fn new(config: &PlanConfig, observed: &'o Observed) -> Self {
        let hubs: BTreeSet<VnetId> = config.hubs.iter().cloned().collect();
        let mut vnets = HashMap::new();
        for vnet in &observed.virtual_networks {
            vnets.entry(&vnet.id).or_insert(vnet);
        }
        let mut tables = HashMap::new();
        for table in &observed.route_tables {
            tables.entry(&table.id).or_insert(table);
        }
        let candidates = candidates(observed, &vnets, &hubs);
        let spoke_hubs = enrolled_spokes(config, &vnets, &candidates);
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
            table_users: table_users(observed),
            candidates,
            spoke_hubs,
            hubs,
            sorted_tables,
        }
    }

    pub(crate) fn vnet(&self, id: &VnetId) -> Option<&'o VirtualNetwork> {
        self.vnets.get(id).copied()
    }

    pub(crate) fn table(&self, id: &RouteTableId) -> Option<&'o RouteTable> {
        self.tables.get(id).copied()
    }

    pub(crate) fn subnet(&self, id: &SubnetId) -> Option<&'o Subnet> {
        self.vnet(id.vnet())?
            .subnets
            .iter()
            .find(|subnet| subnet.id == *id)
    }

    /// Whether `vnet` is a spoke of exactly `hub`.
    pub(crate) fn is_spoke_of(&self, vnet: &VnetId, hub: &VnetId) -> bool {
        self.spoke_hubs
            .get(vnet)
            .is_some_and(|hubs| hubs.len() == 1 && hubs[0] == *hub)
    }

    /// Whether `vnet` would be a spoke of more than one hub (`multi_hub_spoke`).
    pub(crate) fn is_multi_hub(&self, vnet: &VnetId) -> bool {
        self.spoke_hubs.get(vnet).is_some_and(|hubs| hubs.len() > 1)
    }
}

/// Every subnet known to use each table, from both sides of the association.
fn table_users(observed: &Observed) -> HashMap<RouteTableId, BTreeSet<SubnetId>> {
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
    table_users
}

/// The VNets with a peering to or from each hub, hubs excluded: a peering seen from either side
/// is enough, since the other side may be missing.
fn candidates(
    observed: &Observed,
    vnets: &HashMap<&VnetId, &VirtualNetwork>,
    hubs: &BTreeSet<VnetId>,
) -> BTreeMap<VnetId, BTreeSet<VnetId>> {
    let mut candidates: BTreeMap<VnetId, BTreeSet<VnetId>> = BTreeMap::new();
    for hub in hubs {
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
    candidates
}

/// For each candidate that is observed, enrolled and not excluded, the hubs it is a candidate of.
fn enrolled_spokes(
    config: &PlanConfig,
    vnets: &HashMap<&VnetId, &VirtualNetwork>,
    candidates: &BTreeMap<VnetId, BTreeSet<VnetId>>,
) -> HashMap<VnetId, Vec<VnetId>> {
    let mut spoke_hubs: HashMap<VnetId, Vec<VnetId>> = HashMap::new();
    for (hub, members) in candidates {
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
    spoke_hubs
}
