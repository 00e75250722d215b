//! The hub checks (`docs/design.md` section 2, rule 14): read-only warnings about the hub's
//! `GatewaySubnet`, run once the transit stage knows the spokes' prefixes.

use ipnet::IpNet;
use serde_json::json;

use super::builder::Builder;
use super::index::Index;
use super::next_hop::is_appliance;
use super::spokes::Spoke;
use super::types::WarningCode;
use crate::model::{RoutePrefix, VirtualNetwork};

/// Hub checks (rule 14), read-only.
pub(super) fn hub_checks(
    index: &Index,
    hub: &VirtualNetwork,
    spokes: &[Spoke],
    builder: &mut Builder,
) {
    let Some(gateway_subnet) = hub.subnet("GatewaySubnet") else {
        return;
    };
    let Some(table_id) = &gateway_subnet.route_table else {
        return;
    };
    let Some(table) = index.table(table_id) else {
        return;
    };
    if table.disable_bgp_route_propagation {
        builder.warn(
            WarningCode::HubGatewaySubnet,
            table.id.to_string(),
            "the hub's GatewaySubnet uses a route table with BGP route propagation disabled: the gateway stops working".into(),
            json!({ "detail": "bgp_propagation_disabled" }),
        );
    }
    for route in &table.routes {
        let RoutePrefix::Cidr(prefix) = route.address_prefix else {
            continue;
        };
        if !is_appliance(&route.next_hop_type) {
            continue;
        }
        let hits: Vec<String> = spokes
            .iter()
            .flat_map(|spoke| spoke.transit.prefixes.iter())
            .filter(|p| overlaps(&prefix, &IpNet::V4(**p)))
            .map(|p| p.to_string())
            .collect();
        if !hits.is_empty() {
            builder.warn(
                WarningCode::HubGatewaySubnet,
                route.id.to_string(),
                "the hub's GatewaySubnet sends spoke prefixes to an appliance, so spoke-to-spoke traffic would not go straight back through the gateway".into(),
                json!({ "detail": "spoke_prefixes_to_appliance", "prefixes": hits }),
            );
        }
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}
