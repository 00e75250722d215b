//! Effective routes: the routes Azure applies to the traffic leaving a subnet, in the shape of
//! a network interface's effective route table (`POST …/networkInterfaces/{nic}/
//! effectiveRouteTable`, `EffectiveRoute` in the Network REST API): a source (`Default`, `User`,
//! or `VirtualNetworkGateway` for a route learned over BGP), a state (`Active` or `Invalid`),
//! address prefixes and a next hop. The model's routes (`subnet_routes.rs`) and Azure's own
//! (read here from its JSON) are both of this type, so that one selection (`select.rs`) reads
//! both.
use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::id::VnetId;

/// Where a route comes from. Ordered by Azure's preference at equal prefixes: a user route over
/// a BGP route over a system route ("Virtual network traffic routing", "How Azure selects a
/// route").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteSource {
    /// A system route (`Default`).
    System,
    /// Learned over BGP through a gateway (`VirtualNetworkGateway`).
    Bgp,
    /// A route of the subnet's route table (`User`).
    User,
}

impl RouteSource {
    /// The source as Azure lists it.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::System => "Default",
            RouteSource::Bgp => "VirtualNetworkGateway",
            RouteSource::User => "User",
        }
    }
}

/// What a next hop does with traffic, as far as a spoke pair is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HopKind {
    /// Within the VNet's own space (`VnetLocal`).
    VnetLocal,
    /// To a peered VNet (`VNetPeering`, `VNetGlobalPeering`).
    VnetPeering,
    /// A service endpoint (`VirtualNetworkServiceEndpoint`).
    ServiceEndpoint,
    Internet,
    VirtualNetworkGateway,
    /// An appliance the user names (`VirtualAppliance`, `VirtualApplianceEcmp`).
    VirtualAppliance,
    /// Dropped (`None`).
    Drop,
    /// Any other next hop type Azure may list.
    Other,
}

impl HopKind {
    /// Reads a next hop type as Azure spells it (ignoring case).
    pub fn parse(text: &str) -> HopKind {
        // The routes hubspoke writes, by far the most common: no search.
        if text == "VirtualNetworkGateway" {
            return HopKind::VirtualNetworkGateway;
        }
        const KINDS: [(&str, HopKind); 10] = [
            ("VnetLocal", HopKind::VnetLocal),
            ("VNetPeering", HopKind::VnetPeering),
            ("VNetGlobalPeering", HopKind::VnetPeering),
            ("VirtualNetworkServiceEndpoint", HopKind::ServiceEndpoint),
            ("Internet", HopKind::Internet),
            ("VirtualNetworkGateway", HopKind::VirtualNetworkGateway),
            ("VirtualAppliance", HopKind::VirtualAppliance),
            ("VirtualApplianceEcmp", HopKind::VirtualAppliance),
            ("None", HopKind::Drop),
            ("Drop", HopKind::Drop),
        ];
        KINDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
            .map_or(HopKind::Other, |(_, kind)| *kind)
    }

    /// The system routes Azure prefers over BGP routes even when those are more specific: the
    /// VNet's own space, its peerings and its service endpoints ("How Azure selects a route").
    pub fn is_vnet_system(self) -> bool {
        matches!(
            self,
            HopKind::VnetLocal | HopKind::VnetPeering | HopKind::ServiceEndpoint
        )
    }
}

/// One effective route, for one prefix (Azure lists several prefixes per route; each is read as
/// a route of its own, which selects the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRoute<'a> {
    pub source: RouteSource,
    /// `Active`; an `Invalid` route (e.g. a gateway next hop without a gateway, or a system route
    /// a user route repeats exactly) is listed and never selected.
    pub active: bool,
    pub prefix: IpNet,
    pub hop: HopKind,
    /// The next hop type as listed (`VirtualApplianceEcmp`, `VNetGlobalPeering`...).
    pub hop_type: Cow<'a, str>,
    pub next_hop_ip: Option<IpAddr>,
    /// The route's name, for a user route.
    pub name: Option<Cow<'a, str>>,
    /// For a peering route of the model: the peered VNet (Azure's list does not say).
    pub peer: Option<VnetId>,
}

impl<'a> EffectiveRoute<'a> {
    /// A route of the model.
    pub(crate) fn new(source: RouteSource, prefix: IpNet, hop_type: Cow<'a, str>) -> Self {
        EffectiveRoute {
            source,
            active: true,
            prefix: prefix.trunc(),
            hop: HopKind::parse(&hop_type),
            hop_type,
            next_hop_ip: None,
            name: None,
            peer: None,
        }
    }

