//! Run-folder files: the run info, per-epoch checkpoints (model, optimizer, EMA, loop state),
//! weight files in safetensors and the metrics CSV.
//!
//! A run folder holds:
//!
//! * `config.json` — [`RunInfo`]: the [`TrainConfig`], seed, git commit and command.
//! * `checkpoint/` — the latest state: `model.bpk` and `optim.bpk` (burn records; parameter
//!   ids tie the optimizer state to the parameters), `ema.safetensors`, `state.json`
//!   ([`LoopState`]). Replaced atomically (written beside, then renamed).
//! * `best.safetensors` + `best.json` — the weights with the best validation accuracy
//!   (the EMA weights when the EMA is on), by burn parameter path.
//! * `model.safetensors` + `model.json` — the best weights exported for inference.
//! * `metrics.csv` — one line per epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::TrainError;

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
/// Exported inference weights.
pub const MODEL_WEIGHTS: &str = "model.safetensors";
/// Exported inference config.
pub const MODEL_CONFIG: &str = "model.json";

/// The header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,raw_val_acc,elapsed_s";

/// What a run was started with; `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// All settings (the seed is `config.seed`).
    pub config: TrainConfig,
    /// `git rev-parse HEAD` of the code, with `-dirty` when the tree had changes, if known.
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

/// Host tensors by name: `(shape, values)`.
pub type HostTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Serialises f32 tensors to safetensors bytes.
pub fn safetensors_bytes(
    tensors: &HostTensors,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    serialize(tensors, metadata, safetensors::Dtype::F32, |x, out| {
        out.extend(x.to_le_bytes());
    })
}

/// Serialises tensors to safetensors bytes in half precision (float16): half the size, for
/// inference files (the runtime reads float16 as float32).
pub fn safetensors_bytes_f16(tensors: &HostTensors) -> Result<Vec<u8>, String> {
    serialize(tensors, None, safetensors::Dtype::F16, |x, out| {
        out.extend(half::f16::from_f32(x).to_le_bytes());
    })
}

fn serialize(
    tensors: &HostTensors,
    metadata: Option<std::collections::HashMap<String, String>>,
    dtype: safetensors::Dtype,
    encode: impl Fn(f32, &mut Vec<u8>),
) -> Result<Vec<u8>, String> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| {
            let mut b = Vec::with_capacity(v.len() * dtype.bitsize() / 8);
            for &x in v {
                encode(x, &mut b);
            }
            (k.clone(), shape.clone(), b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, shape, b)| {
            safetensors::tensor::TensorView::new(dtype, shape.clone(), b).map(|v| (k.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}

/// Reads f32 tensors from safetensors bytes.
pub fn read_safetensors(bytes: &[u8]) -> Result<HostTensors, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = HostTensors::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(format!("tensor {name} is {:?}, f32 expected", view.dtype()));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Reads a safetensors file.
pub fn load_safetensors(path: &Path) -> Result<HostTensors, TrainError> {
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    read_safetensors(&bytes).map_err(|message| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    })
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
    if dir.join("state.json").is_file() {
        return Some(dir);
    }
    let old = run.join(format!("{CHECKPOINT_DIR}.old"));
    old.join("state.json").is_file().then_some(old)
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
