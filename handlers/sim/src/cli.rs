//! `hubspoke sim`: command-line options and the entry point. Prints the settings a client needs
//! as `KEY=value` lines, then `ready`, on stdout; logs go to stderr.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::{
    EventKnobs, EventSchema, FaultSpec, GraphPeerings, LatencySpec, LockConflict, Strictness,
    ThrottleSpec,
};
use crate::{Seed, SimConfig};

/// Options of `hubspoke sim`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = HELP_TAIL)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port. A loopback address unless
    /// --allow-remote: the control API and the queues have no authentication, and the
    /// simulator mints a token for anyone who asks.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Accept a --listen address other machines can reach. Anyone who reaches it can read and
    /// change the simulated estate and get its tokens.
    #[arg(long)]
    pub allow_remote: bool,
    /// Load an estate in the snapshot format of `hubspoke plan --snapshot`.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate generated at start.
    #[arg(long)]
    pub tls: bool,
    /// Where to write the certificate (PEM) with --tls [default: a temporary file].
    #[arg(long)]
    pub ca_cert_out: Option<PathBuf>,
    /// Deliver Event Grid events of every write and delete to this URL.
    #[arg(long)]
    pub events_to: Option<String>,
    /// Schema of delivered events.
    #[arg(long, value_enum, default_value = "eventgrid")]
    pub event_schema: EventSchema,
    /// Imperfect delivery: e.g. `duplicate=0.1,drop=0.05,reorder=0.2,delay=500ms,retry=10s,attempts=30`.
    #[arg(long, default_value = "")]
    pub event_knobs: String,
    /// Operation latencies: e.g. `lro=500ms,delete=500ms,gateway=10s,response=0ms,retry-after=1`.
    #[arg(long, default_value = "")]
    pub latency: String,
    /// Fault rules: e.g. `PUT */virtualNetworkPeerings/*=429@0.3;GET *=script:500,ok,drop`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Items per page of list operations.
    #[arg(long, default_value_t = 100)]
    pub page_size: usize,
    /// Turn ARM's request throttling off.
    #[arg(long)]
    pub no_throttle: bool,
    /// Throttling time factor: buckets refill this many times faster.
    #[arg(long, default_value_t = 1.0)]
    pub time_factor: f64,
    /// How a write meeting another operation in flight is refused.
    #[arg(long, value_enum, default_value = "conflict")]
    pub lock_conflict: LockConflict,
    /// Routes per route table.
    #[arg(long, default_value_t = 400)]
    pub route_limit: usize,
    /// Ignore If-Match on writes (default: honour it, 412 on mismatch).
    #[arg(long)]
    pub ignore_if_match: bool,
    /// Accept useRemoteGateways=true while the remote peering does not exist yet.
    #[arg(long)]
    pub lax_remote_gateways: bool,
    /// Accept routes with next hop VirtualNetworkGateway for IPv6 prefixes.
    #[arg(long)]
    pub allow_ipv6_gateway_routes: bool,
    /// Accept updates of a Disconnected peering (it stays Disconnected).
    #[arg(long)]
    pub allow_disconnected_update: bool,
    /// Error code for a non-canonical CIDR.
    #[arg(long, default_value = "InvalidCIDRNotation")]
    pub invalid_cidr_code: String,
    /// Where Resource Graph shows peerings: inside their VNet's row (inline), also as rows of
    /// their own (both), or only as rows of their own (rows). Unconfirmed in Azure.
    #[arg(long, value_enum, default_value = "inline")]
    pub graph_peerings: GraphPeerings,
    /// How far Resource Graph lags the estate, in milliseconds: its copy is taken again once it
    /// is this old.
    #[arg(long, default_value_t = 0)]
    pub graph_lag_ms: u64,
    /// Object id of the managed identity's tokens.
    #[arg(long, default_value = crate::identity::DEFAULT_PRINCIPAL_ID)]
    pub principal_id: String,
    /// Also serve a minimal Azure Queue Storage account (needs --tls); prints
    /// AzureWebJobsStorage__queueServiceUri and AzureWebJobsStorage__credential.
    #[arg(long)]
    pub queues: bool,
}

