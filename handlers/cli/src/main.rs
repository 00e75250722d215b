//! The `hubspoke` binary: subcommands that only wire the crates together.
#[cfg(feature = "local")]
mod demo;
#[cfg(feature = "local")]
mod package;
#[cfg(feature = "local")]
mod reconcile;
mod results;
mod snapshot;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::reconcile::ReconcileOptions;
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::PlanConfig;

#[derive(Debug, Parser)]
#[command(
    name = "hubspoke",
    version,
    about = "Keeps an Azure hub-and-spoke network transitive through the hub's VPN gateway."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what hubspoke would change: from a snapshot file (no credentials needed), or live.
    Plan(PlanArgs),
    /// Observe, plan and apply: make the hubs' spokes transitive now.
    #[cfg(feature = "local")]
    Reconcile(reconcile::ReconcileArgs),
    /// Run the local Azure network simulator.
    #[cfg(feature = "local")]
    Sim(hubspoke_sim::cli::SimArgs),
    /// Run the local stand-in of the Azure Functions host on this app's files.
    #[cfg(feature = "local")]
    Host(hubspoke_host::cli::HostArgs),
    /// Run the end-to-end demo on the embedded simulator.
    #[cfg(feature = "local")]
    Demo,
    /// Show the outcomes of hubspoke's functions (the queue hubspoke-outcomes).
    Results(results::ResultsArgs),
    /// Build the zip the Azure Functions host runs: host.json, the function folders and the
    /// Linux x86-64 binary built without the developer's commands.
    #[cfg(feature = "local")]
    Package(package::PackageArgs),
    /// Serve the Azure Functions custom handler (the Functions host starts this, with
    /// FUNCTIONS_CUSTOMHANDLER_PORT set).
    Serve,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan(args),
        #[cfg(feature = "local")]
        Command::Reconcile(args) => runtime().and_then(|rt| rt.block_on(reconcile::run(args))),
        #[cfg(feature = "local")]
        Command::Sim(args) => runtime().and_then(|rt| rt.block_on(hubspoke_sim::cli::run(args))),
        #[cfg(feature = "local")]
        Command::Host(args) => runtime().and_then(|rt| rt.block_on(hubspoke_host::cli::run(args))),
        #[cfg(feature = "local")]
        Command::Demo => runtime().and_then(|rt| rt.block_on(demo::run())),
        #[cfg(feature = "local")]
        Command::Package(args) => package::run(args),
        Command::Results(args) => runtime().and_then(|rt| rt.block_on(results::run(args))),
        Command::Serve => runtime().and_then(|rt| {
            rt.block_on(hubspoke_functions::serve(|name| std::env::var(name).ok()))
                .map_err(anyhow::Error::from)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

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

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let config = plan_config(&args.hubs)?;
    if args.snapshot.is_empty() {
        let plan = runtime()?.block_on(live_plan(&config))?;
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

/// The ARM client and reconcile options, from the environment (read once, here).
pub(crate) fn connect() -> anyhow::Result<(ArmClient, ReconcileOptions)> {
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = ArmSettings::from_settings(lookup)?;
    let credential = hubspoke_arm::credential::credential(&settings)?;
    let client = ArmClient::new(&settings, credential)?;
    let options = ReconcileOptions::from_settings(lookup)?;
    Ok((client, options))
}

async fn live_plan(config: &PlanConfig) -> anyhow::Result<hubspoke_core::plan::Plan> {
    let (client, options) = connect()?;
    let observation =
        hubspoke_arm::observe::observe(&client, &config.hubs, options.subscriptions.as_deref())
            .await?;
    for skipped in &observation.skipped {
        eprintln!(
            "warning: not readable: {} — {}",
            skipped.resource, skipped.error
        );
    }
    Ok(hubspoke_core::plan::plan(config, &observation.observed))
}
