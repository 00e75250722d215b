// Example parameters: copy this file (e.g. to hubspoke.bicepparam, next to main.bicep), replace
// the ids with yours, and deploy it with the commands of docs/deploy.md.
using 'main.bicep'

// The hub VNets hubspoke keeps transitive (their subscriptions are in scope automatically).
param hubs = [
  '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-network/providers/Microsoft.Network/virtualNetworks/Hub'
]

// Landing-zone subscriptions that hold spokes. Same tenant only: a managed identity cannot act in
// another tenant.
param subscriptions = [
  '00000000-0000-0000-0000-000000000002'
  '00000000-0000-0000-0000-000000000003'
]

// Or, for a landing-zone estate where subscriptions are vended all the time: the management
// groups they are vended into (HUBSPOKE_MANAGEMENT_GROUPS), `subscriptions` then left empty, and
// infra/management-group.bicep deployed at each group (docs/deploy.md).
param managementGroups = []

// Subscriptions that already have a Microsoft.Resources.Subscriptions system topic (one is allowed
// per subscription): hubspoke adds its event subscription to it. `infra/find-system-topics` prints
// this object for your subscriptions.
param existingSystemTopics = {
  '00000000-0000-0000-0000-000000000003': {
    resourceGroup: 'rg-platform-events'
    name: 'subscription-events'
  }
}

// false for the first deployment; true once the package is published (docs/deploy.md, step 4).
param deployEventSubscriptions = false

// Every 15 minutes (NCRONTAB with seconds).
param driftSchedule = '0 */15 * * * *'

// Azure's published limit of routes per route table.
param routeLimit = 400

// Plan only until the first backfill has been reviewed; then false (docs/deploy.md, step 5).
param dryRun = true

param location = 'westeurope'
param resourceGroupName = 'rg-hubspoke'

// You, to read outcomes (`hubspoke results`) and dead-lettered events:
// az ad signed-in-user show --query id -o tsv
param operatorPrincipalId = ''
