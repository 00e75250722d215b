//! The simulator's knobs: latencies, fault rules, event delivery knobs and the choices it makes
//! where Azure's behaviour is not confirmed. Each has a small text syntax for the command line,
//! documented in `docs/simulator.md` and in `hubspoke sim --help`.
use std::time::Duration;

use anyhow::{bail, Context};

/// How long simulated operations take.
///
/// SPEC: comma-separated `key=duration` pairs, durations as `250ms`, `2s` or `1m`:
/// `lro` (create/update of a VNet, subnet, peering, route table or route), `delete` (deletes),
/// `gateway` (virtual network gateway provisioning), `response` (added to every ARM response),
/// and `retry-after=N` (whole seconds sent in `Retry-After` on long-running operations).
/// Example: `lro=2s,delete=2s,gateway=30s,retry-after=1`.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySpec {
    /// Time a create/update stays `Updating` before it reaches `Succeeded`.
    pub lro: Duration,
    /// Time a delete stays `Deleting` before the resource is gone.
    pub delete: Duration,
    /// Time a virtual network gateway takes to provision.
    pub gateway: Duration,
    /// Delay added to every ARM response.
    pub response: Duration,
    /// The `Retry-After` value (seconds) sent with long-running operations.
    pub retry_after_secs: u64,
}

impl Default for LatencySpec {
    /// Test-friendly: operations finish in tens of milliseconds.
    fn default() -> Self {
        Self {
            lro: Duration::from_millis(20),
            delete: Duration::from_millis(20),
            gateway: Duration::from_millis(100),
            response: Duration::ZERO,
            retry_after_secs: 0,
        }
    }
}

impl LatencySpec {
    /// The defaults of the command line: slow enough to watch, fast enough to demo.
    pub fn cli_default() -> Self {
        Self {
            lro: Duration::from_millis(500),
            delete: Duration::from_millis(500),
            gateway: Duration::from_secs(10),
            response: Duration::ZERO,
            retry_after_secs: 1,
        }
    }

    /// Parses the SPEC syntax over `base` (keys not named keep their value in `base`).
    pub fn parse_over(base: Self, spec: &str) -> anyhow::Result<Self> {
        let mut out = base;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("latency `{part}`: expected key=value"))?;
            match key.trim() {
                "lro" => out.lro = parse_duration(value)?,
                "delete" => out.delete = parse_duration(value)?,
                "gateway" => out.gateway = parse_duration(value)?,
                "response" => out.response = parse_duration(value)?,
                "retry-after" => {
                    out.retry_after_secs = value
                        .trim()
                        .parse()
                        .with_context(|| format!("latency retry-after `{value}`"))?
                }
                other => bail!(
                    "latency: unknown key `{other}` (lro, delete, gateway, response, retry-after)"
                ),
            }
        }
        Ok(out)
    }
}

/// Parses `250ms`, `2s`, `1m` or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "ms"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("duration `{text}`"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => bail!("duration `{text}`: unit must be ms, s or m"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this status and an ARM error body (429 and 503 carry `Retry-After`).
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Answer normally, after this delay.
    Slow(Duration),
    /// Accept the request, but let its long-running operation end `Failed`
    /// (`InternalServerError`), the resource left `Failed`.
    LroFail,
    /// `lro-fail:CODE`: as [`FaultAction::LroFail`], the operation's error having this code (a
    /// validation failure Azure reports only through the operation, say).
    LroFailWith(String),
    /// Accept the request, but let its long-running operation end `Canceled`
    /// (`CanceledAndSupersededDueToAnotherOperation`), the resource left `Failed`.
    LroCancel,
    /// Refuse the request as RBAC, Azure Policy or a resource lock would.
    Refuse(Refusal),
    /// No fault (used in scripts).
    Pass,
}

/// The refusals of `403`, `403-linked`, `403-policy` and `409-locked`: Azure's authorization,
/// policy and lock answers, which a client must report and never retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403 `AuthorizationFailed`: the caller lacks the action on the resource.
    Authorization,
    /// 403 `LinkedAuthorizationFailed`: the caller lacks an action on a resource the body links
    /// (the remote VNet of a peering, the route table of a subnet).
    LinkedAuthorization,
    /// 403 `RequestDisallowedByPolicy` by the policy assignment `deny-udr`.
    Policy,
    /// 409 `ScopeLocked`: the resource group carries a lock.
    Locked,
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultTrigger {
    /// Each matching request, with this probability (0..=1).
    Rate(f64),
    /// The next matching requests, one script step each; the rule is spent when the script ends.
    Script(Vec<FaultAction>),
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// HTTP method to match, upper case; `None` matches all.
    pub method: Option<String>,
    /// Glob over the request path (`*` matches any run of characters), case-insensitive.
    pub path_pattern: String,
    /// The action for rate rules.
    pub action: FaultAction,
    /// When it fires.
    pub trigger: FaultTrigger,
    /// At most this many firings (rate rules), then the rule is spent.
    pub max_count: Option<u64>,
}

