//! Stage 1, gateway readiness: what the hub's gateway allows (`docs/design.md` section 1,
//! *gateway*): transit flags go on only when it is ready and off only when it is gone (rule 3),
//! and routes are written only through a VPN gateway with no ExpressRoute gateway beside it
//! (rule 11: otherwise every managed route of the hub is stale).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::builder::Builder;
use super::index::Index;
use super::types::WarningCode;
use crate::id::GatewayId;
use crate::model::{Gateway, VirtualNetwork};

/// What the hub's gateway allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GatewayReadiness {
    /// `GatewaySubnet` holds no gateway and no gateway of the hub was found.
    pub(crate) gone: bool,
    /// A gateway in `GatewaySubnet` is `Succeeded` and not of the `Basic` SKU.
    pub(crate) ready_for_transit: bool,
    /// Definitively unfit for routes: an ExpressRoute gateway (alone or beside a VPN one).
    pub(crate) unfit_for_routes: bool,
}

impl GatewayReadiness {
    /// Whether managed routes may be desired at all (rule 11: not when the gateway is gone or
    /// unfit for routes).
    pub(crate) fn routes_allowed(&self) -> bool {
        !self.gone && !self.unfit_for_routes
    }
}

/// The hub's gateways: those found, and those its `GatewaySubnet` names that were not readable.
struct HubGateways<'o> {
    found: Vec<&'o Gateway>,
    unreadable: Vec<GatewayId>,
}

/// Stage 1: the readiness of `hub`'s gateway, reported as `gateway_not_ready` (neither ready
/// nor gone) or `gateway_not_vpn` (unfit for routes).
pub(crate) fn gateway_readiness(
    index: &Index,
    hub: &VirtualNetwork,
    builder: &mut Builder,
) -> GatewayReadiness {
    let gateways = hub_gateways(index, hub);
    let readiness = readiness(&gateways);
    report(hub, &gateways, readiness, builder);
    readiness
}

/// The gateways that sit in the hub's `GatewaySubnet`, as either side says.
fn hub_gateways<'o>(index: &Index<'o>, hub: &VirtualNetwork) -> HubGateways<'o> {
    let mut referenced: BTreeSet<GatewayId> = hub
        .subnet("GatewaySubnet")
        .map(|subnet| subnet.gateways().collect())
        .unwrap_or_default();
    let found: Vec<&Gateway> = index
        .gateways
        .iter()
        .copied()
        .filter(|gateway| {
            referenced.contains(&gateway.id)
                || gateway.subnets.iter().any(|subnet| {
                    subnet.vnet() == &hub.id && subnet.name().eq_ignore_ascii_case("GatewaySubnet")
                })
        })
        .collect();
    for gateway in &found {
        referenced.remove(&gateway.id);
    }
    HubGateways {
        found,
        unreadable: referenced.into_iter().collect(),
    }
}

fn readiness(gateways: &HubGateways) -> GatewayReadiness {
    let HubGateways { found, unreadable } = gateways;
    if found.is_empty() && unreadable.is_empty() {
        return GatewayReadiness {
            gone: true,
            ready_for_transit: false,
            unfit_for_routes: false,
        };
    }
    let is_type = |gateway: &&Gateway, kind: &str| gateway.gateway_type.eq_ignore_ascii_case(kind);
    let express_route = found.iter().any(|g| is_type(g, "ExpressRoute"));
    let vpn = found.iter().any(|g| is_type(g, "Vpn"));
    GatewayReadiness {
        gone: false,
        ready_for_transit: found.iter().any(|gateway| ready_for_transit(gateway)),
        // A gateway not readable may be the VPN one: only what was read can make it unfit.
        unfit_for_routes: express_route || (!vpn && unreadable.is_empty() && !found.is_empty()),
    }
}

/// `Succeeded` and not of the `Basic` SKU.
fn ready_for_transit(gateway: &Gateway) -> bool {
    gateway.provisioning_state.eq_ignore_ascii_case("Succeeded")
        && !gateway
            .sku
            .as_deref()
            .is_some_and(|sku| sku.eq_ignore_ascii_case("Basic"))
}

