//! Reconcile benchmark: one pass on the simulator with Azure-like latencies and throttling,
//! against the time Azure itself needs for the pass's plan.
//!
//! `cargo run --release -p hubspoke-arm --example reconcile_bench [-- [--compression C] SCENARIO...]`
//!
//! SCENARIO is `new:N[/S][+summary][+graph][+idle=K][@C][~L]`, or the same with `first:` or
//! `steady:`:
//! - `new`: an estate of N spokes is converged on a fast simulator, its state loaded into an
//!   Azure-paced one, then a landing zone adds one spoke peered from its side only (in a
//!   subscription of its own when S > 1, listed in the subscriptions in scope) and hubspoke
//!   reconciles;
//! - `first`: the first reconcile of N spokes that have never seen hubspoke (peered from their
//!   side only, no route table);
//! - `steady`: as `new` without the new spoke: a pass that finds nothing to do, what every drift
//!   check costs a converged estate;
//! - S: the spokes' subscriptions (default 1: the hub's own); with S > 1 the hub has a
//!   subscription of its own and spoke n lives in landing-zone subscription n mod S;
//! - `+summary`: `HUBSPOKE_SUMMARY_PREFIXES=10.0.0.0/8`;
//! - `+graph`: the scope is a management group holding every subscription but the hub's
//!   (`HUBSPOKE_MANAGEMENT_GROUPS`), and the pass discovers the spokes through Resource Graph,
//!   reading only their subscriptions; without it, the scope lists every subscription
//!   (`HUBSPOKE_SUBSCRIPTIONS`, the new spoke's included) and the pass lists each;
//! - `+idle=K`: K more subscriptions in scope that hold no spoke (one VNet each, not peered);
//! - `@C`: this scenario's compression (default `--compression`, itself 20);
//! - `~L`: passes as the Functions app runs them, cut by a time limit of L seconds of Azure time
//!   (`HUBSPOKE_PASS_TIME_LIMIT_SECONDS`): passes follow one another until none defers a change;
//!   the row sums them and says how many there were.
//!
//! Without SCENARIO: `new:100 new:400@5 new:400/2@5 new:490/50 new:490/50+summary
//! first:490/50@50` (about six minutes). Compression multiplies the simulator's and the client's
//! own CPU time as much as Azure's latencies: where they are large (tables of 400 routes), a
//! smaller compression keeps the "Azure time" honest.
//!
//! Each spoke has one /24 and one subnet. Up to 400 spokes they sit in every other /24, so no two
//! merge and every table holds one route per other spoke (the route limit's worst case: 400
//! tables of 400 routes); beyond, contiguous /24s that merge into a few routes, as the 400-route
//! limit requires.
//!
//! Azure-like means: a write's operation takes 10 s, a delete's 10 s, an answer 50 ms, all
//! divided by C; ARM's token buckets and the Network RP's budgets on the same compressed clock;
//! the client polls operations every 10 s (compressed), as Azure's `Retry-After` has it do. The
//! client runs with the defaults a new user gets (adaptive pace, no concurrency bound).
//!
//! Printed per scenario: writes against the lower bound of writes (the plan's changes: resources
//! whose desired state differs), failed changes, reads, retries, throttled answers, the most
//! long-running operations the simulator saw in flight in one subscription, the wall time and
//! the same as Azure time (times C); then Azure's own lower bound for the pass (`bound.rs`: the
//! plan's dependency chains, the writes Azure serializes, each subscription's budgets, plus the
//! observation's sequential pages) and the ratio of the Azure time to it; and the peak heap the
//! pass allocated on the client's threads (the simulator runs on threads of its own, not counted).
//!
//! The scope's rows: `new:500/500 new:500/500+graph new:500/500+idle=1500
//! new:500/500+graph+idle=1500` (one new spoke among 500 spokes in 500 subscriptions, listing
//! every subscription or discovering through Resource Graph, with and without 1,500 subscriptions
//! that hold no spoke).
//!
//! `BENCH_DETAIL=1` adds, on stderr, the kinds of changes, the parts of the bound and what did not
//! go well; `BENCH_REQUEST_LOG=FILE` writes the simulator's log of the (last) measured pass.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use hubspoke_arm::bound::{lower_bound, Budget, Model};
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions};
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::{PlanConfig, Scope};
use hubspoke_core::synth::Estate;
use hubspoke_sim::{GroupSpec, LatencySpec, Seed, SimConfig, SimHandle, ThrottleSpec};
use serde_json::{json, Value};

