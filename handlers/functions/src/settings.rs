//! The handler's settings, read once at start-up from a lookup (the binary passes the process
//! environment: in Azure, the app settings). A bad value stops start-up with a message naming
//! the setting (docs/design.md §5); nothing half-starts.
//!
//! | Setting | Meaning |
//! | --- | --- |
//! | `FUNCTIONS_CUSTOMHANDLER_PORT` | the port the host calls (set by the host; required) |
//! | `HUBSPOKE_HUBS` and the planner's settings | [`PlanConfig::from_settings`] |
//! | `HUBSPOKE_SUBSCRIPTIONS` (a list, or `*`), `HUBSPOKE_MANAGEMENT_GROUPS` (never both), `HUBSPOKE_DRY_RUN` | [`ReconcileOptions::from_settings`] |
//! | `HUBSPOKE_ARM_ENDPOINT`, `HUBSPOKE_CA_CERT`, `AZURE_CLIENT_ID`, ... | [`ArmSettings::from_settings`] |
//! | `HUBSPOKE_PASS_TIME_LIMIT_SECONDS` | no change of a `ReconcileHub` pass starts after this (default 600, less when `functionTimeout` requires); the rest continues in a new pass ([`crate::timing`]) |
//! | `functionTimeout` (`AzureFunctionsJobHost__functionTimeout`, or `host.json` under `FUNCTIONS_APP_ROOT_PATH`) | read as the host reads it: the bound every invocation keeps ([`crate::timing`]) |
//! | `HUBSPOKE_LEASE_RENEW_SECONDS` | how often a pass renews its hub's 60-second lease (default 20, from 1 to 40): a lease broken from outside is noticed within this, or as the pass ends |
//! | `WEBSITE_INSTANCE_ID` | the instance's id (set by the platform, and by the local host), in outcomes and on the leases; a random one when unset |
//! | `HUBSPOKE_BACKFILL_ANSWER_SECONDS` | how long `Backfill` observes before it answers 202 and leaves the plan to `ReconcileHub` (default 200, at most 220: Azure cuts an HTTP trigger at 230 s) |
//! | `HUBSPOKE_SELF_PRINCIPAL_ID` | the object id of hubspoke's identity: events it caused start no pass |
//! | `HUBSPOKE_DRIFT_SCHEDULE` | read by the host for `DriftCheck`; checked here so a typo stops start-up |
//! | `AzureWebJobsStorage__queueServiceUri` (or `__accountName`), `__credential`, `__clientId` | the host's storage, where the handler writes the outcomes of failed invocations itself |
//! | `AzureWebJobsStorage__blobServiceUri` | the same account's blob service, where a pass holds its hub's lease ([`crate::lease`]); without it, passes are coordinated within one instance only (a warning at start-up) |
use std::time::Duration;

use hubspoke_arm::reconcile::ReconcileOptions;
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::{PlanConfig, SettingError};
use hubspoke_queue::StorageSettings;

/// A setting with a bad value: the planner's, the ARM client's or the handler's own, or the
/// storage connection's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Storage(#[from] hubspoke_queue::SettingError),
}

impl SettingsError {
    /// The name of the bad setting.
    pub fn setting(&self) -> &str {
        match self {
            SettingsError::Setting(error) => error.setting,
            SettingsError::Storage(error) => &error.setting,
        }
    }
}

pub use crate::timing::{DEFAULT_PASS_TIME_LIMIT, MAX_PASS_TIME_LIMIT};

/// How often a pass renews its hub's lease by default: a third of the lease, so that two
/// renewals may fail before it runs out.
pub const DEFAULT_LEASE_RENEW: Duration = Duration::from_secs(20);

/// How long `Backfill` observes before it answers: Azure cuts an HTTP trigger at 230 seconds
/// (the front end's idle timeout), so an estate that takes longer is answered 202 and planned by
/// `ReconcileHub` instead.
pub const DEFAULT_BACKFILL_ANSWER_LIMIT: Duration = Duration::from_secs(200);

/// The largest `HUBSPOKE_BACKFILL_ANSWER_SECONDS`: room left under the 230 seconds to answer.
pub const MAX_BACKFILL_ANSWER_LIMIT: Duration = Duration::from_secs(220);

