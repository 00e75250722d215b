//! The chaos campaign, seed after seed (see `hubspoke_e2e::chaos`):
//!
//! ```sh
//! cargo build --release -p hubspoke && cargo run --release -p hubspoke-e2e --example chaos -- --seeds 20
//! ```
//!
//! Options: `--seeds N` (20), `--first S` (the first seed, 1), `--spokes N` (32). Prints one line
//! per seed and a summary; exits non-zero if a seed missed a target (converged, no lost outcome,
//! no lost work item, no foreign change).
use hubspoke_e2e::chaos::{self, Campaign, Report};

fn arg(name: &str, default: u64) -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(at) => Ok(args
            .get(at + 1)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seeds = arg("--seeds", 20)?;
    let first = arg("--first", 1)?;
    let mut campaign = Campaign::full();
    campaign.spokes = arg("--spokes", campaign.spokes as u64)? as usize;
    println!(
        "chaos: {} spokes over two subscriptions; ARM faults {}; Event Grid duplicates 30%, reorders 20%, loses 10%, delays 150 ms; {} created, {} renumbered, {} deleted during {} s of faults",
        campaign.spokes,
        chaos::ARM_FAULTS,
        campaign.created,
        campaign.renumbered,
        campaign.deleted,
        campaign.fault_phase.as_secs()
    );
    println!("seed  converged  after  passes  writes/distinct  throttled  outcomes/invocations  lost  foreign  total");
    let mut reports: Vec<Report> = Vec::new();
    for seed in first..first + seeds {
        let report = chaos::run(seed, &campaign).await?;
        println!(
            "{:>4}  {:<9}  {:>4.0}s  {:>6}  {:>7}/{:<7}  {:>9}  {:>8}/{:<11}  {:>4}  {:>7}  {:>4.0}s{}",
            report.seed,
            if report.converged { "yes" } else { "NO" },
            report.converge_seconds,
            report.passes,
            report.writes,
            report.distinct_changes,
            report.throttled,
            report.outcomes,
            report.invocations,
            report.lost_outcomes + report.lost_work_items,
            report.foreign_changes.len(),
            report.total_seconds,
            report.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default()
        );
        for change in &report.foreign_changes {
            println!("      foreign change: {change}");
        }
        reports.push(report);
    }
    let passed = reports.iter().filter(|r| r.passed()).count();
    let mut converge: Vec<f64> = reports.iter().map(|r| r.converge_seconds).collect();
    converge.sort_by(f64::total_cmp);
    println!(
        "{passed} of {} seeds met every target; convergence after the faults: median {:.0} s, max {:.0} s; lost outcomes {}, outcomes without an invocation {}, lost work items {}, foreign changes {}",
        reports.len(),
        converge[converge.len() / 2],
        converge[converge.len() - 1],
        reports.iter().map(|r| r.lost_outcomes).sum::<usize>(),
        reports.iter().map(|r| r.extra_outcomes).sum::<usize>(),
        reports.iter().map(|r| r.lost_work_items).sum::<usize>(),
        reports.iter().map(|r| r.foreign_changes.len()).sum::<usize>()
    );
    if passed != reports.len() {
        anyhow::bail!("{} seeds missed a target", reports.len() - passed);
    }
    Ok(())
}
