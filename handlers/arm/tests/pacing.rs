//! The reconciler at Azure's speed limit: against the simulator with its throttling on (a write
//! bucket small enough that every pass drains it), a pass spends a subscription's write budget
//! without a failed change, passes that share a subscription share its budget, and the budget
//! left that Azure reports on every answer sets the pace. Assertions are on counts and on what
//! the simulator recorded (the budget ran low, few writes were refused), never on time.
mod common;

use std::time::Duration;

use hubspoke_arm::apply::{apply, ChangeOutcome, Limits};
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::observe::observe;
use hubspoke_arm::reconcile::{reconcile, HubOutcome, ReconcileOptions, ReconcileResult};
use hubspoke_core::config::PlanConfig;
use hubspoke_core::plan::plan;
use hubspoke_core::synth::Estate;
use hubspoke_sim::{LatencySpec, RequestRecord, Seed, SimConfig, SimHandle, ThrottleSpec};
use serde_json::Value;

/// `hubs` hubs, each with `spokes` spokes peered both ways with every transit flag right but no
/// route table yet: each spoke costs two independent-of-the-hub writes (its table, then its
/// subnet), so nothing is serialized on a hub and only the budget holds the pass back.
fn transit_estate(hubs: &[&str], spokes: usize) -> Estate {
    let mut estate = Estate::default();
    for (h, hub) in hubs.iter().enumerate() {
        // Hubs in 10.0.h.0/24 (their gateway subnets at the end), spokes in 10.(1+h).n.0/24.
        estate.hub(
            hub,
            &format!("10.0.{h}.0/24"),
            &format!("10.0.{h}.224/27"),
            Some("Succeeded"),
        );
        for n in 0..spokes {
            let name = format!("{hub}-spoke{n:03}");
            let base = format!("10.{}.{}", 1 + h, n);
            estate.vnet(
                &name,
                &[&format!("{base}.0/24")],
                &[("app", &format!("{base}.0/26"))],
            );
            estate.connect_transit(hub, &name);
        }
    }
    estate
}

fn config_of(estate: &Estate, hubs: &[&str]) -> PlanConfig {
    PlanConfig::new(
        hubs.iter()
            .map(|hub| estate.vnet_id(hub).parse().expect("hub id"))
            .collect(),
    )
}

/// One hub's pass, as a work item for that hub runs it: observe, plan with every configured hub
/// (so that every pass agrees on which hub may clean which table), apply this hub's plan only,
/// counting its own requests.
async fn pass_for(
    client: &ArmClient,
    config: &PlanConfig,
    hub: usize,
) -> (Vec<ChangeOutcome>, u64) {
    let client = client.with_own_counts();
    let observation = observe(&client, &config.hubs, None)
        .await
        .expect("the estate can be observed");
    let plan = plan(config, &observation.observed);
    let outcomes = apply(&client, &plan.hubs[hub], Limits::default(), None).await;
    (outcomes, client.counts().throttled)
}

/// A simulator seeded with `seed`, with `throttle` and `latency`, and a client for it.
async fn bed(seed: Value, throttle: ThrottleSpec, latency: LatencySpec) -> (SimHandle, ArmClient) {
    let poll = latency.lro;
    let (sim, _) = common::sim_and_client(SimConfig {
        seed: Some(Seed::Value(seed)),
        throttle,
        latency,
        ..SimConfig::default()
    })
    .await;
    let client = another_client(&sim, poll);
    (sim, client)
}

/// A client of its own, as another process would have: it shares nothing with the others but
/// Azure's answers. It polls operations every `poll`, as Azure's `Retry-After` would have it do
/// (the simulator answers `Retry-After: 0`).
fn another_client(sim: &SimHandle, poll: Duration) -> ArmClient {
    let mut settings = common::settings_for(sim, &[]);
    settings.retry.base_delay = poll;
    common::client_for(&settings)
}

/// A write bucket of 50 refilling 25 a second: a pass that has hundreds of writes ready at once,
/// against a simulator that answers in milliseconds, sends far faster than that, so the bucket
/// runs dry whatever the machine, and only the pacer keeps the writes from being refused.
fn pressured() -> ThrottleSpec {
    ThrottleSpec {
        writes: (PRESSURED_BUCKET, 25.0),
        ..ThrottleSpec::default()
    }
}

