//! `Backfill` (HTTP trigger, `POST /api/backfill`): bring an existing estate under hubspoke.
//!
//! Parameters: `hub=<hub VNet id>` (repeatable; default every configured hub; a hub that is not
//! configured is refused), `dryRun=true|false` (default false) and `verify=true|false` (default
//! false: with true, the answer carries each hub's verification as the estate stands, before the
//! queued passes: pair counts per verdict and the pairs that are not fine, with their reasons).
//! Names are matched ignoring case, as the host does; any other parameter is refused, so that a
//! misspelt `dryrun` never turns a dry run into a real one.
//!
//! A dry run observes and answers 200 with the plan. Otherwise the answer is 202 with the plan
//! it expects and the work items it queued: the work itself runs in `ReconcileHub`, because an
//! HTTP call is cut after 230 seconds and converging a hub takes longer. Any bad parameter: 400
//! with a message naming it, and nothing queued. An estate that cannot be observed: 502 with
//! ARM's error, nothing queued.
//!
//! Azure cuts an HTTP trigger at 230 seconds, and observing a large estate can take longer: after
//! `HUBSPOKE_BACKFILL_ANSWER_SECONDS` (200 by default) the answer is 202 without a plan, with a
//! work item per hub. For a dry run those items ask for a plan only (`"dry_run": true`), whose
//! outcomes carry the plan; for a real one they are the usual work.
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions};
use hubspoke_core::id::VnetId;
use hubspoke_core::plan::Plan;
use serde_json::json;

use super::{hub_records, observe_error, skipped_reads};
use crate::envelope::HttpInput;
use crate::invocation::{Failure, HttpReply, Invocation, Reply};
use crate::outcome::{HubRecord, Outcome, RequestRef, Status};
use crate::state::AppState;
use crate::work::{Reason, RequestedBy, WorkItem};

/// Backfill's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub hubs: Vec<VnetId>,
    pub dry_run: bool,
    /// Answer with the verification too.
    pub verify: bool,
}

