//! Connection settings of a storage queue service, parsed once from a lookup (the binaries pass
//! `std::env::var`, as the Functions host reads app settings), for a connection prefix such as
//! `AzureWebJobsStorage` (the `connection` of a queue binding).
//!
//! | Setting | Meaning |
//! | --- | --- |
//! | `<prefix>__queueServiceUri` | the queue service URL, `https://…` (identity-based connection, as the Functions host reads it); a URL whose query holds a SAS (`sig=`) is used as it is, with no credential |
//! | `<prefix>__blobServiceUri` | the blob service URL, read the same way (the Functions runtime reads it beside the queue's for its own leases); optional: without it there is no blob service |
//! | `<prefix>__accountName` | instead of the URLs: `https://<name>.queue.core.windows.net` and `https://<name>.blob.core.windows.net` |
//! | `<prefix>__credential` | `managedidentity`: `azure_identity`'s `ManagedIdentityCredential`; absent: the developer tools credential (Azure CLI) |
//! | `<prefix>__clientId` | the user-assigned managed identity (with `managedidentity` only) |
//! | `<prefix>` | instead of the above: a SAS connection string `QueueEndpoint=https://…;SharedAccessSignature=sv=…` (and `BlobEndpoint=https://…` for the blob service) |
//! | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` | the App Service managed identity endpoint (set by the platform, or by `hubspoke sim`); both or neither |
//! | `HUBSPOKE_CA_CERT` | a PEM file of certificates trusted besides the usual roots (the simulator's, Azurite's: it may hold several) |
//!
//! Account keys (`AccountKey=`, `UseDevelopmentStorage=true`) are refused with a clear error:
//! `azure_storage_queue` 1.x speaks Entra tokens and SAS only. A bad value is a [`SettingError`]
//! naming the setting, and nothing is connected. This module opens no connection.
use std::path::PathBuf;

/// A setting with a bad value. The value is not repeated when it may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting} is invalid: {reason}")]
pub struct SettingError {
    /// The full name of the setting (`AzureWebJobsStorage__queueServiceUri`).
    pub setting: String,
    /// What is wrong, quoting the value when it is not secret.
    pub reason: String,
}

/// A secret string (a SAS query, the identity header): usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests are authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageAuth {
    /// Entra tokens from `azure_identity`'s managed identity credential.
    ManagedIdentity {
        /// `<prefix>__clientId`: a user-assigned identity; the system-assigned one otherwise.
        client_id: Option<String>,
        /// The App Service endpoint and its header, when the environment names them.
        app_service: Option<AppServiceIdentity>,
    },
    /// Entra tokens from the developer's tools (Azure CLI).
    DeveloperTools,
    /// A shared access signature carried in the query of every request; no token.
    Sas(Secret),
}

/// The App Service managed identity endpoint (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppServiceIdentity {
    /// `IDENTITY_ENDPOINT`.
    pub endpoint: String,
    /// `IDENTITY_HEADER`, a secret of the platform.
    pub header: Secret,
}

/// Everything needed to reach one queue service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// The connection prefix the settings were read with (for messages).
    pub prefix: String,
    /// The queue service URL without query or trailing slash (`https://acct.queue.core.windows.net`,
    /// `https://127.0.0.1:10001/devstoreaccount1`). Never holds a secret.
    pub service_url: String,
    /// How requests are authorised.
    pub auth: StorageAuth,
    /// The blob service of the same account, when the settings name one
    /// (`<prefix>__blobServiceUri`, `<prefix>__accountName`, or `BlobEndpoint=` in a SAS
    /// connection string).
    pub blob: Option<BlobEndpoint>,
    /// `HUBSPOKE_CA_CERT`: extra trusted certificates.
    pub ca_cert: Option<PathBuf>,
}

/// The blob service of a storage connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEndpoint {
    /// The blob service URL without query or trailing slash
    /// (`https://acct.blob.core.windows.net`, `https://127.0.0.1:10000/devstoreaccount1`).
    pub service_url: String,
    /// A SAS for the blob service, when the connection is a SAS; `None` with a credential.
    pub sas: Option<Secret>,
}

/// The connection prefix of the Functions host's own storage, which every queue binding of
/// hubspoke names.
pub const DEFAULT_CONNECTION: &str = "AzureWebJobsStorage";

