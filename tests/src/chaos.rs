//! The chaos campaign: the whole event path (simulator → Event Grid → local host → handler →
//! queues → reconcile) on a mixed estate while ARM misbehaves, Event Grid duplicates, reorders,
//! delays and loses events, and a landing zone creates, renumbers and deletes spokes. Then the
//! faults stop, the drift check runs, and the campaign checks what a network team would:
//!
//! - converged: a plan of the simulator's state has nothing to do;
//! - how many passes and how long it took, and ARM's successful writes against the distinct
//!   changes they made (the writes no run could avoid);
//! - outcomes against invocations: one per delivery of an event, at least one per work item,
//!   the attempts of an item without gaps — none lost;
//! - whether anything hubspoke does not own changed: foreign routes, tables and their
//!   associations, NSGs, address spaces, `allowVirtualNetworkAccess`; and that no transit flag went
//!   off. It must not.
//!
//! Everything random comes from the seed, so a failing seed can be replayed (the faults' and
//! Event Grid's own draws are the simulator's, not seeded: timing differs anyway).
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{EventKnobs, FaultSpec};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use hubspoke_stack::{Options, Stack, Storage};

/// The hub's subscription.
pub const SUBSCRIPTION_A: &str = "00000000-0000-4000-8000-0000000000a1";
/// A landing zone's subscription.
pub const SUBSCRIPTION_B: &str = "00000000-0000-4000-8000-0000000000b2";

/// ARM answers about a fifth of requests with one of: 429, 409 `AnotherOperationInProgress`, 500,
/// 503, a dropped connection, a slow answer, an operation ending `Failed` or `Canceled`.
pub const ARM_FAULTS: &str = "*=429@0.04;PUT *=409@0.03;*=500@0.03;*=503@0.02;*=drop@0.02;*=slow:400ms@0.03;PUT *=lro-fail@0.02;PUT *=lro-cancel@0.01";

/// The size and length of one run.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Spokes at the start, across the two subscriptions (at least 30 for the full campaign).
    pub spokes: usize,
    /// Spokes the landing zone creates, renumbers and deletes while the faults last.
    pub created: usize,
    pub renumbered: usize,
    pub deleted: usize,
    /// How long the faults last (the churn happens within it).
    pub fault_phase: Duration,
    /// How long convergence may take once they stop.
    pub converge_limit: Duration,
    pub storage: Storage,
}

