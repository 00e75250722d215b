//! The subscriptions a scope that needs no list stands for (`docs/design.md` section 5), read
//! from Resource Manager each time they are needed, never from Resource Graph (which lags: a
//! subscription vended a minute ago must count at once):
//!
//! - `HUBSPOKE_SUBSCRIPTIONS=*`: every subscription the identity can read, `GET
//!   /subscriptions?api-version=2022-12-01` ("Subscriptions - List",
//!   learn.microsoft.com/rest/api/resources/subscriptions/list), followed through `nextLink`.
//! - `HUBSPOKE_MANAGEMENT_GROUPS`: every subscription under each group at any depth, `GET
//!   /providers/Microsoft.Management/managementGroups/{id}/descendants?api-version=2023-04-01`
//!   ("Management Groups - Get Descendants", learn.microsoft.com/rest/api/managementgroups/
//!   management-groups/get-descendants), followed through `nextLink`. A subscription is known by
//!   its id, `/subscriptions/{id}`: the reference gives its `type` as `/subscriptions` in one
//!   place and `Microsoft.Management/managementGroups/subscriptions` in its example.
//!
//! Ids that could not be a subscription's (anything but letters, digits and hyphens) are left
//! out rather than built into a path.
use std::collections::BTreeSet;

use serde_json::Value;

use crate::client::ArmClient;
use crate::error::ArmError;

/// The api-version of the subscriptions listing.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";

/// The api-version of the management group API.
pub const MANAGEMENT_GROUPS_API_VERSION: &str = "2023-04-01";

/// A subscription id hubspoke builds paths with: a GUID's characters only.
pub fn is_subscription_id(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Every subscription the identity can read, lower-cased.
pub async fn readable_subscriptions(client: &ArmClient) -> Result<BTreeSet<String>, ArmError> {
    let items = client
        .list(&format!(
            "/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}"
        ))
        .await?;
    Ok(items
        .iter()
        .filter_map(|item| item.get("subscriptionId").and_then(Value::as_str))
        .filter(|id| is_subscription_id(id))
        .map(str::to_ascii_lowercase)
        .collect())
}

/// Every subscription under any of `groups`, at any depth, lower-cased. A group that cannot be
/// read (404, 403) is an error naming it: the scope would silently shrink otherwise.
pub async fn management_group_subscriptions(
    client: &ArmClient,
    groups: &[String],
) -> Result<BTreeSet<String>, ArmError> {
    let mut subscriptions = BTreeSet::new();
    for group in groups {
        let items = client
            .list(&format!(
                "/providers/Microsoft.Management/managementGroups/{group}/descendants?api-version={MANAGEMENT_GROUPS_API_VERSION}"
            ))
            .await?;
        subscriptions.extend(items.iter().filter_map(subscription_of_descendant));
    }
    Ok(subscriptions)
}

/// The subscription a descendant is, if it is one.
fn subscription_of_descendant(item: &Value) -> Option<String> {
    let id = item.get("id").and_then(Value::as_str)?;
    let mut parts = id.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(word), Some(subscription), None)
            if word.eq_ignore_ascii_case("subscriptions") && is_subscription_id(subscription) =>
        {
            Some(subscription.to_ascii_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_told_from_groups_by_their_id_in_the_specifications_example() {
        let example: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/azure-rest-api-specs/managementgroups-2023-04-01/examples/GetDescendants.json"
        ))
        .unwrap();
        let found: Vec<String> = example["responses"]["200"]["body"]["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(subscription_of_descendant)
            .collect();
        assert_eq!(found, ["20000000-0004-0000-0000-000000000000"]);
        for odd in [
            serde_json::json!({"id": "/subscriptions/a/b"}),
            serde_json::json!({"id": "/subscriptions/a%2Fb"}),
            serde_json::json!({"name": "x"}),
        ] {
            assert_eq!(subscription_of_descendant(&odd), None, "{odd}");
        }
    }
}
