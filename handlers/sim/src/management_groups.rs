//! The tenant's directory as Resource Manager shows it: management groups, the subscriptions
//! placed in them, and subscriptions declared without any resource yet (a subscription vended
//! after start holds nothing until its landing zone deploys). `GET /subscriptions`
//! ([`crate::tenancy`]), Resource Graph's `managementGroups` scope ([`crate::graph`]) and the
//! management group API below read it; the control API (`/_sim/managementGroups`,
//! `/_sim/subscriptions`) and [`crate::SimHandle`] change it.
//!
//! As in Azure, the tenant has a root management group whose id is the tenant's id, every other
//! group has one parent (the root unless said otherwise), and a subscription sits in exactly one
//! group: the root until it is placed in another (Learn, "What are Azure management groups?":
//! "Each management group and subscription can support only one parent"; a new subscription
//! lands in the root group, or the default group hierarchy settings name).
//!
//! Answers (management group API, api-version 2023-04-01; azure-rest-api-specs
//! `specification/managementgroups/.../stable/2023-04-01/examples/GetDescendants.json`,
//! `GetManagementGroup.json`, `ListManagementGroups.json`):
//! - `GET /providers/Microsoft.Management/managementGroups`: `{"value": [{id, type, name,
//!   properties: {tenantId, displayName}}]}`;
//! - `GET .../managementGroups/{id}`: `{id, type, name, properties: {tenantId, displayName,
//!   details: {parent: {id, name, displayName}}}}`;
//! - `GET .../managementGroups/{id}/descendants`: every group and subscription below it, at any
//!   depth, `{"value": [{id, type, name, properties: {displayName, parent: {id}}}], "nextLink"}`;
//!   a group's type is `Microsoft.Management/managementGroups`, a subscription's
//!   `Microsoft.Management/managementGroups/subscriptions` and its id `/subscriptions/{id}`.
//!   Paged by `$top` (default: the simulator's page size) and `$skiptoken`.
//!
//! An unknown group is 404 `NotFound` (UNCONFIRMED: Azure may answer 403 `AuthorizationFailed`
//! to hide whether a group the caller cannot read exists; a client must treat both as "not
//! readable").
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::identity::TENANT_ID;
use crate::world::{ArmError, Reply};

/// The type of a management group in answers.
const GROUP_TYPE: &str = "Microsoft.Management/managementGroups";
/// The type of a subscription among a group's descendants (the specification's example).
const SUBSCRIPTION_TYPE: &str = "Microsoft.Management/managementGroups/subscriptions";

/// One management group (not the root, which is implicit).
#[derive(Debug, Clone)]
struct Group {
    /// As first given.
    id: String,
    display_name: String,
    /// Lower-cased id of the parent; `None`: the root group.
    parent: Option<String>,
}

/// Management groups, where each subscription sits, and the subscriptions declared.
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    /// By lower-cased id.
    groups: BTreeMap<String, Group>,
    /// Lower-cased subscription id → lower-cased group id (absent: the root group).
    placement: BTreeMap<String, String>,
    /// Subscriptions declared (`PUT /_sim/subscriptions/{id}`), placed or not, as first given.
    declared: Vec<String>,
}

/// A group as the control API sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub display_name: Option<String>,
    /// The parent group's id; `None`: the root group.
    pub parent: Option<String>,
    /// The subscriptions placed directly in the group (taken from wherever they were).
    pub subscriptions: Vec<String>,
}

fn is_root(id: &str) -> bool {
    id.eq_ignore_ascii_case(TENANT_ID)
}

fn group_path(id: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{id}")
}

/// Ids the simulator accepts for groups and subscriptions: what Azure allows in a group id
/// (letters, digits, `-`, `_`, `.`, `(`, `)`), so nothing can reshape a path.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 90
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

impl Directory {
    /// Declares a subscription (it then lists even without resources). Idempotent.
    pub(crate) fn declare_subscription(&mut self, id: &str) -> Result<(), String> {
        if !valid_id(id) {
            return Err(format!("{id:?} is not a subscription id"));
        }
        if !self.declared.iter().any(|s| s.eq_ignore_ascii_case(id)) {
            self.declared.push(id.to_string());
        }
        Ok(())
    }

