//! How long a `ReconcileHub` invocation may take, and the settings that decide it.
//!
//! The Functions host fails an invocation that runs past `functionTimeout` and restarts the
//! handler, failing every invocation of the instance with it. So a `ReconcileHub` invocation
//! must answer in time, whatever it waits for. It waits for at most two passes of its hub: the
//! one running in this instance when it arrived and the one it joined; or its own and the one
//! further pass that work items of other instances asked for (`docs/operations.md`, "How long
//! an invocation takes"). Each pass has a hard end `B`:
//!
//! ```text
//! B = (functionTimeout - STORAGE_MARGIN) / 2
//! ```
//!
//! A pass starts no change after `HUBSPOKE_PASS_TIME_LIMIT_SECONDS` (`T`); the changes then in
//! flight have until `B` to end (the ARM client follows one operation for 15 minutes at most),
//! and a pass still running at `B` is cut: it stops waiting (the operations it started go on in
//! Azure; the next pass observes them) and its invocation fails, to be retried by the queue.
//! `STORAGE_MARGIN` covers the lease and mark calls around the passes (each bounded by
//! `hubspoke_queue::blob::CALL_TIMEOUT`, at most 20 of them) and the answer.
//!
//! Start-up refuses, naming the setting: a `T` that leaves the operations in flight less time
//! than it gives the pass (`T > B / 2`), and a `functionTimeout` too short for any pass. The
//! default `T` is 10 minutes, or `B / 2` when that is less. `functionTimeout` is read as the host
//! reads it: the app setting `AzureFunctionsJobHost__functionTimeout`, else `host.json` in the app
//! root (`FUNCTIONS_APP_ROOT_PATH`, set by the host); `-1` means unbounded, and a handler run
//! without a host has no bound to keep.
use std::path::Path;
use std::time::Duration;

use hubspoke_core::config::SettingError;

/// What the lease and mark calls around the passes and the answer may take, at most.
pub const STORAGE_MARGIN: Duration = Duration::from_secs(120);

/// The default pass time limit, when `functionTimeout` allows it.
pub const DEFAULT_PASS_TIME_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The largest pass time limit accepted whatever `functionTimeout` says.
pub const MAX_PASS_TIME_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The shortest pass budget `B` that is of any use.
const MIN_PASS_BUDGET: Duration = Duration::from_secs(4);

/// The time rules of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassTiming {
    /// `HUBSPOKE_PASS_TIME_LIMIT_SECONDS`: no change starts after it.
    pub time_limit: Duration,
    /// `B`: a pass still running this long after it started is cut. `None` without a
    /// `functionTimeout` to keep.
    pub hard_end: Option<Duration>,
    /// The `functionTimeout` kept, when there is one.
    pub function_timeout: Option<Duration>,
}

/// Reads `functionTimeout` (module docs): `None` when unbounded or when no host runs the
/// handler.
pub fn function_timeout(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Duration>, SettingError> {
    const SETTING: &str = "AzureFunctionsJobHost__functionTimeout";
    let get = |name: &str| {
        lookup(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    if let Some(text) = get(SETTING) {
        return parse_timespan(&text).map_err(|reason| SettingError {
            setting: SETTING,
            value: text.clone(),
            reason,
        });
    }
    let Some(root) = get("FUNCTIONS_APP_ROOT_PATH") else {
        return Ok(None);
    };
    let path = Path::new(&root).join("host.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let bad = |reason: String| SettingError {
        setting: "functionTimeout",
        value: path.display().to_string(),
        reason,
    };
    let host: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("host.json is not JSON: {e}")))?;
    match host.get("functionTimeout") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(value)) => {
            parse_timespan(value).map_err(|reason| bad(format!("{value:?}: {reason}")))
        }
        Some(other) => Err(bad(format!("{other} is not a time span"))),
    }
}

/// A .NET time span as host.json writes `functionTimeout`: `[d.]hh:mm:ss[.fraction]`, or `-1`
/// for unbounded (`None`).
pub fn parse_timespan(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "-1" {
        return Ok(None);
    }
    let expected = || format!("expected hh:mm:ss (or -1 for no limit), not {text:?}");
    let (days, clock) = match text.split_once('.') {
        Some((days, rest)) if rest.contains(':') && !days.contains(':') => {
            (days.parse::<u64>().map_err(|_| expected())?, rest)
        }
        _ => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return Err(expected());
    };
    let hours: u64 = hours.parse().map_err(|_| expected())?;
    let minutes: u64 = minutes.parse().map_err(|_| expected())?;
    let seconds: f64 = seconds.parse().map_err(|_| expected())?;
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return Err(expected());
    }
    Ok(Some(
        Duration::from_secs(days * 86_400 + hours * 3600 + minutes * 60)
            + Duration::from_secs_f64(seconds),
    ))
}

