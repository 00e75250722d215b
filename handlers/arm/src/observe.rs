//! Observe: read an estate into the core's observed-state model with a few wide reads.
//!
//! Per subscription read, one paged list of VNets (subnets and peerings come inline) and one of
//! route tables; then one GET per hub gateway named in a hub's `GatewaySubnet`. Never one GET
//! per spoke. Subscriptions are listed in parallel, at most [`PARALLEL_SUBSCRIPTIONS`] at once (a
//! landing zone gives each spoke its own subscription: hundreds of them), and every request waits
//! for its subscription's reads budget like any other (the client's pacer).
//!
//! Which subscriptions are read depends on the scope (`docs/design.md` section 5, [`Scope`]);
//! the hubs' own are always read:
//! - `Reached` (no setting): the hubs' subscriptions, then every subscription their peerings
//!   reach, so a spoke in another subscription is found through the hub's peering to it;
//! - `Listed` (`HUBSPOKE_SUBSCRIPTIONS=a,b`): exactly those, every pass;
//! - `Readable` (`HUBSPOKE_SUBSCRIPTIONS=*`) and `ManagementGroups` (`HUBSPOKE_MANAGEMENT_GROUPS`):
//!   discovered, so that the reads grow with the spokes and not with the subscriptions in scope.
//!   The subscriptions in scope come from Resource Manager ([`crate::tenancy`]); Resource Graph
//!   names the VNets peered with a hub whatever their subscription ([`crate::resource_graph`]);
//!   and only the subscriptions that hold one of those, that a hub's peering reaches, or that the
//!   event the pass answers is about, are read, through ARM: what a pass writes is planned from
//!   ARM's answers only, never from Resource Graph's rows, which lag. A row ARM no longer
//!   confirms costs the read of its subscription and writes nothing; a VNet the graph does not
//!   show yet is found by a later pass (or at once, through its event). The scope is listed
//!   while the graph's subscriptions are read; one that turns out to be outside it (a graph row
//!   from before it left a management group) is forgotten before planning, and no other
//!   subscription outside the scope is read: nothing outside it is ever written.
//!
//! What is not readable is not fatal unless it is a hub's own subscription: a subscription whose
//! list is refused is reported in `skipped`, and the planner then reports the peerings into it
//! as `out_of_scope`. Resource Graph failing is not fatal either (reported in `skipped`): the
//! pass goes on with what ARM shows, and finds the spokes peered from their side only next time.
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use hubspoke_core::config::Scope;
use hubspoke_core::id::{GatewayId, PeeringId, SubnetId, VnetId};
use hubspoke_core::model::{Gateway, Observed, RouteTable, VirtualNetwork};
use serde::Serialize;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::ArmClient;
use crate::error::{ArmError, ErrorKind};
use crate::resource_graph::{self, GraphScope};
use crate::tenancy;

/// Subscriptions listed at once. Each has its own reads budget, so this bounds memory and
/// connections, not Azure: a subscription's two lists and their pages are in flight together.
pub const PARALLEL_SUBSCRIPTIONS: usize = 16;

/// What was read, and what could not be.
#[derive(Debug, Clone)]
pub struct Observation {
    pub observed: Observed,
    /// Subscriptions read, in order.
    pub subscriptions: Vec<String>,
    /// Subscriptions (or gateways, or Resource Graph) that could not be read, with why.
    pub skipped: Vec<Skipped>,
    /// Every VNet read that is peered with a hub (from either side) and is not one: how it was
    /// found, in the order of [`FoundBy`].
    pub found_by: BTreeMap<VnetId, Vec<FoundBy>>,
}

/// How a pass found a spoke (`found_by` in outcomes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// Its subscription is read every pass: a hub's, or one `HUBSPOKE_SUBSCRIPTIONS` lists.
    ListedSubscription,
    /// A hub's peering points at it.
    HubPeering,
    /// Resource Graph named it as peered with a hub.
    ResourceGraph,
    /// The event the pass answers is about it.
    Event,
}

