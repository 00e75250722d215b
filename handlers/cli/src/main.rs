//! The `hubspoke` binary: subcommands that only wire the crates together.
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hubspoke", version, about = "Keeps an Azure hub-and-spoke network transitive through the hub's VPN gateway.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the local Azure network simulator.
    Sim(hubspoke_sim::cli::SimArgs),
    /// Run the end-to-end demo on the embedded simulator.
    Demo,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sim(args) => hubspoke_sim::cli::run(args).await,
        Command::Demo => {
            println!("The demo is not yet available: it comes with the Functions app.");
            Ok(())
        }
    }
}
