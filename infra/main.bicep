// hubspoke's Azure deployment, at subscription scope (the subscription that hosts the app).
//
// It is deployed twice, with the package published in between (docs/deploy.md):
//   1. deployEventSubscriptions = false: the app, its identity and storage, the custom network role
//      and its assignments, and per subscription in scope the Event Grid system topic (created, or
//      an existing one reused) with dead-letter rights.
//   2. `hubspoke package --out hubspoke.zip`, then publish it to the app.
//   3. deployEventSubscriptions = true: the same deployment adds one event subscription per topic.
//      Event Grid checks at creation that the AzureFunction endpoint (OnNetworkEvent) exists, which
//      is only true once the package is published.
// With managementGroups (a scope that needs no list), infra/management-group.bicep is then
// deployed at each group, from this deployment's outputs: the role and the event wiring of every
// subscription under the group, present and future (docs/deploy.md).
targetScope = 'subscription'

// --- What hubspoke manages ------------------------------------------------------------------

@description('Hub VNet resource ids (HUBSPOKE_HUBS). Their subscriptions are always in scope.')
@minLength(1)
param hubs array

@description('Other subscription ids where spokes live (landing zones). With the hubs\' subscriptions they are the subscriptions in scope: the network role is assigned there, their ARM events are wired, and HUBSPOKE_SUBSCRIPTIONS lists them. A managed identity cannot act in another tenant: same-tenant subscriptions only.')
param subscriptions array = []

@description('Management group ids (HUBSPOKE_MANAGEMENT_GROUPS): every subscription under them, at any depth, present and future, is in scope, with no list to keep. Then leave `subscriptions` empty: the app refuses both settings at once. Deploy infra/management-group.bicep at each group after this deployment (its role and event wiring).')
param managementGroups array = []

@description('Subscriptions in scope that already have a Microsoft.Resources.Subscriptions system topic (Azure allows one per subscription), keyed by subscription id: { \'<subscription id>\': { resourceGroup: \'...\', name: \'...\' } }. infra/find-system-topics prints this object.')
param existingSystemTopics object = {}

@description('Step 3 of the deployment: create the event subscriptions to OnNetworkEvent. Only once the package is published.')
param deployEventSubscriptions bool = false

// --- hubspoke settings (docs/design.md §5) ------------------------------------------------------

@description('HUBSPOKE_DRIFT_SCHEDULE: NCRONTAB with seconds for the DriftCheck timer. Always set: the host refuses to index a timer whose %NAME% is unset.')
param driftSchedule string = '0 */15 * * * *'

@description('HUBSPOKE_ROUTE_LIMIT: routes per route table (400 is Azure\'s published limit; 1000 only for tables managed by Azure Virtual Network Manager).')
@minValue(1)
@maxValue(1000)
param routeLimit int = 400

@description('HUBSPOKE_DRY_RUN: plan only, write nothing. True until the first backfill has been reviewed (docs/deploy.md step 5).')
param dryRun bool = true

@description('HUBSPOKE_ENROLLMENT: all spokes, or only VNets tagged hubspoke:enroll=true.')
@allowed([
  'all'
  'tagged'
])
param enrollment string = 'all'

@description('HUBSPOKE_EXCLUDE_SUBNETS: subnet names never given a route table.')
param excludeSubnets array = []

@description('HUBSPOKE_CREATE_MISSING_PEERINGS: create the missing side of a hub-spoke pair.')
param createMissingPeerings bool = true

@description('HUBSPOKE_MANAGED_TABLES_ONLY: write routes only into route tables hubspoke created.')
param managedTablesOnly bool = false

@description('HUBSPOKE_ALLOW_OVER_DEFAULT_ROUTE: allow routes under a 0.0.0.0/0 appliance route.')
param allowOverDefaultRoute bool = false

@description('HUBSPOKE_SUMMARY_PREFIXES: summary prefixes routed instead of each spoke prefix (e.g. the IPAM block).')
param summaryPrefixes array = []

