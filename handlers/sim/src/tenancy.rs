//! The Resource Manager's tenant-level reads a client makes when it signs in: the subscriptions
//! the caller can see and its tenant. The simulator has one tenant
//! ([`crate::identity::TENANT_ID`]) and the subscriptions of its estate: those that hold at least
//! one resource, in the casing of their first resource's id, then those declared without
//! resources (a subscription vended after start, `PUT /_sim/subscriptions/{id}`, or placed in a
//! management group: [`crate::management_groups`]).
//!
//! Shapes, from the REST API reference (api-version 2022-12-01) and its examples
//! (azure-rest-api-specs `specification/resources/resource-manager/Microsoft.Resources/stable/
//! 2022-12-01/examples/GetSubscriptions.json`, `GetSubscription.json`, `GetTenants.json`):
//! - `GET /subscriptions` ("Subscriptions - List",
//!   learn.microsoft.com/rest/api/resources/subscriptions/list): `{"value": [Subscription],
//!   "count": {"type": "Total", "value": N}}`, a Subscription being `{id: "/subscriptions/{id}",
//!   subscriptionId, tenantId, displayName, state, subscriptionPolicies {locationPlacementId,
//!   quotaId, spendingLimit}, authorizationSource}`. The `count` is not in the specification but
//!   is in Azure's answers; a single page has no `nextLink`.
//! - `GET /subscriptions/{id}` ("Subscriptions - Get",
//!   learn.microsoft.com/rest/api/resources/subscriptions/get): one Subscription; 404
//!   `SubscriptionNotFound` for one the caller cannot see.
//! - `GET /tenants` ("Tenants - List", learn.microsoft.com/rest/api/resources/tenants/list):
//!   `{"value": [{id: "/tenants/{id}", tenantId, tenantCategory, displayName, tenantType}]}`.
//!
//! They are ARM requests like the others: bearer token, api-version and throttling (the
//! tenant-level reads count against the caller's tenant bucket, not a subscription's) come first.
use serde_json::{json, Value};

use crate::identity::TENANT_ID;
use crate::management_groups::Directory;
use crate::world::{ArmError, Reply};

/// The display name of the simulator's tenant.
pub const TENANT_DISPLAY_NAME: &str = "hubspoke simulator";

/// Every subscription of the tenant: those holding resources of `estate` (a snapshot), then those
/// `directory` declares, each once.
pub(crate) fn all_subscriptions(estate: &Value, directory: &Directory) -> Vec<String> {
    let ids = subscription_ids(estate);
    with_declared(ids, directory)
}

/// [`all_subscriptions`] from the ids of the estate's resources.
pub(crate) fn all_subscriptions_of<'a>(
    ids: impl Iterator<Item = &'a str>,
    directory: &Directory,
) -> Vec<String> {
    with_declared(subscriptions_of_ids(ids), directory)
}

fn with_declared(mut all: Vec<String>, directory: &Directory) -> Vec<String> {
    let mut seen: std::collections::HashSet<String> =
        all.iter().map(|s| s.to_ascii_lowercase()).collect();
    for declared in directory.declared() {
        if seen.insert(declared.to_ascii_lowercase()) {
            all.push(declared.clone());
        }
    }
    all
}

/// Answers `GET /subscriptions`, `GET /subscriptions/{id}` and `GET /tenants` (`segments` are the
/// path's, split on `/`), given every subscription of the tenant ([`all_subscriptions`]).
pub(crate) fn handle(method: &str, segments: &[&str], all: &[String]) -> Result<Reply, ArmError> {
    if method != "GET" {
        return Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The requested method '{method}' is not allowed for this resource."),
        ));
    }
    match segments {
        [tenants] if tenants.eq_ignore_ascii_case("tenants") => Ok(Reply::ok(json!({
            "value": [tenant()],
        }))),
        [_] => {
            let value: Vec<Value> = all.iter().map(|id| subscription(id)).collect();
            let count = value.len();
            Ok(Reply::ok(json!({
                "value": value,
                "count": {"type": "Total", "value": count},
            })))
        }
        [_, wanted] => all
            .iter()
            .find(|id| id.eq_ignore_ascii_case(wanted))
            .map(|id| Reply::ok(subscription(id)))
            .ok_or_else(|| {
                ArmError::new(
                    404,
                    "SubscriptionNotFound",
                    format!("The subscription '{wanted}' could not be found."),
                )
            }),
        _ => Err(ArmError::new(
            404,
            "InvalidResourceType",
            format!(
                "The resource type could not be found for path '/{}'.",
                segments.join("/")
            ),
        )),
    }
}

/// The subscriptions holding at least one resource of the estate, in order of first appearance,
/// each once whatever the casing of the ids that name it.
pub(crate) fn subscription_ids(estate: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(kinds) = estate.as_object() else {
        return out;
    };
    let ids = kinds
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|resource| resource.get("id").and_then(Value::as_str));
    out.extend(subscriptions_of_ids(ids));
    out
}

/// The subscriptions of `ids`, in order of first appearance, each once whatever its casing.
fn subscriptions_of_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for id in ids {
        let mut parts = id.split('/');
        let (Some(""), Some(word), Some(subscription)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if word.eq_ignore_ascii_case("subscriptions")
            && !subscription.is_empty()
            && seen.insert(subscription.to_ascii_lowercase())
        {
            out.push(subscription.to_string());
        }
    }
    out
}

/// One subscription as "Subscriptions - Get" answers it. The display name is the id: the
/// simulator knows no other name, and a name shared by two subscriptions would make
/// `az account set --subscription NAME` ambiguous.
fn subscription(id: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{id}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": id,
        "tenantId": TENANT_ID,
        "displayName": id,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    })
}

/// The simulator's tenant as "Tenants - List" answers it.
fn tenant() -> Value {
    json!({
        "id": format!("/tenants/{TENANT_ID}"),
        "tenantId": TENANT_ID,
        "tenantCategory": "Home",
        "displayName": TENANT_DISPLAY_NAME,
        "tenantType": "AAD",
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_those_holding_resources_once_each() {
        let estate = json!({
            "virtualNetworks": [
                {"id": "/subscriptions/AAA/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"},
                {"id": "/subscriptions/aaa/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/w"},
            ],
            "routeTables": [
                {"id": "/subscriptions/bbb/resourceGroups/rg/providers/Microsoft.Network/routeTables/t"},
                {"name": "no id"},
            ],
            "virtualNetworkGateways": [],
        });
        assert_eq!(subscription_ids(&estate), ["AAA", "bbb"]);
        assert!(subscription_ids(&json!({})).is_empty());
    }

    #[test]
    fn an_unknown_subscription_is_not_found() {
        let estate = json!({"virtualNetworks": [{"id": "/subscriptions/aaa/resourceGroups/rg"}]});
        let mut directory = Directory::default();
        directory.declare_subscription("vended").unwrap();
        let all = all_subscriptions(&estate, &directory);
        assert_eq!(all, ["aaa", "vended"]);
        let found = handle("GET", &["subscriptions", "AAA"], &all).unwrap();
        assert_eq!(found.body.unwrap()["subscriptionId"], "aaa");
        assert!(handle("GET", &["subscriptions", "Vended"], &all).is_ok());
        let error = handle("GET", &["subscriptions", "zzz"], &all).unwrap_err();
        assert_eq!(
            (error.status, error.code.as_str()),
            (404, "SubscriptionNotFound")
        );
        let error = handle("PUT", &["tenants"], &all).unwrap_err();
        assert_eq!(error.status, 405);
    }
}