impl Params {
    /// Checks the query against the configured hubs; the error names the bad parameter.
    pub fn parse(query: &[(String, String)], configured: &[VnetId]) -> Result<Self, String> {
        let mut hubs: Vec<VnetId> = Vec::new();
        let mut dry_run: Option<bool> = None;
        let mut verify: Option<bool> = None;
        for (name, value) in query {
            if name.eq_ignore_ascii_case("hub") {
                let hub: VnetId = value
                    .trim()
                    .parse()
                    .map_err(|error| format!("parameter hub: {error}"))?;
                if !configured.contains(&hub) {
                    return Err(format!(
                        "parameter hub: {hub} is not a configured hub (HUBSPOKE_HUBS lists {})",
                        configured
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !hubs.contains(&hub) {
                    hubs.push(hub);
                }
            } else if name.eq_ignore_ascii_case("dryRun") {
                if dry_run.is_some() {
                    return Err("parameter dryRun is given more than once".into());
                }
                dry_run = Some(flag("dryRun", value)?);
            } else if name.eq_ignore_ascii_case("verify") {
                if verify.is_some() {
                    return Err("parameter verify is given more than once".into());
                }
                verify = Some(flag("verify", value)?);
            } else {
                return Err(format!(
                    "parameter {name:?} is not known: Backfill takes hub (repeatable), dryRun and verify"
                ));
            }
        }
        if hubs.is_empty() {
            hubs = configured.to_vec();
        }
        Ok(Self {
            hubs,
            dry_run: dry_run.unwrap_or(false),
            verify: verify.unwrap_or(false),
        })
    }
}

/// A `true`/`false` parameter.
fn flag(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("parameter {name}: {value:?} is not true or false")),
    }
}

pub async fn run(invocation: Invocation<HttpInput>, state: AppState) -> Result<Reply, Failure> {
    let Invocation {
        id,
        input,
        mut outcome,
    } = invocation;
    outcome.trigger.request = Some(RequestRef {
        method: input.method.clone(),
        path: input.path.clone(),
        query: input.query.clone(),
    });
    let refuse =
        |mut outcome: crate::outcome::Outcome, status: u16, code: &str, message: String| {
            outcome.reject(code, message.clone());
            Reply {
                outcome,
                work: Vec::new(),
                http: Some(HttpReply {
                    status,
                    body: json!({"error": message}),
                }),
            }
        };
    if input.method != "POST" {
        let message = format!("Backfill takes POST, not {}", input.method);
        return Ok(refuse(outcome, 405, "method_not_allowed", message));
    }
    let params = match Params::parse(&input.query, &state.settings.plan.hubs) {
        Ok(params) => params,
        Err(message) => return Ok(refuse(outcome, 400, "invalid_parameter", message)),
    };
    outcome.dry_run = params.dry_run;

    // Observe and plan now (nothing is written here), so the caller sees what to expect.
    let options = ReconcileOptions {
        dry_run: true,
        only_hubs: Some(params.hubs.clone()),
        ..state.settings.reconcile.clone()
    };
    let observed = tokio::time::timeout(
        state.settings.backfill_answer_limit,
        reconcile(&state.arm, &state.settings.plan, &options, None),
    )
    .await;
    let (result, plan) = match observed {
        Err(_) => return Ok(too_long_to_answer(id, outcome, &params, &state)),
        Ok(Ok(done)) => done,
        Ok(Err(error)) => {
            let record = observe_error(&error);
            outcome.fail(record.clone());
            return Ok(Reply {
                outcome,
                work: Vec::new(),
                http: Some(HttpReply {
                    status: 502,
                    body: json!({"error": format!("the estate could not be observed: {error}"), "arm": record}),
                }),
            });
        }
    };
    outcome.requests = result.requests;
    outcome.hubs = hub_records(&result);
    outcome.errors.extend(skipped_reads(&result));
    let plan = Plan {
        hubs: plan
            .hubs
            .into_iter()
            .filter(|hub_plan| params.hubs.contains(&hub_plan.hub))
            .collect(),
    };
    let verification = params.verify.then(|| verification_of(&outcome.hubs));
    if params.dry_run {
        let mut body = json!({"invocation_id": id, "dry_run": true, "plan": plan});
        if let Some(verification) = verification {
            body["verification"] = verification;
        }
        return Ok(Reply {
            outcome,
            work: Vec::new(),
            http: Some(HttpReply { status: 200, body }),
        });
    }
    for record in &mut outcome.hubs {
        record.detail = Some(format!(
            "{} change(s) expected; queued for ReconcileHub",
            record.changes.len()
        ));
        record.status = Status::Queued;
        // The changes listed are expected, not made: keep them as `planned`.
    }
    let work = work_items(&params, &outcome.function, &id, false);
    let mut body =
        json!({"invocation_id": id, "dry_run": false, "plan": plan, "work_items": listed(&work)});
    if let Some(verification) = verification {
        body["verification"] = verification;
    }
    Ok(Reply {
        outcome,
        work,
        http: Some(HttpReply { status: 202, body }),
    })
}

/// One `Backfill` work item per hub asked for, by invocation `id` of `function`; `dry_run`
/// asks `ReconcileHub` for a plan only.
fn work_items(params: &Params, function: &str, id: &str, dry_run: bool) -> Vec<WorkItem> {
    params
        .hubs
        .iter()
        .map(|hub| {
            let mut item = WorkItem::new(
                hub,
                Reason::Backfill,
                RequestedBy {
                    function: function.to_string(),
                    invocation_id: id.to_string(),
                    event_id: None,
                    subject: None,
                },
            );
            item.dry_run = dry_run;
            item
        })
        .collect()
}

/// The work items as the HTTP answer lists them.
fn listed(work: &[WorkItem]) -> Vec<serde_json::Value> {
    work.iter()
        .map(|item| json!({"item_id": item.item_id, "hub": item.hub}))
        .collect()
}

/// Each hub's verification, by hub id.
fn verification_of(hubs: &[HubRecord]) -> serde_json::Value {
    hubs.iter()
        .map(|hub| {
            let verification = serde_json::to_value(&hub.verification).unwrap_or_default();
            (hub.hub.clone(), verification)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The answer when the estate takes longer to observe than an HTTP request may last (Azure cuts
/// one at 230 s): 202 with one work item per hub, which `ReconcileHub` takes — a plan only for a
/// dry run, whose outcome then carries the plan, a pass for a real one. The observation dropped
/// here wrote nothing.
fn too_long_to_answer(
    id: String,
    mut outcome: Outcome,
    params: &Params,
    state: &AppState,
) -> Reply {
    let limit = state.settings.backfill_answer_limit.as_secs();
    let work = work_items(params, &outcome.function, &id, params.dry_run);
    let what = if params.dry_run {
        "the plan is delivered as the outcome of each work item (hubspoke results)"
    } else {
        "the work items are queued for ReconcileHub as usual; their outcomes say what changed"
    };
    let message = format!(
        "the estate takes longer than {limit} s to observe, and an HTTP request may not last that long: {what}"
    );
    for hub in &params.hubs {
        outcome.hubs.push(HubRecord::bare(
            hub.to_string(),
            Status::Queued,
            Some(message.clone()),
        ));
    }
    outcome.settle_status();
    let body = json!({
        "invocation_id": id,
        "dry_run": params.dry_run,
        "plan": null,
        "message": message,
        "work_items": listed(&work),
    });
    Reply {
        outcome,
        work,
        http: Some(HttpReply { status: 202, body }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hubs() -> Vec<VnetId> {
        ["a", "b"]
            .iter()
            .map(|n| {
                format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/{n}")
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hubs_default_to_every_configured_one_and_dry_run_to_false() {
        let params = Params::parse(&[], &hubs()).unwrap();
        assert_eq!(params.hubs, hubs());
        assert!(!params.dry_run);
        let params = Params::parse(
            &query(&[("HUB", &hubs()[1].to_string()), ("dryrun", "TRUE")]),
            &hubs(),
        )
        .unwrap();
        assert_eq!(params.hubs, [hubs()[1].clone()]);
        assert!(params.dry_run);
        assert!(!params.verify);
        let params = Params::parse(&query(&[("Verify", "true")]), &hubs()).unwrap();
        assert!(params.verify && !params.dry_run);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let other =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/c";
        let cases = [
            (query(&[("hub", other)]), "not a configured hub"),
            (query(&[("hub", "nonsense")]), "parameter hub"),
            (query(&[("dryRun", "yes")]), "parameter dryRun"),
            (
                query(&[("dryRun", "true"), ("dryRun", "false")]),
                "more than once",
            ),
            (query(&[("dry_run", "true")]), "\"dry_run\" is not known"),
            (query(&[("verify", "1")]), "parameter verify"),
            (
                query(&[("verify", "true"), ("VERIFY", "true")]),
                "more than once",
            ),
        ];
        for (query, expected) in cases {
            let error = Params::parse(&query, &hubs()).unwrap_err();
            assert!(error.contains(expected), "{query:?}: {error}");
        }
    }
}
