//! Stage 2, enrolled spokes: the VNets that are spokes of the hub (`docs/design.md` section 1,
//! *spoke*: peered with it, in scope, enrolled, not excluded, of no other hub), with what the
//! later stages read of each; and the warnings for the peered VNets that are not spokes
//! (`out_of_scope`, `peering_disconnected` for a deleted one, `multi_hub_spoke`).

use std::collections::BTreeSet;

use serde_json::json;

use super::builder::Builder;
use super::index::Index;
use super::names::TAG_GROUP;
use super::types::WarningCode;
use crate::id::VnetId;
use crate::model::{PeeringState, VirtualNetwork};

/// A spoke of the hub being planned.
pub(crate) struct EnrolledSpoke<'o> {
    pub(crate) vnet: &'o VirtualNetwork,
    /// Its routing group: the `hubspoke:group` tag, trimmed and lower-cased (empty for the
    /// default group). Spokes are routed to each other only within a group.
    pub(crate) group: String,
    /// It has a gateway of its own, so it cannot use the hub's (section 1, *transit spoke*).
    pub(crate) own_gateway: bool,
}

/// Stage 2: the spokes of `hub`, in id order.
pub(crate) fn enrolled_spokes<'o>(
    index: &Index<'o>,
    hub: &VirtualNetwork,
    builder: &mut Builder,
) -> Vec<EnrolledSpoke<'o>> {
    let empty = BTreeSet::new();
    let members = index.candidates.get(&hub.id).unwrap_or(&empty);
    let mut spokes = Vec::new();
    for member in members {
        let Some(vnet) = index.vnet(member) else {
            report_unreadable(hub, member, builder);
            continue;
        };
        if index.is_multi_hub(member) {
            builder.warn(
                WarningCode::MultiHubSpoke,
                member.to_string(),
                "this VNet is peered with more than one hub; hubspoke leaves it alone".into(),
                json!({ "hubs": index.spoke_hubs.get(member).map(|hubs| hubs.iter().map(|h| h.to_string()).collect::<Vec<_>>()) }),
            );
            continue;
        }
        if index.is_spoke_of(member, &hub.id) {
            spokes.push(EnrolledSpoke {
                vnet,
                group: group(vnet),
                own_gateway: own_gateway(index, vnet),
            });
        }
    }
    spokes
}

