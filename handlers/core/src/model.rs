//! The observed state: what Azure says the estate looks like, read from ARM JSON exactly as
//! `GET .../providers/Microsoft.Network/<type>` returns it in `value`.
//!
//! Only what the planner needs is typed. What must be written back untouched (a subnet PUT must
//! carry everything it read; a peering PUT replaces the peering) is kept verbatim in `raw`.
//! Reading is strict about what hubspoke relies on and lenient about the rest: an unknown
//! property is kept, a malformed id or prefix is an error naming the JSON path.
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::id::{GatewayId, IdError, PeeringId, RouteId, RouteTableId, SubnetId, VnetId};

/// A document that does not have the shape ARM gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: expected {expected}, found {found}")]
pub struct ModelError {
    /// JSON path of the offending value, e.g. `$.virtualNetworks[2].properties.addressSpace`.
    pub path: String,
    /// What was expected there, in words.
    pub expected: String,
    /// What was found, shortened.
    pub found: String,
}

/// The estate as observed: every VNet, route table and gateway in scope.
///
/// Read from one JSON document by `Observed::from_snapshot`, which `snapshot.rs` defines: the
/// shapes it accepts are turned into ARM's JSON there and read by the readers below, so this
/// file knows nothing of them.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub virtual_networks: Vec<VirtualNetwork>,
    pub route_tables: Vec<RouteTable>,
    pub gateways: Vec<Gateway>,
}

/// A virtual network with its inline subnets and peerings.
#[derive(Debug, Clone)]
pub struct VirtualNetwork {
    pub id: VnetId,
    pub location: String,
    pub tags: Tags,
    pub provisioning_state: String,
    pub address_prefixes: Vec<IpNet>,
    pub subnets: Vec<Subnet>,
    pub peerings: Vec<Peering>,
}

/// A subnet, with everything ARM returned kept in `raw` for the write-back.
#[derive(Debug, Clone)]
pub struct Subnet {
    pub id: SubnetId,
    pub route_table: Option<RouteTableId>,
    /// `serviceName` of each delegation, e.g. `Microsoft.Sql/managedInstances`.
    pub delegations: Vec<String>,
    /// Ids of the ip configurations in the subnet (a gateway's show up in `GatewaySubnet`).
    pub ip_configurations: Vec<String>,
    /// The subnet object exactly as read.
    pub raw: Value,
}

/// One side of a VNet peering.
#[derive(Debug, Clone)]
pub struct Peering {
    pub id: PeeringId,
    pub remote_vnet: VnetId,
    pub flags: PeeringFlags,
    pub state: PeeringState,
    pub sync_level: SyncLevel,
    /// The remote address space as programmed on this peering.
    pub remote_address_space: Vec<IpNet>,
    /// The remote VNet's current address space (differs from the above until a sync).
    pub remote_virtual_network_address_space: Vec<IpNet>,
    pub provisioning_state: String,
    /// The peering object exactly as read.
    pub raw: Value,
}

/// The writable flags of a peering that hubspoke manages or respects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringFlags {
    pub allow_virtual_network_access: bool,
    pub allow_forwarded_traffic: bool,
    pub allow_gateway_transit: bool,
    pub use_remote_gateways: bool,
}

/// `peeringState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum PeeringState {
    Initiated,
    Connected,
    Disconnected,
}

/// `peeringSyncLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SyncLevel {
    FullyInSync,
    RemoteNotInSync,
    LocalNotInSync,
    LocalAndRemoteNotInSync,
}

impl SyncLevel {
    /// Whether this side must be re-put with `syncRemoteAddressSpace=true`.
    pub fn local_needs_sync(self) -> bool {
        matches!(
            self,
            SyncLevel::LocalNotInSync | SyncLevel::LocalAndRemoteNotInSync
        )
    }
}

/// A route table with its inline routes.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub id: RouteTableId,
    pub location: String,
    pub tags: Tags,
    pub disable_bgp_route_propagation: bool,
    pub routes: Vec<Route>,
    /// The read-only list of associated subnets (may name subnets of VNets out of scope).
    pub subnets: Vec<SubnetId>,
}