const PRESSURED_BUCKET: f64 = 50.0;

/// The budget ran low: a tenth of the bucket or less was left to some write.
fn assert_under_pressure(sim: &SimHandle) {
    let least = least_left(sim);
    assert!(
        (least as f64) <= PRESSURED_BUCKET / 10.0,
        "the budget never ran low: at least {least} writes were always left"
    );
}

async fn pass(client: &ArmClient, config: &PlanConfig) -> ReconcileResult {
    reconcile(client, config, &ReconcileOptions::default(), None)
        .await
        .expect("the estate can be observed")
        .0
}

fn changes_of(result: &ReconcileResult) -> usize {
    result.hubs.iter().map(|hub| hub.changes.len()).sum()
}

/// Writes (PUT, DELETE) to ARM the simulator answered.
fn writes(sim: &SimHandle) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" || r.method == "DELETE")
        .filter(|r| !r.path.starts_with("/_sim"))
        .collect()
}

/// The least budget the simulator reported left to a write.
fn least_left(sim: &SimHandle) -> u64 {
    writes(sim)
        .iter()
        .filter_map(|r| r.ratelimit_remaining)
        .min()
        .unwrap_or(u64::MAX)
}

fn peak_in_flight(sim: &SimHandle) -> u32 {
    sim.requests()
        .iter()
        .filter_map(|r| r.operations_in_flight)
        .max()
        .unwrap_or(0)
}

fn throttled_writes(sim: &SimHandle) -> usize {
    writes(sim).iter().filter(|r| r.status == 429).count()
}

/// Every throttled answer, reads (operation polls among them) included.
fn throttled_answers(sim: &SimHandle) -> usize {
    sim.requests().iter().filter(|r| r.status == 429).count()
}

#[tokio::test]
async fn a_reconcile_of_100_spokes_in_one_subscription_spends_the_write_budget_and_fails_nothing() {
    let estate = transit_estate(&["hub"], 100);
    let (sim, client) = bed(estate.snapshot(), pressured(), LatencySpec::default()).await;
    let config = config_of(&estate, &["hub"]);
    let result = pass(&client, &config).await;
    assert_eq!(
        result.hubs[0].status,
        HubOutcome::Changed,
        "{}",
        result.text()
    );
    // 200 writes against a bucket of 50: the pass cannot be done without waiting for the
    // refill, the budget ran low, and the pass waited rather than being refused.
    assert_eq!(changes_of(&result), 200);
    assert!(writes(&sim).len() >= 200);
    assert_under_pressure(&sim);
    let throttled = throttled_writes(&sim);
    assert!(
        throttled * 20 <= writes(&sim).len(),
        "{throttled} writes throttled: a 429 stays rare"
    );
    assert_eq!(result.requests.throttled as usize, throttled_answers(&sim));
    let again = pass(&client, &config).await;
    assert_eq!(changes_of(&again), 0, "{}", again.text());
}

#[tokio::test]
async fn two_reconciles_of_different_hubs_in_one_subscription_share_its_budget() {
    let estate = transit_estate(&["hub-a", "hub-b"], 50);
    let (sim, client) = bed(estate.snapshot(), pressured(), LatencySpec::default()).await;
    let config = config_of(&estate, &["hub-a", "hub-b"]);
    // One process: both passes go through clones of one client, so through one pacer.
    let ((first, first_throttled), (second, second_throttled)) =
        tokio::join!(pass_for(&client, &config, 0), pass_for(&client, &config, 1));
    for outcomes in [&first, &second] {
        assert_eq!(outcomes.len(), 100);
        let failed: Vec<&ChangeOutcome> = outcomes.iter().filter(|o| !o.succeeded()).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }
    // Together four times the bucket.
    let total = writes(&sim).len();
    assert!(total >= 200);
    assert_under_pressure(&sim);
    let throttled = throttled_writes(&sim);
    assert!(
        throttled * 20 <= total,
        "{throttled} of {total} writes throttled"
    );
    assert_eq!(
        (first_throttled + second_throttled) as usize,
        throttled_answers(&sim)
    );
    let again = pass(&client, &config).await;
    assert_eq!(changes_of(&again), 0, "{}", again.text());
}

