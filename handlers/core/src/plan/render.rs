//! Text output of a plan, read like a terraform plan. Resources are named as the portal names
//! them (resource group / resource / child); the JSON form of a plan keeps full ids.
use std::fmt::Write;

use ipnet::IpNet;

use super::types::{Action, HubStatus, Plan, RouteSpec};
use crate::id::portal_name;
use crate::model::PeeringFlags;

/// Renders the plan for a terminal or a log.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let (mut add, mut change, mut delete) = (0, 0, 0);
    for hub in &plan.hubs {
        let _ = writeln!(out, "Hub {}", portal_name(&hub.hub.to_string()));
        match hub.status {
            HubStatus::HubNotFound => {
                let _ = writeln!(out, "  hub not found: nothing planned");
            }
            HubStatus::UpToDate => {
                let _ = writeln!(out, "  up to date: no changes");
            }
            HubStatus::ChangesPending => {}
        }
        for item in &hub.changes {
            let (symbol, detail) = describe(&item.action);
            match symbol {
                '+' => add += 1,
                '-' => delete += 1,
                _ => change += 1,
            }
            let _ = writeln!(
                out,
                "  {symbol} {} {}",
                item.action.kind(),
                portal_name(&item.action.target())
            );
            for line in detail {
                let _ = writeln!(out, "      {line}");
            }
            let _ = writeln!(out, "      # {}", item.reason);
            if !item.depends_on.is_empty() || item.phase == 0 {
                let after: Vec<String> = item.depends_on.iter().map(|d| format!("#{d}")).collect();
                let phase = if item.phase == 0 { "first; " } else { "" };
                let _ = writeln!(
                    out,
                    "      # change #{}: {phase}after {}",
                    item.id,
                    if after.is_empty() {
                        "nothing".to_owned()
                    } else {
                        after.join(", ")
                    }
                );
            }
        }
        for warning in &hub.warnings {
            let _ = writeln!(
                out,
                "  ! {} {}",
                warning.code.as_str(),
                portal_name(&warning.target)
            );
            let _ = writeln!(out, "      {}", warning.message);
            if warning.details.as_object().is_some_and(|d| !d.is_empty()) {
                let _ = writeln!(out, "      {}", warning.details);
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Plan: {add} to add, {change} to change, {delete} to delete."
    );
    out
}

/// The symbol of a change (`+` add, `~` change, `-` delete) and its detail lines.
fn describe(action: &Action) -> (char, Vec<String>) {
    match action {
        Action::CreatePeering {
            remote_virtual_network,
            after,
            ..
        } => {
            let mut lines = vec![format!(
                "remoteVirtualNetwork: {}",
                portal_name(&remote_virtual_network.to_string())
            )];
            lines.extend(flag_lines(None, after));
            ('+', lines)
        }
        Action::UpdatePeering { before, after, .. } => ('~', flag_lines(Some(before), after)),
        Action::SyncPeering {
            before,
            after,
            remote_address_space_before,
            remote_address_space_after,
            ..
        } => {
            let list = |nets: &[IpNet]| {
                nets.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut lines = vec![format!(
                "remoteAddressSpace: [{}] -> [{}] (syncRemoteAddressSpace=true)",
                list(remote_address_space_before),
                list(remote_address_space_after)
            )];
            lines.extend(flag_lines(Some(before), after));
            ('~', lines)
        }
        Action::CreateRouteTable {
            location,
            disable_bgp_route_propagation,
            routes,
            ..
        } => (
            '+',
            table_lines(location, *disable_bgp_route_propagation, routes),
        ),
        Action::AssociateRouteTable { route_table, .. } => (
            '~',
            vec![format!(
                "routeTable: (none) -> {}",
                portal_name(&route_table.to_string())
            )],
        ),
        Action::UpsertRoute { before, after, .. } => describe_upsert(before.as_ref(), after),
        Action::DeleteRoute { before, .. } => (
            '-',
            vec![format!(
                "{} -> {}",
                before.address_prefix, before.next_hop_type
            )],
        ),
    }
}

/// The flags that change (all of them for a new peering), one line each.
fn flag_lines(before: Option<&PeeringFlags>, after: &PeeringFlags) -> Vec<String> {
    let pairs = [
        (
            "allowVirtualNetworkAccess",
            before.map(|b| b.allow_virtual_network_access),
            after.allow_virtual_network_access,
        ),
        (
            "allowForwardedTraffic",
            before.map(|b| b.allow_forwarded_traffic),
            after.allow_forwarded_traffic,
        ),
        (
            "allowGatewayTransit",
            before.map(|b| b.allow_gateway_transit),
            after.allow_gateway_transit,
        ),
        (
            "useRemoteGateways",
            before.map(|b| b.use_remote_gateways),
            after.use_remote_gateways,
        ),
    ];
    pairs
        .iter()
        .filter(|(_, old, new)| *old != Some(*new))
        .map(|(name, old, new)| match old {
            Some(old) => format!("{name}: {old} -> {new}"),
            None => format!("{name}: {new}"),
        })
        .collect()
}

fn table_lines(
    location: &str,
    disable_bgp_route_propagation: bool,
    routes: &[RouteSpec],
) -> Vec<String> {
    let mut lines = vec![
        format!("location: {location}"),
        format!("disableBgpRoutePropagation: {disable_bgp_route_propagation}"),
    ];
    lines.extend(routes.iter().map(|r| {
        format!(
            "route {}: {} -> {}",
            r.name, r.address_prefix, r.next_hop_type
        )
    }));
    lines
}

fn describe_upsert(before: Option<&RouteSpec>, after: &RouteSpec) -> (char, Vec<String>) {
    match before {
        None => (
            '+',
            vec![format!(
                "{} -> {}",
                after.address_prefix, after.next_hop_type
            )],
        ),
        Some(before) => (
            '~',
            vec![format!(
                "{}: {}{} -> {}",
                after.address_prefix,
                before.next_hop_type,
                before
                    .next_hop_ip_address
                    .as_ref()
                    .map(|ip| format!(" {ip}"))
                    .unwrap_or_default(),
                after.next_hop_type
            )],
        ),
    }
}