/// One route of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub id: RouteId,
    pub address_prefix: RoutePrefix,
    pub next_hop_type: String,
    pub next_hop_ip_address: Option<IpAddr>,
}

/// A route's `addressPrefix`: a CIDR or, as ARM allows, a service tag such as `AzureCloud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePrefix {
    Cidr(IpNet),
    ServiceTag(String),
}

impl fmt::Display for RoutePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutePrefix::Cidr(net) => write!(f, "{net}"),
            RoutePrefix::ServiceTag(tag) => f.write_str(tag),
        }
    }
}

/// A virtual network gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub id: GatewayId,
    /// `Vpn`, `ExpressRoute` or `LocalGateway`.
    pub gateway_type: String,
    pub sku: Option<String>,
    pub provisioning_state: String,
    /// The subnets of its ip configurations (a gateway sits in its VNet's `GatewaySubnet`).
    pub subnets: Vec<SubnetId>,
}

/// Resource tags. ARM treats tag names case-insensitively; so does `get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(pub BTreeMap<String, String>);

impl Tags {
    /// The value of tag `name`, matched ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether tag `name` is `true` (ignoring case).
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }
}

impl VirtualNetwork {
    /// Reads one VNet object as ARM returns it; `label` names it in errors (e.g. the URL read).
    pub fn from_arm(value: &Value, label: &str) -> Result<Self, ModelError> {
        VirtualNetwork::read(value, &Path::labelled(label))
    }

    fn read(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let object = as_object(value, path)?;
        let id: VnetId = parse_id(object, "id", path)?;
        let properties = properties(object, path)?;
        let props_path = path.key("properties");
        let address_space_path = props_path.key("addressSpace");
        let address_prefixes = match properties.get("addressSpace") {
            None | Some(Value::Null) => Vec::new(),
            Some(space) => {
                let space = as_object(space, &address_space_path)?;
                prefix_list(space, "addressPrefixes", &address_space_path)?
            }
        };
        let mut subnets = Vec::new();
        for (item_path, item) in array(properties, "subnets", &props_path)? {
            subnets.push(Subnet::read(item, &item_path)?);
        }
        let mut peerings = Vec::new();
        for (item_path, item) in array(properties, "virtualNetworkPeerings", &props_path)? {
            peerings.push(Peering::read(item, &item_path)?);
        }
        Ok(VirtualNetwork {
            id,
            location: optional_string(object, "location", path)?.unwrap_or_default(),
            tags: tags(object, path)?,
            provisioning_state: provisioning_state(properties, &props_path)?,
            address_prefixes,
            subnets,
            peerings,
        })
    }

    /// The subnet named `name` (case-insensitive).
    pub fn subnet(&self, name: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|subnet| subnet.id.name().eq_ignore_ascii_case(name))
    }
}

impl Subnet {
    fn read(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let object = as_object(value, path)?;
        let id: SubnetId = parse_id(object, "id", path)?;
        let props_path = path.key("properties");
        let empty = Map::new();
        let properties = match object.get("properties") {
            None | Some(Value::Null) => &empty,
            Some(properties) => as_object(properties, &props_path)?,
        };
        let route_table = match properties.get("routeTable") {
            None | Some(Value::Null) => None,
            Some(reference) => {
                let reference_path = props_path.key("routeTable");
                let reference = as_object(reference, &reference_path)?;
                Some(parse_id(reference, "id", &reference_path)?)
            }
        };
        let mut delegations = Vec::new();
        for (item_path, item) in array(properties, "delegations", &props_path)? {
            let item = as_object(item, &item_path)?;
            let item_props_path = item_path.key("properties");
            if let Some(props) = item.get("properties") {
                let props = as_object(props, &item_props_path)?;
                if let Some(name) = optional_string(props, "serviceName", &item_props_path)? {
                    delegations.push(name);
                }
            }
        }
        let mut ip_configurations = Vec::new();
        for (item_path, item) in array(properties, "ipConfigurations", &props_path)? {
            let item = as_object(item, &item_path)?;
            if let Some(id) = optional_string(item, "id", &item_path)? {
                ip_configurations.push(id);
            }
        }
        Ok(Subnet {
            id,
            route_table,
            delegations,
            ip_configurations,
            raw: value.clone(),
        })
    }