// ---- heap of the client's threads ----

thread_local! {
    /// Set on the simulator's threads: their allocations are the simulated Azure's, not ours.
    static SIMULATOR: Cell<bool> = const { Cell::new(false) };
}

static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn counted() -> bool {
    !SIMULATOR.try_with(Cell::get).unwrap_or(true)
}

fn add(bytes: usize) {
    let now = CURRENT.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            add(layout.size());
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            CURRENT.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            CURRENT.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            add(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---- scenarios and estates ----

const HUB_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
/// The management group of the `+graph` scenarios: every subscription but the hub's.
const GROUP: &str = "mg-landing-zones";
const HUB_SPACE: &str = "10.0.0.0/16";

#[derive(Debug, Clone)]
struct Scenario {
    first: bool,
    /// `steady`: no new spoke, nothing to do.
    steady: bool,
    spokes: usize,
    subscriptions: usize,
    summary: bool,
    /// `+graph`: discovery through Resource Graph within a management group.
    graph: bool,
    /// `+idle=K`: subscriptions in scope without a spoke.
    idle: usize,
    compression: f64,
    /// `~L`: each pass's time limit, in seconds of Azure time.
    pass_limit: Option<f64>,
}

impl Scenario {
    fn parse(text: &str, compression: f64) -> anyhow::Result<Self> {
        let (text, pass_limit) = match text.split_once('~') {
            Some((rest, limit)) => (rest, Some(limit.parse::<f64>()?)),
            None => (text, None),
        };
        let (text, compression) = match text.split_once('@') {
            Some((rest, c)) => (rest, c.parse()?),
            None => (text, compression),
        };
        let mut flags = text.split('+');
        let text = flags.next().unwrap_or("");
        let (mut summary, mut graph, mut idle) = (false, false, 0);
        for flag in flags {
            match flag.split_once('=') {
                None if flag == "summary" => summary = true,
                None if flag == "graph" => graph = true,
                Some(("idle", count)) => idle = count.parse()?,
                _ => anyhow::bail!("scenario flag `+{flag}`: summary, graph or idle=K"),
            }
        }
        let (kind, size) = text
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("scenario `{text}`: expected new:N or first:N"))?;
        let (spokes, subscriptions) = match size.split_once('/') {
            Some((n, s)) => (n.parse()?, s.parse()?),
            None => (size.parse()?, 1),
        };
        let (first, steady) = match kind {
            "new" => (false, false),
            "first" => (true, false),
            "steady" => (false, true),
            other => anyhow::bail!("scenario kind `{other}`: new, first or steady"),
        };
        Ok(Self {
            first,
            steady,
            spokes,
            subscriptions: std::cmp::max(subscriptions, 1),
            summary,
            graph,
            idle,
            compression,
            pass_limit,
        })
    }

    fn label(&self) -> String {
        format!(
            "{} {} spokes, {} sub{}{}{}{}{}",
            if self.first {
                "first reconcile,"
            } else if self.steady {
                "nothing to do,"
            } else {
                "one new among"
            },
            self.spokes,
            self.subscriptions,
            if self.subscriptions == 1 { "" } else { "s" },
            if self.idle > 0 {
                format!(" + {} without spokes", self.idle)
            } else {
                String::new()
            },
            if self.graph {
                ", Resource Graph"
            } else if self.idle > 0 {
                ", every subscription listed"
            } else {
                ""
            },
            if self.summary { ", summary" } else { "" },
            self.pass_limit
                .map(|l| format!(", passes of {l:.0} s"))
                .unwrap_or_default()
        )
    }

    /// Whether spokes sit in contiguous /24s (they merge) rather than every other one: only when
    /// one route per other spoke would not fit the 400-route limit (a table holds the others and
    /// the new one: `spokes` routes).
    fn contiguous(&self) -> bool {
        self.spokes > 400
    }

    /// The subscription of spoke `n` (`n == spokes`: the landing zone's new one).
    fn subscription_of(&self, n: usize) -> String {
        if self.subscriptions == 1 {
            HUB_SUBSCRIPTION.to_string()
        } else if n == self.spokes {
            landing_zone(self.subscriptions)
        } else {
            landing_zone(n % self.subscriptions)
        }
    }

    /// The address prefix and subnet of spoke `n`.
    fn space_of(&self, n: usize) -> (String, String) {
        let block = if self.contiguous() { n } else { 2 * n };
        let base = format!("10.{}.{}", 1 + block / 256, block % 256);
        (format!("{base}.0/24"), format!("{base}.0/26"))
    }

    fn hub_id(&self) -> String {
        Estate::new(HUB_SUBSCRIPTION, "rg-network", "westeurope").vnet_id("hub")
    }

    /// The estate before the pass (without the new spoke): a hub with a ready VPN gateway and the
    /// spokes peered from their side only.
    fn estate(&self) -> Value {
        let mut estates: BTreeMap<String, Estate> = BTreeMap::new();
        fn estate_in<'a>(
            estates: &'a mut BTreeMap<String, Estate>,
            subscription: &str,
        ) -> &'a mut Estate {
            estates
                .entry(subscription.to_string())
                .or_insert_with(|| Estate::new(subscription, "rg-network", "westeurope"))
        }
        estate_in(&mut estates, HUB_SUBSCRIPTION).hub(
            "hub",
            HUB_SPACE,
            "10.0.255.0/27",
            Some("Succeeded"),
        );
        let hub_id = self.hub_id();
        for n in 0..self.spokes {
            let estate = estate_in(&mut estates, &self.subscription_of(n));
            let name = format!("spoke{n:03}");
            let (prefix, subnet) = self.space_of(n);
            let id = estate.vnet(&name, &[&prefix], &[("app", &subnet)]);
            let peering = json!({
                "name": format!("{name}-to-hub"),
                "id": format!("{id}/virtualNetworkPeerings/{name}-to-hub"),
                "properties": {
                    "peeringState": "Initiated",
                    "peeringSyncLevel": "FullyInSync",
                    "allowVirtualNetworkAccess": true,
                    "allowForwardedTraffic": false,
                    "allowGatewayTransit": false,
                    "useRemoteGateways": false,
                    "remoteVirtualNetwork": {"id": hub_id},
                    "remoteAddressSpace": {"addressPrefixes": [HUB_SPACE]},
                    "remoteVirtualNetworkAddressSpace": {"addressPrefixes": [HUB_SPACE]},
                }
            });
            estate.vnet_mut(&name)["properties"]["virtualNetworkPeerings"] = json!([peering]);
        }
        for i in 0..self.idle {
            let estate = estate_in(&mut estates, &idle_subscription(i));
            let prefix = format!("172.{}.{}.0/24", 16 + i / 256, i % 256);
            estate.vnet("isolated", &[&prefix], &[("app", &prefix)]);
        }
        let mut snapshot =
            json!({"virtualNetworks": [], "routeTables": [], "virtualNetworkGateways": []});
        for estate in estates.values() {
            for (field, items) in [
                ("virtualNetworks", &estate.virtual_networks),
                ("routeTables", &estate.route_tables),
                ("virtualNetworkGateways", &estate.gateways),
            ] {
                if let Some(list) = snapshot[field].as_array_mut() {
                    list.extend(items.iter().cloned());
                }
            }
        }
        snapshot
    }

    /// The landing zone's two PUTs: the new spoke's VNet, then its peering to the hub.
    fn landing_zone_writes(&self) -> [(String, Value); 2] {
        let subscription = self.subscription_of(self.spokes);
        let id = Estate::new(&subscription, "rg-network", "westeurope").vnet_id("newspoke");
        let (prefix, subnet) = self.space_of(self.spokes);
        [
            (
                id.clone(),
                json!({"location": "westeurope", "properties": {
                    "addressSpace": {"addressPrefixes": [prefix]},
                    "subnets": [{"name": "workload", "properties": {"addressPrefix": subnet}}],
                }}),
            ),
            (
                format!("{id}/virtualNetworkPeerings/newspoke-to-hub"),
                json!({"properties": {
                    "allowVirtualNetworkAccess": true,
                    "remoteVirtualNetwork": {"id": self.hub_id()},
                }}),
            ),
        ]
    }

    /// Every subscription in scope (as `HUBSPOKE_SUBSCRIPTIONS` lists a landing zone's).
    fn subscriptions(&self) -> Vec<String> {
        let mut all: BTreeSet<String> =
            (0..=self.spokes).map(|n| self.subscription_of(n)).collect();
        all.extend((0..self.idle).map(idle_subscription));
        all.insert(HUB_SUBSCRIPTION.to_string());
        all.into_iter().collect()
    }

    /// The scope of the pass: every subscription listed, or the management group.
    fn scope(&self) -> Scope {
        if self.graph {
            Scope::ManagementGroups(vec![GROUP.to_string()])
        } else {
            Scope::Listed(self.subscriptions())
        }
    }

    /// Places every subscription but the hub's in the management group of `sim` (`+graph`).
    fn place(&self, sim: &SimHandle) -> anyhow::Result<()> {
        if !self.graph {
            return Ok(());
        }
        let subscriptions = self
            .subscriptions()
            .into_iter()
            .filter(|s| s != HUB_SUBSCRIPTION)
            .collect();
        sim.put_management_group(
            GROUP,
            &GroupSpec {
                display_name: None,
                parent: None,
                subscriptions,
            },
        )
    }

    fn config(&self) -> anyhow::Result<PlanConfig> {
        let mut config = PlanConfig::new(vec![self.hub_id().parse()?]);
        if self.summary {
            config.summary_prefixes = vec!["10.0.0.0/8".parse()?];
        }
        Ok(config)
    }
}

