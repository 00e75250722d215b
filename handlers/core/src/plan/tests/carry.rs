//! Stage 6, what each table can carry (`carry.rs`): a table's foreign routes and direct space, and
//! the other spokes' prefixes it therefore cannot carry.
use ipnet::Ipv4Net;
use serde_json::json;

use super::support::{transit_spokes, with_route_stages};
use crate::config::PlanConfig;
use crate::model::Observed;
use crate::plan::carry::{Block, Carrier};
use crate::synth::Estate;

fn net(text: &str) -> Ipv4Net {
    text.parse().expect("prefix")
}

/// A carrier for a table with `routes` (name, prefix, next hop), for a spoke reaching
/// 10.1.0.0/16 (its own) and 10.0.0.0/16 (the hub's) directly.
fn carrier(routes: &[(&str, &str, &str)], allow_over_default_route: bool) -> Carrier {
    let mut estate = Estate::default();
    let routes: Vec<(&str, &str, &str, Option<&str>)> = routes
        .iter()
        .map(|(name, prefix, hop)| {
            let ip = (*hop == "VirtualAppliance").then_some("10.0.0.4");
            (*name, *prefix, *hop, ip)
        })
        .collect();
    estate.table("rt", &routes, json!({}));
    let observed = Observed::from_snapshot(&estate.snapshot()).expect("snapshot");
    let mut config = PlanConfig::new(Vec::new());
    config.allow_over_default_route = allow_over_default_route;
    let direct = ["10.1.0.0/16", "10.0.0.0/16"].map(|p| p.parse().expect("prefix"));
    Carrier::new(&config, observed.route_tables.first(), &direct)
}

#[test]
fn a_table_cannot_carry_what_its_foreign_routes_or_direct_space_claim() {
    let carrier = carrier(
        &[
            ("to-firewall", "10.8.0.0/13", "VirtualAppliance"),
            ("blackhole", "10.20.0.0/16", "None"),
            ("internet", "10.30.0.0/16", "Internet"),
            ("hubspoke-10-40-0-0-16", "10.41.0.0/16", "Internet"),
            (
                "hubspoke-10-50-0-0-16",
                "10.50.0.0/16",
                "VirtualNetworkGateway",
            ),
        ],
        false,
    );
    assert_eq!(carrier.foreign_count, 4, "a managed route is not foreign");
    let cases = [
        ("10.8.0.0/13", Err(Block::Exact("to-firewall".into()))),
        (
            "10.9.0.0/16",
            Err(Block::CoveredByForeign("to-firewall".into())),
        ),
        (
            "10.20.1.0/24",
            Err(Block::CoveredByForeign("blackhole".into())),
        ),
        ("10.30.0.0/16", Err(Block::Exact("internet".into()))),
        ("10.30.1.0/24", Ok(())),
        (
            "10.40.0.0/16",
            Err(Block::NameClash("hubspoke-10-40-0-0-16".into())),
        ),
        ("10.1.2.0/24", Err(Block::Direct)),
        ("10.0.0.0/16", Err(Block::Direct)),
        ("10.0.0.0/8", Ok(())),
        ("10.50.0.0/16", Ok(())),
    ];
    for (prefix, expected) in cases {
        assert_eq!(carrier.check(net(prefix)), expected, "{prefix}");
    }
    assert!(!carrier.unions_unrestricted());
    assert!(!carrier.can_carry_union(net("10.30.0.0/16")));
    assert!(carrier.can_carry_union(net("10.30.0.0/15")));
}

#[test]
fn a_default_route_to_an_appliance_blocks_everything_unless_allowed() {
    let routes = [("default", "0.0.0.0/0", "VirtualAppliance")];
    for (allowed, expected) in [
        (false, Err(Block::CoveredByForeign("default".into()))),
        (true, Ok(())),
    ] {
        assert_eq!(
            carrier(&routes, allowed).check(net("10.7.0.0/16")),
            expected
        );
    }
    assert!(carrier(&[], false).unions_unrestricted());
}

#[test]
fn each_table_knows_which_prefixes_of_other_spokes_it_cannot_carry() {
    let mut estate = transit_spokes(&[("a", 1), ("b", 2), ("c", 3)]);
    estate.table(
        "rt-a",
        &[("to-b", "10.2.0.0/16", "Internet", None)],
        json!({}),
    );
    estate.associate("a", "default", "rt-a");
    with_route_stages(
        &estate,
        |_| {},
        |stages| {
            let (a, b) = (stages.spoke("a"), stages.spoke("b"));
            assert_eq!(stages.tables.tables.len(), 3);
            let table = &stages.tables.tables[stages.tables.of_spoke[a][0]];
            assert_eq!(table.id.name(), "rt-a");
            assert_eq!(table.owner, a);
            let blocked: Vec<(usize, Vec<(Ipv4Net, Block)>)> = table
                .blocked
                .iter()
                .map(|(s, list)| (*s, list.clone()))
                .collect();
            assert_eq!(
                blocked,
                [(b, vec![(net("10.2.0.0/16"), Block::Exact("to-b".into()))])]
            );
            assert!(!stages.tables.all_can_carry(a, net("10.2.0.0/16")));
            // b's own space is direct for b's table.
            assert!(!stages.tables.all_can_carry(b, net("10.2.0.0/16")));
            assert!(stages.tables.all_can_carry(a, net("10.3.0.0/16")));
        },
    );
}