@description('HUBSPOKE_DISABLE_BGP_PROPAGATION: BGP route propagation off in the tables hubspoke creates.')
param disableBgpPropagation bool = false

@description('HUBSPOKE_VERIFY_EFFECTIVE: after each pass, check its verification against Azure\'s effective routes of the spokes\' network interfaces (one per spoke with sample, every one with all; each is a read).')
@allowed([
  'off'
  'sample'
  'all'
])
param verifyEffective string = 'off'

// --- Where and how it runs ---------------------------------------------------------------------

@description('Region of hubspoke\'s resources (a region with Flex Consumption: az functionapp list-flexconsumption-locations).')
param location string = deployment().location

@description('Resource group for hubspoke\'s own resources (created).')
param resourceGroupName string = 'rg-hubspoke'

@description('Resource group created in each subscription in scope that has no system topic yet, to hold the one hubspoke creates.')
param eventsResourceGroupName string = 'rg-hubspoke-events'

@description('Prefix of resource names.')
@minLength(2)
@maxLength(12)
param namePrefix string = 'hubspoke'

@description('Function App name; empty: <prefix>-<unique suffix>.')
param appName string = ''

@description('Version of the custom handler runtime on Flex Consumption (az functionapp list-flexconsumption-runtimes --location <region> --runtime custom).')
param runtimeVersion string = '1.0'

