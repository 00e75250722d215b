//! `hubspoke plan`: what hubspoke would change, offline from snapshots of the estate (no
//! credentials) or live.
use std::path::PathBuf;

use hubspoke_core::config::PlanConfig;

use crate::output::Output;
use crate::settings::{connect, plan_config};
use crate::snapshot;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Plan offline from this file, or every *.json file of this folder (repeatable).
    ///
    /// Each file holds the output of `az network vnet list -o json`, `az network route-table list
    /// -g RG -o json` or `az network vnet-gateway list -g RG -o json` (one call's array, or
    /// several one after the other), Resource Graph's answer (`az graph query`), ARM's JSON (`az
    /// rest`), or {"virtualNetworks": [...], "routeTables": [...], "virtualNetworkGateways":
    /// [...]}; the shapes mix freely.
    #[arg(long, value_name = "FILE_OR_FOLDER")]
    snapshot: Vec<PathBuf>,
    /// A hub VNet resource id (repeatable). Defaults to HUBSPOKE_HUBS.
    #[arg(long = "hub")]
    hubs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

pub fn run(args: PlanArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let config = plan_config(&args.hubs)?;
    if args.snapshot.is_empty() {
        let plan = runtime.block_on(live_plan(&config))?;
        return print_plan(&plan, args.output);
    }
    let observed = snapshot::load(&args.snapshot)?;
    let plan = hubspoke_core::plan::plan(&config, &observed);
    print_plan(&plan, args.output)
}

fn print_plan(plan: &hubspoke_core::plan::Plan, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Text => print!("{}", hubspoke_core::plan::render::text(plan)),
        Output::Json => println!("{}", serde_json::to_string_pretty(plan)?),
    }
    Ok(())
}

async fn live_plan(config: &PlanConfig) -> anyhow::Result<hubspoke_core::plan::Plan> {
    let (client, options) = connect()?;
    let observation =
        hubspoke_arm::observe::observe_in_scope(&client, &config.hubs, &options.scope, None)
            .await?;
    for skipped in &observation.skipped {
        eprintln!(
            "warning: not readable: {} — {}",
            skipped.resource, skipped.error
        );
    }
    Ok(hubspoke_core::plan::plan(config, &observation.observed))
}
