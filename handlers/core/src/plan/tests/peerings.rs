//! Stage 3, peering changes (`peerings.rs`, `peering_writes.rs`): each pair's standing, its flags,
//! and the writes in the order of rule 3.
use super::support::{hub, vnet, with_spokes};
use crate::config::PlanConfig;
use crate::model::PeeringFlags;
use crate::plan::peerings::Pair;
use crate::synth::{Estate, Flags};

struct Case {
    name: &'static str,
    gateway: Option<&'static str>,
    create_missing: bool,
    /// Builds spoke `spoke` (10.1.0.0/16) and its peerings.
    setup: fn(&mut Estate),
    /// The pair after the plan, as `pair_summary` writes it.
    pair: &'static str,
    /// Each change as `<kind> <VNet written> <ids it waits for>`, in order.
    changes: &'static [&'static str],
}

fn fresh(estate: &mut Estate) {
    vnet(estate, "spoke", 1);
    estate.peer("spoke", "hub", Flags::default(), "Initiated");
}

fn connected(estate: &mut Estate) {
    vnet(estate, "spoke", 1);
    estate.connect("hub", "spoke");
}

fn transit_flags(estate: &mut Estate) {
    vnet(estate, "spoke", 1);
    estate.connect_transit("hub", "spoke");
}

const CASES: &[Case] = &[
    Case {
        name: "the missing hub side is created first, with transit",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: fresh,
        pair: "connected On, hub FT, spoke FR",
        changes: &["create_peering hub []", "update_peering spoke [0]"],
    },
    Case {
        name: "a missing side is left missing when creation is off",
        gateway: Some("Succeeded"),
        create_missing: false,
        setup: fresh,
        pair: "not connected, a side missing",
        changes: &[],
    },
    Case {
        name: "a Disconnected pair is never written",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: |estate| {
            vnet(estate, "spoke", 1);
            estate.peer("spoke", "hub", Flags::default(), "Disconnected");
        },
        pair: "disconnected",
        changes: &[],
    },
    Case {
        name: "a converged pair needs nothing",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: transit_flags,
        pair: "connected On, hub FT, spoke FR",
        changes: &[],
    },
    Case {
        name: "a gone gateway turns transit off, spoke side first",
        gateway: None,
        create_missing: true,
        setup: transit_flags,
        pair: "connected Off, hub F, spoke F",
        changes: &["update_peering spoke []", "update_peering hub [0]"],
    },
    Case {
        name: "a gateway that is updating changes only forwarded traffic",
        gateway: Some("Updating"),
        create_missing: true,
        setup: connected,
        pair: "connected AsTheyAre, hub F, spoke F",
        changes: &["update_peering hub []", "update_peering spoke []"],
    },
    Case {
        name: "a peering out of sync is synced, with its flags",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: |estate| {
            transit_flags(estate);
            let hub_side = &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"][0];
            hub_side["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
        },
        pair: "connected On, hub FT, spoke FR, hub synced",
        changes: &["sync_peering hub []"],
    },
];

/// `connected <remote gateways>, hub <F if forwarded, T if transit>, spoke <F, R if remote
/// gateways>[, hub synced]`, or how the pair is not connected.
fn pair_summary(pair: &Pair) -> String {
    let flags = |flags: PeeringFlags| {
        let mut text = String::new();
        for (on, letter) in [
            (flags.allow_forwarded_traffic, 'F'),
            (flags.allow_gateway_transit, 'T'),
            (flags.use_remote_gateways, 'R'),
        ] {
            if on {
                text.push(letter);
            }
        }
        text
    };
    match pair {
        Pair::Disconnected => "disconnected".into(),
        Pair::NotConnected { missing: true } => "not connected, a side missing".into(),
        Pair::NotConnected { missing: false } => "not connected".into(),
        Pair::Connected(pair) => format!(
            "connected {:?}, hub {}, spoke {}{}",
            pair.remote_gateways,
            flags(pair.hub.after),
            flags(pair.spoke.after),
            if pair.hub_sync { ", hub synced" } else { "" }
        ),
    }
}

#[test]
fn each_pair_gets_its_flags_in_the_order_of_rule_3() {
    for case in CASES {
        let mut estate = hub(case.gateway);
        (case.setup)(&mut estate);
        let configure = |config: &mut PlanConfig| {
            config.create_missing_peerings = case.create_missing;
        };
        with_spokes(&estate, configure, |spokes, plan| {
            let peerings = &spokes[0].peerings;
            assert_eq!(pair_summary(&peerings.pair), case.pair, "{}", case.name);
            let changes: Vec<String> = plan
                .changes
                .iter()
                .map(|change| {
                    let vnet = change.action.vnet().map(|v| v.name().to_owned());
                    let kind = change.action.kind();
                    format!(
                        "{kind} {} {:?}",
                        vnet.unwrap_or_default(),
                        change.depends_on
                    )
                })
                .collect();
            assert_eq!(changes, case.changes, "{}", case.name);
            let mut ids = peerings.changes.clone();
            ids.sort_unstable();
            assert_eq!(ids, (0..changes.len()).collect::<Vec<_>>(), "{}", case.name);
            let synced = pair_summary(&peerings.pair).ends_with("hub synced");
            assert_eq!(peerings.sync_change, synced.then_some(0), "{}", case.name);
        });
    }
}

#[test]
fn a_new_hub_side_gets_a_name_no_peering_of_the_hub_has() {
    let mut estate = hub(Some("Succeeded"));
    fresh(&mut estate);
    vnet(&mut estate, "squatter", 2);
    // A foreign peering of the hub already has the name hubspoke would choose.
    let id = estate.peer("hub", "squatter", Flags::default(), "Initiated");
    let hub_peerings = &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"];
    hub_peerings[0]["name"] = "HUBSPOKE-spoke".into();
    hub_peerings[0]["id"] = id.replace("hub-to-squatter", "HUBSPOKE-spoke").into();
    with_spokes(
        &estate,
        |_| {},
        |_, plan| {
            let targets: Vec<String> = plan.changes.iter().map(|c| c.action.target()).collect();
            assert!(
                targets[0]
                    .ends_with("/virtualNetworks/hub/virtualNetworkPeerings/hubspoke-spoke-2"),
                "{targets:?}"
            );
        },
    );
}
