//! What the host reads at start: `host.json` and every function's `function.json`, with app
//! settings (`%NAME%`) resolved, as the Functions host indexes an app. A bad file or value stops
//! start-up with a message naming it; a function whose `%NAME%` setting is unset is refused
//! (not indexed, logged) while the others run, as the real host does.
//!
//! Where functions are found: `<script root>/function-definitions/*/function.json` when that
//! folder exists (this repository's layout), else `<script root>/*/function.json` (the packaged
//! layout, next to `host.json`, which is what the real host reads in Azure).
//!
//! App settings override host.json as in Azure: `AzureFunctionsJobHost__a__b=value` sets
//! `a.b` (keys matched ignoring case).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// Everything the host takes from `host.json`.
#[derive(Debug, Clone)]
pub struct HostJson {
    /// `customHandler.description.defaultExecutablePath`, `%NAME%` expanded.
    pub executable: String,
    /// `customHandler.description.arguments`, `%NAME%` expanded.
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory`, resolved against the app root.
    pub working_directory: PathBuf,
    /// `functionTimeout`; `None` for `-1` (unbounded). Default 30 minutes (Flex, Premium).
    pub function_timeout: Option<Duration>,
    /// `extensions.http.routePrefix` (default `api`).
    pub route_prefix: String,
    /// `extensions.queues`.
    pub queues: QueuesOptions,
}

/// `extensions.queues` with the queue extension's defaults (`QueuesOptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuesOptions {
    /// Messages fetched at once per function (1–32, default 16).
    pub batch_size: u32,
    /// A new batch is fetched when fewer are running than this (default `batchSize / 2`, with
    /// the processor count of a Consumption instance, 1).
    pub new_batch_threshold: u32,
    /// Longest wait between polls of an empty queue (default 1 minute, minimum 100 ms).
    pub max_polling_interval: Duration,
    /// Attempts before a message goes to `<queue>-poison` (default 5).
    pub max_dequeue_count: u32,
    /// How long a failed message stays invisible before it is retried (default 0).
    pub visibility_timeout: Duration,
    /// `messageEncoding` (default base64).
    pub message_encoding: hubspoke_queue::MessageEncoding,
}

impl Default for QueuesOptions {
    fn default() -> Self {
        QueuesOptions {
            batch_size: 16,
            new_batch_threshold: 8,
            max_polling_interval: Duration::from_secs(60),
            max_dequeue_count: 5,
            visibility_timeout: Duration::ZERO,
            message_encoding: hubspoke_queue::MessageEncoding::Base64,
        }
    }
}

/// One indexed function.
#[derive(Debug, Clone)]
pub struct Function {
    /// The folder name, exactly (the invocation path is `/<name>`).
    pub name: String,
    /// Its trigger.
    pub trigger: Trigger,
    /// Output bindings (name → kind), names exactly as declared.
    pub outputs: Vec<Output>,
}

/// A trigger binding.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// `eventGridTrigger`.
    EventGrid { name: String },
    /// `httpTrigger`.
    Http {
        name: String,
        auth_level: AuthLevel,
        /// Upper-case methods; empty means all.
        methods: Vec<String>,
        /// The route after the prefix, without slashes at the ends.
        route: String,
    },
    /// `timerTrigger`.
    Timer {
        name: String,
        /// The NCRONTAB expression after `%NAME%` resolution.
        schedule: String,
        run_on_startup: bool,
    },
    /// `queueTrigger`.
    Queue {
        name: String,
        /// The queue, lower-cased as the extension does.
        queue: String,
        /// The connection prefix (`AzureWebJobsStorage` by default).
        connection: String,
    },
}

impl Trigger {
    /// The trigger binding's name (the key of `Data`).
    pub fn binding_name(&self) -> &str {
        match self {
            Trigger::EventGrid { name }
            | Trigger::Http { name, .. }
            | Trigger::Timer { name, .. }
            | Trigger::Queue { name, .. } => name,
        }
    }
}

/// An output binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The binding name (case-sensitive in `Outputs`).
    pub name: String,
    /// What it writes to.
    pub kind: OutputKind,
}

/// What an output binding writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// A storage queue, lower-cased, through a connection prefix.
    Queue { queue: String, connection: String },
    /// The HTTP response of an HTTP trigger.
    Http,
    /// Any other type: accepted in function.json, written nowhere (logged once).
    Unsupported { binding_type: String },
}

/// `authLevel` of an HTTP trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLevel {
    Anonymous,
    Function,
    Admin,
}

/// The app: host.json, the functions that indexed, and those refused with why.
#[derive(Debug, Clone)]
pub struct App {
    /// The script root (app root).
    pub root: PathBuf,
    /// host.json.
    pub host: HostJson,
    /// Functions indexed, by name order.
    pub functions: Vec<Function>,
    /// Functions not indexed: name and reason.
    pub refused: Vec<(String, String)>,
}

