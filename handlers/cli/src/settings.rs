//! What the commands read from the environment, once, at their start: the planner's settings
//! (`--hub` flags replacing `HUBSPOKE_HUBS`) and the ARM client with its reconcile options.
use anyhow::bail;
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::reconcile::ReconcileOptions;
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::PlanConfig;

/// Reads the planner's settings from the environment; `--hub` flags replace `HUBSPOKE_HUBS`.
pub(crate) fn plan_config(hubs: &[String]) -> anyhow::Result<PlanConfig> {
    if hubs.is_empty() && std::env::var("HUBSPOKE_HUBS").map_or(true, |v| v.trim().is_empty()) {
        bail!("no hub given: pass --hub <hub VNet resource id> (repeatable) or set HUBSPOKE_HUBS");
    }
    let joined = hubs.join(",");
    let config = PlanConfig::from_settings(|name| {
        if name == "HUBSPOKE_HUBS" && !hubs.is_empty() {
            Some(joined.clone())
        } else {
            std::env::var(name).ok()
        }
    })?;
    Ok(config)
}

/// The ARM client and reconcile options, from the environment (read once, here).
pub(crate) fn connect() -> anyhow::Result<(ArmClient, ReconcileOptions)> {
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = ArmSettings::from_settings(lookup)?;
    let credential = hubspoke_arm::credential::credential(&settings)?;
    let client = ArmClient::new(&settings, credential)?;
    let options = ReconcileOptions::from_settings(lookup)?;
    Ok((client, options))
}
