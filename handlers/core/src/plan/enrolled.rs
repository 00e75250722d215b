//! Stage 2, enrolled spokes: the VNets that are spokes of the hub (`docs/design.md` section 1,
//! *spoke*: peered with it, in scope, enrolled, not excluded, of no other hub), with what the
//! later stages read of each; and the warnings for the peered VNets that are not spokes
//! (`out_of_scope`, `peering_disconnected` for a deleted one, `multi_hub_spoke`).

use std::collections::BTreeSet;

use serde_json::json;

use super::builder::Builder;
use super::index::Index;
use super::{WarningCode, TAG_GROUP};
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
    use crate::plan::{TAG_ENROLL, TAG_EXCLUDE};
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

    fn enrolled(
        enrollment: Enrollment,
    ) -> (Vec<(String, String, bool)>, Vec<(WarningCode, String)>) {
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
            .map(|s| (s.vnet.id.name().to_owned(), s.group, s.own_gateway))
            .collect();
        let warnings = builder
            .finish(hub.id.clone())
            .warnings
            .into_iter()
            .map(|w| {
                (
                    w.code,
                    w.target.rsplit('/').next().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        (spokes, warnings)
    }

    #[test]
    fn the_spokes_are_the_enrolled_peered_vnets_of_this_hub_only() {
        let owned = |list: &[(&str, &str, bool)]| -> Vec<(String, String, bool)> {
            list.iter()
                .map(|(n, g, o)| (n.to_string(), g.to_string(), *o))
                .collect()
        };
        let warnings = vec![
            (WarningCode::PeeringDisconnected, "hub-to-gone".to_owned()),
            (WarningCode::MultiHubSpoke, "both".to_owned()),
            (WarningCode::OutOfScope, "hub-to-hidden".to_owned()),
        ];
        let cases = [
            (
                Enrollment::All,
                owned(&[
                    ("gatewayed", "", true),
                    ("grouped", "blue", false),
                    ("plain", "", false),
                    ("tagged", "", false),
                ]),
            ),
            (Enrollment::Tagged, owned(&[("tagged", "", false)])),
        ];
        for (enrollment, spokes) in cases {
            let (got_spokes, got_warnings) = enrolled(enrollment);
            assert_eq!(got_spokes, spokes, "{enrollment:?}");
            let mut got_warnings = got_warnings;
            got_warnings.sort();
            let mut expected = warnings.clone();
            if enrollment == Enrollment::Tagged {
                // Untagged VNets are not spokes of either hub, so none is multi-hub.
                expected.retain(|(code, _)| *code != WarningCode::MultiHubSpoke);
            }
            expected.sort();
            assert_eq!(got_warnings, expected, "{enrollment:?}");
        }
    }
}
