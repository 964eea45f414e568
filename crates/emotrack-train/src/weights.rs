//! Weights by name: [`HostTensors`] and their safetensors encoding (float32 for checkpoints
//! and models, float16 for ensembles), the mapping between burn's parameter paths and the
//! inference file's tensor names, and networks built from either.
//!
//! Burn path → inference name: `*.gamma` → `*.weight`, `*.beta` → `*.bias` (batch and layer
//! norms); everything else keeps its path (`stem.conv.weight`,
//! `stages.{s}.{b}.bn1.running_mean`, `stages.{s}.{b}.shortcut.conv.weight`,
//! `layers.{s}.blocks.{b}.attn.qkv.weight`, `head.weight` `[classes, in]`, `head.bias`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use emotrack::Emotion;

use crate::error::TrainError;
use crate::model::{Net, NetConfig};
use crate::params;

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

/// [`safetensors_bytes`] without metadata, for the file `path` (named in the error).
pub fn encode_f32(tensors: &HostTensors, path: &Path) -> Result<Vec<u8>, TrainError> {
    safetensors_bytes(tensors, None).map_err(|message| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
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

/// Reads float32 or float16 tensors (as float32) from safetensors bytes.
pub fn read_safetensors(bytes: &[u8]) -> Result<HostTensors, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = HostTensors::new();
    for (name, view) in st.tensors() {
        let values = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(format!(
                    "tensor {name} is {other:?}; store it as float32 or float16"
                ));
            }
        };
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

/// Inference tensor name of a burn parameter path.
pub fn inference_name(burn_path: &str) -> String {
    if let Some(p) = burn_path.strip_suffix(".gamma") {
        format!("{p}.weight")
    } else if let Some(p) = burn_path.strip_suffix(".beta") {
        format!("{p}.bias")
    } else {
        burn_path.to_string()
    }
}

/// Burn parameter path of an inference tensor name (inverse of [`inference_name`]).
pub fn burn_path(inference_name: &str) -> String {
    // Batch norms (`bn1`, `stem.bn`) and layer norms (`norm`, `norm1`) keep gamma and beta.
    let is_bn = |p: &str| {
        p.rsplit('.')
            .next()
            .is_some_and(|last| last.starts_with("bn") || last.starts_with("norm"))
    };
    if let Some(p) = inference_name.strip_suffix(".weight")
        && is_bn(p)
    {
        format!("{p}.gamma")
    } else if let Some(p) = inference_name.strip_suffix(".bias")
        && is_bn(p)
    {
        format!("{p}.beta")
    } else {
        inference_name.to_string()
    }
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

/// Builds a network of layout `cfg` from an inference model file's safetensors bytes (the
/// runtime's tensor names, see [`inference_name`]); `source` names the file in errors.
pub fn net_from_inference(
    cfg: &NetConfig,
    bytes: &[u8],
    device: &Device,
    source: &Path,
) -> Result<Net, TrainError> {
    let tensors: HostTensors = read_safetensors(bytes)
        .map_err(|message| TrainError::Checkpoint {
            path: source.to_path_buf(),
            message,
        })?
        .into_iter()
        .map(|(k, v)| (burn_path(&k), v))
        .collect();
    net_from_tensors(cfg, &tensors, device, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float16_files_read_back_as_float32_within_half_precision() {
        let values = vec![0.0, 1.0, -0.333_333_34, 1234.5, 6.1e-5];
        let tensors = HostTensors::from([("w".to_string(), (vec![5], values.clone()))]);
        let bytes = safetensors_bytes_f16(&tensors).expect("encode");
        assert!(bytes.len() < safetensors_bytes(&tensors, None).expect("f32").len());
        let (shape, back) = &read_safetensors(&bytes).expect("float16 is read")["w"];
        assert_eq!(shape, &vec![5]);
        for (a, b) in values.iter().zip(back) {
            assert!((a - b).abs() <= a.abs() * 1e-3, "{a} vs {b}");
        }
    }

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
            assert_eq!(inference_name(b), e);
            assert_eq!(burn_path(e), b);
        }
    }

    #[test]
    fn collected_paths_are_the_documented_names() {
        let device = Device::flex();
        let net = NetConfig::default().init(7, &device);
        let names: Vec<String> = params::collect(&net)
            .keys()
            .map(|k| inference_name(k))
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