/// A set of fault rules, checked in order; the first that fires wins.
///
/// SPEC: rules separated by `;`. A rule is `[METHOD ]PATTERN=ACTION[@RATE][#COUNT]` or
/// `[METHOD ]PATTERN=script:ACTION,ACTION,...`. ACTION is `429`, `500`, `503`, `409`, `drop`,
/// `slow:DURATION`, `lro-fail`, `lro-fail:CODE`, `lro-cancel` or (in scripts) `ok`. RATE defaults
/// to 1. Examples:
/// `PUT */virtualNetworkPeerings/*=429@0.3`, `GET *=script:500,ok,drop`, `*=slow:2s@0.1#5`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// The rules in order.
    pub rules: Vec<FaultRule>,
}

impl FaultSpec {
    /// Parses the SPEC syntax.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut rules = Vec::new();
        for text in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (head, tail) = text
                .rsplit_once('=')
                .with_context(|| format!("fault `{text}`: expected PATTERN=ACTION"))?;
            let head = head.trim();
            let (method, pattern) = match head.split_once(' ') {
                Some((method, pattern)) => {
                    (Some(method.trim().to_ascii_uppercase()), pattern.trim())
                }
                None => (None, head),
            };
            let tail = tail.trim();
            let rule = if let Some(script) = tail.strip_prefix("script:") {
                let steps = script
                    .split(',')
                    .map(parse_action)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                FaultRule {
                    method,
                    path_pattern: pattern.to_string(),
                    action: FaultAction::Pass,
                    trigger: FaultTrigger::Script(steps),
                    max_count: None,
                }
            } else {
                let (rest, max_count) = match tail.split_once('#') {
                    Some((rest, count)) => (
                        rest,
                        Some(
                            count
                                .trim()
                                .parse()
                                .with_context(|| format!("fault count `{count}`"))?,
                        ),
                    ),
                    None => (tail, None),
                };
                let (action, rate) = match rest.split_once('@') {
                    Some((action, rate)) => (
                        action,
                        rate.trim()
                            .parse::<f64>()
                            .with_context(|| format!("fault rate `{rate}`"))?,
                    ),
                    None => (rest, 1.0),
                };
                if !(0.0..=1.0).contains(&rate) {
                    bail!("fault rate `{rate}` must be within 0..1");
                }
                FaultRule {
                    method,
                    path_pattern: pattern.to_string(),
                    action: parse_action(action)?,
                    trigger: FaultTrigger::Rate(rate),
                    max_count,
                }
            };
            rules.push(rule);
        }
        Ok(Self { rules })
    }
}

fn parse_action(text: &str) -> anyhow::Result<FaultAction> {
    let text = text.trim();
    Ok(match text {
        "drop" => FaultAction::Drop,
        "ok" => FaultAction::Pass,
        "lro-fail" => FaultAction::LroFail,
        "lro-cancel" => FaultAction::LroCancel,
        "403" => FaultAction::Refuse(Refusal::Authorization),
        "403-linked" => FaultAction::Refuse(Refusal::LinkedAuthorization),
        "403-policy" => FaultAction::Refuse(Refusal::Policy),
        "409-locked" => FaultAction::Refuse(Refusal::Locked),
        _ => {
            if let Some(duration) = text.strip_prefix("slow:") {
                FaultAction::Slow(parse_duration(duration)?)
            } else if let Some(code) = text.strip_prefix("lro-fail:") {
                if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
                    bail!("fault action `{text}`: lro-fail:CODE needs an error code (letters and digits)");
                }
                FaultAction::LroFailWith(code.to_string())
            } else {
                let status: u16 = text.parse().with_context(|| {
                    format!("fault action `{text}`: 429, 500, 503, 409, 403, 403-linked, 403-policy, 409-locked, drop, slow:D, lro-fail, lro-fail:CODE, lro-cancel or ok")
                })?;
                if !(400..=599).contains(&status) {
                    bail!("fault status {status} must be 4xx or 5xx");
                }
                FaultAction::Status(status)
            }
        }
    })
}

/// The wire schema of delivered events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EventSchema {
    /// Event Grid schema: a JSON array of events.
    #[default]
    Eventgrid,
    /// CloudEvents 1.0, one event per request (`application/cloudevents+json`).
    Cloudevents,
}

