// The rights the event wiring policy's identity needs in the hosting subscription, outside the
// management group it wires: a custom role with exactly these actions, assignable in the hosting
// subscription only, and assigned by modules/event-wiring-identities.bicep on two resources.
targetScope = 'subscription'

@description('Name of the role as shown in the portal; unique in the tenant.')
param roleName string

// Assigned on hubspoke's Function App, the two functions actions: Event Grid checks that whoever
// creates an event subscription whose handler is not a WebHook has write access to that handler
// (Learn, "Authorizing access to Event Grid resources": permissions for event subscriptions), here
// the OnNetworkEvent function. Which action it checks is not published (UNCONFIRMED): the read
// and write of the app's functions, nothing else of the app.
var actions = [
  // Assigned on the dead-letter identity: a topic the policy creates carries it, and attaching a
  // user-assigned identity to a resource is checked as this action on the identity (Learn,
  // "Managed identities for Azure resources": Managed Identity Operator's assign action).
  'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action'
  // Assigned on the Function App (above): subscribing its OnNetworkEvent function.
  'Microsoft.Web/sites/functions/read'
  'Microsoft.Web/sites/functions/write'
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, 'hubspoke-event-destination', roleName)
  properties: {
    roleName: roleName
    description: 'hubspoke: lets the event wiring policy attach the dead-letter identity to the system topics it creates and subscribe hubspoke\'s OnNetworkEvent function.'
    type: 'CustomRole'
    permissions: [
      {
        actions: actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

@description('The role definition name (a GUID).')
output roleDefinitionName string = role.name
