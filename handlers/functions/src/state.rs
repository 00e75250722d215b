//! What every invocation shares: the handler's settings, its two ARM clients, the hubs' pass
//! slots and leases, the log store and the outcome sink. Built once by `hubspoke serve` (or a test) and
//! held by the router; each function receives it next to its [`Invocation`](crate::invocation::Invocation).
use std::sync::Arc;

use hubspoke_arm::client::ArmClient;
use hubspoke_arm::error::ArmError;

use crate::lease::HubLeases;
use crate::logs::LogStore;
use crate::passes::HubPasses;
use crate::scope::ScopeMembership;
use crate::settings::HandlerSettings;
use crate::sink::OutcomeSink;

/// What every invocation shares: settings, ARM clients, the hubs' pass slots, logs, the sink.
pub struct State {
    pub settings: HandlerSettings,
    /// For reconcile passes and Backfill's observation.
    pub arm: ArmClient,
    /// For `OnNetworkEvent`'s mapping reads: same connections, a retry budget short enough to
    /// answer Event Grid well within its 30 seconds.
    pub mapping_arm: ArmClient,
    pub passes: HubPasses,
    /// The hubs' leases across instances; `None` without blob storage (one instance only).
    pub leases: Option<HubLeases>,
    /// `hubspoke-work`, for the delayed check a joiner leaves (the output binding cannot delay
    /// a message); `None` without storage.
    pub work_queue: Option<hubspoke_queue::Queue>,
    /// The subscriptions in scope as last listed, for `OnNetworkEvent`'s triage.
    pub scope: ScopeMembership,
    pub logs: LogStore,
    pub sink: OutcomeSink,
}

/// The state as the router holds it.
pub type AppState = Arc<State>;

impl State {
    /// The state for `settings`, with ARM clients through the credential the settings call for.
    pub fn new(
        settings: HandlerSettings,
        logs: LogStore,
        sink: OutcomeSink,
    ) -> Result<Self, ArmError> {
        let credential = hubspoke_arm::credential::credential(&settings.arm)?;
        let arm = ArmClient::new(&settings.arm, credential.clone())?;
        let mut mapping_settings = settings.arm.clone();
        mapping_settings.retry.max_attempts = mapping_settings.retry.max_attempts.min(3);
        mapping_settings.retry.budget = mapping_settings
            .retry
            .budget
            .min(std::time::Duration::from_secs(5));
        mapping_settings.request_timeout = mapping_settings
            .request_timeout
            .min(std::time::Duration::from_secs(8));
        let mapping_arm = ArmClient::new(&mapping_settings, credential)?;
        Ok(Self {
            settings,
            arm,
            mapping_arm,
            passes: HubPasses::default(),
            leases: None,
            work_queue: None,
            scope: ScopeMembership::default(),
            logs,
            sink,
        })
    }
}
