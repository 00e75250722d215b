//! `hubspoke results`: the outcomes in the queue `hubspoke-outcomes`, one line each, or as JSON.
//!
//! Reading never removes an outcome, and by default it changes nothing at all: the oldest 32
//! outcomes are peeked at (Azure's peek returns at most 32), which needs only Storage Queue Data
//! Reader on the queue. `--peek N` shows fewer. `--all` reads the whole queue: it receives it in
//! batches, each message hidden for [`SWEEP_VISIBILITY`] so that none comes round twice, and makes
//! each visible again at once — retrieving needs Storage Queue Data Message Processor and putting
//! back needs Storage Queue Data Contributor (without it, the messages come back by themselves
//! after the visibility timeout, and a warning says so); a message's dequeue count, which nothing
//! reads, grows. `--follow` reads the whole queue every two seconds and prints what is new, until
//! Ctrl-C.
//!
//! The connection is the app's (`AzureWebJobsStorage__queueServiceUri` with the usual
//! credentials: the Azure CLI login on a workstation), or `--queue-url`, which may carry a SAS.
use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, Context};
use hubspoke_core::id::portal_name;
use hubspoke_queue::message::decode_text;
use hubspoke_queue::{Queue, QueueService, StorageSettings};
use serde_json::Value;

/// The queue every function's `outcome` binding names.
pub const OUTCOME_QUEUE: &str = "hubspoke-outcomes";

#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// The outcome queue's URL (https://<account>.queue.core.windows.net/hubspoke-outcomes, with
    /// a SAS query if you have one). Default: hubspoke-outcomes of AzureWebJobsStorage__queueServiceUri.
    #[arg(long)]
    queue_url: Option<String>,
    /// Only the oldest N outcomes (1 to 32; 32 without --all), peeked at.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=32), conflicts_with = "all")]
    peek: Option<u32>,
    /// Read the whole queue, not only the oldest 32: receives every message and puts it back at
    /// once (needs Storage Queue Data Message Processor and Storage Queue Data Contributor on
    /// the queue; the default needs only Storage Queue Data Reader).
    #[arg(long)]
    all: bool,
    /// Keep reading the whole queue and print outcomes as they arrive, until Ctrl-C (as --all).
    #[arg(long, conflicts_with = "peek")]
    follow: bool,
    /// Output format: a table for people, or one JSON outcome per line.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub async fn run(args: ResultsArgs) -> anyhow::Result<()> {
    let lookup = |name: &str| std::env::var(name).ok();
    let (settings, name) = match &args.queue_url {
        Some(url) => StorageSettings::from_queue_url("--queue-url", url, lookup)?,
        None => (
            StorageSettings::from_lookup(hubspoke_queue::settings::DEFAULT_CONNECTION, lookup)
                .context(
                "no queue to read: pass --queue-url or set AzureWebJobsStorage__queueServiceUri",
            )?,
            OUTCOME_QUEUE.to_string(),
        ),
    };
    let queue = QueueService::connect(&settings)?.queue(&name)?;
    if !queue.exists().await? {
        bail!(
            "the queue {name} does not exist at {}",
            settings.service_url
        );
    }
    let mut reader = Reader::new(queue);
    if !args.all && !args.follow {
        let count = args.peek.unwrap_or(PEEK_LIMIT);
        let outcomes = reader.peek(count).await?;
        print(&outcomes, args.output, true);
        if args.peek.is_none() && outcomes.len() == PEEK_LIMIT as usize {
            eprintln!(
                "note: the oldest {PEEK_LIMIT} outcomes are shown (Azure's peek stops there); `hubspoke results --all` reads the whole queue"
            );
        }
        return Ok(());
    }
    let outcomes = reader.sweep().await?;
    print(&outcomes, args.output, true);
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let outcomes = reader.sweep().await?;
        print(&outcomes, args.output, false);
    }
}

fn print(outcomes: &[Value], format: Format, header: bool) {
    match format {
        Format::Table => print!("{}", table(outcomes, header)),
        Format::Json => {
            for outcome in outcomes {
                println!("{outcome}");
            }
        }
    }
}