impl Campaign {
    /// The campaign of the chaos example: 32 spokes, three created, two renumbered, one deleted,
    /// 30 seconds of faults.
    pub fn full() -> Self {
        Self {
            spokes: 32,
            created: 3,
            renumbered: 2,
            deleted: 1,
            fault_phase: Duration::from_secs(30),
            converge_limit: Duration::from_secs(240),
            storage: Storage::Auto,
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub converged: bool,
    /// Distinct reconcile passes.
    pub passes: usize,
    /// From the end of the faults to an empty plan of the simulator's state.
    pub converge_seconds: f64,
    /// The whole run.
    pub total_seconds: f64,
    /// hubspoke's writes that succeeded (ARM raised an event for each).
    pub writes: usize,
    /// The distinct resources those writes wrote or deleted (one per resource and operation):
    /// the writes no run could avoid. Outcomes cannot tell (a large one is summarized); ARM's
    /// events can.
    pub distinct_changes: usize,
    /// ARM answers that were throttling, as the passes counted them.
    pub throttled: u64,
    pub outcomes: usize,
    /// Invocations the host started (counted by the host itself): each delivery of an event,
    /// each dequeue of a work item, the drift checks.
    pub invocations: usize,
    /// Invocations without an outcome: the host's count of each function's invocations less
    /// that function's outcomes, and the gaps in a work item's attempts.
    pub lost_outcomes: usize,
    /// Outcomes without an invocation the host counted (none may be: one per invocation).
    pub extra_outcomes: usize,
    /// Work items queued that no ReconcileHub outcome answers.
    pub lost_work_items: usize,
    /// Events delivered more than once (Event Grid's at least once), and their extra outcomes.
    pub duplicate_deliveries: usize,
    pub foreign_changes: Vec<String>,
    pub error: Option<String>,
}

impl Report {
    /// Whether the seed met the campaign's targets.
    pub fn passed(&self) -> bool {
        self.converged
            && self.lost_outcomes == 0
            && self.extra_outcomes == 0
            && self.lost_work_items == 0
            && self.foreign_changes.is_empty()
            && self.error.is_none()
    }
}

/// A spoke of the estate.
#[derive(Debug, Clone)]
struct Spoke {
    name: String,
    subscription: &'static str,
    /// Its second octet: the spoke is `10.<n>.0.0/16`.
    n: usize,
}

/// Builds the seed's estate: a hub with a VPN gateway in subscription A, and spokes in A in
/// every state a real estate has (transit and converged, peered from one side only, from the
/// hub only, out of sync after a resize, behind a foreign table, behind a firewall default
/// route, with NSGs). The spokes of subscription B are created by the landing zone at start.
fn estate(rng: &mut StdRng, spokes: usize) -> (Estate, Vec<Spoke>, Vec<Spoke>) {
    let mut estate = Estate::new(SUBSCRIPTION_A, "rg-network", "westeurope");
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    let in_a = spokes * 2 / 3;
    let mut a = Vec::new();
    for n in 1..=in_a {
        let name = format!("a{n}");
        estate.vnet(
            &name,
            &[&format!("10.{n}.0.0/16")],
            &[
                ("app", &format!("10.{n}.0.0/24")),
                ("data", &format!("10.{n}.1.0/24")),
            ],
        );
        if rng.random_bool(0.5) {
            let nsg = format!(
                "/subscriptions/{SUBSCRIPTION_A}/resourceGroups/rg-network/providers/Microsoft.Network/networkSecurityGroups/{name}-nsg"
            );
            estate.subnet_mut(&name, "app")["properties"]["networkSecurityGroup"] =
                json!({ "id": nsg });
        }
        match rng.random_range(0..6) {
            0 => estate.connect_transit("hub", &name),
            1 => {
                estate.peer(&name, "hub", Flags::default(), "Initiated");
            }
            2 => {
                estate.peer("hub", &name, Flags::default(), "Initiated");
            }
            3 => {
                // Resized after peering: the hub's side still programs the old space.
                estate.connect_transit("hub", &name);
                estate.vnet_mut(&name)["properties"]["addressSpace"]["addressPrefixes"] =
                    json!([format!("10.{n}.0.0/16"), format!("172.20.{n}.0/24")]);
                for peering in estate.vnet_mut("hub")["properties"]["virtualNetworkPeerings"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["name"] == format!("hub-to-{name}").as_str())
                {
                    peering["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
                    peering["properties"]["remoteVirtualNetworkAddressSpace"] = json!({"addressPrefixes": [format!("10.{n}.0.0/16"), format!("172.20.{n}.0/24")]});
                }
                for peering in estate.vnet_mut(&name)["properties"]["virtualNetworkPeerings"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    peering["properties"]["peeringSyncLevel"] = "RemoteNotInSync".into();
                }
            }
            4 => {
                // The app team's own table, with its own routes.
                estate.peer(&name, "hub", Flags::default(), "Initiated");
                let table = format!("{name}-own");
                estate.table(
                    &table,
                    &[
                        ("to-onprem", "192.168.0.0/16", "VirtualNetworkGateway", None),
                        (
                            "to-inspect",
                            &format!("172.30.{n}.0/24"),
                            "VirtualAppliance",
                            Some(&format!("10.{n}.0.4")),
                        ),
                    ],
                    json!({"owner": "app-team"}),
                );
                estate.associate(&name, "app", &table);
            }
            _ => {
                // Everything to a firewall: hubspoke must not route around it.
                estate.peer(&name, "hub", Flags::default(), "Initiated");
                let table = format!("{name}-firewall");
                estate.table(
                    &table,
                    &[("default", "0.0.0.0/0", "VirtualAppliance", Some("10.0.1.4"))],
                    json!({"owner": "security"}),
                );
                estate.associate(&name, "app", &table);
                estate.associate(&name, "data", &table);
            }
        }
        a.push(Spoke {
            name,
            subscription: SUBSCRIPTION_A,
            n,
        });
    }
    let b = (in_a + 1..=spokes)
        .map(|n| Spoke {
            name: format!("b{n}"),
            subscription: SUBSCRIPTION_B,
            n,
        })
        .collect();
    (estate, a, b)
}

fn vnet_id(spoke: &Spoke) -> String {
    let resource_group = if spoke.subscription == SUBSCRIPTION_A {
        "rg-network"
    } else {
        "rg-lz"
    };
    format!(
        "/subscriptions/{}/resourceGroups/{resource_group}/providers/Microsoft.Network/virtualNetworks/{}",
        spoke.subscription, spoke.name
    )
}

/// A landing zone's write, retried while ARM's faults say so (a pipeline would retry too).
async fn lz_put(stack: &Stack, path: &str, body: &Value) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..10 {
        match stack.landing_zone.put(path, None, body).await {
            Ok(_) => return Ok(()),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no attempt")))
    .with_context(|| format!("the landing zone could not write {path}"))
}

async fn lz_delete(stack: &Stack, path: &str) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..10 {
        match stack.landing_zone.delete(path).await {
            Ok(()) => return Ok(()),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no attempt")))
    .with_context(|| format!("the landing zone could not delete {path}"))
}

/// Creates `spoke` as a landing zone does: the VNet, then its side of the peering.
async fn create(stack: &Stack, spoke: &Spoke) -> anyhow::Result<()> {
    let id = vnet_id(spoke);
    let n = spoke.n;
    lz_put(
        stack,
        &id,
        &json!({"location": "westeurope", "properties": {
            "addressSpace": {"addressPrefixes": [format!("10.{n}.0.0/16")]},
            "subnets": [{"name": "app", "properties": {"addressPrefix": format!("10.{n}.0.0/24")}}]}}),
    )
    .await?;
    lz_put(
        stack,
        &format!("{id}/virtualNetworkPeerings/{}-to-hub", spoke.name),
        &json!({"properties": {"allowVirtualNetworkAccess": true,
                               "remoteVirtualNetwork": {"id": stack.estate.vnet_id("hub")}}}),
    )
    .await
}

/// Adds `172.21.<n>.0/24` to the spoke's address space.
async fn renumber(stack: &Stack, spoke: &Spoke) -> anyhow::Result<()> {
    let id = vnet_id(spoke);
    let mut vnet = stack.landing_zone.get(&id).await?;
    let prefixes = vnet["properties"]["addressSpace"]["addressPrefixes"]
        .as_array_mut()
        .context("an address space")?;
    prefixes.push(json!(format!("172.21.{}.0/24", spoke.n)));
    hubspoke_stack::strip_read_only(&mut vnet);
    lz_put(stack, &id, &vnet).await
}

/// Runs one seed of `campaign`.
pub async fn run(seed: u64, campaign: &Campaign) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let (estate, in_a, in_b) = estate(&mut rng, campaign.spokes);
    let mut options = Options::new(estate);
    options.storage = campaign.storage;
    options.subscriptions = Some(vec![SUBSCRIPTION_A.to_string(), SUBSCRIPTION_B.to_string()]);
    options.faults = FaultSpec::parse(ARM_FAULTS)?;
    options.event_knobs = EventKnobs {
        duplicate: 0.3,
        reorder: 0.2,
        drop: 0.1,
        delay: Duration::from_millis(150),
        ..EventKnobs::default()
    };
    let stack = Stack::start(options).await?;
    let mut report = Report {
        seed,
        ..Report::default()
    };
    let result = drive(
        &stack,
        campaign,
        &mut rng,
        &in_a,
        &in_b,
        &mut report,
        started,
    )
    .await;
    if let Err(error) = &result {
        report.error = Some(format!("{error:#}"));
    }
    if let Err(error) = stack.stop().await {
        report.error.get_or_insert(format!("{error:#}"));
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn drive(
    stack: &Stack,
    campaign: &Campaign,
    rng: &mut StdRng,
    in_a: &[Spoke],
    in_b: &[Spoke],
    report: &mut Report,
    started: Instant,
) -> anyhow::Result<()> {
    // Subscription B's spokes arrive as a landing zone creates them.
    for spoke in in_b {
        create(stack, spoke).await?;
    }
    let baseline = foreign_facts(&stack.sim.state());
    let mut touched: BTreeSet<String> = BTreeSet::new();

    // The churn, spread over the fault phase.
    let mut steps: Vec<(Duration, &'static str, Spoke)> = Vec::new();
    let phase_ms = campaign.fault_phase.as_millis() as u64;
    let next_n = in_a.len() + in_b.len() + 1;
    for k in 0..campaign.created {
        let subscription = if k % 2 == 0 {
            SUBSCRIPTION_A
        } else {
            SUBSCRIPTION_B
        };
        let spoke = Spoke {
            name: format!("new{k}"),
            subscription,
            n: next_n + k,
        };
        steps.push((
            Duration::from_millis(rng.random_range(0..phase_ms * 2 / 3)),
            "create",
            spoke,
        ));
    }
    let mut existing: Vec<Spoke> = in_a.iter().chain(in_b).cloned().collect();
    for _ in 0..campaign.renumbered {
        let spoke = existing.remove(rng.random_range(0..existing.len()));
        steps.push((
            Duration::from_millis(rng.random_range(0..phase_ms * 2 / 3)),
            "renumber",
            spoke,
        ));
    }
    for _ in 0..campaign.deleted {
        let spoke = existing.remove(rng.random_range(0..existing.len()));
        steps.push((
            Duration::from_millis(rng.random_range(0..phase_ms * 2 / 3)),
            "delete",
            spoke,
        ));
    }
    steps.sort_by_key(|(at, _, _)| *at);
    let phase_start = Instant::now();
    for (at, action, spoke) in steps {
        if let Some(wait) = at.checked_sub(phase_start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        touched.insert(vnet_id(&spoke).to_ascii_lowercase());
        match action {
            "create" => create(stack, &spoke).await?,
            "renumber" => renumber(stack, &spoke).await?,
            _ => lz_delete(stack, &vnet_id(&spoke)).await?,
        }
    }
    if let Some(rest) = campaign.fault_phase.checked_sub(phase_start.elapsed()) {
        tokio::time::sleep(rest).await;
    }

    // The faults stop; lost events are the drift check's to recover.
    stack.sim.set_faults(FaultSpec::default());
    let calm = Instant::now();
    let mut last_drift = None::<Instant>;
    loop {
        if last_drift.is_none_or(|at| at.elapsed() > Duration::from_secs(20)) {
            stack.drift_check().await?;
            last_drift = Some(Instant::now());
        }
        if stack.pending_changes()? == 0 {
            report.converged = true;
            break;
        }
        if calm.elapsed() > campaign.converge_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.converge_seconds = calm.elapsed().as_secs_f64();

    // Let the last invocations finish and their outcomes arrive: until nothing runs in the
    // host and as many outcomes as the host counted invocations have come (or a while passes).
    let mut outcomes = stack.outcomes().await?;
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(4) && started.elapsed() < Duration::from_secs(900) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = stack.outcomes().await?;
        let (counted, running) = stack.host.invocations()?;
        let settled = running == 0 && counted.values().sum::<u64>() as usize == now.len();
        if now.len() != outcomes.len() || (running > 0 && !settled) {
            quiet = Instant::now();
        }
        outcomes = now;
        if settled && quiet.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    let (counted, _) = stack.host.invocations()?;
    account(stack, &outcomes, &counted, report);
    report.foreign_changes = compare(&baseline, &foreign_facts(&stack.sim.state()), &touched);
    Ok(())
}

/// Counts passes, writes, invocations and outcomes, and what was lost: the host's own count of
/// the invocations it started against the outcomes that arrived, function by function.
fn account(
    stack: &Stack,
    outcomes: &[Value],
    invocations: &BTreeMap<String, u64>,
    report: &mut Report,
) {
    let of = |function: &str| -> Vec<&Value> {
        outcomes
            .iter()
            .filter(|o| o["function"] == function)
            .collect()
    };
    let reconciles = of("ReconcileHub");
    report.outcomes = outcomes.len();
    report.passes = reconciles
        .iter()
        .filter_map(|o| o["pass"]["id"].as_str())
        .collect::<BTreeSet<_>>()
        .len();
    report.throttled = reconciles
        .iter()
        .filter(|o| o["pass"]["shared"] == false)
        .filter_map(|o| o["requests"]["throttled"].as_u64())
        .sum();
    let records = stack.sim.events();
    let own: Vec<&hubspoke_sim::EventRecord> = records
        .iter()
        .filter(|r| {
            r.event["data"]["claims"]["oid"] == hubspoke_sim::identity::DEFAULT_PRINCIPAL_ID
        })
        .collect();
    report.writes = own.len();
    report.distinct_changes = own
        .iter()
        .map(|r| {
            (
                r.event["subject"]
                    .as_str()
                    .unwrap_or("")
                    .to_ascii_lowercase(),
                r.event["data"]["operationName"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect::<BTreeSet<_>>()
        .len();

    // Every invocation the host started has one outcome, function by function.
    let mut lost = 0;
    for (function, started) in invocations {
        let answered = of(function).len();
        lost += (*started as usize).saturating_sub(answered);
        report.extra_outcomes += answered.saturating_sub(*started as usize);
    }
    report.invocations = invocations.values().sum::<u64>() as usize;

    // Event deliveries: Event Grid's attempts, as the simulator counted them, each with its
    // outcome; the events delivered more than once.
    let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in of("OnNetworkEvent") {
        if let Some(id) = outcome["trigger"]["events"][0]["id"].as_str() {
            *by_event.entry(id.to_string()).or_default() += 1;
        }
    }
    for record in &records {
        let id = record.event["id"].as_str().unwrap_or("");
        let seen = by_event.get(id).copied().unwrap_or(0);
        lost += (record.attempts as usize).saturating_sub(seen);
        report.duplicate_deliveries += seen.saturating_sub(1);
    }
    // Work items: every item queued is answered, its attempts without a gap.
    let mut queued = BTreeSet::new();
    for outcome in outcomes {
        for id in outcome["work_items"].as_array().into_iter().flatten() {
            if let Some(id) = id.as_str() {
                queued.insert(id.to_string());
            }
        }
    }
    let mut attempts: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for outcome in &reconciles {
        if let (Some(item), Some(count)) = (
            outcome["trigger"]["message"]["work_item"].as_str(),
            outcome["trigger"]["message"]["dequeue_count"].as_u64(),
        ) {
            attempts.entry(item.to_string()).or_default().insert(count);
        }
    }
    report.lost_work_items = queued
        .iter()
        .filter(|id| !attempts.contains_key(*id))
        .count();
    for counts in attempts.values() {
        let highest = counts.iter().max().copied().unwrap_or(0);
        lost += (highest as usize).saturating_sub(counts.len());
    }
    report.lost_outcomes = lost;
}

/// A fact hubspoke must never change, and the VNets it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fact {
    value: String,
    vnets: Vec<String>,
}

/// What hubspoke must never change, keyed by resource: foreign tables and their routes and
/// tags, every subnet's NSG, delegations and foreign table association, every VNet's address
/// space and tags, every peering's `allowVirtualNetworkAccess` and remote; and the transit flags
/// that are on (they may only stay on).
fn foreign_facts(state: &Value) -> BTreeMap<String, Fact> {
    let mut facts = BTreeMap::new();
    let mut add = |key: String, value: String, vnets: Vec<String>| {
        facts.insert(key, Fact { value, vnets });
    };
    let lower = |value: &Value| value.as_str().unwrap_or("").to_ascii_lowercase();
    for table in state["routeTables"].as_array().into_iter().flatten() {
        if table["tags"]["hubspoke:managed"] == "true" {
            continue;
        }
        let id = lower(&table["id"]);
        add(format!("{id} tags"), table["tags"].to_string(), Vec::new());
        for route in table["properties"]["routes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = route["name"].as_str().unwrap_or("");
            if !name.starts_with("hubspoke-") {
                add(
                    format!("{id}/routes/{name}"),
                    route["properties"].to_string(),
                    Vec::new(),
                );
            }
        }
    }
    for vnet in state["virtualNetworks"].as_array().into_iter().flatten() {
        let id = lower(&vnet["id"]);
        let own = vec![id.clone()];
        add(
            format!("{id} addressSpace"),
            vnet["properties"]["addressSpace"].to_string(),
            own.clone(),
        );
        add(format!("{id} tags"), vnet["tags"].to_string(), own.clone());
        for subnet in vnet["properties"]["subnets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = format!("{id}/subnets/{}", subnet["name"].as_str().unwrap_or(""));
            let p = &subnet["properties"];
            add(
                format!("{key} nsg"),
                p["networkSecurityGroup"].to_string(),
                own.clone(),
            );
            add(
                format!("{key} delegations"),
                p["delegations"].to_string(),
                own.clone(),
            );
            let table = lower(&p["routeTable"]["id"]);
            if !table.is_empty() && !table.contains("/routetables/hubspoke-rt-") {
                add(format!("{key} routeTable"), table, own.clone());
            }
        }
        for peering in vnet["properties"]["virtualNetworkPeerings"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = format!(
                "{id}/virtualNetworkPeerings/{}",
                peering["name"].as_str().unwrap_or("")
            );
            let p = &peering["properties"];
            let remote = lower(&p["remoteVirtualNetwork"]["id"]);
            let both = vec![id.clone(), remote.clone()];
            add(
                format!("{key} access"),
                p["allowVirtualNetworkAccess"].to_string(),
                both.clone(),
            );
            add(format!("{key} remote"), remote, both.clone());
            for flag in [
                "allowForwardedTraffic",
                "allowGatewayTransit",
                "useRemoteGateways",
            ] {
                if p[flag] == true {
                    add(format!("{key} {flag} on"), "true".into(), both.clone());
                }
            }
        }
    }
    facts
}

/// The facts that changed, except those about VNets the landing zone itself created,
/// renumbered or deleted.
fn compare(
    before: &BTreeMap<String, Fact>,
    after: &BTreeMap<String, Fact>,
    touched: &BTreeSet<String>,
) -> Vec<String> {
    let mut changed = Vec::new();
    for (key, fact) in before {
        if fact.vnets.iter().any(|vnet| touched.contains(vnet)) {
            continue;
        }
        match after.get(key) {
            None => changed.push(format!("{key}: gone (was {})", fact.value)),
            Some(now) if now.value != fact.value => {
                changed.push(format!("{key}: {} → {}", fact.value, now.value))
            }
            Some(_) => {}
        }
    }
    changed
}
