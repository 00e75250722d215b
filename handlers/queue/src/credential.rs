//! Where storage tokens come from: `azure_identity`'s `ManagedIdentityCredential` for
//! `__credential=managedidentity` (user-assigned through `__clientId`), its
//! `DeveloperToolsCredential` otherwise. The SDK asks for the scope
//! `https://storage.azure.com/.default`.
//!
//! The credentials themselves are `hubspoke-identity`'s, shared with the ARM client (its
//! documentation says how the App Service endpoint of the settings is honoured).
//!
//! This module requests no token itself and never logs one.
use std::sync::Arc;

use hubspoke_identity::{AppServiceEndpoint, TokenCredential};

use crate::error::QueueError;
use crate::settings::StorageAuth;

/// The credential `auth` calls for; `None` for a SAS.
pub(crate) fn credential(
    auth: &StorageAuth,
) -> Result<Option<Arc<dyn TokenCredential>>, QueueError> {
    match auth {
        StorageAuth::Sas(_) => Ok(None),
        StorageAuth::DeveloperTools => hubspoke_identity::developer_tools()
            .map(Some)
            .map_err(|error| QueueError::Config(error.0)),
        StorageAuth::ManagedIdentity {
            client_id,
            app_service,
        } => {
            let endpoint = app_service.as_ref().map(|identity| AppServiceEndpoint {
                endpoint: identity.endpoint.clone(),
                header: identity.header.expose().to_string(),
            });
            hubspoke_identity::managed_identity(client_id.clone(), endpoint.as_ref())
                .map(Some)
                .map_err(|error| QueueError::Config(error.0))
        }
    }
}
