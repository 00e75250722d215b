//! The outcome message (`hubspoke.outcome/v1`, docs/design.md §4): one JSON object per
//! invocation, written to the `outcome` queue output. Its JSON Schema is
//! `docs/outcome.schema.json`; keep the two in step.
//!
//! An outcome is handed to the host as a JSON object, never a string (the host would decode a
//! string that looks like base64). The host re-indents it and base64-encodes it into a queue
//! message of at most 64 KiB — `hubspoke-queue` computes that message exactly as the host makes
//! it — so [`Outcome::fit`] summarizes one that would not fit: counts by status, kind and code,
//! the failures first, as many entries as fit — never cut mid-JSON and never dropped.
use std::collections::BTreeMap;

use hubspoke_arm::apply::{ChangeOutcome, ChangeStatus};
use hubspoke_arm::client::RequestCounts;
use hubspoke_arm::error::ArmError;
use hubspoke_arm::reconcile::Verified;
use hubspoke_core::plan::Warning;
use hubspoke_core::verify::render::summary_json;
use hubspoke_core::verify::{Disagreement, VerdictCounts};
use hubspoke_queue::message::largest_encoded_size;
use hubspoke_queue::MessageEncoding;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// The schema name every outcome carries.
pub const SCHEMA: &str = "hubspoke.outcome/v1";

/// The largest message an outcome may make: the queue's 64 KiB, less half a KiB kept back in
/// case the host's Json.NET writes a number or a date longer than its imitation does.
pub const MAX_MESSAGE_BYTES: usize = hubspoke_queue::message::MAX_MESSAGE_TEXT_BYTES - 512;

/// One invocation's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub schema: &'static str,
    pub function: String,
    pub invocation_id: String,
    /// The instance that ran the invocation (`WEBSITE_INSTANCE_ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The invocation as a whole: the worst of its hubs', or `ignored`/`rejected` when it did
    /// nothing on purpose or refused its input.
    pub status: Status,
    /// Why, in a sentence, when `ignored`, `rejected` or `failed` without a hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub trigger: Trigger,
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: u64,
    pub dry_run: bool,
    pub requests: RequestCounts,
    /// The reconcile pass this invocation ran or joined (several work items for a hub that
    /// arrive while it is being reconciled share the next pass; their outcomes share the id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassInfo>,
    /// Passes this invocation ran after its own, for work items of other instances that joined
    /// while it held the hub's lease (at most one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub further_passes: Vec<PassRecord>,
    pub hubs: Vec<HubRecord>,
    /// Errors not tied to one change: a failed read, bad input, a panic.
    pub errors: Vec<ErrorRecord>,
    /// Ids of the work items queued to `hubspoke-work`.
    pub work_items: Vec<String>,
    /// Present when the outcome was too large for a queue message and was summarized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// Statuses of docs/design.md §4, plus `rejected` for input that is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ignored,
    /// The work item joined a pass that another instance, holding the hub's lease, runs next.
    Joined,
    Unchanged,
    Queued,
    Changed,
    Continued,
    Partial,
    Rejected,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ignored => "ignored",
            Status::Joined => "joined",
            Status::Unchanged => "unchanged",
            Status::Queued => "queued",
            Status::Changed => "changed",
            Status::Continued => "continued",
            Status::Partial => "partial",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
        }
    }
}