/// How events are delivered (imperfectly, as Event Grid may).
///
/// SPEC: comma-separated `key=value`: `duplicate=SHARE`, `drop=SHARE`, `reorder=SHARE` (shares
/// 0..1), `delay=DURATION` (added before the first attempt), `retry=DURATION` (first retry delay;
/// later ones follow Event Grid's ladder 10s, 30s, 1m, 5m, ... scaled by it), `attempts=N`
/// (max delivery attempts, Event Grid's default 30). Example: `duplicate=0.1,reorder=0.2`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventKnobs {
    /// Share of events delivered twice.
    pub duplicate: f64,
    /// Share of events never delivered (lost).
    pub drop: f64,
    /// Share of events held back and delivered after the next one.
    pub reorder: f64,
    /// Delay before the first attempt.
    pub delay: Duration,
    /// The first retry delay; the ladder is scaled from Event Grid's 10 s.
    pub first_retry: Duration,
    /// Maximum delivery attempts.
    pub max_attempts: u32,
}

impl Default for EventKnobs {
    fn default() -> Self {
        Self {
            duplicate: 0.0,
            drop: 0.0,
            reorder: 0.0,
            delay: Duration::ZERO,
            first_retry: Duration::from_millis(50),
            max_attempts: 30,
        }
    }
}

impl EventKnobs {
    /// Parses the SPEC syntax over `base`.
    pub fn parse_over(base: Self, spec: &str) -> anyhow::Result<Self> {
        let mut out = base;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("event knob `{part}`: expected key=value"))?;
            let share = || -> anyhow::Result<f64> {
                let share: f64 = value
                    .trim()
                    .parse()
                    .with_context(|| format!("event knob `{part}`"))?;
                if !(0.0..=1.0).contains(&share) {
                    bail!("event knob `{part}`: share must be within 0..1");
                }
                Ok(share)
            };
            match key.trim() {
                "duplicate" => out.duplicate = share()?,
                "drop" => out.drop = share()?,
                "reorder" => out.reorder = share()?,
                "delay" => out.delay = parse_duration(value)?,
                "retry" => out.first_retry = parse_duration(value)?,
                "attempts" => {
                    out.max_attempts = value
                        .trim()
                        .parse()
                        .with_context(|| format!("event knob `{part}`"))?
                }
                other => bail!("event knob: unknown key `{other}`"),
            }
        }
        Ok(out)
    }
}

/// How a write that meets another operation in flight on the same VNet (or route table) is
/// refused. Azure answers either way (both codes appear in the Network RP's error catalogue and in field reports); the client must handle both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LockConflict {
    /// 409 `AnotherOperationInProgress`.
    #[default]
    Conflict,
    /// 429 `RetryableErrorDueToAnotherOperation` with `Retry-After`.
    Retryable,
    /// Alternate between the two, starting with 409.
    Alternate,
}

/// Where Resource Graph shows a VNet's peerings. Documented: inside the VNet's row, as
/// `properties.virtualNetworkPeerings` (the VNet as ARM's GET returns it). UNCONFIRMED: whether
/// peerings are also rows of their own (type `microsoft.network/virtualnetworks/
/// virtualnetworkpeerings`). The default, `Inline`, is the safer reading: a client that looks
/// for peering rows finds none. A client correct under every value never depends on either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GraphPeerings {
    /// Only inside the VNet's row.
    #[default]
    Inline,
    /// Inside the VNet's row and as rows of their own.
    Both,
    /// Only as rows of their own (the VNet's row without `virtualNetworkPeerings`).
    Rows,
}

/// Choices where Azure's behaviour is UNCONFIRMED. Each defaults to the stricter reading, so a
/// client that works against the defaults also works against the laxer Azure.
#[derive(Debug, Clone, PartialEq)]
pub struct Strictness {
    /// Honour `If-Match` on writes (412 `PreconditionFailed` on mismatch). Default true.
    pub honour_if_match: bool,
    /// `useRemoteGateways=true` needs the remote peering to exist with `allowGatewayTransit=true`
    /// (not just "not false"). Default true.
    pub use_remote_gateways_needs_remote_peering: bool,
    /// Refuse a route with next hop `VirtualNetworkGateway` for an IPv6 prefix. Default true.
    pub reject_ipv6_gateway_routes: bool,
    /// Refuse any write to a peering in state `Disconnected`. Default true.
    pub refuse_disconnected_peering_update: bool,
    /// Routes per route table. Default 400 (the long-published limit; newer docs say 1,000).
    pub route_limit: usize,
    /// Peerings per VNet. Default 500.
    pub peering_limit: usize,
    /// The error code for a non-canonical CIDR (e.g. `10.0.0.1/16`). Default `InvalidCIDRNotation`.
    pub invalid_cidr_code: String,
    /// A peering write while the remote VNet is `Updating` is refused with 400
    /// `ReferencedResourceNotProvisioned`. Default true.
    pub check_referenced_provisioning: bool,
    /// How lock conflicts are answered.
    pub lock_conflict: LockConflict,
    /// Where Resource Graph shows peerings. Default `Inline`.
    pub graph_peerings: GraphPeerings,
}

