// The resource group that holds the Event Grid system topic of one subscription in scope, when
// hubspoke creates the topic (a system topic lives in a resource group of the subscription it
// watches).
targetScope = 'subscription'

param name string
param location string
param tags object

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: name
  location: location
  tags: tags
}