    /// Whether the subnet is delegated to `service` (case-insensitive).
    pub fn is_delegated_to(&self, service: &str) -> bool {
        self.delegations
            .iter()
            .any(|name| name.eq_ignore_ascii_case(service))
    }

    /// The gateways whose ip configurations sit in this subnet.
    pub fn gateways(&self) -> impl Iterator<Item = GatewayId> + '_ {
        self.ip_configurations
            .iter()
            .filter_map(|id| GatewayId::from_ip_configuration(id))
    }
}

impl Peering {
    fn read(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let object = as_object(value, path)?;
        let id: PeeringId = parse_id(object, "id", path)?;
        let properties = properties(object, path)?;
        let props_path = path.key("properties");
        let remote_path = props_path.key("remoteVirtualNetwork");
        let remote = properties
            .get("remoteVirtualNetwork")
            .ok_or_else(|| missing(&remote_path, "an object with the remote VNet's \"id\""))?;
        let remote_vnet = parse_id(as_object(remote, &remote_path)?, "id", &remote_path)?;
        let flag = |key: &str, default: bool| optional_bool(properties, key, &props_path, default);
        let flags = PeeringFlags {
            // ARM's default for `allowVirtualNetworkAccess` is true; the others default to false.
            allow_virtual_network_access: flag("allowVirtualNetworkAccess", true)?,
            allow_forwarded_traffic: flag("allowForwardedTraffic", false)?,
            allow_gateway_transit: flag("allowGatewayTransit", false)?,
            use_remote_gateways: flag("useRemoteGateways", false)?,
        };
        let state = match optional_string(properties, "peeringState", &props_path)?.as_deref() {
            Some(text) if text.eq_ignore_ascii_case("Connected") => PeeringState::Connected,
            Some(text) if text.eq_ignore_ascii_case("Disconnected") => PeeringState::Disconnected,
            Some(text) if text.eq_ignore_ascii_case("Initiated") => PeeringState::Initiated,
            None => PeeringState::Initiated,
            Some(other) => {
                return Err(ModelError {
                    path: props_path.key("peeringState").render(),
                    expected: "\"Initiated\", \"Connected\" or \"Disconnected\"".into(),
                    found: format!("{other:?}"),
                })
            }
        };
        let sync_level = match optional_string(properties, "peeringSyncLevel", &props_path)?
            .as_deref()
        {
            None => SyncLevel::FullyInSync,
            Some(text) if text.eq_ignore_ascii_case("FullyInSync") => SyncLevel::FullyInSync,
            Some(text) if text.eq_ignore_ascii_case("RemoteNotInSync") => {
                SyncLevel::RemoteNotInSync
            }
            Some(text) if text.eq_ignore_ascii_case("LocalNotInSync") => SyncLevel::LocalNotInSync,
            Some(text) if text.eq_ignore_ascii_case("LocalAndRemoteNotInSync") => {
                SyncLevel::LocalAndRemoteNotInSync
            }
            Some(other) => {
                return Err(ModelError {
                    path: props_path.key("peeringSyncLevel").render(),
                    expected: "\"FullyInSync\", \"RemoteNotInSync\", \"LocalNotInSync\" or \"LocalAndRemoteNotInSync\"".into(),
                    found: format!("{other:?}"),
                })
            }
        };
        let space = |key: &str| -> Result<Vec<IpNet>, ModelError> {
            let space_path = props_path.key(key);
            match properties.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(space) => prefix_list(
                    as_object(space, &space_path)?,
                    "addressPrefixes",
                    &space_path,
                ),
            }
        };
        Ok(Peering {
            id,
            remote_vnet,
            flags,
            state,
            sync_level,
            remote_address_space: space("remoteAddressSpace")?,
            remote_virtual_network_address_space: space("remoteVirtualNetworkAddressSpace")?,
            provisioning_state: provisioning_state(properties, &props_path)?,
            raw: value.clone(),
        })
    }
}

impl RouteTable {
    /// Reads one route table object as ARM returns it; `label` names it in errors.
    pub fn from_arm(value: &Value, label: &str) -> Result<Self, ModelError> {
        RouteTable::read(value, &Path::labelled(label))
    }

