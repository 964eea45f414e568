//! The inference model of a run: its weights under the inference file's tensor names
//! (`model.safetensors`: f32, PyTorch names and layouts, raw batch-norm parameters) plus the
//! [`ModelConfig`] that goes beside them (`model.json`); and [`read`], which takes any model
//! path the commands accept (a model file, a run folder, a checkpoint folder).
//!
//! This is what the training loop writes into the run folder for each new best epoch;
//! [`float16`] is the half-size copy `emotrack export --safetensors` writes.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use emotrack::Emotion;
use emotrack::classify::{
    Architecture, ModelConfig, ModelProvenance, ModelSource, RUN_MODEL_WEIGHTS,
};

use crate::checkpoint::{self, BEST_INFO, BEST_WEIGHTS, BestInfo, CONFIG_FILE, LoopState, RunInfo};
use crate::error::TrainError;
use crate::params;
use crate::weights::{self, HostTensors};

/// The weights and config of `path`, as every command reads `--model`: what
/// [`ModelSource::resolve`] accepts (a `.safetensors` or `.onnx` file with its `.json`, or a run
/// folder's exported model), plus what only training writes: a checkpoint folder, or a run
/// folder before its first export (both exported here, see [`from_run`]).
pub fn read(path: &Path) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    if path.is_dir() && !path.join(RUN_MODEL_WEIGHTS).is_file() {
        return from_run(path);
    }
    let source = ModelSource::resolve(Some(path)).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.detail(),
    })?;
    let weights = source.path().unwrap_or(path);
    let config: ModelConfig = checkpoint::read_json(&weights.with_extension("json"))?;
    let bytes = std::fs::read(weights).map_err(TrainError::io(weights))?;
    Ok((bytes, config))
}

/// The tensors and config of one of our own models at `path` (anything [`read`] takes): a
/// ResNet or a Swin, whose weights can be combined and rewritten (not an ONNX graph, whose
/// layout is not ours, nor an ensemble). `what` names the use in the error.
pub fn own_tensors(path: &Path, what: &str) -> Result<(HostTensors, ModelConfig), TrainError> {
    let (bytes, config) = read(path)?;
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    if !matches!(
        config.architecture,
        Architecture::Resnet { .. } | Architecture::Swin { .. }
    ) {
        return Err(bad(format!(
            "only our ResNet and Swin models (not ONNX graphs or ensembles) {what}"
        )));
    }
    let tensors = weights::read_safetensors(&bytes).map_err(bad)?;
    Ok((tensors, config))
}

/// The model at `path` (a ResNet or Swin, see [`own_tensors`]) with its weights stored in
/// float16: half the bytes, for shipping a model file (the runtime reads float16 as float32;
/// the built-in model scores the same on val, see models/README.md).
pub fn float16(path: &Path) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let (tensors, mut config) = own_tensors(path, "can be stored in float16")?;
    let half =
        weights::safetensors_bytes_f16(&tensors).map_err(|message| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message,
        })?;
    let notes = config.provenance.notes.take();
    config.provenance.notes = Some(match notes {
        Some(n) => format!("{n}; weights in float16"),
        None => "weights in float16".into(),
    });
    Ok((half, config))
}

/// The inference model of a run folder (its best weights) or of a checkpoint folder (its EMA
/// weights when present, else its model): safetensors bytes and the config to write next to
/// them.
pub fn from_run(run_dir_or_checkpoint: &Path) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let (tensors, config) = tensors_from_run(run_dir_or_checkpoint)?;
    let bytes = weights::encode_f32(&tensors, run_dir_or_checkpoint)?;
    Ok((bytes, config))
}

/// Like [`from_run`], with the tensors still in memory (inference names).
pub fn tensors_from_run(path: &Path) -> Result<(HostTensors, ModelConfig), TrainError> {
    let is_checkpoint = path.join(checkpoint::STATE_FILE).is_file();
    let run_dir: PathBuf = if is_checkpoint {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    let info: RunInfo = checkpoint::read_json(&run_dir.join(CONFIG_FILE))?;
    let chosen = if is_checkpoint {
        checkpoint_weights(path, &info)?
    } else {
        best_weights(&run_dir, &info)?
    };
    let tensors: HostTensors = chosen
        .tensors
        .into_iter()
        .map(|(k, v)| (weights::inference_name(&k), v))
        .collect();
    let config = ModelConfig {
        architecture: info.config.model.architecture(),
        input_size: crate::data::IMAGE_SIDE as u32,
        classes: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
        normalization: info.config.normalization,
        temperature: 1.0,
        provenance: ModelProvenance {
            val_accuracy: chosen.val_accuracy,
            val_macro_f1: chosen.val_macro_f1,
            command: info.command.clone(),
            commit: info.commit.clone(),
            notes: Some(chosen.note),
        },
    };
    Ok((tensors, config))
}

/// The weights picked from a run (by burn path) and what is known of them.
struct Chosen {
    tensors: HostTensors,
    /// The provenance note saying where they come from.
    note: String,
    val_accuracy: Option<f32>,
    val_macro_f1: Option<f32>,
}

/// A checkpoint's EMA weights when it has them, else its model.
fn checkpoint_weights(dir: &Path, info: &RunInfo) -> Result<Chosen, TrainError> {
    let state: LoopState = checkpoint::read_json(&dir.join(checkpoint::STATE_FILE))?;
    let ema = dir.join(checkpoint::EMA_WEIGHTS);
    let tensors = if ema.is_file() {
        weights::load_safetensors(&ema)?
    } else {
        let record = dir.join(checkpoint::MODEL_RECORD);
        let net = weights::load_burn_model(&info.config.model, &record, &Device::flex())?;
        params::collect_host(&net)
    };
    let note = format!(
        "checkpoint at epoch {} batch {}, {:.0} s of training",
        state.epoch, state.batch, state.elapsed_s
    );
    Ok(Chosen {
        tensors,
        note,
        val_accuracy: None,
        val_macro_f1: None,
    })
}

/// A run's best weights.
fn best_weights(run_dir: &Path, info: &RunInfo) -> Result<Chosen, TrainError> {
    let best_path = run_dir.join(BEST_WEIGHTS);
    if !best_path.is_file() {
        return Err(TrainError::Checkpoint {
            path: best_path,
            message: "no best weights yet; train at least one epoch, or export a checkpoint folder"
                .into(),
        });
    }
    let best: BestInfo = checkpoint::read_json(&run_dir.join(BEST_INFO))?;
    let note = format!(
        "best of epoch {} / {}, {:.1} min of CPU training{}",
        best.epoch,
        info.config.epochs,
        best.elapsed_s / 60.0,
        if best.ema { ", EMA weights" } else { "" }
    );
    Ok(Chosen {
        tensors: weights::load_safetensors(&best_path)?,
        note,
        val_accuracy: Some(best.val_accuracy as f32),
        val_macro_f1: Some(best.val_macro_f1 as f32),
    })
}

/// Writes the inference model of `run_dir` (see [`from_run`]) into it as `model.safetensors`
/// and `model.json`.
pub fn write_into_run(run_dir: &Path) -> Result<(), TrainError> {
    let (bytes, config) = from_run(run_dir)?;
    checkpoint::write_atomic(&run_dir.join(checkpoint::MODEL_WEIGHTS), &bytes)?;
    checkpoint::write_json(&run_dir.join(checkpoint::MODEL_CONFIG), &config)
}