fn landing_zone(n: usize) -> String {
    format!("00000000-0000-0000-0001-{n:012}")
}

fn idle_subscription(n: usize) -> String {
    format!("00000000-0000-0000-0002-{n:012}")
}

// ---- simulators on their own threads ----

/// The simulator's runtime: its threads are marked, so the heap count leaves them out.
fn simulator_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("simulator")
        .on_thread_start(|| SIMULATOR.with(|flag| flag.set(true)))
        .enable_all()
        .build()?)
}

async fn start_sim(
    runtime: &tokio::runtime::Runtime,
    config: SimConfig,
) -> anyhow::Result<SimHandle> {
    runtime.spawn(hubspoke_sim::start(config)).await?
}

async fn stop_sim(runtime: &tokio::runtime::Runtime, sim: SimHandle) {
    let _ = runtime.spawn(sim.shutdown()).await;
}

async fn client_for(sim: &SimHandle, poll: Duration) -> anyhow::Result<ArmClient> {
    let env = sim.env();
    let mut settings = ArmSettings::from_settings(|name| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    })?;
    // The simulator answers `Retry-After: 0` (whole seconds cannot be compressed); the client
    // then waits `base_delay` between polls, set to what Azure's `Retry-After: 10` becomes.
    settings.retry.base_delay = poll;
    let credential = hubspoke_arm::credential::credential(&settings)?;
    Ok(ArmClient::new(&settings, credential)?)
}

