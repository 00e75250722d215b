//! The ARM client's settings, parsed once at start-up from a lookup (the binary passes
//! `std::env::var`); a bad value is a [`SettingError`] naming the setting, and the process stops.
//!
//! Settings read (docs/design.md §5):
//!
//! | Setting | Meaning | Default |
//! | --- | --- | --- |
//! | `HUBSPOKE_ARM_ENDPOINT` | ARM base URL, `http://` or `https://` (the simulator's, in tests) | `https://management.azure.com` |
//! | `HUBSPOKE_CA_CERT` | a PEM file of extra trusted certificates (the simulator's self-signed one); must exist and hold at least one certificate | none: Azure's certificates need nothing |
//! | `AZURE_CLIENT_ID` | client id of a user-assigned managed identity | the system-assigned identity |
//! | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` | App Service / Functions managed identity endpoint and its secret (set by the host, or by `hubspoke sim`); both or neither | developer tools (Azure CLI) |
//! | `HUBSPOKE_ARM_MAX_ATTEMPTS` | sends of one request, the first included (integer ≥ 1) | 8 |
//! | `HUBSPOKE_ARM_RETRY_BUDGET_SECONDS` | total time spent waiting between retries of one request (integer ≥ 0) | 300 |
//!
//! The Network RP api-version is pinned, not configured: [`API_VERSION`] (`2024-05-01`). Every
//! property hubspoke reads and writes (peerings' `remoteAddressSpace`/`peeringSyncLevel`,
//! `syncRemoteAddressSpace`, routes, subnets' `routeTable`) exists in it, and since 2023-09-01 a
//! VNet PUT without `subnets` keeps them.
//!
//! This module does not read the environment itself, nor open the CA file for TLS (the client
//! does, from the path); it only checks that the file is usable, so that a bad path stops start-up
//! rather than the first request.
use std::path::PathBuf;
use std::time::Duration;

use hubspoke_core::config::SettingError;

use crate::pacer::PacingSettings;

/// The ARM endpoint of Azure's public cloud.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

/// The Network resource provider api-version every request carries.
pub const API_VERSION: &str = "2024-05-01";

/// Everything the ARM client needs to know, parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct ArmSettings {
    /// `HUBSPOKE_ARM_ENDPOINT`, without a trailing slash.
    pub endpoint: String,
    /// `HUBSPOKE_CA_CERT`: a PEM file of certificates trusted in addition to the usual roots.
    pub ca_cert: Option<PathBuf>,
    /// `AZURE_CLIENT_ID`: the user-assigned managed identity to use.
    pub client_id: Option<String>,
    /// Where tokens come from.
    pub identity: IdentitySource,
    /// The Network RP api-version appended to every request ([`API_VERSION`]).
    pub api_version: String,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// Limit on one HTTP request, connection to last byte.
    pub request_timeout: Duration,
    /// Limit on one whole long-running operation, from the first send to the final GET.
    pub operation_timeout: Duration,
    /// What the pacer assumes of each subscription's budget before Azure's answers say more:
    /// ARM's published buckets (not a setting: the answers correct it).
    pub pacing: PacingSettings,
    /// The largest answer body read from ARM ([`MAX_ANSWER_BYTES`]); a larger one is refused
    /// as it arrives, never held whole.
    pub max_answer_bytes: usize,
}

/// The largest answer body hubspoke reads from ARM: 64 MiB. A list page of a thousand VNets with
/// their subnets and peerings inline is a few MiB; anything near this is not an answer hubspoke
/// can use, and reading it whole would only risk the process's memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Where the credential gets its tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// The App Service managed identity protocol (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), as
    /// Azure Functions and the simulator serve it.
    AppService { endpoint: String, header: String },
    /// A workstation: the developer's Azure CLI login.
    DeveloperTools,
}

/// Bounds on retrying one request. Delays are capped exponential with full jitter, and never
/// shorter than a `Retry-After` the answer gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends of one request, the first included. A fault that never clears is sent this many times.
    pub max_attempts: u32,
    /// Ceiling of the first retry delay; it doubles per retry up to `max_delay`. Also the polling
    /// interval of a long-running operation whose answer gives no `Retry-After` (or gives 0).
    pub base_delay: Duration,
    /// Ceiling of any computed delay (a longer `Retry-After` is still honoured).
    pub max_delay: Duration,
    /// Total time spent waiting to retry one request; a retry that would exceed it is not made.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            budget: Duration::from_secs(300),
        }
    }
}

impl Default for ArmSettings {
    /// Azure's public cloud, developer tools credential, default retry policy and timeouts.
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            ca_cert: None,
            client_id: None,
            identity: IdentitySource::DeveloperTools,
            api_version: API_VERSION.to_string(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(15 * 60),
            pacing: PacingSettings::default(),
            max_answer_bytes: MAX_ANSWER_BYTES,
        }
    }
}

