//! The output formats of the commands that print a plan or a reconcile: text for people, JSON
//! for automation.
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}
