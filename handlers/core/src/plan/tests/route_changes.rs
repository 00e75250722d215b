//! Stage 10, route changes (`route_changes.rs`): what each table needs to hold its desired routes,
//! and what waits for what.
use serde_json::json;

use super::support::{transit_spokes, vnet, with_route_changes};
use crate::plan::names::{TAG_EXCLUDE, TAG_MANAGED};
use crate::synth::Estate;

struct Case {
    name: &'static str,
    setup: fn(&mut Estate),
    /// Each change as `<phase> <kind> <target name> <ids it waits for>`; peering changes
    /// are named `p<spoke>` (ids of the spoke stages), route changes by their id here.
    changes: &'static [&'static str],
}

/// Spokes a (10.1/16) and b (10.2/16) whose subnets use managed tables holding `routes_a`
/// and b's space.
fn with_tables(estate: &mut Estate, routes_a: &[(&str, &str, &str, Option<&str>)]) {
    let managed = json!({ TAG_MANAGED: "true" });
    estate.table("hubspoke-rt-a", routes_a, managed.clone());
    estate.associate("a", "default", "hubspoke-rt-a");
    let to_a = [(
        "hubspoke-10-1-0-0-16",
        "10.1.0.0/16",
        "VirtualNetworkGateway",
        None,
    )];
    estate.table("hubspoke-rt-b", &to_a, managed);
    estate.associate("b", "default", "hubspoke-rt-b");
}

const CASES: &[Case] = &[
    Case {
        name: "uncovered spokes get a table with their routes, then their subnets",
        setup: |_| {},
        changes: &[
            "1 create_route_table hubspoke-rt-a []",
            "1 associate_route_table default [0]",
            "1 create_route_table hubspoke-rt-b []",
            "1 associate_route_table default [2]",
        ],
    },
    Case {
        name: "a converged table needs nothing",
        setup: |estate| {
            with_tables(
                estate,
                &[(
                    "hubspoke-10-2-0-0-16",
                    "10.2.0.0/16",
                    "VirtualNetworkGateway",
                    None,
                )],
            );
        },
        changes: &[],
    },
    Case {
        name: "a missing route is added, a wrong one replaced",
        setup: |estate| {
            with_tables(
                estate,
                &[(
                    "hubspoke-10-2-0-0-16",
                    "10.2.0.0/16",
                    "VirtualAppliance",
                    Some("10.0.0.4"),
                )],
            );
        },
        changes: &["1 upsert_route hubspoke-10-2-0-0-16 []"],
    },
    Case {
        name: "a route of vanished space goes first",
        setup: |estate| {
            with_tables(
                estate,
                &[
                    (
                        "hubspoke-10-2-0-0-16",
                        "10.2.0.0/16",
                        "VirtualNetworkGateway",
                        None,
                    ),
                    (
                        "hubspoke-10-9-0-0-16",
                        "10.9.0.0/16",
                        "VirtualNetworkGateway",
                        None,
                    ),
                ],
            );
        },
        changes: &["0 delete_route hubspoke-10-9-0-0-16 []"],
    },
    Case {
        name: "an aggregate that changes shape is made before the old routes go",
        setup: |estate| {
            vnet(estate, "c", 3);
            estate.connect_transit("hub", "c");
            with_tables(
                estate,
                &[
                    (
                        "hubspoke-10-2-0-0-16",
                        "10.2.0.0/16",
                        "VirtualNetworkGateway",
                        None,
                    ),
                    (
                        "hubspoke-10-3-0-0-16",
                        "10.3.0.0/16",
                        "VirtualNetworkGateway",
                        None,
                    ),
                ],
            );
        },
        changes: &[
            "1 upsert_route hubspoke-10-2-0-0-15 []",
            "1 delete_route hubspoke-10-2-0-0-16 [0]",
            "1 delete_route hubspoke-10-3-0-0-16 [0]",
            "1 upsert_route hubspoke-10-3-0-0-16 []",
            "1 create_route_table hubspoke-rt-c []",
            "1 associate_route_table default [4]",
        ],
    },
    Case {
        name: "an excluded table is never written, and its spoke is then routed to no one",
        setup: |estate| {
            with_tables(
                estate,
                &[(
                    "hubspoke-10-9-0-0-16",
                    "10.9.0.0/16",
                    "VirtualNetworkGateway",
                    None,
                )],
            );
            estate.route_tables[0]["tags"][TAG_EXCLUDE] = "true".into();
        },
        changes: &["0 delete_route hubspoke-10-1-0-0-16 []"],
    },
    Case {
        name: "a route to a peer's new space waits for the peer's sync",
        setup: |estate| {
            with_tables(
                estate,
                &[(
                    "hubspoke-10-2-0-0-16",
                    "10.2.0.0/16",
                    "VirtualNetworkGateway",
                    None,
                )],
            );
            estate.vnet_mut("b")["properties"]["addressSpace"]["addressPrefixes"] =
                json!(["10.2.0.0/16", "10.20.0.0/16"]);
            let hub_side = &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"][1];
            hub_side["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
            hub_side["properties"]["remoteVirtualNetworkAddressSpace"]["addressPrefixes"] =
                json!(["10.2.0.0/16", "10.20.0.0/16"]);
        },
        changes: &["1 upsert_route hubspoke-10-20-0-0-16 [pb]"],
    },
];

#[test]
fn each_table_gets_the_changes_that_make_it_hold_its_desired_routes() {
    for case in CASES {
        let mut estate = transit_spokes(&[("a", 1), ("b", 2)]);
        (case.setup)(&mut estate);
        with_route_changes(
            &estate,
            |_| {},
            |peerings, changes| {
                let name = |id: usize| -> String {
                    peerings
                        .iter()
                        .find(|(_, ids)| ids.contains(&id))
                        .map(|(spoke, _)| format!("p{spoke}"))
                        .unwrap_or_else(|| id.to_string())
                };
                let got: Vec<String> = changes
                    .iter()
                    .map(|change| {
                        let target = change.action.target();
                        let target = target.rsplit('/').next().unwrap_or_default();
                        let deps: Vec<String> =
                            change.depends_on.iter().map(|&d| name(d)).collect();
                        format!(
                            "{} {} {target} [{}]",
                            change.phase,
                            change.action.kind(),
                            deps.join(", ")
                        )
                    })
                    .collect();
                assert_eq!(got, case.changes, "{}", case.name);
            },
        );
    }
}