#[tokio::test]
async fn two_processes_share_a_subscription_through_azures_answers_only() {
    let estate = transit_estate(&["hub-a", "hub-b"], 50);
    let (sim, client_a) = bed(estate.snapshot(), pressured(), LatencySpec::default()).await;
    // Another process: its own pacer, which learns of the first one only from the headers.
    let client_b = another_client(&sim, LatencySpec::default().lro);
    let config = config_of(&estate, &["hub-a", "hub-b"]);
    let ((first, _), (second, _)) = tokio::join!(
        pass_for(&client_a, &config, 0),
        pass_for(&client_b, &config, 1)
    );
    for outcomes in [&first, &second] {
        let failed: Vec<&ChangeOutcome> = outcomes.iter().filter(|o| !o.succeeded()).collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }
    let total = writes(&sim).len();
    assert_under_pressure(&sim);
    // Each process learns of the other only from the budget left in Azure's answers, a beat
    // late: some writes are refused, far fewer than the three quarters that sending without
    // pacing would have refused against a bucket a quarter of the writes.
    let throttled = throttled_writes(&sim);
    assert!(
        throttled * 5 <= total,
        "{throttled} of {total} writes throttled"
    );
    let again = pass(&client_b, &config).await;
    assert_eq!(changes_of(&again), 0, "{}", again.text());
}

/// One new spoke among `spokes`: one route to write in each existing table, all at once.
async fn one_new_spoke_among(spokes: usize) -> (Estate, Value) {
    let estate = transit_estate(&["hub"], spokes);
    // Converge fast, without throttling, then add a spoke peered from its side.
    let (sim, client) = bed(
        estate.snapshot(),
        ThrottleSpec {
            enabled: false,
            ..ThrottleSpec::default()
        },
        LatencySpec::default(),
    )
    .await;
    let config = config_of(&estate, &["hub"]);
    let first = pass(&client, &config).await;
    assert!(!first.has_failures(), "{}", first.text());
    for (path, body) in
        estate.landing_zone_spoke("newspoke", "10.1.250.0/24", "10.1.250.0/26", "hub")
    {
        client.put(&path, None, &body).await.expect("landing zone");
    }
    let state = sim.state();
    sim.shutdown().await;
    (estate, state)
}

#[tokio::test]
async fn the_budget_left_in_every_answer_sets_the_pace() {
    let (estate, state) = one_new_spoke_among(24).await;
    let config = config_of(&estate, &["hub"]);
    // Operations of a second: every write the budget allows is in flight together.
    let latency = LatencySpec {
        lro: Duration::from_secs(1),
        ..LatencySpec::default()
    };
    // Azure's bucket: the 24 routes go out at once (it takes a client 20 requests a second).
    let (roomy, client) = bed(state.clone(), ThrottleSpec::default(), latency.clone()).await;
    let result = pass(&client, &config).await;
    assert!(!result.has_failures(), "{}", result.text());
    assert_eq!(changes_of(&result), 28);
    let wide = peak_in_flight(&roomy);
    roomy.shutdown().await;

    // A bucket of 8 refilling 4 per second admits at most 8 + 4 writes in any second: the
    // answers say so, and the client keeps to it.
    let lowered = ThrottleSpec {
        writes: (8.0, 4.0),
        ..ThrottleSpec::default()
    };
    let (narrow_sim, client) = bed(state, lowered, latency).await;
    let result = pass(&client, &config).await;
    assert!(!result.has_failures(), "{}", result.text());
    let narrow = peak_in_flight(&narrow_sim);
    assert!(
        narrow <= 12 && wide >= 20,
        "writes in flight: {narrow} with the small bucket, {wide} with Azure's"
    );
    // Kept to by reading the headers, not by being refused: a client that sent what it had
    // (or believed Azure's published bucket) would have had 16 of the 24 routes refused at once.
    let throttled = throttled_writes(&narrow_sim);
    assert!(throttled <= 4, "{throttled} writes throttled");
}