impl Default for Strictness {
    fn default() -> Self {
        Self {
            honour_if_match: true,
            use_remote_gateways_needs_remote_peering: true,
            reject_ipv6_gateway_routes: true,
            refuse_disconnected_peering_update: true,
            route_limit: 400,
            peering_limit: 500,
            invalid_cidr_code: "InvalidCIDRNotation".to_string(),
            check_referenced_provisioning: true,
            lock_conflict: LockConflict::Conflict,
            graph_peerings: GraphPeerings::Inline,
        }
    }
}

/// Throttling: per-subscription token buckets (ARM's 2024 defaults) with time compression.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleSpec {
    /// Whether throttling applies at all.
    pub enabled: bool,
    /// (bucket size, refill per second) for reads.
    pub reads: (f64, f64),
    /// (bucket size, refill per second) for writes.
    pub writes: (f64, f64),
    /// (bucket size, refill per second) for deletes.
    pub deletes: (f64, f64),
    /// The Network RP's own limit on reads: (size, refill per second); 10,000 per 5 minutes.
    pub network_reads: (f64, f64),
    /// The Network RP's own limit on writes and deletes: 1,000 per 5 minutes.
    pub network_writes: (f64, f64),
    /// Time factor: refill runs this many times faster and `Retry-After` shrinks alike.
    pub time_factor: f64,
}

impl Default for ThrottleSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            reads: (250.0, 25.0),
            writes: (200.0, 10.0),
            deletes: (200.0, 10.0),
            network_reads: (10_000.0, 10_000.0 / 300.0),
            network_writes: (1_000.0, 1_000.0 / 300.0),
            time_factor: 1.0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn latency_spec_parses_each_key() {
        let spec = LatencySpec::parse_over(
            LatencySpec::default(),
            "lro=2s,gateway=1m,retry-after=3,delete=150ms",
        )
        .unwrap();
        assert_eq!(spec.lro, Duration::from_secs(2));
        assert_eq!(spec.gateway, Duration::from_secs(60));
        assert_eq!(spec.delete, Duration::from_millis(150));
        assert_eq!(spec.retry_after_secs, 3);
        assert!(LatencySpec::parse_over(LatencySpec::default(), "nonsense=1s").is_err());
    }

    #[test]
    fn fault_spec_parses_rates_scripts_and_methods() {
        let spec = FaultSpec::parse(
            "PUT */virtualNetworkPeerings/*=429@0.5#3; GET *=script:500,ok,drop;*=slow:2s",
        )
        .unwrap();
        assert_eq!(spec.rules.len(), 3);
        assert_eq!(spec.rules[0].method.as_deref(), Some("PUT"));
        assert_eq!(spec.rules[0].trigger, FaultTrigger::Rate(0.5));
        assert_eq!(spec.rules[0].max_count, Some(3));
        assert_eq!(
            spec.rules[1].trigger,
            FaultTrigger::Script(vec![
                FaultAction::Status(500),
                FaultAction::Pass,
                FaultAction::Drop
            ])
        );
        assert_eq!(
            spec.rules[2].action,
            FaultAction::Slow(Duration::from_secs(2))
        );
        assert_eq!(
            FaultSpec::parse("PUT *=lro-fail:VnetAddressSpacesOverlap#1")
                .unwrap()
                .rules[0]
                .action,
            FaultAction::LroFailWith("VnetAddressSpacesOverlap".into())
        );
        assert!(FaultSpec::parse("*=lro-fail:").is_err());
        assert!(FaultSpec::parse("*=200").is_err());
        assert!(FaultSpec::parse("*=429@2").is_err());
    }

    #[test]
    fn event_knobs_parse() {
        let knobs =
            EventKnobs::parse_over(EventKnobs::default(), "duplicate=0.5,delay=10ms,attempts=3")
                .unwrap();
        assert_eq!(knobs.duplicate, 0.5);
        assert_eq!(knobs.delay, Duration::from_millis(10));
        assert_eq!(knobs.max_attempts, 3);
        assert!(EventKnobs::parse_over(EventKnobs::default(), "drop=3").is_err());
    }
}
