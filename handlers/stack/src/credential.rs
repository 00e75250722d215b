//! A credential that always answers one token: a landing zone's identity in the simulator,
//! whose token the simulator mints for any object id. Its writes carry that identity in their
//! events' claims, so hubspoke acts on them (its own identity's events it ignores).
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};

/// A fixed bearer token.
#[derive(Debug)]
pub struct StaticToken {
    token: Secret,
}

impl StaticToken {
    pub fn new(token: String) -> Self {
        Self {
            token: Secret::new(token),
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.token.secret().to_string(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
