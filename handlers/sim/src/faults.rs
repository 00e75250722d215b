//! Fault injection: the rules of `--faults` (or `PUT /_sim/faults`) applied to incoming
//! requests — error statuses, dropped connections and slow answers — by rate or by script.
use crate::config::{FaultAction, FaultRule, FaultSpec, FaultTrigger};

#[derive(Debug, Clone)]
struct LiveRule {
    rule: FaultRule,
    fired: u64,
    script_at: usize,
}

/// The fault rules in force, with their counters.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<LiveRule>,
    /// The SPEC text the rules came from, for `GET /_sim/faults`.
    pub text: String,
}

/// Case-insensitive glob match where `*` matches any run of characters.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == text[t] || pattern[p] == '?') {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

impl Faults {
    pub(crate) fn set(&mut self, spec: FaultSpec) {
        self.rules = spec
            .rules
            .into_iter()
            .map(|rule| LiveRule {
                rule,
                fired: 0,
                script_at: 0,
            })
            .collect();
    }

    /// The fault for this request, if a rule fires. `roll` gives a uniform number in 0..1.
    pub(crate) fn pick(
        &mut self,
        method: &str,
        path: &str,
        mut roll: impl FnMut() -> f64,
    ) -> Option<FaultAction> {
        for live in self.rules.iter_mut() {
            let rule = &live.rule;
            if rule
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            if !glob_match(&rule.path_pattern, path) {
                continue;
            }
            match &rule.trigger {
                FaultTrigger::Script(steps) => {
                    let Some(step) = steps.get(live.script_at) else {
                        continue;
                    };
                    live.script_at += 1;
                    live.fired += 1;
                    if *step == FaultAction::Pass {
                        return None;
                    }
                    return Some(step.clone());
                }
                FaultTrigger::Rate(rate) => {
                    if rule.max_count.is_some_and(|max| live.fired >= max) {
                        continue;
                    }
                    if roll() < *rate {
                        live.fired += 1;
                        return Some(rule.action.clone());
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob_match(
            "*/virtualNetworkPeerings/*",
            "/subscriptions/s/x/VIRTUALNETWORKPEERINGS/p"
        ));
        assert!(glob_match("*", "/anything"));
        assert!(!glob_match("*/routes/*", "/subscriptions/s/routeTables/t"));
    }

    #[test]
    fn scripts_run_once_in_order_and_counts_cap_rates() {
        let mut faults = Faults::default();
        faults.set(FaultSpec::parse("GET *=script:500,ok,drop; PUT *=429#2").unwrap());
        assert_eq!(
            faults.pick("GET", "/a", || 0.0),
            Some(FaultAction::Status(500))
        );
        assert_eq!(faults.pick("GET", "/a", || 0.0), None);
        assert_eq!(faults.pick("GET", "/a", || 0.0), Some(FaultAction::Drop));
        assert_eq!(faults.pick("GET", "/a", || 0.0), None);
        assert_eq!(
            faults.pick("PUT", "/a", || 0.0),
            Some(FaultAction::Status(429))
        );
        assert_eq!(
            faults.pick("PUT", "/a", || 0.0),
            Some(FaultAction::Status(429))
        );
        assert_eq!(faults.pick("PUT", "/a", || 0.0), None);
    }
}
