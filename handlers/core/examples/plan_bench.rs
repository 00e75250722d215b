//! Planner benchmark: time and peak heap memory of `plan()` for 1 hub × N spokes × 4 prefixes.
//!
//! `cargo run --release -p hubspoke-core --example plan_bench [-- SPOKES]` (default 1000).
//! Prints one line per scenario: a fresh estate (spokes peered only from their side), the same
//! estate once converged (the common case: nothing to do), and the fresh estate with a summary
//! prefix. Times are the median of several runs; memory is the planner's own peak allocation.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;

use hubspoke_core::config::PlanConfig;
use hubspoke_core::model::Observed;
use hubspoke_core::plan::plan;
use hubspoke_core::synth::hub_and_spokes;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn measure(label: &str, config: &PlanConfig, observed: &Observed) {
    // BENCH_ONLY=<word> runs only the scenarios whose label contains it (for profiling).
    if std::env::var("BENCH_ONLY").is_ok_and(|only| !label.contains(&only)) {
        return;
    }
    let mut times: Vec<Duration> = Vec::new();
    let mut peak = 0;
    let mut changes = 0;
    let mut warnings = 0;
    for _ in 0..7 {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let start = Instant::now();
        let result = plan(config, observed);
        times.push(start.elapsed());
        peak = PEAK.load(Ordering::Relaxed) - base;
        changes = result.hubs.iter().map(|h| h.changes.len()).sum();
        warnings = result.hubs.iter().map(|h| h.warnings.len()).sum();
        drop(result);
    }
    times.sort();
    println!(
        "{label:<44} median {:>8.2} ms  (min {:>7.2} ms)  peak heap {:>7.1} MiB  changes {changes:>6}  warnings {warnings}",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        peak as f64 / (1024.0 * 1024.0),
    );
}

fn main() {
    let spokes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let estate = hub_and_spokes(spokes, 4, false);
    let observed = Observed::from_snapshot(&estate.snapshot()).expect("synthetic estate parses");
    let config = PlanConfig::new(vec![estate.vnet_id("hub").parse().expect("hub id")]);
    println!(
        "planner: 1 hub x {spokes} spokes x 4 prefixes, route limit {}",
        config.route_limit
    );
    measure(
        "fresh (spokes peered from their side only)",
        &config,
        &observed,
    );

    let mut converged = observed.clone();
    support::apply(&mut converged, &plan(&config, &observed));
    measure("converged (nothing to do)", &config, &converged);

    let mut summary = config.clone();
    summary.summary_prefixes = vec!["10.0.0.0/8".parse().expect("prefix")];
    measure("fresh, summary prefix 10.0.0.0/8", &summary, &observed);
    let mut converged = observed.clone();
    support::apply(&mut converged, &plan(&summary, &observed));
    measure("converged, summary prefix 10.0.0.0/8", &summary, &converged);
}
