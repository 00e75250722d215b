// Lets one system topic's identity write dead-lettered events into hubspoke's dead-letter
// container, and nothing else: Storage Blob Data Contributor, the role Event Grid documents for
// delivering to Blob storage with a managed identity (Learn, "Add managed identity to a role on
// the Event Grid destination"), scoped to the container.
targetScope = 'resourceGroup'

param storageAccountName string
param containerName string
@description('Principal id of the system topic\'s system-assigned identity.')
param topicPrincipalId string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

resource writer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, topicPrincipalId, storageBlobDataContributor)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: topicPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Event Grid system topic: dead-letters undeliverable hubspoke events'
  }
}