impl FoundBy {
    /// The stable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::ListedSubscription => "listed_subscription",
            FoundBy::HubPeering => "hub_peering",
            FoundBy::ResourceGraph => "resource_graph",
            FoundBy::Event => "event",
        }
    }
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

/// Reads every VNet, route table and hub gateway in scope: the hubs' subscriptions and
/// `subscriptions` when given (`HUBSPOKE_SUBSCRIPTIONS`), else the hubs' and those their
/// peerings reach.
pub async fn observe(
    client: &ArmClient,
    hubs: &[VnetId],
    subscriptions: Option<&[String]>,
) -> Result<Observation, ObserveError> {
    let scope = match subscriptions {
        None => Scope::Reached,
        Some(listed) => Scope::Listed(listed.to_vec()),
    };
    observe_in_scope(client, hubs, &scope, None).await
}

/// Reads every VNet, route table and hub gateway of `scope` (module doc). `event_resource` is
/// the resource of the event the pass answers, if any: with a scope that discovers, its
/// subscription is read too when in scope, so that a spoke announced by its event is found
/// before Resource Graph shows it.
pub async fn observe_in_scope(
    client: &ArmClient,
    hubs: &[VnetId],
    scope: &Scope,
    event_resource: Option<&str>,
) -> Result<Observation, ObserveError> {
    let hub_subscriptions: BTreeSet<String> = hubs
        .iter()
        .map(|hub| hub.subscription().to_ascii_lowercase())
        .collect();
    let mut reader = Reader {
        client,
        hub_subscriptions: hub_subscriptions.clone(),
        observation: Observation {
            observed: Observed::default(),
            subscriptions: Vec::new(),
            skipped: Vec::new(),
            found_by: BTreeMap::new(),
        },
        reasons: BTreeMap::new(),
    };
    let mut listed = hub_subscriptions.clone();
    let mut graph_vnets: BTreeSet<VnetId> = BTreeSet::new();
    let mut event_vnet: Option<VnetId> = None;
    match scope {
        Scope::Reached => {
            reader.read(&listed, FoundBy::ListedSubscription).await?;
            let reached = reader.reached_by_hubs(hubs);
            reader.read(&reached, FoundBy::HubPeering).await?;
        }
        Scope::Listed(subscriptions) => {
            listed.extend(subscriptions.iter().map(|s| s.to_ascii_lowercase()));
            reader.read(&listed, FoundBy::ListedSubscription).await?;
        }
        Scope::Readable | Scope::ManagementGroups(_) => {
            // Three things at once: the subscriptions in scope from Resource Manager; the hubs'
            // subscriptions; Resource Graph, then the subscriptions of the VNets it names.
            // Those are read before the scope is known (it is rarely long in coming and they are
            // nearly always in it), and forgotten after if they are not: nothing is planned, so
            // nothing is written, outside the scope.
            let graph_scope = match scope {
                Scope::ManagementGroups(groups) => GraphScope::ManagementGroups(groups.clone()),
                _ => GraphScope::Tenant,
            };
            let reading = async {
                let (read, graph) = tokio::join!(
                    reader.read(&listed, FoundBy::ListedSubscription),
                    resource_graph::vnets_peered_with(client, &graph_scope, hubs),
                );
                read?;
                if let Ok(vnets) = &graph {
                    let mut candidates: BTreeMap<String, BTreeSet<FoundBy>> = BTreeMap::new();
                    for vnet in vnets {
                        candidates
                            .entry(vnet.subscription().to_ascii_lowercase())
                            .or_default()
                            .insert(FoundBy::ResourceGraph);
                    }
                    reader.read_with_reasons(candidates).await?;
                }
                Ok::<_, ObserveError>(graph)
            };
            let (members, graph) = tokio::join!(members_of(client, scope), reading);
            let (members, graph) = (members?, graph?);
            let in_scope = |subscription: &str| {
                let subscription = subscription.to_ascii_lowercase();
                members.contains(&subscription) || hub_subscriptions.contains(&subscription)
            };
            match graph {
                Ok(vnets) => graph_vnets = vnets,
                Err(error) => reader.observation.skipped.push(Skipped {
                    resource: "Resource Graph".to_string(),
                    error,
                }),
            }
            graph_vnets.retain(|vnet| in_scope(vnet.subscription()));
            reader.forget(|subscription| !in_scope(subscription));
            let mut candidates: BTreeMap<String, BTreeSet<FoundBy>> = BTreeMap::new();
            for subscription in reader.reached_by_hubs(hubs) {
                if in_scope(&subscription) {
                    candidates
                        .entry(subscription)
                        .or_default()
                        .insert(FoundBy::HubPeering);
                }
            }
            if let Some((subscription, vnet)) = event_resource.and_then(event_target) {
                if in_scope(&subscription) {
                    candidates
                        .entry(subscription)
                        .or_default()
                        .insert(FoundBy::Event);
                    event_vnet = vnet;
                }
            }
            reader.read_with_reasons(candidates).await?;
        }
    }
    let mut observation = reader.finish(hubs, &listed, &graph_vnets, event_vnet.as_ref());
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

/// The subscriptions read so far, and why each was.
struct Reader<'a> {
    client: &'a ArmClient,
    hub_subscriptions: BTreeSet<String>,
    observation: Observation,
    /// Lower-cased subscription → why it was read.
    reasons: BTreeMap<String, BTreeSet<FoundBy>>,
}

