//! ARM's cloud metadata, `GET /metadata/endpoints?api-version=…`: the endpoints of the cloud the
//! simulator is, so that a client can be pointed at it by its Resource Manager URL alone
//! (`az cloud register --endpoint-resource-manager URL`). Served without authentication, as
//! Azure serves it.
//!
//! Two shapes, by api-version, as Azure answers them (public answers of
//! `https://management.azure.com/metadata/endpoints`, and the clients that read them:
//! azure-cli's `azure/cli/command_modules/cloud/custom.py` `_populate_from_metadata_endpoint`
//! asks for `2022-09-01` and maps one object with `_arm_to_cli_mapper`, and
//! `azure/cli/core/cloud.py` reads the list of clouds of `2019-05-01` from
//! `ARM_CLOUD_METADATA_URL`; hashicorp/go-azure-sdk `sdk/internal/metadata` asks for
//! `2022-09-01`):
//! - `2022-09-01`: one cloud object, `{name, resourceManager, authentication {loginEndpoint,
//!   audiences, tenant, identityProvider}, suffixes {..}, ..}`;
//! - `2019-05-01`: an array of such objects, one per cloud.
//!
//! The simulator's cloud points at itself: its Resource Manager and login endpoints are the
//! simulator's URL (it serves no login: a client that tries to sign a user in fails here rather
//! than reaching Entra ID). Its audiences are Azure's, the resources a client asks the managed
//! identity endpoint for. It has no data-plane DNS suffixes.
use serde_json::{json, Value};

use crate::http::{json_response, query_value, HttpResponse};

/// The name of the simulator's cloud in the metadata.
pub const CLOUD_NAME: &str = "HubspokeSimulator";

/// The answer to `METHOD /metadata/endpoints?QUERY`, for a simulator reached at `base_url`.
pub(crate) fn metadata_endpoints(
    method: &str,
    query: &[(String, String)],
    base_url: &str,
) -> HttpResponse {
    if method != "GET" {
        return error(
            405,
            "MethodNotAllowed",
            &format!("The requested method '{method}' is not allowed for this resource."),
        );
    }
    match query_value(query, "api-version") {
        Some("2022-09-01") => json_response(200, &cloud(base_url), &[]),
        Some("2019-05-01") => json_response(200, &json!([cloud(base_url)]), &[]),
        Some(other) => error(
            400,
            "InvalidApiVersionParameter",
            // UNCONFIRMED: Azure's answer to other versions of this endpoint is not documented;
            // the simulator serves the two shapes its clients ask for.
            &format!(
                "The api-version '{other}' is invalid. The supported versions are '2022-09-01,2019-05-01'."
            ),
        ),
        None => error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ),
    }
}

/// The simulator's cloud object (the `2022-09-01` shape).
fn cloud(base_url: &str) -> Value {
    let base = format!("{}/", base_url.trim_end_matches('/'));
    json!({
        "name": CLOUD_NAME,
        "resourceManager": base,
        "authentication": {
            "loginEndpoint": base,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {},
    })
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
        &[],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_points_at_the_simulator_with_azure_audiences() {
        let cloud = cloud("https://127.0.0.1:4000");
        assert_eq!(cloud["resourceManager"], "https://127.0.0.1:4000/");
        assert_eq!(
            cloud["authentication"]["loginEndpoint"],
            "https://127.0.0.1:4000/"
        );
        assert_eq!(
            cloud["authentication"]["audiences"][0],
            "https://management.core.windows.net/"
        );
        assert_eq!(cloud["name"], CLOUD_NAME);
    }
}
