//! Azure Resource Graph: where the spokes are, across subscriptions, in one query.
//!
//! Resource Graph is the inventory Azure keeps of every resource, queried with KQL across
//! subscriptions or management groups: `POST /providers/Microsoft.ResourceGraph/resources
//! ?api-version=2024-04-01` with `{subscriptions | managementGroups, query, options: {$top,
//! $skipToken, resultFormat}}`, answered `{totalRecords, count, data, $skipToken}`; the next page
//! is the same request with `options.$skipToken` ("Resources - Resources",
//! learn.microsoft.com/rest/api/azureresourcegraph/resourcegraph/resources/resources; Learn,
//! "Working with large Azure resource data sets": at most 1,000 rows a page).
//!
//! It only finds candidates: which VNets are peered with a hub, and so which subscriptions a
//! pass must read. It is kept from Resource Manager's change notifications and lags it by
//! seconds to minutes, so nothing hubspoke writes is planned from its rows: the pass reads
//! those subscriptions through ARM ([`crate::observe`]). A row that ARM no longer confirms costs
//! a read and writes nothing; a VNet that ARM has and the graph does not show yet is found by a
//! later pass, or at once through the event that announced it.
//!
//! Where a VNet's peerings show is asked both ways: inside the VNet's row, as
//! `properties.virtualNetworkPeerings` (documented), and as rows of their own (unconfirmed), so
//! that the answer does not depend on which is true.
use std::collections::BTreeSet;

use hubspoke_core::id::{PeeringId, VnetId};
use serde_json::{json, Value};

use crate::client::ArmClient;
use crate::error::{ArmError, ErrorKind};

/// The Resource Graph api-version of every query.
pub const API_VERSION: &str = "2024-04-01";

/// Rows asked for per page: Resource Graph's largest page.
pub const PAGE_ROWS: u64 = 1000;

/// Subscriptions named in one request. A larger scope is queried in batches: each request stays
/// small, far below the 10,000 subscriptions past which Resource Graph answers
/// `x-ms-tenant-subscription-limit-hit`.
pub const SUBSCRIPTIONS_PER_QUERY: usize = 1000;

/// Pages read of one query before it is taken for a loop.
const MAX_PAGES: usize = 10_000;

/// What a query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphScope {
    /// These subscriptions.
    Subscriptions(Vec<String>),
    /// Every subscription under these management groups, at any depth.
    ManagementGroups(Vec<String>),
    /// Every subscription the identity can read: a request that names no scope (the REST API's
    /// `subscriptions` is optional; without it the query covers the tenant's subscriptions the
    /// caller has access to).
    Tenant,
}

/// Every row of `query` over `scope`, page after page.
pub async fn query(
    client: &ArmClient,
    scope: &GraphScope,
    query: &str,
) -> Result<Vec<Value>, ArmError> {
    let bodies: Vec<Value> = match scope {
        GraphScope::Subscriptions(subscriptions) => subscriptions
            .chunks(SUBSCRIPTIONS_PER_QUERY)
            .map(|batch| json!({"subscriptions": batch}))
            .collect(),
        GraphScope::ManagementGroups(groups) => vec![json!({"managementGroups": groups})],
        GraphScope::Tenant => vec![json!({})],
    };
    let path = format!("/providers/Microsoft.ResourceGraph/resources?api-version={API_VERSION}");
    let mut rows = Vec::new();
    for mut body in bodies {
        body["query"] = json!(query);
        body["options"] = json!({"$top": PAGE_ROWS, "resultFormat": "objectArray"});
        let mut tokens: BTreeSet<String> = BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let answer = client.query(&path, &body).await?;
            let data = answer
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| unreadable(&path, "an answer without a data array"))?;
            rows.extend(data.iter().cloned());
            match answer.get("$skipToken").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => {
                    if !tokens.insert(token.to_string()) {
                        return Err(unreadable(&path, "a $skipToken given twice"));
                    }
                    body["options"] = json!({"$top": PAGE_ROWS, "$skipToken": token, "resultFormat": "objectArray"});
                }
                _ => break,
            }
        }
    }
    Ok(rows)
}

/// The VNets, not hubs themselves, that have a peering whose remote is one of `hubs`: their
/// peerings inside their rows, or as rows of their own, whichever Resource Graph holds.
pub async fn vnets_peered_with(
    client: &ArmClient,
    scope: &GraphScope,
    hubs: &[VnetId],
) -> Result<BTreeSet<VnetId>, ArmError> {
    if hubs.is_empty() {
        return Ok(BTreeSet::new());
    }
    let (inline_query, rows_query) = (peered_vnets_query(hubs), peering_rows_query(hubs));
    let (inline, rows) = tokio::join!(
        query(client, scope, &inline_query),
        query(client, scope, &rows_query),
    );
    let mut found = BTreeSet::new();
    for row in inline? {
        if let Some(vnet) = row
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<VnetId>().ok())
        {
            found.insert(vnet);
        }
    }
    for row in rows? {
        if let Some(peering) = row
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<PeeringId>().ok())
        {
            found.insert(peering.vnet().clone());
        }
    }
    found.retain(|vnet| !hubs.contains(vnet));
    Ok(found)
}

/// `('id1', 'id2')`: hub ids are parsed ids (no quote can be in them), lower-cased as `in~`
/// compares.
fn hub_list(hubs: &[VnetId]) -> String {
    let items: Vec<String> = hubs
        .iter()
        .map(|hub| format!("'{}'", hub.to_string().to_ascii_lowercase()))
        .collect();
    format!("({})", items.join(", "))
}

/// VNets whose inline peerings point at a hub.
pub fn peered_vnets_query(hubs: &[VnetId]) -> String {
    format!(
        "Resources | where type =~ 'microsoft.network/virtualnetworks' \
         | mv-expand peering = properties.virtualNetworkPeerings \
         | where tostring(peering.properties.remoteVirtualNetwork.id) in~ {} \
         | project id, subscriptionId",
        hub_list(hubs)
    )
}

/// Peerings, as rows of their own, that point at a hub.
pub fn peering_rows_query(hubs: &[VnetId]) -> String {
    format!(
        "Resources | where type =~ 'microsoft.network/virtualnetworks/virtualnetworkpeerings' \
         | where tostring(properties.remoteVirtualNetwork.id) in~ {} \
         | project id, subscriptionId",
        hub_list(hubs)
    )
}

fn unreadable(path: &str, what: &str) -> ArmError {
    ArmError::new(
        ErrorKind::Transport,
        Some(200),
        "UnreadableBody",
        format!("Resource Graph answered {what}"),
        "POST",
        path,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_queries_name_every_hub_in_lower_case() {
        let hubs: Vec<VnetId> = [
            "/subscriptions/S1/resourceGroups/G/providers/Microsoft.Network/virtualNetworks/Hub",
            "/subscriptions/s2/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/hub2",
        ]
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
        let query = peered_vnets_query(&hubs);
        assert!(query.contains("in~ ('/subscriptions/s1/resourcegroups/g/providers/microsoft.network/virtualnetworks/hub', '/subscriptions/s2/"), "{query}");
        assert!(query.contains("mv-expand peering = properties.virtualNetworkPeerings"));
        assert!(peering_rows_query(&hubs).contains("virtualnetworkpeerings"));
    }
}
