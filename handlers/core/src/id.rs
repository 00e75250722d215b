//! Typed Azure resource ids.
//!
//! Ids are parsed once, at the edge, into newtypes that round-trip through `Display`/`FromStr`
//! and compare case-insensitively, as Azure Resource Manager does (events say `resourcegroups`,
//! ARM says `resourceGroups`, users type either). `Display` always prints the canonical casing
//! of the fixed segments and the caller's casing of the names, so a parsed id prints as ARM
//! prints it.
//!
//! These are ids of the resources hubspoke reads and writes; anything else (an NSG, a NAT
//! gateway, a load balancer) is kept as the string ARM gave, inside the raw JSON that is written
//! back untouched.
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A name inside a resource id: keeps the caller's casing, compares and hashes ignoring ASCII
/// case.
#[derive(Clone)]
pub struct Name(String);

impl Name {
    fn new(text: &str) -> Self {
        Name(text.to_owned())
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Lower-cased eight bytes at a time: ids are hashed on the planner's hot path.
        let mut chunks = self.0.as_bytes().chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            for (slot, byte) in word.iter_mut().zip(chunk) {
                *slot = byte.to_ascii_lowercase();
            }
            state.write_u64(u64::from_le_bytes(word));
        }
        let mut tail = [0u8; 8];
        for (slot, byte) in tail.iter_mut().zip(chunks.remainder()) {
            *slot = byte.to_ascii_lowercase();
        }
        state.write_u64(u64::from_le_bytes(tail));
        state.write_usize(self.0.len());
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        let left = self.0.bytes().map(|b| b.to_ascii_lowercase());
        let right = other.0.bytes().map(|b| b.to_ascii_lowercase());
        left.cmp(right)
    }
}
impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A resource id that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {expected} id {id:?}: {reason}")]
pub struct IdError {
    /// The text that was given.
    pub id: String,
    /// What kind of id was expected, in words ("virtual network", "route").
    pub expected: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The segments of a `Microsoft.Network` resource id:
/// `/subscriptions/S/resourceGroups/G/providers/Microsoft.Network/TYPE/NAME[/CHILD_TYPE/CHILD]`.
struct Segments<'a> {
    subscription: &'a str,
    resource_group: &'a str,
    type_and_names: Vec<&'a str>,
}

fn split_network_id<'a>(text: &'a str, expected: &'static str) -> Result<Segments<'a>, IdError> {
    let fail = |reason: &str| IdError {
        id: text.to_owned(),
        expected,
        reason: reason.to_owned(),
    };
    let rest = text
        .strip_prefix('/')
        .ok_or_else(|| fail("a resource id starts with \"/subscriptions/\""))?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(fail("it has an empty segment"));
    }
    if let Some(part) = parts.iter().find(|part| !is_safe_segment(part)) {
        return Err(fail(&format!(
            "the name {part:?} is not a resource name: `.` and `..`, whitespace, control \
             characters and `?`, `#`, `%`, `\\` are not allowed"
        )));
    }
    let keyword = |index: usize, word: &str| {
        parts
            .get(index)
            .is_some_and(|part| part.eq_ignore_ascii_case(word))
    };
    if !keyword(0, "subscriptions") || parts.len() < 2 {
        return Err(fail("a resource id starts with \"/subscriptions/<id>\""));
    }
    if !keyword(2, "resourceGroups") || parts.len() < 4 {
        return Err(fail(
            "the subscription must be followed by \"/resourceGroups/<name>\"",
        ));
    }
    if !keyword(4, "providers") || !keyword(5, "Microsoft.Network") {
        return Err(fail(
            "the resource group must be followed by \"/providers/Microsoft.Network/\"",
        ));
    }
    Ok(Segments {
        subscription: parts[1],
        resource_group: parts[3],
        type_and_names: parts[6..].to_vec(),
    })
}

/// Whether `segment` can stand in a resource id as it is. An id is sent as a URL path, so a
/// segment that a URL would resolve (`.`, `..`), end (`?`, `#`), decode (`%`) or that some
/// servers split on (`\\`) would name another resource than the one read; Azure allows none of
/// these in resource names, nor whitespace or control characters.
fn is_safe_segment(segment: &str) -> bool {
    segment != "."
        && segment != ".."
        && !segment
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%' | '\\'))
}

/// Checks that `segments` are exactly `[types[0], name, types[1], name, ...]` and returns the
/// names.
fn names<'a>(
    text: &str,
    expected: &'static str,
    segments: &Segments<'a>,
    types: &[&str],
) -> Result<Vec<&'a str>, IdError> {
    let found = &segments.type_and_names;
    let shape = types
        .iter()
        .map(|t| format!("/{t}/<name>"))
        .collect::<String>();
    let wrong = || IdError {
        id: text.to_owned(),
        expected,
        reason: format!(
            "expected \"/providers/Microsoft.Network{shape}\" after the resource group"
        ),
    };
    if found.len() != types.len() * 2 {
        return Err(wrong());
    }
    let mut names = Vec::with_capacity(types.len());
    for (index, expected_type) in types.iter().enumerate() {
        if !found[index * 2].eq_ignore_ascii_case(expected_type) {
            return Err(wrong());
        }
        names.push(found[index * 2 + 1]);
    }
    Ok(names)
}