/// What started the invocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trigger {
    /// `event_grid`, `queue`, `http` or `timer`.
    pub kind: &'static str,
    /// The events served (Event Grid).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRef>,
    /// The queue message (queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageRef>,
    /// The request (HTTP), without its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRef>,
    /// The timer (timer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRef {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dequeue_count: Option<u32>,
    /// The work item's id, when the message is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_item: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRef {
    pub method: String,
    pub path: String,
    /// The parameters (the key is never among them).
    pub query: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimerRef {
    pub past_due: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassInfo {
    pub id: String,
    /// True when this invocation joined a pass another invocation asked for.
    pub shared: bool,
    /// The instance that ran the pass (`WEBSITE_INSTANCE_ID`), or that holds the hub's lease
    /// when the pass runs elsewhere and its holder is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// When the pass began (after it took the hub's lease) and ended (before it let go of it);
    /// absent for a pass that runs on another instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// True when the pass runs on another instance, which held the hub's lease: this invocation
    /// left the mark that one more pass is wanted, and that instance's outcome tells the result.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub elsewhere: bool,
    /// The hub's lease during the pass: `held`, `lost` (renewal failed: the pass started no
    /// further change) or `none` (no blob storage: one instance only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<&'static str>,
}

/// A pass an invocation ran for others (`further_passes`).
#[derive(Debug, Clone, Serialize)]
pub struct PassRecord {
    pub id: String,
    pub instance: String,
    pub start_time: String,
    pub end_time: String,
    /// The hub's status after the pass.
    pub status: Status,
    /// `held` or `lost`.
    pub lease: &'static str,
    /// ARM requests of the pass.
    pub requests: RequestCounts,
    /// Its changes, counted by status (`applied`, `failed`, ...).
    pub changes_by_status: BTreeMap<String, usize>,
    /// Why it failed or was cut, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
}

/// What happened to one hub.
#[derive(Debug, Clone, Serialize)]
pub struct HubRecord {
    pub hub: String,
    pub status: Status,
    /// Why the hub was queued, ignored or failed, when it says more than the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub changes: Vec<ChangeRecord>,
    pub warnings: Vec<Warning>,
    pub errors: Vec<ErrorRecord>,
    /// Whether every pair of the hub's spokes reaches the other, as the pass left the estate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationRecord>,
    /// The spokes the pass changed something of, and how it found each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spokes: Vec<SpokeRecord>,
}

/// A spoke a pass changed, and how the pass found it: `listed_subscription` (its subscription
/// is read every pass), `hub_peering` (a hub's peering points at it), `resource_graph` (Resource
/// Graph named it), `event` (the event the pass answers is about it).
#[derive(Debug, Clone, Serialize)]
pub struct SpokeRecord {
    pub vnet: String,
    pub found_by: Vec<&'static str>,
}

/// Pairs that are not fine kept in an outcome before any summarizing: more never fit a queue
/// message, and a hub whose gateway is down has every pair unreachable.
pub const MAX_VERIFICATION_PAIRS: usize = 1000;

/// A hub's verification as an outcome carries it.
#[derive(Debug, Clone, Serialize)]
pub struct VerificationRecord {
    /// Pairs per verdict (`gateway`, `direct`, `appliance`, `unreachable`) and asymmetric ones.
    pub counts: VerdictCounts,
    pub pairs_total: usize,
    /// Every pair of transit spokes is `gateway` or `direct`.
    pub transit_pairs_fine: bool,
    /// The estate was observed again after the pass's writes (else: as the pass observed it).
    pub observed_after_writes: bool,
    /// The pairs that are not `gateway` or `direct`, or are asymmetric, each with its reason:
    /// transit spokes' first, the worst first.
    pub pairs: Vec<Value>,
    /// Such pairs left out of `pairs`.
    pub omitted_pairs: usize,
    /// Azure's effective routes compared with the model (`HUBSPOKE_VERIFY_EFFECTIVE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<EffectiveRecord>,
}

/// What reading the interfaces' effective routes found.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveRecord {
    /// `sample` or `all`.
    pub mode: &'static str,
    pub interfaces_checked: usize,
    /// The interfaces read (network interface ids).
    pub interfaces: Vec<String>,
    pub omitted_interfaces: usize,
    /// Every range where Azure and the model select different next hops.
    pub disagreements: Vec<Disagreement>,
    pub omitted_disagreements: usize,
    /// Interfaces that could not be read.
    pub errors: Vec<ErrorRecord>,
    pub omitted_errors: usize,
    /// The requests the reads cost (also counted in the outcome's `requests`).
    pub requests: RequestCounts,
}

impl VerificationRecord {
    /// The record of a pass's verification of a hub.
    pub fn from_verified(verified: &Verified) -> Self {
        let verification = &verified.verification;
        let summary = summary_json(verification, MAX_VERIFICATION_PAIRS);
        let pairs = match summary.get("pairs") {
            Some(Value::Array(pairs)) => pairs.clone(),
            _ => Vec::new(),
        };
        let omitted_pairs = summary["omitted_pairs"].as_u64().unwrap_or(0) as usize;
        let effective = verified.effective.as_ref().map(|check| EffectiveRecord {
            mode: check.mode.as_str(),
            interfaces_checked: check.interfaces.len(),
            interfaces: check.interfaces.iter().map(|i| i.nic.clone()).collect(),
            omitted_interfaces: 0,
            disagreements: check.disagreements.clone(),
            omitted_disagreements: 0,
            errors: check
                .errors
                .iter()
                .map(|(interface, error)| {
                    let mut record = ErrorRecord::from_arm(error);
                    record.target = Some(interface.nic.clone());
                    record
                })
                .collect(),
            omitted_errors: 0,
            requests: check.requests,
        });
        Self {
            counts: verification.counts,
            pairs_total: verification.counts.total(),
            transit_pairs_fine: verification.transit_pairs_fine(),
            observed_after_writes: verified.observed_after_writes,
            pairs,
            omitted_pairs,
            effective,
        }
    }