/// Reads the app at `root`, resolving settings through `lookup`.
pub fn load(root: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<App> {
    let host_path = root.join("host.json");
    let text = std::fs::read_to_string(&host_path)
        .with_context(|| format!("reading {}", host_path.display()))?;
    let mut document: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", host_path.display()))?;
    apply_overrides(&mut document, lookup)?;
    let host =
        parse_host(root, &document, lookup).with_context(|| format!("{}", host_path.display()))?;

    let functions_dir = if root.join("function-definitions").is_dir() {
        root.join("function-definitions")
    } else {
        root.to_path_buf()
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&functions_dir)
        .with_context(|| format!("listing {}", functions_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("function.json").is_file())
        .collect();
    entries.sort();
    let mut functions = Vec::new();
    let mut refused = Vec::new();
    for dir in entries {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join("function.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        if disabled(&name, &document, lookup) {
            refused.push((name, "disabled".to_string()));
            continue;
        }
        match parse_function(&name, &document, lookup) {
            Ok(function) => functions.push(function),
            Err(FunctionError::Unresolved(reason)) => refused.push((name, reason)),
            Err(FunctionError::Invalid(reason)) => {
                bail!("{}: {reason}", path.display())
            }
        }
    }
    Ok(App {
        root: root.to_path_buf(),
        host,
        functions,
        refused,
    })
}

enum FunctionError {
    /// A `%NAME%` setting is unset: the function is not indexed.
    Unresolved(String),
    /// The file is wrong: start-up stops.
    Invalid(String),
}

fn disabled(name: &str, document: &Value, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    let flag = |value: Option<String>| {
        value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
    };
    document.get("disabled").and_then(Value::as_bool) == Some(true)
        || flag(lookup(&format!("AzureWebJobs.{name}.Disabled")))
        || flag(lookup(&format!("AzureWebJobs__{name}__Disabled")))
}

/// Replaces `%NAME%` by the setting's value. Unset settings are an error here (binding
/// expressions); the handler's command line removes them instead ([`expand_command`]).
fn resolve(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    substitute(text, |name| {
        lookup(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("'%{name}%' does not resolve to a value (the app setting {name} is unset)")
        })
    })
}

/// `%NAME%` in the command line is expanded from the environment; unset ones are removed
/// (Functions host `DefaultWorkerProcessFactory`).
fn expand_command(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    substitute(text, |name| {
        Ok::<_, std::convert::Infallible>(lookup(name).unwrap_or_default())
    })
    .unwrap_or_else(|never| match never {})
}

/// Replaces each `%NAME%` of `text` by `value(NAME)`; a lone `%` and what follows stay as they
/// are.
fn substitute<E>(
    text: &str,
    mut value: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(length) = rest[start + 1..].find('%') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[start + 1..start + 1 + length])?);
        rest = &rest[start + length + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn apply_overrides(
    document: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    // The keys that matter to this host; an app setting can set any of them.
    const PATHS: &[&[&str]] = &[
        &["functionTimeout"],
        &["extensions", "http", "routePrefix"],
        &["extensions", "queues", "batchSize"],
        &["extensions", "queues", "newBatchThreshold"],
        &["extensions", "queues", "maxPollingInterval"],
        &["extensions", "queues", "maxDequeueCount"],
        &["extensions", "queues", "visibilityTimeout"],
        &["extensions", "queues", "messageEncoding"],
    ];
    for path in PATHS {
        let setting = format!("AzureFunctionsJobHost__{}", path.join("__"));
        let Some(value) = lookup(&setting).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let mut node = &mut *document;
        for (index, key) in path.iter().enumerate() {
            let Value::Object(map) = node else {
                bail!("{setting}: host.json has no object at {key}");
            };
            let existing = map
                .keys()
                .find(|k| k.eq_ignore_ascii_case(key))
                .cloned()
                .unwrap_or_else(|| key.to_string());
            if index + 1 == path.len() {
                let parsed = value
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(value.clone()));
                map.insert(existing, parsed);
                break;
            }
            node = map
                .entry(existing)
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(())
}

/// A key of `map` matched ignoring case (Functions reads host.json case-insensitively).
fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn parse_host(
    root: &Path,
    document: &Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<HostJson> {
    if get(document, "version").and_then(Value::as_str) != Some("2.0") {
        bail!("\"version\" must be \"2.0\"");
    }
    let handler = get(document, "customHandler")
        .or_else(|| get(document, "httpWorker"))
        .context("there is no customHandler section")?;
    let description = get(handler, "description").context("Missing worker Description.")?;
    // App settings are the process environment in Azure; here they may also come from the
    // host's configuration, which `lookup` reads first.
    let env = |name: &str| lookup(name);
    let executable = get(description, "defaultExecutablePath")
        .and_then(Value::as_str)
        .map(|path| expand_command(path, &env))
        .filter(|path| !path.trim().is_empty())
        .context("customHandler.description.defaultExecutablePath is required")?;
    let arguments = match get(description, "arguments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            // Joined with spaces into one command line and split again: an argument with a space
            // becomes two, as in the real host.
            let joined = items
                .iter()
                .map(|item| item.as_str().map(|s| expand_command(s, &env)))
                .collect::<Option<Vec<String>>>()
                .context("customHandler.description.arguments must be strings")?
                .join(" ");
            joined.split_whitespace().map(str::to_string).collect()
        }
        Some(_) => bail!("customHandler.description.arguments must be an array"),
    };
    let working_directory = match get(description, "workingDirectory").and_then(Value::as_str) {
        None | Some("") => root.to_path_buf(),
        Some(dir) => root.join(dir),
    };
    let function_timeout = match get(document, "functionTimeout") {
        None | Some(Value::Null) => Some(Duration::from_secs(30 * 60)),
        Some(Value::String(text)) if text.trim() == "-1" => None,
        Some(Value::String(text)) => Some(
            parse_timespan(text)
                .with_context(|| format!("functionTimeout {text:?} is not hh:mm:ss"))?,
        ),
        Some(other) => bail!("functionTimeout {other} must be a string hh:mm:ss or \"-1\""),
    };
    let extensions = get(document, "extensions").cloned().unwrap_or(Value::Null);
    let route_prefix = get(&extensions, "http")
        .and_then(|http| get(http, "routePrefix"))
        .and_then(Value::as_str)
        .unwrap_or("api")
        .trim_matches('/')
        .to_string();
    let queues = parse_queues(get(&extensions, "queues"))?;
    Ok(HostJson {
        executable,
        arguments,
        working_directory,
        function_timeout,
        route_prefix,
        queues,
    })
}

fn parse_queues(section: Option<&Value>) -> anyhow::Result<QueuesOptions> {
    let mut options = QueuesOptions::default();
    let Some(section) = section else {
        return Ok(options);
    };
    let number = |key: &str| -> anyhow::Result<Option<u32>> {
        match get(section, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .with_context(|| format!("extensions.queues.{key} must be a whole number")),
            Some(Value::String(s)) => s
                .trim()
                .parse::<u32>()
                .map(Some)
                .with_context(|| format!("extensions.queues.{key} must be a whole number")),
            Some(other) => bail!("extensions.queues.{key} must be a whole number, not {other}"),
        }
    };
    let duration = |key: &str| -> anyhow::Result<Option<Duration>> {
        match get(section, key) {
            None | Some(Value::Null) => Ok(None),
            // Version 1 style: milliseconds.
            Some(Value::Number(n)) => Ok(n.as_u64().map(Duration::from_millis)),
            Some(Value::String(s)) => parse_timespan(s)
                .map(Some)
                .with_context(|| format!("extensions.queues.{key} {s:?} is not hh:mm:ss")),
            Some(other) => bail!("extensions.queues.{key} must be a time span, not {other}"),
        }
    };
    if let Some(size) = number("batchSize")? {
        if !(1..=32).contains(&size) {
            bail!("extensions.queues.batchSize must be between 1 and 32");
        }
        options.batch_size = size;
    }
    // Default threshold: batchSize / 2 times the processor count of a Consumption instance (1).
    options.new_batch_threshold = number("newBatchThreshold")?.unwrap_or(options.batch_size / 2);
    if let Some(interval) = duration("maxPollingInterval")? {
        if interval < Duration::from_millis(100) {
            bail!("extensions.queues.maxPollingInterval must not be less than 00:00:00.1");
        }
        options.max_polling_interval = interval;
    }
    if let Some(count) = number("maxDequeueCount")? {
        if count < 1 {
            bail!("extensions.queues.maxDequeueCount must not be less than 1");
        }
        options.max_dequeue_count = count;
    }
    if let Some(timeout) = duration("visibilityTimeout")? {
        options.visibility_timeout = timeout;
    }
    if let Some(encoding) = get(section, "messageEncoding").and_then(Value::as_str) {
        options.message_encoding =
            hubspoke_queue::MessageEncoding::parse(encoding).with_context(|| {
                format!("extensions.queues.messageEncoding {encoding:?} must be base64 or none")
            })?;
    }
    Ok(options)
}

/// A .NET TimeSpan text: `[d.]hh:mm:ss[.fffffff]`.
pub fn parse_timespan(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (days, rest) = match text.split_once('.') {
        Some((d, rest)) if !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let hours: u64 = parts[0].parse().ok()?;
    let minutes: u64 = parts[1].parse().ok()?;
    let seconds: f64 = parts[2].parse().ok()?;
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some(Duration::from_secs_f64(
        ((days * 24 + hours) * 3600 + minutes * 60) as f64 + seconds,
    ))
}

fn parse_function(
    name: &str,
    document: &Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Function, FunctionError> {
    let invalid = |reason: String| FunctionError::Invalid(reason);
    let bindings = get(document, "bindings")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("\"bindings\" must be an array".to_string()))?;
    let mut trigger = None;
    let mut outputs = Vec::new();
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for binding in bindings {
        let text = |key: &str| {
            get(binding, key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let binding_type = text("type").ok_or_else(|| invalid("a binding has no type".into()))?;
        let binding_name = text("name").ok_or_else(|| invalid("a binding has no name".into()))?;
        let direction = text("direction").unwrap_or_default().to_ascii_lowercase();
        if names
            .insert(binding_name.to_ascii_lowercase(), ())
            .is_some()
        {
            return Err(invalid(format!(
                "binding names must be unique (ignoring case): {binding_name}"
            )));
        }
        let connection = text("connection").unwrap_or_else(|| "AzureWebJobsStorage".to_string());
        let queue_name = || -> Result<String, FunctionError> {
            let raw = text("queueName")
                .ok_or_else(|| invalid(format!("binding {binding_name} has no queueName")))?;
            resolve(&raw, lookup)
                .map(|q| q.to_ascii_lowercase())
                .map_err(FunctionError::Unresolved)
        };
        match (
            binding_type.to_ascii_lowercase().as_str(),
            direction.as_str(),
        ) {
            ("eventgridtrigger", _) => {
                trigger = Some(Trigger::EventGrid { name: binding_name });
            }
            ("httptrigger", _) => {
                let auth_level = match text("authLevel")
                    .unwrap_or_else(|| "function".into())
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "anonymous" => AuthLevel::Anonymous,
                    "function" => AuthLevel::Function,
                    "admin" | "system" => AuthLevel::Admin,
                    other => return Err(invalid(format!("unknown authLevel {other:?}"))),
                };
                let methods = get(binding, "methods")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_ascii_uppercase)
                            .collect()
                    })
                    .unwrap_or_default();
                let route = text("route")
                    .unwrap_or_else(|| name.to_string())
                    .trim_matches('/')
                    .to_string();
                trigger = Some(Trigger::Http {
                    name: binding_name,
                    auth_level,
                    methods,
                    route,
                });
            }
            ("timertrigger", _) => {
                let raw = text("schedule")
                    .ok_or_else(|| invalid(format!("timer {binding_name} has no schedule")))?;
                let schedule = resolve(&raw, lookup).map_err(FunctionError::Unresolved)?;
                crate::schedule::parse_schedule(&schedule).map_err(|e| {
                    invalid(format!(
                        "the schedule {schedule:?} is not an NCRONTAB expression with seconds: {e}"
                    ))
                })?;
                trigger = Some(Trigger::Timer {
                    name: binding_name,
                    schedule,
                    run_on_startup: get(binding, "runOnStartup").and_then(Value::as_bool)
                        == Some(true),
                });
            }
            ("queuetrigger", _) => {
                trigger = Some(Trigger::Queue {
                    queue: queue_name()?,
                    name: binding_name,
                    connection,
                });
            }
            ("queue", "out") => outputs.push(Output {
                kind: OutputKind::Queue {
                    queue: queue_name()?,
                    connection,
                },
                name: binding_name,
            }),
            ("http", "out") => outputs.push(Output {
                name: binding_name,
                kind: OutputKind::Http,
            }),
            (_, "out") => outputs.push(Output {
                name: binding_name,
                kind: OutputKind::Unsupported { binding_type },
            }),
            (other, _) => {
                return Err(invalid(format!(
                "binding {binding_name}: type {other} ({direction}) is not supported by this host"
            )))
            }
        }
    }
    let trigger = trigger.ok_or_else(|| invalid("there is no trigger binding".to_string()))?;
    Ok(Function {
        name: name.to_string(),
        trigger,
        outputs,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timespans_parse_as_dotnet_writes_them() {
        assert_eq!(parse_timespan("00:30:00"), Some(Duration::from_secs(1800)));
        assert_eq!(
            parse_timespan("00:00:00.5"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_timespan("1.02:00:00"),
            Some(Duration::from_secs(26 * 3600))
        );
        assert_eq!(parse_timespan("10 minutes"), None);
    }

    #[test]
    fn settings_resolve_and_unset_ones_are_named() {
        let lookup = |name: &str| (name == "S").then(|| "0 */15 * * * *".to_string());
        assert_eq!(resolve("%S%", &lookup).unwrap(), "0 */15 * * * *");
        assert!(resolve("%T%", &lookup).unwrap_err().contains("T is unset"));
        assert_eq!(expand_command("a %T% b", &lookup), "a  b");
    }
}
