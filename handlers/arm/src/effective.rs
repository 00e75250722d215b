//! Azure's own word on the verification: the effective routes of the spokes' network
//! interfaces (`POST …/networkInterfaces/{nic}/effectiveRouteTable`, a long-running operation
//! whose result comes through `Location`), compared with the model's routes for each interface's
//! subnet (`hubspoke_core::verify::compare`). Which interfaces, `HUBSPOKE_VERIFY_EFFECTIVE`
//! says: `off` (the default), `sample` (one per spoke per pass) or `all`. The reads run side by
//! side, at most [`PARALLEL_READS`] at once, within the client's pacer; each costs a POST and
//! its polls, counted apart in the check's `requests`.
//!
//! The interfaces are named by the subnets' `ipConfigurations`, which the VNet list already
//! carries: finding them costs no read. The action needs
//! `Microsoft.Network/networkInterfaces/effectiveRouteTable/action` (the role in `infra/`).
use std::str::FromStr;

use hubspoke_core::config::SettingError;
use hubspoke_core::model::Observed;
use hubspoke_core::verify::{
    compare, Disagreement, EffectiveRoute, HubVerification, Interface, InterfaceRoutes,
};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::{ArmClient, RequestCounts};
use crate::error::{ArmError, ErrorKind};

/// Interface reads in flight at once, per check.
pub const PARALLEL_READS: usize = 8;

/// Which interfaces' effective routes a pass reads (`HUBSPOKE_VERIFY_EFFECTIVE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EffectiveMode {
    /// None.
    #[default]
    Off,
    /// One interface per spoke per pass.
    Sample,
    /// Every interface of every eligible subnet of every spoke.
    All,
}

impl EffectiveMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectiveMode::Off => "off",
            EffectiveMode::Sample => "sample",
            EffectiveMode::All => "all",
        }
    }

    /// Reads `HUBSPOKE_VERIFY_EFFECTIVE`.
    pub fn from_setting(value: &str) -> Result<Self, SettingError> {
        value.parse().map_err(|reason| SettingError {
            setting: "HUBSPOKE_VERIFY_EFFECTIVE",
            value: value.to_owned(),
            reason,
        })
    }
}

impl FromStr for EffectiveMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(EffectiveMode::Off),
            "sample" => Ok(EffectiveMode::Sample),
            "all" => Ok(EffectiveMode::All),
            _ => Err(format!("{text:?} is not off, sample or all")),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct EffectiveCheck {
    pub mode: EffectiveMode,
    /// The interfaces whose routes were read and compared.
    pub interfaces: Vec<Interface>,
    /// Every range where Azure and the model select different next hops.
    pub disagreements: Vec<Disagreement>,
    /// Interfaces that could not be read or compared, with why.
    pub errors: Vec<(Interface, ArmError)>,
    /// The requests the check made.
    pub requests: RequestCounts,
}

/// The interfaces `mode` reads for `verification`: per spoke, the first (`sample`) or all.
pub fn interfaces_to_check(verification: &HubVerification, mode: EffectiveMode) -> Vec<Interface> {
    let per_spoke = match mode {
        EffectiveMode::Off => 0,
        EffectiveMode::Sample => 1,
        EffectiveMode::All => usize::MAX,
    };
    let mut interfaces: Vec<Interface> = Vec::new();
    for spoke in &verification.spokes {
        for interface in spoke.interfaces.iter().take(per_spoke) {
            if !interfaces
                .iter()
                .any(|known| known.nic.eq_ignore_ascii_case(&interface.nic))
            {
                interfaces.push(interface.clone());
            }
        }
    }
    interfaces
}

/// Reads the effective routes of interface `nic`.
pub async fn effective_routes(
    client: &ArmClient,
    nic: &str,
) -> Result<Vec<EffectiveRoute<'static>>, ArmError> {
    let path = format!("{nic}/effectiveRouteTable");
    let answer = client.post_read_action(&path, None).await?;
    EffectiveRoute::from_azure(&answer).map_err(|message| {
        ArmError::new(
            ErrorKind::Transport,
            Some(200),
            "UnreadableBody",
            message,
            "POST",
            &path,
        )
    })
}

/// Reads the interfaces `mode` selects and compares each with the model of `observed`.
pub async fn check_effective(
    client: &ArmClient,
    observed: &Observed,
    verification: &HubVerification,
    mode: EffectiveMode,
) -> EffectiveCheck {
    let client = client.with_own_counts();
    let mut check = EffectiveCheck {
        mode,
        ..EffectiveCheck::default()
    };
    let prefixes: Vec<_> = verification
        .spokes
        .iter()
        .flat_map(|spoke| spoke.prefixes.iter().copied())
        .collect();
    for (interface, read) in read_all(&client, interfaces_to_check(verification, mode)).await {
        let routes = match read {
            Ok(routes) => routes,
            Err(error) => {
                check.errors.push((interface, error));
                continue;
            }
        };
        let listed = InterfaceRoutes {
            nic: interface.nic.clone(),
            subnet: interface.subnet.clone(),
            routes,
        };
        match compare(observed, &prefixes, &listed) {
            Ok(found) => check.disagreements.extend(found),
            Err(message) => {
                let error = ArmError::new(
                    ErrorKind::NotFound,
                    None,
                    "NotObserved",
                    message,
                    "POST",
                    &interface.nic,
                );
                check.errors.push((interface.clone(), error));
                continue;
            }
        }
        check.interfaces.push(interface);
    }
    check.requests = client.counts();
    check
}

/// Reads every interface's routes, [`PARALLEL_READS`] at a time; results in the given order.
async fn read_all(
    client: &ArmClient,
    interfaces: Vec<Interface>,
) -> Vec<(Interface, Result<Vec<EffectiveRoute<'static>>, ArmError>)> {
    let mut results: Vec<Option<Result<Vec<EffectiveRoute<'static>>, ArmError>>> =
        vec![None; interfaces.len()];
    let mut running = JoinSet::new();
    let mut next = 0;
    while next < interfaces.len() || !running.is_empty() {
        while next < interfaces.len() && running.len() < PARALLEL_READS {
            let (client, nic, at) = (client.clone(), interfaces[next].nic.clone(), next);
            running.spawn(
                async move { (at, effective_routes(&client, &nic).await) }.in_current_span(),
            );
            next += 1;
        }
        if let Some(Ok((at, result))) = running.join_next().await {
            results[at] = Some(result);
        }
    }
    interfaces
        .into_iter()
        .zip(results)
        .map(|(interface, result)| {
            let result = result.unwrap_or_else(|| {
                Err(ArmError::new(
                    ErrorKind::Transport,
                    None,
                    "TaskFailed",
                    "the read stopped unexpectedly",
                    "POST",
                    &interface.nic,
                ))
            });
            (interface, result)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_takes_off_sample_or_all_and_names_itself_otherwise() {
        assert_eq!(
            EffectiveMode::from_setting(" Sample ").unwrap(),
            EffectiveMode::Sample
        );
        assert_eq!(
            EffectiveMode::from_setting("all").unwrap(),
            EffectiveMode::All
        );
        assert_eq!(EffectiveMode::default(), EffectiveMode::Off);
        let error = EffectiveMode::from_setting("some").unwrap_err();
        assert_eq!(error.setting, "HUBSPOKE_VERIFY_EFFECTIVE");
        assert!(error.reason.contains("off, sample or all"), "{error}");
    }
}
