//! The simulator's token signing key: HMAC-SHA-256 (JWS `HS256`, RFC 7518 §3.2) over a 256-bit
//! key drawn at random when the simulator's process first mints or checks a token. The key is
//! never written anywhere, so a token is accepted only by the simulator process that minted it.
//!
//! Entra ID signs with RS256 and publishes its keys; the simulator signs with a secret key of
//! its own because nothing outside it needs to verify its tokens: clients decode them without
//! verifying (as the Azure CLI does: `jwt.decode(..., options={"verify_signature": False})`), and
//! only the simulator's ARM checks the signature. What matters to clients is that the token is a
//! well-formed JWS (RFC 7515 §7.1: three base64url segments, the third the signature).
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// The process's key, made on first use.
fn key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| hmac::Key::new(hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()))
}

/// The JWS signature (base64url, no padding) of `signing_input` (`header.payload`).
pub(crate) fn sign(signing_input: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(key(), signing_input.as_bytes()).as_ref())
}

/// Whether `token` is a compact JWS (`header.payload.signature`) signed with this process's key.
/// The comparison is in constant time (`ring::hmac::verify`).
pub(crate) fn is_signed_here(token: &str) -> bool {
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    if signing_input.split('.').count() != 2 {
        return false;
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    hmac::verify(key(), signing_input.as_bytes(), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_over_what_it_signed() {
        let token = format!("a.b.{}", sign("a.b"));
        assert!(is_signed_here(&token));
        assert!(!is_signed_here(&format!("a.c.{}", sign("a.b"))));
        assert!(!is_signed_here("a.b.sim"));
        assert!(!is_signed_here("a.b"));
        assert!(!is_signed_here(&format!("x.a.b.{}", sign("a.b"))));
        assert!(!is_signed_here("anything"));
    }

    #[test]
    fn signatures_are_base64url_of_32_bytes() {
        let signature = sign("header.payload");
        assert_eq!(signature.len(), 43);
        assert!(signature
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
