//! Which hub's plan may delete stale managed routes in which table (`docs/design.md` section 2,
//! rule 11), so that no two hubs fight over one table.

use std::collections::{BTreeSet, HashMap};

use super::index::Index;
use super::names::{managed_prefix, managed_table_id};
use crate::config::PlanConfig;
use crate::id::{RouteTableId, VnetId};
use crate::model::VirtualNetwork;

/// The hub that claims each table: first the tables of each hub's spokes, then those of other
/// VNets peered with a hub, then orphans (tables holding managed routes that no hub reaches any
/// more, e.g. of a spoke whose peering was deleted) go to the first hub.
pub(crate) fn claim_tables(config: &PlanConfig, index: &Index) -> HashMap<RouteTableId, VnetId> {
    let mut claims: HashMap<RouteTableId, VnetId> = HashMap::new();
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
    if let Some(first_hub) = config.hubs.first() {
        claim_orphans(index, first_hub, &mut claims);
    }
    claims
}

/// The tables a VNet's subnets use, and the managed table it would have.
fn vnet_tables(vnet: &VirtualNetwork) -> Vec<RouteTableId> {
    let mut tables: Vec<RouteTableId> = vnet
        .subnets
        .iter()
        .filter_map(|subnet| subnet.route_table.clone())
        .collect();
    tables.push(managed_table_id(&vnet.id));
    tables
}

/// Gives `first_hub` every unclaimed table that holds managed routes, except tables used by hubs
/// or by multi-hub spokes, which are never claimed as orphans.
fn claim_orphans(index: &Index, first_hub: &VnetId, claims: &mut HashMap<RouteTableId, VnetId>) {
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
}