    /// Keeps at most `pairs` pairs and `entries` interfaces, errors and disagreements; counts
    /// the rest.
    fn trim(&mut self, pairs: usize, entries: usize) {
        if self.pairs.len() > pairs {
            self.omitted_pairs += self.pairs.len() - pairs;
            self.pairs.truncate(pairs);
        }
        if let Some(effective) = &mut self.effective {
            fn cut<T>(list: &mut Vec<T>, keep: usize, omitted: &mut usize) {
                if list.len() > keep {
                    *omitted += list.len() - keep;
                    list.truncate(keep);
                }
            }
            cut(
                &mut effective.interfaces,
                entries,
                &mut effective.omitted_interfaces,
            );
            cut(
                &mut effective.errors,
                entries,
                &mut effective.omitted_errors,
            );
            cut(
                &mut effective.disagreements,
                entries,
                &mut effective.omitted_disagreements,
            );
        }
    }

    /// The pairs and the effective check's entries it lists.
    fn listed(&self) -> (usize, usize) {
        let entries = self.effective.as_ref().map_or(0, |e| {
            e.interfaces
                .len()
                .max(e.errors.len())
                .max(e.disagreements.len())
        });
        (self.pairs.len(), entries)
    }
}

impl HubRecord {
    /// A hub with a status and nothing else.
    pub fn bare(hub: impl Into<String>, status: Status, detail: Option<String>) -> Self {
        Self {
            hub: hub.into(),
            status,
            detail,
            changes: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            verification: None,
            spokes: Vec::new(),
        }
    }
}

/// One change and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRecord {
    pub id: usize,
    pub kind: &'static str,
    pub target: String,
    pub reason: String,
    pub before: Value,
    pub after: Value,
    /// `applied`, `planned`, `failed`, `skipped` or `deferred`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// Why a skipped or deferred change was not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    pub duration_ms: u64,
}

impl ChangeRecord {
    pub fn from_outcome(outcome: &ChangeOutcome) -> Self {
        let action = &outcome.change.action;
        let (before, after) = action.before_after();
        let (status, error, skipped_because) = match &outcome.status {
            ChangeStatus::Applied => ("applied", None, None),
            ChangeStatus::Planned => ("planned", None, None),
            ChangeStatus::Failed { error } => ("failed", Some(ErrorRecord::from_arm(error)), None),
            ChangeStatus::Skipped { reason } => ("skipped", None, Some(reason.clone())),
            ChangeStatus::Deferred { reason } => ("deferred", None, Some(reason.clone())),
        };
        Self {
            id: outcome.change.id,
            kind: action.kind(),
            target: action.target(),
            reason: outcome.change.reason.clone(),
            before,
            after,
            status,
            error,
            skipped_because,
            duration_ms: outcome.duration_ms,
        }
    }

    fn failed_or_skipped(&self) -> bool {
        matches!(self.status, "failed" | "skipped")
    }
}

/// An error, with ARM's code when ARM gave one.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecord {
    pub code: String,
    pub message: String,
    /// The HTTP status of ARM's last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// For a refusal: the missing permission, the policy or the lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The resource or request concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl ErrorRecord {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            http_status: None,
            hint: None,
            target: None,
        }
    }

    pub fn from_arm(error: &ArmError) -> Self {
        Self {
            code: error.code.clone(),
            message: error.message.clone(),
            http_status: error.status,
            hint: error.hint(),
            target: Some(format!("{} {}", error.method, path_of(&error.url))),
        }
    }
}

/// The path of an ARM URL (ids and api-version only; kept short for people).
fn path_of(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = without_scheme
        .find('/')
        .map_or(without_scheme, |at| &without_scheme[at..]);
    path.split('?').next().unwrap_or(path).to_string()
}

/// Counts kept when an outcome is summarized.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Changes per status, over every hub.
    pub changes_by_status: BTreeMap<String, usize>,
    /// Changes per kind.
    pub changes_by_kind: BTreeMap<String, usize>,
    /// Warnings per code.
    pub warnings_by_code: BTreeMap<String, usize>,
    /// Entries left out of `hubs[].changes` and `hubs[].warnings`.
    pub omitted_changes: usize,
    pub omitted_warnings: usize,
    /// Entries left out of `hubs[].spokes` (all of them, in a summary).
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted_spokes: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