fn group(vnet: &VirtualNetwork) -> String {
    vnet.tags
        .get(TAG_GROUP)
        .map(|g| g.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Its `GatewaySubnet` holds a gateway, as the subnet or a gateway says.
fn own_gateway(index: &Index, vnet: &VirtualNetwork) -> bool {
    vnet.subnet("GatewaySubnet")
        .is_some_and(|subnet| subnet.gateways().next().is_some())
        || index.gateway_vnets.contains(&vnet.id)
}

/// Warns about each hub peering to `member`, a VNet that is not in the observed state.
fn report_unreadable(hub: &VirtualNetwork, member: &VnetId, builder: &mut Builder) {
    for peering in hub.peerings.iter().filter(|p| p.remote_vnet == *member) {
        if peering.state == PeeringState::Disconnected {
            // Azure leaves the surviving side Disconnected when the remote VNet (or its side) is
            // deleted: the VNet is gone, not unreadable.
            builder.warn(
                WarningCode::PeeringDisconnected,
                peering.id.to_string(),
                "this peering is Disconnected: its remote VNet was deleted. Azure refuses any write to it; delete it (hubspoke never deletes a peering)".into(),
                json!({ "remoteVirtualNetwork": member.to_string() }),
            );
            continue;
        }
        builder.warn(
            WarningCode::OutOfScope,
            peering.id.to_string(),
            format!("the remote VNet {member} is not readable in the subscriptions in scope; add its subscription to HUBSPOKE_SUBSCRIPTIONS and grant read access"),
            json!({ "remoteVirtualNetwork": member.to_string() }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Enrollment, PlanConfig};
    use crate::model::Observed;
    use crate::plan::names::{TAG_ENROLL, TAG_EXCLUDE};
    use crate::synth::{Estate, Flags};

    /// An estate of two hubs and VNets peered with them in every way that matters here.
    fn estate() -> Estate {
        let mut estate = Estate::default();
        estate.hub("hub", "10.0.0.0/16", "10.0.0.0/27", Some("Succeeded"));
        estate.hub("hub2", "10.100.0.0/16", "10.100.0.0/27", Some("Succeeded"));
        let names = [
            "plain",
            "tagged",
            "excluded",
            "both",
            "grouped",
            "gatewayed",
            "gone",
            "hidden",
        ];
        for (n, name) in names.iter().enumerate() {
            let default = format!("10.{}.0.0/24", n + 1);
            let gateway_subnet = format!("10.{}.255.0/27", n + 1);
            let mut subnets = vec![("default", default.as_str())];
            if *name == "gatewayed" {
                subnets.push(("GatewaySubnet", gateway_subnet.as_str()));
            }
            estate.vnet(name, &[&format!("10.{}.0.0/16", n + 1)], &subnets);
            estate.peer(name, "hub", Flags::default(), "Initiated");
        }
        estate.tag_vnet("tagged", TAG_ENROLL, "true");
        estate.tag_vnet("excluded", TAG_EXCLUDE, "true");
        estate.peer("both", "hub2", Flags::default(), "Initiated");
        estate.tag_vnet("grouped", TAG_GROUP, " Blue ");
        estate.gateway("gatewayed", "own-gw", "Vpn", "VpnGw1", "Succeeded");
        // The hub keeps its side towards two VNets that are not in the snapshot: one was
        // deleted (its side is Disconnected), the other is out of scope.
        estate.peer("hub", "gone", Flags::default(), "Disconnected");
        estate.peer("hub", "hidden", Flags::default(), "Connected");
        estate
            .virtual_networks
            .retain(|v| v["name"] != "gone" && v["name"] != "hidden");
        estate
    }

    /// The spokes of `hub` as `<name> [<group>]` (with `+gateway` when it has one of its own),
    /// and the warnings as `<code> <target name>`, sorted.
    fn enrolled(enrollment: Enrollment) -> (Vec<String>, Vec<String>) {
        let estate = estate();
        let observed = Observed::from_snapshot(&estate.snapshot()).expect("snapshot");
        let hubs = ["hub", "hub2"].map(|h| estate.vnet_id(h).parse().expect("hub id"));
        let mut config = PlanConfig::new(hubs.to_vec());
        config.enrollment = enrollment;
        let index = Index::new(&config, &observed);
        let hub = index.vnet(&config.hubs[0]).expect("hub");
        let mut builder = Builder::default();
        let spokes = enrolled_spokes(&index, hub, &mut builder)
            .into_iter()
            .map(|spoke| {
                let gateway = if spoke.own_gateway { " +gateway" } else { "" };
                format!("{} [{}]{gateway}", spoke.vnet.id.name(), spoke.group)
            })
            .collect();
        let mut warnings: Vec<String> = builder
            .finish(hub.id.clone())
            .warnings
            .iter()
            .map(|w| {
                format!(
                    "{} {}",
                    w.code.as_str(),
                    w.target.rsplit('/').next().unwrap_or_default()
                )
            })
            .collect();
        warnings.sort();
        (spokes, warnings)
    }

    #[test]
    fn the_spokes_are_the_enrolled_peered_vnets_of_this_hub_only() {
        let cases: [(Enrollment, &[&str], &[&str]); 2] = [
            (
                Enrollment::All,
                &[
                    "gatewayed [] +gateway",
                    "grouped [blue]",
                    "plain []",
                    "tagged []",
                ],
                &[
                    "multi_hub_spoke both",
                    "out_of_scope hub-to-hidden",
                    "peering_disconnected hub-to-gone",
                ],
            ),
            // Untagged VNets are spokes of neither hub, so none is multi-hub.
            (
                Enrollment::Tagged,
                &["tagged []"],
                &[
                    "out_of_scope hub-to-hidden",
                    "peering_disconnected hub-to-gone",
                ],
            ),
        ];
        for (enrollment, spokes, warnings) in cases {
            let (got_spokes, got_warnings) = enrolled(enrollment);
            assert_eq!(got_spokes, spokes, "{enrollment:?}");
            assert_eq!(got_warnings, warnings, "{enrollment:?}");
        }
    }
}