    fn read(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let object = as_object(value, path)?;
        let id: RouteTableId = parse_id(object, "id", path)?;
        let props_path = path.key("properties");
        let empty = Map::new();
        let properties = match object.get("properties") {
            None | Some(Value::Null) => &empty,
            Some(properties) => as_object(properties, &props_path)?,
        };
        let mut routes = Vec::new();
        for (item_path, item) in array(properties, "routes", &props_path)? {
            routes.push(Route::read(item, &item_path)?);
        }
        let mut subnets = Vec::new();
        for (item_path, item) in array(properties, "subnets", &props_path)? {
            subnets.push(parse_id(as_object(item, &item_path)?, "id", &item_path)?);
        }
        Ok(RouteTable {
            id,
            location: optional_string(object, "location", path)?.unwrap_or_default(),
            tags: tags(object, path)?,
            disable_bgp_route_propagation: optional_bool(
                properties,
                "disableBgpRoutePropagation",
                &props_path,
                false,
            )?,
            routes,
            subnets,
        })
    }
}

impl Route {
    fn read(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let object = as_object(value, path)?;
        let id: RouteId = parse_id(object, "id", path)?;
        let properties = properties(object, path)?;
        let props_path = path.key("properties");
        let prefix_text = required_string(properties, "addressPrefix", &props_path)?;
        let address_prefix = if prefix_text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && !prefix_text.contains(':')
        {
            RoutePrefix::ServiceTag(prefix_text)
        } else {
            RoutePrefix::Cidr(parse_prefix(
                &prefix_text,
                &props_path.key("addressPrefix"),
            )?)
        };
        let next_hop_ip_address =
            match optional_string(properties, "nextHopIpAddress", &props_path)? {
                None => None,
                Some(text) if text.is_empty() => None,
                Some(text) => Some(text.parse().map_err(|_| ModelError {
                    path: props_path.key("nextHopIpAddress").render(),
                    expected: "an IP address".into(),
                    found: format!("{text:?}"),
                })?),
            };
        Ok(Route {
            id,
            address_prefix,
            next_hop_type: required_string(properties, "nextHopType", &props_path)?,
            next_hop_ip_address,
        })
    }
}

impl Gateway {
    /// Reads one gateway object as ARM returns it; `label` names it in errors.
    pub fn from_arm(value: &Value, label: &str) -> Result<Self, ModelError> {
        Gateway::read(value, &Path::labelled(label))
    }