    /// Creates or replaces group `id`: its name, parent and the subscriptions placed directly in
    /// it (moved from wherever they were; those it had and no longer lists go back to the root).
    pub(crate) fn put_group(&mut self, id: &str, spec: &GroupSpec) -> Result<(), String> {
        if !valid_id(id) || is_root(id) {
            return Err(format!(
                "{id:?} is not a management group id the simulator can create (the root group, the tenant's id, is implicit)"
            ));
        }
        let key = id.to_ascii_lowercase();
        let parent = match &spec.parent {
            None => None,
            Some(parent) if is_root(parent) => None,
            Some(parent) => {
                let parent_key = parent.to_ascii_lowercase();
                if !self.groups.contains_key(&parent_key) {
                    return Err(format!("the parent group {parent} does not exist"));
                }
                // A group may not sit under itself.
                let mut cursor = Some(parent_key.clone());
                while let Some(current) = cursor {
                    if current == key {
                        return Err(format!("{parent} is {id} or below it: a cycle"));
                    }
                    cursor = self.groups.get(&current).and_then(|g| g.parent.clone());
                }
                Some(parent_key)
            }
        };
        for subscription in &spec.subscriptions {
            self.declare_subscription(subscription)?;
        }
        let display_name = spec
            .display_name
            .clone()
            .or_else(|| self.groups.get(&key).map(|g| g.display_name.clone()))
            .unwrap_or_else(|| id.to_string());
        let kept = self
            .groups
            .get(&key)
            .map(|g| g.id.clone())
            .unwrap_or_else(|| id.to_string());
        self.groups.insert(
            key.clone(),
            Group {
                id: kept,
                display_name,
                parent,
            },
        );
        self.placement.retain(|_, group| *group != key);
        for subscription in &spec.subscriptions {
            self.placement
                .insert(subscription.to_ascii_lowercase(), key.clone());
        }
        Ok(())
    }

    /// Deletes group `id`: refused while it holds groups or subscriptions, as Azure does.
    pub(crate) fn delete_group(&mut self, id: &str) -> Result<bool, String> {
        let key = id.to_ascii_lowercase();
        if !self.groups.contains_key(&key) {
            return Ok(false);
        }
        let has_children = self
            .groups
            .values()
            .any(|g| g.parent.as_deref() == Some(key.as_str()))
            || self.placement.values().any(|g| *g == key);
        if has_children {
            return Err(format!(
                "management group {id} still has children: move or delete them first"
            ));
        }
        self.groups.remove(&key);
        Ok(true)
    }

    /// The subscriptions declared, in order.
    pub(crate) fn declared(&self) -> &[String] {
        &self.declared
    }

    /// Whether group `id` exists (the root always does).
    pub(crate) fn exists(&self, id: &str) -> bool {
        is_root(id) || self.groups.contains_key(&id.to_ascii_lowercase())
    }

    /// The lower-cased ids of `id` and every group below it.
    fn subtree(&self, id: &str) -> Vec<String> {
        if is_root(id) {
            let mut all = vec![TENANT_ID.to_ascii_lowercase()];
            all.extend(self.groups.keys().cloned());
            return all;
        }
        let mut out = vec![id.to_ascii_lowercase()];
        let mut index = 0;
        while index < out.len() {
            let current = out[index].clone();
            out.extend(
                self.groups
                    .iter()
                    .filter(|(_, g)| g.parent.as_deref() == Some(current.as_str()))
                    .map(|(key, _)| key.clone()),
            );
            index += 1;
        }
        out
    }

    /// Whether `subscription` (one of `all`, every subscription of the tenant) sits under group
    /// `id`, at any depth.
    fn under(&self, subscription: &str, id: &str) -> bool {
        if is_root(id) {
            return true;
        }
        let mut cursor = self
            .placement
            .get(&subscription.to_ascii_lowercase())
            .cloned();
        while let Some(current) = cursor {
            if current.eq_ignore_ascii_case(id) {
                return true;
            }
            cursor = self.groups.get(&current).and_then(|g| g.parent.clone());
        }
        false
    }

    /// The subscriptions among `all` under any of `groups`; `Err` names a group that does not
    /// exist.
    pub(crate) fn subscriptions_under(
        &self,
        groups: &[String],
        all: &[String],
    ) -> Result<Vec<String>, String> {
        if let Some(unknown) = groups.iter().find(|g| !self.exists(g)) {
            return Err(unknown.clone());
        }
        Ok(all
            .iter()
            .filter(|s| groups.iter().any(|g| self.under(s, g)))
            .cloned()
            .collect())
    }

