//! How hubspoke marks and recognises what it reads and writes: the tags people set on VNets and
//! route tables (`docs/design.md` section 1), and the names of the route tables and routes
//! hubspoke creates, from which it tells its own from foreign ones.
use ipnet::{IpNet, Ipv4Net};

use crate::id::{RouteTableId, VnetId};
use crate::model::{Route, RoutePrefix};

/// Tag that enrolls a VNet when `HUBSPOKE_ENROLLMENT=tagged`.
pub const TAG_ENROLL: &str = "hubspoke:enroll";
/// Tag that keeps hubspoke off a VNet or a route table.
pub const TAG_EXCLUDE: &str = "hubspoke:exclude";
/// Tag that puts a spoke in a routing group.
pub const TAG_GROUP: &str = "hubspoke:group";
/// Tag on the route tables hubspoke created.
pub const TAG_MANAGED: &str = "hubspoke:managed";
/// Prefix of the name of the route table hubspoke creates for a spoke.
pub const MANAGED_TABLE_PREFIX: &str = "hubspoke-rt-";

/// The id of the route table hubspoke creates for `vnet`.
pub fn managed_table_id(vnet: &VnetId) -> RouteTableId {
    let mut name = format!("{MANAGED_TABLE_PREFIX}{}", vnet.name());
    name.truncate(80);
    RouteTableId::new(vnet.subscription(), vnet.resource_group(), &name)
}

/// The prefix of a managed route: its name is `hubspoke-a-b-c-d-len` and its prefix matches.
pub fn managed_prefix(route: &Route) -> Option<Ipv4Net> {
    let named = parse_managed_route_name(route.id.name())?;
    match route.address_prefix {
        RoutePrefix::Cidr(IpNet::V4(prefix)) if prefix == named => Some(named),
        _ => None,
    }
}

/// The name of the managed route for `prefix`: `hubspoke-<a>-<b>-<c>-<d>-<len>`.
pub fn managed_route_name(prefix: Ipv4Net) -> String {
    let [a, b, c, d] = prefix.network().octets();
    format!("hubspoke-{a}-{b}-{c}-{d}-{}", prefix.prefix_len())
}

/// The prefix a managed route name stands for, if `name` is one.
pub fn parse_managed_route_name(name: &str) -> Option<Ipv4Net> {
    let rest = name.strip_prefix("hubspoke-")?;
    let parts: Vec<&str> = rest.split('-').collect();
    if parts.len() != 5 {
        return None;
    }
    let mut numbers = [0u8; 5];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        // Reject leading zeros and signs so that exactly one name stands for each prefix.
        if part.is_empty() || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    let net = Ipv4Net::new(
        std::net::Ipv4Addr::new(numbers[0], numbers[1], numbers[2], numbers[3]),
        numbers[4],
    )
    .ok()?;
    (net.trunc() == net).then_some(net)
}
