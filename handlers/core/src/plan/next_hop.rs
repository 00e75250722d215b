//! What a route's next hop means to the planner.

/// A next hop that sends traffic to an appliance or drops it: a more specific route would
/// bypass it (rules 9b and 14).
pub(crate) fn is_appliance(next_hop_type: &str) -> bool {
    ["VirtualAppliance", "VirtualApplianceEcmp", "None"]
        .iter()
        .any(|kind| kind.eq_ignore_ascii_case(next_hop_type))
}