    fn read(value: &Value, path: &Path) -> Result<Self, ModelError> {
        let object = as_object(value, path)?;
        let id: GatewayId = parse_id(object, "id", path)?;
        let properties = properties(object, path)?;
        let props_path = path.key("properties");
        let sku = match properties.get("sku") {
            None | Some(Value::Null) => None,
            Some(sku) => {
                let sku_path = props_path.key("sku");
                optional_string(as_object(sku, &sku_path)?, "name", &sku_path)?
            }
        };
        let mut subnets = Vec::new();
        for (item_path, item) in array(properties, "ipConfigurations", &props_path)? {
            let item = as_object(item, &item_path)?;
            let item_props_path = item_path.key("properties");
            let Some(item_props) = item.get("properties") else {
                continue;
            };
            let item_props = as_object(item_props, &item_props_path)?;
            if let Some(subnet) = item_props.get("subnet") {
                let subnet_path = item_props_path.key("subnet");
                subnets.push(parse_id(
                    as_object(subnet, &subnet_path)?,
                    "id",
                    &subnet_path,
                )?);
            }
        }
        Ok(Gateway {
            id,
            gateway_type: optional_string(properties, "gatewayType", &props_path)?
                .unwrap_or_default(),
            sku,
            provisioning_state: provisioning_state(properties, &props_path)?,
            subnets,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading helpers: each names the JSON path of what it reads, built only when an error occurs.

/// A JSON path, as a chain of segments borrowed from the caller's stack.
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

enum Segment<'a> {
    Root(String),
    Key(&'a str),
    KeyIndex(&'a str, usize),
}

impl<'a> Path<'a> {
    #[cfg(test)]
    fn root() -> Path<'static> {
        Path {
            parent: None,
            segment: Segment::Root("$".to_owned()),
        }
    }

    fn labelled(label: &str) -> Path<'static> {
        Path {
            parent: None,
            segment: Segment::Root(label.to_owned()),
        }
    }

    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    fn render(&self) -> String {
        let mut out = match self.parent {
            Some(parent) => parent.render(),
            None => String::new(),
        };
        match &self.segment {
            Segment::Root(label) => out.push_str(label),
            Segment::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Segment::KeyIndex(key, index) => out.push_str(&format!(".{key}[{index}]")),
        }
        out
    }
}

fn describe(value: &Value) -> String {
    let text = match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => format!("the boolean {value}"),
        Value::Number(_) => format!("the number {value}"),
        Value::String(_) => format!("the string {value}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

fn mismatch(path: &Path, expected: &str, found: &Value) -> ModelError {
    ModelError {
        path: path.render(),
        expected: expected.to_owned(),
        found: describe(found),
    }
}

fn missing(path: &Path, expected: &str) -> ModelError {
    ModelError {
        path: path.render(),
        expected: expected.to_owned(),
        found: "nothing".to_owned(),
    }
}

fn as_object<'v>(value: &'v Value, path: &Path) -> Result<&'v Map<String, Value>, ModelError> {
    value
        .as_object()
        .ok_or_else(|| mismatch(path, "an object", value))
}

fn properties<'v>(
    object: &'v Map<String, Value>,
    path: &Path,
) -> Result<&'v Map<String, Value>, ModelError> {
    let props_path = path.key("properties");
    match object.get("properties") {
        Some(value) => as_object(value, &props_path),
        None => Err(missing(&props_path, "the resource's \"properties\" object")),
    }
}

fn required_string(
    object: &Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<String, ModelError> {
    optional_string(object, key, path)?.ok_or_else(|| missing(&path.key(key), "a string"))
}

fn optional_string(
    object: &Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<Option<String>, ModelError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(mismatch(&path.key(key), "a string", other)),
    }
}

fn optional_bool(
    object: &Map<String, Value>,
    key: &str,
    path: &Path,
    default: bool,
) -> Result<bool, ModelError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(mismatch(&path.key(key), "true or false", other)),
    }
}

fn provisioning_state(object: &Map<String, Value>, path: &Path) -> Result<String, ModelError> {
    Ok(optional_string(object, "provisioningState", path)?.unwrap_or_else(|| "Succeeded".into()))
}

fn array<'v, 'p>(
    object: &'v Map<String, Value>,
    key: &'p str,
    path: &'p Path<'p>,
) -> Result<Vec<(Path<'p>, &'v Value)>, ModelError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let item_path = Path {
                    parent: Some(path),
                    segment: Segment::KeyIndex(key, index),
                };
                (item_path, item)
            })
            .collect()),
        Some(other) => Err(mismatch(&path.key(key), "an array", other)),
    }
}

fn tags(object: &Map<String, Value>, path: &Path) -> Result<Tags, ModelError> {
    let tags_path = path.key("tags");
    match object.get("tags") {
        None | Some(Value::Null) => Ok(Tags::default()),
        Some(value) => {
            let mut tags = BTreeMap::new();
            for (key, value) in as_object(value, &tags_path)? {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => {
                        return Err(mismatch(&tags_path.key(key), "a string tag value", other))
                    }
                };
                tags.insert(key.clone(), text);
            }
            Ok(Tags(tags))
        }
    }
}

fn parse_id<T>(object: &Map<String, Value>, key: &str, path: &Path) -> Result<T, ModelError>
where
    T: std::str::FromStr<Err = IdError>,
{
    let id_path = path.key(key);
    let text = required_string(object, key, path)?;
    text.parse().map_err(|error: IdError| ModelError {
        path: id_path.render(),
        expected: format!("a {} id ({})", error.expected, error.reason),
        found: format!("{text:?}"),
    })
}

fn parse_prefix(text: &str, path: &Path) -> Result<IpNet, ModelError> {
    text.trim().parse::<IpNet>().map_err(|_| ModelError {
        path: path.render(),
        expected: "an IP prefix in CIDR notation (e.g. 10.1.0.0/16)".into(),
        found: format!("{text:?}"),
    })
}

