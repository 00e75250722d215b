//! Stage 5, coverage (`docs/design.md` section 2, rules 6 and 7): each subnet of a transit spoke
//! and whether it is eligible for a route table; the tables its eligible subnets use, which of
//! them hubspoke may write and why not the others; and the uncovered subnets that get the
//! spoke's managed table.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::builder::Builder;
use super::index::Index;
use super::names::{managed_table_id, TAG_EXCLUDE, TAG_MANAGED};
use super::types::WarningCode;
use crate::config::PlanConfig;
use crate::id::{RouteTableId, SubnetId, VnetId};
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

/// The coverage of one transit spoke (empty for the others, and when the hub's gateway is unfit
/// for routes).
#[derive(Default)]
pub(crate) struct Coverage<'o> {
    /// Each subnet and its eligibility (rule 6). A subnet's table is its own `route_table`, or
    /// the spoke's managed table when it is in `associate`.
    pub(crate) subnets: Vec<SubnetCoverage<'o>>,
    /// The tables hubspoke writes the spoke's routes into (rule 7), in id order.
    pub(crate) writable_tables: Vec<RouteTableId>,
    /// The tables the spoke's eligible subnets use that hubspoke does not write, and why.
    pub(crate) unwritable_tables: Vec<UnwritableTable>,
    /// Uncovered eligible subnets, to associate with the spoke's managed table.
    pub(crate) associate: Vec<&'o Subnet>,
}

/// A subnet of a transit spoke, and whether it can take a route table.
pub(crate) struct SubnetCoverage<'o> {
    pub(crate) subnet: &'o Subnet,
    pub(crate) eligibility: Eligibility,
}

/// Whether a subnet can take a route table (rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eligibility {
    /// Reserved names and subnets excluded by setting: silently left alone.
    Reserved,
    /// Delegated to a service that cannot take a route table: reported (`subnet_ineligible`
    /// with this detail).
    Ineligible(&'static str),
    /// SQL Managed Instance: its table may be written, its subnet never.
    TableOnly,
    Eligible,
}

/// A table a transit spoke uses that hubspoke does not write (rule 7), with its warning.
pub(crate) struct UnwritableTable {
    pub(crate) table: RouteTableId,
    /// `table_excluded` or `shared_route_table`.
    pub(crate) code: WarningCode,
    message: String,
    details: Value,
}

/// Stage 5: the coverage of a transit spoke (rules 6 and 7).
pub(crate) fn coverage<'o>(
    config: &PlanConfig,
    index: &Index,
    hub: &VirtualNetwork,
    vnet: &'o VirtualNetwork,
    builder: &mut Builder,
) -> Coverage<'o> {
    let mut coverage = Coverage {
        subnets: vnet
            .subnets
            .iter()
            .map(|subnet| SubnetCoverage {
                subnet,
                eligibility: eligibility(config, subnet),
            })
            .collect(),
        ..Coverage::default()
    };
    report_ineligible(&coverage.subnets, builder);
    let (mut used, mut uncovered) = tables_used(&coverage.subnets);
    let managed_id = managed_table_id(&vnet.id);
    if !uncovered.is_empty() {
        if managed_table_clashes(index, &managed_id, &uncovered, builder) {
            uncovered.clear();
        } else {
            used.insert(managed_id.clone());
        }
    }
    let new_users: BTreeSet<SubnetId> = uncovered.iter().map(|s| s.id.clone()).collect();
    for table in used {
        let planned = (table == managed_id).then_some(&new_users);
        match unwritable(config, index, &hub.id, &vnet.id, &table, planned) {
            Some(unwritable) => coverage.unwritable_tables.push(unwritable),
            None => coverage.writable_tables.push(table),
        }
    }
    for unwritable in &coverage.unwritable_tables {
        let UnwritableTable {
            table,
            code,
            message,
            details,
        } = unwritable;
        builder.warn(*code, table.to_string(), message.clone(), details.clone());
    }
    // Uncovered subnets join the managed table only when hubspoke can write it.
    if coverage.writable_tables.contains(&managed_id) {
        coverage.associate = uncovered;
    }
    coverage
}

