//! Verification benchmark: time of `verify()` for 1 hub × N spokes × 4 prefixes, converged (every
//! ordered pair through the gateway: the common case), beside the planner's time on the same
//! estate; then the same estate with its gateway provisioning (every pair unreachable, each
//! with its reason).
//!
//! `cargo run --release -p hubspoke-core --example verify_bench [-- SPOKES]` (default 490:
//! 239,610 ordered pairs). One core; times are the median of several runs.
use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;

use hubspoke_core::config::PlanConfig;
use hubspoke_core::model::Observed;
use hubspoke_core::plan::plan;
use hubspoke_core::synth::hub_and_spokes;
use hubspoke_core::verify::verify;

fn median(mut run: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..9 {
        let start = Instant::now();
        size = run();
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], size)
}

fn main() {
    let spokes: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(490);
    let estate = hub_and_spokes(spokes, 4, true);
    let config = PlanConfig::new(vec![estate.vnet_id("hub").parse().expect("hub id")]);
    let mut observed: Observed = support::observed(&estate.snapshot());
    support::converge(&config, &mut observed);
    let (verify_time, pairs) = median(|| {
        let verified = verify(&config, &observed);
        assert!(
            verified[0].transit_pairs_fine(),
            "the converged estate is fine"
        );
        verified[0].pairs.len()
    });
    let (plan_time, _) = median(|| plan(&config, &observed).hubs[0].changes.len());
    println!(
        "verify {spokes} spokes x 4 prefixes, converged: {pairs} ordered pairs in {:.1} ms (median of 9); the planner on the same estate: {:.1} ms",
        verify_time.as_secs_f64() * 1e3,
        plan_time.as_secs_f64() * 1e3,
    );
    for gateway in &mut observed.gateways {
        gateway.provisioning_state = "Updating".into();
    }
    let (down_time, unreachable) = median(|| verify(&config, &observed)[0].counts.unreachable);
    println!(
        "verify {spokes} spokes x 4 prefixes, gateway updating: {unreachable} pairs unreachable in {:.1} ms (median of 9)",
        down_time.as_secs_f64() * 1e3,
    );
}