impl Outcome {
    /// An outcome in progress: status `unchanged` and no hub until the function says more.
    pub fn begin(function: &str, invocation_id: &str, trigger: Trigger, dry_run: bool) -> Self {
        let now = now();
        Self {
            schema: SCHEMA,
            function: function.to_string(),
            invocation_id: invocation_id.to_string(),
            instance: None,
            status: Status::Unchanged,
            reason: None,
            trigger,
            start_time: now.clone(),
            end_time: now,
            duration_ms: 0,
            dry_run,
            requests: RequestCounts::default(),
            pass: None,
            further_passes: Vec::new(),
            hubs: Vec::new(),
            errors: Vec::new(),
            work_items: Vec::new(),
            summary: None,
        }
    }

    /// Marks the outcome as ignoring its input on purpose.
    pub fn ignore(&mut self, reason: impl Into<String>) {
        self.status = Status::Ignored;
        self.reason = Some(reason.into());
    }

    /// Marks the outcome as refusing invalid input.
    pub fn reject(&mut self, code: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.status = Status::Rejected;
        self.errors.push(ErrorRecord::new(code, reason.clone()));
        self.reason = Some(reason);
    }

    /// Marks the outcome as failed as a whole.
    pub fn fail(&mut self, error: ErrorRecord) {
        self.status = Status::Failed;
        self.reason = Some(error.message.clone());
        self.errors.push(error);
    }

    /// Sets the overall status from the hubs' (the worst one), unless the function already set
    /// `ignored`, `rejected` or `failed`.
    pub fn settle_status(&mut self) {
        if matches!(
            self.status,
            Status::Ignored | Status::Rejected | Status::Failed
        ) {
            return;
        }
        if let Some(worst) = self.hubs.iter().map(|hub| hub.status).max() {
            self.status = worst;
        }
    }

    /// Stamps the end time and duration.
    pub fn finish(&mut self, started: std::time::Instant) {
        self.end_time = now();
        self.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    }

    /// The outcome as a JSON object that fits one queue message (summarized if it must be).
    pub fn fit(&self) -> Value {
        let full = serde_json::to_value(self).unwrap_or(Value::Null);
        if message_size(&full) <= MAX_MESSAGE_BYTES {
            return full;
        }
        self.summarized()
    }

    /// The summarized form: counts, then what fits, halving what is kept until it fits. What the
    /// pass did gives way last: the warnings go first, then the effective check's entries, then
    /// the verification's pairs (their counts stay), then the changes that neither failed nor
    /// were skipped, then the failures (the worst first).
    fn summarized(&self) -> Value {
        let mut summary = Summary {
            changes_by_status: BTreeMap::new(),
            changes_by_kind: BTreeMap::new(),
            warnings_by_code: BTreeMap::new(),
            omitted_changes: 0,
            omitted_warnings: 0,
            omitted_spokes: self.hubs.iter().map(|hub| hub.spokes.len()).sum(),
        };
        for hub in &self.hubs {
            for change in &hub.changes {
                *summary
                    .changes_by_status
                    .entry(change.status.to_string())
                    .or_default() += 1;
                *summary
                    .changes_by_kind
                    .entry(change.kind.to_string())
                    .or_default() += 1;
            }
            for warning in &hub.warnings {
                *summary
                    .warnings_by_code
                    .entry(warning.code.as_str().to_string())
                    .or_default() += 1;
            }
        }
        let total_changes: usize = self.hubs.iter().map(|hub| hub.changes.len()).sum();
        let total_warnings: usize = self.hubs.iter().map(|hub| hub.warnings.len()).sum();
        let mut keep = Keep {
            changes: usize::MAX,
            warnings: usize::MAX,
            pairs: usize::MAX,
            entries: usize::MAX,
            every_change: true,
        };
        loop {
            let (trimmed, kept) = self.trimmed(&keep);
            summary.omitted_changes = total_changes - kept.changes;
            summary.omitted_warnings = total_warnings - kept.warnings;
            let mut trimmed = trimmed;
            // How each spoke was found is left out of a summary; the count says how many.
            for hub in &mut trimmed.hubs {
                hub.spokes.clear();
            }
            trimmed.summary = Some(summary.clone());
            let value = serde_json::to_value(&trimmed).unwrap_or(Value::Null);
            if message_size(&value) <= MAX_MESSAGE_BYTES || kept.is_nothing() {
                return value;
            }
            if kept.warnings > 0 {
                keep.warnings = kept.warnings / 2;
            } else if kept.entries > 0 {
                keep.entries = kept.entries / 2;
            } else if kept.pairs > 0 {
                keep.pairs = kept.pairs / 2;
            } else if keep.every_change {
                keep.every_change = false;
            } else {
                keep.changes = kept.changes / 2;
            }
        }
    }

