// The identities of the event wiring of a management group (HUBSPOKE_MANAGEMENT_GROUPS), in
// hubspoke's resource group, with their rights outside the group:
// - the Azure Policy assignment's user-assigned identity, which deploys the system topic and the
//   event subscription in each subscription (its role at the group: modules/event-wiring-role.bicep);
//   here it may attach the dead-letter identity (on that identity only) and subscribe the Function
//   App (on the app only), through modules/event-destination-role.bicep;
// - the dead-letter identity, one user-assigned identity every topic the policy creates carries,
//   allowed to write the dead-letter container and nothing else: no role assignment per topic is
//   needed, so the policy's deployment holds exactly the topic and the event subscription.
targetScope = 'resourceGroup'

param namePrefix string
param location string
param tags object
@description('The Function App (hubspoke).')
param appName string
param storageAccountName string
param deadLetterContainerName string
@description('The custom role of modules/event-destination-role.bicep.')
param destinationRoleDefinitionName string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource wiring 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-event-wiring'
  location: location
  tags: tags
}

resource deadLetter 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-dead-letter'
  location: location
  tags: tags
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: appName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

// The topics' identity writes dead-lettered events, in that container only.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, deadLetter.id, storageBlobDataContributor)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: deadLetter.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'Event Grid system topics of the event wiring policy: dead-letter undeliverable hubspoke events'
  }
}

// The policy's identity may attach the dead-letter identity, and only it.
resource assignDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetter.id, wiring.id, destinationRoleDefinitionName)
  scope: deadLetter
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', destinationRoleDefinitionName)
    principalId: wiring.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'hubspoke event wiring policy: attach the dead-letter identity to the system topics it creates'
  }
}

// The policy's identity may subscribe hubspoke's function, and only on this app.
resource subscribeApp 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(app.id, wiring.id, destinationRoleDefinitionName)
  scope: app
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', destinationRoleDefinitionName)
    principalId: wiring.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'hubspoke event wiring policy: create event subscriptions to OnNetworkEvent'
  }
}

output wiringIdentityId string = wiring.id
output wiringPrincipalId string = wiring.properties.principalId
output deadLetterIdentityId string = deadLetter.id
