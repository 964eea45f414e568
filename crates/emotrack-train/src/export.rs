//! Export of trained weights to the inference model format: `model.safetensors` (f32,
//! PyTorch names and layouts, raw batch-norm parameters) plus `model.json`
//! ([`ModelConfig`]).
//!
//! Burn path → file name: `*.gamma` → `*.weight`, `*.beta` → `*.bias`; everything else keeps
//! its path (`stem.conv.weight`, `stages.{s}.{b}.bn1.running_mean`,
//! `stages.{s}.{b}.shortcut.conv.weight`, `head.weight` `[classes, in]`, `head.bias`).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use emotrack::Emotion;
use emotrack::classify::{Architecture, ModelConfig, ModelProvenance};

use crate::checkpoint::{
    self, BEST_INFO, BEST_WEIGHTS, BestInfo, CONFIG_FILE, HostTensors, LoopState, RunInfo,
};
use crate::error::TrainError;
use crate::model::{Net, NetConfig};
use crate::params;

/// Inference tensor name of a burn parameter path.
pub fn export_name(burn_path: &str) -> String {
    if let Some(p) = burn_path.strip_suffix(".gamma") {
        format!("{p}.weight")
    } else if let Some(p) = burn_path.strip_suffix(".beta") {
        format!("{p}.bias")
    } else {
        burn_path.to_string()
    }
}

/// Burn parameter path of an inference tensor name (inverse of [`export_name`]).
pub fn burn_path(export_name: &str) -> String {
    let is_bn = |p: &str| {
        p.rsplit('.')
            .next()
            .is_some_and(|last| last.starts_with("bn"))
    };
    if let Some(p) = export_name.strip_suffix(".weight")
        && is_bn(p)
    {
        format!("{p}.gamma")
    } else if let Some(p) = export_name.strip_suffix(".bias")
        && is_bn(p)
    {
        format!("{p}.beta")
    } else {
        export_name.to_string()
    }
}

/// The exported model of a run folder (its best weights) or of a checkpoint folder (its EMA
/// weights when present, else its model): safetensors bytes and the config to write next to
/// them.
pub fn export(run_dir_or_checkpoint: &Path) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let (tensors, config) = export_tensors(run_dir_or_checkpoint)?;
    let bytes = checkpoint::safetensors_bytes(&tensors, None).map_err(|message| {
        TrainError::Checkpoint {
            path: run_dir_or_checkpoint.to_path_buf(),
            message,
        }
    })?;
    Ok((bytes, config))
}