impl Reader<'_> {
    /// Lists `subscriptions` (lower-cased) not read yet, for `reason`.
    async fn read(
        &mut self,
        subscriptions: &BTreeSet<String>,
        reason: FoundBy,
    ) -> Result<(), ObserveError> {
        let with_reasons = subscriptions
            .iter()
            .map(|s| (s.clone(), BTreeSet::from([reason])))
            .collect();
        self.read_with_reasons(with_reasons).await
    }

    /// Lists the subscriptions not read yet, and records why each was asked for.
    async fn read_with_reasons(
        &mut self,
        subscriptions: BTreeMap<String, BTreeSet<FoundBy>>,
    ) -> Result<(), ObserveError> {
        let mut todo: Vec<String> = Vec::new();
        for (subscription, reasons) in subscriptions {
            if !self.reasons.contains_key(&subscription) {
                todo.push(subscription.clone());
            }
            self.reasons
                .entry(subscription)
                .or_default()
                .extend(reasons);
        }
        let results = list_subscriptions(self.client, &todo).await;
        for (subscription, result) in todo.iter().zip(results) {
            match result {
                Ok((vnets, tables)) => {
                    self.observation.subscriptions.push(subscription.clone());
                    self.observation.observed.virtual_networks.extend(vnets);
                    self.observation.observed.route_tables.extend(tables);
                }
                Err(ObserveError::Arm(error))
                    if !self.hub_subscriptions.contains(subscription)
                        && matches!(error.kind, ErrorKind::Refused | ErrorKind::NotFound) =>
                {
                    self.observation.skipped.push(Skipped {
                        resource: format!("/subscriptions/{subscription}"),
                        error,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Forgets what was read of the subscriptions `outside` says are outside the scope (a
    /// Resource Graph row of a subscription that has left it): they are neither planned nor
    /// reported.
    fn forget(&mut self, outside: impl Fn(&str) -> bool) {
        let forgotten: BTreeSet<String> = self
            .reasons
            .keys()
            .filter(|subscription| outside(subscription))
            .cloned()
            .collect();
        if forgotten.is_empty() {
            return;
        }
        let kept = |id: &str| !forgotten.contains(&id.to_ascii_lowercase());
        let observation = &mut self.observation;
        observation
            .observed
            .virtual_networks
            .retain(|vnet| kept(vnet.id.subscription()));
        observation
            .observed
            .route_tables
            .retain(|table| kept(table.id.subscription()));
        observation.subscriptions.retain(|s| kept(s));
        observation.skipped.retain(|skipped| {
            !forgotten
                .iter()
                .any(|s| skipped.resource.ends_with(s.as_str()))
        });
        self.reasons.retain(|s, _| kept(s));
    }

    /// The subscriptions, lower-cased, of the VNets the hubs' peerings point at (as read).
    fn reached_by_hubs(&self, hubs: &[VnetId]) -> BTreeSet<String> {
        self.observation
            .observed
            .virtual_networks
            .iter()
            .filter(|vnet| hubs.contains(&vnet.id))
            .flat_map(|hub| &hub.peerings)
            .map(|peering| peering.remote_vnet.subscription().to_ascii_lowercase())
            .collect()
    }

    /// The observation, with how each VNet peered with a hub was found: its own reasons (listed
    /// subscription, a hub's peering, Resource Graph, the event), else why its subscription was
    /// read.
    fn finish(
        self,
        hubs: &[VnetId],
        listed: &BTreeSet<String>,
        graph_vnets: &BTreeSet<VnetId>,
        event_vnet: Option<&VnetId>,
    ) -> Observation {
        let mut observation = self.observation;
        let pointed_at: BTreeSet<&VnetId> = observation
            .observed
            .virtual_networks
            .iter()
            .filter(|vnet| hubs.contains(&vnet.id))
            .flat_map(|hub| hub.peerings.iter().map(|p| &p.remote_vnet))
            .collect();
        let mut found_by = BTreeMap::new();
        for vnet in &observation.observed.virtual_networks {
            if hubs.contains(&vnet.id) {
                continue;
            }
            let peers_with_hub = vnet.peerings.iter().any(|p| hubs.contains(&p.remote_vnet));
            if !peers_with_hub && !pointed_at.contains(&vnet.id) {
                continue;
            }
            let subscription = vnet.id.subscription().to_ascii_lowercase();
            let mut reasons = BTreeSet::new();
            if listed.contains(&subscription) {
                reasons.insert(FoundBy::ListedSubscription);
            }
            if pointed_at.contains(&vnet.id) {
                reasons.insert(FoundBy::HubPeering);
            }
            if graph_vnets.contains(&vnet.id) {
                reasons.insert(FoundBy::ResourceGraph);
            }
            if event_vnet == Some(&vnet.id) {
                reasons.insert(FoundBy::Event);
            }
            if reasons.is_empty() {
                reasons = self.reasons.get(&subscription).cloned().unwrap_or_default();
            }
            found_by.insert(vnet.id.clone(), reasons.into_iter().collect());
        }
        observation.found_by = found_by;
        observation
    }
}

/// The subscriptions in scope (lower-cased), from Resource Manager.
async fn members_of(client: &ArmClient, scope: &Scope) -> Result<BTreeSet<String>, ObserveError> {
    Ok(match scope {
        Scope::ManagementGroups(groups) => {
            tenancy::management_group_subscriptions(client, groups).await?
        }
        _ => tenancy::readable_subscriptions(client).await?,
    })
}

/// The subscription of an event's resource (lower-cased) and its VNet, when it is a VNet, a
/// peering or a subnet.
fn event_target(resource: &str) -> Option<(String, Option<VnetId>)> {
    let vnet = resource
        .parse::<VnetId>()
        .ok()
        .or_else(|| resource.parse::<PeeringId>().ok().map(|p| p.vnet().clone()))
        .or_else(|| resource.parse::<SubnetId>().ok().map(|s| s.vnet().clone()));
    if let Some(vnet) = vnet {
        return Some((vnet.subscription().to_ascii_lowercase(), Some(vnet)));
    }
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(word), Some(subscription))
            if word.eq_ignore_ascii_case("subscriptions")
                && tenancy::is_subscription_id(subscription) =>
        {
            Some((subscription.to_ascii_lowercase(), None))
        }
        _ => None,
    }
}

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
