//! The chaos campaign, short: one seed, a smaller estate, a shorter storm. The full campaign is
//! the `chaos` example (`BENCHMARKS.md`).
use std::time::Duration;

use hubspoke_e2e::chaos::{self, Campaign};
use hubspoke_stack::Storage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_storm_converges_with_nothing_lost_and_nothing_foreign_changed() {
    let campaign = Campaign {
        spokes: 12,
        created: 2,
        renumbered: 1,
        deleted: 1,
        fault_phase: Duration::from_secs(12),
        converge_limit: Duration::from_secs(150),
        storage: Storage::for_tests(),
    };
    let report = chaos::run(7, &campaign).await.expect("the campaign runs");
    assert!(report.passed(), "{report:#?}");
    assert!(report.passes > 0 && report.writes > 0, "{report:#?}");
    // The host's own count of invocations, against the outcomes: one each.
    assert!(report.invocations > 0, "{report:#?}");
    assert_eq!(report.outcomes, report.invocations, "{report:#?}");
    // Event Grid duplicated (a third of the deliveries), and each duplicate had its outcome.
    assert!(report.duplicate_deliveries > 0, "{report:#?}");
}