impl StorageSettings {
    /// Reads the connection `prefix` through `lookup` (empty values count as unset).
    pub fn from_lookup(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let name = |suffix: &str| format!("{prefix}__{suffix}");
        let ca_cert = match get("HUBSPOKE_CA_CERT") {
            Some(path) => Some(check_ca_cert(&path)?),
            None => None,
        };

        let uri_setting = name("queueServiceUri");
        let account_setting = name("accountName");
        let blob_setting = name("blobServiceUri");
        let mut blob = match get(&blob_setting) {
            Some(uri) => {
                let (service_url, sas) = parse_service_url(&blob_setting, &uri)?;
                Some(BlobEndpoint { service_url, sas })
            }
            None => None,
        };
        let (service_url, sas) = match (get(&uri_setting), get(&account_setting), get(prefix)) {
            (Some(uri), _, _) => parse_service_url(&uri_setting, &uri)?,
            (None, Some(account), _) => {
                if !valid_account_name(&account) {
                    return Err(error(
                        &account_setting,
                        format!(
                            "{account:?} is not a storage account name (3-24 lower-case letters \
                             and digits)"
                        ),
                    ));
                }
                if blob.is_none() {
                    blob = Some(BlobEndpoint {
                        service_url: format!("https://{account}.blob.core.windows.net"),
                        sas: None,
                    });
                }
                (format!("https://{account}.queue.core.windows.net"), None)
            }
            (None, None, Some(connection_string)) => {
                if blob.is_none() {
                    blob = blob_endpoint_of_connection_string(prefix, &connection_string)?;
                }
                parse_connection_string(prefix, &connection_string)?
            }
            (None, None, None) => {
                return Err(error(
                    &uri_setting,
                    format!(
                        "it is required (the queue service URL, e.g. \
                         https://<account>.queue.core.windows.net), unless {account_setting} or a \
                         SAS connection string in {prefix} is given"
                    ),
                ))
            }
        };

        let credential_setting = name("credential");
        let client_id_setting = name("clientId");
        // A blob URL without a SAS beside a SAS queue URL would have no authorisation at all.
        if let (Some(_), Some(endpoint)) = (&sas, &blob) {
            if endpoint.sas.is_none() {
                return Err(error(
                    &blob_setting,
                    "the queue service is reached with a SAS: the blob service URL needs its own \
                     SAS too (or use a credential for both)"
                        .to_string(),
                ));
            }
        }
        if let (None, Some(endpoint)) = (&sas, &blob) {
            if endpoint.sas.is_some() {
                return Err(error(
                    &blob_setting,
                    "a SAS here while the queue service uses a credential: give both services \
                     the same kind of authorisation"
                        .to_string(),
                ));
            }
        }
        let auth =
            match (sas, get(&credential_setting)) {
                (Some(sas), None) => StorageAuth::Sas(sas),
                (Some(_), Some(_)) => return Err(error(
                    &credential_setting,
                    "a SAS URL carries its own authorisation: give either a SAS or a credential"
                        .to_string(),
                )),
                (None, Some(kind)) if kind.eq_ignore_ascii_case("managedidentity") => {
                    StorageAuth::ManagedIdentity {
                        client_id: get(&client_id_setting),
                        app_service: app_service_identity(&get)?,
                    }
                }
                (None, Some(kind)) => {
                    return Err(error(
                        &credential_setting,
                        format!(
                        "{kind:?} is not supported: use managedidentity, or leave it unset for \
                         the developer tools credential"
                    ),
                    ))
                }
                (None, None) => StorageAuth::DeveloperTools,
            };
        if get(&client_id_setting).is_some() && !matches!(auth, StorageAuth::ManagedIdentity { .. })
        {
            return Err(error(
                &client_id_setting,
                format!("it only applies with {credential_setting}=managedidentity"),
            ));
        }
        Ok(StorageSettings {
            prefix: prefix.to_string(),
            service_url,
            auth,
            blob,
            ca_cert,
        })
    }