/// The pass timing from the pass time limit setting (`None`: the default) and `functionTimeout`;
/// an error naming the setting that breaks the bound.
pub fn pass_timing(
    time_limit_setting: Option<&str>,
    function_timeout: Option<Duration>,
) -> Result<PassTiming, SettingError> {
    const SETTING: &str = "HUBSPOKE_PASS_TIME_LIMIT_SECONDS";
    let hard_end = match function_timeout {
        None => None,
        Some(timeout) => {
            let budget = timeout.saturating_sub(STORAGE_MARGIN) / 2;
            if budget < MIN_PASS_BUDGET {
                return Err(SettingError {
                    setting: "functionTimeout",
                    value: format!("{} s", timeout.as_secs()),
                    reason: format!(
                        "a ReconcileHub invocation may wait for two passes and the lease calls \
                         around them ({} s): functionTimeout must be at least {} s",
                        STORAGE_MARGIN.as_secs(),
                        (STORAGE_MARGIN + MIN_PASS_BUDGET * 2).as_secs()
                    ),
                });
            }
            Some(budget)
        }
    };
    // At most half of a pass's budget: the operations in flight then get the other half.
    let largest = hard_end.map_or(MAX_PASS_TIME_LIMIT, |budget| {
        (budget / 2).min(MAX_PASS_TIME_LIMIT)
    });
    let time_limit = match time_limit_setting {
        None => DEFAULT_PASS_TIME_LIMIT.min(largest),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|seconds| *seconds >= 1 && Duration::from_secs(*seconds) <= largest)
            .map(Duration::from_secs)
            .ok_or_else(|| SettingError {
                setting: SETTING,
                value: value.to_string(),
                reason: match function_timeout {
                    Some(timeout) => format!(
                        "expected whole seconds from 1 to {} : an invocation may wait for two \
                         passes, each of which must end within (functionTimeout {} s - {} s) / 2 \
                         = {} s, half of it for the changes still in flight at the limit",
                        largest.as_secs(),
                        timeout.as_secs(),
                        STORAGE_MARGIN.as_secs(),
                        hard_end.unwrap_or_default().as_secs()
                    ),
                    None => format!("expected whole seconds from 1 to {}", largest.as_secs()),
                },
            })?,
    };
    Ok(PassTiming {
        time_limit,
        hard_end,
        function_timeout,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn time_spans_read_as_host_json_writes_them() {
        assert_eq!(
            parse_timespan("01:00:00").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_timespan("00:00:30.5").unwrap(),
            Some(Duration::from_millis(30_500))
        );
        assert_eq!(
            parse_timespan("1.02:00:00").unwrap(),
            Some(Duration::from_secs(26 * 3600))
        );
        assert_eq!(parse_timespan("-1").unwrap(), None);
        for bad in ["1h", "00:61:00", "10", "a:b:c"] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bound_of_an_hour_leaves_a_pass_29_minutes_and_the_limit_at_most_14() {
        let timing = pass_timing(None, Some(Duration::from_secs(3600))).unwrap();
        assert_eq!(timing.hard_end, Some(Duration::from_secs(29 * 60)));
        assert_eq!(timing.time_limit, DEFAULT_PASS_TIME_LIMIT);
        // Two passes and the storage margin fit the timeout.
        assert!(timing.hard_end.unwrap() * 2 + STORAGE_MARGIN <= Duration::from_secs(3600));
        assert!(pass_timing(Some("870"), Some(Duration::from_secs(3600))).is_ok());
        let error = pass_timing(Some("871"), Some(Duration::from_secs(3600))).unwrap_err();
        assert_eq!(error.setting, "HUBSPOKE_PASS_TIME_LIMIT_SECONDS");
    }

    #[test]
    fn a_short_function_timeout_shortens_the_default_and_a_too_short_one_is_refused() {
        let timing = pass_timing(None, Some(Duration::from_secs(300))).unwrap();
        assert_eq!(timing.hard_end, Some(Duration::from_secs(90)));
        assert_eq!(timing.time_limit, Duration::from_secs(45));
        let error = pass_timing(None, Some(Duration::from_secs(125))).unwrap_err();
        assert_eq!(error.setting, "functionTimeout");
        let unbounded = pass_timing(Some("1800"), None).unwrap();
        assert_eq!(unbounded.hard_end, None);
        assert!(pass_timing(Some("1801"), None).is_err());
        assert!(pass_timing(Some("0"), None).is_err());
    }
}
