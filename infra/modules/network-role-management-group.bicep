// hubspoke's custom network role for a scope of management groups (HUBSPOKE_MANAGEMENT_GROUPS):
// the same actions as modules/network-role.bicep (infra/tests/test_infra.py checks they are
// identical), assignable at one management group and assigned there once, to hubspoke's identity.
// An assignment at a management group is inherited by every subscription under it, present and
// future (Learn, "Understand scope for Azure RBAC"), so a subscription vended tomorrow needs no
// deployment. A custom role may name only one management group among its assignable scopes
// (Learn, "Azure custom roles": AssignableScopes): one role per group, deployed with the group.
targetScope = 'managementGroup'

@description('Name of the role as shown in the portal; unique in the tenant.')
param roleName string

@description('Principal (object) id of hubspoke\'s user-assigned identity.')
param principalId string

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
  // effectiveRouteTable, which only reads the routes Azure applies to a spoke's interface.
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

// What the scope itself needs, besides the network: the subscriptions under the group, which
// every pass and OnNetworkEvent list (GET /providers/Microsoft.Management/managementGroups/{id}/
// descendants, "Management Groups - Get Descendants", handlers/arm/src/tenancy.rs). Resource Graph
// needs no action of its own: it answers with the resources the network actions can read.
var managementActions = [
  'Microsoft.Management/managementGroups/read'
  'Microsoft.Management/managementGroups/descendants/read'
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, 'hubspoke-network-operator', roleName, managementGroup().id)
  properties: {
    roleName: roleName
    description: 'hubspoke: reads VNets, peerings, route tables and VPN gateways; writes peerings (with peer/action on the remote VNet), its own route tables and routes, and subnet route table associations (with the join rights a subnet PUT is checked for). No delete except hubspoke routes.'
    type: 'CustomRole'
    permissions: [
      {
        actions: concat(actions, managementActions)
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      managementGroup().id
    ]
  }
}

// The one assignment: at the management group, inherited below it.
resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(managementGroup().id, principalId, role.id)
  properties: {
    roleDefinitionId: role.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'hubspoke: keeps hub-and-spoke routing transitive in every subscription under this management group'
  }
}

@description('The role definition\'s resource id.')
output roleDefinitionId string = role.id