macro_rules! top_level_id {
    ($(#[$doc:meta])* $name:ident, $type_segment:literal, $words:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            subscription: Name,
            resource_group: Name,
            name: Name,
        }

        impl $name {
            /// Builds the id from its parts.
            pub fn new(subscription: &str, resource_group: &str, name: &str) -> Self {
                $name {
                    subscription: Name::new(subscription),
                    resource_group: Name::new(resource_group),
                    name: Name::new(name),
                }
            }

            /// The subscription id.
            pub fn subscription(&self) -> &str {
                self.subscription.as_str()
            }

            /// The resource group name.
            pub fn resource_group(&self) -> &str {
                self.resource_group.as_str()
            }

            /// The resource name.
            pub fn name(&self) -> &str {
                self.name.as_str()
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                let segments = split_network_id(text, $words)?;
                let names = names(text, $words, &segments, &[$type_segment])?;
                Ok($name::new(segments.subscription, segments.resource_group, names[0]))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    concat!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/", $type_segment, "/{}"),
                    self.subscription, self.resource_group, self.name
                )
            }
        }
    };
}

macro_rules! child_id {
    ($(#[$doc:meta])* $name:ident, $parent:ident, $parent_field:ident, $parent_type:literal, $type_segment:literal, $words:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            $parent_field: $parent,
            name: Name,
        }

        impl $name {
            /// Builds the id of the child `name` of `parent`.
            pub fn new($parent_field: &$parent, name: &str) -> Self {
                $name {
                    $parent_field: $parent_field.clone(),
                    name: Name::new(name),
                }
            }

            /// The parent resource.
            pub fn $parent_field(&self) -> &$parent {
                &self.$parent_field
            }

            /// The child's name.
            pub fn name(&self) -> &str {
                self.name.as_str()
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                let segments = split_network_id(text, $words)?;
                let names = names(text, $words, &segments, &[$parent_type, $type_segment])?;
                let parent = $parent::new(segments.subscription, segments.resource_group, names[0]);
                Ok($name::new(&parent, names[1]))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!("{}/", $type_segment, "/{}"), self.$parent_field, self.name)
            }
        }
    };
}

top_level_id!(
    /// A virtual network: `.../providers/Microsoft.Network/virtualNetworks/<name>`.
    VnetId, "virtualNetworks", "virtual network"
);
top_level_id!(
    /// A route table: `.../providers/Microsoft.Network/routeTables/<name>`.
    RouteTableId, "routeTables", "route table"
);
top_level_id!(
    /// A virtual network gateway: `.../providers/Microsoft.Network/virtualNetworkGateways/<name>`.
    GatewayId, "virtualNetworkGateways", "virtual network gateway"
);
child_id!(
    /// A subnet: `<vnet id>/subnets/<name>`.
    SubnetId, VnetId, vnet, "virtualNetworks", "subnets", "subnet"
);
child_id!(
    /// A peering: `<vnet id>/virtualNetworkPeerings/<name>`.
    PeeringId, VnetId, vnet, "virtualNetworks", "virtualNetworkPeerings", "virtual network peering"
);
child_id!(
    /// A route: `<route table id>/routes/<name>`.
    RouteId, RouteTableId, route_table, "routeTables", "routes", "route"
);

impl VnetId {
    /// The id of the resource group holding this VNet, as `/subscriptions/S/resourceGroups/G`.
    pub fn resource_group_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscription, self.resource_group
        )
    }
}

impl GatewayId {
    /// Parses the gateway id out of the id of one of its ip configurations
    /// (`<gateway id>/ipConfigurations/<name>`), as a `GatewaySubnet` lists them. `None` when
    /// the ip configuration belongs to something else.
    pub fn from_ip_configuration(text: &str) -> Option<GatewayId> {
        let segments = split_network_id(text, "virtual network gateway").ok()?;
        let names = names(
            text,
            "virtual network gateway",
            &segments,
            &["virtualNetworkGateways", "ipConfigurations"],
        )
        .ok()?;
        Some(GatewayId::new(
            segments.subscription,
            segments.resource_group,
            names[0],
        ))
    }
}

macro_rules! debug_as_display {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self)
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    )*};
}
debug_as_display!(
    VnetId,
    RouteTableId,
    GatewayId,
    SubnetId,
    PeeringId,
    RouteId
);

