//! Azure Resource Manager events as Event Grid delivers them (`Microsoft.Resources.*` on a
//! subscription's system topic), in the Event Grid schema or CloudEvents 1.0, and what hubspoke
//! makes of them: which operation on which resource.
//!
//! The event carries no resource body (no flags, no address space): only the operation, the
//! target's id and the caller's claims. What the resource looks like now is read from ARM when
//! it matters (`mapping`). Unknown fields are kept, so an event survives a round trip.
//!
//! Operations watched (docs/design.md §3): writes and deletes of virtual networks, their
//! peerings and subnets, route tables and their routes, virtual network gateways, and tag writes
//! (`Microsoft.Resources/tags/write`, whose subject is `<resource>/providers/Microsoft.Resources/tags/default`).
use std::collections::BTreeMap;

use hubspoke_core::id::{GatewayId, PeeringId, RouteId, RouteTableId, SubnetId, VnetId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outcome::EventRef;

/// `eventType` of a successful write.
pub const WRITE_SUCCESS: &str = "Microsoft.Resources.ResourceWriteSuccess";
/// `eventType` of a successful delete.
pub const DELETE_SUCCESS: &str = "Microsoft.Resources.ResourceDeleteSuccess";

/// The claim holding the caller's object (principal) id.
pub const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// An event in the Event Grid schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventGridEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub subject: String,
    pub event_type: String,
    pub event_time: String,
    pub data: ResourceEventData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An event in the CloudEvents 1.0 schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub data: ResourceEventData,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The `data` of a `Microsoft.Resources.Resource*` event (the same in both schemas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceEventData {
    pub operation_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The caller's token claims: a flat map of strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An event of either schema, reduced to what hubspoke reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmEvent {
    pub id: String,
    pub event_type: String,
    /// The resource the operation targeted (`data.resourceUri`, else the subject).
    pub resource_id: String,
    pub data: ResourceEventData,
}

/// An event that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

impl ArmEvent {
    /// Reads an event object of either schema (CloudEvents when it has `specversion`).
    pub fn decode(event: &Map<String, Value>) -> Result<Self, EventError> {
        let value = Value::Object(event.clone());
        let (id, event_type, subject, data) = if event.contains_key("specversion") {
            let cloud: CloudEvent = serde_json::from_value(value)
                .map_err(|error| EventError(format!("not a CloudEvents 1.0 ARM event: {error}")))?;
            if cloud.specversion != "1.0" {
                return Err(EventError(format!(
                    "CloudEvents specversion {:?} is not 1.0",
                    cloud.specversion
                )));
            }
            (cloud.id, cloud.event_type, cloud.subject, cloud.data)
        } else {
            let grid: EventGridEvent = serde_json::from_value(value)
                .map_err(|error| EventError(format!("not an Event Grid ARM event: {error}")))?;
            (grid.id, grid.event_type, Some(grid.subject), grid.data)
        };
        let resource_id = match (&data.resource_uri, &subject) {
            (Some(uri), Some(subject)) if !uri.eq_ignore_ascii_case(subject) => {
                return Err(EventError(format!(
                    "the subject {subject:?} and data.resourceUri {uri:?} name different resources"
                )))
            }
            (Some(uri), _) => uri.clone(),
            (None, Some(subject)) => subject.clone(),
            (None, None) => {
                return Err(EventError(
                    "the event names no resource (no subject, no data.resourceUri)".into(),
                ))
            }
        };
        Ok(Self {
            id,
            event_type,
            resource_id,
            data,
        })
    }

    /// A successful write or delete (the only events acted upon).
    pub fn is_success(&self) -> bool {
        self.event_type.eq_ignore_ascii_case(WRITE_SUCCESS)
            || self.event_type.eq_ignore_ascii_case(DELETE_SUCCESS)
    }

    /// The caller's object id, from its claims.
    pub fn caller_object_id(&self) -> Option<&str> {
        self.data
            .claims
            .get(OBJECT_ID_CLAIM)
            .or_else(|| self.data.claims.get("oid"))
            .map(String::as_str)
    }

    /// The event as the outcome records it.
    pub fn reference(&self) -> EventRef {
        EventRef {
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            subject: self.resource_id.clone(),
            operation: Some(self.data.operation_name.clone()),
        }
    }
}

/// The kind of resource an operation writes or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    VirtualNetwork,
    Peering,
    Subnet,
    RouteTable,
    Route,
    Gateway,
    /// The tags of another resource.
    Tags,
}

/// A watched operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub kind: ResourceKind,
    pub delete: bool,
}