// The identity header is a secret of the host (it guards the token endpoint): never printed.
impl std::fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentitySource::AppService { endpoint, .. } => f
                .debug_struct("AppService")
                .field("endpoint", endpoint)
                .field("header", &"<redacted>")
                .finish(),
            IdentitySource::DeveloperTools => f.write_str("DeveloperTools"),
        }
    }
}

impl std::fmt::Debug for ArmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmSettings")
            .field("endpoint", &self.endpoint)
            .field("ca_cert", &self.ca_cert)
            .field("client_id", &self.client_id)
            .field("identity", &self.identity)
            .field("api_version", &self.api_version)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("pacing", &self.pacing)
            .finish()
    }
}

impl ArmSettings {
    /// Parses the settings from `lookup` (empty values count as unset).
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let mut settings = ArmSettings::default();

        if let Some(endpoint) = get("HUBSPOKE_ARM_ENDPOINT") {
            settings.endpoint = parse_endpoint("HUBSPOKE_ARM_ENDPOINT", &endpoint)?;
        }
        if let Some(path) = get("HUBSPOKE_CA_CERT") {
            settings.ca_cert = Some(check_ca_cert(&path)?);
        }
        settings.client_id = get("AZURE_CLIENT_ID");
        settings.identity =
            match (get("IDENTITY_ENDPOINT"), get("IDENTITY_HEADER")) {
                (Some(endpoint), Some(header)) => IdentitySource::AppService {
                    endpoint: parse_endpoint("IDENTITY_ENDPOINT", &endpoint)?,
                    header,
                },
                (None, None) => IdentitySource::DeveloperTools,
                // Half an App Service identity is a broken host configuration; falling back to the
                // Azure CLI would only fail later and more obscurely.
                (Some(_), None) => return Err(setting_error(
                    "IDENTITY_HEADER",
                    "",
                    "it is required when IDENTITY_ENDPOINT is set (App Service managed identity)",
                )),
                (None, Some(_)) => {
                    return Err(setting_error(
                        "IDENTITY_ENDPOINT",
                        "",
                        "it is required when IDENTITY_HEADER is set (App Service managed identity)",
                    ))
                }
            };
        if let Some(text) = get("HUBSPOKE_ARM_MAX_ATTEMPTS") {
            settings.retry.max_attempts = match text.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(setting_error(
                        "HUBSPOKE_ARM_MAX_ATTEMPTS",
                        &text,
                        "it must be a whole number of at least 1",
                    ))
                }
            };
        }
        if let Some(text) = get("HUBSPOKE_ARM_RETRY_BUDGET_SECONDS") {
            let seconds = text.parse::<u64>().map_err(|_| {
                setting_error(
                    "HUBSPOKE_ARM_RETRY_BUDGET_SECONDS",
                    &text,
                    "it must be a whole number of seconds",
                )
            })?;
            settings.retry.budget = Duration::from_secs(seconds);
        }
        Ok(settings)
    }
}

fn setting_error(setting: &'static str, value: &str, reason: &str) -> SettingError {
    SettingError {
        setting,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// An `http(s)://host[:port][/path]` URL without query, trailing slash removed.
fn parse_endpoint(setting: &'static str, text: &str) -> Result<String, SettingError> {
    let trimmed = text.trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|error| setting_error(setting, text, &format!("it is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(setting_error(
            setting,
            text,
            "it must start with https:// (or http://)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(setting_error(setting, text, "it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(setting_error(
            setting,
            text,
            "it must not carry a query or fragment",
        ));
    }
    Ok(trimmed.to_string())
}

/// The CA file must exist and hold at least one PEM certificate.
fn check_ca_cert(path: &str) -> Result<PathBuf, SettingError> {
    let bytes = std::fs::read(path).map_err(|error| {
        setting_error(
            "HUBSPOKE_CA_CERT",
            path,
            &format!("cannot read it: {error}"),
        )
    })?;
    match reqwest::Certificate::from_pem_bundle(&bytes) {
        Ok(certificates) if !certificates.is_empty() => Ok(PathBuf::from(path)),
        Ok(_) => Err(setting_error(
            "HUBSPOKE_CA_CERT",
            path,
            "it holds no PEM certificate",
        )),
        Err(error) => Err(setting_error(
            "HUBSPOKE_CA_CERT",
            path,
            &format!("it is not a PEM certificate file: {error}"),
        )),
    }
}

/// Reads the certificates of a CA file checked by [`ArmSettings::from_settings`].
pub(crate) fn read_ca_cert(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certificates)
}
