// The Event Grid wiring of every subscription under a management group, present and future, by
// Azure Policy: a DeployIfNotExists definition whose deployment holds exactly the subscription's
// Microsoft.Resources.Subscriptions system topic and hubspoke's event subscription to
// OnNetworkEvent (the same filter, retries and dead-lettering as modules/event-subscription.bicep;
// infra/tests/test_infra.py checks they match), assigned at the group with a user-assigned
// identity, and a remediation for the subscriptions that exist already.
//
// Azure Policy evaluates a subscription when it is created or changes and every 24 hours, and
// runs the deployment for a non-compliant one (Learn, "Azure Policy definitions deployIfNotExists
// effect": deploymentScope Subscription, existenceScope, roleDefinitionIds); a subscription
// vended into the group is wired minutes after, with no deployment of hubspoke. Until then, and
// wherever the policy cannot deploy (a subscription with a system topic of its own: Azure allows
// one per subscription), the drift check finds its spokes (docs/deploy.md).
targetScope = 'managementGroup'

@description('Name of the policy definition and assignment (at most 24 characters at a management group).')
@maxLength(24)
param policyName string

@description('Where the policy\'s deployments and the assignment\'s identity metadata live.')
param location string

param tags object

@description('Resource id of the user-assigned identity the assignment deploys with.')
param wiringIdentityId string

@description('Resource id of the custom role of modules/event-wiring-role.bicep.')
param wiringRoleDefinitionId string

@description('Resource id of the OnNetworkEvent function: <function app id>/functions/OnNetworkEvent.')
param functionResourceId string

@description('Resource id of hubspoke\'s storage account (dead-letter destination).')
param deadLetterStorageAccountId string
param deadLetterContainerName string

@description('Resource id of the user-assigned identity every topic carries to dead-letter.')
param deadLetterIdentityId string

@description('Resource group of the system topic in each subscription (main.bicep\'s eventsResourceGroupName).')
param eventsResourceGroupName string

@description('Name of the system topic (main.bicep\'s: <prefix>-arm-events).')
param topicName string

@description('Name of the event subscription (main.bicep\'s: <app>-network-events).')
param eventSubscriptionName string

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

// What the policy deploys in a subscription: the resource group, then, in it, the system topic
// and the event subscription. Template expressions ('[subscription().id]', '[resourceId(...)]')
// are the deployment's, evaluated in the subscription wired.
var template = {
  '$schema': 'https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#'
  contentVersion: '1.0.0.0'
  resources: [
    {
      type: 'Microsoft.Resources/resourceGroups'
      apiVersion: '2024-03-01'
      name: eventsResourceGroupName
      location: location
      tags: tags
    }
    {
      type: 'Microsoft.Resources/deployments'
      apiVersion: '2022-09-01'
      name: 'hubspoke-event-wiring'
      resourceGroup: eventsResourceGroupName
      dependsOn: [
        '[subscriptionResourceId(\'Microsoft.Resources/resourceGroups\', \'${eventsResourceGroupName}\')]'
      ]
      properties: {
        mode: 'Incremental'
        template: {
          '$schema': 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#'
          contentVersion: '1.0.0.0'
          resources: [
            {
              type: 'Microsoft.EventGrid/systemTopics'
              apiVersion: '2022-06-15'
              name: topicName
              location: 'global'
              tags: tags
              identity: {
                type: 'UserAssigned'
                userAssignedIdentities: {
                  '${deadLetterIdentityId}': {}
                }
              }
              properties: {
                source: '[subscription().id]'
                topicType: 'Microsoft.Resources.Subscriptions'
              }
            }
            {
              type: 'Microsoft.EventGrid/systemTopics/eventSubscriptions'
              apiVersion: '2022-06-15'
              name: '${topicName}/${eventSubscriptionName}'
              dependsOn: [
                '[resourceId(\'Microsoft.EventGrid/systemTopics\', \'${topicName}\')]'
              ]
              properties: {
                destination: {
                  endpointType: 'AzureFunction'
                  properties: {
                    resourceId: functionResourceId
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
                retryPolicy: {
                  maxDeliveryAttempts: maxDeliveryAttempts
                  eventTimeToLiveInMinutes: eventTimeToLiveMinutes
                }
                deadLetterWithResourceIdentity: {
                  identity: {
                    type: 'UserAssigned'
                    userAssignedIdentity: deadLetterIdentityId
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
          ]
        }
      }
    }
  ]
}

resource definition 'Microsoft.Authorization/policyDefinitions@2023-04-01' = {
  name: policyName
  properties: {
    displayName: 'hubspoke: deliver each subscription\'s network writes to OnNetworkEvent'
    description: 'Deploys, in every subscription that lacks it, the Microsoft.Resources.Subscriptions Event Grid system topic (rg-hubspoke-events) and hubspoke\'s event subscription to its OnNetworkEvent function.'
    policyType: 'Custom'
    mode: 'All'
    metadata: {
      category: 'Event Grid'
    }
    parameters: {
      effect: {
        type: 'String'
        allowedValues: [
          'DeployIfNotExists'
          'AuditIfNotExists'
          'Disabled'
        ]
        defaultValue: 'DeployIfNotExists'
      }
    }
    policyRule: {
      if: {
        field: 'type'
        equals: 'Microsoft.Resources/subscriptions'
      }
      then: {
        effect: '[parameters(\'effect\')]'
        details: {
          // The related resource: hubspoke's event subscription, by name, in the topic's resource
          // group. Absent: the subscription is not compliant and the deployment runs.
          type: 'Microsoft.EventGrid/systemTopics/eventSubscriptions'
          name: '${topicName}/${eventSubscriptionName}'
          resourceGroupName: eventsResourceGroupName
          existenceScope: 'ResourceGroup'
          // At the subscription: the deployment creates the resource group first.
          deploymentScope: 'Subscription'
          roleDefinitionIds: [
            wiringRoleDefinitionId
          ]
          deployment: {
            location: location
            properties: {
              mode: 'incremental'
              template: template
            }
          }
        }
      }
    }
  }
}

resource assignment 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: policyName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${wiringIdentityId}': {}
    }
  }
  properties: {
    displayName: 'hubspoke: event wiring of every subscription under this management group'
    policyDefinitionId: definition.id
    enforcementMode: 'Default'
  }
}

// The subscriptions that exist already: a remediation deploys the wiring where the last
// compliance evaluation found it missing (at a management group, only ExistingNonCompliant is
// supported). The first evaluation of a new assignment takes up to about 30 minutes: a
// remediation made before it finds nothing to do; docs/deploy.md says how to start another.
resource remediation 'Microsoft.PolicyInsights/remediations@2021-10-01' = {
  name: guid(assignment.id, 'existing-subscriptions')
  properties: {
    policyAssignmentId: assignment.id
    resourceDiscoveryMode: 'ExistingNonCompliant'
  }
}

output policyAssignmentId string = assignment.id
output remediationName string = remediation.name