    /// A copy keeping every change (`keep.every_change`) or only the failed or skipped ones
    /// (failures first), and at most `keep` of each list (changes and warnings over every hub; a
    /// verification's lists per hub), and what it kept.
    fn trimmed(&self, keep: &Keep) -> (Outcome, Keep) {
        let mut trimmed = self.clone();
        let mut kept = Keep::default();
        for hub in &mut trimmed.hubs {
            let mut failures: Vec<ChangeRecord> = hub
                .changes
                .drain(..)
                .filter(|change| keep.every_change || change.failed_or_skipped())
                .collect();
            failures.sort_by_key(|change| change.status != "failed");
            failures.truncate(keep.changes.saturating_sub(kept.changes));
            kept.changes += failures.len();
            hub.changes = failures;
            hub.warnings
                .truncate(keep.warnings.saturating_sub(kept.warnings));
            kept.warnings += hub.warnings.len();
            if let Some(verification) = &mut hub.verification {
                verification.trim(keep.pairs, keep.entries);
                let (pairs, entries) = verification.listed();
                kept.pairs = kept.pairs.max(pairs);
                kept.entries = kept.entries.max(entries);
            }
        }
        (trimmed, kept)
    }
}

/// How many entries of each list a summarized outcome keeps.
#[derive(Debug, Default)]
struct Keep {
    changes: usize,
    warnings: usize,
    pairs: usize,
    entries: usize,
    /// Every change, not only the failed or skipped ones.
    every_change: bool,
}

impl Keep {
    fn is_nothing(&self) -> bool {
        self.changes == 0 && self.warnings == 0 && self.pairs == 0 && self.entries == 0
    }
}

/// The size of the queue message the host writes for `value` (indented by Json.NET, then
/// base64).
pub fn message_size(value: &Value) -> usize {
    largest_encoded_size(value, MessageEncoding::Base64).unwrap_or(usize::MAX)
}

