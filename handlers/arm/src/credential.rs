//! Where ARM tokens come from (`hubspoke-identity`): the App Service managed identity in Azure
//! (user-assigned via `AZURE_CLIENT_ID`), the developer tools credential (Azure CLI login) on a
//! workstation, as [`ArmSettings`] say.
//!
//! This module does not request tokens (the client does, per request, from `azure_identity`'s
//! cache) and never logs one.
use std::sync::Arc;

use hubspoke_identity::AppServiceEndpoint;
pub use hubspoke_identity::TokenCredential;

use crate::error::{ArmError, ErrorKind};
use crate::settings::{ArmSettings, IdentitySource};

/// The token scope of Azure Resource Manager (also for the simulator, which accepts any token).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The credential the settings call for.
pub fn credential(settings: &ArmSettings) -> Result<Arc<dyn TokenCredential>, ArmError> {
    match &settings.identity {
        IdentitySource::AppService { endpoint, header } => hubspoke_identity::managed_identity(
            settings.client_id.clone(),
            Some(&AppServiceEndpoint {
                endpoint: endpoint.clone(),
                header: header.clone(),
            }),
        )
        .map_err(|error| credential_error(endpoint, error.0)),
        IdentitySource::DeveloperTools => {
            hubspoke_identity::developer_tools().map_err(|error| credential_error("az", error.0))
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
