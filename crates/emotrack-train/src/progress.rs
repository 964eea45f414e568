//! What the training loop reports as it goes ([`TrainObserver`]): each step
//! ([`BatchProgress`]) and each finished epoch ([`EpochSummary`], a line of `metrics.csv`).

use crate::checkpoint::LoopState;
use crate::config::TrainConfig;
use crate::metrics::Metrics;

/// Progress of one optimisation step, for progress bars.
#[derive(Debug, Clone)]
pub struct BatchProgress {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Batch within the epoch (0-based, just finished).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean training loss of the epoch so far.
    pub loss: f64,
    /// Training accuracy of the epoch so far.
    pub accuracy: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Images per second over this session's steps so far.
    pub images_per_s: f64,
}

/// One finished epoch (a line of `metrics.csv`).
#[derive(Debug, Clone)]
pub struct EpochSummary {
    /// Epoch (1-based, as in the CSV).
    pub epoch: usize,
    /// Total epochs of the schedule.
    pub epochs: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss (with label smoothing / mixing).
    pub train_loss: f64,
    /// Training accuracy (augmented images, hard labels).
    pub train_accuracy: f64,
    /// Validation metrics of the selected weights (EMA when on).
    pub val: Metrics,
    /// Validation accuracy of the raw (non-EMA) weights, when the EMA is on.
    pub raw_val_accuracy: Option<f64>,
    /// Training seconds so far (all sessions).
    pub elapsed_s: f64,
    /// Whether this epoch set a new best.
    pub is_best: bool,
}

/// Receives progress; the CLI draws bars with it.
pub trait TrainObserver {
    /// Training (re)starts at `state`, with `batches` per epoch.
    fn on_start(&mut self, _config: &TrainConfig, _state: &LoopState, _batches: usize) {}
    /// A step finished.
    fn on_batch(&mut self, _progress: &BatchProgress) {}
    /// Validation of an epoch is running.
    fn on_validate(&mut self, _epoch: usize) {}
    /// An epoch finished.
    fn on_epoch(&mut self, _summary: &EpochSummary) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl TrainObserver for Silent {}
