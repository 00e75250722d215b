//! What the verification says: a verdict per ordered pair of spokes, with a stable code, a
//! reason for each pair that is not fine, and the counts.
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::id::{SubnetId, VnetId};

/// Where the traffic of a spoke to another goes. The order is from best to worst: the verdict
/// of a direction is the worst over every subnet of the source and every address of the
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The two spokes are peered with each other: the traffic never touches the hub.
    Direct,
    /// Through the hub's VPN gateway, as hubspoke routes it, and back the same way.
    Gateway,
    /// Some of it goes to a virtual appliance (a firewall) that a user route names: not
    /// hubspoke's path.
    Appliance,
    /// Some of it has no way to the destination.
    Unreachable,
}

impl Verdict {
    /// Every verdict, in order.
    pub const ALL: [Verdict; 4] = [
        Verdict::Gateway,
        Verdict::Direct,
        Verdict::Appliance,
        Verdict::Unreachable,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Direct => "direct",
            Verdict::Gateway => "gateway",
            Verdict::Appliance => "appliance",
            Verdict::Unreachable => "unreachable",
        }
    }

    /// `gateway` or `direct`: traffic reaches the other spoke without leaving hubspoke's design.
    pub fn is_fine(self) -> bool {
        matches!(self, Verdict::Direct | Verdict::Gateway)
    }
}

/// Why a pair is not `gateway` or `direct`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// A warning code of the planner's vocabulary where one exists (`spoke_not_transit`,
    /// `route_conflict`...), else the verification's own (`route_missing`, `transit_flags_off`,
    /// `address_overlap`, `gateway_gone`, `route_to_appliance`, `no_route`).
    pub code: &'static str,
    /// The finer reason within the code (`peering_missing`, `covered_by_foreign`...), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    pub message: String,
    /// The spoke the reason lies with, when it is not the source (the destination, the hub).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<VnetId>,
    /// The subnet whose traffic is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubnetId>,
    /// The addresses concerned: a prefix of the destination, or the part of it a route splits
    /// off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The route Azure selects for them: its source, next hop type, address and name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteRef>,
}

/// A route, as a reason names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRef {
    pub source: &'static str,
    pub prefix: String,
    #[serde(rename = "nextHopType")]
    pub next_hop_type: String,
    #[serde(rename = "nextHopIpAddress", skip_serializing_if = "Option::is_none")]
    pub next_hop_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Reason {
    /// A reason with a code, a detail and a message, and nothing located yet.
    pub(crate) fn new(code: &'static str, detail: Option<&'static str>, message: String) -> Self {
        Reason {
            code,
            detail,
            message,
            at: None,
            subnet: None,
            prefix: None,
            route: None,
        }
    }
}

/// The verdict of one ordered pair: the traffic of `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairVerdict {
    /// Positions in [`HubVerification::spokes`].
    pub from: u32,
    pub to: u32,
    pub verdict: Verdict,
    /// The two directions take different kinds of path (say the gateway one way and an
    /// appliance back), both reaching the other side: stateful firewalls drop such traffic.
    pub asymmetric: bool,
    /// Why, when the verdict is not fine (shared between the pairs it concerns).
    pub reason: Option<Arc<Reason>>,
}

/// A spoke as the verification lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpokeEntry {
    pub id: VnetId,
    /// A transit spoke (`docs/design.md` section 1, after the pass's own changes): its pairs
    /// must be fine.
    pub transit: bool,
    /// Its routing group (empty: the default group).
    pub group: String,
    /// Its IPv4 prefixes, the addresses the others must reach.
    pub prefixes: Vec<Ipv4Net>,
    /// The network interfaces in its eligible subnets (named by their subnets' ip
    /// configurations), whose effective routes Azure can list.
    #[serde(skip)]
    pub interfaces: Vec<Interface>,
}

/// A network interface in a spoke's subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface's id (`…/networkInterfaces/{name}`).
    pub nic: String,
    pub subnet: SubnetId,
}

