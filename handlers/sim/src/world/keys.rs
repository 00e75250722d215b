//! The lower-case keys the estate is indexed by.

pub(super) fn lower(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// The lower-case key of the VNet a subnet, peering or VNet id belongs to.
pub(super) fn vnet_key_of(id: &str) -> String {
    let lowered = lower(id);
    match lowered
        .find("/subnets/")
        .or_else(|| lowered.find("/virtualnetworkpeerings/"))
    {
        Some(at) => lowered[..at].to_string(),
        None => lowered,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vnet_key_of_children() {
        assert_eq!(
            vnet_key_of("/subscriptions/S/resourceGroups/R/providers/Microsoft.Network/virtualNetworks/V/subnets/GatewaySubnet"),
            "/subscriptions/s/resourcegroups/r/providers/microsoft.network/virtualnetworks/v"
        );
    }
}
