//! The run folder: its layout and files (run info, best weights, JSON written atomically), and
//! resuming: [`prepare_run`] starts or reopens a run, and the per-epoch checkpoint (model,
//! optimizer, EMA, loop state) is saved and loaded here.
//!
//! A run folder holds:
//!
//! * `config.json` — [`RunInfo`]: the [`TrainConfig`], seed, commit and command.
//! * `checkpoint/` — the latest state: `model.bpk` and `optim.bpk` (burn records; parameter
//!   ids tie the optimizer state to the parameters), `ema.safetensors`, `state.json`
//!   ([`LoopState`]). Replaced atomically (written beside, then renamed).
//! * `best.safetensors` + `best.json` — the weights with the best validation accuracy
//!   (the EMA weights when the EMA is on), by burn parameter path.
//! * `model.safetensors` + `model.json` — the best weights exported for inference.
//! * `metrics.csv` — one line per epoch.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Exported inference weights and their config: the library reads a run folder through them
/// ([`emotrack::classify::ModelSource::resolve`]).
pub use emotrack::classify::{
    RUN_MODEL_CONFIG as MODEL_CONFIG, RUN_MODEL_WEIGHTS as MODEL_WEIGHTS,
};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::model::Net;
use crate::optim::build_optimizer;
use crate::params;
use crate::weights;

/// Folder of the latest checkpoint inside a run folder.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The run's settings file.
pub const CONFIG_FILE: &str = "config.json";
/// Per-epoch metrics.
pub const METRICS_FILE: &str = "metrics.csv";
/// Best weights by burn path.
pub const BEST_WEIGHTS: &str = "best.safetensors";
/// What the best weights scored.
pub const BEST_INFO: &str = "best.json";
/// In a checkpoint folder: where the loop stands ([`LoopState`]).
pub const STATE_FILE: &str = "state.json";
/// In a checkpoint folder: the model's burn record.
pub const MODEL_RECORD: &str = "model.bpk";
/// In a checkpoint folder: the optimizer's burn record.
pub const OPTIM_RECORD: &str = "optim.bpk";
/// In a checkpoint folder: the EMA weights by burn path, when the EMA is on.
pub const EMA_WEIGHTS: &str = "ema.safetensors";

/// The header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,raw_val_acc,elapsed_s";

/// What a run was started with; `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// All settings (the seed is `config.seed`).
    pub config: TrainConfig,
    /// The commit the code was built from (`git rev-parse HEAD` of its source tree), if known.
    pub commit: Option<String>,
    /// The command line that started the run.
    pub command: Option<String>,
}

/// Where the loop stands; `checkpoint/state.json`. Batch order, augmentation and dropout are
/// all derived from `(seed, epoch, batch)`, so this plus the weights and optimizer state
/// resumes the run exactly where it stopped, mid-epoch included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// The epoch in progress (0-based); equals `epochs` when training is complete.
    pub epoch: usize,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimisation steps done so far.
    pub global_step: u64,
    /// EMA updates done so far (drives the EMA warm-up).
    pub ema_updates: u64,
    /// Sum of the batch losses of this epoch so far (weighted by images).
    pub epoch_loss_sum: f64,
    /// Images classified correctly in this epoch so far.
    pub epoch_correct: u64,
    /// Images seen in this epoch so far.
    pub epoch_seen: u64,
    /// Seconds of training (all sessions).
    pub elapsed_s: f64,
    /// Best validation accuracy so far, and its epoch (1-based).
    pub best_val_accuracy: Option<f64>,
    /// Epoch (1-based) of the best validation accuracy.
    pub best_epoch: Option<usize>,
}

impl LoopState {
    /// Counts a finished step on batch `index` of `images` images, `correct` of them classified
    /// correctly, with mean loss `loss`.
    pub(crate) fn add_step(&mut self, index: usize, images: usize, loss: f32, correct: usize) {
        self.global_step += 1;
        self.batch = index + 1;
        self.epoch_loss_sum += f64::from(loss) * images as f64;
        self.epoch_correct += correct as u64;
        self.epoch_seen += images as u64;
    }

    /// Mean training loss of the epoch so far.
    pub(crate) fn train_loss(&self) -> f64 {
        self.epoch_loss_sum / self.epoch_seen.max(1) as f64
    }

    /// Training accuracy of the epoch so far.
    pub(crate) fn train_accuracy(&self) -> f64 {
        self.epoch_correct as f64 / self.epoch_seen.max(1) as f64
    }

    /// Moves on to the first batch of the next epoch.
    pub(crate) fn next_epoch(&mut self) {
        self.epoch += 1;
        self.batch = 0;
        self.epoch_loss_sum = 0.0;
        self.epoch_correct = 0;
        self.epoch_seen = 0;
    }
}

