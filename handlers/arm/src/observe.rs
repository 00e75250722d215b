//! Observe: read an estate into the core's observed-state model with a few wide reads.
//!
//! Per subscription in scope, one paged list of VNets (subnets and peerings come inline) and one
//! of route tables; then one GET per hub gateway named in a hub's `GatewaySubnet`. Never one GET
//! per spoke. Subscriptions are listed in parallel, at most [`PARALLEL_SUBSCRIPTIONS`] at once (a
//! landing zone gives each spoke its own subscription: hundreds of them), and every request waits
//! for its subscription's reads budget like any other (the client's pacer). The subscriptions in scope are `HUBSPOKE_SUBSCRIPTIONS` when set (plus the hubs'
//! own); otherwise the hubs' subscriptions and every subscription their peerings reach, so a
//! spoke in another subscription is found through the hub's peering to it.
//!
//! What is not readable is not fatal unless it is a hub's own subscription: a subscription whose
//! list is refused is reported in `skipped`, and the planner then reports the peerings into it
//! as `out_of_scope`.
use std::collections::BTreeSet;
use std::ops::ControlFlow;

use hubspoke_core::id::{GatewayId, VnetId};
use hubspoke_core::model::{Gateway, Observed, RouteTable, VirtualNetwork};
use serde::Serialize;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::ArmClient;
use crate::error::{ArmError, ErrorKind};

/// Subscriptions listed at once. Each has its own reads budget, so this bounds memory and
/// connections, not Azure: a subscription's two lists and their pages are in flight together.
pub const PARALLEL_SUBSCRIPTIONS: usize = 16;

/// What was read, and what could not be.
#[derive(Debug, Clone)]
pub struct Observation {
    pub observed: Observed,
    /// Subscriptions read, in order.
    pub subscriptions: Vec<String>,
    /// Subscriptions (or gateways) that could not be read, with why.
    pub skipped: Vec<Skipped>,
}

/// A read that was refused or failed, and the planning went on without it.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub resource: String,
    pub error: ArmError,
}

/// A failure that stops the observation: nothing may be planned from a partial read of a hub.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObserveError {
    #[error("{0}")]
    Arm(#[from] ArmError),
    #[error("{what} returned something that is not a {expected}: {error}")]
    Shape {
        what: String,
        expected: &'static str,
        error: hubspoke_core::model::ModelError,
    },
}