    /// The parent of a subscription, as a group path.
    fn parent_of_subscription(&self, subscription: &str) -> String {
        group_path(
            &self
                .placement
                .get(&subscription.to_ascii_lowercase())
                .and_then(|key| self.groups.get(key))
                .map(|g| g.id.clone())
                .unwrap_or_else(|| TENANT_ID.to_string()),
        )
    }

    fn parent_of_group(&self, group: &Group) -> (String, String) {
        match group.parent.as_ref().and_then(|key| self.groups.get(key)) {
            Some(parent) => (parent.id.clone(), parent.display_name.clone()),
            None => (TENANT_ID.to_string(), "Tenant Root Group".to_string()),
        }
    }

    /// The directory as `GET /_sim/managementGroups` shows it.
    pub(crate) fn describe(&self, all: &[String]) -> Value {
        let groups: Vec<Value> = self
            .groups
            .values()
            .map(|g| {
                let key = g.id.to_ascii_lowercase();
                let subscriptions: Vec<&String> = all
                    .iter()
                    .filter(|s| self.placement.get(&s.to_ascii_lowercase()) == Some(&key))
                    .collect();
                json!({
                    "id": g.id,
                    "displayName": g.display_name,
                    "parent": self.parent_of_group(g).0,
                    "subscriptions": subscriptions,
                })
            })
            .collect();
        json!({"root": TENANT_ID, "managementGroups": groups, "subscriptions": all})
    }

