//! Progress on stderr: a bar when the count is known, a spinner when it is not, hidden when
//! stderr is not a terminal (so logs and pipes stay clean).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over `len` items named `unit` ("images", "frames"); a spinner when `len` is
/// unknown (live sources). A single item gets no bar.
pub fn progress_bar(len: Option<u64>, unit: &str) -> ProgressBar {
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            format!("{{bar:40}} {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}  {{msg}}"),
        ),
        None => (
            ProgressBar::new_spinner(),
            format!("{{spinner}} {{pos}} {unit}  {{per_sec}}  {{elapsed}}"),
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    if len.is_some_and(|n| n < 2) || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}
