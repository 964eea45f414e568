//! Ensembles (`ensemble::ensemble`): one float16 file holding several ResNets whose logits the
//! runtime averages; and soups (`ensemble::soup`): one ResNet whose weights are the members'
//! mean. Built here from the built-in model and a copy with its logits doubled, on real faces.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use emotrack::classify::{Architecture, Classifier, ModelConfig, embedded_model};
use emotrack_train::checkpoint::{write_atomic, write_json};
use emotrack_train::ensemble::{ensemble, soup};
use emotrack_train::weights::{HostTensors, read_safetensors, safetensors_bytes};

/// The built-in model as a file in `dir`, its weights rounded to float16 (what an ensemble
/// stores) and its head multiplied by `head_scale` (so its logits are multiplied by it),
/// without its softmax temperature (an ensemble or soup starts at 1: `emotrack calibrate` fits
/// its own).
fn member(dir: &Path, name: &str, head_scale: f32) -> PathBuf {
    let (bytes, config) = embedded_model().unwrap();
    let config = ModelConfig {
        temperature: 1.0,
        ..config
    };
    let tensors: HostTensors = read_safetensors(bytes)
        .unwrap()
        .into_iter()
        .map(|(name, (shape, values))| {
            let scale = if name.starts_with("head.") {
                head_scale
            } else {
                1.0
            };
            let values = values
                .iter()
                .map(|&v| half::f16::from_f32(v * scale).to_f32())
                .collect();
            (name, (shape, values))
        })
        .collect();
    let path = dir.join(format!("{name}.safetensors"));
    write_atomic(&path, &safetensors_bytes(&tensors, None).unwrap()).unwrap();
    write_json(&path.with_extension("json"), &config).unwrap();
    path
}

/// Rewrites the config beside `model` with `edit` applied.
fn edit_config(model: &Path, edit: impl FnOnce(&mut ModelConfig)) {
    let json = model.with_extension("json");
    let mut config: ModelConfig =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    edit(&mut config);
    write_json(&json, &config).unwrap();
}

#[test]
fn an_ensemble_gives_the_mean_of_its_members_logits() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [member(dir.path(), "a", 1.0), member(dir.path(), "b", 2.0)];
    let (bytes, config) = ensemble(&paths).unwrap();
    assert!(
        matches!(&config.architecture, Architecture::Ensemble { members } if members.len() == 2)
    );
    assert!(bytes.len() < 5_000_000, "{} bytes", bytes.len());

    let crops = common::real_crops();
    let classifier = Classifier::from_bytes(&bytes, config, Path::new("ensemble")).unwrap();
    let whole = classifier.logits(&crops);
    let members: Vec<Vec<[f32; 7]>> = paths
        .iter()
        .map(|p| Classifier::from_file(p).unwrap().logits(&crops))
        .collect();
    let mean: Vec<[f32; 7]> = (0..crops.len())
        .map(|i| std::array::from_fn(|c| (members[0][i][c] + members[1][i][c]) / 2.0))
        .collect();
    let diff = common::max_abs_diff(&whole, &mean);
    assert!(diff <= 1e-4, "ensemble vs mean of members: {diff}");
    // Exported as ONNX (one graph, the members' outputs added), it gives the same logits
    // through tract.
    let (graph, graph_config) = classifier.to_onnx().unwrap();
    let onnx = dir.path().join("ensemble.onnx");
    std::fs::write(&onnx, graph).unwrap();
    write_json(&onnx.with_extension("json"), &graph_config).unwrap();
    let through_tract = Classifier::from_file(&onnx).unwrap().logits(&crops);
    let diff = common::max_abs_diff(&whole, &through_tract);
    assert!(diff <= 1e-4, "native vs ONNX ensemble: {diff}");
    // The members differ (b's logits are twice a's), so dropping either would be noticed.
    let apart = common::max_abs_diff(&members[0], &members[1]);
    assert!(
        apart > 0.1,
        "the members give nearly the same logits ({apart})"
    );
}

#[test]
fn ensembles_refuse_one_model_and_members_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [member(dir.path(), "a", 1.0), member(dir.path(), "b", 1.0)];

    let err = ensemble(&paths[..1]).unwrap_err().to_string();
    assert!(err.contains("at least two"), "{err}");

    // A member normalising its input differently cannot share the ensemble's input.
    edit_config(&paths[1], |c| c.normalization.mean += 0.1);
    let err = ensemble(&paths).unwrap_err().to_string();
    assert!(err.contains("normalisation"), "{err}");

    // A missing member is named.
    let missing = dir.path().join("nowhere.safetensors");
    let err = ensemble(&[paths[0].clone(), missing])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_soup_is_one_network_with_the_mean_of_its_members_weights() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [member(dir.path(), "a", 1.0), member(dir.path(), "b", 2.0)];
    let (bytes, config) = soup(&paths).unwrap();
    assert!(matches!(config.architecture, Architecture::Resnet { .. }));
    // The members differ only in the head, 1x and 2x: the mean network's logits are 1.5x a's.
    let crops = common::real_crops();
    let souped = Classifier::from_bytes(&bytes, config, Path::new("soup"))
        .unwrap()
        .logits(&crops);
    let a = Classifier::from_file(&paths[0]).unwrap().logits(&crops);
    let expected: Vec<[f32; 7]> = a.iter().map(|l| l.map(|v| v * 1.5)).collect();
    let diff = common::max_abs_diff(&souped, &expected);
    assert!(diff <= 1e-4, "soup vs 1.5x the first member: {diff}");
    assert!(
        common::max_abs_diff(&souped, &a) > 0.1,
        "the soup is just a"
    );
}

#[test]
fn soups_refuse_networks_of_different_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [member(dir.path(), "a", 1.0), member(dir.path(), "b", 1.0)];
    let err = soup(&paths[..1]).unwrap_err().to_string();
    assert!(err.contains("at least two"), "{err}");

    edit_config(&paths[1], |c| {
        if let Architecture::Resnet { widths, .. } = &mut c.architecture {
            widths[3] = 128;
        }
    });
    let err = soup(&paths).unwrap_err().to_string();
    assert!(err.contains("layout"), "{err}");
}