/// Now, as RFC 3339 in UTC with milliseconds and a `Z`.
pub fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hubspoke_core::plan::WarningCode;
    use serde_json::json;

    fn change(id: usize, status: &'static str) -> ChangeRecord {
        ChangeRecord {
            id,
            kind: "upsert_route",
            target: format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/t/routes/hubspoke-10-{}-0-0-16", id % 250),
            reason: "spoke W is routed through the hub's VPN gateway; this is a long reason to make the outcome big".into(),
            before: Value::Null,
            after: json!({"name": "r", "addressPrefix": "10.0.0.0/16", "nextHopType": "VirtualNetworkGateway"}),
            status,
            error: (status == "failed").then(|| ErrorRecord::new("InternalServerError", "boom")),
            skipped_because: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds_and_z() {
        let time = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(rfc3339(time), "2023-11-14T22:13:20.123Z");
        assert!(now().ends_with('Z'));
    }

    #[test]
    fn a_large_outcome_is_summarized_with_failures_first_and_fits() {
        let mut outcome = Outcome::begin("ReconcileHub", "i-1", Trigger::default(), false);
        let mut hub = HubRecord::bare("/hub", Status::Partial, None);
        for id in 0..3000 {
            hub.changes
                .push(change(id, if id % 100 == 7 { "failed" } else { "applied" }));
        }
        for _ in 0..500 {
            hub.warnings.push(Warning {
                code: WarningCode::RouteConflict,
                target: "/x".into(),
                message: "a warning that takes some room in the message".into(),
                details: json!({}),
            });
        }
        outcome.hubs.push(hub);
        let value = outcome.fit();
        assert!(message_size(&value) <= MAX_MESSAGE_BYTES);
        assert!(message_size(&serde_json::to_value(&outcome).unwrap()) > MAX_MESSAGE_BYTES);
        let summary = &value["summary"];
        assert_eq!(summary["changes_by_status"]["failed"], 30);
        assert_eq!(summary["changes_by_status"]["applied"], 2970);
        assert_eq!(summary["warnings_by_code"]["route_conflict"], 500);
        let kept = value["hubs"][0]["changes"].as_array().unwrap();
        assert!(kept.iter().all(|c| c["status"] == "failed"));
        assert_eq!(kept.len(), 30, "every failure fits here");
        assert_eq!(
            summary["omitted_changes"].as_u64().unwrap() as usize + kept.len(),
            3000
        );
    }

    #[test]
    fn a_verification_of_a_large_estate_is_summarized_with_its_counts_and_the_worst_pairs_first() {
        use hubspoke_core::config::PlanConfig;
        use hubspoke_core::model::Observed;
        use hubspoke_core::synth::hub_and_spokes;
        use hubspoke_core::verify::verify;
        // 120 spokes peered both ways, the gateway provisioning: every one of the 14,280 pairs
        // is unreachable, each with its reason.
        let mut estate = hub_and_spokes(120, 2, true);
        estate.set_gateway_state("Updating");
        let observed = Observed::from_snapshot(&estate.snapshot()).unwrap();
        let config = PlanConfig::new(vec![estate.vnet_id("hub").parse().unwrap()]);
        let verification = verify(&config, &observed).remove(0);
        assert_eq!(verification.counts.unreachable, 120 * 119);
        let verified = Verified {
            verification,
            effective: None,
            observed_after_writes: false,
        };
        let mut outcome = Outcome::begin("ReconcileHub", "i-3", Trigger::default(), false);
        let mut hub = HubRecord::bare(estate.vnet_id("hub"), Status::Unchanged, None);
        hub.verification = Some(VerificationRecord::from_verified(&verified));
        outcome.hubs.push(hub);
        let value = outcome.fit();
        assert!(message_size(&value) <= MAX_MESSAGE_BYTES);
        let record = &value["hubs"][0]["verification"];
        assert_eq!(record["counts"]["unreachable"], 120 * 119);
        assert_eq!(record["pairs_total"], 120 * 119);
        assert_eq!(
            record["transit_pairs_fine"], true,
            "none is a transit spoke yet"
        );
        let kept = record["pairs"].as_array().unwrap();
        assert!(!kept.is_empty());
        assert!(
            kept.iter().all(|p| p["reason"] == "gateway_not_ready"),
            "{kept:?}"
        );
        assert_eq!(
            kept.len() + record["omitted_pairs"].as_u64().unwrap() as usize,
            120 * 119,
            "every pair is listed or counted"
        );
    }

    #[test]
    fn what_the_pass_did_is_kept_whole_while_the_verification_lists_give_way() {
        use hubspoke_core::config::PlanConfig;
        use hubspoke_core::model::Observed;
        use hubspoke_core::synth::hub_and_spokes;
        use hubspoke_core::verify::verify;
        // Sixty deferred changes fit a message; with every pair of 120 spokes listed it would not.
        let mut estate = hub_and_spokes(120, 2, true);
        estate.set_gateway_state("Updating");
        let observed = Observed::from_snapshot(&estate.snapshot()).unwrap();
        let config = PlanConfig::new(vec![estate.vnet_id("hub").parse().unwrap()]);
        let verified = Verified {
            verification: verify(&config, &observed).remove(0),
            effective: None,
            observed_after_writes: true,
        };
        let mut outcome = Outcome::begin("ReconcileHub", "i-4", Trigger::default(), false);
        let mut hub = HubRecord::bare(estate.vnet_id("hub"), Status::Continued, None);
        for id in 0..60 {
            hub.changes.push(change(id, "deferred"));
        }
        hub.verification = Some(VerificationRecord::from_verified(&verified));
        outcome.hubs.push(hub);
        let value = outcome.fit();
        assert!(message_size(&value) <= MAX_MESSAGE_BYTES);
        assert!(value.get("summary").is_some(), "it had to be summarized");
        let changes = value["hubs"][0]["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 60, "every change is kept");
        assert!(changes.iter().all(|c| c["status"] == "deferred"));
        assert_eq!(value["summary"]["omitted_changes"], 0);
        let record = &value["hubs"][0]["verification"];
        assert_eq!(record["counts"]["unreachable"], 120 * 119);
        assert!(record["omitted_pairs"].as_u64().unwrap() > 0);
    }

    #[test]
    fn a_small_outcome_is_kept_whole() {
        let mut outcome = Outcome::begin("DriftCheck", "i-2", Trigger::default(), false);
        outcome
            .hubs
            .push(HubRecord::bare("/hub", Status::Queued, None));
        outcome.settle_status();
        let value = outcome.fit();
        assert_eq!(value["status"], "queued");
        assert!(value.get("summary").is_none());
        assert_eq!(value["schema"], SCHEMA);
    }
}
