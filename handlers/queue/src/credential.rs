//! Where storage tokens come from: `azure_identity`'s `ManagedIdentityCredential` for
//! `__credential=managedidentity` (user-assigned through `__clientId`), its
//! `DeveloperToolsCredential` otherwise. The SDK asks for the scope
//! `https://storage.azure.com/.default`.
//!
//! `azure_identity` 1.x reads `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` from the process environment
//! only. To honour the endpoint and header of the settings anyway (tests run several simulators
//! in one process), the credential's pipeline carries [`PinIdentityEndpoint`], which points each
//! token request at the settings' endpoint with the settings' header; in Azure both are the same
//! values. The flavour choice stays with the process environment: both variables must be there
//! when the settings name an App Service endpoint, else `azure_identity` would silently ask the
//! VM metadata endpoint instead.
//!
//! This module requests no token itself and never logs one.
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, Url};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use crate::error::QueueError;
use crate::settings::{Secret, StorageAuth};

/// The credential `auth` calls for; `None` for a SAS.
pub(crate) fn credential(
    auth: &StorageAuth,
) -> Result<Option<Arc<dyn TokenCredential>>, QueueError> {
    match auth {
        StorageAuth::Sas(_) => Ok(None),
        StorageAuth::DeveloperTools => {
            let credential = DeveloperToolsCredential::new(None)
                .map_err(|e| QueueError::Config(format!("developer tools credential: {e}")))?;
            Ok(Some(credential))
        }
        StorageAuth::ManagedIdentity {
            client_id,
            app_service,
        } => {
            let mut client_options = ClientOptions::default();
            if let Some(identity) = app_service {
                for variable in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
                    if std::env::var_os(variable).is_none_or(|value| value.is_empty()) {
                        return Err(QueueError::Config(format!(
                            "{variable} must be set in the process environment: azure_identity \
                             chooses the App Service managed identity from it"
                        )));
                    }
                }
                let endpoint = Url::parse(&identity.endpoint)
                    .map_err(|e| QueueError::Config(format!("IDENTITY_ENDPOINT: {e}")))?;
                client_options
                    .per_call_policies
                    .push(Arc::new(PinIdentityEndpoint {
                        endpoint,
                        header: identity.header.clone(),
                    }));
            }
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options,
            };
            let credential = ManagedIdentityCredential::new(Some(options))
                .map_err(|e| QueueError::Config(format!("managed identity credential: {e}")))?;
            Ok(Some(credential))
        }
    }
}

/// Points the managed identity's token requests at the configured endpoint, with the configured
/// `X-IDENTITY-HEADER`, keeping the query `azure_identity` built (api-version, resource,
/// client_id).
#[derive(Clone)]
struct PinIdentityEndpoint {
    endpoint: Url,
    header: Secret,
}

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
        request.insert_header("x-identity-header", self.header.expose().to_string());
        match next.split_first() {
            Some((policy, rest)) => policy.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "the identity pipeline has no transport",
            )),
        }
    }
}
