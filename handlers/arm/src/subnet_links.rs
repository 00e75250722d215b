//! What a subnet PUT links to, and the action Azure checks on each linked resource.
//!
//! hubspoke associates a route table with a subnet by sending the subnet back exactly as read
//! with only `routeTable` set (design §2 rule 6): a PUT replaces the whole subnet, so leaving
//! anything out would remove it. Azure checks that the caller may join every resource the body
//! references — not only the route table that changed — and answers `LinkedAuthorizationFailed`
//! naming the action it missed (design §6). So the custom role of `infra/` must grant exactly
//! the actions of [`SUBNET_LINKS`]: its test reads the role, and another test checks this list
//! against every writable property of the subnet in the REST API specification.
use std::collections::BTreeSet;

use serde_json::Value;

/// A property of a subnet's `properties` that links to another resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetLink {
    /// The property, as ARM names it.
    pub property: &'static str,
    /// The action checked on what it references.
    pub action: &'static str,
}

/// Every property of a subnet that makes a PUT check an action on another resource. The
/// Microsoft.Network operations catalogue names the actions; the subnet's properties are those of
/// `SubnetPropertiesFormat` in the REST API specification.
pub const SUBNET_LINKS: [SubnetLink; 8] = [
    SubnetLink {
        property: "routeTable",
        action: "Microsoft.Network/routeTables/join/action",
    },
    SubnetLink {
        property: "networkSecurityGroup",
        action: "Microsoft.Network/networkSecurityGroups/join/action",
    },
    SubnetLink {
        property: "natGateway",
        action: "Microsoft.Network/natGateways/join/action",
    },
    SubnetLink {
        property: "serviceEndpointPolicies",
        action: "Microsoft.Network/serviceEndpointPolicies/join/action",
    },
    // A service endpoint is checked on the subnet itself.
    SubnetLink {
        property: "serviceEndpoints",
        action: "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
    },
    SubnetLink {
        property: "ipAllocations",
        action: "Microsoft.Network/IpAllocations/join/action",
    },
    // Address pools of Virtual Network Manager's IP address management.
    SubnetLink {
        property: "ipamPoolPrefixAllocations",
        action: "Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action",
    },
    // Some delegations make Azure apply network intent policies to the subnet, whose join is
    // then checked on every PUT of it.
    SubnetLink {
        property: "delegations",
        action: "Microsoft.Network/networkIntentPolicies/join/action",
    },
];

/// The writable properties of a subnet that link to nothing: hubspoke carries them as read and
/// no other resource is checked for them. With [`SUBNET_LINKS`] they are every writable property.
pub const UNLINKED_PROPERTIES: [&str; 7] = [
    "addressPrefix",
    "addressPrefixes",
    "privateEndpointNetworkPolicies",
    "privateLinkServiceNetworkPolicies",
    "applicationGatewayIPConfigurations",
    "sharingScope",
    "defaultOutboundAccess",
];

/// The actions a PUT of `subnet` (as ARM returns it, with `properties`) is checked for: one per
/// linking property that is present and not empty.
pub fn required_actions(subnet: &Value) -> BTreeSet<&'static str> {
    let properties = &subnet["properties"];
    SUBNET_LINKS
        .iter()
        .filter(|link| match &properties[link.property] {
            Value::Null => false,
            Value::Array(items) => !items.is_empty(),
            Value::Object(object) => !object.is_empty(),
            _ => true,
        })
        .map(|link| link.action)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_subnet_needs_the_join_of_everything_it_references_and_nothing_else() {
        let subnet = json!({"properties": {
            "addressPrefix": "10.1.0.0/24",
            "networkSecurityGroup": {"id": "/s/nsg"},
            "routeTable": {"id": "/s/rt"},
            "serviceEndpoints": [],
            "delegations": [],
        }});
        assert_eq!(
            required_actions(&subnet),
            BTreeSet::from([
                "Microsoft.Network/networkSecurityGroups/join/action",
                "Microsoft.Network/routeTables/join/action",
            ])
        );
    }

    #[test]
    fn every_writable_property_of_a_subnet_is_known_to_link_or_not() {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/azure-rest-api-specs/network-2026-01-01/virtualNetwork.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let properties = spec["definitions"]["SubnetPropertiesFormat"]["properties"]
            .as_object()
            .unwrap();
        let writable: BTreeSet<&str> = properties
            .iter()
            .filter(|(_, schema)| schema["readOnly"] != json!(true))
            .map(|(name, _)| name.as_str())
            .collect();
        let known: BTreeSet<&str> = SUBNET_LINKS
            .iter()
            .map(|link| link.property)
            .chain(UNLINKED_PROPERTIES)
            .collect();
        assert_eq!(writable, known);
    }

    #[test]
    fn the_role_of_infra_grants_exactly_the_actions_a_subnet_put_is_checked_for() {
        let role = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/modules/network-role.bicep"
        ))
        .unwrap();
        // The role's actions are single-quoted strings, one per line, in `var actions = [...]`.
        let granted: BTreeSet<String> = role
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("'Microsoft.Network/"))
            .map(|line| line.trim_matches('\'').to_string())
            .filter(|action| {
                action.ends_with("/join/action")
                    || action.ends_with("/joinViaServiceEndpoint/action")
                    || action.ends_with("/associateResourcesToPool/action")
            })
            .collect();
        let needed: BTreeSet<String> = SUBNET_LINKS
            .iter()
            .map(|link| link.action.to_string())
            .collect();
        assert_eq!(granted, needed);
    }
}
