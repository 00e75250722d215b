//! Coverage of the transit spokes' subnets (rule 6) and the tables hubspoke may write (rule 7).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{managed_table_id, Builder, Index, Spoke, WarningCode, TAG_EXCLUDE, TAG_MANAGED};
use crate::config::PlanConfig;
use crate::id::{RouteTableId, SubnetId};
use crate::model::{Subnet, VirtualNetwork};

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

/// Coverage (rule 6) and writable tables (rule 7) of the transit spokes.
pub(super) fn plan_coverage(
    config: &PlanConfig,
    index: &Index,
    hub: &VirtualNetwork,
    spokes: &mut [Spoke<'_>],
    builder: &mut Builder,
) {
    for spoke in spokes.iter_mut().filter(|spoke| spoke.transit.is_transit()) {
        let vnet = spoke.enrolled.vnet;
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
        let foreign_vnet = user.vnet() != &spoke.enrolled.vnet.id;
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
