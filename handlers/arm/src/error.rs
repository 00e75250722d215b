//! The ARM client's error: what failed ([`ErrorKind`], grouped by how a caller reacts), the HTTP
//! status and ARM error code kept as Azure sent them, and for refusals a [`ArmError::hint`] that
//! names the missing permission, the policy or the lock.
//!
//! This module describes failures and [`classify`] decides which are transient, for an answer
//! and for an operation that ended `Failed`; the client (`client.rs`) retries what it says.
use serde::Serialize;

/// A failed ARM request, after any retries.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{}", self.one_line())]
pub struct ArmError {
    pub kind: ErrorKind,
    /// HTTP status of the last answer; `None` when there was none (transport, credential).
    pub status: Option<u16>,
    /// ARM's `error.code` (or the operation's), or a code of ours for failures without one.
    pub code: String,
    pub message: String,
    pub method: String,
    /// The URL requested (never carries a secret: ARM URLs hold ids and api-version only).
    pub url: String,
}

/// How a caller should react to an [`ArmError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 401, 403 (`AuthorizationFailed`, `LinkedAuthorizationFailed`, `RequestDisallowedByPolicy`,
    /// ...), 409 `ScopeLocked`, or an operation that ended `Failed` with one of these codes: a
    /// person must grant, exempt or unlock. Never retried.
    Refused,
    /// 404.
    NotFound,
    /// Any other 4xx: the request is wrong, or Azure refuses it for good (`RouteConflict`,
    /// limits, `RemotePeeringIsDisconnected`, ...). Not retried.
    Rejected,
    /// A retryable failure still failing when the attempts or the retry budget ran out (an
    /// operation that kept failing transiently among them), or a long-running operation still
    /// running at the operation timeout.
    Exhausted,
    /// A long-running operation ended `Failed` with a code that is not transient; code and
    /// message are the operation's.
    Failed,
    /// Connection, TLS or timeout errors that exhausted retries; unreadable answers.
    Transport,
    /// No token could be had.
    Credential,
}

/// What the client does with a failed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Transient: retry. `throttled` marks rate limiting (as opposed to a lock conflict).
    Retry { throttled: bool },
    /// Final.
    Stop(ErrorKind),
}

/// Where a failure was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reported {
    /// An answer with this HTTP status.
    Answer(u16),
    /// A long-running operation that ended `Failed`: its status resource answered (200) with the
    /// operation's error code. The request that started it is what may be sent again.
    Operation,
}

/// The one place that decides whether a failure is transient (docs/design.md §6), for an
/// answer or for an operation that ended `Failed`.
pub(crate) fn classify(reported: Reported, code: &str) -> Disposition {
    match reported {
        Reported::Answer(status) => classify_answer(status, code),
        Reported::Operation => classify_operation(code),
    }
}

fn classify_answer(status: u16, code: &str) -> Disposition {
    match (status, code) {
        // Lock conflicts come as 429 too; they are not rate limiting.
        (429, "RetryableErrorDueToAnotherOperation") => Disposition::Retry { throttled: false },
        (429, _) => Disposition::Retry { throttled: true },
        (409, "AnotherOperationInProgress") => Disposition::Retry { throttled: false },
        (400, "ReferencedResourceNotProvisioned") => Disposition::Retry { throttled: false },
        (408, _) => Disposition::Retry { throttled: false },
        (500..=599, _) => Disposition::Retry { throttled: false },
        (401 | 403, _) => Disposition::Stop(ErrorKind::Refused),
        (409, "ScopeLocked") => Disposition::Stop(ErrorKind::Refused),
        // The Network RP's own check of a resource the body links to (a join) answers 400.
        (400, "LinkedAccessCheckFailed") => Disposition::Stop(ErrorKind::Refused),
        (404, _) => Disposition::Stop(ErrorKind::NotFound),
        _ => Disposition::Stop(ErrorKind::Rejected),
    }
}

/// An operation's error code: the request that started it is sent again (PUT and DELETE are
/// idempotent here) only when the code says Azure failed rather than the request:
/// - the server-side failures Azure's SDKs retry when they come as an answer's status (408, 429,
///   500, 502, 503, 504: azure-core's default retry policy, learn.microsoft.com "Understanding
///   HTTP pipeline and retries in the Azure SDK for Python"), under their ARM codes;
/// - `RetryableError`, the Network RP's own "A retryable error occurred." for an operation that
///   met another one or a resource still updating (seen in operation results in field reports,
///   hashicorp/terraform-provider-azurerm#21293);
/// - the conflicts retried when Azure answers them at once (`AnotherOperationInProgress`,
///   `RetryableErrorDueToAnotherOperation`, `ReferencedResourceNotProvisioned`).
///
/// Refusals keep their kind (a person must grant, exempt or unlock); every other code (validation,
/// limits, overlaps, anything unknown) is final: sending the same request again would fail again.
fn classify_operation(code: &str) -> Disposition {
    match code {
        "InternalServerError"
        | "BadGateway"
        | "ServiceUnavailable"
        | "GatewayTimeout"
        | "RequestTimeout"
        | "TooManyRequests"
        | "RetryableError"
        | "AnotherOperationInProgress"
        | "RetryableErrorDueToAnotherOperation"
        | "ReferencedResourceNotProvisioned" => Disposition::Retry { throttled: false },
        "AuthorizationFailed"
        | "LinkedAuthorizationFailed"
        | "LinkedAccessCheckFailed"
        | "RequestDisallowedByPolicy"
        | "ScopeLocked" => Disposition::Stop(ErrorKind::Refused),
        _ => Disposition::Stop(ErrorKind::Failed),
    }
}

