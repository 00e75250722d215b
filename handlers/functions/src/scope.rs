//! Whether an event's subscription is in scope (`docs/design.md` section 5), for
//! `OnNetworkEvent`: an event from outside is `ignored` with the reason `out_of_scope`, and the
//! pass it would have asked for never runs.
//!
//! - No scope setting: every event passes (the pass reads only what the hubs reach).
//! - `HUBSPOKE_SUBSCRIPTIONS=a,b`: the listed subscriptions and the hubs'.
//! - `HUBSPOKE_SUBSCRIPTIONS=*` and `HUBSPOKE_MANAGEMENT_GROUPS`: the subscriptions the identity
//!   can read, or those under the groups, as Resource Manager lists them
//!   ([`hubspoke_arm::tenancy`]), and the hubs'. The list is kept [`MEMBERSHIP_TTL`] and read again
//!   on a miss (a subscription vended a moment ago), except for a subscription that already
//!   missed a listing less than [`MISS_REFRESH_INTERVAL`] ago: a flood of events from outside
//!   costs one listing per subscription, not one per event.
//!
//! A listing that fails does not drop the event: it passes, and the pass, which reads the scope
//! for itself, decides what is in it. Only the pass writes, so this is triage, not the guard.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hubspoke_arm::client::ArmClient;
use hubspoke_arm::tenancy;
use hubspoke_core::config::Scope;
use hubspoke_core::id::VnetId;

/// How long the subscriptions in scope are trusted.
pub const MEMBERSHIP_TTL: Duration = Duration::from_secs(60);

/// How long a subscription that missed a listing is taken as outside without listing again.
pub const MISS_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    InScope,
    /// Outside, with why.
    OutOfScope(String),
    /// Not known (the listing failed), with why: the event goes on.
    Unknown(String),
}

/// The subscriptions in scope as last listed, shared by every invocation of the process.
#[derive(Debug, Default)]
pub struct ScopeMembership {
    cached: tokio::sync::Mutex<Option<Listed>>,
}

#[derive(Debug)]
struct Listed {
    subscriptions: BTreeSet<String>,
    at: Instant,
    /// Subscriptions found outside by a listing, and when.
    missed: BTreeMap<String, Instant>,
}

impl ScopeMembership {
    /// Whether `subscription` is in `scope` (the hubs' subscriptions always are).
    pub async fn check(
        &self,
        client: &ArmClient,
        scope: &Scope,
        hubs: &[VnetId],
        subscription: &str,
    ) -> Verdict {
        if hubs
            .iter()
            .any(|hub| hub.subscription().eq_ignore_ascii_case(subscription))
        {
            return Verdict::InScope;
        }
        let wanted = subscription.to_ascii_lowercase();
        match scope {
            Scope::Reached => Verdict::InScope,
            Scope::Listed(listed) => {
                if listed.iter().any(|s| s.eq_ignore_ascii_case(subscription)) {
                    Verdict::InScope
                } else {
                    Verdict::OutOfScope(format!(
                        "subscription {subscription} is outside HUBSPOKE_SUBSCRIPTIONS and holds no hub"
                    ))
                }
            }
            Scope::Readable | Scope::ManagementGroups(_) => {
                let mut cached = self.cached.lock().await;
                let now = Instant::now();
                let refresh = match cached.as_ref() {
                    None => true,
                    Some(listed) if now.duration_since(listed.at) >= MEMBERSHIP_TTL => true,
                    Some(listed) if listed.subscriptions.contains(&wanted) => false,
                    Some(listed) => listed
                        .missed
                        .get(&wanted)
                        .is_none_or(|at| now.duration_since(*at) >= MISS_REFRESH_INTERVAL),
                };
                if refresh {
                    let read = match scope {
                        Scope::ManagementGroups(groups) => {
                            tenancy::management_group_subscriptions(client, groups).await
                        }
                        _ => tenancy::readable_subscriptions(client).await,
                    };
                    match read {
                        Ok(subscriptions) => {
                            let mut missed = cached.take().map(|l| l.missed).unwrap_or_default();
                            let at = Instant::now();
                            missed
                                .retain(|_, when| at.duration_since(*when) < MISS_REFRESH_INTERVAL);
                            if !subscriptions.contains(&wanted) {
                                missed.insert(wanted.clone(), at);
                            }
                            *cached = Some(Listed {
                                subscriptions,
                                at,
                                missed,
                            })
                        }
                        Err(error) => {
                            return Verdict::Unknown(format!(
                                "the subscriptions of {} could not be listed: {error}",
                                scope.describe()
                            ))
                        }
                    }
                }
                match cached.as_ref() {
                    Some(listed) if listed.subscriptions.contains(&wanted) => Verdict::InScope,
                    _ => Verdict::OutOfScope(format!(
                        "subscription {subscription} is not in {} and holds no hub",
                        scope.describe()
                    )),
                }
            }
        }
    }
}
