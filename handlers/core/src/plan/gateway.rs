//! The hub's gateway: what it allows for transit and for routes (`docs/design.md` section 1).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{Builder, Index, WarningCode};
use crate::id::GatewayId;
use crate::model::{Gateway, VirtualNetwork};

/// What the hub's gateway allows, per `docs/design.md` section 1.
pub(super) struct GatewayView {
    /// `GatewaySubnet` holds no gateway and no gateway of the hub was found.
    pub(super) gone: bool,
    /// A gateway in `GatewaySubnet` is `Succeeded` and not of the `Basic` SKU.
    pub(super) ready_for_transit: bool,
    /// Definitively unfit for routes: an ExpressRoute gateway (alone or beside a VPN one).
    pub(super) unfit_for_routes: bool,
}

pub(super) fn assess_gateway(
    index: &Index,
    hub: &VirtualNetwork,
    builder: &mut Builder,
) -> GatewayView {
    let gateway_subnet = hub.subnet("GatewaySubnet");
    let mut referenced: BTreeSet<GatewayId> = gateway_subnet
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
    let unreadable: Vec<GatewayId> = referenced.into_iter().collect();
    let present: Vec<GatewayId> = found
        .iter()
        .map(|gateway| gateway.id.clone())
        .chain(unreadable.iter().cloned())
        .collect();
    if present.is_empty() {
        return GatewayView {
            gone: true,
            ready_for_transit: false,
            unfit_for_routes: false,
        };
    }
    let succeeded = |gateway: &&Gateway| {
        gateway.provisioning_state.eq_ignore_ascii_case("Succeeded")
            && !gateway
                .sku
                .as_deref()
                .is_some_and(|sku| sku.eq_ignore_ascii_case("Basic"))
    };
    let is_type = |gateway: &&Gateway, kind: &str| gateway.gateway_type.eq_ignore_ascii_case(kind);
    let ready_for_transit = found.iter().any(succeeded);
    let express_route = found.iter().any(|g| is_type(g, "ExpressRoute"));
    let vpn = found.iter().any(|g| is_type(g, "Vpn"));
    let unfit_for_routes = express_route || (!vpn && unreadable.is_empty() && !found.is_empty());
    if !ready_for_transit {
        let states: Vec<Value> = found
            .iter()
            .map(|gateway| {
                json!({
                    "gateway": gateway.id.to_string(),
                    "provisioningState": gateway.provisioning_state,
                    "sku": gateway.sku,
                })
            })
            .chain(unreadable.iter().map(|id| {
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
    if unfit_for_routes {
        builder.warn(
            WarningCode::GatewayNotVpn,
            hub.id.to_string(),
            "a user-defined route can only name a VPN gateway that has no ExpressRoute gateway beside it; hubspoke writes no routes for this hub and removes its own".into(),
            json!({ "gateways": found.iter().map(|g| json!({"gateway": g.id.to_string(), "gatewayType": g.gateway_type})).collect::<Vec<_>>() }),
        );
    }
    GatewayView {
        gone: false,
        ready_for_transit,
        unfit_for_routes,
    }
}
