//! The verification on estates built by hand: each scenario changes one thing in a converged
//! hub of three spokes and checks exactly which pairs change verdict, and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use hubspoke_core::model::Observed;
use hubspoke_core::synth::{Estate, Flags};
use hubspoke_core::verify::{render, verify, HubVerification};
use serde_json::json;
use support::{config, converge, observed};

const FIREWALL: &str = "10.0.1.4";

/// A hub with a ready gateway and spokes a (10.1/16), b (10.2/16) and c (10.3/16), each with a
/// workload subnet, converged by the planner; `change` then edits the snapshot.
fn estate(change: impl Fn(&mut Estate)) -> (Estate, Observed) {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.0.0/27", Some("Succeeded"));
    for (name, space, subnet) in [
        ("a", "10.1.0.0/16", "10.1.0.0/24"),
        ("b", "10.2.0.0/16", "10.2.0.0/24"),
        ("c", "10.3.0.0/16", "10.3.0.0/24"),
    ] {
        estate.vnet(name, &[space], &[("workload", subnet)]);
        estate.connect("hub", name);
    }
    change(&mut estate);
    let config = config(&[&estate.vnet_id("hub")]);
    let mut observed = observed(&estate.snapshot());
    converge(&config, &mut observed);
    (estate, observed)
}

fn verification(estate: &Estate, observed: &Observed) -> HubVerification {
    let config = config(&[&estate.vnet_id("hub")]);
    verify(&config, observed).remove(0)
}

/// `from->to verdict [reason]` of every pair, by portal name.
fn verdicts(v: &HubVerification) -> Vec<String> {
    v.pairs
        .iter()
        .map(|pair| {
            let name = |at: u32| v.spokes[at as usize].id.name().to_owned();
            let reason = pair
                .reason
                .as_ref()
                .map_or(String::new(), |r| format!(" {}", r.code));
            let asym = if pair.asymmetric { " asymmetric" } else { "" };
            format!(
                "{}->{} {}{reason}{asym}",
                name(pair.from),
                name(pair.to),
                pair.verdict.code()
            )
        })
        .collect()
}

/// Adds a foreign table with `routes` and associates it with spoke `spoke`'s workload subnet
/// (the planner then writes its routes into it).
fn foreign_table(estate: &mut Estate, spoke: &str, routes: &[(&str, &str, &str, Option<&str>)]) {
    let name = format!("rt-{spoke}");
    estate.table(&name, routes, json!({}));
    estate.associate(spoke, "workload", &name);
}

#[test]
fn a_converged_hub_reaches_every_pair_through_the_gateway() {
    let (estate, observed) = estate(|_| {});
    let v = verification(&estate, &observed);
    assert_eq!(v.counts.gateway, 6, "{:#?}", verdicts(&v));
    assert!(v.transit_pairs_fine());
    assert!(v.problems().is_empty());
    let text = render::table(&v, 120);
    assert!(text.contains("6 pairs: 6 gateway"), "{text}");
    assert!(text.contains("a "), "{text}");
}

#[test]
fn before_the_pass_every_pair_says_what_is_missing() {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.0.0/27", Some("Succeeded"));
    estate.vnet("a", &["10.1.0.0/16"], &[("workload", "10.1.0.0/24")]);
    estate.vnet("b", &["10.2.0.0/16"], &[("workload", "10.2.0.0/24")]);
    estate.connect("hub", "a");
    estate.peer("b", "hub", Flags::default(), "Initiated");
    let v = verification(&estate, &observed(&estate.snapshot()));
    assert_eq!(
        verdicts(&v),
        [
            "a->b unreachable transit_flags_off",
            "b->a unreachable spoke_not_transit"
        ]
    );
    assert!(
        !v.transit_pairs_fine(),
        "both spokes will be transit after the pass"
    );
}

#[test]
fn a_foreign_none_route_inside_a_prefix_makes_exactly_that_direction_unreachable() {
    let (estate, observed) = estate(|estate| {
        foreign_table(estate, "a", &[("block", "10.2.5.0/24", "None", None)]);
    });
    let v = verification(&estate, &observed);
    assert_eq!(
        verdicts(&v),
        [
            "a->b unreachable route_conflict",
            "a->c gateway",
            "b->a gateway",
            "b->c gateway",
            "c->a gateway",
            "c->b gateway"
        ]
    );
    let reason = v.pairs[0].reason.as_ref().unwrap();
    assert_eq!(reason.detail, Some("splits_prefix"));
    assert_eq!(reason.prefix.as_deref(), Some("10.2.5.0/24"));
    assert_eq!(reason.subnet.as_ref().unwrap().name(), "workload");
    assert!(!v.transit_pairs_fine());
}

