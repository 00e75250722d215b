//! Stage 8, routed pairs (`pairs.rs`): symmetric routing within groups and the route limit, and
//! each table's routes merged.
use super::support::{transit_spokes, with_route_stages};
use crate::config::PlanConfig;
use crate::plan::names::TAG_GROUP;
use crate::plan::types::WarningCode;
use crate::synth::Estate;

struct Case {
    name: &'static str,
    setup: fn(&mut Estate),
    route_limit: usize,
    /// Each spoke's peers, as `<spoke>: <peers>`.
    peers: &'static [&'static str],
    codes: &'static [WarningCode],
}

const CASES: &[Case] = &[
    Case {
        name: "a group with nothing in the way is routed whole",
        setup: |_| {},
        route_limit: 400,
        peers: &["a: b c", "b: a c", "c: a b"],
        codes: &[],
    },
    Case {
        name: "spokes are routed only within their group",
        setup: |estate| estate.tag_vnet("c", TAG_GROUP, "blue"),
        route_limit: 400,
        peers: &["a: b", "b: a", "c: "],
        codes: &[],
    },
    Case {
        name: "a table that cannot carry a peer's prefix unroutes the pair both ways",
        setup: |estate| {
            estate.table(
                "rt-a",
                &[("to-b", "10.3.0.0/16", "Internet", None)],
                serde_json::json!({}),
            );
            estate.associate("a", "default", "rt-a");
        },
        route_limit: 400,
        peers: &["a: c", "b: c", "c: a b"],
        codes: &[WarningCode::RouteConflict],
    },
    Case {
        name: "the route limit unroutes the pairs that do not fit, both ways",
        setup: |_| {},
        route_limit: 1,
        peers: &["a: b", "b: a", "c: "],
        // The tables of a, b and c each miss a peer.
        codes: &[
            WarningCode::RouteLimitExceeded,
            WarningCode::RouteLimitExceeded,
            WarningCode::RouteLimitExceeded,
        ],
    },
];

#[test]
fn pairs_are_routed_symmetrically_within_groups_and_limits() {
    for case in CASES {
        // Odd /16s, so that no two spokes' prefixes merge.
        let mut estate = transit_spokes(&[("a", 1), ("b", 3), ("c", 5)]);
        (case.setup)(&mut estate);
        let configure = |config: &mut PlanConfig| config.route_limit = case.route_limit;
        with_route_stages(&estate, configure, |stages| {
            let peers: Vec<String> = ["a", "b", "c"]
                .iter()
                .map(|name| format!("{name}: {}", stages.peers(name).join(" ")))
                .collect();
            assert_eq!(peers, case.peers, "{}", case.name);
            assert_eq!(stages.codes(), case.codes, "{}", case.name);
        });
    }
}

#[test]
fn a_tables_routes_are_its_peers_prefixes_merged() {
    // Spokes 10.4–10.7/16: a's table holds the others' space, merged where it can be.
    let estate = transit_spokes(&[("a", 4), ("b", 5), ("c", 6), ("d", 7)]);
    with_route_stages(
        &estate,
        |_| {},
        |stages| {
            assert_eq!(stages.routes("a"), ["10.5.0.0/16", "10.6.0.0/15"]);
            assert_eq!(stages.routes("d"), ["10.4.0.0/15", "10.6.0.0/16"]);
        },
    );
    // Pair by pair, to the same result: e is peered with a directly, so a's table does not
    // carry e's space (which stops the whole-group shortcut) and the two are not routed.
    let mut estate = transit_spokes(&[("a", 4), ("b", 5), ("c", 6), ("d", 7), ("e", 9)]);
    estate.connect("a", "e");
    with_route_stages(
        &estate,
        |_| {},
        |stages| {
            assert_eq!(stages.peers("a"), ["b", "c", "d"]);
            assert_eq!(stages.peers("e"), ["b", "c", "d"]);
            assert_eq!(stages.routes("a"), ["10.5.0.0/16", "10.6.0.0/15"]);
            assert_eq!(
                stages.routes("d"),
                ["10.4.0.0/15", "10.6.0.0/16", "10.9.0.0/16"]
            );
            assert!(stages.codes().is_empty(), "a direct route is no conflict");
        },
    );
}