fn report(
    hub: &VirtualNetwork,
    gateways: &HubGateways,
    readiness: GatewayReadiness,
    builder: &mut Builder,
) {
    if readiness.gone {
        return;
    }
    if !readiness.ready_for_transit {
        let states: Vec<Value> = gateways
            .found
            .iter()
            .map(|gateway| {
                json!({
                    "gateway": gateway.id.to_string(),
                    "provisioningState": gateway.provisioning_state,
                    "sku": gateway.sku,
                })
            })
            .chain(gateways.unreadable.iter().map(|id| {
                json!({"gateway": id.to_string(), "provisioningState": "unknown (not readable)"})
            }))
            .collect();
        builder.warn(
            WarningCode::GatewayNotReady,
            hub.id.to_string(),
            "the hub's gateway is not ready for transit (it must be Succeeded and not of the Basic SKU); flags that depend on it stay as they are and new spokes wait".into(),
            json!({ "gateways": states }),
        );
    }
    if readiness.unfit_for_routes {
        builder.warn(
            WarningCode::GatewayNotVpn,
            hub.id.to_string(),
            "a user-defined route can only name a VPN gateway that has no ExpressRoute gateway beside it; hubspoke writes no routes for this hub and removes its own".into(),
            json!({ "gateways": gateways.found.iter().map(|g| json!({"gateway": g.id.to_string(), "gatewayType": g.gateway_type})).collect::<Vec<_>>() }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PlanConfig;
    use crate::model::Observed;
    use crate::synth::Estate;

    /// The hub's readiness and warning codes, for an estate built by `setup`.
    fn assess(setup: impl Fn(&mut Estate)) -> (GatewayReadiness, Vec<WarningCode>) {
        let mut estate = Estate::default();
        estate.hub("hub", "10.0.0.0/16", "10.0.0.0/27", None);
        setup(&mut estate);
        let observed = Observed::from_snapshot(&estate.snapshot()).expect("snapshot");
        let hub_id = estate.vnet_id("hub").parse().expect("hub id");
        let config = PlanConfig::new(vec![hub_id]);
        let index = Index::new(&config, &observed);
        let hub = index.vnet(&config.hubs[0]).expect("hub");
        let mut builder = Builder::default();
        let readiness = gateway_readiness(&index, hub, &mut builder);
        let codes = builder.finish(config.hubs[0].clone()).warnings;
        (readiness, codes.iter().map(|w| w.code).collect())
    }

    #[test]
    fn readiness_follows_state_sku_and_type() {
        use WarningCode::{GatewayNotReady as NotReady, GatewayNotVpn as NotVpn};
        // (gateways as (type, sku, state), gone, ready for transit, unfit for routes, codes)
        type Case = (
            &'static [(&'static str, &'static str, &'static str)],
            bool,
            bool,
            bool,
            &'static [WarningCode],
        );
        let cases: &[Case] = &[
            (&[], true, false, false, &[]),
            (&[("Vpn", "VpnGw1", "Succeeded")], false, true, false, &[]),
            (
                &[("Vpn", "VpnGw1", "Updating")],
                false,
                false,
                false,
                &[NotReady],
            ),
            (
                &[("Vpn", "VpnGw1", "Failed")],
                false,
                false,
                false,
                &[NotReady],
            ),
            (
                &[("Vpn", "Basic", "Succeeded")],
                false,
                false,
                false,
                &[NotReady],
            ),
            (
                &[("ExpressRoute", "Standard", "Succeeded")],
                false,
                true,
                true,
                &[NotVpn],
            ),
            (
                &[
                    ("Vpn", "VpnGw1", "Succeeded"),
                    ("ExpressRoute", "Standard", "Succeeded"),
                ],
                false,
                true,
                true,
                &[NotVpn],
            ),
            (
                &[("ExpressRoute", "Standard", "Updating")],
                false,
                false,
                true,
                &[NotReady, NotVpn],
            ),
        ];
        for (gateways, gone, ready, unfit, codes) in cases {
            let (readiness, got) = assess(|estate| {
                for (n, (kind, sku, state)) in gateways.iter().enumerate() {
                    estate.gateway("hub", &format!("gw{n}"), kind, sku, state);
                }
            });
            let expected = GatewayReadiness {
                gone: *gone,
                ready_for_transit: *ready,
                unfit_for_routes: *unfit,
            };
            assert_eq!(readiness, expected, "{gateways:?}");
            assert_eq!(&got, codes, "{gateways:?}");
            assert_eq!(readiness.routes_allowed(), !gone && !unfit);
        }
    }

    #[test]
    fn a_gateway_named_by_the_subnet_but_not_readable_is_neither_ready_nor_gone() {
        let (readiness, codes) = assess(|estate| {
            estate.gateway("hub", "gw", "Vpn", "VpnGw1", "Succeeded");
            estate.gateways.clear();
        });
        let expected = GatewayReadiness {
            gone: false,
            ready_for_transit: false,
            unfit_for_routes: false,
        };
        assert_eq!(readiness, expected);
        assert_eq!(codes, [WarningCode::GatewayNotReady]);
    }
}