/// Reads a queue of outcomes without removing any.
pub struct Reader {
    queue: Queue,
    seen: HashSet<String>,
}

impl Reader {
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            seen: HashSet::new(),
        }
    }

    /// The oldest `count` outcomes (at most 32), peeked at.
    pub async fn peek(&mut self, count: u32) -> anyhow::Result<Vec<Value>> {
        let messages = self.queue.peek(count).await?;
        Ok(messages.iter().map(|m| decode(&m.text)).collect())
    }

    /// Every outcome in the queue not read before by this reader, oldest first. The queue is
    /// received through in batches, each message hidden for [`SWEEP_VISIBILITY`] so that none
    /// comes round twice, then each is made visible again at once: nothing is removed, and other
    /// readers see the queue as it was.
    pub async fn sweep(&mut self) -> anyhow::Result<Vec<Value>> {
        let mut found = Vec::new();
        let mut hidden = Vec::new();
        let result = async {
            while hidden.len() < MAX_SWEEP {
                let batch = self.queue.receive(32, SWEEP_VISIBILITY).await?;
                if batch.is_empty() {
                    break;
                }
                for message in batch {
                    if self.seen.insert(message.id.clone()) {
                        found.push(decode(&message.text));
                    }
                    hidden.push((message.id, message.pop_receipt));
                }
            }
            anyhow::Ok(())
        }
        .await;
        let mut still_hidden = 0;
        let mut last_error = None;
        for (id, pop_receipt) in &hidden {
            // A message deleted or expired meanwhile is gone anyway.
            if let Err(error) = self
                .queue
                .update_visibility(id, pop_receipt, Duration::ZERO)
                .await
            {
                if !error.is_message_gone() {
                    still_hidden += 1;
                    last_error = Some(error);
                }
            }
        }
        if let Some(error) = last_error {
            eprintln!(
                "warning: {still_hidden} outcomes could not be put back and stay hidden for up to {SWEEP_VISIBILITY:?} (putting a message back needs Storage Queue Data Contributor on the queue): {error}"
            );
        }
        result?;
        if hidden.len() >= MAX_SWEEP {
            eprintln!("warning: the queue holds more than {MAX_SWEEP} messages; the first {MAX_SWEEP} are shown");
        }
        sort_by_time(&mut found);
        Ok(found)
    }
}

/// The most messages Azure's peek returns, and what `hubspoke results` shows by default.
pub const PEEK_LIMIT: u32 = 32;

/// Oldest first, by `end_time`. Not as text: the host's Json.NET writes a timestamp without the
/// trailing zeros of its fraction (`…:37.41Z` for `…:37.410Z`), so the fraction is padded first.
fn sort_by_time(outcomes: &mut [Value]) {
    outcomes.sort_by_cached_key(|outcome| sortable_time(text(outcome, "end_time")));
}

/// `2026-12-06T23:37:37.41Z` as `2026-12-06T23:37:37.410000000Z`: RFC 3339 UTC timestamps of any
/// precision then sort as text.
fn sortable_time(time: &str) -> String {
    let time = time.trim_end_matches('Z');
    let (whole, fraction) = time.split_once('.').unwrap_or((time, ""));
    format!("{whole}.{fraction:0<9}Z")
}

/// How long a sweep hides what it has read, to go through the queue once.
const SWEEP_VISIBILITY: Duration = Duration::from_secs(30);

/// The most messages one sweep reads.
const MAX_SWEEP: usize = 5000;

/// A message as an outcome; what is not one is kept as `{"unreadable": <text>}`.
fn decode(text_of_message: &str) -> Value {
    decode_text(text_of_message)
        .json()
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            let shown: String = text_of_message.chars().take(80).collect();
            serde_json::json!({ "unreadable": shown })
        })
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// One line per outcome: time, function, trigger, hub, status, and counts of changes, warnings
/// and failures. Resources are named as the portal names them.
pub fn table(outcomes: &[Value], header: bool) -> String {
    use std::fmt::Write;
    let rows: Vec<[String; 9]> = outcomes.iter().map(row).collect();
    let titles = [
        "TIME", "FUNCTION", "TRIGGER", "HUB", "STATUS", "CHANGES", "WARNINGS", "FAILURES", "PAIRS",
    ];
    let mut widths = titles.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    if header {
        line(&titles.map(str::to_string));
    }
    for row in &rows {
        line(row);
    }
    out
}

