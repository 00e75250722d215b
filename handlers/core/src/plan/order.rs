//! The last stage, order: the changes by phase, keeping the order the stages pushed them in
//! within a phase, renumbered so that every dependency points backwards (phase 0, the removal
//! of routes whose prefixes vanished, first: `docs/design.md` section 2, rule 11).

use super::types::Change;

/// Orders `changes` (whose ids are their positions) by phase, stably, and renumbers their ids
/// and dependencies.
pub(crate) fn in_phase_order(mut changes: Vec<Change>) -> Vec<Change> {
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_by_key(|&index| (changes[index].phase, index));
    let mut new_id = vec![0; changes.len()];
    for (position, &old) in order.iter().enumerate() {
        new_id[old] = position;
    }
    let mut slots: Vec<Option<Change>> = changes.drain(..).map(Some).collect();
    let mut ordered = Vec::with_capacity(slots.len());
    for &old in &order {
        if let Some(mut change) = slots[old].take() {
            change.id = new_id[old];
            for dependency in &mut change.depends_on {
                *dependency = new_id[*dependency];
            }
            change.depends_on.sort_unstable();
            ordered.push(change);
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{RouteId, RouteTableId};
    use crate::plan::types::{Action, RouteSpec};

    fn change(id: usize, phase: u8, depends_on: &[usize]) -> Change {
        let table = RouteTableId::new("s", "g", "t");
        let route = RouteSpec::managed("10.0.0.0/24".parse().expect("prefix"));
        Change {
            id,
            phase,
            depends_on: depends_on.to_vec(),
            reason: format!("change {id}"),
            action: Action::DeleteRoute {
                target: RouteId::new(&table, &format!("r{id}")),
                before: route,
            },
        }
    }

    #[test]
    fn changes_are_ordered_by_phase_and_renumbered() {
        // (phases in push order, dependencies in push order) -> (reasons in the new order,
        // dependencies in the new order)
        type Case = (
            &'static [u8],
            &'static [&'static [usize]],
            &'static [&'static str],
            &'static [&'static [usize]],
        );
        let cases: &[Case] = &[
            (&[], &[], &[], &[]),
            (
                &[1, 1],
                &[&[], &[0]],
                &["change 0", "change 1"],
                &[&[], &[0]],
            ),
            (&[1, 0], &[&[], &[]], &["change 1", "change 0"], &[&[], &[]]),
            (
                &[1, 1, 0, 0],
                &[&[], &[0, 3], &[], &[2]],
                &["change 2", "change 3", "change 0", "change 1"],
                &[&[], &[0], &[], &[1, 2]],
            ),
        ];
        for (phases, depends, reasons, new_depends) in cases {
            let changes: Vec<Change> = phases
                .iter()
                .zip(depends.iter())
                .enumerate()
                .map(|(id, (phase, deps))| change(id, *phase, deps))
                .collect();
            let ordered = in_phase_order(changes);
            let got: Vec<&str> = ordered.iter().map(|c| c.reason.as_str()).collect();
            assert_eq!(&got, reasons, "{phases:?}");
            let got: Vec<&[usize]> = ordered.iter().map(|c| c.depends_on.as_slice()).collect();
            assert_eq!(&got, new_depends, "{phases:?}");
            for (position, change) in ordered.iter().enumerate() {
                assert_eq!(change.id, position);
                assert!(change.depends_on.iter().all(|d| *d < position));
            }
        }
    }
}