/// Everything the handler needs, parsed once.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`.
    pub port: u16,
    pub plan: PlanConfig,
    pub reconcile: ReconcileOptions,
    pub arm: ArmSettings,
    /// `HUBSPOKE_SELF_PRINCIPAL_ID`, lower-cased.
    pub self_principal_id: Option<String>,
    /// `HUBSPOKE_DRIFT_SCHEDULE`, when set (checked, not used: the host fires the timer).
    pub drift_schedule: Option<String>,
    /// `HUBSPOKE_BACKFILL_ANSWER_SECONDS`: how long Backfill observes before it answers
    /// ([`DEFAULT_BACKFILL_ANSWER_LIMIT`]).
    pub backfill_answer_limit: Duration,
    /// The host's storage (`AzureWebJobsStorage`), when the handler can reach its queues (and,
    /// with `storage.blob`, its blob service for the hubs' leases).
    pub storage: Option<StorageSettings>,
    /// The pass time limit, the pass's hard end and the `functionTimeout` they keep.
    pub timing: crate::timing::PassTiming,
    /// `HUBSPOKE_LEASE_RENEW_SECONDS`.
    pub lease_renew: Duration,
    /// `WEBSITE_INSTANCE_ID`, or a random id for this process.
    pub instance_id: String,
    /// Why the storage is not used although a connection is set, for a warning at start-up.
    pub storage_note: Option<String>,
}

impl HandlerSettings {
    /// Parses every setting through `lookup`; empty values count as unset.
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let port_text = get("FUNCTIONS_CUSTOMHANDLER_PORT").ok_or_else(|| SettingError {
            setting: "FUNCTIONS_CUSTOMHANDLER_PORT",
            value: String::new(),
            reason: "it is required: the Functions host sets it to the port it will call \
                     (run `hubspoke serve` from a Functions host, or set it by hand)"
                .into(),
        })?;
        let port = port_text
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| SettingError {
                setting: "FUNCTIONS_CUSTOMHANDLER_PORT",
                value: port_text.clone(),
                reason: "expected a port number from 1 to 65535".into(),
            })?;
        let plan = PlanConfig::from_settings(&lookup)?;
        let mut reconcile = ReconcileOptions::from_settings(&lookup)?;
        let function_timeout = crate::timing::function_timeout(&lookup)?;
        let timing = crate::timing::pass_timing(
            get("HUBSPOKE_PASS_TIME_LIMIT_SECONDS").as_deref(),
            function_timeout,
        )?;
        reconcile.time_limit = Some(timing.time_limit);
        let lease_renew = match get("HUBSPOKE_LEASE_RENEW_SECONDS") {
            None => DEFAULT_LEASE_RENEW,
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|seconds| (1..=40).contains(seconds))
                .map(Duration::from_secs)
                .ok_or_else(|| SettingError {
                    setting: "HUBSPOKE_LEASE_RENEW_SECONDS",
                    value: value.clone(),
                    reason: "expected whole seconds from 1 to 40 (the lease lasts 60 s: it must \
                             be renewed well before)"
                        .into(),
                })?,
        };
        let instance_id = get("WEBSITE_INSTANCE_ID")
            .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4().simple()));
        let backfill_answer_limit = match get("HUBSPOKE_BACKFILL_ANSWER_SECONDS") {
            None => DEFAULT_BACKFILL_ANSWER_LIMIT,
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|seconds| (1..=MAX_BACKFILL_ANSWER_LIMIT.as_secs()).contains(seconds))
                .map(Duration::from_secs)
                .ok_or_else(|| SettingError {
                    setting: "HUBSPOKE_BACKFILL_ANSWER_SECONDS",
                    value: value.clone(),
                    reason: format!(
                        "expected whole seconds from 1 to {} (Azure cuts an HTTP trigger at 230 \
                         seconds; Backfill must answer before)",
                        MAX_BACKFILL_ANSWER_LIMIT.as_secs()
                    ),
                })?,
        };
        let arm = ArmSettings::from_settings(&lookup)?;
        let self_principal_id = match get("HUBSPOKE_SELF_PRINCIPAL_ID") {
            None => None,
            Some(value) => Some(
                uuid::Uuid::parse_str(&value)
                    .map_err(|_| SettingError {
                        setting: "HUBSPOKE_SELF_PRINCIPAL_ID",
                        value: value.clone(),
                        reason: "expected the object (principal) id of hubspoke's managed \
                                 identity, a GUID"
                            .into(),
                    })?
                    .to_string(),
            ),
        };
        let drift_schedule = match get("HUBSPOKE_DRIFT_SCHEDULE") {
            None => None,
            Some(value) => {
                check_ncrontab(&value).map_err(|reason| SettingError {
                    setting: "HUBSPOKE_DRIFT_SCHEDULE",
                    value: value.clone(),
                    reason,
                })?;
                Some(value)
            }
        };
        let (storage, storage_note) = storage(&lookup)?;
        Ok(Self {
            port,
            plan,
            reconcile,
            arm,
            self_principal_id,
            drift_schedule,
            backfill_answer_limit,
            storage,
            storage_note,
            timing,
            lease_renew,
            instance_id,
        })
    }
}

