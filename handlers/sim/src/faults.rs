//! Fault injection: the rules of `--faults` (or `PUT /_sim/faults`) applied to incoming
//! requests — error statuses, refusals, dropped connections and slow answers — by rate or by
//! script.
//!
//! Refusals imitate what RBAC, Azure Policy and resource locks answer; the simulator has none of
//! these, so a rule stands in for them. Messages follow Azure's shapes (seen in public issue
//! reports), because clients parse them to name the missing permission, the policy or the lock.
use crate::config::{FaultAction, FaultRule, FaultSpec, FaultTrigger, Refusal};
use crate::world::ArmError;
use serde_json::Value;

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

/// The fault name of a refusal in the request log.
pub(crate) fn refusal_name(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Authorization => "403",
        Refusal::LinkedAuthorization => "403-linked",
        Refusal::Policy => "403-policy",
        Refusal::Locked => "409-locked",
    }
}

/// The answer of a refusal of `method` on `path` (the request `body` names linked resources) to
/// the principal `object_id`.
pub(crate) fn refusal_error(
    refusal: Refusal,
    method: &str,
    path: &str,
    body: &[u8],
    object_id: &str,
) -> ArmError {
    let (action, scope) = action_and_scope(method, path);
    match refusal {
        Refusal::Authorization => ArmError::new(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{object_id}' with object id '{object_id}' does not have authorization \
                 to perform action '{action}' over scope '{scope}' or the scope is invalid. If \
                 access was recently granted, please refresh your credentials."
            ),
        ),
        Refusal::LinkedAuthorization => {
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let linked = |pointer: &str| {
                body.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            // A peering links its remote VNet, a subnet its route table (docs/design.md §6).
            let (linked_action, linked_scope) =
                if let Some(remote) = linked("/properties/remoteVirtualNetwork/id") {
                    ("Microsoft.Network/virtualNetworks/peer/action", remote)
                } else if let Some(table) = linked("/properties/routeTable/id") {
                    ("Microsoft.Network/routeTables/join/action", table)
                } else {
                    (
                        "Microsoft.Network/virtualNetworks/join/action",
                        scope.clone(),
                    )
                };
            ArmError::new(
                403,
                "LinkedAuthorizationFailed",
                format!(
                    "The client '{object_id}' with object id '{object_id}' has permission to \
                     perform action '{action}' on scope '{scope}'; however, it does not have \
                     permission to perform action '{linked_action}' on the linked scope(s) \
                     '{linked_scope}' or the linked scope(s) are invalid."
                ),
            )
        }
        Refusal::Policy => {
            let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
            let subscription = subscription_scope(path);
            let identifiers = serde_json::json!([{
                "policyAssignment": {
                    "name": "deny-udr",
                    "id": format!("{subscription}/providers/Microsoft.Authorization/policyAssignments/deny-udr"),
                },
                "policyDefinition": {
                    "name": "deny-udr",
                    "id": format!("{subscription}/providers/Microsoft.Authorization/policyDefinitions/deny-udr"),
                },
            }]);
            ArmError::new(
                403,
                "RequestDisallowedByPolicy",
                format!(
                    "Resource '{name}' was disallowed by policy. Policy identifiers: '{identifiers}'."
                ),
            )
        }
        Refusal::Locked => {
            let operation = if method.eq_ignore_ascii_case("DELETE") {
                "delete"
            } else {
                "write"
            };
            let locked = resource_group_scope(path).unwrap_or_else(|| scope.clone());
            ArmError::new(
                409,
                "ScopeLocked",
                format!(
                    "The scope '{scope}' cannot perform {operation} operation because following \
                     scope(s) are locked: '{locked}'. Please remove the lock and try again."
                ),
            )
        }
    }
}

/// The RBAC action of `method` on `path` (`Microsoft.Network/virtualNetworks/subnets/write`) and
/// its scope (the resource, or for a list the scope listed in).
fn action_and_scope(method: &str, path: &str) -> (String, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let verb = match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => "read",
        "DELETE" => "delete",
        "POST" => "action",
        _ => "write",
    };
    let Some(at) = segments
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"))
        .filter(|at| at + 1 < segments.len())
    else {
        return (
            format!("Microsoft.Resources/subscriptions/{verb}"),
            path.to_string(),
        );
    };
    let namespace = segments[at + 1];
    let rest = &segments[at + 2..];
    // Types and names alternate after the namespace: the types make the action.
    let types: Vec<&str> = rest.iter().step_by(2).copied().collect();
    let action = format!("{namespace}/{}/{verb}", types.join("/"));
    let scope = if rest.len() % 2 == 1 {
        format!("/{}", segments[..at].join("/"))
    } else {
        path.trim_end_matches('/').to_string()
    };
    (action, scope)
}

fn subscription_scope(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [first, id, ..] if first.eq_ignore_ascii_case("subscriptions") => {
            format!("/subscriptions/{id}")
        }
        _ => String::new(),
    }
}

fn resource_group_scope(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [s, sub, rg, group, ..]
            if s.eq_ignore_ascii_case("subscriptions")
                && rg.eq_ignore_ascii_case("resourceGroups") =>
        {
            Some(format!("/subscriptions/{sub}/resourceGroups/{group}"))
        }
        _ => None,
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

    #[test]
    fn refusal_actions_follow_method_and_resource_type() {
        let subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
        assert_eq!(
            action_and_scope("PUT", subnet),
            (
                "Microsoft.Network/virtualNetworks/subnets/write".to_string(),
                subnet.to_string()
            )
        );
        assert_eq!(
            action_and_scope(
                "GET",
                "/subscriptions/s/providers/Microsoft.Network/virtualNetworks"
            ),
            (
                "Microsoft.Network/virtualNetworks/read".to_string(),
                "/subscriptions/s".to_string()
            )
        );
        let locked = refusal_error(Refusal::Locked, "DELETE", subnet, b"", "o");
        assert_eq!((locked.status, locked.code.as_str()), (409, "ScopeLocked"));
        assert!(locked
            .message
            .contains("cannot perform delete operation because following scope(s) are locked: '/subscriptions/s/resourceGroups/rg'"));
        let body = br#"{"properties":{"remoteVirtualNetwork":{"id":"/subscriptions/t/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/hub"}}}"#;
        let linked = refusal_error(Refusal::LinkedAuthorization, "PUT", subnet, body, "o");
        assert!(linked.message.contains(
            "'Microsoft.Network/virtualNetworks/peer/action' on the linked scope(s) '/subscriptions/t/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/hub'"
        ));
    }
}