/// The Azure the paced simulator imitates, in Azure time (its settings times the compression).
fn model_of(latency: &LatencySpec, throttle: &ThrottleSpec, compression: f64) -> Model {
    let bucket = |(size, per_second): (f64, f64)| Budget { size, per_second };
    Model {
        write_operation: latency.lro.mul_f64(compression),
        delete_operation: latency.delete.mul_f64(compression),
        response: latency.response.mul_f64(compression),
        writes: bucket(throttle.writes),
        deletes: bucket(throttle.deletes),
        provider_writes: bucket(throttle.network_writes),
    }
}

/// The observation's lower bound: pages of a list come one after another, every subscription's
/// lists in parallel, and the hub's gateway is read once the hub's VNet list is in.
fn observation_bound(snapshot: &Value, page_size: usize, response: Duration) -> Duration {
    let mut counts: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for field in ["virtualNetworks", "routeTables"] {
        for item in snapshot[field].as_array().into_iter().flatten() {
            let id = item["id"].as_str().unwrap_or("");
            let subscription = id.split('/').nth(2).unwrap_or("").to_ascii_lowercase();
            *counts.entry((subscription, field)).or_default() += 1;
        }
    }
    let pages = |n: usize| n.div_ceil(page_size.max(1)).max(1) as u32;
    let longest = counts.values().map(|n| pages(*n)).max().unwrap_or(1);
    let hub = pages(
        counts
            .get(&(HUB_SUBSCRIPTION.to_string(), "virtualNetworks"))
            .copied()
            .unwrap_or(1),
    ) + 1;
    response * longest.max(hub)
}