impl Operation {
    /// The operation an `operationName` stands for, if hubspoke watches it.
    pub fn parse(operation_name: &str) -> Option<Self> {
        const WATCHED: [(&str, ResourceKind); 6] = [
            (
                "Microsoft.Network/virtualNetworks",
                ResourceKind::VirtualNetwork,
            ),
            (
                "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
                ResourceKind::Peering,
            ),
            (
                "Microsoft.Network/virtualNetworks/subnets",
                ResourceKind::Subnet,
            ),
            ("Microsoft.Network/routeTables", ResourceKind::RouteTable),
            ("Microsoft.Network/routeTables/routes", ResourceKind::Route),
            (
                "Microsoft.Network/virtualNetworkGateways",
                ResourceKind::Gateway,
            ),
        ];
        if operation_name.eq_ignore_ascii_case("Microsoft.Resources/tags/write") {
            return Some(Self {
                kind: ResourceKind::Tags,
                delete: false,
            });
        }
        let (resource_type, verb) = operation_name.rsplit_once('/')?;
        let delete = if verb.eq_ignore_ascii_case("write") {
            false
        } else if verb.eq_ignore_ascii_case("delete") {
            true
        } else {
            return None;
        };
        WATCHED
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(resource_type))
            .map(|(_, kind)| Self {
                kind: *kind,
                delete,
            })
    }
}

/// A resource hubspoke may care about, parsed from an event's resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    VirtualNetwork(VnetId),
    Peering(PeeringId),
    Subnet(SubnetId),
    RouteTable(RouteTableId),
    Route(RouteId),
    Gateway(GatewayId),
}

impl Resource {
    /// Parses `id` as the resource `kind` names. For tags, the id is the tagged resource's
    /// followed by `/providers/Microsoft.Resources/tags/default`, and the tagged resource may be
    /// any of the others.
    pub fn parse(id: &str, kind: ResourceKind) -> Result<Self, EventError> {
        let bad = |error: hubspoke_core::id::IdError| EventError(error.to_string());
        Ok(match kind {
            ResourceKind::VirtualNetwork => Resource::VirtualNetwork(id.parse().map_err(bad)?),
            ResourceKind::Peering => Resource::Peering(id.parse().map_err(bad)?),
            ResourceKind::Subnet => Resource::Subnet(id.parse().map_err(bad)?),
            ResourceKind::RouteTable => Resource::RouteTable(id.parse().map_err(bad)?),
            ResourceKind::Route => Resource::Route(id.parse().map_err(bad)?),
            ResourceKind::Gateway => Resource::Gateway(id.parse().map_err(bad)?),
            ResourceKind::Tags => {
                const SUFFIX: &str = "/providers/microsoft.resources/tags/default";
                let lower = id.to_ascii_lowercase();
                let Some(tagged) = lower
                    .ends_with(SUFFIX)
                    .then(|| &id[..id.len() - SUFFIX.len()])
                else {
                    return Err(EventError(format!(
                        "{id:?} is not the tags of a resource (…/providers/Microsoft.Resources/tags/default)"
                    )));
                };
                return Self::parse_any(tagged).ok_or_else(|| {
                    EventError(format!(
                        "{tagged:?} is not a resource hubspoke reads (a virtual network, peering, subnet, route table, route or gateway)"
                    ))
                });
            }
        })
    }

    fn parse_any(id: &str) -> Option<Self> {
        [
            ResourceKind::VirtualNetwork,
            ResourceKind::Peering,
            ResourceKind::Subnet,
            ResourceKind::RouteTable,
            ResourceKind::Route,
            ResourceKind::Gateway,
        ]
        .into_iter()
        .find_map(|kind| Self::parse(id, kind).ok())
    }

    /// The subscription the resource lives in.
    pub fn subscription(&self) -> &str {
        match self {
            Resource::VirtualNetwork(id) => id.subscription(),
            Resource::Peering(id) => id.vnet().subscription(),
            Resource::Subnet(id) => id.vnet().subscription(),
            Resource::RouteTable(id) => id.subscription(),
            Resource::Route(id) => id.route_table().subscription(),
            Resource::Gateway(id) => id.subscription(),
        }
    }