    /// Reads an effective route table as Azure answers it (`{"value": [EffectiveRoute...]}`, or
    /// the array itself). Prefixes that are not CIDR (service tags) hold no address the model can
    /// name and are left out; an unknown next hop type is kept as [`HopKind::Other`].
    pub fn from_azure(answer: &Value) -> Result<Vec<EffectiveRoute<'static>>, String> {
        let list = match answer {
            Value::Array(items) => items,
            Value::Object(object) => match object.get("value") {
                Some(Value::Array(items)) => items,
                _ => return Err("the answer has no \"value\" array of routes".into()),
            },
            _ => return Err("the answer is neither an object nor an array".into()),
        };
        let mut routes = Vec::new();
        for (position, item) in list.iter().enumerate() {
            read_route(item, &mut routes).map_err(|error| format!("route {position}: {error}"))?;
        }
        Ok(routes)
    }
}

/// Reads one listed route into one route per CIDR prefix.
fn read_route(item: &Value, routes: &mut Vec<EffectiveRoute<'static>>) -> Result<(), String> {
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    let source = match text("source") {
        Some(s) if s.eq_ignore_ascii_case("User") => RouteSource::User,
        Some(s) if s.eq_ignore_ascii_case("VirtualNetworkGateway") => RouteSource::Bgp,
        Some(_) | None => RouteSource::System,
    };
    let active = text("state").is_none_or(|state| state.eq_ignore_ascii_case("Active"));
    let hop_type = text("nextHopType").ok_or("no nextHopType")?;
    let next_hop_ip = item
        .get("nextHopIpAddress")
        .and_then(Value::as_array)
        .and_then(|ips| ips.first())
        .and_then(Value::as_str)
        .and_then(|ip| ip.trim().parse().ok());
    let prefixes: Vec<&str> = match item.get("addressPrefix") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(prefix)) => vec![prefix.as_str()],
        _ => return Err("no addressPrefix".into()),
    };
    for prefix in prefixes {
        let Ok(prefix) = prefix.trim().parse::<IpNet>() else {
            continue;
        };
        let mut route = EffectiveRoute::new(source, prefix, Cow::Owned(hop_type.to_owned()));
        route.active = active;
        route.next_hop_ip = next_hop_ip;
        route.name = text("name").map(|name| Cow::Owned(name.to_owned()));
        routes.push(route);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn azure_lists_are_read_one_route_per_cidr_prefix() {
        let answer = json!({"value": [
            {"source": "Default", "state": "Active", "addressPrefix": ["10.1.0.0/16", "fd00::/64"],
             "nextHopType": "VnetLocal", "nextHopIpAddress": []},
            {"source": "User", "state": "Invalid", "addressPrefix": ["10.2.0.0/16"],
             "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": [], "name": "r"},
            {"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": ["192.168.0.0/16"],
             "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": ["10.0.0.4"]},
            {"source": "User", "state": "Active", "addressPrefix": ["AzureCloud"],
             "nextHopType": "Internet"},
            {"source": "User", "addressPrefix": ["0.0.0.0/0"], "nextHopType": "VirtualApplianceEcmp",
             "nextHopIpAddress": ["10.0.1.4"]}
        ]});
        let routes = EffectiveRoute::from_azure(&answer).unwrap();
        assert_eq!(routes.len(), 5, "{routes:#?}");
        assert_eq!(routes[1].prefix.to_string(), "fd00::/64");
        assert!(!routes[2].active);
        assert_eq!(routes[2].name.as_deref(), Some("r"));
        assert_eq!(routes[3].source, RouteSource::Bgp);
        assert_eq!(routes[4].hop, HopKind::VirtualAppliance);
        assert_eq!(routes[4].next_hop_ip, Some("10.0.1.4".parse().unwrap()));
        assert!(EffectiveRoute::from_azure(&json!({"routes": []})).is_err());
        assert!(EffectiveRoute::from_azure(&json!([{"source": "User"}])).is_err());
    }

    #[test]
    fn hop_types_are_read_ignoring_case() {
        assert_eq!(HopKind::parse("vnetlocal"), HopKind::VnetLocal);
        assert_eq!(HopKind::parse("VNetGlobalPeering"), HopKind::VnetPeering);
        assert_eq!(HopKind::parse("None"), HopKind::Drop);
        assert_eq!(HopKind::parse("HyperNetGateway"), HopKind::Other);
        assert!(RouteSource::User > RouteSource::Bgp && RouteSource::Bgp > RouteSource::System);
    }
}
