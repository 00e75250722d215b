//! Where hubspoke's tokens come from, for ARM and for storage alike: `azure_identity`'s
//! `ManagedIdentityCredential` in Azure (the App Service protocol that Functions serve,
//! user-assigned through a client id), its `DeveloperToolsCredential` (the Azure CLI login) on a
//! workstation. Tests use the simulator's App Service endpoint, so the production path runs in
//! tests.
//!
//! `azure_identity` 1.x reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process
//! environment only: with both set (in Azure, by the platform) it speaks the App Service
//! protocol, otherwise the virtual machine's (IMDS), whose token request is the same but for the
//! address and the secret header (api-version 2019-08-01, `resource`, `client_id`). To honour
//! the endpoint and header the caller's settings name (several simulators in one test process,
//! each with its own), the credential's pipeline carries [`PinIdentityEndpoint`], which sends
//! every token request to that endpoint with that header, keeping the query `azure_identity`
//! built. So nothing here reads or writes the process environment: setting a variable while
//! other threads may read it is undefined behaviour on most platforms.
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
