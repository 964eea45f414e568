//! `emotrack eval`. (Being written.)

use crate::Outcome;

/// Arguments of `emotrack eval`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<Outcome> {
    anyhow::bail!("not implemented yet")
}
