// Assigns hubspoke's custom network role (modules/network-role.bicep) to its identity at the scope
// of one subscription in scope. Subscription scope because hubspoke lists VNets and route tables
// per subscription (GET /subscriptions/{s}/providers/Microsoft.Network/...), which needs read
// there; the role itself keeps the writes to peerings, hubspoke's tables and routes, and subnet
// associations.
targetScope = 'subscription'

@description('The custom role definition name (GUID) from modules/network-role.bicep.')
param roleDefinitionName string

@description('Principal (object) id of hubspoke\'s user-assigned identity.')
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionName)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'hubspoke: keeps hub-and-spoke routing transitive in this subscription'
  }
}
