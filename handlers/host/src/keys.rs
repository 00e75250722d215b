//! The keys the host accepts: the function key of HTTP triggers, the Event Grid extension's
//! system key of the webhook, and the master key. Fresh random ones per start, never logged,
//! and compared in constant time ([`same_key`]), so that the time an answer takes says nothing
//! about how much of a guessed key was right.
use subtle::ConstantTimeEq;
/// The keys the host accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// The default function key (`x-functions-key` / `code` of HTTP triggers).
    pub function: String,
    /// The Event Grid extension's system key (`eventgrid_extension`), for the webhook.
    pub event_grid: String,
    /// The master key: accepted everywhere, and the only key of the admin route.
    pub master: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// Fresh random keys.
    pub fn generate() -> Keys {
        let key = || {
            use base64::Engine;
            let bytes: [u8; 32] = rand::random();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        Keys {
            function: key(),
            event_grid: key(),
            master: key(),
        }
    }
}

/// Whether `presented` is `key`, in time that depends on their lengths only.
pub fn same_key(presented: &str, key: &str) -> bool {
    presented.as_bytes().ct_eq(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_itself_only() {
        let keys = Keys::generate();
        assert!(same_key(&keys.function, &keys.function));
        assert!(!same_key(&keys.function, &keys.master));
        assert!(!same_key("", &keys.master));
        assert!(!same_key(&keys.master[..10], &keys.master));
    }
}