impl ArmError {
    /// True for a 404 (the resource, or its parent, does not exist).
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// For a refusal, what a person must fix, when Azure's message says it: the missing
    /// permission and its scope, the denying policy, or the locked scope.
    pub fn hint(&self) -> Option<String> {
        if self.kind != ErrorKind::Refused {
            return None;
        }
        let message = self.message.as_str();
        match self.code.as_str() {
            // "... does not have authorization to perform action 'A' over scope 'S' ..."
            "AuthorizationFailed" | "LinkedAccessCheckFailed" => {
                let action = quoted_after(message, "to perform action ")?;
                let scope = quoted_after(message, " over scope ");
                Some(match scope {
                    Some(scope) => format!("missing permission '{action}' on '{scope}'"),
                    None => format!("missing permission '{action}'"),
                })
            }
            "LinkedAuthorizationFailed" => linked_authorization_hint(message),
            "RequestDisallowedByPolicy" => policy_names(message).map(|names| {
                if names.len() == 1 {
                    format!("denied by policy {}", names.join(""))
                } else {
                    format!("denied by policies {}", names.join(", "))
                }
            }),
            "ScopeLocked" => {
                let locked = quoted_after(message, "are locked: ")?;
                Some(format!("the lock on '{locked}' must be removed"))
            }
            _ => None,
        }
    }

    /// "GET /subscriptions/...: 404 ResourceNotFound: The Resource ... was not found."
    fn one_line(&self) -> String {
        let path = match reqwest::Url::parse(&self.url) {
            Ok(url) => url.path().to_string(),
            Err(_) => self.url.clone(),
        };
        let status = self
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".to_string());
        let mut line = format!(
            "{} {path}: {status} {}: {}",
            self.method,
            self.code,
            self.message.replace(['\r', '\n'], " ")
        );
        if let Some(hint) = self.hint() {
            line.push_str(" (");
            line.push_str(&hint);
            line.push(')');
        }
        line
    }

    pub(crate) fn new(
        kind: ErrorKind,
        status: Option<u16>,
        code: impl Into<String>,
        message: impl Into<String>,
        method: &str,
        url: &str,
    ) -> Self {
        Self {
            kind,
            status,
            code: code.into(),
            message: message.into(),
            method: method.to_string(),
            url: url.to_string(),
        }
    }
}

/// The `code` and `message` of an ARM error body (`{"error":{"code","message"}}`, also the
/// flat `{"code","message"}` some endpoints answer).
pub(crate) fn decode_error_body(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error").unwrap_or(&value);
    let code = error.get("code")?.as_str()?.to_string();
    let message = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|at| &text[at + marker.len()..])
}

/// The first `'...'` in `text`.
fn first_quoted(text: &str) -> Option<String> {
    let start = text.find('\'')? + 1;
    let len = text[start..].find('\'')?;
    Some(text[start..start + len].to_string())
}

fn quoted_after(text: &str, marker: &str) -> Option<String> {
    first_quoted(after(text, marker)?)
}

/// The hint of a `LinkedAuthorizationFailed`: the actions missing on the resources the request
/// links to. "... has permission to perform action 'A' on scope 'S'; however, it does not have
/// permission to perform action(s) 'B,C' on the linked scope(s) 'L,M' (respectively) ...": a
/// subnet PUT, checked for the join action of everything its body references, may name several.
/// The older shape names only the linked subscription the client could not reach.
fn linked_authorization_hint(message: &str) -> Option<String> {
    let missing = after(message, "does not have permission to perform action(s) ")
        .or_else(|| after(message, "does not have permission to perform action "));
    let Some(rest) = missing else {
        let subscription = quoted_after(message, "linked subscription ")?;
        return Some(format!(
            "no access to the linked subscription '{subscription}'"
        ));
    };
    let actions_text = first_quoted(rest)?;
    let actions: Vec<&str> = actions_text.split(',').map(str::trim).collect();
    let scopes_text = quoted_after(rest, "linked scope(s) ").unwrap_or_default();
    let scopes: Vec<&str> = scopes_text
        .split(',')
        .map(str::trim)
        .filter(|scope| !scope.is_empty())
        .collect();
    let pairs: Vec<String> = actions
        .iter()
        .enumerate()
        .map(|(index, action)| match scopes.get(index) {
            // One scope for several actions: it applies to each.
            Some(scope) => format!("'{action}' on '{scope}'"),
            None if scopes.len() == 1 => format!("'{action}' on '{}'", scopes[0]),
            None => format!("'{action}'"),
        })
        .collect();
    Some(format!("missing permission {}", pairs.join(", ")))
}