/// The host's storage connection, as the handler may use it. An identity-based connection
/// (`AzureWebJobsStorage__queueServiceUri` or `__accountName`) must be valid: a bad one stops
/// start-up, named. A plain connection string that the queue client cannot use (an account key,
/// `UseDevelopmentStorage=true`: `azure_storage_queue` speaks Entra tokens and SAS only) leaves
/// the host working and the handler logging failed outcomes instead: a note, not an error.
fn storage(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(Option<StorageSettings>, Option<String>), SettingsError> {
    const PREFIX: &str = hubspoke_queue::settings::DEFAULT_CONNECTION;
    let set = |name: &str| lookup(name).is_some_and(|value| !value.trim().is_empty());
    let identity_based =
        set(&format!("{PREFIX}__queueServiceUri")) || set(&format!("{PREFIX}__accountName"));
    if !identity_based && !set(PREFIX) {
        return Ok((None, None));
    }
    match StorageSettings::from_lookup(PREFIX, lookup) {
        Ok(settings) => Ok((Some(settings), None)),
        Err(error) if identity_based => Err(SettingsError::Storage(error)),
        Err(error) => Ok((
            None,
            Some(format!(
                "{error}; the outcomes of failed invocations are logged, not queued"
            )),
        )),
    }
}

/// Checks a six-field NCRONTAB expression (`second minute hour day month day-of-week`), the
/// form the Functions timer trigger takes.
pub fn check_ncrontab(expression: &str) -> Result<(), String> {
    let fields = expression.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "expected six fields (second minute hour day month day-of-week), found {fields}; \
             e.g. \"0 */15 * * * *\" for every 15 minutes"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expression)
        .map(|_| ())
        .map_err(|error| format!("not a valid schedule: {error}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const HUB: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/hub";

    fn read(pairs: &[(&str, &str)]) -> Result<HandlerSettings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HandlerSettings::from_settings(|name| map.get(name).cloned())
    }

    #[test]
    fn a_complete_configuration_is_read() {
        let settings = read(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "7071"),
            ("HUBSPOKE_HUBS", HUB),
            (
                "HUBSPOKE_SELF_PRINCIPAL_ID",
                "5E1F0000-0000-4000-8000-0000000051A0",
            ),
            ("HUBSPOKE_DRIFT_SCHEDULE", "0 */15 * * * *"),
            ("HUBSPOKE_DRY_RUN", "true"),
        ])
        .unwrap();
        assert_eq!(settings.port, 7071);
        assert_eq!(settings.plan.hubs.len(), 1);
        assert!(settings.reconcile.dry_run);
        assert_eq!(settings.reconcile.time_limit, Some(DEFAULT_PASS_TIME_LIMIT));
        assert_eq!(
            settings.self_principal_id.as_deref(),
            Some("5e1f0000-0000-4000-8000-0000000051a0")
        );
    }

    #[test]
    fn the_storage_connection_is_used_when_the_queue_client_can_use_it() {
        let base = [
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "7071"),
            ("HUBSPOKE_HUBS", HUB),
        ];
        let none = read(&base).unwrap();
        assert!(none.storage.is_none() && none.storage_note.is_none());
        let mut identity = base.to_vec();
        identity.push((
            "AzureWebJobsStorage__queueServiceUri",
            "https://account.queue.core.windows.net",
        ));
        identity.push(("AzureWebJobsStorage__credential", "managedidentity"));
        let settings = read(&identity).unwrap();
        assert_eq!(
            settings.storage.unwrap().service_url,
            "https://account.queue.core.windows.net"
        );
        let mut keys = base.to_vec();
        keys.push(("AzureWebJobsStorage", "UseDevelopmentStorage=true"));
        let settings = read(&keys).unwrap();
        assert!(settings.storage.is_none());
        assert!(settings.storage_note.unwrap().contains("logged"));
    }

    #[test]
    fn every_bad_setting_is_named() {
        let base = [
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "7071"),
            ("HUBSPOKE_HUBS", HUB),
        ];
        let cases = [
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "seventy"),
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
            ("HUBSPOKE_HUBS", "not-an-id"),
            ("HUBSPOKE_SELF_PRINCIPAL_ID", "me"),
            ("HUBSPOKE_DRIFT_SCHEDULE", "*/15 * * * *"),
            ("HUBSPOKE_DRIFT_SCHEDULE", "0 61 * * * *"),
            ("HUBSPOKE_ROUTE_LIMIT", "many"),
            ("HUBSPOKE_SUBSCRIPTIONS", "a/b"),
            ("HUBSPOKE_SUBSCRIPTIONS", "*,a"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "mg/x"),
            ("HUBSPOKE_ARM_ENDPOINT", "ftp://x"),
            (
                "AzureWebJobsStorage__queueServiceUri",
                "http://plain.example",
            ),
            ("AzureWebJobsStorage__accountName", "Not An Account"),
            ("HUBSPOKE_PASS_TIME_LIMIT_SECONDS", "0"),
            ("HUBSPOKE_PASS_TIME_LIMIT_SECONDS", "1801"),
            ("HUBSPOKE_PASS_TIME_LIMIT_SECONDS", "20m"),
            ("HUBSPOKE_LEASE_RENEW_SECONDS", "0"),
            ("HUBSPOKE_LEASE_RENEW_SECONDS", "45"),
            ("AzureFunctionsJobHost__functionTimeout", "an hour"),
        ];
        for (setting, value) in cases {
            let mut pairs: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(k, _)| *k != setting)
                .collect();
            pairs.push((setting, value));
            let error = read(&pairs).unwrap_err();
            assert_eq!(error.setting(), setting, "{value}: {error}");
        }
        assert_eq!(
            read(&[("HUBSPOKE_HUBS", HUB)]).unwrap_err().setting(),
            "FUNCTIONS_CUSTOMHANDLER_PORT"
        );
        // The bound of an invocation: a function timeout too short for two passes, and a pass
        // time limit that leaves the changes in flight too little of it.
        let mut short = base.to_vec();
        short.push(("AzureFunctionsJobHost__functionTimeout", "00:01:00"));
        assert_eq!(read(&short).unwrap_err().setting(), "functionTimeout");
        let mut five_minutes = base.to_vec();
        five_minutes.push(("AzureFunctionsJobHost__functionTimeout", "00:05:00"));
        assert_eq!(
            read(&five_minutes).unwrap().reconcile.time_limit,
            Some(Duration::from_secs(45))
        );
        five_minutes.push(("HUBSPOKE_PASS_TIME_LIMIT_SECONDS", "60"));
        let error = read(&five_minutes).unwrap_err();
        assert_eq!(error.setting(), "HUBSPOKE_PASS_TIME_LIMIT_SECONDS");
        assert!(error.to_string().contains("functionTimeout"), "{error}");
    }

    #[test]
    fn a_scope_of_management_groups_is_read_and_never_with_a_subscription_list() {
        let base = [
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "7071"),
            ("HUBSPOKE_HUBS", HUB),
        ];
        let mut groups = base.to_vec();
        groups.push(("HUBSPOKE_MANAGEMENT_GROUPS", "mg-landing-zones"));
        assert_eq!(
            read(&groups).unwrap().reconcile.scope,
            hubspoke_core::config::Scope::ManagementGroups(vec!["mg-landing-zones".into()])
        );
        groups.push(("HUBSPOKE_SUBSCRIPTIONS", "*"));
        let error = read(&groups).unwrap_err().to_string();
        assert!(
            error.contains("HUBSPOKE_SUBSCRIPTIONS")
                && error.contains("HUBSPOKE_MANAGEMENT_GROUPS"),
            "{error}"
        );
    }
}
