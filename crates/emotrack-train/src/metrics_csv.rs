//! The run's `metrics.csv`: one line per finished epoch ([`METRICS_HEADER`] names the
//! columns), appended as training goes and cut back to the checkpoint's epoch on resume.

use std::io::Write;
use std::path::Path;

use crate::checkpoint::{self, METRICS_FILE, METRICS_HEADER};
use crate::error::TrainError;
use crate::progress::EpochSummary;

/// Appends the line of epoch `e` (and the header, to a new file).
pub(crate) fn append(run_dir: &Path, e: &EpochSummary) -> Result<(), TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(TrainError::io(&path))?;
    let mut line = String::new();
    if new {
        line.push_str(METRICS_HEADER);
        line.push('\n');
    }
    line.push_str(&format!(
        "{},{:.6},{:.4},{:.4},{:.4},{:.4},{:.4},{},{:.0}\n",
        e.epoch,
        e.lr,
        e.train_loss,
        e.train_accuracy,
        e.val.nll,
        e.val.accuracy,
        e.val.macro_f1,
        e.raw_val_accuracy
            .map(|a| format!("{a:.4}"))
            .unwrap_or_default(),
        e.elapsed_s
    ));
    f.write_all(line.as_bytes()).map_err(TrainError::io(&path))
}

/// Drops `metrics.csv` lines of epochs after `done` (a crash between writing the CSV line and
/// the checkpoint would otherwise duplicate the epoch on resume).
pub(crate) fn truncate(run_dir: &Path, done: usize) -> Result<(), TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|e| e.parse::<usize>().ok())
                .is_none_or(|e| e <= done)
        })
        .collect();
    if kept.len() != text.lines().count() {
        checkpoint::write_atomic(&path, (kept.join("\n") + "\n").as_bytes())?;
    }
    Ok(())
}
