//! Merging a table's routes into their exact union (`docs/design.md` section 2, rule 10):
//! adjacent prefixes become their parent only where the table can carry the parent.

use ipnet::Ipv4Net;

use super::carry::Carrier;

/// Merges `prefixes` into their exact union, as few prefixes as the table can carry: two
/// sibling prefixes become their parent only if the parent is itself carriable.
pub(crate) fn aggregate_carriable(prefixes: &mut Vec<Ipv4Net>, carrier: &Carrier) {
    prefixes.sort_unstable();
    prefixes.dedup();
    let mut stack: Vec<Ipv4Net> = Vec::with_capacity(prefixes.len());
    for &prefix in prefixes.iter() {
        push_merging(&mut stack, prefix, carrier);
    }
    *prefixes = stack;
}

/// Pushes `prefix`, which starts at or after every prefix of the sorted, merged `stack`, and
/// merges siblings upwards.
pub(crate) fn push_merging(stack: &mut Vec<Ipv4Net>, prefix: Ipv4Net, carrier: &Carrier) {
    if stack.last().is_some_and(|last| last.contains(&prefix)) {
        return;
    }
    stack.push(prefix);
    while stack.len() >= 2 {
        let upper = stack[stack.len() - 1];
        let lower = stack[stack.len() - 2];
        let parent = match (lower.supernet(), upper.supernet()) {
            (Some(a), Some(b)) if a == b && lower.prefix_len() == upper.prefix_len() => a,
            _ => break,
        };
        if !carrier.can_carry_union(parent) {
            break;
        }
        stack.truncate(stack.len() - 2);
        stack.push(parent);
    }
}

/// The routes of every table but those of its own spoke: `all` minus `own`, both sorted, with
/// `all` merged and `own` inside it.
pub(crate) fn subtract(all: &[Ipv4Net], own: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut result = all.to_vec();
    for prefix in own {
        let index = result.partition_point(|net| net.network() <= prefix.network());
        let Some(index) = index.checked_sub(1) else {
            continue;
        };
        let holder = result[index];
        if !holder.contains(prefix) {
            continue;
        }
        result.splice(index..=index, remainder(holder, *prefix));
    }
    result
}

/// What remains of `holder` without `prefix` (inside it): the other half at each level down to
/// it, sorted.
fn remainder(holder: Ipv4Net, prefix: Ipv4Net) -> Vec<Ipv4Net> {
    let mut pieces = Vec::new();
    let mut current = holder;
    while current != prefix {
        let Ok(mut halves) = current.subnets(current.prefix_len() + 1) else {
            break;
        };
        let (Some(low), Some(high)) = (halves.next(), halves.next()) else {
            break;
        };
        if low.contains(&prefix) {
            pieces.push(high);
            current = low;
        } else {
            pieces.push(low);
            current = high;
        }
    }
    pieces.sort_unstable();
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|p| p.parse().expect("prefix")).collect()
    }

    #[test]
    fn siblings_merge_into_their_parent_while_the_table_can_carry_it() {
        let cases: [(&[&str], &[&str]); 5] = [
            (&[], &[]),
            (&["10.0.0.0/24", "10.0.1.0/24"], &["10.0.0.0/23"]),
            (
                &["10.0.3.0/24", "10.0.0.0/24", "10.0.2.0/24", "10.0.1.0/24"],
                &["10.0.0.0/22"],
            ),
            (
                &["10.0.1.0/24", "10.0.2.0/24"],
                &["10.0.1.0/24", "10.0.2.0/24"],
            ),
            (&["10.0.0.0/23", "10.0.1.0/24"], &["10.0.0.0/23"]),
        ];
        for (input, expected) in cases {
            let mut prefixes = nets(input);
            aggregate_carriable(&mut prefixes, &Carrier::permissive());
            assert_eq!(prefixes, nets(expected), "{input:?}");
        }
        // A foreign route with exactly the parent stops the merge.
        let mut carrier = Carrier::permissive();
        carrier
            .exact
            .insert(nets(&["10.0.0.0/23"])[0], "foreign".into());
        let mut prefixes = nets(&["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23"]);
        aggregate_carriable(&mut prefixes, &carrier);
        assert_eq!(
            prefixes,
            nets(&["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/23"])
        );
    }

    #[test]
    fn subtracting_a_spokes_own_prefixes_leaves_the_rest_of_the_union() {
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (
                &["10.0.0.0/22"],
                &["10.0.1.0/24"],
                &["10.0.0.0/24", "10.0.2.0/23"],
            ),
            (&["10.0.0.0/22"], &["10.0.0.0/22"], &[]),
            (
                &["10.0.0.0/24", "10.0.4.0/24"],
                &["10.0.4.0/24"],
                &["10.0.0.0/24"],
            ),
            (&["10.0.0.0/24"], &[], &["10.0.0.0/24"]),
        ];
        for (all, own, expected) in cases {
            assert_eq!(
                subtract(&nets(all), &nets(own)),
                nets(expected),
                "{all:?} - {own:?}"
            );
        }
    }
}