fn prefix_list(
    object: &Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<Vec<IpNet>, ModelError> {
    let mut prefixes = Vec::new();
    for (item_path, item) in array(object, key, path)? {
        match item {
            Value::String(text) => prefixes.push(parse_prefix(text, &item_path)?),
            other => {
                return Err(mismatch(
                    &item_path,
                    "an IP prefix in CIDR notation (e.g. 10.1.0.0/16)",
                    other,
                ))
            }
        }
    }
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tests/fixtures/azure-rest-api-specs/network-2026-01-01/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn reads_the_published_vnet_list_example() {
        let example = fixture("VirtualNetworkListAll.json");
        let value = &example["responses"]["200"]["body"]["value"];
        let document = json!({ "virtualNetworks": value });
        let observed = Observed::from_snapshot(&document).expect("the example parses");
        assert!(!observed.virtual_networks.is_empty());
        for vnet in &observed.virtual_networks {
            assert!(!vnet.address_prefixes.is_empty(), "{:?}", vnet.id);
        }
    }

    #[test]
    fn reads_the_published_route_table_gateway_and_peering_examples() {
        let table = fixture("RouteTableGet.json");
        let table = RouteTable::from_arm(&table["responses"]["200"]["body"], "RouteTableGet")
            .expect("route table parses");
        assert_eq!(table.routes.len(), 1);
        let gateway = fixture("VirtualNetworkGatewayGet.json");
        let gateway = Gateway::from_arm(&gateway["responses"]["200"]["body"], "GatewayGet")
            .expect("gateway parses");
        assert_eq!(gateway.gateway_type, "Vpn");
        assert!(gateway.subnets[0]
            .name()
            .eq_ignore_ascii_case("GatewaySubnet"));
        let peering = fixture("VirtualNetworkPeeringGet.json");
        let peering = Peering::read(&peering["responses"]["200"]["body"], &Path::root())
            .expect("peering parses");
        assert!(peering.flags.allow_virtual_network_access);
    }

    #[test]
    fn subnets_keep_every_property_they_were_read_with() {
        let subnet = json!({
            "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/app",
            "name": "app",
            "properties": {
                "addressPrefix": "10.1.0.0/24",
                "networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/nsg"},
                "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westeurope"]}],
                "futureProperty": {"nested": [1, 2, 3]}
            }
        });
        let read = Subnet::read(&subnet, &Path::root()).expect("parses");
        assert_eq!(read.raw, subnet);
    }

    #[test]
    fn errors_name_the_json_path_and_what_was_expected() {
        let document = json!({"virtualNetworks": [
            {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/a",
             "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}},
            {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/b",
             "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/33"]}}}
        ]});
        let error = Observed::from_snapshot(&document).expect_err("bad prefix");
        assert_eq!(
            error.path,
            "$.virtualNetworks[1].properties.addressSpace.addressPrefixes[0]"
        );
        assert!(error.expected.contains("CIDR"), "{error}");
        assert!(error.found.contains("10.0.0.0/33"), "{error}");

        let error =
            Observed::from_snapshot(&json!({"virtualNetworks": {}})).expect_err("not array");
        assert_eq!(error.path, "$.virtualNetworks");

        let error =
            Observed::from_snapshot(&json!({"routeTables": [{"id": "/subscriptions/s/x"}]}))
                .expect_err("bad id");
        assert_eq!(error.path, "$.routeTables[0].id");
        assert!(error.expected.contains("route table id"), "{error}");

        let error = Observed::from_snapshot(&json!({"vnets": []})).expect_err("unknown key");
        assert_eq!(error.path, "$.vnets");
    }

    #[test]
    fn route_prefixes_may_be_service_tags() {
        let route = json!({
            "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/t/routes/kv",
            "properties": {"addressPrefix": "AzureKeyVault", "nextHopType": "Internet"}
        });
        let route = Route::read(&route, &Path::root()).expect("parses");
        assert_eq!(
            route.address_prefix,
            RoutePrefix::ServiceTag("AzureKeyVault".into())
        );
    }
}