/// Like [`export`], with the tensors still in memory (inference names).
pub fn export_tensors(path: &Path) -> Result<(HostTensors, ModelConfig), TrainError> {
    let is_checkpoint = path.join("state.json").is_file();
    let run_dir: PathBuf = if is_checkpoint {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    let info: RunInfo = checkpoint::read_json(&run_dir.join(CONFIG_FILE))?;
    let (weights, provenance_note, acc, f1) = if is_checkpoint {
        let state: LoopState = checkpoint::read_json(&path.join("state.json"))?;
        let ema = path.join("ema.safetensors");
        let w = if ema.is_file() {
            checkpoint::load_safetensors(&ema)?
        } else {
            let net =
                load_burn_model(&info.config.model, &path.join("model.bpk"), &Device::flex())?;
            params::collect_host(&net)
        };
        let note = format!(
            "checkpoint at epoch {} batch {}, {:.0} s of training",
            state.epoch, state.batch, state.elapsed_s
        );
        (w, note, None, None)
    } else {
        let best_path = run_dir.join(BEST_WEIGHTS);
        if !best_path.is_file() {
            return Err(TrainError::Checkpoint {
                path: best_path,
                message:
                    "no best weights yet; train at least one epoch, or export a checkpoint folder"
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
        (
            checkpoint::load_safetensors(&best_path)?,
            note,
            Some(best.val_accuracy as f32),
            Some(best.val_macro_f1 as f32),
        )
    };
    let tensors: HostTensors = weights
        .into_iter()
        .map(|(k, v)| (export_name(&k), v))
        .collect();
    let config = ModelConfig {
        architecture: info.config.model.architecture(),
        input_size: crate::data::IMAGE_SIDE as u32,
        classes: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
        normalization: info.config.normalization,
        provenance: ModelProvenance {
            val_accuracy: acc,
            val_macro_f1: f1,
            command: info.command.clone(),
            commit: info.commit.clone(),
            notes: Some(provenance_note),
        },
    };
    Ok((tensors, config))
}

/// Loads a burn record (`model.bpk`) into a network of layout `cfg` on `device`.
pub fn load_burn_model(cfg: &NetConfig, path: &Path, device: &Device) -> Result<Net, TrainError> {
    if !path.is_file() {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: "file not found".into(),
        });
    }
    let record = burn::store::ModuleRecord::load(path).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    cfg.init(Emotion::COUNT, device)
        .try_load_record(record)
        .map_err(|e| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Builds a network from tensors by burn path (e.g. `best.safetensors`, `ema.safetensors`).
pub fn net_from_tensors(
    cfg: &NetConfig,
    tensors: &HostTensors,
    device: &Device,
    source: &Path,
) -> Result<Net, TrainError> {
    let map = params::from_host(tensors, device);
    let (net, missing) = params::apply(cfg.init(Emotion::COUNT, device), &map, |_, new| new);
    if !missing.is_empty() {
        return Err(TrainError::Checkpoint {
            path: source.to_path_buf(),
            message: format!(
                "weights do not fit the model; missing or mis-shaped: {}",
                missing.join(", ")
            ),
        });
    }
    Ok(net)
}

/// Builds a network of layout `cfg` from an exported model's safetensors bytes (the
/// runtime's tensor names); `source` names the file in errors.
pub fn net_from_exported(
    cfg: &NetConfig,
    bytes: &[u8],
    device: &Device,
    source: &Path,
) -> Result<Net, TrainError> {
    let tensors: HostTensors = checkpoint::read_safetensors(bytes)
        .map_err(|message| TrainError::Checkpoint {
            path: source.to_path_buf(),
            message,
        })?
        .into_iter()
        .map(|(k, v)| (burn_path(&k), v))
        .collect();
    net_from_tensors(cfg, &tensors, device, source)
}

/// An ensemble of trained models (each a `.safetensors` file with its `.json`, a run folder or
/// a checkpoint folder, as [`crate::evaluate::model_bytes`] takes them): one weights file
/// holding member `i`'s tensors under `members.{i}.` in float16, and its config. The runtime
/// averages the members' logits. Every member must be a ResNet with the same input size,
/// classes and normalisation.
pub fn ensemble(members: &[PathBuf]) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let loaded = load_members(members)?;
    let config = ModelConfig {
        architecture: Architecture::Ensemble {
            members: loaded
                .iter()
                .map(|m| m.config.architecture.clone())
                .collect(),
        },
        provenance: ModelProvenance {
            notes: Some(format!(
                "mean logits of {} models, float16: {}",
                members.len(),
                notes(&loaded)
            )),
            ..ModelProvenance::default()
        },
        ..loaded[0].config.clone()
    };
    let mut tensors = HostTensors::new();
    for (i, member) in loaded.into_iter().enumerate() {
        for (name, tensor) in member.tensors {
            tensors.insert(format!("members.{i}.{name}"), tensor);
        }
    }
    let bytes = checkpoint::safetensors_bytes_f16(&tensors).map_err(TrainError::Config)?;
    Ok((bytes, config))
}

/// A "model soup" (Wortsman et al., ICML 2022): one network whose every weight, bias and
/// batch-norm statistic is the mean of the members'. It costs one network's time. The average
/// of weights is only a good network when the members were fine-tuned from the same start
/// (they then lie in one basin of the loss); measure it, as `emotrack ensemble --average
/// --data` does. Every member must be a ResNet of the same layout.
pub fn soup(members: &[PathBuf]) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let loaded = load_members(members)?;
    let config = ModelConfig {
        provenance: ModelProvenance {
            notes: Some(format!(
                "mean weights of {} models: {}",
                members.len(),
                notes(&loaded)
            )),
            ..ModelProvenance::default()
        },
        ..loaded[0].config.clone()
    };
    let n = loaded.len() as f32;
    let mut loaded = loaded.into_iter();
    let reference = loaded
        .next()
        .expect("load_members returns two or more models");
    let mut sum = reference.tensors;
    for member in loaded {
        let bad = |message: String| TrainError::Checkpoint {
            path: member.path.clone(),
            message,
        };
        if member.config.architecture != reference.config.architecture {
            return Err(bad(format!(
                "its layout differs from that of {}; only networks of one layout can be averaged",
                reference.path.display()
            )));
        }
        if member.tensors.len() != sum.len() {
            return Err(bad(format!(
                "it has {} tensors, {} has {}",
                member.tensors.len(),
                reference.path.display(),
                sum.len()
            )));
        }
        for (name, (shape, values)) in member.tensors {
            match sum.get_mut(&name) {
                Some((s, acc)) if *s == shape => {
                    acc.iter_mut().zip(values).for_each(|(a, v)| *a += v);
                }
                _ => {
                    return Err(bad(format!(
                        "tensor {name} {shape:?} has no match in {}",
                        reference.path.display()
                    )));
                }
            }
        }
    }
    for (_, values) in sum.values_mut() {
        values.iter_mut().for_each(|v| *v /= n);
    }
    let bytes = checkpoint::safetensors_bytes(&sum, None).map_err(TrainError::Config)?;
    Ok((bytes, config))
}

/// One model read for [`ensemble`] or [`soup`].
struct Member {
    path: PathBuf,
    tensors: HostTensors,
    config: ModelConfig,
}

/// Reads two or more ResNets with the same input size, classes and normalisation.
fn load_members(members: &[PathBuf]) -> Result<Vec<Member>, TrainError> {
    if members.len() < 2 {
        return Err(TrainError::Config(
            "combining models needs at least two".into(),
        ));
    }
    let mut loaded: Vec<Member> = Vec::with_capacity(members.len());
    for path in members {
        let (bytes, config) = crate::evaluate::model_bytes(path)?;
        let bad = |message: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        if !matches!(config.architecture, Architecture::Resnet { .. }) {
            return Err(bad(
                "only ResNet models (ours, not ONNX graphs or ensembles) can be members".into(),
            ));
        }
        if let Some(first) = loaded.first()
            && (first.config.input_size != config.input_size
                || first.config.classes != config.classes
                || first.config.normalization != config.normalization)
        {
            return Err(bad(format!(
                "its input size, classes or normalisation differ from those of {}",
                first.path.display()
            )));
        }
        let tensors = checkpoint::read_safetensors(&bytes).map_err(bad)?;
        loaded.push(Member {
            path: path.clone(),
            tensors,
            config,
        });
    }
    Ok(loaded)
}

/// Each member's path, val accuracy and notes, for the combined model's provenance.
fn notes(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            let p = &m.config.provenance;
            format!(
                "{} (val {}; {})",
                m.path.display(),
                p.val_accuracy
                    .map_or_else(|| "unmeasured".into(), |a| format!("{:.2}%", a * 100.0)),
                p.notes.as_deref().unwrap_or("no notes")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (b, e) in [
            ("stem.bn.gamma", "stem.bn.weight"),
            ("stages.1.0.bn2.beta", "stages.1.0.bn2.bias"),
            (
                "stages.1.0.shortcut.bn.running_var",
                "stages.1.0.shortcut.bn.running_var",
            ),
            ("stages.1.0.conv1.weight", "stages.1.0.conv1.weight"),
            ("head.weight", "head.weight"),
            ("head.bias", "head.bias"),
        ] {
            assert_eq!(export_name(b), e);
            assert_eq!(burn_path(e), b);
        }
    }

    #[test]
    fn collected_paths_are_the_documented_names() {
        let device = Device::flex();
        let net = NetConfig::default().init(7, &device);
        let names: Vec<String> = params::collect(&net)
            .keys()
            .map(|k| export_name(k))
            .collect();
        for n in [
            "stem.conv.weight",
            "stem.bn.weight",
            "stem.bn.running_mean",
            "stages.0.0.conv1.weight",
            "stages.3.0.shortcut.conv.weight",
            "stages.3.0.shortcut.bn.running_var",
            "head.weight",
            "head.bias",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("stages.0.0.shortcut")));
        let p = params::collect(&net);
        assert_eq!(p["head.weight"].shape, vec![7, 256]);
        assert_eq!(p["stem.conv.weight"].shape, vec![32, 1, 3, 3]);
    }
}
