//! `emotrack analyze`. (Being written.)

use crate::Outcome;

/// Arguments of `emotrack analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<Outcome> {
    anyhow::bail!("not implemented yet")
}
