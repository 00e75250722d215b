// The Event Grid system topic of one subscription in scope (topic type
// Microsoft.Resources.Subscriptions: every ARM write and delete in the subscription), created by
// hubspoke because the subscription has none. Azure allows one such topic per subscription: where
// one exists already, main.bicep references it through modules/system-topic-existing.bicep instead.
targetScope = 'resourceGroup'

param name string
param tags object

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  // System topics of Azure subscriptions are global.
  location: 'global'
  tags: tags
  // Its identity writes dead-lettered events to hubspoke's storage account, where shared keys are
  // disabled (modules/dead-letter-access.bicep grants it that one container).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output name string = topic.name
output principalId string = topic.identity.principalId
