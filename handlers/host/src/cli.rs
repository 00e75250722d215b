//! `hubspoke host`: runs the local stand-in of the Functions host. Prints the settings a client
//! needs as `KEY=value` lines, then `ready`, on stdout (like `hubspoke sim`); logs go to stderr.
//! App settings come from the environment, as the real host reads them.
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::{HostConfig, Keys};

/// Options of `hubspoke host`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = HELP_TAIL)]
pub struct HostArgs {
    /// The app root: host.json, and function-definitions/ (or the function folders).
    #[arg(long, default_value = ".")]
    pub script_root: PathBuf,
    /// Address to listen on (loopback only); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// The function key of HTTP triggers [default: generated].
    #[arg(long, env = "HUBSPOKE_FUNCTION_KEY", hide_env_values = true)]
    pub function_key: Option<String>,
    /// The Event Grid webhook's system key [default: generated].
    #[arg(long, env = "HUBSPOKE_EVENTGRID_KEY", hide_env_values = true)]
    pub eventgrid_key: Option<String>,
    /// The master key [default: generated].
    #[arg(long, env = "HUBSPOKE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

const HELP_TAIL: &str = "\
Output: KEY=value lines (HUBSPOKE_HOST_URL, HUBSPOKE_EVENTGRID_URL with its key,
HUBSPOKE_FUNCTION_KEY, HUBSPOKE_EVENTGRID_KEY, HUBSPOKE_MASTER_KEY) then `ready` on stdout; logs on
stderr (level from HUBSPOKE_LOG, default info). Storage for queue bindings:
AzureWebJobsStorage__queueServiceUri, __credential=managedidentity, __clientId (or a SAS), and
HUBSPOKE_CA_CERT for extra trusted certificates; with AzureWebJobsStorage__blobServiceUri too, a
timer runs on one host at a time (a blob lease, as the real host's), so that several hosts on one
account behave as an app scaled out. Each host gives its handler WEBSITE_INSTANCE_ID. SIGTERM or Ctrl-C: stop the triggers, let
invocations finish, stop the handler.

In Azure, the real Functions host runs the same host.json and function.json files.";

/// Runs the host until SIGTERM or Ctrl-C.
pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    let level = std::env::var("HUBSPOKE_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .try_init();
    let generated = Keys::generate();
    let keys = Keys {
        function: args.function_key.unwrap_or(generated.function),
        event_grid: args.eventgrid_key.unwrap_or(generated.event_grid),
        master: args.master_key.unwrap_or(generated.master),
    };
    // Signals are taken over first, so that one arriving during start-up still stops the
    // handler (dropped with the runtime) rather than leaving it orphaned.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let stopped = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    tokio::pin!(stopped);
    let starting = crate::start(HostConfig {
        script_root: args.script_root,
        listen: args.listen,
        settings: Vec::new(),
        keys,
        // This binary is the handler host.json names; run from a clone, it is under target/.
        handler_fallback: std::env::current_exe().ok(),
    });
    let handle = tokio::select! {
        handle = starting => handle?,
        _ = &mut stopped => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    {
        let mut out = std::io::stdout().lock();
        for (key, value) in handle.env() {
            writeln!(out, "{key}={value}")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
    }
    let failure = tokio::select! {
        () = &mut stopped => None,
        reason = handle.failed() => Some(reason),
    };
    tracing::info!("stopping: triggers first, then invocations in flight, then the handler");
    handle.shutdown(Duration::from_secs(30 * 60)).await;
    match failure {
        Some(reason) => anyhow::bail!("the host stops: {reason}"),
        None => Ok(()),
    }
}