const HELP_TAIL: &str = "\
Output: KEY=value lines (HUBSPOKE_ARM_ENDPOINT, HUBSPOKE_CA_CERT with --tls, IDENTITY_ENDPOINT,
IDENTITY_HEADER) then `ready` on stdout; logs on stderr (level from HUBSPOKE_LOG, default info).

Control API (no auth): GET|PUT /_sim/state, GET|DELETE /_sim/requests,
GET|PUT|DELETE /_sim/faults (body {\"spec\": \"...\"}), GET|DELETE /_sim/events,
GET /_sim/managementGroups, PUT|DELETE /_sim/managementGroups/{id}
(body {\"parent\": \"...\", \"subscriptions\": [...]}), PUT /_sim/subscriptions/{id},
GET|PUT /_sim/graph (body {\"frozen\": true|false, \"lag_ms\": N}).

Fault SPEC: rules separated by `;`, each `[METHOD ]PATTERN=ACTION[@RATE][#COUNT]` or
`[METHOD ]PATTERN=script:ACTION,...`; ACTION is 429, 500, 503, 409, drop, slow:DURATION,
lro-fail, lro-cancel, ok.
PATTERN is a case-insensitive glob over the path (`*` = anything).

Unconfirmed Azure behaviour defaults to the stricter reading; see docs/simulator.md.";

impl SimArgs {
    /// The library configuration these options describe.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            anyhow::bail!(
                "--listen {}: not a loopback address. The simulator's control API and queues have no authentication and it mints a token for anyone who asks; pass --allow-remote to serve other machines anyway",
                self.listen
            );
        }
        Ok(SimConfig {
            listen: self.listen,
            tls: self.tls,
            ca_cert_out: self.ca_cert_out.clone(),
            seed: self.seed.clone().map(Seed::File),
            events_to: self.events_to.clone(),
            event_schema: self.event_schema,
            event_knobs: EventKnobs::parse_over(
                EventKnobs {
                    first_retry: std::time::Duration::from_secs(10),
                    ..EventKnobs::default()
                },
                &self.event_knobs,
            )
            .context("--event-knobs")?,
            latency: LatencySpec::parse_over(LatencySpec::cli_default(), &self.latency)
                .context("--latency")?,
            faults: FaultSpec::parse(&self.faults).context("--faults")?,
            page_size: self.page_size,
            throttle: ThrottleSpec {
                enabled: !self.no_throttle,
                time_factor: self.time_factor,
                ..ThrottleSpec::default()
            },
            strictness: Strictness {
                honour_if_match: !self.ignore_if_match,
                use_remote_gateways_needs_remote_peering: !self.lax_remote_gateways,
                reject_ipv6_gateway_routes: !self.allow_ipv6_gateway_routes,
                refuse_disconnected_peering_update: !self.allow_disconnected_update,
                route_limit: self.route_limit,
                invalid_cidr_code: self.invalid_cidr_code.clone(),
                lock_conflict: self.lock_conflict,
                graph_peerings: self.graph_peerings,
                ..Strictness::default()
            },
            graph_lag: std::time::Duration::from_millis(self.graph_lag_ms),
            principal_id: self.principal_id.clone(),
            queues: self.queues,
            ..SimConfig::default()
        })
    }
}

/// The lines printed when ready: `KEY=value` per setting, then `ready`.
pub fn ready_lines(env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in env {
        out.push_str(&format!("{key}={value}\n"));
    }
    out.push_str("ready\n");
    out
}

/// Runs the simulator until interrupted.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let level = std::env::var("HUBSPOKE_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .try_init();
    let config = args.to_config()?;
    let handle = crate::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        out.write_all(ready_lines(&handle.env()).as_bytes())?;
        out.flush()?;
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    handle.shutdown().await;
    Ok(())
}
