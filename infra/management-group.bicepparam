// Example parameters of infra/management-group.bicep: copy this file, then fill it from the
// outputs of main.bicep's deployment (docs/deploy.md, "A scope of management groups"):
//   az deployment sub show --name hubspoke --query properties.outputs.eventWiring.value
using 'management-group.bicep'

param functionAppName = 'hubspoke-abc123'

param identityPrincipalId = '00000000-0000-0000-0000-0000000000a1'

param eventWiring = {
  wiringIdentityId: '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-hubspoke/providers/Microsoft.ManagedIdentity/userAssignedIdentities/hubspoke-event-wiring'
  wiringPrincipalId: '00000000-0000-0000-0000-0000000000a2'
  deadLetterIdentityId: '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-hubspoke/providers/Microsoft.ManagedIdentity/userAssignedIdentities/hubspoke-dead-letter'
  functionResourceId: '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-hubspoke/providers/Microsoft.Web/sites/hubspoke-abc123/functions/OnNetworkEvent'
  deadLetterStorageAccountId: '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-hubspoke/providers/Microsoft.Storage/storageAccounts/sthubspokeabc123'
  deadLetterContainerName: 'eventgrid-deadletter'
  eventsResourceGroupName: 'rg-hubspoke-events'
  topicName: 'hubspoke-arm-events'
  eventSubscriptionName: 'hubspoke-abc123-network-events'
}

param location = 'westeurope'