impl Interface {
    /// The interface of an ip configuration id (`…/networkInterfaces/{nic}/ipConfigurations/
    /// {name}`), if it is one (a gateway's or a load balancer's is not).
    pub fn of_ip_configuration(id: &str, subnet: &SubnetId) -> Option<Interface> {
        let lower = id.to_ascii_lowercase();
        let at = lower.find("/providers/microsoft.network/networkinterfaces/")?;
        let end = lower[at..].find("/ipconfigurations/")? + at;
        Some(Interface {
            nic: id.get(..end)?.to_owned(),
            subnet: subnet.clone(),
        })
    }
}

/// Pair counts per verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerdictCounts {
    pub gateway: usize,
    pub direct: usize,
    pub appliance: usize,
    pub unreachable: usize,
    /// Pairs (of any verdict) flagged asymmetric.
    pub asymmetric: usize,
}

impl VerdictCounts {
    pub fn of(&self, verdict: Verdict) -> usize {
        match verdict {
            Verdict::Gateway => self.gateway,
            Verdict::Direct => self.direct,
            Verdict::Appliance => self.appliance,
            Verdict::Unreachable => self.unreachable,
        }
    }

    pub(crate) fn add(&mut self, pair: &PairVerdict) {
        match pair.verdict {
            Verdict::Gateway => self.gateway += 1,
            Verdict::Direct => self.direct += 1,
            Verdict::Appliance => self.appliance += 1,
            Verdict::Unreachable => self.unreachable += 1,
        }
        self.asymmetric += usize::from(pair.asymmetric);
    }

    pub fn total(&self) -> usize {
        self.gateway + self.direct + self.appliance + self.unreachable
    }
}

/// The verification of one hub: every ordered pair of its spokes within a group.
#[derive(Debug, Clone, Default)]
pub struct HubVerification {
    pub hub: Option<VnetId>,
    pub spokes: Vec<SpokeEntry>,
    /// Every ordered pair of spokes of one group, by source then destination.
    pub pairs: Vec<PairVerdict>,
    pub counts: VerdictCounts,
}

impl HubVerification {
    /// Whether every pair of transit spokes is `gateway` or `direct`.
    pub fn transit_pairs_fine(&self) -> bool {
        self.pairs
            .iter()
            .filter(|pair| self.is_transit_pair(pair))
            .all(|pair| pair.verdict.is_fine())
    }

    /// Whether both spokes of `pair` are transit.
    pub fn is_transit_pair(&self, pair: &PairVerdict) -> bool {
        let transit = |at: u32| self.spokes.get(at as usize).is_some_and(|s| s.transit);
        transit(pair.from) && transit(pair.to)
    }

    /// The pairs that are not fine (or are asymmetric): those of transit spokes first, then
    /// by verdict (the worst first), then in order.
    pub fn problems(&self) -> Vec<&PairVerdict> {
        let mut problems: Vec<&PairVerdict> = self
            .pairs
            .iter()
            .filter(|pair| !pair.verdict.is_fine() || pair.asymmetric)
            .collect();
        problems.sort_by_key(|pair| {
            (
                !self.is_transit_pair(pair),
                std::cmp::Reverse(pair.verdict),
                pair.from,
                pair.to,
            )
        });
        problems
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_named_by_their_ip_configurations_and_gateways_are_not() {
        let subnet: SubnetId = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/app".parse().unwrap();
        let nic = "/subscriptions/s/resourceGroups/G/providers/Microsoft.Network/networkInterfaces/vm1-nic/ipConfigurations/ipconfig1";
        let interface = Interface::of_ip_configuration(nic, &subnet).unwrap();
        assert_eq!(
            interface.nic,
            "/subscriptions/s/resourceGroups/G/providers/Microsoft.Network/networkInterfaces/vm1-nic"
        );
        let gateway = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworkGateways/gw/ipConfigurations/default";
        assert_eq!(Interface::of_ip_configuration(gateway, &subnet), None);
    }
}
