// hubspoke's own resources, in its resource group: the user-assigned identity, the storage
// account (host storage, the hubspoke-work and hubspoke-outcomes queues, the package container,
// the Event Grid dead-letter container, the hubs' lease container), Log Analytics and Application Insights, and the Linux
// Function App on a Flex Consumption plan running the custom handler.
//
// Why Flex Consumption: custom handlers deploy to every Functions hosting option (Microsoft Learn,
// "Azure Functions custom handlers", Deploying); Flex Consumption is the serverless Linux plan
// that gets new features (Linux Consumption is retiring on 30 September 2028 and gets none, Learn
// "Azure Functions runtime versions"), it lists custom handlers among its stacks (the stack name
// `custom` in functionAppConfig.runtime), and Microsoft's self-hosted MCP servers, which are custom
// handlers, require it. It also allows the one-hour function timeout host.json asks for
// (Consumption stops at 10 minutes) and scales per function, so a slow ReconcileHub never delays
// OnNetworkEvent.
targetScope = 'resourceGroup'

param location string
param tags object
@description('Function App name (global DNS name <app>.azurewebsites.net).')
param appName string
param storageAccountName string
param identityName string
param planName string
param appInsightsName string
param logAnalyticsName string
@description('Version of the custom runtime in functionAppConfig.runtime (list them with az functionapp list-flexconsumption-runtimes).')
param runtimeVersion string
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int
@allowed([2048, 4096])
param instanceMemoryMB int
@description('Days Log Analytics keeps the logs.')
param logRetentionDays int
@description('The hubspoke settings (HUBSPOKE_*) as app settings ({ name, value }), built by main.bicep.')
param hubspokeSettings array
@description('Object id of a person or group that reads outcomes and dead-lettered events; empty: none.')
param operatorPrincipalId string
@allowed(['User', 'Group', 'ServicePrincipal'])
param operatorPrincipalType string
@description('The operators may also run `hubspoke results --all` and `--follow` (Storage Queue Data Contributor on the outcome queue: retrieve and put back); otherwise they peek (Reader).')
param operatorReadsWholeQueue bool

// Names the code and the function definitions use.
var workQueueName = 'hubspoke-work'
var outcomesQueueName = 'hubspoke-outcomes'
// The queue trigger moves a message that failed maxDequeueCount (5, host.json) times here.
var poisonQueueName = 'hubspoke-work-poison'
var packageContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
// One blob lease per hub: a ReconcileHub pass holds its hub's lease, so that one pass per hub runs
// at a time on any number of instances (docs/operations.md, "Several instances").
var leaseContainerName = 'hubspoke-leases'

// Built-in roles (Azure built-in roles reference).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageQueueDataMessageProcessor: '8a0f0c08-91a1-4084-bc3d-661d67233fed'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is main.bicep's 'st' + the prefix's letters and digits + uniqueString(), cut to 24 characters: lower-case letters and digits only; checkov cannot evaluate the expression.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_206: LRS on purpose: the account holds host state, transient work items and outcomes, all rebuilt by the next drift check; nothing in it needs a second region, and LRS exists in every Flex Consumption region.
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    // No keys: the Functions host, the handler and Event Grid's dead-lettering all use Entra ID.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // checkov:skip=CKV_AZURE_59: the Flex app runs without VNet integration, so the Functions host and the handler reach this account over its public endpoint (with Entra ID: shared keys are disabled). Private endpoints + VNet integration are the hardening docs/deploy.md describes.
    // checkov:skip=CKV_AZURE_35: same as CKV_AZURE_59: a default-deny rule would cut the app off from its own host storage (a Function App is not a trusted Azure service for the storage firewall).
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Deleted blobs and containers stay recoverable for a week (the package, dead-lettered events).
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

// Flex Consumption runs the app from the package published into this container.
resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Event Grid writes events it could not deliver here (each system topic's identity has Storage
// Blob Data Contributor on this container only, modules/dead-letter-access.bicep).
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The hubs' leases and the marks that one more pass is wanted (handlers/functions, lease.rs).
resource leaseContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: leaseContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource workQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: workQueueName
}

resource outcomesQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: outcomesQueueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: poisonQueueName
}

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // Telemetry is accepted only from Entra ID (the app's identity, Monitoring Metrics Publisher
    // below), not from whoever holds the connection string.
    DisableLocalAuth: true
  }
}