@description('Flex Consumption: most instances the app scales to (each non-HTTP function scales on its own).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: instance memory.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Days Log Analytics keeps hubspoke\'s logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Event Grid: delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param eventMaxDeliveryAttempts int = 10

@description('Event Grid: minutes an event is retried before it is dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveMinutes int = 180

@description('Object id of the person, or of the operators\' group (with operatorPrincipalType Group), who run `hubspoke results` and read dead-lettered events (az ad signed-in-user show --query id -o tsv, or az ad group show --group <name> --query id -o tsv); empty: nobody.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('The operators may also run `hubspoke results --all` and `--follow`, which retrieve every outcome and put it back (Storage Queue Data Contributor on hubspoke-outcomes). Otherwise they peek at the oldest 32 (Storage Queue Data Reader).')
param operatorReadsWholeQueue bool = false

@description('Tags on every resource hubspoke\'s deployment creates.')
param tags object = {}

// --- Derived -----------------------------------------------------------------------------------

var suffix = uniqueString(subscription().id, resourceGroupName, namePrefix)
var functionAppName = empty(appName) ? '${namePrefix}-${suffix}' : appName
var storageAccountName = take('st${replace(toLower(namePrefix), '-', '')}${suffix}', 24)
var allTags = union(tags, {
  'hubspoke:component': 'deployment'
})

// The subscriptions wired and granted here: the hubs' own, then the listed ones, lower-cased and
// without duplicates (union keeps the first occurrence). With management groups, the groups'
// subscriptions are in scope too, granted and wired at the groups (infra/management-group.bicep).
var hubSubscriptions = [for hub in hubs: toLower(split(hub, '/')[2])]
var listedSubscriptions = [for id in subscriptions: toLower(id)]
var scopeSubscriptions = union(hubSubscriptions, listedSubscriptions)
var discovers = !empty(managementGroups)

var hubspokeSettings = {
  HUBSPOKE_HUBS: join(hubs, ',')
  // Empty with management groups: the app refuses both settings at once.
  HUBSPOKE_SUBSCRIPTIONS: discovers ? '' : join(scopeSubscriptions, ',')
  HUBSPOKE_MANAGEMENT_GROUPS: join(managementGroups, ',')
  HUBSPOKE_ENROLLMENT: enrollment
  HUBSPOKE_EXCLUDE_SUBNETS: join(excludeSubnets, ',')
  HUBSPOKE_CREATE_MISSING_PEERINGS: createMissingPeerings ? 'true' : 'false'
  HUBSPOKE_MANAGED_TABLES_ONLY: managedTablesOnly ? 'true' : 'false'
  HUBSPOKE_ALLOW_OVER_DEFAULT_ROUTE: allowOverDefaultRoute ? 'true' : 'false'
  HUBSPOKE_SUMMARY_PREFIXES: join(summaryPrefixes, ',')
  HUBSPOKE_DISABLE_BGP_PROPAGATION: disableBgpPropagation ? 'true' : 'false'
  HUBSPOKE_ROUTE_LIMIT: string(routeLimit)
  HUBSPOKE_DRY_RUN: dryRun ? 'true' : 'false'
  HUBSPOKE_DRIFT_SCHEDULE: driftSchedule
  HUBSPOKE_VERIFY_EFFECTIVE: verifyEffective
}

// One system topic per subscription in scope: the existing one, or one hubspoke creates.
var topics = [for id in scopeSubscriptions: {
  subscriptionId: id
  reuse: contains(existingSystemTopics, id)
  resourceGroup: contains(existingSystemTopics, id) ? existingSystemTopics[id].resourceGroup : eventsResourceGroupName
  name: contains(existingSystemTopics, id) ? existingSystemTopics[id].name : '${namePrefix}-arm-events'
}]

// --- hubspoke's own resources ------------------------------------------------------------------

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: allTags
}

module app 'modules/app.bicep' = {
  name: '${namePrefix}-app'
  scope: group
  params: {
    location: location
    tags: allTags
    appName: functionAppName
    storageAccountName: storageAccountName
    identityName: '${namePrefix}-identity'
    planName: '${namePrefix}-plan'
    appInsightsName: '${namePrefix}-insights'
    logAnalyticsName: '${namePrefix}-logs'
    runtimeVersion: runtimeVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    logRetentionDays: logRetentionDays
    hubspokeSettings: [for setting in items(hubspokeSettings): {
      name: setting.key
      value: setting.value
    }]
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    operatorReadsWholeQueue: operatorReadsWholeQueue
  }
}

// --- The network role, assigned in every subscription in scope -----------------------------------

// Defined in the hosting subscription, whatever the order of `hubs` and `subscriptions`: a custom
// role's name is a tenant-wide GUID, so a definition that moved to another subscription on a later
// deployment would conflict with itself. It is assignable in the hosting subscription and in
// every subscription in scope.
module networkRole 'modules/network-role.bicep' = {
  name: '${namePrefix}-network-role'
  scope: subscription()
  params: {
    roleName: 'hubspoke network operator (${functionAppName})'
    subscriptionIds: union([subscription().subscriptionId], scopeSubscriptions)
  }
}

module networkRoleAssignments 'modules/network-role-assignment.bicep' = [for id in scopeSubscriptions: {
  name: take('${namePrefix}-network-role-${id}', 64)
  scope: subscription(id)
  params: {
    roleDefinitionName: networkRole.outputs.roleDefinitionName
    principalId: app.outputs.identityPrincipalId
  }
}]

// --- A scope of management groups: the identities and rights of the event wiring policy ------------

module eventDestinationRole 'modules/event-destination-role.bicep' = if (discovers) {
  name: '${namePrefix}-event-destination-role'
  scope: subscription()
  params: {
    roleName: 'hubspoke event destination (${functionAppName})'
  }
}

module eventWiringIdentities 'modules/event-wiring-identities.bicep' = if (discovers) {
  name: '${namePrefix}-event-wiring-identities'
  scope: group
  params: {
    namePrefix: namePrefix
    location: location
    tags: allTags
    appName: app.outputs.appName
    storageAccountName: app.outputs.storageAccountName
    deadLetterContainerName: app.outputs.deadLetterContainerName
    destinationRoleDefinitionName: discovers ? eventDestinationRole.outputs.roleDefinitionName : ''
  }
}

// --- Event Grid: one system topic per subscription in scope ----------------------------------------

module eventGroups 'modules/events-resource-group.bicep' = [for topic in topics: if (!topic.reuse) {
  name: take('${namePrefix}-events-rg-${topic.subscriptionId}', 64)
  scope: subscription(topic.subscriptionId)
  params: {
    name: topic.resourceGroup
    location: location
    tags: allTags
  }
}]

module newTopics 'modules/system-topic.bicep' = [for (topic, i) in topics: if (!topic.reuse) {
  name: take('${namePrefix}-topic-${topic.subscriptionId}', 64)
  scope: resourceGroup(topic.subscriptionId, topic.resourceGroup)
  params: {
    name: topic.name
    tags: allTags
  }
  dependsOn: [
    eventGroups[i]
  ]
}]

module existingTopics 'modules/system-topic-existing.bicep' = [for topic in topics: if (topic.reuse) {
  name: take('${namePrefix}-topic-ref-${topic.subscriptionId}', 64)
  scope: resourceGroup(topic.subscriptionId, topic.resourceGroup)
  params: {
    name: topic.name
  }
}]

module deadLetterAccess 'modules/dead-letter-access.bicep' = [for (topic, i) in topics: {
  name: take('${namePrefix}-dead-letter-${topic.subscriptionId}', 64)
  scope: group
  params: {
    storageAccountName: app.outputs.storageAccountName
    containerName: app.outputs.deadLetterContainerName
    topicPrincipalId: topic.reuse ? existingTopics[i].outputs.principalId : newTopics[i].outputs.principalId
  }
}]

module eventSubscriptions 'modules/event-subscription.bicep' = [for (topic, i) in topics: if (deployEventSubscriptions) {
  name: take('${namePrefix}-events-${topic.subscriptionId}', 64)
  scope: resourceGroup(topic.subscriptionId, topic.resourceGroup)
  params: {
    topicName: topic.name
    name: take('${functionAppName}-network-events', 64)
    functionResourceId: '${app.outputs.appId}/functions/OnNetworkEvent'
    deadLetterStorageAccountId: app.outputs.storageAccountId
    deadLetterContainerName: app.outputs.deadLetterContainerName
    maxDeliveryAttempts: eventMaxDeliveryAttempts
    eventTimeToLiveMinutes: eventTimeToLiveMinutes
  }
  dependsOn: [
    deadLetterAccess[i]
    newTopics[i]
  ]
}]

// --- What the next steps need ------------------------------------------------------------------

output resourceGroupName string = group.name
output functionAppName string = app.outputs.appName
output backfillUrl string = 'https://${app.outputs.defaultHostName}/api/backfill'
output outcomesQueueUrl string = app.outputs.outcomesQueueUrl
output storageAccountName string = app.outputs.storageAccountName
output identityPrincipalId string = app.outputs.identityPrincipalId
output identityClientId string = app.outputs.identityClientId
output subscriptionsInScope array = scopeSubscriptions
output networkRoleDefinitionName string = networkRole.outputs.roleDefinitionName
output systemTopics array = topics
output eventSubscriptionsDeployed bool = deployEventSubscriptions
output managementGroups array = managementGroups
@description('The parameter eventWiring of infra/management-group.bicep (empty without managementGroups).')
output eventWiring object = discovers ? {
  wiringIdentityId: eventWiringIdentities.outputs.wiringIdentityId
  wiringPrincipalId: eventWiringIdentities.outputs.wiringPrincipalId
  deadLetterIdentityId: eventWiringIdentities.outputs.deadLetterIdentityId
  functionResourceId: '${app.outputs.appId}/functions/OnNetworkEvent'
  deadLetterStorageAccountId: app.outputs.storageAccountId
  deadLetterContainerName: app.outputs.deadLetterContainerName
  eventsResourceGroupName: eventsResourceGroupName
  topicName: '${namePrefix}-arm-events'
  eventSubscriptionName: take('${functionAppName}-network-events', 64)
} : {}
