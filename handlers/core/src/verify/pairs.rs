//! Pair verdicts: every ordered pair of spokes of one group, each direction's path
//! (`paths.rs`), and the flag of a pair whose two directions take different kinds of path.
use super::hub::HubContext;
use super::paths::{direction, Direction};
use super::verdict::{PairVerdict, Verdict, VerdictCounts};

/// Every ordered pair of the hub's spokes within a group, by source then destination, and
/// their counts.
pub(crate) fn pair_verdicts(hub: &HubContext) -> (Vec<PairVerdict>, VerdictCounts) {
    let count = hub.spokes.len();
    // Groups by number: comparing their names for every pair costs more than the pair itself.
    let mut names: Vec<&str> = hub
        .spokes
        .iter()
        .map(|s| s.enrolled.group.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let groups: Vec<usize> = hub
        .spokes
        .iter()
        .map(|s| names.partition_point(|name| *name < s.enrolled.group.as_str()))
        .collect();
    let same_group = |a: usize, b: usize| a != b && groups[a] == groups[b];
    // Each direction once; a pair reads its own and the one back.
    let directions: Vec<Option<Direction>> = (0..count * count)
        .map(|at| {
            let (from, to) = (at / count, at % count);
            same_group(from, to).then(|| direction(hub, from, to))
        })
        .collect();
    let mut pairs = Vec::new();
    let mut counts = VerdictCounts::default();
    for (at, there) in directions.iter().enumerate() {
        let Some(there) = there else {
            continue;
        };
        let (from, to) = (at / count, at % count);
        let back = directions[to * count + from].as_ref();
        let pair = PairVerdict {
            from: from as u32,
            to: to as u32,
            verdict: there.verdict,
            asymmetric: back.is_some_and(|back| asymmetric(there.verdict, back.verdict)),
            reason: there.reason.clone(),
        };
        counts.add(&pair);
        pairs.push(pair);
    }
    (pairs, counts)
}

/// Two directions that both reach the other side through different kinds of path.
fn asymmetric(there: Verdict, back: Verdict) -> bool {
    there != back && there != Verdict::Unreachable && back != Verdict::Unreachable
}
