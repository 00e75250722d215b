//! Stage 4, transit spokes (`transit.rs`): every reason a spoke is not transit, its prefixes and
//! the space it reaches directly.
use super::support::{hub, vnet, with_spokes};
use crate::plan::transit::NotTransit::{self, *};
use crate::plan::types::WarningCode;
use crate::synth::{Estate, Flags};

const TRANSIT_HUB: Flags = Flags {
    access_disabled: false,
    forwarded: true,
    gateway_transit: true,
    remote_gateways: false,
};
const TRANSIT_SPOKE: Flags = Flags {
    access_disabled: false,
    forwarded: true,
    gateway_transit: false,
    remote_gateways: true,
};

struct Case {
    name: &'static str,
    gateway: Option<&'static str>,
    create_missing: bool,
    /// Builds spoke `spoke` (10.1.0.0/16) and its peerings.
    setup: fn(&mut Estate),
    not_transit: &'static [NotTransit],
    codes: &'static [WarningCode],
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

fn own_gateway(estate: &mut Estate) {
    estate.vnet(
        "spoke",
        &["10.1.0.0/16"],
        &[
            ("default", "10.1.0.0/24"),
            ("GatewaySubnet", "10.1.255.0/27"),
        ],
    );
    estate.gateway("spoke", "spoke-gw", "Vpn", "VpnGw1", "Succeeded");
    estate.connect("hub", "spoke");
}

const CASES: &[Case] = &[
    Case {
        name: "a spoke peered from its side only becomes transit",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: fresh,
        not_transit: &[],
        codes: &[],
    },
    Case {
        name: "a missing side that is not created",
        gateway: Some("Succeeded"),
        create_missing: false,
        setup: fresh,
        not_transit: &[PeeringMissing],
        codes: &[WarningCode::SpokeNotTransit],
    },
    Case {
        name: "both sides exist, neither connected",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: |estate| {
            vnet(estate, "spoke", 1);
            estate.peer("spoke", "hub", Flags::default(), "Initiated");
            estate.peer("hub", "spoke", Flags::default(), "Initiated");
        },
        not_transit: &[PairNotConnected],
        codes: &[WarningCode::SpokeNotTransit],
    },
    Case {
        name: "a side left Disconnected",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: |estate| {
            vnet(estate, "spoke", 1);
            estate.peer("spoke", "hub", Flags::default(), "Disconnected");
        },
        not_transit: &[PeeringDisconnected],
        codes: &[WarningCode::PeeringDisconnected],
    },
    Case {
        name: "a gateway that is updating holds a new spoke back",
        gateway: Some("Updating"),
        create_missing: true,
        setup: connected,
        not_transit: &[GatewayNotReady],
        codes: &[WarningCode::GatewayNotReady],
    },
    Case {
        name: "a gateway that is updating leaves a transit spoke transit",
        gateway: Some("Updating"),
        create_missing: true,
        setup: transit_flags,
        not_transit: &[],
        codes: &[WarningCode::GatewayNotReady],
    },
    Case {
        name: "a gateway that is gone ends transit",
        gateway: None,
        create_missing: true,
        setup: transit_flags,
        not_transit: &[GatewayGone],
        codes: &[],
    },
    Case {
        name: "a spoke with its own gateway, reported once the hub's is ready",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: own_gateway,
        not_transit: &[OwnGateway],
        codes: &[WarningCode::SpokeNotTransit],
    },
    Case {
        name: "a spoke with its own gateway while the hub's is updating",
        gateway: Some("Updating"),
        create_missing: true,
        setup: own_gateway,
        not_transit: &[OwnGateway, GatewayNotReady],
        codes: &[WarningCode::GatewayNotReady],
    },
    Case {
        name: "access disabled on the spoke side",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: |estate| {
            vnet(estate, "spoke", 1);
            estate.peer("hub", "spoke", TRANSIT_HUB, "Connected");
            let flags = Flags {
                access_disabled: true,
                ..TRANSIT_SPOKE
            };
            estate.peer("spoke", "hub", flags, "Connected");
        },
        not_transit: &[AccessDisabled],
        codes: &[WarningCode::AccessDisabled],
    },
    Case {
        name: "another peering of the spoke uses remote gateways",
        gateway: Some("Succeeded"),
        create_missing: true,
        setup: |estate| {
            vnet(estate, "spoke", 1);
            vnet(estate, "other", 2);
            estate.connect("hub", "spoke");
            estate.peer("spoke", "other", TRANSIT_SPOKE, "Connected");
            estate.peer("other", "spoke", TRANSIT_HUB, "Connected");
        },
        not_transit: &[RemoteGatewaysUsedElsewhere],
        codes: &[WarningCode::SpokeNotTransit],
    },
];

#[test]
fn every_reason_a_spoke_is_not_transit_is_named_and_reported() {
    for case in CASES {
        let mut estate = hub(case.gateway);
        (case.setup)(&mut estate);
        let configure = |config: &mut crate::config::PlanConfig| {
            config.create_missing_peerings = case.create_missing;
        };
        with_spokes(&estate, configure, |spokes, plan| {
            assert_eq!(spokes.len(), 1, "{}", case.name);
            let transit = &spokes[0].transit;
            assert_eq!(transit.not_transit, case.not_transit, "{}", case.name);
            assert_eq!(transit.is_transit(), case.not_transit.is_empty());
            let codes: Vec<WarningCode> = plan.warnings.iter().map(|w| w.code).collect();
            assert_eq!(codes, case.codes, "{}", case.name);
        });
    }
}

#[test]
fn prefixes_are_the_programmed_ipv4_space_and_direct_space_what_needs_no_route() {
    let mut estate = hub(Some("Succeeded"));
    estate.vnet(
        "spoke",
        &["10.1.0.0/16", "fd00::/48"],
        &[("default", "10.1.0.0/24")],
    );
    estate.vnet("neighbour", &["10.9.0.0/16"], &[("default", "10.9.0.0/24")]);
    estate.connect("hub", "spoke");
    estate.connect("spoke", "neighbour");
    // The spoke grew since the hub side was programmed: the hub side syncs it (rule 4).
    estate.vnet_mut("spoke")["properties"]["addressSpace"]["addressPrefixes"] =
        serde_json::json!(["10.1.0.0/16", "10.2.0.0/16", "fd00::/48"]);
    let hub_side = &mut estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"][0];
    hub_side["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
    hub_side["properties"]["remoteVirtualNetworkAddressSpace"]["addressPrefixes"] =
        serde_json::json!(["10.1.0.0/16", "10.2.0.0/16", "fd00::/48"]);
    with_spokes(
        &estate,
        |_| {},
        |spokes, plan| {
            let transit = &spokes[0].transit;
            let prefixes: Vec<String> = transit.prefixes.iter().map(|p| p.to_string()).collect();
            assert_eq!(prefixes, ["10.1.0.0/16", "10.2.0.0/16"]);
            let direct: Vec<String> = transit.direct.iter().map(|p| p.to_string()).collect();
            assert_eq!(
                direct,
                [
                    "10.0.0.0/16",
                    "10.1.0.0/16",
                    "10.2.0.0/16",
                    "10.9.0.0/16",
                    "fd00::/48"
                ]
            );
            let codes: Vec<WarningCode> = plan.warnings.iter().map(|w| w.code).collect();
            assert_eq!(codes, [WarningCode::Ipv6Skipped]);
        },
    );
}
