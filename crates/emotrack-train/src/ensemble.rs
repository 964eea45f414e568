//! Combining trained models into one model file: an ensemble ([`ensemble`], whose logits are
//! the mean of the members', ResNets and Swins alike) or a model soup ([`soup`], one ResNet
//! whose weights are the members' mean).

use std::path::PathBuf;

use emotrack::classify::{Architecture, ModelConfig, ModelProvenance};

use crate::error::TrainError;
use crate::weights::{self, HostTensors};

/// An ensemble of trained models (each a `.safetensors` file with its `.json`, a run folder or
/// a checkpoint folder, as [`crate::model_file::read`] takes them): one weights file
/// holding member `i`'s tensors under `members.{i}.` in float16, and its config. The runtime
/// averages the members' logits. Every member must be a ResNet or a Swin (they may be mixed)
/// with the same input size, classes and normalisation.
pub fn ensemble(members: &[PathBuf]) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let loaded = load_members(members)?;
    let config = ModelConfig {
        architecture: Architecture::Ensemble {
            members: loaded
                .iter()
                .map(|m| m.config.architecture.clone())
                .collect(),
        },
        provenance: provenance(
            format!("mean logits of {} models, float16", members.len()),
            &loaded,
        ),
        // The members' temperatures do not carry over: calibrate the ensemble itself.
        temperature: 1.0,
        ..loaded[0].config.clone()
    };
    let mut tensors = HostTensors::new();
    for (i, member) in loaded.into_iter().enumerate() {
        for (name, tensor) in member.tensors {
            tensors.insert(format!("members.{i}.{name}"), tensor);
        }
    }
    let bytes = weights::safetensors_bytes_f16(&tensors).map_err(TrainError::Config)?;
    Ok((bytes, config))
}

/// A "model soup" (Wortsman et al., ICML 2022): one network whose every weight, bias and
/// batch-norm statistic is the mean of the members'. It costs one network's time. The average
/// of weights is only a good network when the members were fine-tuned from the same start
/// (they then lie in one basin of the loss); measure it, as `emotrack ensemble --average
/// --data` does. Every member must be a ResNet of the same layout.
pub fn soup(members: &[PathBuf]) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    let loaded = load_members(members)?;
    if let Some(other) = loaded
        .iter()
        .find(|m| !matches!(m.config.architecture, Architecture::Resnet { .. }))
    {
        return Err(TrainError::Checkpoint {
            path: other.path.clone(),
            message: "is not a ResNet: only ResNets are averaged into a soup (--average); \
                      leave out --average to make a mean-logit ensemble of it"
                .into(),
        });
    }
    let config = ModelConfig {
        provenance: provenance(format!("mean weights of {} models", members.len()), &loaded),
        temperature: 1.0,
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
    let bytes = weights::safetensors_bytes(&sum, None).map_err(TrainError::Config)?;
    Ok((bytes, config))
}

/// One model read for [`ensemble`] or [`soup`].
struct Member {
    path: PathBuf,
    tensors: HostTensors,
    config: ModelConfig,
}

/// Reads two or more ResNets or Swins with the same input size, classes and normalisation.
fn load_members(members: &[PathBuf]) -> Result<Vec<Member>, TrainError> {
    if members.len() < 2 {
        return Err(TrainError::Config(
            "combining models needs at least two".into(),
        ));
    }
    let mut loaded: Vec<Member> = Vec::with_capacity(members.len());
    for path in members {
        let (tensors, config) = crate::model_file::own_tensors(path, "can be members")?;
        if let Some(first) = loaded.first()
            && (first.config.input_size != config.input_size
                || first.config.classes != config.classes
                || first.config.normalization != config.normalization)
        {
            return Err(TrainError::Checkpoint {
                path: path.to_path_buf(),
                message: format!(
                    "its input size, classes or normalisation differ from those of {}",
                    first.path.display()
                ),
            });
        }
        loaded.push(Member {
            path: path.clone(),
            tensors,
            config,
        });
    }
    Ok(loaded)
}

/// The provenance of a model made of `members` as `what` says: its notes are `what`, then
/// each member's path, val accuracy and notes.
fn provenance(what: String, members: &[Member]) -> ModelProvenance {
    let notes = members
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
        .join("; ");
    ModelProvenance {
        notes: Some(format!("{what}: {notes}")),
        ..ModelProvenance::default()
    }
}
