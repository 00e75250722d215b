//! Which hubs an event concerns, with at most one cheap read per resource (docs/design.md §3).
//!
//! - A hub VNet, or a peering or subnet of one: that hub, no read.
//! - Another VNet, its peering or subnet (written): GET the VNet; its peerings name its hubs.
//!   Deleted (a VNet or a peering): it cannot be read, so the hubs' own peerings tell which hub
//!   pointed at it (one GET per hub).
//! - A route table or route: GET the table; no subnet uses it → unrelated; a hub's subnet uses
//!   it → that hub; a spoke's → every hub (knowing the spoke's hub would take a second read). A
//!   deleted table had no subnet (Azure refuses to delete one in use): unrelated.
//! - A gateway (written): GET it; in a hub's `GatewaySubnet` → that hub; elsewhere → every hub.
//!   Deleted: every hub.
//!
//! When a read fails for any reason but "not found", the mapping is unsure and every configured
//! hub is queued: a pass too many costs a few reads, a pass missed leaves a spoke broken until
//! the drift check.
use hubspoke_arm::client::ArmClient;
use hubspoke_core::id::{RouteTableId, VnetId};
use hubspoke_core::model::{Gateway, RouteTable, VirtualNetwork};

use crate::events::Resource;

/// The hubs an event concerns, and how that was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// These hubs (never empty).
    Hubs(Vec<VnetId>, String),
    /// Every configured hub, because the mapping is unsure; with why.
    Unsure(String),
    /// No hub: the resource is not part of any hub's estate; with why.
    Unrelated(String),
}

/// Maps `resource` (written, or deleted when `delete`) to the configured `hubs`.
pub async fn map(
    client: &ArmClient,
    hubs: &[VnetId],
    resource: &Resource,
    delete: bool,
) -> Mapping {
    if let Some(vnet) = resource.vnet() {
        if hubs.contains(vnet) {
            return Mapping::Hubs(vec![vnet.clone()], "the resource is the hub's own".into());
        }
        let vnet_gone = matches!(resource, Resource::VirtualNetwork(_)) && delete;
        let peering_gone = matches!(resource, Resource::Peering(_)) && delete;
        if !vnet_gone && !peering_gone {
            return match read_vnet(client, vnet).await {
                Read::Found(found) => hubs_peered_with(&found, hubs),
                Read::NotFound => through_hubs(client, hubs, vnet).await,
                Read::Failed(why) => Mapping::Unsure(why),
            };
        }
        return through_hubs(client, hubs, vnet).await;
    }
    match resource {
        Resource::RouteTable(_) if delete => Mapping::Unrelated(
            "a deleted route table had no subnet (Azure refuses to delete one in use)".into(),
        ),
        Resource::RouteTable(table) => by_table(client, hubs, table).await,
        Resource::Route(route) => by_table(client, hubs, route.route_table()).await,
        Resource::Gateway(_) if delete => {
            Mapping::Unsure("a deleted gateway cannot be read to find its VNet".into())
        }
        Resource::Gateway(gateway) => {
            let path = gateway.to_string();
            match client.get(&path).await {
                Ok(value) => match Gateway::from_arm(&value, &format!("GET {path}")) {
                    Ok(found) => by_subnets(found.subnets.iter().map(|s| s.vnet().clone()), hubs),
                    Err(error) => {
                        Mapping::Unsure(format!("the gateway could not be read: {error}"))
                    }
                },
                Err(error) if error.is_not_found() => Mapping::Unsure(
                    "the gateway is gone and cannot be read to find its VNet".into(),
                ),
                Err(error) => Mapping::Unsure(format!("the gateway could not be read: {error}")),
            }
        }
        Resource::VirtualNetwork(_) | Resource::Peering(_) | Resource::Subnet(_) => {
            Mapping::Unsure("the resource has no VNet".into())
        }
    }
}

/// The hubs of the subnets that use `table`.
async fn by_table(client: &ArmClient, hubs: &[VnetId], table: &RouteTableId) -> Mapping {
    let path = table.to_string();
    match client.get(&path).await {
        Ok(value) => match RouteTable::from_arm(&value, &format!("GET {path}")) {
            Ok(found) => by_subnets(found.subnets.iter().map(|s| s.vnet().clone()), hubs),
            Err(error) => Mapping::Unsure(format!("the route table could not be read: {error}")),
        },
        Err(error) if error.is_not_found() => {
            Mapping::Unrelated("the route table no longer exists, so no subnet uses it".into())
        }
        Err(error) => Mapping::Unsure(format!("the route table could not be read: {error}")),
    }
}

enum Read {
    Found(VirtualNetwork),
    NotFound,
    Failed(String),
}

async fn read_vnet(client: &ArmClient, vnet: &VnetId) -> Read {
    let path = vnet.to_string();
    match client.get(&path).await {
        Ok(value) => match VirtualNetwork::from_arm(&value, &format!("GET {path}")) {
            Ok(found) => Read::Found(found),
            Err(error) => Read::Failed(format!("{vnet} could not be read: {error}")),
        },
        Err(error) if error.is_not_found() => Read::NotFound,
        Err(error) => Read::Failed(format!("{vnet} could not be read: {error}")),
    }
}

/// The hubs `vnet`'s own peerings point at.
fn hubs_peered_with(vnet: &VirtualNetwork, hubs: &[VnetId]) -> Mapping {
    let mut found: Vec<VnetId> = Vec::new();
    for peering in &vnet.peerings {
        if hubs.contains(&peering.remote_vnet) && !found.contains(&peering.remote_vnet) {
            found.push(peering.remote_vnet.clone());
        }
    }
    if found.is_empty() {
        // The spoke side may be gone while the hub side remains: the hubs' peerings tell.
        Mapping::Unrelated("the VNet has no peering with a hub".into())
    } else {
        Mapping::Hubs(found, "the VNet is peered with the hub".into())
    }
}

/// The hubs whose own peerings point at `vnet` (one read per hub).
async fn through_hubs(client: &ArmClient, hubs: &[VnetId], vnet: &VnetId) -> Mapping {
    let mut found = Vec::new();
    for hub in hubs {
        match read_vnet(client, hub).await {
            Read::Found(hub_vnet) => {
                if hub_vnet.peerings.iter().any(|p| &p.remote_vnet == vnet) {
                    found.push(hub.clone());
                }
            }
            Read::NotFound => {}
            Read::Failed(why) => return Mapping::Unsure(why),
        }
    }
    if found.is_empty() {
        Mapping::Unrelated("no hub has a peering with the VNet".into())
    } else {
        Mapping::Hubs(found, "the hub has a peering with the VNet".into())
    }
}

/// The hubs among the VNets of a table's or gateway's subnets; any other VNet makes it unsure.
fn by_subnets(vnets: impl Iterator<Item = VnetId>, hubs: &[VnetId]) -> Mapping {
    let mut hub_vnets: Vec<VnetId> = Vec::new();
    let mut others = 0;
    for vnet in vnets {
        if hubs.contains(&vnet) {
            if !hub_vnets.contains(&vnet) {
                hub_vnets.push(vnet);
            }
        } else {
            others += 1;
        }
    }
    match (hub_vnets.is_empty(), others) {
        (true, 0) => Mapping::Unrelated("no subnet uses it".into()),
        (false, 0) => Mapping::Hubs(hub_vnets, "a subnet of the hub uses it".into()),
        _ => Mapping::Unsure(
            "subnets of VNets that are not hubs use it; finding their hub would take another read"
                .into(),
        ),
    }
}