    /// Settings for one queue service URL given directly (`hubspoke results --queue-url`): a
    /// URL with a SAS query is used as it is; without, the credential is the developer tools'
    /// unless `<prefix>__credential` says `managedidentity`. Other settings (certificates,
    /// identity endpoint) still come from `lookup`. `setting` names the URL's origin in errors
    /// (`--queue-url`).
    pub fn from_url(
        setting: &str,
        url: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingError> {
        let prefix = DEFAULT_CONNECTION;
        let uri_setting = format!("{prefix}__queueServiceUri");
        let overridden = |name: &str| {
            if name == uri_setting {
                Some(url.to_string())
            } else if name == prefix
                || name == format!("{prefix}__accountName")
                || name == format!("{prefix}__blobServiceUri")
            {
                None
            } else {
                lookup(name)
            }
        };
        StorageSettings::from_lookup(prefix, overridden).map_err(|mut e| {
            if e.setting == uri_setting {
                e.setting = setting.to_string();
            }
            e
        })
    }
}

impl StorageSettings {
    /// Settings and queue name for one queue URL given directly
    /// (`https://acct.queue.core.windows.net/hubspoke-outcomes?sv=…&sig=…`): the last path
    /// segment is the queue, the rest the service, as [`StorageSettings::from_url`] reads it.
    pub fn from_queue_url(
        setting: &str,
        url: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, String), SettingError> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let trimmed = base.trim_end_matches('/');
        let split = trimmed.rsplit_once('/').filter(|(service, queue)| {
            !queue.is_empty() && service.contains("://") && !service.ends_with('/')
        });
        let Some((service, queue)) = split else {
            return Err(error(
                setting,
                format!("{trimmed:?} is not a queue URL (https://<account>.queue.core.windows.net/<queue>)"),
            ));
        };
        let service_url = match query {
            Some(query) => format!("{service}?{query}"),
            None => service.to_string(),
        };
        let settings = StorageSettings::from_url(setting, &service_url, lookup)?;
        Ok((settings, queue.to_string()))
    }
}

fn error(setting: &str, reason: String) -> SettingError {
    SettingError {
        setting: setting.to_string(),
        reason,
    }
}

