//! Stage 9, desired routes (`routes.rs`): the routes and summaries each writable table holds.
use super::support::{transit_spokes, with_desired};

#[test]
fn each_table_holds_its_peers_routes_and_its_summaries() {
    // a and b are inside the summary, c outside: a's table holds the summary and c's space.
    let estate = transit_spokes(&[("a", 1), ("b", 2), ("c", 200)]);
    let configure = |config: &mut crate::config::PlanConfig| {
        config.summary_prefixes = vec!["10.0.0.0/12".parse().expect("prefix")];
    };
    with_desired(&estate, configure, |spokes, desired| {
        let text = |nets: &std::collections::BTreeSet<ipnet::Ipv4Net>| -> Vec<String> {
            nets.iter().map(|p| p.to_string()).collect()
        };
        let tables: Vec<String> = desired
            .tables
            .iter()
            .map(|(id, want)| {
                let owner = spokes[want.owner].enrolled.vnet.id.name();
                let all: Vec<String> = want.all().map(|p| p.to_string()).collect();
                format!("{} of {owner}: {}", id.name(), all.join(" "))
            })
            .collect();
        assert_eq!(
            tables,
            [
                "hubspoke-rt-a of a: 10.200.0.0/16 10.0.0.0/12",
                "hubspoke-rt-b of b: 10.200.0.0/16 10.0.0.0/12",
                "hubspoke-rt-c of c: 10.1.0.0/16 10.2.0.0/16",
            ]
        );
        let a = &desired.tables.values().next().expect("a table");
        assert_eq!(text(&a.summaries), ["10.0.0.0/12"]);
        assert_eq!(desired.peers.iter().map(Vec::len).sum::<usize>(), 6);
    });
}
