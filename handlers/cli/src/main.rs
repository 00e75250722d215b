//! The `hubspoke` binary: subcommands that only wire the crates together.
#[cfg(feature = "local")]
mod demo;
mod output;
#[cfg(feature = "local")]
mod package;
mod plan;
#[cfg(feature = "local")]
mod reconcile;
mod results;
mod settings;
mod snapshot;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    /// Show what hubspoke would change: from snapshots of the estate (files or folders; no
    /// credentials needed), or live.
    Plan(plan::PlanArgs),
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
    /// Check that every spoke reaches every other, and say why not (exit 0 when every pair of
    /// transit spokes does, 1 when one does not, 2 on error).
    Verify(verify::VerifyArgs),
    /// Build the zip the Azure Functions host runs: host.json, the function folders and the
    /// Linux x86-64 binary built without the developer's commands.
    #[cfg(feature = "local")]
    Package(package::PackageArgs),
    /// Serve the Azure Functions custom handler (the Functions host starts this, with
    /// FUNCTIONS_CUSTOMHANDLER_PORT set).
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => {
            return verify::exit_code(runtime().and_then(|rt| verify::run(args, &rt)))
        }
        Command::Plan(args) => runtime().and_then(|rt| plan::run(args, &rt)),
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

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
