// hubspoke's deployment at a management group, for a scope that needs no list of subscriptions
// (HUBSPOKE_MANAGEMENT_GROUPS: docs/deploy.md, "A scope of management groups"). Deployed once per
// group named in main.bicep's managementGroups, after main.bicep, from its outputs:
//   az deployment mg create --management-group-id <group> --location <region> \
//     --template-file infra/management-group.bicep --parameters infra/management-group.bicepparam
// It makes, at the group, for every subscription under it, present and future:
//   1. the custom network role, assignable at the group and assigned there once to hubspoke's
//      identity (modules/network-role-management-group.bicep);
//   2. the event wiring: a DeployIfNotExists policy definition and its assignment, whose
//      user-assigned identity holds a custom role at the group (modules/event-wiring-role.bicep),
//      and a remediation for the subscriptions that exist (modules/event-wiring-policy.bicep).
// The hubs' own subscriptions, in the group or not, keep main.bicep's role and wiring.
targetScope = 'managementGroup'

@description('Function App name: main.bicep\'s functionAppName output (names the roles).')
param functionAppName string

@description('hubspoke\'s identity: main.bicep\'s identityPrincipalId output.')
param identityPrincipalId string

@description('main.bicep\'s eventWiring output: the identities, the function and the names of the topic and the event subscription.')
param eventWiring object

@description('Where the policy\'s deployments live (any region).')
param location string = deployment().location

@description('Event Grid: delivery attempts before an event is dead-lettered (as main.bicep).')
@minValue(1)
@maxValue(30)
param eventMaxDeliveryAttempts int = 10

@description('Event Grid: minutes an event is retried before it is dead-lettered (as main.bicep).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveMinutes int = 180

@description('Tags on the resources the policy deploys.')
param tags object = {}

var allTags = union(tags, {
  'hubspoke:component': 'event-wiring'
})

module networkRole 'modules/network-role-management-group.bicep' = {
  name: take('hubspoke-network-role-${managementGroup().name}', 64)
  params: {
    roleName: 'hubspoke network operator (${functionAppName}, ${managementGroup().name})'
    principalId: identityPrincipalId
  }
}

module wiringRole 'modules/event-wiring-role.bicep' = {
  name: take('hubspoke-event-wiring-role-${managementGroup().name}', 64)
  params: {
    roleName: 'hubspoke event wiring (${functionAppName}, ${managementGroup().name})'
    principalId: eventWiring.wiringPrincipalId
  }
}

module wiringPolicy 'modules/event-wiring-policy.bicep' = {
  name: take('hubspoke-event-wiring-${managementGroup().name}', 64)
  params: {
    policyName: 'hubspoke-event-wiring'
    location: location
    tags: allTags
    wiringIdentityId: eventWiring.wiringIdentityId
    wiringRoleDefinitionId: wiringRole.outputs.roleDefinitionId
    functionResourceId: eventWiring.functionResourceId
    deadLetterStorageAccountId: eventWiring.deadLetterStorageAccountId
    deadLetterContainerName: eventWiring.deadLetterContainerName
    deadLetterIdentityId: eventWiring.deadLetterIdentityId
    eventsResourceGroupName: eventWiring.eventsResourceGroupName
    topicName: eventWiring.topicName
    eventSubscriptionName: eventWiring.eventSubscriptionName
    maxDeliveryAttempts: eventMaxDeliveryAttempts
    eventTimeToLiveMinutes: eventTimeToLiveMinutes
  }
}

output networkRoleDefinitionId string = networkRole.outputs.roleDefinitionId
output policyAssignmentId string = wiringPolicy.outputs.policyAssignmentId
output remediationName string = wiringPolicy.outputs.remediationName
