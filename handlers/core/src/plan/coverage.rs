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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{hub, with_spokes};
    use crate::synth::Estate;

    fn delegate(estate: &mut Estate, subnet: &str, service: &str) {
        estate.subnet_mut("spoke", subnet)["properties"]["delegations"] =
            json!([{ "name": "delegation", "properties": { "serviceName": service } }]);
    }

    /// A transit spoke with the given subnets (in 10.1.n.0/24), set up further by `setup`.
    fn spoke(subnets: &[&str], setup: impl Fn(&mut Estate)) -> Estate {
        let mut estate = hub(Some("Succeeded"));
        let prefixes: Vec<String> = (0..subnets.len())
            .map(|n| format!("10.1.{n}.0/24"))
            .collect();
        let subnets: Vec<(&str, &str)> = subnets
            .iter()
            .zip(&prefixes)
            .map(|(name, prefix)| (*name, prefix.as_str()))
            .collect();
        estate.vnet("spoke", &["10.1.0.0/16"], &subnets);
        estate.connect_transit("hub", "spoke");
        setup(&mut estate);
        estate
    }

    #[test]
    fn eligibility_follows_name_delegation_and_setting() {
        let cases = [
            ("workload", None, Eligibility::Eligible),
            ("GatewaySubnet", None, Eligibility::Reserved),
            ("azurebastionsubnet", None, Eligibility::Reserved),
            ("excluded", None, Eligibility::Reserved),
            (
                "files",
                Some("Microsoft.NetApp/volumes"),
                Eligibility::Ineligible("delegated_to_netapp"),
            ),
            (
                "spark",
                Some("Microsoft.Databricks/workspaces"),
                Eligibility::Ineligible("delegated_to_databricks"),
            ),
            (
                "sql",
                Some("Microsoft.Sql/managedInstances"),
                Eligibility::TableOnly,
            ),
            (
                "web",
                Some("Microsoft.Web/serverFarms"),
                Eligibility::Eligible,
            ),
        ];
        let names: Vec<&str> = cases.iter().map(|(name, _, _)| *name).collect();
        let estate = spoke(&names, |estate| {
            for (name, delegation, _) in &cases {
                if let Some(service) = delegation {
                    delegate(estate, name, service);
                }
            }
        });
        let observed = crate::model::Observed::from_snapshot(&estate.snapshot()).expect("snapshot");
        let mut config = PlanConfig::new(Vec::new());
        config.exclude_subnets.insert("excluded".into());
        let vnet = observed
            .virtual_networks
            .iter()
            .find(|v| v.id.name() == "spoke")
            .expect("spoke");
        for ((name, _, expected), subnet) in cases.iter().zip(&vnet.subnets) {
            assert_eq!(eligibility(&config, subnet), *expected, "{name}");
        }
    }

    struct Case {
        name: &'static str,
        subnets: &'static [&'static str],
        setup: fn(&mut Estate),
        managed_tables_only: bool,
        writable: &'static [&'static str],
        unwritable: &'static [&'static str],
        associate: &'static [&'static str],
        codes: &'static [WarningCode],
    }

    fn no_setup(_: &mut Estate) {}

    fn own_table(estate: &mut Estate) {
        estate.table("rt-spoke", &[], json!({}));
        estate.associate("spoke", "a", "rt-spoke");
    }

    const CASES: &[Case] = &[
        Case {
            name: "an uncovered subnet gets the managed table",
            subnets: &["a"],
            setup: no_setup,
            managed_tables_only: false,
            writable: &["hubspoke-rt-spoke"],
            unwritable: &[],
            associate: &["a"],
            codes: &[],
        },
        Case {
            name: "a foreign table of the spoke's own is written",
            subnets: &["a"],
            setup: own_table,
            managed_tables_only: false,
            writable: &["rt-spoke"],
            unwritable: &[],
            associate: &[],
            codes: &[],
        },
        Case {
            name: "an excluded table is not",
            subnets: &["a", "b"],
            setup: |estate| {
                estate.table("rt-spoke", &[], json!({ "hubspoke:exclude": "true" }));
                estate.associate("spoke", "a", "rt-spoke");
            },
            managed_tables_only: false,
            writable: &["hubspoke-rt-spoke"],
            unwritable: &["table_excluded rt-spoke"],
            associate: &["b"],
            codes: &[WarningCode::TableExcluded],
        },
        Case {
            name: "nor a foreign one when only managed tables are written",
            subnets: &["a"],
            setup: own_table,
            managed_tables_only: true,
            writable: &[],
            unwritable: &["table_excluded rt-spoke"],
            associate: &[],
            codes: &[WarningCode::TableExcluded],
        },
        Case {
            name: "nor one shared with another VNet",
            subnets: &["a"],
            setup: |estate| {
                own_table(estate);
                estate.vnet("other", &["10.2.0.0/16"], &[("x", "10.2.0.0/24")]);
                estate.associate("other", "x", "rt-spoke");
            },
            managed_tables_only: false,
            writable: &[],
            unwritable: &["shared_route_table rt-spoke"],
            associate: &[],
            codes: &[WarningCode::SharedRouteTable],
        },
        Case {
            name: "nor one shared with an ineligible subnet of the spoke",
            subnets: &["a", "AzureBastionSubnet"],
            setup: |estate| {
                own_table(estate);
                estate.associate("spoke", "AzureBastionSubnet", "rt-spoke");
            },
            managed_tables_only: false,
            writable: &[],
            unwritable: &["shared_route_table rt-spoke"],
            associate: &[],
            codes: &[WarningCode::SharedRouteTable],
        },
        Case {
            name: "a foreign table with the managed table's name leaves subnets uncovered",
            subnets: &["a"],
            setup: |estate| {
                estate.table("hubspoke-rt-spoke", &[], json!({}));
            },
            managed_tables_only: false,
            writable: &[],
            unwritable: &[],
            associate: &[],
            codes: &[WarningCode::NameClash],
        },
        Case {
            name: "ineligible subnets and a SQL Managed Instance without a table are reported, reserved ones are not",
            subnets: &["files", "AzureBastionSubnet", "sql"],
            setup: |estate| {
                delegate(estate, "files", "Microsoft.NetApp/volumes");
                delegate(estate, "sql", "Microsoft.Sql/managedInstances");
            },
            managed_tables_only: false,
            writable: &[],
            unwritable: &[],
            associate: &[],
            codes: &[WarningCode::SubnetIneligible, WarningCode::SubnetIneligible],
        },
        Case {
            name: "a SQL Managed Instance's own table is written, its subnet never",
            subnets: &["sql"],
            setup: |estate| {
                delegate(estate, "sql", "Microsoft.Sql/managedInstances");
                estate.table("rt-sql", &[], json!({}));
                estate.associate("spoke", "sql", "rt-sql");
            },
            managed_tables_only: false,
            writable: &["rt-sql"],
            unwritable: &[],
            associate: &[],
            codes: &[],
        },
    ];

    #[test]
    fn coverage_finds_the_tables_hubspoke_may_write_and_the_subnets_it_associates() {
        for case in CASES {
            let estate = spoke(case.subnets, case.setup);
            let configure = |config: &mut PlanConfig| {
                config.managed_tables_only = case.managed_tables_only;
            };
            with_spokes(&estate, configure, |spokes, plan| {
                let coverage = &spokes[0].coverage;
                assert_eq!(coverage.subnets.len(), case.subnets.len(), "{}", case.name);
                let writable: Vec<&str> =
                    coverage.writable_tables.iter().map(|t| t.name()).collect();
                assert_eq!(writable, case.writable, "{}", case.name);
                let unwritable: Vec<String> = coverage
                    .unwritable_tables
                    .iter()
                    .map(|u| format!("{} {}", u.code.as_str(), u.table.name()))
                    .collect();
                assert_eq!(unwritable, case.unwritable, "{}", case.name);
                let associate: Vec<&str> = coverage.associate.iter().map(|s| s.id.name()).collect();
                assert_eq!(associate, case.associate, "{}", case.name);
                let codes: Vec<WarningCode> = plan.warnings.iter().map(|w| w.code).collect();
                assert_eq!(codes, case.codes, "{}", case.name);
            });
        }
    }

    #[test]
    fn a_spoke_that_is_not_transit_has_no_coverage() {
        let mut estate = spoke(&["a"], no_setup);
        estate.set_gateway_state("Updating");
        // Still transit: the flags were on before the gateway started updating.
        with_spokes(
            &estate,
            |_| {},
            |spokes, _| {
                assert_eq!(spokes[0].coverage.writable_tables.len(), 1);
            },
        );
        let mut estate = hub(Some("Succeeded"));
        estate.vnet("spoke", &["10.1.0.0/16"], &[("a", "10.1.0.0/24")]);
        estate.connect("hub", "spoke");
        with_spokes(
            &estate,
            |_| {},
            |spokes, _| {
                // Connected with default flags: this plan makes it transit, so it is covered.
                assert!(spokes[0].transit.is_transit());
                assert_eq!(spokes[0].coverage.associate.len(), 1);
            },
        );
        estate.set_gateway_state("Failed");
        with_spokes(
            &estate,
            |_| {},
            |spokes, _| {
                assert!(!spokes[0].transit.is_transit());
                assert!(spokes[0].coverage.subnets.is_empty());
                assert!(spokes[0].coverage.writable_tables.is_empty());
            },
        );
    }
}
