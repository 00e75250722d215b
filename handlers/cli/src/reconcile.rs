//! `hubspoke reconcile`: observe, plan and apply from a workstation, with a progress bar on a
//! terminal. A developer's command: the binary packaged for Azure has no command that writes.
use std::io::IsTerminal;

use anyhow::bail;
use hubspoke_arm::apply::{ChangeOutcome, ChangeStatus};

use crate::output::Output;
use crate::settings::{connect, plan_config};

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// A hub VNet resource id (repeatable). Defaults to HUBSPOKE_HUBS.
    #[arg(long = "hub")]
    hubs: Vec<String>,
    /// Observe and plan only; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// At most this many changes in flight at once. Default: as many as each subscription's
    /// Azure budget allows, read from every answer.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let config = plan_config(&args.hubs)?;
    let (client, mut options) = connect()?;
    options.dry_run |= args.dry_run;
    options.concurrency = args.concurrency.map(|n| n as usize);
    // On a terminal, one progress bar; otherwise (CI, logs) one plain line per change.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let report = |outcome: &ChangeOutcome, done: usize, total: usize| {
        let status = match &outcome.status {
            ChangeStatus::Applied => "ok".to_owned(),
            ChangeStatus::Planned => "planned".to_owned(),
            ChangeStatus::Failed { error } => format!("FAILED {}", error.code),
            ChangeStatus::Skipped { .. } => "skipped".to_owned(),
            ChangeStatus::Deferred { .. } => "deferred".to_owned(),
        };
        let line = format!(
            "{} {} {status}",
            outcome.change.action.kind(),
            hubspoke_core::id::portal_name(&outcome.change.action.target())
        );
        match &bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(line);
            }
            None => eprintln!("[{done}/{total}] {line}"),
        }
    };
    let (result, _) =
        hubspoke_arm::reconcile::reconcile(&client, &config, &options, Some(&report)).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match args.output {
        Output::Text => print!("{}", result.text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&result)?),
    }
    if result.has_failures() {
        bail!("some changes failed or were skipped");
    }
    Ok(())
}
