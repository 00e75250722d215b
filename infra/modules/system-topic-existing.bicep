// An existing Microsoft.Resources.Subscriptions system topic, reused: a subscription has at most
// one, so hubspoke adds its event subscription to it rather than creating a second. The topic must
// have a system-assigned identity (dead-lettering uses it); docs/deploy.md shows how to check and
// how to enable it without touching anything else on the topic.
targetScope = 'resourceGroup'

param name string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: name
}

output name string = topic.name
output principalId string = topic.identity.principalId
