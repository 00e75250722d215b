// The custom role hubspoke's identity holds in every subscription in scope: exactly the
// Microsoft.Network actions its ARM calls need, nothing else. Never Owner, Contributor or Network
// Contributor (infra/tests/test_infra.py fails on a wildcard action without a justification
// beside it, and on any of those built-in roles anywhere in infra/).
//
// Deployed at the hosting subscription (a custom role is a tenant-wide object whose
// assignableScopes say where it may be assigned; its home stays put when the hubs are reordered);
// modules/network-role-assignment.bicep assigns it in each subscription in scope.
targetScope = 'subscription'

@description('Name of the role as shown in the portal; unique in the tenant.')
param roleName string

@description('Subscription ids where the role may be assigned: the hosting subscription and the subscriptions in scope.')
param subscriptionIds array

// Each action, with the ARM call that needs it (handlers/arm: observe.rs reads, apply.rs writes).
// Sources: Azure resource provider operations (Microsoft.Network) and the API paths of
// Microsoft.Network 2024-05-01, the api-version hubspoke pins.
var actions = [
  // Observe: GET /subscriptions/{s}/providers/Microsoft.Network/virtualNetworks (subnets and
  // peerings come inline), then GET of a subnet right before it is written.
  'Microsoft.Network/virtualNetworks/read'
  'Microsoft.Network/virtualNetworks/subnets/read'
  'Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read'
  // Observe: GET /subscriptions/{s}/providers/Microsoft.Network/routeTables (routes inline); the
  // final GET of a route after its long-running PUT.
  'Microsoft.Network/routeTables/read'
  'Microsoft.Network/routeTables/routes/read'
  // Observe: GET of each hub's gateway named in its GatewaySubnet.
  'Microsoft.Network/virtualNetworkGateways/read'
  // Verification (HUBSPOKE_VERIFY_EFFECTIVE=sample|all): POST .../networkInterfaces/{nic}/
  // effectiveRouteTable, which only reads the routes Azure applies to a spoke's interface (its
  // result is polled through locations/operationResults, below). Off by default; unused then.
  'Microsoft.Network/networkInterfaces/effectiveRouteTable/action'
  // Long-running operations: polling .../providers/Microsoft.Network/locations/{region}/operations/
  // {id} (Azure-AsyncOperation) and .../operationResults/{id} (Location) is authorized as these
  // two actions, outside the resource written (Microsoft's built-in Windows 365 Network Interface
  // Contributor role carries them for the same reason).
  'Microsoft.Network/locations/operations/read'
  'Microsoft.Network/locations/operationResults/read'
  // Peerings: PUT .../virtualNetworks/{v}/virtualNetworkPeerings/{p} (create the missing side,
  // set allowForwardedTraffic / allowGatewayTransit / useRemoteGateways, sync the address space).
  // hubspoke never deletes a peering: no virtualNetworkPeerings/delete.
  'Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write'
  // ARM checks peer/action on the REMOTE VNet of every peering written (a hub->spoke write checks
  // it on the spoke, a spoke->hub write on the hub): 403 LinkedAuthorizationFailed without it.
  // The assignment in every subscription in scope covers both ends.
  'Microsoft.Network/virtualNetworks/peer/action'
  // Route tables: PUT of a new managed table hubspoke-rt-<vnet> (tags hubspoke:managed=true are in
  // the body, so no Microsoft.Resources/tags/write). hubspoke never deletes a table.
  'Microsoft.Network/routeTables/write'
  // Routes: PUT and DELETE .../routeTables/{t}/routes/{r}, its own hubspoke-a-b-c-d-len only.
  'Microsoft.Network/routeTables/routes/write'
  'Microsoft.Network/routeTables/routes/delete'
  // Subnets: PUT of the subnet exactly as read with routeTable set (association of an uncovered
  // subnet). hubspoke never deletes a subnet.
  'Microsoft.Network/virtualNetworks/subnets/write'
  // A subnet PUT is checked for join rights on everything its body references, not only on what
  // changed: the route table given, and what the subnet already carries. Exactly the links of
  // handlers/arm/src/subnet_links.rs, whose test compares the two lists.
  'Microsoft.Network/routeTables/join/action'
  'Microsoft.Network/networkSecurityGroups/join/action'
  'Microsoft.Network/natGateways/join/action'
  'Microsoft.Network/serviceEndpointPolicies/join/action'
  'Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action'
  // The subnet's ipAllocations, its address pools of Virtual Network Manager (ipamPoolPrefix-
  // Allocations), and the network intent policies some delegations apply to it.
  'Microsoft.Network/IpAllocations/join/action'
  'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action'
  'Microsoft.Network/networkIntentPolicies/join/action'
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, 'hubspoke-network-operator', roleName)
  properties: {
    roleName: roleName
    description: 'hubspoke: reads VNets, peerings, route tables and VPN gateways; writes peerings (with peer/action on the remote VNet), its own route tables and routes, and subnet route table associations (with the join rights a subnet PUT is checked for). No delete except hubspoke routes.'
    type: 'CustomRole'
    permissions: [
      {
        actions: actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [for id in subscriptionIds: '/subscriptions/${id}']
  }
}

@description('The role definition name (a GUID), the same in every subscription it is assignable in.')
output roleDefinitionName string = role.name