/// Names of the policy assignments (and definitions, when they differ) in a
/// `RequestDisallowedByPolicy` message: "... Policy identifiers: '[{"policyAssignment":
/// {"name":"A","id":...},"policyDefinition":{"name":"D","id":...}}]'."
fn policy_names(message: &str) -> Option<Vec<String>> {
    let start = message.find("Policy identifiers: '")? + "Policy identifiers: '".len();
    let end = message[start..].rfind("]'")? + start + 1;
    let identifiers: serde_json::Value = serde_json::from_str(&message[start..end]).ok()?;
    let mut names = Vec::new();
    for entry in identifiers.as_array()? {
        let name_of = |key: &str| {
            entry
                .get(key)
                .and_then(|v| v.get("name"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let assignment = name_of("policyAssignment");
        let definition = name_of("policyDefinition");
        let name = match (assignment, definition) {
            (Some(a), Some(d)) if !a.eq_ignore_ascii_case(&d) => {
                format!("'{a}' (definition '{d}')")
            }
            (Some(a), _) => format!("'{a}'"),
            (None, Some(d)) => format!("'{d}'"),
            (None, None) => continue,
        };
        names.push(name);
    }
    (!names.is_empty()).then_some(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refused(code: &str, message: &str) -> ArmError {
        ArmError::new(
            ErrorKind::Refused,
            Some(403),
            code,
            message,
            "PUT",
            "https://management.azure.com/subscriptions/s/x?api-version=1",
        )
    }

    #[test]
    fn authorization_failed_names_the_action_and_scope() {
        let error = refused(
            "AuthorizationFailed",
            "The client 'c' with object id 'o' does not have authorization to perform action \
             'Microsoft.Network/virtualNetworks/subnets/write' over scope '/subscriptions/s/x' \
             or the scope is invalid. If access was recently granted, please refresh your credentials.",
        );
        assert_eq!(
            error.hint().unwrap(),
            "missing permission 'Microsoft.Network/virtualNetworks/subnets/write' on '/subscriptions/s/x'"
        );
        assert!(error
            .to_string()
            .starts_with("PUT /subscriptions/s/x: 403 AuthorizationFailed: "));
    }

    #[test]
    fn linked_authorization_failed_names_the_linked_action_in_both_shapes() {
        let new_shape = refused(
            "LinkedAuthorizationFailed",
            "The client 'c' with object id 'o' has permission to perform action \
             'Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write' on scope '/a'; however, \
             it does not have permission to perform action 'Microsoft.Network/virtualNetworks/peer/action' \
             on the linked scope(s) '/b' or the linked scope(s) are invalid.",
        );
        assert_eq!(
            new_shape.hint().unwrap(),
            "missing permission 'Microsoft.Network/virtualNetworks/peer/action' on '/b'"
        );
        let old_shape = refused(
            "LinkedAuthorizationFailed",
            "The client has permission to perform action 'Microsoft.Network/virtualNetworks/peer/action' \
             on scope '/a', however the linked subscription 'sub-2' was not found.",
        );
        assert_eq!(
            old_shape.hint().unwrap(),
            "no access to the linked subscription 'sub-2'"
        );
    }

    #[test]
    fn a_subnet_write_refused_for_a_join_names_every_linked_action_and_scope() {
        // A subnet PUT is checked for the join action of every resource its body references; the
        // refusal lists the actions and their scopes, comma-separated, in one message.
        let error = refused(
            "LinkedAuthorizationFailed",
            "The client 'c' with object id 'o' has permission to perform action \
             'Microsoft.Network/virtualNetworks/subnets/write' on scope '/s/subnet'; however, it \
             does not have permission to perform action(s) \
             'Microsoft.Network/networkSecurityGroups/join/action,Microsoft.Network/natGateways/join/action' \
             on the linked scope(s) '/s/nsg,/s/nat' (respectively) or the linked scope(s) are invalid.",
        );
        assert_eq!(
            error.hint().unwrap(),
            "missing permission 'Microsoft.Network/networkSecurityGroups/join/action' on '/s/nsg', \
             'Microsoft.Network/natGateways/join/action' on '/s/nat'"
        );
    }

    #[test]
    fn a_linked_access_check_is_a_refusal_that_names_the_action() {
        // The Network RP's own check of a linked resource answers 400 LinkedAccessCheckFailed.
        let code = "LinkedAccessCheckFailed";
        assert_eq!(
            classify(Reported::Answer(400), code),
            Disposition::Stop(ErrorKind::Refused)
        );
        assert_eq!(
            classify(Reported::Operation, code),
            Disposition::Stop(ErrorKind::Refused)
        );
        let error = refused(
            code,
            "The client with object id 'o' does not have authorization to perform action \
             'Microsoft.Network/serviceEndpointPolicies/join/action' over scope '/s/policy' or the \
             scope is invalid",
        );
        assert_eq!(
            error.hint().unwrap(),
            "missing permission 'Microsoft.Network/serviceEndpointPolicies/join/action' on '/s/policy'"
        );
    }

    #[test]
    fn policy_refusal_names_the_assignment() {
        let error = refused(
            "RequestDisallowedByPolicy",
            "Resource 'rt' was disallowed by policy. Policy identifiers: '[{\"policyAssignment\":\
             {\"name\":\"deny-udr\",\"id\":\"/p/a\"},\"policyDefinition\":{\"name\":\"deny-udr-def\",\
             \"id\":\"/p/d\"}}]'.",
        );
        assert_eq!(
            error.hint().unwrap(),
            "denied by policy 'deny-udr' (definition 'deny-udr-def')"
        );
    }

    #[test]
    fn scope_locked_names_the_lock() {
        let mut error = refused(
            "ScopeLocked",
            "The scope '/subscriptions/s/resourceGroups/rg/providers/x' cannot perform write operation \
             because following scope(s) are locked: '/subscriptions/s/resourceGroups/rg'. Please remove \
             the lock and try again.",
        );
        error.status = Some(409);
        assert_eq!(
            error.hint().unwrap(),
            "the lock on '/subscriptions/s/resourceGroups/rg' must be removed"
        );
    }

    #[test]
    fn classification_follows_the_design() {
        assert_eq!(
            classify(Reported::Answer(429), "SubscriptionRequestsThrottled"),
            Disposition::Retry { throttled: true }
        );
        assert_eq!(
            classify(Reported::Answer(429), "RetryableErrorDueToAnotherOperation"),
            Disposition::Retry { throttled: false }
        );
        assert_eq!(
            classify(Reported::Answer(409), "AnotherOperationInProgress"),
            Disposition::Retry { throttled: false }
        );
        assert_eq!(
            classify(Reported::Answer(409), "ScopeLocked"),
            Disposition::Stop(ErrorKind::Refused)
        );
        assert_eq!(
            classify(Reported::Answer(409), "Conflict"),
            Disposition::Stop(ErrorKind::Rejected)
        );
        assert_eq!(
            classify(Reported::Answer(400), "ReferencedResourceNotProvisioned"),
            Disposition::Retry { throttled: false }
        );
        assert_eq!(
            classify(Reported::Answer(400), "RouteConflict"),
            Disposition::Stop(ErrorKind::Rejected)
        );
        assert_eq!(
            classify(Reported::Answer(403), "RequestDisallowedByPolicy"),
            Disposition::Stop(ErrorKind::Refused)
        );
        assert_eq!(
            classify(Reported::Answer(401), "AuthenticationFailed"),
            Disposition::Stop(ErrorKind::Refused)
        );
        assert_eq!(
            classify(Reported::Answer(404), "NotFound"),
            Disposition::Stop(ErrorKind::NotFound)
        );
        assert_eq!(
            classify(Reported::Answer(503), "ServiceUnavailable"),
            Disposition::Retry { throttled: false }
        );
    }

    #[test]
    fn an_operation_is_sent_again_only_when_azure_failed_not_the_request() {
        for transient in [
            "InternalServerError",
            "ServiceUnavailable",
            "RetryableError",
            "AnotherOperationInProgress",
            "ReferencedResourceNotProvisioned",
        ] {
            assert_eq!(
                classify(Reported::Operation, transient),
                Disposition::Retry { throttled: false },
                "{transient}"
            );
        }
        for refusal in [
            "LinkedAuthorizationFailed",
            "RequestDisallowedByPolicy",
            "ScopeLocked",
        ] {
            assert_eq!(
                classify(Reported::Operation, refusal),
                Disposition::Stop(ErrorKind::Refused),
                "{refusal}"
            );
        }
        for final_code in [
            "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
            "RouteTableRouteLimitReached",
            "InvalidRequestFormat",
            "OperationFailed",
        ] {
            assert_eq!(
                classify(Reported::Operation, final_code),
                Disposition::Stop(ErrorKind::Failed),
                "{final_code}"
            );
        }
    }
}
