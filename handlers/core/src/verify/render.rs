//! The verification for people and for automation: JSON of every pair (the `hubspoke verify`
//! output), a summary that keeps the counts and the pairs that are not fine (outcomes, the
//! Backfill answer), and a table with portal-style names.
use std::fmt::Write;

use serde_json::{json, Value};

use super::verdict::{HubVerification, PairVerdict, Verdict};
use crate::id::portal_name;

/// One pair: `from`, `to` (VNet ids), `verdict`, `asymmetric`, `reason` (a code or null),
/// `detail` (the reason in full, or null) and `transit` (both spokes are transit spokes).
pub fn pair_json(verification: &HubVerification, pair: &PairVerdict) -> Value {
    let id = |at: u32| {
        verification
            .spokes
            .get(at as usize)
            .map(|s| s.id.to_string())
            .unwrap_or_default()
    };
    json!({
        "from": id(pair.from),
        "to": id(pair.to),
        "verdict": pair.verdict.code(),
        "asymmetric": pair.asymmetric,
        "reason": pair.reason.as_ref().map(|r| r.code),
        "detail": pair.reason.as_deref(),
        "transit": verification.is_transit_pair(pair),
    })
}

/// The counts and whether every pair of transit spokes is fine.
fn counts_json(verification: &HubVerification) -> Value {
    json!({
        "counts": verification.counts,
        "pairs_total": verification.counts.total(),
        "transit_pairs_fine": verification.transit_pairs_fine(),
    })
}

/// Every pair and spoke of the hub.
pub fn hub_json(verification: &HubVerification) -> Value {
    let mut value = counts_json(verification);
    value["hub"] = json!(verification.hub.as_ref().map(ToString::to_string));
    value["spokes"] = json!(verification.spokes);
    value["pairs"] = verification
        .pairs
        .iter()
        .map(|pair| pair_json(verification, pair))
        .collect();
    value
}

/// The counts and the pairs that are not fine (transit spokes' first, the worst first), at
/// most `limit` of them, with how many were left out.
pub fn summary_json(verification: &HubVerification, limit: usize) -> Value {
    let problems = verification.problems();
    let mut value = counts_json(verification);
    value["pairs"] = problems
        .iter()
        .take(limit)
        .map(|pair| pair_json(verification, pair))
        .collect();
    value["omitted_pairs"] = json!(problems.len().saturating_sub(limit));
    value
}

/// A verdict's letter in the matrix.
fn letter(pair: &PairVerdict) -> char {
    let upper = match pair.verdict {
        Verdict::Gateway => 'G',
        Verdict::Direct => 'D',
        Verdict::Appliance => 'A',
        Verdict::Unreachable => 'U',
    };
    if pair.asymmetric {
        upper.to_ascii_lowercase()
    } else {
        upper
    }
}

/// The verification as text `width` columns wide: the counts, a matrix of the spokes when it
/// fits, then every pair that is not fine with its reason.
pub fn table(verification: &HubVerification, width: usize) -> String {
    let mut out = String::new();
    let counts = verification.counts;
    let hub = verification
        .hub
        .as_ref()
        .map(|h| portal_name(&h.to_string()))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "hub {hub}: {} pairs: {} gateway, {} direct, {} appliance, {} unreachable, {} asymmetric",
        counts.total(),
        counts.gateway,
        counts.direct,
        counts.appliance,
        counts.unreachable,
        counts.asymmetric
    );
    let names: Vec<String> = verification
        .spokes
        .iter()
        .map(|s| portal_name(&s.id.to_string()))
        .collect();
    let label = names.iter().map(|n| n.len()).max().unwrap_or(0) + 6;
    if !names.is_empty() && label + 2 * names.len() <= width {
        matrix(&mut out, verification, &names, label);
    }
    let problems = verification.problems();
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "every pair reaches the other through the gateway or directly"
        );
    }
    for pair in problems {
        let (from, to) = (&names[pair.from as usize], &names[pair.to as usize]);
        let asymmetric = if pair.asymmetric { " (asymmetric)" } else { "" };
        let _ = write!(out, "  {from} -> {to}: {}{asymmetric}", pair.verdict.code());
        if let Some(reason) = &pair.reason {
            let detail = reason.detail.map(|d| format!("/{d}")).unwrap_or_default();
            let _ = write!(out, " [{}{detail}] {}", reason.code, reason.message);
            if let Some(prefix) = &reason.prefix {
                let _ = write!(out, " ({prefix}");
                if let Some(subnet) = &reason.subnet {
                    let _ = write!(out, " from subnet {}", subnet.name());
                }
                out.push(')');
            }
        }
        if !verification.is_transit_pair(pair) {
            out.push_str(" (not both transit spokes)");
        }
        out.push('\n');
    }
    out
}

/// The matrix: a row per source, a column per destination, a letter per pair.
fn matrix(out: &mut String, verification: &HubVerification, names: &[String], label: usize) {
    let count = names.len();
    let mut cells = vec![vec!['.'; count]; count];
    for pair in &verification.pairs {
        cells[pair.from as usize][pair.to as usize] = letter(pair);
    }
    let header: String = (1..=count)
        .map(|n| format!("{:<2}", n % 100 / 10))
        .collect();
    let units: String = (1..=count).map(|n| format!("{:<2}", n % 10)).collect();
    if count >= 10 {
        let _ = writeln!(out, "{:label$}{}", "", header.trim_end());
    }
    let _ = writeln!(out, "{:label$}{}", "from \\ to", units.trim_end());
    for (at, (row, name)) in cells.iter().zip(names).enumerate() {
        let line: String = row.iter().map(|c| format!("{c} ")).collect();
        let _ = writeln!(
            out,
            "{:>3} {:<w$}{}",
            at + 1,
            name,
            line.trim_end(),
            w = label - 4
        );
    }
    let _ = writeln!(
        out,
        "G gateway, D direct, A appliance, U unreachable (lower case: asymmetric), . same spoke or another group"
    );
}
