// hubspoke's event subscription on one subscription's system topic: the network writes and
// deletes docs/design.md §3 lists, delivered to the OnNetworkEvent function (endpoint type
// AzureFunction), retried, and dead-lettered to hubspoke's storage when delivery gives up.
//
// Event Grid checks at creation that the function exists: deploy this only after the package is
// published (main.bicep's deployEventSubscriptions, docs/deploy.md step 4).
targetScope = 'resourceGroup'

param topicName string
param name string
@description('Resource id of the OnNetworkEvent function: <function app id>/functions/OnNetworkEvent.')
param functionResourceId string
@description('Resource id of hubspoke\'s storage account (dead-letter destination).')
param deadLetterStorageAccountId string
param deadLetterContainerName string
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int
@minValue(1)
@maxValue(1440)
param eventTimeToLiveMinutes int

// Values of data.operationName that concern hubspoke (the RBAC operation name of the ARM write or
// delete, Learn "Azure Resource Manager / subscription events"). Event Grid allows 25 values across
// all advanced filters of a subscription: these are 13.
var operationNames = [
  'Microsoft.Network/virtualNetworks/write'
  'Microsoft.Network/virtualNetworks/delete'
  'Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write'
  'Microsoft.Network/virtualNetworks/virtualNetworkPeerings/delete'
  'Microsoft.Network/virtualNetworks/subnets/write'
  'Microsoft.Network/virtualNetworks/subnets/delete'
  'Microsoft.Network/routeTables/write'
  'Microsoft.Network/routeTables/delete'
  'Microsoft.Network/routeTables/routes/write'
  'Microsoft.Network/routeTables/routes/delete'
  'Microsoft.Network/virtualNetworkGateways/write'
  'Microsoft.Network/virtualNetworkGateways/delete'
  // Tag edits through the tags API (hubspoke:enroll, hubspoke:exclude, hubspoke:group).
  'Microsoft.Resources/tags/write'
]

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: topicName
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: name
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        // One event per request: each event is one invocation anyway, and answers in well under
        // Event Grid's 30-second limit.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: operationNames
        }
      ]
    }
    // Delivery ends at whichever comes first; the event is then dead-lettered. A late event only
    // triggers one more reconcile, and the drift check covers what was lost.
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveMinutes
    }
    // With the topic's own identity: the storage account has shared keys disabled.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output id string = eventSubscription.id