fn app_service_identity(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<AppServiceIdentity>, SettingError> {
    match (get("IDENTITY_ENDPOINT"), get("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => {
            let url = reqwest::Url::parse(&endpoint).map_err(|e| {
                error(
                    "IDENTITY_ENDPOINT",
                    format!("{endpoint:?} is not a URL: {e}"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(error(
                    "IDENTITY_ENDPOINT",
                    format!("{endpoint:?} must be an http(s) URL"),
                ));
            }
            Ok(Some(AppServiceIdentity {
                endpoint,
                header: Secret::new(header),
            }))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(error(
            "IDENTITY_HEADER",
            "it is required when IDENTITY_ENDPOINT is set (App Service managed identity)"
                .to_string(),
        )),
        (None, Some(_)) => Err(error(
            "IDENTITY_ENDPOINT",
            "it is required when IDENTITY_HEADER is set (App Service managed identity)".to_string(),
        )),
    }
}

/// `https://host[:port][/account]`, no fragment; a query must be a SAS (it holds `sig=`).
/// Returns the URL without query or trailing slash, and the SAS.
fn parse_service_url(setting: &str, text: &str) -> Result<(String, Option<Secret>), SettingError> {
    // The value is only quoted once it is known to hold no signature.
    let (base, query) = match text.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (text, None),
    };
    let shown = if query.is_some() {
        format!("{base}?<redacted>")
    } else {
        text.to_string()
    };
    let url = reqwest::Url::parse(base)
        .map_err(|e| error(setting, format!("{shown:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(error(
            setting,
            format!(
                "{shown:?} must start with https:// (the queue client sends tokens and \
                 signatures over HTTPS only)"
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(error(setting, format!("{shown:?} has no host")));
    }
    if url.fragment().is_some() {
        return Err(error(
            setting,
            format!("{shown:?} must not have a fragment"),
        ));
    }
    let sas = match query {
        None => None,
        Some(query) => {
            let is_sas = query.split('&').any(|pair| pair.starts_with("sig="));
            if !is_sas {
                return Err(error(
                    setting,
                    format!(
                        "{shown:?} has a query that is not a shared access signature (no sig=)"
                    ),
                ));
            }
            Some(Secret::new(query.to_string()))
        }
    };
    Ok((base.trim_end_matches('/').to_string(), sas))
}

/// The SAS form of a storage connection string. Keys are refused: the SDK cannot use them.
fn parse_connection_string(
    setting: &str,
    text: &str,
) -> Result<(String, Option<Secret>), SettingError> {
    let mut endpoint = None;
    let mut signature = None;
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "queueendpoint" => endpoint = Some(value.trim().to_string()),
            "sharedaccesssignature" => signature = Some(value.trim().to_string()),
            "accountkey" | "usedevelopmentstorage" => {
                return Err(error(
                    setting,
                    "account keys are not supported (azure_storage_queue speaks Entra tokens and \
                     SAS only): use the identity-based connection \
                     (__queueServiceUri, __credential, __clientId) or a SAS"
                        .to_string(),
                ))
            }
            _ => {}
        }
    }
    match (endpoint, signature) {
        (Some(endpoint), Some(signature)) => {
            let url = format!(
                "{}?{}",
                endpoint.trim_end_matches('/'),
                signature.trim_start_matches('?')
            );
            parse_service_url(setting, &url)
        }
        _ => Err(error(
            setting,
            "a connection string must hold QueueEndpoint=https://… and SharedAccessSignature=…"
                .to_string(),
        )),
    }
}

/// The blob service of a SAS connection string (`BlobEndpoint=` with its `SharedAccessSignature=`),
/// if it names one.
fn blob_endpoint_of_connection_string(
    setting: &str,
    text: &str,
) -> Result<Option<BlobEndpoint>, SettingError> {
    let mut endpoint = None;
    let mut signature = None;
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "blobendpoint" => endpoint = Some(value.trim().to_string()),
            "sharedaccesssignature" => signature = Some(value.trim().to_string()),
            _ => {}
        }
    }
    match (endpoint, signature) {
        (Some(endpoint), Some(signature)) => {
            let url = format!(
                "{}?{}",
                endpoint.trim_end_matches('/'),
                signature.trim_start_matches('?')
            );
            let (service_url, sas) = parse_service_url(setting, &url)?;
            Ok(Some(BlobEndpoint { service_url, sas }))
        }
        _ => Ok(None),
    }
}

fn valid_account_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The CA file must exist and hold at least one PEM certificate.
fn check_ca_cert(path: &str) -> Result<PathBuf, SettingError> {
    read_ca_cert(std::path::Path::new(path)).map_err(|reason| error("HUBSPOKE_CA_CERT", reason))?;
    Ok(PathBuf::from(path))
}

/// Reads the certificates of a PEM bundle.
pub(crate) fn read_ca_cert(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&bytes) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) => Err(format!("{} holds no PEM certificate", path.display())),
        Err(e) => Err(format!(
            "{} is not a PEM certificate file: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<StorageSettings, SettingError> {
        StorageSettings::from_lookup(DEFAULT_CONNECTION, |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn identity_based_connection_with_a_user_assigned_identity() {
        let s = settings(&[
            (
                "AzureWebJobsStorage__queueServiceUri",
                "https://acct.queue.core.windows.net/",
            ),
            ("AzureWebJobsStorage__credential", "managedidentity"),
            ("AzureWebJobsStorage__clientId", "c1"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", "top-secret"),
        ])
        .unwrap();
        assert_eq!(s.service_url, "https://acct.queue.core.windows.net");
        assert!(matches!(
            &s.auth,
            StorageAuth::ManagedIdentity { client_id: Some(c), app_service: Some(_) } if c == "c1"
        ));
        assert!(!format!("{s:?}").contains("top-secret"));
    }

    #[test]
    fn without_a_credential_the_developer_tools_are_used() {
        let s = settings(&[("AzureWebJobsStorage__accountName", "acct")]).unwrap();
        assert_eq!(s.service_url, "https://acct.queue.core.windows.net");
        assert_eq!(s.auth, StorageAuth::DeveloperTools);
    }

    #[test]
    fn a_sas_url_is_kept_secret() {
        let s = settings(&[(
            "AzureWebJobsStorage__queueServiceUri",
            "https://acct.queue.core.windows.net?sv=2024-11-04&sig=SECRETSIG",
        )])
        .unwrap();
        assert_eq!(s.service_url, "https://acct.queue.core.windows.net");
        assert!(matches!(s.auth, StorageAuth::Sas(_)));
        assert!(!format!("{s:?}").contains("SECRETSIG"));
        assert!(
            matches!(&s.auth, StorageAuth::Sas(q) if q.expose() == "sv=2024-11-04&sig=SECRETSIG")
        );
        let s = settings(&[(
            "AzureWebJobsStorage",
            "QueueEndpoint=https://acct.queue.core.windows.net/;SharedAccessSignature=sv=1&sig=S2",
        )])
        .unwrap();
        assert!(matches!(s.auth, StorageAuth::Sas(_)));
    }

    #[test]
    fn a_bad_value_names_its_setting_and_hides_signatures() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "AzureWebJobsStorage__queueServiceUri"),
            (
                &[(
                    "AzureWebJobsStorage__queueServiceUri",
                    "http://acct.queue.core.windows.net",
                )],
                "AzureWebJobsStorage__queueServiceUri",
            ),
            (
                &[("AzureWebJobsStorage__queueServiceUri", "not a url")],
                "AzureWebJobsStorage__queueServiceUri",
            ),
            (
                &[("AzureWebJobsStorage__queueServiceUri", "https://a.b/?x=1")],
                "AzureWebJobsStorage__queueServiceUri",
            ),
            (
                &[
                    ("AzureWebJobsStorage__queueServiceUri", "https://a.b/"),
                    ("AzureWebJobsStorage__credential", "password"),
                ],
                "AzureWebJobsStorage__credential",
            ),
            (
                &[
                    ("AzureWebJobsStorage__queueServiceUri", "https://a.b/"),
                    ("AzureWebJobsStorage__clientId", "c1"),
                ],
                "AzureWebJobsStorage__clientId",
            ),
            (
                &[
                    ("AzureWebJobsStorage__queueServiceUri", "https://a.b/"),
                    ("AzureWebJobsStorage__credential", "managedidentity"),
                    ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/"),
                ],
                "IDENTITY_HEADER",
            ),
            (
                &[("AzureWebJobsStorage", "UseDevelopmentStorage=true")],
                "AzureWebJobsStorage",
            ),
            (
                &[("AzureWebJobsStorage__accountName", "Not_An_Account")],
                "AzureWebJobsStorage__accountName",
            ),
            (
                &[
                    ("AzureWebJobsStorage__queueServiceUri", "https://a.b/"),
                    ("HUBSPOKE_CA_CERT", "/nonexistent/ca.pem"),
                ],
                "HUBSPOKE_CA_CERT",
            ),
        ];
        for (pairs, setting) in cases {
            let e = settings(pairs).unwrap_err();
            assert_eq!(e.setting, *setting, "{pairs:?}: {e}");
        }
        let e = settings(&[(
            "AzureWebJobsStorage__queueServiceUri",
            "http://a.b/?sv=1&sig=SECRETSIG",
        )])
        .unwrap_err();
        assert!(!e.to_string().contains("SECRETSIG"), "{e}");
    }

    #[test]
    fn a_queue_url_is_split_into_service_and_queue() {
        let (s, queue) = StorageSettings::from_queue_url(
            "--queue-url",
            "https://acct.queue.core.windows.net/hubspoke-outcomes?sv=1&sig=S",
            |_| None,
        )
        .unwrap();
        assert_eq!(s.service_url, "https://acct.queue.core.windows.net");
        assert_eq!(queue, "hubspoke-outcomes");
        assert!(matches!(s.auth, StorageAuth::Sas(_)));
        let (s, queue) = StorageSettings::from_queue_url(
            "--queue-url",
            "https://127.0.0.1:10001/devstoreaccount1/hubspoke-outcomes",
            |_| None,
        )
        .unwrap();
        assert_eq!(s.service_url, "https://127.0.0.1:10001/devstoreaccount1");
        assert_eq!(queue, "hubspoke-outcomes");
        let e = StorageSettings::from_queue_url(
            "--queue-url",
            "https://acct.queue.core.windows.net/",
            |_| None,
        )
        .unwrap_err();
        assert_eq!(e.setting, "--queue-url");
    }

    #[test]
    fn a_url_given_directly_is_named_by_its_option() {
        let e = StorageSettings::from_url("--queue-url", "ftp://x", |_| None).unwrap_err();
        assert_eq!(e.setting, "--queue-url");
        let s = StorageSettings::from_url("--queue-url", "https://a.b/?sig=X", |_| None).unwrap();
        assert!(matches!(s.auth, StorageAuth::Sas(_)));
    }
}
