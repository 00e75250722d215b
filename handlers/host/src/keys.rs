//! The keys the host accepts: the function key of HTTP triggers, the Event Grid extension's
//! system key of the webhook, and the master key. Fresh random ones per start, never logged.
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