    /// Answers a GET of the management group API (`segments`: the path after
    /// `/providers/Microsoft.Management/managementGroups`), `all` being every subscription of
    /// the tenant (for a group other than the root, the declared ones are enough: every
    /// subscription placed in a group is declared).
    pub(crate) fn handle(
        &self,
        method: &str,
        segments: &[&str],
        query: &[(String, String)],
        all: &[String],
        base_url: &str,
        page_size: usize,
    ) -> Result<Reply, ArmError> {
        if method != "GET" {
            return Err(ArmError::new(
                405,
                "MethodNotAllowed",
                format!("The requested method '{method}' is not allowed for this resource."),
            ));
        }
        let not_found = |id: &str| {
            ArmError::new(
                404,
                "NotFound",
                format!("The management group '{id}' was not found."),
            )
        };
        match segments {
            [] => {
                let mut value = vec![self.group_summary(TENANT_ID, "Tenant Root Group")];
                value.extend(
                    self.groups
                        .values()
                        .map(|g| self.group_summary(&g.id, &g.display_name)),
                );
                Ok(Reply::ok(json!({"value": value})))
            }
            [id] => {
                if !self.exists(id) {
                    return Err(not_found(id));
                }
                let (group_id, name, parent) = if is_root(id) {
                    (TENANT_ID.to_string(), "Tenant Root Group".to_string(), None)
                } else {
                    let g = &self.groups[&id.to_ascii_lowercase()];
                    (g.id.clone(), g.display_name.clone(), Some(self.parent_of_group(g)))
                };
                let details = match parent {
                    Some((parent_id, parent_name)) => json!({"parent": {
                        "id": group_path(&parent_id), "name": parent_id, "displayName": parent_name,
                    }}),
                    None => json!({"parent": Value::Null}),
                };
                Ok(Reply::ok(json!({
                    "id": group_path(&group_id),
                    "type": GROUP_TYPE,
                    "name": group_id,
                    "properties": {"tenantId": TENANT_ID, "displayName": name, "details": details},
                })))
            }
            [id, descendants] if descendants.eq_ignore_ascii_case("descendants") => {
                if !self.exists(id) {
                    return Err(not_found(id));
                }
                // What the descendants are, cheaply; only the page asked for is made JSON.
                enum Descendant<'a> {
                    Group(&'a Group),
                    Subscription(&'a String),
                }
                let mut items: Vec<Descendant<'_>> = self
                    .subtree(id)
                    .iter()
                    .skip(1)
                    .filter_map(|key| self.groups.get(key))
                    .map(Descendant::Group)
                    .collect();
                items.extend(
                    all.iter()
                        .filter(|s| self.under(s, id))
                        .map(Descendant::Subscription),
                );
                let url = format!("{base_url}{}/descendants", group_path(id));
                let (range, next) = page_of(items.len(), query, page_size, &url);
                let value: Vec<Value> = items[range]
                    .iter()
                    .map(|item| match item {
                        Descendant::Group(g) => json!({
                            "id": group_path(&g.id),
                            "type": GROUP_TYPE,
                            "name": g.id,
                            "properties": {
                                "displayName": g.display_name,
                                "parent": {"id": group_path(&self.parent_of_group(g).0)},
                            },
                        }),
                        Descendant::Subscription(subscription) => json!({
                            "id": format!("/subscriptions/{subscription}"),
                            "type": SUBSCRIPTION_TYPE,
                            "name": subscription,
                            "properties": {
                                "displayName": subscription,
                                "parent": {"id": self.parent_of_subscription(subscription)},
                            },
                        }),
                    })
                    .collect();
                Ok(Reply::ok(json!({"value": value, "nextLink": next})))
            }
            _ => Err(ArmError::new(
                404,
                "InvalidResourceType",
                format!(
                    "The resource type could not be found for path '/providers/Microsoft.Management/managementGroups/{}'.",
                    segments.join("/")
                ),
            )),
        }
    }

    fn group_summary(&self, id: &str, display_name: &str) -> Value {
        json!({
            "id": group_path(id),
            "type": GROUP_TYPE,
            "name": id,
            "properties": {"tenantId": TENANT_ID, "displayName": display_name},
        })
    }
}

/// The range of the page of `count` items from `$skiptoken` (an offset), `$top` (else
/// `page_size`) at a time, and the `nextLink` carrying the api-version and the next offset.
fn page_of(
    count: usize,
    query: &[(String, String)],
    page_size: usize,
    url: &str,
) -> (std::ops::Range<usize>, Option<String>) {
    let value_of =
        |name: &str| crate::http::query_value(query, name).and_then(|v| v.parse::<usize>().ok());
    let skip = value_of("$skiptoken").unwrap_or(0).min(count);
    let top = value_of("$top").unwrap_or(page_size).max(1);
    let end = (skip + top).min(count);
    let api_version = crate::http::query_value(query, "api-version").unwrap_or("2023-04-01");
    let next = (end < count)
        .then(|| format!("{url}?api-version={api_version}&$top={top}&$skiptoken={end}"));
    (skip..end, next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(parent: Option<&str>, subscriptions: &[&str]) -> GroupSpec {
        GroupSpec {
            display_name: None,
            parent: parent.map(str::to_string),
            subscriptions: subscriptions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn subscriptions_sit_in_one_group_and_count_under_its_ancestors() {
        let mut directory = Directory::default();
        directory.put_group("lz", &spec(None, &["a"])).unwrap();
        directory
            .put_group("corp", &spec(Some("LZ"), &["b", "c"]))
            .unwrap();
        let all: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(
            directory.subscriptions_under(&["lz".into()], &all).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(
            directory
                .subscriptions_under(&["corp".into()], &all)
                .unwrap(),
            ["b", "c"]
        );
        assert_eq!(
            directory
                .subscriptions_under(&[TENANT_ID.to_string()], &all)
                .unwrap()
                .len(),
            4
        );
        // Placing b in lz moves it out of corp.
        directory.put_group("lz", &spec(None, &["a", "b"])).unwrap();
        directory
            .put_group("corp", &spec(Some("lz"), &["c"]))
            .unwrap();
        assert_eq!(
            directory
                .subscriptions_under(&["corp".into()], &all)
                .unwrap(),
            ["c"]
        );
        assert_eq!(
            directory.subscriptions_under(&["nope".into()], &all),
            Err("nope".to_string())
        );
    }

    #[test]
    fn cycles_unknown_parents_and_bad_ids_are_refused() {
        let mut directory = Directory::default();
        directory.put_group("a", &spec(None, &[])).unwrap();
        directory.put_group("b", &spec(Some("a"), &[])).unwrap();
        assert!(directory.put_group("a", &spec(Some("b"), &[])).is_err());
        assert!(directory.put_group("c", &spec(Some("zz"), &[])).is_err());
        assert!(directory.put_group("x/y", &spec(None, &[])).is_err());
        assert!(directory.put_group(TENANT_ID, &spec(None, &[])).is_err());
        assert!(directory.delete_group("a").is_err(), "a still holds b");
        assert!(directory.delete_group("b").unwrap());
        assert!(!directory.delete_group("b").unwrap());
    }
}
