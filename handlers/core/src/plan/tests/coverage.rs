//! Stage 5, coverage (`coverage.rs`): each subnet's eligibility, the tables hubspoke may write and
//! the subnets that get the spoke's managed table.
use serde_json::json;

use super::support::{hub, with_spokes};
use crate::config::PlanConfig;
use crate::plan::coverage::{eligibility, Eligibility};
use crate::plan::types::WarningCode;
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
            let writable: Vec<&str> = coverage.writable_tables.iter().map(|t| t.name()).collect();
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