/// An id as the Azure portal names a resource, for text meant for people: the resource group,
/// the resource and its child (`rg-network / spoke1 / spoke1-to-hub`). Text that is not a
/// resource id is returned as it is. JSON output keeps full ids; this is only for reading.
pub fn portal_name(id: &str) -> String {
    let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    let is_resource = parts.len() >= 8
        && parts[0].eq_ignore_ascii_case("subscriptions")
        && parts[2].eq_ignore_ascii_case("resourceGroups")
        && parts[4].eq_ignore_ascii_case("providers");
    if !is_resource {
        return id.to_string();
    }
    // After the provider namespace: type, name, [child type, child name, ...].
    let mut names = vec![parts[3]];
    names.extend(parts[6..].iter().skip(1).step_by(2));
    names.join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const VNET: &str =
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub";

    #[test]
    fn ids_round_trip_through_display() {
        let texts = [
            VNET.to_owned(),
            format!("{VNET}/subnets/app"),
            format!("{VNET}/virtualNetworkPeerings/hub-to-spoke1"),
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/rt/routes/r1"
                .to_owned(),
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworkGateways/gw"
                .to_owned(),
        ];
        assert_eq!(
            texts[0].parse::<VnetId>().map(|id| id.to_string()),
            Ok(texts[0].clone())
        );
        assert_eq!(
            texts[1].parse::<SubnetId>().map(|id| id.to_string()),
            Ok(texts[1].clone())
        );
        assert_eq!(
            texts[2].parse::<PeeringId>().map(|id| id.to_string()),
            Ok(texts[2].clone())
        );
        assert_eq!(
            texts[3].parse::<RouteId>().map(|id| id.to_string()),
            Ok(texts[3].clone())
        );
        assert_eq!(
            texts[4].parse::<GatewayId>().map(|id| id.to_string()),
            Ok(texts[4].clone())
        );
    }

    #[test]
    fn ids_compare_case_insensitively_and_print_canonical_segments() {
        let lower = "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/resourcegroups/RG-NET/providers/microsoft.network/virtualnetworks/HUB";
        let a: VnetId = VNET.parse().expect("valid");
        let b: VnetId = lower.parse().expect("valid");
        assert_eq!(a, b);
        let mut hasher_a = std::collections::hash_map::DefaultHasher::new();
        let mut hasher_b = std::collections::hash_map::DefaultHasher::new();
        a.hash(&mut hasher_a);
        b.hash(&mut hasher_b);
        assert_eq!(hasher_a.finish(), hasher_b.finish());
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert_eq!(
            b.to_string(),
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/RG-NET/providers/Microsoft.Network/virtualNetworks/HUB"
        );
    }

    #[test]
    fn child_ids_expose_their_parent() {
        let subnet: SubnetId = format!("{VNET}/subnets/app").parse().expect("valid");
        assert_eq!(subnet.vnet().name(), "hub");
        assert_eq!(subnet.name(), "app");
        assert_eq!(
            subnet.vnet().subscription(),
            "00000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn malformed_ids_are_errors_naming_the_id() {
        let cases = [
            ("", "virtual network"),
            ("subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v", "virtual network"),
            ("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks", "virtual network"),
            ("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/v", "virtual network"),
            ("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualNetworks/v", "virtual network"),
            ("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a", "virtual network"),
            ("/subscriptions//resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v", "virtual network"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<VnetId>().expect_err(text);
            assert_eq!(error.id, text);
            assert_eq!(error.expected, expected);
            assert!(error.to_string().contains(text), "{error}");
        }
        assert!(format!("{VNET}/subnets").parse::<SubnetId>().is_err());
        assert!(VNET.parse::<SubnetId>().is_err());
    }

    #[test]
    fn names_that_would_change_the_url_are_refused() {
        // An id becomes a URL path: `..` would be resolved to another resource, `?` and `#`
        // would end the path, `%` would be decoded, `\\` is a separator to some servers.
        let base = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks";
        for name in [
            "..", ".", "a?b", "a#b", "a%2Fb", "a\\b", "a b", "a\tb", "x\u{7f}",
        ] {
            let text = format!("{base}/{name}");
            let error = text.parse::<VnetId>().expect_err(&text);
            assert!(error.reason.contains("name"), "{text}: {error}");
        }
        let text = format!("{VNET}/subnets/..");
        assert!(text.parse::<SubnetId>().is_err(), "{text}");
        let text =
            "/subscriptions/../resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v";
        assert!(text.parse::<VnetId>().is_err(), "{text}");
        // Names Azure allows stay accepted: letters, digits, `-`, `_`, `.`, `(`, `)`.
        let fine = format!("{base}/vnet-1_a.b(2)");
        assert!(fine.parse::<VnetId>().is_ok());
    }

    #[test]
    fn portal_names_show_the_resource_group_the_resource_and_its_child() {
        assert_eq!(portal_name(VNET), "rg-net / hub");
        assert_eq!(
            portal_name(&format!("{VNET}/virtualNetworkPeerings/hub-to-spoke1")),
            "rg-net / hub / hub-to-spoke1"
        );
        assert_eq!(
            portal_name("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/rt/routes/r1"),
            "g / rt / r1"
        );
        assert_eq!(portal_name("/subscriptions/s"), "/subscriptions/s");
        assert_eq!(portal_name("not an id"), "not an id");
    }

    #[test]
    fn gateway_is_found_from_its_ip_configuration() {
        let config = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworkGateways/vpngw/ipConfigurations/default";
        let gateway = GatewayId::from_ip_configuration(config).expect("a gateway");
        assert_eq!(gateway.name(), "vpngw");
        let not_gateway = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic/ipConfigurations/ip1";
        assert_eq!(GatewayId::from_ip_configuration(not_gateway), None);
    }
}
