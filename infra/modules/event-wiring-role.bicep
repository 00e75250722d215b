// The custom role of the Azure Policy assignment that wires the ARM events of every subscription
// under a management group to OnNetworkEvent (modules/event-wiring-policy.bicep): exactly what its
// DeployIfNotExists deployment does in a subscription, nothing else. Assignable at the management
// group and assigned there once, to the assignment's user-assigned identity. Never Owner or
// Contributor (infra/tests/test_infra.py). The identity also needs, outside the group, to attach
// the dead-letter identity to the topics it creates and to subscribe hubspoke's function: those
// two rights are granted on those two resources only (modules/event-wiring-identities.bicep).
targetScope = 'managementGroup'

@description('Name of the role as shown in the portal; unique in the tenant.')
param roleName string

@description('Principal (object) id of the policy assignment\'s user-assigned identity.')
param principalId string

// Each action, with the step of the policy's deployment that needs it (Learn, "Remediate
// non-compliant resources with Azure Policy": the assignment's managed identity deploys the
// template, so it needs the rights of every resource the template deploys).
var actions = [
  // The deployment itself: DeployIfNotExists runs an ARM deployment at the subscription (it
  // creates the resource group) and a nested one in the resource group; the identity creates them
  // and reads their state.
  'Microsoft.Resources/deployments/read'
  'Microsoft.Resources/deployments/write'
  'Microsoft.Resources/deployments/operationstatuses/read'
  // The resource group rg-hubspoke-events that holds the system topic (a system topic lives in a
  // resource group of the subscription it watches).
  'Microsoft.Resources/subscriptions/resourceGroups/read'
  'Microsoft.Resources/subscriptions/resourceGroups/write'
  // The Microsoft.Resources.Subscriptions system topic, and the existence check of the policy
  // (it reads the event subscription, under the topic).
  'Microsoft.EventGrid/systemTopics/read'
  'Microsoft.EventGrid/systemTopics/write'
  // hubspoke's event subscription on that topic.
  'Microsoft.EventGrid/systemTopics/eventSubscriptions/read'
  'Microsoft.EventGrid/systemTopics/eventSubscriptions/write'
]

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, 'hubspoke-event-wiring', roleName, managementGroup().id)
  properties: {
    roleName: roleName
    description: 'hubspoke: lets the Azure Policy assignment create the resource group, the Event Grid system topic and the event subscription to OnNetworkEvent in each subscription under this management group. No delete.'
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
      managementGroup().id
    ]
  }
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(managementGroup().id, principalId, role.id)
  properties: {
    roleDefinitionId: role.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'hubspoke: the event wiring policy deploys its system topic and event subscription in the subscriptions under this management group'
  }
}

@description('The role definition\'s resource id (the policy definition names it).')
output roleDefinitionId string = role.id