    /// The VNet whose peerings or subnets are written, or the VNet itself.
    pub fn vnet(&self) -> Option<&VnetId> {
        match self {
            Resource::VirtualNetwork(id) => Some(id),
            Resource::Peering(id) => Some(id.vnet()),
            Resource::Subnet(id) => Some(id.vnet()),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/azure-rest-api-specs/eventgrid-resources-2018-01-01/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn published_events_round_trip_through_the_types() {
        for name in [
            "resource_write_success.eventgrid-schema.json",
            "resource_write_failure.eventgrid-schema.json",
            "resource_delete_success.eventgrid-schema.json",
        ] {
            let value = fixture(name);
            let event: EventGridEvent = serde_json::from_value(value.clone()).unwrap();
            let again = serde_json::to_value(&event).unwrap();
            assert_eq!(again, value, "{name}");
            let reparsed: EventGridEvent = serde_json::from_value(again).unwrap();
            assert_eq!(reparsed, event);
        }
        let value = fixture("resource_write_success.cloudevents-schema.json");
        let event: CloudEvent = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), value);
    }

    #[test]
    fn both_schemas_decode_to_the_same_event() {
        let grid = ArmEvent::decode(
            fixture("resource_write_success.eventgrid-schema.json")
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let cloud = ArmEvent::decode(
            fixture("resource_write_success.cloudevents-schema.json")
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(grid, cloud);
        assert!(grid.is_success());
        assert_eq!(
            grid.data.operation_name,
            "Microsoft.Storage/storageAccounts/write"
        );
        assert_eq!(grid.caller_object_id(), Some("{ID}"));
        assert_eq!(Operation::parse(&grid.data.operation_name), None);
    }

    #[test]
    fn watched_operations_are_recognised_whatever_their_case() {
        let cases = [
            (
                "Microsoft.Network/virtualNetworks/write",
                ResourceKind::VirtualNetwork,
                false,
            ),
            (
                "microsoft.network/virtualnetworks/delete",
                ResourceKind::VirtualNetwork,
                true,
            ),
            (
                "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
                ResourceKind::Peering,
                false,
            ),
            (
                "Microsoft.Network/virtualNetworks/subnets/delete",
                ResourceKind::Subnet,
                true,
            ),
            (
                "Microsoft.Network/routeTables/write",
                ResourceKind::RouteTable,
                false,
            ),
            (
                "Microsoft.Network/routeTables/routes/delete",
                ResourceKind::Route,
                true,
            ),
            (
                "Microsoft.Network/virtualNetworkGateways/write",
                ResourceKind::Gateway,
                false,
            ),
            ("Microsoft.Resources/tags/write", ResourceKind::Tags, false),
        ];
        for (name, kind, delete) in cases {
            assert_eq!(
                Operation::parse(name),
                Some(Operation { kind, delete }),
                "{name}"
            );
        }
        for name in [
            "Microsoft.Network/networkSecurityGroups/write",
            "Microsoft.Network/virtualNetworks/peer/action",
            "Microsoft.Resources/tags/delete",
            "write",
            "",
        ] {
            assert_eq!(Operation::parse(name), None, "{name}");
        }
    }

    #[test]
    fn tagged_resources_are_found_under_their_tags_id() {
        let vnet =
            "/subscriptions/s/resourcegroups/g/providers/Microsoft.Network/virtualNetworks/v";
        let tags = format!("{vnet}/providers/Microsoft.Resources/tags/default");
        assert_eq!(
            Resource::parse(&tags, ResourceKind::Tags).unwrap(),
            Resource::VirtualNetwork(vnet.parse().unwrap())
        );
        let storage = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a/providers/Microsoft.Resources/tags/default";
        assert!(Resource::parse(storage, ResourceKind::Tags).is_err());
        let traversal = format!("{vnet}/../other");
        assert!(Resource::parse(&traversal, ResourceKind::VirtualNetwork).is_err());
    }

    #[test]
    fn disagreeing_subject_and_resource_uri_are_refused() {
        let mut event = fixture("resource_write_success.eventgrid-schema.json");
        event["subject"] = "/subscriptions/other".into();
        let error = ArmEvent::decode(event.as_object().unwrap()).unwrap_err();
        assert!(error.0.contains("different resources"), "{error}");
    }
}