/// Whether a subnet can take a route table (rule 6).
pub(crate) fn eligibility(config: &PlanConfig, subnet: &Subnet) -> Eligibility {
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

fn report_ineligible(subnets: &[SubnetCoverage], builder: &mut Builder) {
    for SubnetCoverage {
        subnet,
        eligibility,
    } in subnets
    {
        match eligibility {
            Eligibility::Ineligible(reason) => builder.warn(
                WarningCode::SubnetIneligible,
                subnet.id.to_string(),
                format!("this subnet cannot take a user route table ({reason}); it is left alone"),
                json!({ "detail": reason }),
            ),
            Eligibility::TableOnly if subnet.route_table.is_none() => builder.warn(
                WarningCode::SubnetIneligible,
                subnet.id.to_string(),
                "a SQL Managed Instance subnet is never written, and this one has no route table to write routes into".into(),
                json!({ "detail": "sql_managed_instance_without_route_table" }),
            ),
            Eligibility::Reserved | Eligibility::TableOnly | Eligibility::Eligible => {}
        }
    }
}

/// The tables the spoke's subnets that may have one use, and its eligible subnets without one.
fn tables_used<'o>(subnets: &[SubnetCoverage<'o>]) -> (BTreeSet<RouteTableId>, Vec<&'o Subnet>) {
    let mut used = BTreeSet::new();
    let mut uncovered = Vec::new();
    for SubnetCoverage {
        subnet,
        eligibility,
    } in subnets
    {
        match (eligibility, &subnet.route_table) {
            (Eligibility::TableOnly | Eligibility::Eligible, Some(table)) => {
                used.insert(table.clone());
            }
            (Eligibility::Eligible, None) => uncovered.push(*subnet),
            _ => {}
        }
    }
    (used, uncovered)
}

/// Whether a foreign table has the name of the spoke's managed table (`name_clash`): its
/// uncovered subnets then stay uncovered.
fn managed_table_clashes(
    index: &Index,
    managed_id: &RouteTableId,
    uncovered: &[&Subnet],
    builder: &mut Builder,
) -> bool {
    let Some(table) = index.table(managed_id) else {
        return false;
    };
    if table.tags.is_true(TAG_MANAGED) {
        return false;
    }
    builder.warn(
        WarningCode::NameClash,
        table.id.to_string(),
        "a route table that hubspoke did not create has the name hubspoke would give the spoke's table; the spoke's uncovered subnets are left uncovered".into(),
        json!({ "subnets": uncovered.iter().map(|s| s.id.to_string()).collect::<Vec<_>>() }),
    );
    true
}

/// Why a table used by a transit spoke is not written (rule 7), if it is not.
fn unwritable(
    config: &PlanConfig,
    index: &Index,
    hub: &VnetId,
    spoke: &VnetId,
    table_id: &RouteTableId,
    planned_users: Option<&BTreeSet<SubnetId>>,
) -> Option<UnwritableTable> {
    let refuse = |code, message: &str, details| {
        Some(UnwritableTable {
            table: table_id.clone(),
            code,
            message: message.into(),
            details,
        })
    };
    if let Some(table) = index.table(table_id) {
        if table.tags.is_true(TAG_EXCLUDE) {
            return refuse(
                WarningCode::TableExcluded,
                "the route table is tagged hubspoke:exclude=true: hubspoke never writes it",
                json!({ "detail": "tagged" }),
            );
        }
        if config.managed_tables_only && !table.tags.is_true(TAG_MANAGED) {
            return refuse(
                WarningCode::TableExcluded,
                "HUBSPOKE_MANAGED_TABLES_ONLY is on and hubspoke did not create this table",
                json!({ "detail": "managed_tables_only" }),
            );
        }
    }
    let mut users: BTreeSet<SubnetId> =
        index.table_users.get(table_id).cloned().unwrap_or_default();
    if let Some(planned) = planned_users {
        users.extend(planned.iter().cloned());
    }
    let others: Vec<String> = users
        .iter()
        .filter(|user| not_this_spokes_eligible(config, index, spoke, user))
        .map(|user| user.to_string())
        .collect();
    if others.is_empty() {
        return None;
    }
    let hub_uses = users.iter().any(|user| user.vnet() == hub);
    refuse(
        WarningCode::SharedRouteTable,
        "the route table is also used by subnets that are not eligible subnets of this spoke; writing it would route them too",
        json!({ "otherSubnets": others, "usedByHub": hub_uses }),
    )
}

/// A user of a table that writing the table would route too: a subnet of another VNet, or an
/// ineligible subnet of the spoke.
fn not_this_spokes_eligible(
    config: &PlanConfig,
    index: &Index,
    spoke: &VnetId,
    user: &SubnetId,
) -> bool {
    if user.vnet() != spoke {
        return true;
    }
    index.subnet(user).is_some_and(|subnet| {
        matches!(
            eligibility(config, subnet),
            Eligibility::Reserved | Eligibility::Ineligible(_)
        )
    })
}
