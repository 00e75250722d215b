//! Where ARM tokens come from: `azure_identity`'s `ManagedIdentityCredential` in Azure (the App
//! Service protocol that Functions serve, user-assigned via `AZURE_CLIENT_ID`), its
//! `DeveloperToolsCredential` (Azure CLI login) on a workstation. Tests use the simulator's App
//! Service endpoint, so the production path runs in tests.
//!
//! `azure_identity` 1.1 reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process
//! environment only (its injectable environment is test-only): it picks the App Service flavour
//! when both are set, and reads the header again on each token request. To honour the endpoint
//! and header of [`ArmSettings`] anyway (several simulators in one test process, each with its
//! own), the credential's pipeline carries one policy, [`PinIdentityEndpoint`], which points
//! every token request at the settings' endpoint with the settings' header. In Azure the two are
//! the same values. What remains of the process environment is the flavour choice: both
//! variables must be present in it (any value) when the settings say App Service, else
//! [`credential`] fails with [`ErrorKind::Credential`] instead of letting `azure_identity` fall
//! back to the VM metadata endpoint.
//!
//! This module does not request tokens (the client does, per request, from `azure_identity`'s
//! cache) and never logs one.
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, Url};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use crate::error::{ArmError, ErrorKind};
use crate::settings::{ArmSettings, IdentitySource};

/// The token scope of Azure Resource Manager (also for the simulator, which accepts any token).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The credential the settings call for.
pub fn credential(settings: &ArmSettings) -> Result<Arc<dyn TokenCredential>, ArmError> {
    match &settings.identity {
        IdentitySource::AppService { endpoint, header } => {
            for variable in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
                if std::env::var_os(variable).is_none_or(|value| value.is_empty()) {
                    return Err(credential_error(
                        endpoint,
                        format!(
                            "{variable} must be set in the process environment: azure_identity \
                             chooses the App Service managed identity from it"
                        ),
                    ));
                }
            }
            let endpoint_url = Url::parse(endpoint).map_err(|error| {
                credential_error(endpoint, format!("IDENTITY_ENDPOINT: {error}"))
            })?;
            let mut client_options = ClientOptions::default();
            client_options
                .per_call_policies
                .push(Arc::new(PinIdentityEndpoint {
                    endpoint: endpoint_url,
                    header: header.clone(),
                }));
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: settings.client_id.clone().map(UserAssignedId::ClientId),
                client_options,
            };
            let credential = ManagedIdentityCredential::new(Some(options))
                .map_err(|error| credential_error(endpoint, error.to_string()))?;
            Ok(credential)
        }
        IdentitySource::DeveloperTools => {
            let credential = DeveloperToolsCredential::new(None)
                .map_err(|error| credential_error("az", error.to_string()))?;
            Ok(credential)
        }
    }
}

fn credential_error(url: &str, message: String) -> ArmError {
    ArmError::new(
        ErrorKind::Credential,
        None,
        "CredentialUnavailable",
        message,
        "GET",
        url,
    )
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
