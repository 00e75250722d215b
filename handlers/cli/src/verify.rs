//! `hubspoke verify`: does every spoke reach every other, and if not, why? Live (observing the
//! estate, and with `--effective` reading interfaces' effective routes to check the model
//! against Azure) or offline from snapshot files. A table for people, JSON for automation.
//!
//! Exit status: 0 when every pair of transit spokes is `gateway` or `direct` (and, with
//! `--effective`, Azure agrees with the model), 1 otherwise, 2 on error.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::ValueEnum;
use hubspoke_arm::effective::{check_effective, EffectiveCheck, EffectiveMode};
use hubspoke_core::config::{PlanConfig, Scope};
use hubspoke_core::verify::{render, verify_hubs, HubVerification};
use serde_json::{json, Value};

use crate::settings::{connect, plan_config};
use crate::snapshot;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A hub VNet resource id (repeatable). Defaults to HUBSPOKE_HUBS.
    #[arg(long = "hub")]
    hubs: Vec<String>,
    /// Verify offline from this file, or every *.json file of this folder (repeatable), in the
    /// shapes `hubspoke plan --snapshot` reads.
    #[arg(long, value_name = "FILE_OR_FOLDER")]
    snapshot: Vec<PathBuf>,
    /// Read interfaces' effective routes and compare them with the model: off, sample (one
    /// interface per spoke) or all. Defaults to HUBSPOKE_VERIFY_EFFECTIVE, else off. Live only.
    #[arg(long, value_parser = parse_mode)]
    effective: Option<EffectiveMode>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn parse_mode(text: &str) -> Result<EffectiveMode, String> {
    text.parse()
}

/// A hub's verification and what its interfaces' effective routes said.
pub(crate) struct Verified {
    verification: HubVerification,
    effective: Option<EffectiveCheck>,
}

impl Verified {
    /// Every pair of transit spokes is fine, and Azure agrees with the model.
    pub(crate) fn fine(&self) -> bool {
        self.verification.transit_pairs_fine()
            && self
                .effective
                .as_ref()
                .is_none_or(|check| check.disagreements.is_empty())
    }
}

/// The exit status of the command's result.
pub fn exit_code(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Verifies and prints; whether every pair of transit spokes is fine.
pub fn run(args: VerifyArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<bool> {
    let config = plan_config(&args.hubs)?;
    let hubs = if args.snapshot.is_empty() {
        runtime.block_on(live(&config, args.effective))?
    } else {
        if args
            .effective
            .is_some_and(|mode| mode != EffectiveMode::Off)
        {
            bail!("--effective reads Azure's effective routes of live interfaces: it cannot be used with --snapshot");
        }
        let observed = snapshot::load(&args.snapshot)?;
        verify_hubs(&config, &observed, &config.hubs)
            .into_iter()
            .map(|verification| Verified {
                verification,
                effective: None,
            })
            .collect()
    };
    match args.output {
        Format::Table => print!("{}", table(&hubs)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&document(&hubs))?),
    }
    Ok(hubs.iter().all(Verified::fine))
}

/// Observes the estate, verifies it, and reads the interfaces `effective` (or the setting)
/// selects.
async fn live(
    config: &PlanConfig,
    effective: Option<EffectiveMode>,
) -> anyhow::Result<Vec<Verified>> {
    let (client, options) = connect()?;
    let mode = effective.unwrap_or(options.verify_effective);
    verify_live(&client, config, &options.scope, mode).await
}

/// Observes the estate through `client`, verifies every configured hub, and reads the
/// interfaces `mode` selects.
pub(crate) async fn verify_live(
    client: &hubspoke_arm::client::ArmClient,
    config: &PlanConfig,
    scope: &Scope,
    mode: EffectiveMode,
) -> anyhow::Result<Vec<Verified>> {
    let client = client.clone();
    let observation =
        hubspoke_arm::observe::observe_in_scope(&client, &config.hubs, scope, None).await?;
    for skipped in &observation.skipped {
        eprintln!(
            "warning: not readable: {} — {}",
            skipped.resource, skipped.error
        );
    }
    let mut hubs = Vec::new();
    for verification in verify_hubs(config, &observation.observed, &config.hubs) {
        let effective = match mode {
            EffectiveMode::Off => None,
            mode => {
                Some(check_effective(&client, &observation.observed, &verification, mode).await)
            }
        };
        hubs.push(Verified {
            verification,
            effective,
        });
    }
    Ok(hubs)
}

/// The JSON document: per hub, every pair and the effective check.
fn document(hubs: &[Verified]) -> Value {
    let hubs: Vec<Value> = hubs
        .iter()
        .map(|hub| {
            let mut value = render::hub_json(&hub.verification);
            value["effective"] = effective_json(hub.effective.as_ref());
            value
        })
        .collect();
    json!({ "hubs": hubs })
}

fn effective_json(check: Option<&EffectiveCheck>) -> Value {
    let Some(check) = check else {
        return json!({"mode": "off", "interfaces": [], "disagreements": [], "errors": []});
    };
    json!({
        "mode": check.mode.as_str(),
        "interfaces": check.interfaces.iter().map(|i| json!({"nic": i.nic, "subnet": i.subnet.to_string()})).collect::<Vec<_>>(),
        "disagreements": check.disagreements,
        "errors": check.errors.iter().map(|(i, e)| json!({"nic": i.nic, "code": e.code, "message": e.message})).collect::<Vec<_>>(),
        "requests": check.requests,
    })
}

/// The table: each hub's matrix or pairs, then what the effective routes said.
pub(crate) fn table(hubs: &[Verified]) -> String {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(100);
    let mut out = String::new();
    for hub in hubs {
        out.push_str(&render::table(&hub.verification, width));
        let Some(check) = &hub.effective else {
            continue;
        };
        out.push_str(&format!(
            "effective routes ({}): {} interface(s) read, {} disagreement(s), {} unreadable, {} request(s)\n",
            check.mode.as_str(),
            check.interfaces.len(),
            check.disagreements.len(),
            check.errors.len(),
            check.requests.reads
        ));
        for d in &check.disagreements {
            let hop = |route: &Option<hubspoke_core::verify::RouteRef>| {
                route.as_ref().map_or("no route".to_owned(), |r| {
                    format!(
                        "{} {} ({})",
                        r.next_hop_type,
                        r.next_hop_ip.clone().unwrap_or_default(),
                        r.prefix
                    )
                })
            };
            out.push_str(&format!(
                "  model_disagrees {} {}: hubspoke's model {}, Azure {}\n",
                hubspoke_core::id::portal_name(&d.nic),
                d.prefix,
                hop(&d.model),
                hop(&d.azure)
            ));
        }
        for (interface, error) in &check.errors {
            out.push_str(&format!(
                "  unreadable {}: {error}\n",
                hubspoke_core::id::portal_name(&interface.nic)
            ));
        }
    }
    out
}