/// Reads every VNet, route table and hub gateway in scope.
pub async fn observe(
    client: &ArmClient,
    hubs: &[VnetId],
    subscriptions: Option<&[String]>,
) -> Result<Observation, ObserveError> {
    let hub_subscriptions: BTreeSet<String> = hubs
        .iter()
        .map(|hub| hub.subscription().to_ascii_lowercase())
        .collect();
    let mut wanted: BTreeSet<String> = hub_subscriptions.clone();
    if let Some(listed) = subscriptions {
        wanted.extend(listed.iter().map(|s| s.to_ascii_lowercase()));
    }
    let mut observation = Observation {
        observed: Observed::default(),
        subscriptions: Vec::new(),
        skipped: Vec::new(),
    };
    let mut read: BTreeSet<String> = BTreeSet::new();
    // Two rounds at most: the subscriptions in scope, then (by default) those the hubs'
    // peerings reach.
    for round in 0..2 {
        let todo: Vec<String> = wanted.difference(&read).cloned().collect();
        if todo.is_empty() {
            break;
        }
        let results = list_subscriptions(client, &todo).await;
        for (subscription, result) in todo.iter().zip(results) {
            read.insert(subscription.clone());
            match result {
                Ok((vnets, tables)) => {
                    observation.subscriptions.push(subscription.clone());
                    observation.observed.virtual_networks.extend(vnets);
                    observation.observed.route_tables.extend(tables);
                }
                Err(ObserveError::Arm(error))
                    if !hub_subscriptions.contains(subscription)
                        && matches!(error.kind, ErrorKind::Refused | ErrorKind::NotFound) =>
                {
                    observation.skipped.push(Skipped {
                        resource: format!("/subscriptions/{subscription}"),
                        error,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        if round == 0 && subscriptions.is_none() {
            for vnet in &observation.observed.virtual_networks {
                if hubs.contains(&vnet.id) {
                    wanted.extend(
                        vnet.peerings
                            .iter()
                            .map(|p| p.remote_vnet.subscription().to_ascii_lowercase()),
                    );
                }
            }
        }
    }

    // The hubs' gateways, from their GatewaySubnet.
    let mut gateway_ids: BTreeSet<GatewayId> = BTreeSet::new();
    for vnet in &observation.observed.virtual_networks {
        if hubs.contains(&vnet.id) {
            if let Some(subnet) = vnet.subnet("GatewaySubnet") {
                gateway_ids.extend(subnet.gateways());
            }
        }
    }
    let mut gets = JoinSet::new();
    for id in gateway_ids {
        let client = client.clone();
        gets.spawn(
            async move {
                let path = id.to_string();
                (id, client.get(&path).await)
            }
            .in_current_span(),
        );
    }
    let mut gateways: Vec<(GatewayId, Gateway)> = Vec::new();
    while let Some(joined) = gets.join_next().await {
        let Ok((id, result)) = joined else {
            continue;
        };
        match result {
            Ok(value) => {
                let label = format!("GET {id}");
                let gateway =
                    Gateway::from_arm(&value, &label).map_err(|error| ObserveError::Shape {
                        what: label,
                        expected: "virtual network gateway",
                        error,
                    })?;
                gateways.push((id, gateway));
            }
            // A gateway that is gone or not readable is left out: the planner then sees the
            // hub's GatewaySubnet and decides (not ready, or gone).
            Err(error) if matches!(error.kind, ErrorKind::NotFound | ErrorKind::Refused) => {
                if error.kind == ErrorKind::Refused {
                    observation.skipped.push(Skipped {
                        resource: id.to_string(),
                        error,
                    });
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    gateways.sort_by(|a, b| a.0.cmp(&b.0));
    observation.observed.gateways = gateways.into_iter().map(|(_, g)| g).collect();
    Ok(observation)
}

type Lists = (Vec<VirtualNetwork>, Vec<RouteTable>);

/// Lists VNets and route tables of each subscription, [`PARALLEL_SUBSCRIPTIONS`] at a time.
async fn list_subscriptions(
    client: &ArmClient,
    subscriptions: &[String],
) -> Vec<Result<Lists, ObserveError>> {
    let mut tasks = JoinSet::new();
    let mut results: Vec<Option<Result<Lists, ObserveError>>> =
        subscriptions.iter().map(|_| None).collect();
    let mut next = subscriptions.iter().enumerate();
    loop {
        while tasks.len() < PARALLEL_SUBSCRIPTIONS {
            let Some((position, subscription)) = next.next() else {
                break;
            };
            let client = client.clone();
            let subscription = subscription.clone();
            tasks.spawn(
                async move { (position, list_one(&client, &subscription).await) }.in_current_span(),
            );
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        if let Ok((position, result)) = joined {
            results[position] = Some(result);
        }
    }
    results
        .into_iter()
        .zip(subscriptions)
        .map(|(result, subscription)| {
            result.unwrap_or_else(|| {
                Err(ObserveError::Arm(ArmError {
                    kind: ErrorKind::Transport,
                    status: None,
                    code: "TaskFailed".into(),
                    message: "the read of the subscription stopped unexpectedly".into(),
                    method: "GET".into(),
                    url: format!("/subscriptions/{subscription}"),
                }))
            })
        })
        .collect()
}

async fn list_one(client: &ArmClient, subscription: &str) -> Result<Lists, ObserveError> {
    let vnets_path =
        format!("/subscriptions/{subscription}/providers/Microsoft.Network/virtualNetworks");
    let tables_path =
        format!("/subscriptions/{subscription}/providers/Microsoft.Network/routeTables");
    let (vnets, tables) = tokio::join!(
        list_items(
            client,
            &vnets_path,
            "virtual network",
            VirtualNetwork::from_arm
        ),
        list_items(client, &tables_path, "route table", RouteTable::from_arm),
    );
    Ok((vnets?, tables?))
}

/// Lists `path`, reading each item into the model as it comes (the JSON of an item is dropped
/// once read: 200 route tables of 400 routes are 80,000 routes). A malformed item stops the
/// observation, naming the list, the item and the JSON path inside it.
async fn list_items<T>(
    client: &ArmClient,
    path: &str,
    expected: &'static str,
    parse: fn(&serde_json::Value, &str) -> Result<T, hubspoke_core::model::ModelError>,
) -> Result<Vec<T>, ObserveError> {
    let mut items = Vec::new();
    let mut malformed = None;
    client
        .list_each(path, |value| {
            let label = format!("GET {path} item {}", items.len());
            match parse(&value, &label) {
                Ok(item) => {
                    items.push(item);
                    ControlFlow::Continue(())
                }
                Err(error) => {
                    malformed = Some(ObserveError::Shape {
                        what: label,
                        expected,
                        error,
                    });
                    ControlFlow::Break(())
                }
            }
        })
        .await?;
    match malformed {
        Some(error) => Err(error),
        None => Ok(items),
    }
}
