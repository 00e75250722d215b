//! The App Service managed identity endpoint (`IDENTITY_ENDPOINT` / `IDENTITY_HEADER`), served on
//! plain HTTP on loopback as App Service does, so that `azure_identity`'s and azure-identity's
//! managed identity credentials work unchanged; the tokens it mints (JWS signed with the
//! simulator's key, `signing.rs`); ARM's check of the bearer tokens it is sent; and the decoding
//! of bearer tokens into the claims that events carry.
//!
//! Protocol (learn.microsoft.com/azure/app-service/overview-managed-identity, "REST endpoint
//! reference"): `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R[&client_id=..]` with
//! header `X-IDENTITY-HEADER: {IDENTITY_HEADER}`; the answer is
//! `{"access_token","expires_on" (epoch seconds as a string),"resource","token_type","client_id"}`.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::world::ArmError;

/// The tenant the simulator pretends to be.
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000a11c";

/// The object id of the simulated managed identity (used as `oid` in tokens it mints).
pub const DEFAULT_PRINCIPAL_ID: &str = "5e1f0000-0000-4000-8000-0000000051a0";

/// The client id of the simulated managed identity.
pub const DEFAULT_CLIENT_ID: &str = "c11e0000-0000-4000-8000-0000000051a0";

/// The JOSE header of every token minted here, `{"alg":"HS256","typ":"JWT"}`, base64url: the
/// start of every token (a log that holds it may hold a token).
pub const TOKEN_PREFIX: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Mints a JWT with the claims ARM puts in events, as a JWS signed with the simulator's key
/// (RFC 7515 compact serialization: `header.payload.signature`, each base64url without padding).
/// Clients such as the Azure CLI decode it as a JWS, so the signature segment must be base64url.
pub fn mint_token(object_id: &str, client_id: &str, resource: &str) -> String {
    let now = crate::clock::unix_now();
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
    let signing_input = format!(
        "{TOKEN_PREFIX}.{}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = crate::signing::sign(&signing_input);
    format!("{signing_input}.{signature}")
}

/// ARM's check of a non-empty bearer token: it must be one the simulator minted (a JWS signed
/// with its key). Otherwise 401 `InvalidAuthenticationToken`, with the `WWW-Authenticate`
/// challenge ARM sends (RFC 6750 §3, `error="invalid_token"`), pushed to `headers`.
pub(crate) fn check_arm_token(
    token: &str,
    headers: &mut Vec<(String, String)>,
) -> Result<(), ArmError> {
    if crate::signing::is_signed_here(token) {
        return Ok(());
    }
    headers.push((
        "WWW-Authenticate".to_string(),
        format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/{TENANT_ID}\", error=\"invalid_token\", error_description=\"The access token is invalid.\""
        ),
    ));
    Err(ArmError::new(
        401,
        "InvalidAuthenticationToken",
        "The access token is invalid.",
    ))
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

    #[test]
    fn minted_tokens_are_a_jws_signed_here_under_the_announced_header() {
        let token = mint_token("oid-1", "client-1", "https://management.azure.com");
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(URL_SAFE_NO_PAD.decode(segments[2]).unwrap().len(), 32);
        assert!(check_arm_token(&token, &mut Vec::new()).is_ok());
    }

    #[test]
    fn arm_refuses_a_token_not_signed_here_with_a_challenge() {
        let token = mint_token("oid-1", "client-1", "https://management.azure.com");
        let (signing_input, _) = token.rsplit_once('.').unwrap();
        let mut headers = Vec::new();
        for forged in [
            format!("{signing_input}.sim"),
            format!("{signing_input}.{}", "A".repeat(43)),
            "anything".to_string(),
        ] {
            let error = check_arm_token(&forged, &mut headers).unwrap_err();
            assert_eq!(
                (error.status, error.code.as_str()),
                (401, "InvalidAuthenticationToken")
            );
        }
        assert!(headers
            .iter()
            .all(|(name, value)| name == "WWW-Authenticate" && value.contains("invalid_token")));
    }
}
