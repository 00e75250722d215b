//! `hubspoke sim`: command-line options and the entry point.

/// Options of `hubspoke sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

/// Runs the simulator until interrupted.
pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the simulator is not yet available")
}