// The identity's data-plane rights on its own storage account. The account is dedicated to
// hubspoke: it holds nothing but the host's state, the three queues and the two containers.
// - Storage Blob Data Owner: the Functions host's minimum for identity-based AzureWebJobsStorage
//   (coordination, keys, timer locks; it creates its containers) and the Flex package container
//   (Learn, "Connecting to host storage with an identity").
// - Storage Queue Data Contributor: the ReconcileHub queue trigger (read, process, move to the
//   poison queue), the outcome and work queue output bindings, and the handler's own write of an
//   outcome for a failed invocation (Learn, queue bindings, "Grant permission to the identity").
// - Storage Table Data Contributor: the host's diagnostic events, which explain a host that fails
//   to start (Learn, same table, "with support for diagnostic events").
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The handler's right to the hubs' leases, on their container only: acquire, renew, release and
// break leases, create and delete the small blobs of the marks (Storage Blob Data Contributor holds
// Microsoft.Storage/storageAccounts/blobServices/containers/blobs/* data actions, leases included).
// The account-wide Owner above is the Functions host's own need; this one names hubspoke's, so
// that it stays right if the host's is ever narrowed.
resource leaseContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(leaseContainer.id, identity.id, roles.storageBlobDataContributor)
  scope: leaseContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Optional: the operators who run `hubspoke results` and read dead-lettered events, on exactly
// those two things. `hubspoke results` peeks (Reader); `--all` and `--follow` retrieve every
// message and put it back at once, which needs Contributor on the queue, granted on request only.
resource operatorQueueReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(outcomesQueue.id, operatorPrincipalId, roles.storageQueueDataReader)
  scope: outcomesQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId) && operatorReadsWholeQueue) {
  name: guid(outcomesQueue.id, operatorPrincipalId, roles.storageQueueDataContributor)
  scope: outcomesQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorDeadLetterReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(deadLetterContainer.id, operatorPrincipalId, roles.storageBlobDataReader)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // Linux.
    reserved: true
    // checkov:skip=CKV_AZURE_225: not zone redundant: hubspoke is a reconciler, not a data path; while it is down traffic flows as before and, once back, the drift check catches up on whatever changed.
  }
}

// Identity-based host storage: the service URIs, the credential and the user-assigned identity's
// client id; no connection string, no key anywhere (Learn, "Connecting to host storage with an
// identity"). The handler reads AzureWebJobsStorage__queueServiceUri to write outcomes itself, and
// AzureWebJobsStorage__blobServiceUri for the hubs' leases.
var platformSettings = [
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.properties.clientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.properties.primaryEndpoints.queue
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.properties.primaryEndpoints.table
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  {
    name: 'HUBSPOKE_SELF_PRINCIPAL_ID'
    value: identity.properties.principalId
  }
]

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // checkov:skip=CKV_AZURE_222: public network access is how Event Grid delivers to the AzureFunction endpoint and how an operator calls Backfill; both need a key (eventgrid_extension system key, function key).
    // checkov:skip=CKV_AZURE_17: no client certificates: Event Grid's AzureFunction delivery presents none; callers authenticate with function and system keys.
    siteConfig: {
      minTlsVersion: '1.2'
      // checkov:skip=CKV_AZURE_78: Flex Consumption refuses siteConfig.ftpsState ("invalid for Flex Consumption sites", azure-pipelines-tasks#21032); it has no FTP deployment: the package goes to the blob container below.
      // checkov:skip=CKV_AZURE_212: numberOfWorkers is a dedicated-plan setting; Flex Consumption scales each function from zero, and the drift check covers a pause.
      // checkov:skip=CKV_AZURE_213: no health check path: it applies to App Service instances behind a load balancer; the Functions host restarts a dead custom handler itself.
      appSettings: concat(platformSettings, hubspokeSettings)
      // checkov:skip=CKV_AZURE_67: http20Enabled left unset: Flex Consumption refuses siteConfig properties it manages (ftpsState, use32BitWorkerProcess...) and whether this is one is unconfirmed; the callers (Event Grid, an operator's POST) need nothing beyond HTTP/1.1.
      // checkov:skip=CKV_AZURE_18: same as CKV_AZURE_67.
    }
    // FUNCTIONS_WORKER_RUNTIME=custom: on Flex Consumption the runtime is set here, not as an app
    // setting (deprecated on Flex, Learn "App settings reference"; the platform refuses it,
    // azure-functions-core-tools#4645). Same for FUNCTIONS_EXTENSION_VERSION.
    functionAppConfig: {
      runtime: {
        name: 'custom'
        version: runtimeVersion
      }
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${packageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
    }
  }
  // The host reaches its storage as soon as the app exists: grant first.
  dependsOn: [
    blobOwner
    leaseContributor
    leaseContainer
    queueContributor
    tableContributor
    metricsPublisher
    packageContainer
    workQueue
    outcomesQueue
    poisonQueue
  ]
}

output appName string = app.name
output appId string = app.id
output defaultHostName string = app.properties.defaultHostName
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output storageAccountName string = storage.name
output storageAccountId string = storage.id
output deadLetterContainerName string = deadLetterContainer.name
output leaseContainerName string = leaseContainer.name
output outcomesQueueUrl string = '${storage.properties.primaryEndpoints.queue}${outcomesQueueName}'
output workQueueUrl string = '${storage.properties.primaryEndpoints.queue}${workQueueName}'
