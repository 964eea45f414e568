//! `emotrack train`: trains the emotion classifier on FER-2013 into a run folder.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use emotrack_train::checkpoint::{LoopState, RunInfo};
use emotrack_train::progress::{BatchProgress, EpochSummary, TrainObserver};
use emotrack_train::train::{TrainOutcome, TrainRequest};
use emotrack_train::{TrainConfig, load_split};
use indicatif::{ProgressBar, ProgressStyle};

use crate::outcome::Outcome;

/// Arguments of `emotrack train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// FER-2013 folder holding `train/` and `val/` (each with one folder per emotion).
    #[arg(long)]
    data: PathBuf,
    /// Run folder: config, checkpoints, metrics.csv and the exported model go here.
    #[arg(long)]
    out: PathBuf,
    /// Training config (JSON, fields of `TrainConfig`; missing fields take the defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in `--out` from its last checkpoint (its saved config is used).
    #[arg(long)]
    resume: bool,
    /// Stop cleanly (with a checkpoint) after this many epochs of this session.
    #[arg(long)]
    session_epochs: Option<usize>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let config = match &args.config {
        Some(path) => {
            anyhow::ensure!(
                !args.resume,
                "--config cannot be combined with --resume: a resumed run keeps the config saved in its folder"
            );
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            serde_json::from_str::<TrainConfig>(&text)
                .with_context(|| format!("parsing config {}", path.display()))?
        }
        None => TrainConfig::default(),
    };
    let info = RunInfo {
        config,
        commit: build_commit(),
        command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
    };
    let info = emotrack_train::checkpoint::prepare_run(&args.out, info, args.resume)?;
    let cfg = &info.config;
    eprintln!("loading {} ...", args.data.display());
    let mut train = load_split(&args.data.join("train"))?;
    let mut val = load_split(&args.data.join("val"))?;
    report_skipped("train", &train);
    report_skipped("val", &val);
    if let Some(n) = cfg.train_limit {
        train = train.stratified_subset(n);
    }
    if let Some(n) = cfg.val_limit {
        val = val.stratified_subset(n);
    }
    eprintln!(
        "{} training and {} validation images; run folder {}",
        train.len(),
        val.len(),
        args.out.display()
    );
    if let Some(d) = &cfg.distill {
        let when = if d.online {
            "every batch, as the student sees it"
        } else {
            "the training images first (about a minute each)"
        };
        eprintln!(
            "distilling from {} teacher(s): they classify {when}",
            d.teachers.len()
        );
    }
    if let Some(init) = &cfg.init {
        eprintln!("starting from the weights of {}", init.display());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!(
                "\nstopping after this step; writing a checkpoint (interrupt again to abort)"
            );
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut observer = Progress::new();
    let outcome = emotrack_train::train::train(
        &info,
        TrainRequest {
            train: &train,
            val: &val,
            run_dir: &args.out,
            stop,
            max_epochs_this_session: args.session_epochs,
        },
        &mut observer,
    )?;
    observer.finish();
    match outcome {
        TrainOutcome::Finished { best_val_accuracy } => {
            eprintln!(
                "done; best val accuracy {}; model in {}",
                best_val_accuracy
                    .map(|a| format!("{:.2}%", a * 100.0))
                    .unwrap_or("-".into()),
                args.out.join("model.safetensors").display()
            );
        }
        TrainOutcome::Stopped { epoch, batch } => {
            eprintln!(
                "stopped at epoch {} batch {batch}; continue with: emotrack train --data {} --out {} --resume",
                epoch + 1,
                args.data.display(),
                args.out.display()
            );
        }
    }
    Ok(Outcome::Success)
}

fn report_skipped(split: &str, data: &emotrack_train::Dataset) {
    if data.skipped.is_empty() {
        return;
    }
    eprintln!("{split}: skipped {} unreadable images:", data.skipped.len());
    for s in data.skipped.iter().take(10) {
        eprintln!("  {}: {}", s.path.display(), s.reason);
    }
}

/// The commit this binary was built from (see `build.rs`), if known.
pub(crate) fn build_commit() -> Option<String> {
    let commit = env!("EMOTRACK_BUILD_COMMIT");
    (commit != "unknown").then(|| commit.to_string())
}

/// A progress bar per epoch on a terminal; one line per epoch otherwise (logs).
struct Progress {
    bar: Option<ProgressBar>,
    tty: bool,
    batches: usize,
}

impl Progress {
    fn new() -> Self {
        Self {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            batches: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl TrainObserver for Progress {
    fn on_start(&mut self, config: &TrainConfig, state: &LoopState, batches: usize) {
        self.batches = batches;
        eprintln!(
            "epoch {}/{} (batch {}), {batches} batches of {} per epoch",
            state.epoch + 1,
            config.epochs,
            state.batch,
            config.batch_size
        );
    }

    fn on_batch(&mut self, p: &BatchProgress) {
        if !self.tty {
            // Logs: a line at each quarter of the epoch, so throughput shows before it ends.
            let quarter = (p.batches / 4).max(1);
            if (p.batch + 1).is_multiple_of(quarter) && p.batch + 1 < p.batches {
                eprintln!(
                    "  epoch {} batch {}/{}: loss {:.3} acc {:.1}% lr {:.4} {:.0} img/s",
                    p.epoch + 1,
                    p.batch + 1,
                    p.batches,
                    p.loss,
                    p.accuracy * 100.0,
                    p.lr,
                    p.images_per_s
                );
            }
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(p.batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_position(p.batch as u64);
            bar
        });
        bar.set_prefix(format!("epoch {}", p.epoch + 1));
        bar.set_position(p.batch as u64 + 1);
        bar.set_message(format!(
            "loss {:.3} acc {:.1}% lr {:.4} {:.0} img/s",
            p.loss,
            p.accuracy * 100.0,
            p.lr,
            p.images_per_s
        ));
    }

    fn on_validate(&mut self, _epoch: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message("validating...");
        }
    }

    fn on_epoch(&mut self, e: &EpochSummary) {
        self.finish();
        let line = format!(
            "epoch {}/{}: lr {:.4} train loss {:.3} acc {:.1}% | val loss {:.3} acc {:.2}% macro-F1 {:.3}{} | {:.1} min{}",
            e.epoch,
            e.epochs,
            e.lr,
            e.train_loss,
            e.train_accuracy * 100.0,
            e.val.nll,
            e.val.accuracy * 100.0,
            e.val.macro_f1,
            e.raw_val_accuracy
                .map(|a| format!(" (raw {:.2}%)", a * 100.0))
                .unwrap_or_default(),
            e.elapsed_s / 60.0,
            if e.is_best { " *best" } else { "" }
        );
        eprintln!("{line}");
    }
}