#[test]
fn a_firewall_default_route_sends_its_spoke_to_the_appliance_and_the_others_cannot_route_back() {
    // A default route to a firewall covers every prefix: the planner writes no route there
    // (rule 9b), nor towards a (rule 8, symmetric), so a's traffic goes to the firewall and the
    // others' traffic to a has no route.
    let (estate, observed) = estate(|estate| {
        foreign_table(
            estate,
            "a",
            &[("to-fw", "0.0.0.0/0", "VirtualAppliance", Some(FIREWALL))],
        );
    });
    let v = verification(&estate, &observed);
    assert_eq!(
        verdicts(&v),
        [
            "a->b appliance route_to_appliance",
            "a->c appliance route_to_appliance",
            "b->a unreachable route_conflict",
            "b->c gateway",
            "c->a unreachable route_conflict",
            "c->b gateway"
        ]
    );
    let back = v.pairs[2].reason.as_ref().unwrap();
    assert_eq!(back.detail, Some("covered_by_foreign"));
    assert_eq!(back.at.as_ref().unwrap().name(), "a");
    assert_eq!(v.counts.appliance, 2);
    let summary = render::summary_json(&v, 10);
    assert_eq!(summary["counts"]["appliance"], 2);
    // The worst first: the unreachable pairs, then the appliance ones.
    assert_eq!(summary["pairs"][0]["verdict"], "unreachable");
    let appliance = &summary["pairs"][2];
    assert_eq!(appliance["verdict"], "appliance");
    assert_eq!(appliance["detail"]["route"]["nextHopIpAddress"], FIREWALL);
    assert_eq!(summary["omitted_pairs"], 0);
}

#[test]
fn a_firewall_route_written_both_ways_is_asymmetric_against_the_gateway() {
    // A foreign route in a's table sends b's prefix to the firewall while b reaches a through
    // the gateway: stateful firewalls drop such traffic.
    let (estate, mut observed) = estate(|_| {});
    let table = observed
        .route_tables
        .iter_mut()
        .find(|t| t.id.name() == "hubspoke-rt-a")
        .unwrap();
    let route = table.routes[0].clone();
    let mut firewall = route.clone();
    firewall.id = format!("{}/routes/b-via-fw", table.id).parse().unwrap();
    firewall.address_prefix =
        hubspoke_core::model::RoutePrefix::Cidr("10.2.0.0/17".parse().unwrap());
    firewall.next_hop_type = "VirtualAppliance".into();
    firewall.next_hop_ip_address = Some(FIREWALL.parse().unwrap());
    table.routes.push(firewall);
    let v = verification(&estate, &observed);
    let got = verdicts(&v);
    assert!(
        got.contains(&"a->b appliance route_to_appliance asymmetric".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"b->a gateway asymmetric".to_string()),
        "{got:#?}"
    );
    assert_eq!(v.counts.asymmetric, 2);
}

#[test]
fn spokes_peered_with_each_other_are_direct() {
    let (estate, observed) = estate(|estate| estate.connect("a", "b"));
    let v = verification(&estate, &observed);
    let got = verdicts(&v);
    assert!(got.contains(&"a->b direct".to_string()), "{got:#?}");
    assert!(got.contains(&"b->a direct".to_string()), "{got:#?}");
    assert!(got.contains(&"a->c gateway".to_string()), "{got:#?}");
    assert!(v.transit_pairs_fine());
}

#[test]
fn a_gateway_that_is_not_ready_leaves_every_pair_unreachable() {
    let (mut estate, _) = estate(|_| {});
    let (_, converged) = estate.clone().into_converged();
    estate.set_gateway_state("Updating");
    let mut observed = converged;
    for gateway in &mut observed.gateways {
        gateway.provisioning_state = "Updating".into();
    }
    let v = verification(&estate, &observed);
    assert_eq!(v.counts.unreachable, 6, "{:#?}", verdicts(&v));
    assert!(v
        .pairs
        .iter()
        .all(|p| p.reason.as_ref().unwrap().code == "gateway_not_ready"));
}

#[test]
fn a_subnet_without_a_table_and_an_excluded_table_are_named() {
    let (estate, mut observed) = estate(|estate| {
        estate.table("rt-c", &[], json!({"hubspoke:exclude": "true"}));
        estate.associate("c", "workload", "rt-c");
    });
    // Take b's subnet off its table, as someone might by hand.
    let b = observed
        .virtual_networks
        .iter_mut()
        .find(|v| v.id.name() == "b")
        .unwrap();
    b.subnets[0].route_table = None;
    let v = verification(&estate, &observed);
    let got = verdicts(&v);
    assert!(
        got.contains(&"b->a unreachable route_missing".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"c->a unreachable table_excluded".to_string()),
        "{got:#?}"
    );
    assert!(got.contains(&"a->b gateway".to_string()), "{got:#?}");
}

#[test]
fn only_spokes_of_one_group_are_paired() {
    let (estate, observed) = estate(|estate| estate.tag_vnet("c", "hubspoke:group", "other"));
    let v = verification(&estate, &observed);
    assert_eq!(verdicts(&v), ["a->b gateway", "b->a gateway"]);
    let json = render::hub_json(&v);
    assert_eq!(json["pairs"].as_array().unwrap().len(), 2);
    assert_eq!(json["pairs"][0]["reason"], serde_json::Value::Null);
    assert_eq!(json["pairs"][0]["verdict"], "gateway");
}

trait Converged {
    fn into_converged(self) -> (Estate, Observed);
}

impl Converged for Estate {
    fn into_converged(self) -> (Estate, Observed) {
        let config = config(&[&self.vnet_id("hub")]);
        let mut observed = observed(&self.snapshot());
        converge(&config, &mut observed);
        (self, observed)
    }
}
