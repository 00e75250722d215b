//! Stage 7, summaries (`docs/design.md` section 2, rule 10): which summary prefixes
//! (`HUBSPOKE_SUMMARY_PREFIXES`) each spoke's tables hold instead of one route per prefix. A
//! summary is usable when every VNet connected to the hub inside it is a routable spoke of one
//! group whose tables can all carry it, so that routing stays symmetric; otherwise it is
//! reported and prefixes are routed one by one.

use ipnet::{IpNet, Ipv4Net};
use serde_json::json;

use super::builder::Builder;
use super::carry::CarryingTables;
use super::index::Index;
use super::spokes::Spoke;
use super::types::WarningCode;
use crate::config::PlanConfig;
use crate::id::VnetId;
use crate::model::{PeeringState, VirtualNetwork};

/// The summary prefixes each spoke's tables hold.
pub(crate) struct Summaries {
    /// By spoke position, in the order of the setting.
    pub(crate) held: Vec<Vec<Ipv4Net>>,
}

/// Stage 7: the usable summary prefixes and who holds them; the others reported as
/// `route_conflict`, detail `summary_not_usable`.
pub(crate) fn usable_summaries(
    config: &PlanConfig,
    index: &Index,
    hub: &VirtualNetwork,
    spokes: &[Spoke],
    tables: &CarryingTables,
    builder: &mut Builder,
) -> Summaries {
    let mut held: Vec<Vec<Ipv4Net>> = vec![Vec::new(); spokes.len()];
    if config.summary_prefixes.is_empty() {
        return Summaries { held };
    }
    let unmanaged = unmanaged_connected(index, hub, spokes);
    for &summary in &config.summary_prefixes {
        match holders(summary, spokes, tables, &unmanaged) {
            Ok(inside) => {
                for i in inside {
                    held[i].push(summary);
                }
            }
            Err(blockers) => builder.warn(
                WarningCode::RouteConflict,
                summary.to_string(),
                "the summary prefix cannot be used: some VNets connected to the hub inside it are not transit spokes of one group that can carry it; prefixes are routed one by one instead".into(),
                json!({ "detail": "summary_not_usable", "vnets": blockers }),
            ),
        }
    }
    Summaries { held }
}

/// The spokes (by position) that hold `summary`, or the VNets that stop it from being used.
fn holders(
    summary: Ipv4Net,
    spokes: &[Spoke],
    tables: &CarryingTables,
    unmanaged: &[(VnetId, Vec<Ipv4Net>)],
) -> Result<Vec<usize>, Vec<String>> {
    let overlaps = |p: &Ipv4Net| p.contains(&summary) || summary.contains(p);
    let inside: Vec<usize> = (0..spokes.len())
        .filter(|&i| {
            spokes[i].peerings.is_connected() && spokes[i].transit.prefixes.iter().any(overlaps)
        })
        .collect();
    let Some(&first) = inside.first() else {
        return Ok(inside);
    };
    let group = &spokes[first].enrolled.group;
    let mut blockers: Vec<String> = inside
        .iter()
        .filter(|&&i| {
            !spokes[i].is_routable()
                || spokes[i].enrolled.group != *group
                || !tables.all_can_carry(i, summary)
        })
        .map(|&i| spokes[i].enrolled.vnet.id.to_string())
        .collect();
    // The gateway would also deliver to VNets connected to the hub that hubspoke does not
    // manage (excluded, not enrolled, other hubs): they would have no route back.
    blockers.extend(
        unmanaged
            .iter()
            .filter(|(_, prefixes)| prefixes.iter().any(overlaps))
            .map(|(id, _)| id.to_string()),
    );
    if blockers.is_empty() {
        Ok(inside)
    } else {
        Err(blockers)
    }
}

/// VNets connected to the hub that are not its spokes (excluded, not enrolled, multi-hub,
/// other hubs), with the IPv4 space the hub reaches in them.
fn unmanaged_connected(
    index: &Index,
    hub: &VirtualNetwork,
    spokes: &[Spoke],
) -> Vec<(VnetId, Vec<Ipv4Net>)> {
    let spoke_ids: std::collections::HashSet<&VnetId> =
        spokes.iter().map(|spoke| &spoke.enrolled.vnet.id).collect();
    hub.peerings
        .iter()
        .filter(|peering| peering.state == PeeringState::Connected)
        .filter(|peering| !spoke_ids.contains(&peering.remote_vnet))
        .map(|peering| {
            let current = index
                .vnet(&peering.remote_vnet)
                .map(|v| v.address_prefixes.clone())
                .unwrap_or_default();
            let prefixes = peering
                .remote_address_space
                .iter()
                .chain(&peering.remote_virtual_network_address_space)
                .chain(&current)
                .filter_map(|net| match net.trunc() {
                    IpNet::V4(net) => Some(net),
                    IpNet::V6(_) => None,
                })
                .collect();
            (peering.remote_vnet.clone(), prefixes)
        })
        .collect()
}