fn row(outcome: &Value) -> [String; 9] {
    if let Some(text) = outcome.get("unreadable").and_then(Value::as_str) {
        return [
            String::new(),
            "?".into(),
            format!("not an outcome: {text}"),
            String::new(),
            "unreadable".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ];
    }
    // To the second: `YYYY-MM-DDTHH:MM:SS` and whatever follows it (a fraction, of any length or
    // none, as the host's Json.NET keeps it; the offset).
    let end_time = text(outcome, "end_time");
    let time = end_time.get(..19).unwrap_or(end_time).replace('T', " ");
    let trigger = &outcome["trigger"];
    let trigger_text = match text(trigger, "kind") {
        "event_grid" => trigger["events"]
            .as_array()
            .and_then(|events| events.first())
            .map(|event| {
                let operation = event["operation"].as_str().unwrap_or("");
                let verb = operation.rsplit('/').next().unwrap_or("event");
                format!(
                    "{verb} {}",
                    portal_name(event["subject"].as_str().unwrap_or(""))
                )
            })
            .unwrap_or_else(|| "event".into()),
        "queue" => match trigger["message"]["dequeue_count"].as_u64() {
            Some(count) if count > 1 => format!("work item (attempt {count})"),
            _ => "work item".into(),
        },
        "http" => format!(
            "{} {}",
            text(&trigger["request"], "method"),
            text(&trigger["request"], "path")
        ),
        "timer" => "timer".into(),
        other => other.to_string(),
    };
    let hubs: Vec<String> = outcome["hubs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|hub| portal_name(hub["hub"].as_str().unwrap_or("")))
        .collect();
    let changes: Vec<&Value> = outcome["hubs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|hub| hub["changes"].as_array().into_iter().flatten())
        .collect();
    let summary = &outcome["summary"];
    let count_status = |status: &str| -> u64 {
        match summary["changes_by_status"][status].as_u64() {
            Some(count) => count,
            None => changes.iter().filter(|c| c["status"] == status).count() as u64,
        }
    };
    let done = count_status("applied") + count_status("planned");
    let warnings: u64 = match summary["warnings_by_code"].as_object() {
        Some(codes) => codes.values().filter_map(Value::as_u64).sum(),
        None => outcome["hubs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|hub| hub["warnings"].as_array().map_or(0, Vec::len) as u64)
            .sum(),
    };
    let errors = outcome["errors"].as_array().map_or(0, Vec::len) as u64;
    let failures = count_status("failed") + count_status("skipped") + errors;
    let mut status = text(outcome, "status").to_string();
    if outcome["dry_run"] == true {
        status.push_str(" (dry run)");
    }
    [
        time,
        text(outcome, "function").to_string(),
        trigger_text,
        if hubs.is_empty() {
            "-".into()
        } else {
            hubs.join(", ")
        },
        status,
        done.to_string(),
        warnings.to_string(),
        failures.to_string(),
        verdict_counts(outcome),
    ]
}

/// The pass's pair counts per verdict (its hubs' verifications added up), those that are not
/// zero, e.g. `10 gateway, 2 unreachable`; `-` when the outcome has no verification.
fn verdict_counts(outcome: &Value) -> String {
    let verifications: Vec<&Value> = outcome["hubs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hub| hub.get("verification"))
        .collect();
    if verifications.is_empty() {
        return "-".into();
    }
    let parts: Vec<String> = [
        "gateway",
        "direct",
        "appliance",
        "unreachable",
        "asymmetric",
    ]
    .iter()
    .filter_map(|verdict| {
        let count: u64 = verifications
            .iter()
            .filter_map(|v| v["counts"][verdict].as_u64())
            .sum();
        (count > 0).then(|| format!("{count} {verdict}"))
    })
    .collect();
    if parts.is_empty() {
        "no pair".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_sort_by_their_time_whatever_the_digits_the_host_kept() {
        // The host's Json.NET rewrites a timestamp without the trailing zeros of its fraction:
        // "…:37.4Z" is later than "…:37.398Z" and earlier than "…:37.41Z".
        let at = |time: &str| serde_json::json!({ "end_time": time });
        let mut outcomes = vec![
            at("2026-12-06T23:37:37.41Z"),
            at("2026-12-06T23:37:37.4Z"),
            at("2026-12-06T23:37:38Z"),
            at("2026-12-06T23:37:37.398Z"),
        ];
        sort_by_time(&mut outcomes);
        let times: Vec<&str> = outcomes.iter().map(|o| text(o, "end_time")).collect();
        assert_eq!(
            times,
            [
                "2026-12-06T23:37:37.398Z",
                "2026-12-06T23:37:37.4Z",
                "2026-12-06T23:37:37.41Z",
                "2026-12-06T23:37:38Z"
            ]
        );
    }
    use serde_json::json;

    #[test]
    fn a_row_shows_the_time_to_the_second_whatever_the_digits_the_host_kept() {
        // Json.NET drops a fraction of zero altogether: "…:56Z".
        for (time, shown) in [
            ("2026-12-07T04:20:56Z", "2026-12-07 04:20:56"),
            ("2026-12-07T04:20:56.5Z", "2026-12-07 04:20:56"),
            ("2026-12-07T04:20:56.123Z", "2026-12-07 04:20:56"),
            ("2026-12-07T04:20:56+00:00", "2026-12-07 04:20:56"),
        ] {
            let outcome = json!({"function": "DriftCheck", "status": "queued", "end_time": time,
                "trigger": {"kind": "timer"}, "hubs": [], "errors": []});
            assert_eq!(row(&outcome)[0], shown, "{time}");
        }
    }

    #[test]
    fn a_row_says_what_an_outcome_did_in_a_line() {
        let hub = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub";
        let outcome = json!({
            "function": "ReconcileHub", "status": "partial", "end_time": "2026-11-30T02:16:22.123Z",
            "dry_run": false, "trigger": {"kind": "queue", "message": {"dequeue_count": 2}},
            "hubs": [{"hub": hub, "changes": [{"status": "applied"}, {"status": "applied"}, {"status": "failed"}],
                      "warnings": [{"code": "route_conflict"}]}],
            "errors": []
        });
        let cells = row(&outcome);
        assert_eq!(cells[0], "2026-11-30 02:16:22");
        assert_eq!(cells[2], "work item (attempt 2)");
        assert_eq!(cells[3], "rg-net / hub");
        assert_eq!(cells[4], "partial");
        assert_eq!(&cells[5..], ["2", "1", "1", "-"]);
        let summarized = json!({"function": "ReconcileHub", "status": "changed", "trigger": {"kind": "timer"},
            "hubs": [], "errors": [], "summary": {"changes_by_status": {"applied": 900}, "warnings_by_code": {"route_conflict": 3}}});
        assert_eq!(&row(&summarized)[5..], ["900", "3", "0", "-"]);
        let verified = json!({"function": "ReconcileHub", "status": "unchanged", "trigger": {"kind": "timer"},
            "hubs": [{"hub": hub, "changes": [], "warnings": [], "verification": {"counts":
                {"gateway": 10, "direct": 0, "appliance": 1, "unreachable": 1, "asymmetric": 0}}}],
            "errors": []});
        assert_eq!(row(&verified)[8], "10 gateway, 1 appliance, 1 unreachable");
        let text = table(&[outcome, json!({"unreadable": "xyz"})], true);
        assert!(text.starts_with("TIME"), "{text}");
        assert!(text.contains("not an outcome: xyz"), "{text}");
    }
}
