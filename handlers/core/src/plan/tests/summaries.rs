//! Stage 7, summaries (`summaries.rs`): where a summary prefix may be held and routing stays
//! symmetric.
use super::support::{transit_spokes, vnet, with_route_stages};
use crate::config::PlanConfig;
use crate::plan::names::{TAG_EXCLUDE, TAG_GROUP};
use crate::plan::types::WarningCode;
use crate::synth::Estate;

struct Case {
    name: &'static str,
    setup: fn(&mut Estate),
    /// The summaries spoke `a` holds.
    held_by_a: &'static [&'static str],
    codes: &'static [WarningCode],
}

const CASES: &[Case] = &[
    Case {
        name: "every VNet inside is a routable spoke of one group",
        setup: |_| {},
        held_by_a: &["10.0.0.0/12"],
        codes: &[],
    },
    Case {
        name: "a spoke inside is of another group",
        setup: |estate| estate.tag_vnet("b", TAG_GROUP, "other"),
        held_by_a: &[],
        codes: &[WarningCode::RouteConflict],
    },
    Case {
        name: "a VNet connected to the hub inside is not managed",
        setup: |estate| {
            vnet(estate, "unmanaged", 3);
            estate.tag_vnet("unmanaged", TAG_EXCLUDE, "true");
            estate.connect("hub", "unmanaged");
        },
        held_by_a: &[],
        codes: &[WarningCode::RouteConflict],
    },
];

#[test]
fn a_summary_is_held_only_where_routing_stays_symmetric() {
    for case in CASES {
        let mut estate = transit_spokes(&[("a", 1), ("b", 2)]);
        (case.setup)(&mut estate);
        // 192.168.0.0/16 has no spoke inside: it is simply not held, and not reported.
        let configure = |config: &mut PlanConfig| {
            config.summary_prefixes = ["10.0.0.0/12", "192.168.0.0/16"]
                .map(|p| p.parse().expect("prefix"))
                .to_vec();
        };
        with_route_stages(&estate, configure, |stages| {
            let held: Vec<String> = stages.summaries.held[stages.spoke("a")]
                .iter()
                .map(|p| p.to_string())
                .collect();
            assert_eq!(held, case.held_by_a, "{}", case.name);
            let b_held = &stages.summaries.held[stages.spoke("b")];
            assert_eq!(b_held.len(), case.held_by_a.len(), "{}", case.name);
            assert_eq!(stages.codes(), case.codes, "{}", case.name);
        });
    }
}
