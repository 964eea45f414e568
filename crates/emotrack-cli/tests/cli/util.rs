//! Helpers every CLI test uses: running the binary and reading what it printed.

use std::path::Path;
use std::process::{Command, Output};

/// Exit code for "some inputs failed or broke off mid-way; the rest was processed and the
/// outputs hold it" (see `src/outcome.rs`).
pub const EXIT_PARTIAL_FAILURE: i32 = 2;

/// Runs the `emotrack` binary under test with `args` and waits for it.
pub fn emotrack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotrack"))
        .args(args)
        .output()
        .expect("the emotrack binary runs")
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}
