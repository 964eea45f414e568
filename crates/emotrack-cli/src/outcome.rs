//! How a subcommand ended, and the exit code that tells a script.

use std::process::ExitCode;

/// How a subcommand that did not fail outright ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every input was processed.
    Success,
    /// Some inputs failed (each was reported); the others were processed.
    SomeFailed,
    /// Stopped by the signal of this number (2: SIGINT, Ctrl-C; 15: SIGTERM) after finishing
    /// the outputs, which cover the work done before: exit code 128 + the number, the shell's
    /// convention for a process ended by a signal.
    Interrupted(u8),
}

/// Exit code when some inputs failed but the run went on with the others (a setup error,
/// reported by `main`, exits with 1).
const EXIT_PARTIAL_FAILURE: u8 = 2;

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::SomeFailed => ExitCode::from(EXIT_PARTIAL_FAILURE),
            Outcome::Interrupted(signal) => ExitCode::from(128u8.saturating_add(signal)),
        }
    }
}
