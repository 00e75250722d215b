"""Drives the hubspoke simulator with the official Azure SDK for Python.

Run by `tests/sdk.rs` with the simulator's settings in the environment (HUBSPOKE_ARM_ENDPOINT,
HUBSPOKE_CA_CERT, IDENTITY_ENDPOINT, IDENTITY_HEADER) and SUBSCRIPTION_ID. Uses the managed
identity credential (App Service protocol) and HTTPS with the simulator's certificate. Every
long-running operation goes through the SDK's own pollers, every response through its models,
and refusals through its HttpResponseError with ARM's error code. Exits non-zero on failure.
"""
import os
import sys

from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as m

SUB = os.environ["SUBSCRIPTION_ID"]
RG = "rg-hub"
CHECKS = []


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    CHECKS.append(what)


def refused(code, call):
    """Runs `call`, which must fail with ARM error `code`."""
    try:
        result = call()
        if hasattr(result, "result"):
            result.result()
    except HttpResponseError as error:
        check(error.error is not None and error.error.code == code, f"refused with {code} (got {error.error and error.error.code})")
        return
    raise AssertionError(f"expected {code}, the call succeeded")


def vnet_id(name):
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/{name}"


def main():
    credential = ManagedIdentityCredential()
    token = credential.get_token("https://management.azure.com/.default")
    check(token.token.count(".") == 2, "managed identity token is a JWT")
    client = NetworkManagementClient(
        credential,
        SUB,
        base_url=os.environ["HUBSPOKE_ARM_ENDPOINT"],
        credential_scopes=["https://management.azure.com/.default"],
        connection_verify=os.environ["HUBSPOKE_CA_CERT"],
        polling_interval=0.02,
    )

    # The hub with a gateway subnet, and its VPN gateway.
    hub = client.virtual_networks.begin_create_or_update(
        RG,
        "hub",
        m.VirtualNetwork(
            location="westus",
            address_space=m.AddressSpace(address_prefixes=["10.0.0.0/16"]),
            subnets=[
                m.Subnet(name="GatewaySubnet", address_prefix="10.0.255.0/27"),
                m.Subnet(name="shared", address_prefix="10.0.1.0/24"),
            ],
        ),
    ).result()
    check(hub.provisioning_state == "Succeeded", "hub created")
    check(hub.etag and hub.etag.startswith('W/"'), "weak etag")
    gateway = client.virtual_network_gateways.begin_create_or_update(
        RG,
        "hub-gw",
        m.VirtualNetworkGateway(
            location="westus",
            gateway_type="Vpn",
            vpn_type="RouteBased",
            sku=m.VirtualNetworkGatewaySku(name="VpnGw1", tier="VpnGw1"),
            ip_configurations=[
                m.VirtualNetworkGatewayIPConfiguration(
                    name="default",
                    subnet=m.SubResource(id=vnet_id("hub") + "/subnets/GatewaySubnet"),
                    public_ip_address=m.SubResource(id=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/publicIPAddresses/gw-pip"),
                )
            ],
        ),
    ).result()
    check(gateway.provisioning_state == "Succeeded", "gateway provisioned")
    gateways = list(client.virtual_network_gateways.list(RG))
    check(len(gateways) == 1 and gateways[0].gateway_type == "Vpn", "gateways listed")

    # Spokes.
    for name, prefix in [("spoke-a", "10.1"), ("spoke-b", "10.2")]:
        spoke = client.virtual_networks.begin_create_or_update(
            RG,
            name,
            m.VirtualNetwork(
                location="westus",
                address_space=m.AddressSpace(address_prefixes=[f"{prefix}.0.0/16"]),
                subnets=[m.Subnet(name="app", address_prefix=f"{prefix}.0.0/24")],
            ),
        ).result()
        check(spoke.subnets[0].name == "app", f"{name} created with its subnet")

    # Peerings from both sides, with gateway transit.
    refused(
        "RemotePeeringDoesNotAllowGatewayTransit",
        lambda: client.virtual_network_peerings.begin_create_or_update(
            RG, "spoke-a", "spoke-a-to-hub",
            m.VirtualNetworkPeering(remote_virtual_network=m.SubResource(id=vnet_id("hub")), allow_forwarded_traffic=True, use_remote_gateways=True),
        ),
    )
    for spoke in ["spoke-a", "spoke-b"]:
        hub_side = client.virtual_network_peerings.begin_create_or_update(
            RG, "hub", f"hub-to-{spoke}",
            m.VirtualNetworkPeering(
                remote_virtual_network=m.SubResource(id=vnet_id(spoke)),
                allow_virtual_network_access=True, allow_forwarded_traffic=True, allow_gateway_transit=True, use_remote_gateways=False,
            ),
        ).result()
        check(hub_side.peering_state == "Initiated", f"hub-to-{spoke} initiated")
        spoke_side = client.virtual_network_peerings.begin_create_or_update(
            RG, spoke, f"{spoke}-to-hub",
            m.VirtualNetworkPeering(
                remote_virtual_network=m.SubResource(id=vnet_id("hub")),
                allow_virtual_network_access=True, allow_forwarded_traffic=True, allow_gateway_transit=False, use_remote_gateways=True,
            ),
        ).result()
        check(spoke_side.peering_state == "Connected", f"{spoke}-to-hub connected")
        again = client.virtual_network_peerings.get(RG, "hub", f"hub-to-{spoke}")
        check(again.peering_state == "Connected" and again.peering_sync_level == "FullyInSync", f"hub-to-{spoke} connected by the other side")
    refused(
        "PeeringWithSameRemoteVirtualNetworkExists",
        lambda: client.virtual_network_peerings.begin_create_or_update(
            RG, "hub", "hub-to-spoke-a-2",
            m.VirtualNetworkPeering(remote_virtual_network=m.SubResource(id=vnet_id("spoke-a"))),
        ),
    )
    refused(
        "RemoteVnetHasNoGateways",
        lambda: client.virtual_network_peerings.begin_create_or_update(
            RG, "spoke-a", "spoke-a-to-b",
            m.VirtualNetworkPeering(remote_virtual_network=m.SubResource(id=vnet_id("spoke-b")), use_remote_gateways=True),
        ),
    )
    peerings = list(client.virtual_network_peerings.list(RG, "hub"))
    check(len(peerings) == 2, "hub peerings listed across pages")

    # A route table with routes, and a subnet associated with it.
    table = client.route_tables.begin_create_or_update(
        RG, "rt-spoke-a", m.RouteTable(location="westus", disable_bgp_route_propagation=False, tags={"hubspoke:managed": "true"})
    ).result()
    check(table.provisioning_state == "Succeeded", "route table created")
    route = client.routes.begin_create_or_update(
        RG, "rt-spoke-a", "hubspoke-10-2-0-0-16",
        m.Route(address_prefix="10.2.0.0/16", next_hop_type="VirtualNetworkGateway"),
    ).result()
    check(route.next_hop_type == "VirtualNetworkGateway", "route created")
    refused(
        "RouteConflict",
        lambda: client.routes.begin_create_or_update(
            RG, "rt-spoke-a", "duplicate", m.Route(address_prefix="10.2.0.0/16", next_hop_type="VirtualNetworkGateway")
        ),
    )
    refused(
        "NextHopIpAddressNotAllowed",
        lambda: client.routes.begin_create_or_update(
            RG, "rt-spoke-a", "bad", m.Route(address_prefix="10.3.0.0/16", next_hop_type="VirtualNetworkGateway", next_hop_ip_address="10.0.0.4")
        ),
    )
    subnet = client.subnets.get(RG, "spoke-a", "app")
    subnet.route_table = m.RouteTable(id=table.id)
    subnet = client.subnets.begin_create_or_update(RG, "spoke-a", "app", subnet).result()
    check(subnet.route_table is not None and subnet.route_table.id.lower() == table.id.lower(), "subnet associated")
    table = client.route_tables.get(RG, "rt-spoke-a")
    check([s.id for s in table.subnets] == [subnet.id], "table lists its subnet")
    check(len(table.routes) == 1, "table carries its route")
    refused("InUseRouteTableCannotBeDeleted", lambda: client.route_tables.begin_delete(RG, "rt-spoke-a"))

    # Resize a spoke, then sync the hub side.
    spoke_a = client.virtual_networks.get(RG, "spoke-a")
    spoke_a.address_space.address_prefixes.append("10.11.0.0/16")
    client.virtual_networks.begin_create_or_update(RG, "spoke-a", spoke_a).result()
    hub_side = client.virtual_network_peerings.get(RG, "hub", "hub-to-spoke-a")
    check(hub_side.peering_sync_level == "LocalNotInSync", "hub side out of sync after the resize")
    check(client.virtual_network_peerings.get(RG, "spoke-a", "spoke-a-to-hub").peering_sync_level == "RemoteNotInSync", "spoke side remote not in sync")
    synced = client.virtual_network_peerings.begin_create_or_update(
        RG, "hub", "hub-to-spoke-a", hub_side, sync_remote_address_space="true"
    ).result()
    check(synced.peering_sync_level == "FullyInSync", "synced")
    check(sorted(synced.remote_address_space.address_prefixes) == ["10.1.0.0/16", "10.11.0.0/16"], "remote address space programmed")

    # Lists page through nextLink.
    names = sorted(v.name for v in client.virtual_networks.list_all())
    check(names == ["hub", "spoke-a", "spoke-b"], "VNets listed across pages")
    check(len(list(client.route_tables.list_all())) == 1, "route tables listed")

    # Deletes: the pollers follow Location to the end.
    client.routes.begin_delete(RG, "rt-spoke-a", "hubspoke-10-2-0-0-16").result()
    check(len(client.route_tables.get(RG, "rt-spoke-a").routes) == 0, "route deleted")
    client.virtual_network_peerings.begin_delete(RG, "hub", "hub-to-spoke-b").result()
    check(client.virtual_network_peerings.get(RG, "spoke-b", "spoke-b-to-hub").peering_state == "Disconnected", "other side disconnected")
    refused(
        "RemotePeeringIsDisconnected",
        lambda: client.virtual_network_peerings.begin_create_or_update(
            RG, "hub", "hub-to-spoke-b",
            m.VirtualNetworkPeering(remote_virtual_network=m.SubResource(id=vnet_id("spoke-b")), allow_gateway_transit=True),
        ),
    )
    client.virtual_networks.begin_delete(RG, "spoke-b").result()
    try:
        client.virtual_networks.get(RG, "spoke-b")
        raise AssertionError("spoke-b still exists")
    except HttpResponseError as error:
        check(error.status_code == 404 and error.error.code == "ResourceNotFound", "deleted VNet is gone")

    print(f"{len(CHECKS)} checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - report any failure with its type
        print(f"FAILED after {len(CHECKS)} checks: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
