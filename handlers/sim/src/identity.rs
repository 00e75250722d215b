//! The App Service managed identity endpoint (`IDENTITY_ENDPOINT` / `IDENTITY_HEADER`), served on
//! plain HTTP on loopback as App Service does, so that `azure_identity`'s and azure-identity's
//! managed identity credentials work unchanged; and the decoding of bearer tokens into the
//! claims that events carry.
//!
//! Protocol (learn.microsoft.com/azure/app-service/overview-managed-identity, "REST endpoint
//! reference"): `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R[&client_id=..]` with
//! header `X-IDENTITY-HEADER: {IDENTITY_HEADER}`; the answer is
//! `{"access_token","expires_on" (epoch seconds as a string),"resource","token_type","client_id"}`.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

/// The tenant the simulator pretends to be.
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000a11c";

/// The object id of the simulated managed identity (used as `oid` in tokens it mints).
pub const DEFAULT_PRINCIPAL_ID: &str = "5e1f0000-0000-4000-8000-0000000051a0";

/// The client id of the simulated managed identity.
pub const DEFAULT_CLIENT_ID: &str = "c11e0000-0000-4000-8000-0000000051a0";

/// Mints an unsigned JWT (`alg: none`) with the claims ARM puts in events.
pub fn mint_token(object_id: &str, client_id: &str, resource: &str) -> String {
    let now = crate::clock::unix_now();
    let header = json!({"alg": "none", "typ": "JWT"});
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{TENANT_ID}/"),
        "iat": now,
        "nbf": now,
        "exp": now + 86_400,
        "appid": client_id,
        "appidacr": "2",
        "idtyp": "app",
        "oid": object_id,
        "sub": object_id,
        "tid": TENANT_ID,
        "ver": "1.0",
    });
    format!(
        "{}.{}.sim",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The claims of a bearer token, as a flat string map (ARM's event `data.claims`). A token that
/// is not a JWT gives no claims. `oid` is also exposed under the long claim name ARM uses.
pub fn claims_of(token: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut parts = token.split('.');
    let (Some(_), Some(payload)) = (parts.next(), parts.next()) else {
        return out;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return out;
    };
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
        return out;
    };
    for (key, value) in claims {
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        out.insert(key, Value::String(text));
    }
    if let Some(oid) = out.get("oid").cloned() {
        out.insert(
            "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
            oid,
        );
    }
    if let Some(tid) = out.get("tid").cloned() {
        out.insert(
            "http://schemas.microsoft.com/identity/claims/tenantid".into(),
            tid,
        );
    }
    out
}

/// The token response body for `resource`.
pub(crate) fn token_response(resource: &str, object_id: &str, client_id: &str) -> Value {
    let expires = crate::clock::unix_now() + 86_400;
    json!({
        "access_token": mint_token(object_id, client_id, resource),
        "expires_on": expires.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_decode_to_claims_with_the_object_id() {
        let token = mint_token("oid-1", "client-1", "https://management.azure.com");
        let claims = claims_of(&token);
        assert_eq!(claims.get("oid"), Some(&json!("oid-1")));
        assert_eq!(
            claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier"),
            Some(&json!("oid-1"))
        );
        assert_eq!(claims.get("appid"), Some(&json!("client-1")));
        assert!(claims_of("not-a-jwt").is_empty());
    }
}