fn main() -> anyhow::Result<()> {
    let mut compression = 20.0;
    let mut texts = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--compression" {
            compression = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("--compression needs a value"))?
                .parse()?;
        } else {
            texts.push(arg);
        }
    }
    if texts.is_empty() {
        // The targets. Tables of 400 routes make the simulator's own CPU (serializing and
        // updating 160,000 routes) large enough that compressing time 20-fold would count it as
        // Azure's time: those rows run 5-fold.
        texts = [
            "new:100",
            "new:400@5",
            "new:400/2@5",
            "new:490/50",
            "new:490/50+summary",
            "first:490/50@50",
        ]
        .map(String::from)
        .to_vec();
    }
    let scenarios = texts
        .iter()
        .map(|text| Scenario::parse(text, compression))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let simulators = simulator_runtime()?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    client_runtime.block_on(run(&simulators, &scenarios))
}

async fn run(simulators: &tokio::runtime::Runtime, scenarios: &[Scenario]) -> anyhow::Result<()> {
    println!("| scenario | compression | writes | lower bound | failed | reads | retries | throttled | peak in flight | wall time | as Azure time | Azure's bound | ratio | peak heap |");
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for scenario in scenarios {
        measure(simulators, scenario).await?;
    }
    Ok(())
}

async fn measure(simulators: &tokio::runtime::Runtime, scenario: &Scenario) -> anyhow::Result<()> {
    let config = scenario.config()?;
    let mut options = ReconcileOptions {
        scope: scenario.scope(),
        ..ReconcileOptions::default()
    };
    let compression = scenario.compression;
    let scale = |seconds: f64| Duration::from_secs_f64(seconds / compression);

    let mut state = scenario.estate();
    if !scenario.first {
        // Converge quickly, then move the state into an Azure-paced simulator.
        let fast = start_sim(
            simulators,
            SimConfig {
                tls: true,
                seed: Some(Seed::Value(state)),
                latency: LatencySpec {
                    lro: Duration::from_millis(1),
                    delete: Duration::from_millis(1),
                    ..LatencySpec::default()
                },
                throttle: ThrottleSpec {
                    enabled: false,
                    ..ThrottleSpec::default()
                },
                page_size: 1000,
                ..SimConfig::default()
            },
        )
        .await?;
        scenario.place(&fast)?;
        let fast_client = client_for(&fast, Duration::from_millis(1)).await?;
        let (converged, _) = reconcile(&fast_client, &config, &options, None).await?;
        if converged.has_failures() {
            anyhow::bail!("the estate did not converge: {}", converged.text());
        }
        state = fast.state();
        stop_sim(simulators, fast).await;
    }

    let latency = LatencySpec {
        lro: scale(10.0),
        delete: scale(10.0),
        gateway: scale(1800.0),
        response: scale(0.05),
        retry_after_secs: 0,
    };
    let throttle = ThrottleSpec {
        time_factor: compression,
        ..ThrottleSpec::default()
    };
    let page_size = SimConfig::default().page_size;
    let sim = start_sim(
        simulators,
        SimConfig {
            tls: true,
            seed: Some(Seed::Value(state)),
            latency: latency.clone(),
            throttle: throttle.clone(),
            ..SimConfig::default()
        },
    )
    .await?;
    scenario.place(&sim)?;
    let client = client_for(&sim, scale(10.0)).await?;
    if !scenario.first && !scenario.steady {
        for (path, body) in scenario.landing_zone_writes() {
            client.put(&path, None, &body).await?;
        }
    }
    let observed_before = sim.state();
    sim.clear_requests();

    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    options.time_limit = scenario.pass_limit.map(scale);
    let start = Instant::now();
    let (mut result, plan) = reconcile(&client, &config, &options, None).await?;
    // Cut by a time limit, passes follow one another as the queue would run them; the counts are
    // summed, the plan (and so the lower bound) is the first pass's.
    let mut passes = 1;
    let mut applied = result.applied();
    let mut requests = result.requests;
    while result.has_deferred() && passes < 1000 {
        (result, _) = reconcile(&client, &config, &options, None).await?;
        passes += 1;
        applied += result.applied();
        requests.reads += result.requests.reads;
        requests.writes += result.requests.writes;
        requests.retries += result.requests.retries;
        requests.throttled += result.requests.throttled;
    }
    let elapsed = start.elapsed();
    let peak_heap = PEAK.load(Ordering::Relaxed) - base;
    options.time_limit = None;

    let changes: usize = plan.hubs.iter().map(|h| h.changes.len()).sum();
    let failed = changes.saturating_sub(applied);
    let in_flight = sim
        .requests()
        .iter()
        .filter_map(|r| r.operations_in_flight)
        .max()
        .unwrap_or(0);
    if let Ok(path) = std::env::var("BENCH_REQUEST_LOG") {
        // The simulator's log of the pass, one JSON object a line, for a closer look.
        let lines: Vec<String> = sim
            .requests()
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        std::fs::write(path, lines.join("\n"))?;
    }
    let model = model_of(&latency, &throttle, compression);
    let observation = observation_bound(&observed_before, page_size, model.response);
    let bounds: Vec<_> = plan
        .hubs
        .iter()
        .map(|hub| lower_bound(hub, &model, observation))
        .collect();
    let bound = bounds.iter().map(|b| b.total).max().unwrap_or(observation);
    let azure = elapsed.mul_f64(compression);
    if std::env::var("BENCH_DETAIL").is_ok() {
        let mut kinds = BTreeMap::new();
        for change in plan.hubs.iter().flat_map(|h| &h.changes) {
            *kinds.entry(change.action.kind()).or_insert(0) += 1;
        }
        eprintln!("{}: {kinds:?}", scenario.label());
        for b in &bounds {
            eprintln!(
                "  bound {:.1} s ({}): dependencies {:.1} s, serialized {:.1} s on {}, budget {:.1} s ({}), observation {:.2} s",
                b.total.as_secs_f64(),
                b.binding(),
                b.dependencies.as_secs_f64(),
                b.serialized.1.as_secs_f64(),
                b.serialized.0,
                b.budget.1.as_secs_f64(),
                b.budget.0,
                observation.as_secs_f64()
            );
        }
        for line in result.text().lines().filter(|l| !l.contains("[ok]")) {
            eprintln!("  {line}");
        }
    }
    let (_, again) = reconcile(&client, &config, &options, None).await?;
    let leftover: usize = again.hubs.iter().map(|h| h.changes.len()).sum();
    println!(
        "| {}{}{} | {compression}x | {} | {changes} | {failed} | {} | {} | {} | {in_flight} | {:.1} s | {:.0} s | {:.1} s ({}) | {:.2} | {:.1} MiB |",
        scenario.label(),
        if scenario.pass_limit.is_some() {
            format!(": {passes} passes")
        } else {
            String::new()
        },
        if leftover == 0 { "" } else { " (not converged)" },
        requests.writes,
        requests.reads,
        requests.retries,
        requests.throttled,
        elapsed.as_secs_f64(),
        azure.as_secs_f64(),
        bound.as_secs_f64(),
        bounds.first().map_or("observation", |b| b.binding()),
        azure.as_secs_f64() / bound.as_secs_f64().max(f64::MIN_POSITIVE),
        peak_heap as f64 / (1024.0 * 1024.0),
    );
    stop_sim(simulators, sim).await;
    Ok(())
}
