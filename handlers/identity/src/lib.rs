//! Where hubspoke's tokens come from, for ARM and for storage alike: `azure_identity`'s
//! `ManagedIdentityCredential` in Azure (the App Service protocol that Functions serve,
//! user-assigned through a client id), its `DeveloperToolsCredential` (the Azure CLI login) on a
//! workstation. Tests use the simulator's App Service endpoint, so the production path runs in
//! tests.
//!
//! `azure_identity` 1.x reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process
//! environment only: it picks the App Service flavour when both are set, and reads the header
//! again on each token request. To honour the endpoint and header the caller's settings name
//! (several simulators in one test process, each with its own), the credential's pipeline
//! carries [`PinIdentityEndpoint`], which points every token request at those, keeping the query
//! `azure_identity` built (api-version, resource, client_id). In Azure they are the same values.
//! The flavour choice stays with the process environment: both variables must be present in it
//! when an App Service endpoint is given, else [`managed_identity`] fails instead of letting
//! `azure_identity` fall back to the VM metadata endpoint.
//!
//! This crate requests no token itself and never logs one or the header.
use std::sync::Arc;

pub use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, Url};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

/// The App Service managed identity endpoint (`IDENTITY_ENDPOINT`) and its secret header
/// (`IDENTITY_HEADER`).
#[derive(Clone, PartialEq, Eq)]
pub struct AppServiceEndpoint {
    pub endpoint: String,
    pub header: String,
}

// The header is a secret of the host: never printed.
impl std::fmt::Debug for AppServiceEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServiceEndpoint")
            .field("endpoint", &self.endpoint)
            .field("header", &"<redacted>")
            .finish()
    }
}

/// A credential that could not be made, in words for the caller's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError(pub String);

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialError {}

/// The managed identity (user-assigned when `client_id` is given), its token requests pinned to
/// `app_service` when given.
pub fn managed_identity(
    client_id: Option<String>,
    app_service: Option<&AppServiceEndpoint>,
) -> Result<Arc<dyn TokenCredential>, CredentialError> {
    let mut client_options = ClientOptions::default();
    if let Some(app_service) = app_service {
        for variable in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
            if std::env::var_os(variable).is_none_or(|value| value.is_empty()) {
                return Err(CredentialError(format!(
                    "{variable} must be set in the process environment: azure_identity chooses \
                     the App Service managed identity from it"
                )));
            }
        }
        let endpoint = Url::parse(&app_service.endpoint)
            .map_err(|error| CredentialError(format!("IDENTITY_ENDPOINT: {error}")))?;
        client_options
            .per_call_policies
            .push(Arc::new(PinIdentityEndpoint {
                endpoint,
                header: app_service.header.clone(),
            }));
    }
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        client_options,
    };
    let credential = ManagedIdentityCredential::new(Some(options))
        .map_err(|error| CredentialError(format!("managed identity credential: {error}")))?;
    Ok(credential)
}

/// For a process that takes the App Service endpoint from its settings rather than from its
/// environment (tests, the local stack, benchmarks: each with a simulator of its own).
/// `azure_identity` picks the App Service flavour only when `IDENTITY_ENDPOINT` and
/// `IDENTITY_HEADER` are in the process environment; this sets both, once, to placeholders that
/// [`managed_identity`] then replaces with the endpoint its caller gives. Never needed in Azure,
/// where the platform sets both.
pub fn use_endpoints_from_settings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var(
            "IDENTITY_ENDPOINT",
            "http://127.0.0.1:9/replaced-by-settings",
        );
        std::env::set_var("IDENTITY_HEADER", "replaced-by-settings");
    });
}

/// The developer's tools (the Azure CLI login).
pub fn developer_tools() -> Result<Arc<dyn TokenCredential>, CredentialError> {
    let credential = DeveloperToolsCredential::new(None)
        .map_err(|error| CredentialError(format!("developer tools credential: {error}")))?;
    Ok(credential)
}

/// Points the managed identity's token requests at the configured endpoint, with the configured
/// `X-IDENTITY-HEADER`, keeping the query `azure_identity` built (api-version, resource,
/// client_id).
#[derive(Clone)]
struct PinIdentityEndpoint {
    endpoint: Url,
    header: String,
}

// The header is a secret of the host: never printed.
impl std::fmt::Debug for PinIdentityEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinIdentityEndpoint")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Policy for PinIdentityEndpoint {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let query = request.url().query().map(str::to_string);
        let mut url = self.endpoint.clone();
        url.set_query(query.as_deref());
        *request.url_mut() = url;
        request.insert_header("x-identity-header", self.header.clone());
        match next.split_first() {
            Some((policy, rest)) => policy.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "the identity pipeline has no transport",
            )),
        }
    }
}