/// What the best weights scored; `best.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestInfo {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Validation macro-F1.
    pub val_macro_f1: f64,
    /// Training seconds up to that epoch.
    pub elapsed_s: f64,
    /// Whether these are EMA weights.
    pub ema: bool,
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(TrainError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(TrainError::io(path))
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// The checkpoint folder of a run, falling back to the previous one if a crash happened
/// between the two renames of [`commit_checkpoint_dir`].
pub fn find_checkpoint(run: &Path) -> Option<PathBuf> {
    let dir = run.join(CHECKPOINT_DIR);
    if dir.join(STATE_FILE).is_file() {
        return Some(dir);
    }
    let old = run.join(format!("{CHECKPOINT_DIR}.old"));
    old.join(STATE_FILE).is_file().then_some(old)
}

/// Replaces `run/checkpoint` with the fully written `staging` folder.
pub fn commit_checkpoint_dir(run: &Path, staging: &Path) -> Result<(), TrainError> {
    let dir = run.join(CHECKPOINT_DIR);
    let old = run.join(format!("{CHECKPOINT_DIR}.old"));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(TrainError::io(&old))?;
    }
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(TrainError::io(&dir))?;
    }
    std::fs::rename(staging, &dir).map_err(TrainError::io(&dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(TrainError::io(&old))?;
    }
    Ok(())
}

/// Creates a run folder with its `config.json`, or, with `resume`, reads the existing one.
/// Refuses to start over an existing run without `resume`.
pub fn prepare_run(run_dir: &Path, info: RunInfo, resume: bool) -> Result<RunInfo, TrainError> {
    let cfg_path = run_dir.join(CONFIG_FILE);
    if resume {
        if !cfg_path.is_file() {
            return Err(TrainError::Config(format!(
                "cannot resume: {} does not exist; start the run without --resume",
                cfg_path.display()
            )));
        }
        let stored: RunInfo = read_json(&cfg_path)?;
        stored.config.validate()?;
        return Ok(stored);
    }
    if cfg_path.exists() {
        return Err(TrainError::Config(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            run_dir.display()
        )));
    }
    info.config.validate()?;
    std::fs::create_dir_all(run_dir).map_err(TrainError::io(run_dir))?;
    write_json(&cfg_path, &info)?;
    Ok(info)
}

/// Writes `net` as the run's best weights (`best.safetensors`, by burn path) and what they
/// scored (`best.json`).
pub fn write_best(run_dir: &Path, net: &Net, best: &BestInfo) -> Result<(), TrainError> {
    let path = run_dir.join(BEST_WEIGHTS);
    let bytes = weights::encode_f32(&params::collect_host(net), &path)?;
    write_atomic(&path, &bytes)?;
    write_json(&run_dir.join(BEST_INFO), best)
}

/// Everything the loop carries between steps: what a checkpoint holds.
pub(crate) struct Session {
    /// The network being trained (on the autodiff device).
    pub(crate) model: Net,
    /// The optimizer and its state.
    pub(crate) optim: ModuleOptimizer,
    /// The weight EMA, when on (on the plain device).
    pub(crate) ema: Option<Net>,
    /// Where the loop stands.
    pub(crate) state: LoopState,
}

impl Session {
    /// Writes the checkpoint of `run_dir`: a new folder beside the old one, then swapped in
    /// ([`commit_checkpoint_dir`]).
    pub(crate) fn save(&self, run_dir: &Path) -> Result<(), TrainError> {
        let staging = run_dir.join(format!("{CHECKPOINT_DIR}.new"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(TrainError::io(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(TrainError::io(&staging))?;
        let ck = |path: PathBuf| {
            move |e: burn::store::RecordError| TrainError::Checkpoint {
                path,
                message: e.to_string(),
            }
        };
        // `valid()` also folds pending batch-norm running-statistics updates into the shared
        // state, so the record holds the latest running mean/var.
        let model_path = staging.join(MODEL_RECORD);
        self.model
            .valid()
            .into_record()
            .save(&model_path)
            .map_err(ck(model_path.clone()))?;
        let optim_path = staging.join(OPTIM_RECORD);
        self.optim
            .save(&optim_path)
            .map_err(ck(optim_path.clone()))?;
        if let Some(ema) = &self.ema {
            let path = staging.join(EMA_WEIGHTS);
            let bytes = weights::encode_f32(&params::collect_host(ema), &path)?;
            std::fs::write(&path, bytes).map_err(TrainError::io(&path))?;
        }
        write_json(&staging.join(STATE_FILE), &self.state)?;
        commit_checkpoint_dir(run_dir, &staging)
    }

    /// The session saved in `run_dir`'s checkpoint, the model on `device` and the EMA on
    /// `plain`; `None` when the run has no checkpoint yet.
    pub(crate) fn load(
        run_dir: &Path,
        cfg: &TrainConfig,
        device: &Device,
        plain: &Device,
    ) -> Result<Option<Self>, TrainError> {
        let Some(dir) = find_checkpoint(run_dir) else {
            return Ok(None);
        };
        let state: LoopState = read_json(&dir.join(STATE_FILE))?;
        let model = weights::load_burn_model(&cfg.model, &dir.join(MODEL_RECORD), device)?;
        let optim_path = dir.join(OPTIM_RECORD);
        let optim = build_optimizer(cfg)
            .load(&optim_path)
            .map_err(|e| TrainError::Checkpoint {
                path: optim_path,
                message: e.to_string(),
            })?;
        let ema = if cfg.ema_decay.is_some() {
            let path = dir.join(EMA_WEIGHTS);
            let t = weights::load_safetensors(&path)?;
            Some(weights::net_from_tensors(&cfg.model, &t, plain, &path)?.valid())
        } else {
            None
        };
        Ok(Some(Self {
            model,
            optim,
            ema,
            state,
        }))
    }
}
