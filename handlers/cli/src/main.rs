//! The `hubspoke` binary: subcommands that only wire the crates together.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use hubspoke_core::config::PlanConfig;
use hubspoke_core::model::Observed;

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
    /// Show what hubspoke would change, from a snapshot file (no credentials needed).
    Plan(PlanArgs),
    /// Run the local Azure network simulator.
    Sim(hubspoke_sim::cli::SimArgs),
    /// Run the end-to-end demo on the embedded simulator.
    Demo,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// A snapshot: {"virtualNetworks": [...], "routeTables": [...], "virtualNetworkGateways": [...]},
    /// each array holding ARM objects as `az network vnet list -o json` and friends print them.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// A hub VNet resource id (repeatable). Defaults to HUBSPOKE_HUBS.
    #[arg(long = "hub")]
    hubs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan(args),
        Command::Sim(args) => runtime().and_then(|rt| rt.block_on(hubspoke_sim::cli::run(args))),
        Command::Demo => {
            println!("The demo is not yet available: it comes with the Functions app.");
            Ok(())
        }
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
fn plan_config(hubs: &[String]) -> anyhow::Result<PlanConfig> {
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
    let Some(path) = args.snapshot else {
        bail!(
            "live planning needs the ARM client, which is not available yet: pass --snapshot FILE"
        );
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read snapshot {}", path.display()))?;
    let document: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("snapshot {} is not valid JSON", path.display()))?;
    let observed = Observed::from_snapshot(&document)
        .with_context(|| format!("snapshot {} is not an estate", path.display()))?;
    let plan = hubspoke_core::plan::plan(&config, &observed);
    match args.output {
        Output::Text => print!("{}", hubspoke_core::plan::render::text(&plan)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
    }
    Ok(())
}
