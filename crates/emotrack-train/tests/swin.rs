//! The Swin transformer of the runtime (`emotrack::classify`, on `emotrack-nn`) and of its ONNX
//! export (run by tract) against burn's forward pass, on real FER-2013 val crops (issue 36: max
//! logit difference ≤ 1e-4). Each network is built by `NetConfig::init` (seeded), given
//! weights of a trained network's scale, exported the way a run exports its best weights
//! (`best.safetensors` by burn path → `model_file::from_run`) and loaded with
//! `Classifier::from_bytes`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use emotrack::classify::{Architecture, Classifier, ModelConfig, embedded_model};
use emotrack_train::TrainConfig;
use emotrack_train::checkpoint::{
    BestInfo, RunInfo, prepare_run, write_atomic, write_best, write_json,
};
use emotrack_train::ensemble::{ensemble, soup};
use emotrack_train::model::{Net, NetConfig};
use emotrack_train::swin::SwinConfig;
use emotrack_train::weights::{HostTensors, net_from_tensors, read_safetensors, safetensors_bytes};
use emotrack_train::{model_file, params};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The bar for the largest logit difference.
const PARITY: f32 = 1e-4;

/// The model of the shipped training config, `configs/fer2013-swin.json`.
fn shipped() -> NetConfig {
    let path = common::workspace_root().join("configs/fer2013-swin.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let config: TrainConfig = serde_json::from_str(&text).unwrap();
    assert!(matches!(config.model, NetConfig::Swin(_)), "{path:?}");
    config.model
}

/// Shifted windows on two stages: 2x2 patches make 24x24 tokens, windows of 6 shift on the
/// 24x24 and 12x12 stages (the 6x6 one is a single window).
fn shifted_twice() -> NetConfig {
    NetConfig::Swin(SwinConfig {
        patch_size: 2,
        embed_dim: 16,
        depths: vec![2, 2, 2],
        heads: vec![1, 2, 4],
        window: 6,
        ..SwinConfig::default()
    })
}

/// A burn network of layout `cfg` (initialised from `seed`), its weights then redrawn at the
/// scale of a trained network: the initialisation's 0.02-std weights, unit layer norms and
/// near-zero position biases would give logits near zero, which no bug could move by 1e-4.
/// Weights get std 1/√fan-in, layer norms γ = 1 ± 0.3 and β ± 0.3, biases ± 0.1 and the
/// relative-position tables ± 1 (so the shifted windows' mask and the table's indexing both
/// weigh on the result).
fn network(cfg: &NetConfig, seed: u64, device: &Device) -> Net {
    device.seed(seed);
    let initial = cfg.init(7, device);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || -> f32 { StandardNormal.sample(&mut rng) };
    let tensors: HostTensors = params::collect_host(&initial)
        .into_iter()
        .map(|(path, (shape, values))| {
            let fan_in: usize = shape.iter().skip(1).product();
            let mut draw = || -> f32 {
                if path.ends_with(".gamma") {
                    1.0 + 0.3 * normal()
                } else if path.ends_with(".beta") {
                    0.3 * normal()
                } else if path.ends_with("relative_position_bias_table") {
                    normal()
                } else if path.ends_with(".bias") {
                    0.1 * normal()
                } else {
                    normal() / (fan_in.max(1) as f32).sqrt()
                }
            };
            let values = values.iter().map(|_| draw()).collect();
            (path, (shape, values))
        })
        .collect();
    net_from_tensors(cfg, &tensors, device, Path::new("test weights")).unwrap()
}

/// `net` exported as a run exports its best weights, and loaded by the runtime.
fn exported(net: &Net, cfg: &NetConfig, dir: &Path) -> (Vec<u8>, ModelConfig, Classifier) {
    let info = RunInfo {
        config: TrainConfig {
            model: cfg.clone(),
            ..TrainConfig::default()
        },
        commit: None,
        command: Some("swin parity test".into()),
    };
    prepare_run(dir, info, false).unwrap();
    let best = BestInfo {
        epoch: 1,
        val_accuracy: 0.0,
        val_macro_f1: 0.0,
        elapsed_s: 0.0,
        ema: false,
    };
    write_best(dir, net, &best).unwrap();
    let (bytes, config) = model_file::from_run(dir).unwrap();
    let classifier = Classifier::from_bytes(&bytes, config.clone(), dir).unwrap();
    (bytes, config, classifier)
}

/// Burn's logits for the crops, normalised as the model config says.
fn burn_logits(net: &Net, crops: &[image::GrayImage], config: &ModelConfig) -> Vec<[f32; 7]> {
    let side = config.input_size as usize;
    let mut x = vec![0.0; crops.len() * side * side];
    for (crop, out) in crops.iter().zip(x.chunks_exact_mut(side * side)) {
        config.normalization.apply(crop.as_raw(), out);
    }
    let device = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(x, [crops.len(), 1, side, side]), &device);
    let logits = net
        .valid()
        .forward(x)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    logits
        .chunks_exact(7)
        .map(|row| std::array::from_fn(|i| row[i]))
        .collect()
}

/// Runs the three engines on real val crops and checks both parities; returns the two
/// differences for the message.
fn check_parity(cfg: &NetConfig, seed: u64) -> (f32, f32) {
    let device = Device::flex();
    let net = network(cfg, seed, &device);
    let dir = tempfile::tempdir().unwrap();
    let (_, config, native) = exported(&net, cfg, dir.path());
    let crops = common::real_crops();
    let reference = burn_logits(&net, &crops, &config);
    let ours = native.logits(&crops);

    // The logits must be large and varied enough for the bar to mean something.
    let spread = reference
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        spread > 1.0,
        "logits too small to test parity: max |logit| {spread}"
    );
    assert!(
        common::max_abs_diff(&reference[..1], &reference[1..2]) > 0.1,
        "two different faces get nearly the same logits"
    );

    let native_vs_burn = common::max_abs_diff(&ours, &reference);
    assert!(
        native_vs_burn <= PARITY,
        "runtime vs burn: max logit difference {native_vs_burn}"
    );

    // The ONNX export, run by tract, against the runtime.
    let (graph, graph_config) = native.to_onnx().unwrap();
    let onnx = dir.path().join("swin.onnx");
    std::fs::write(&onnx, graph).unwrap();
    write_json(&onnx.with_extension("json"), &graph_config).unwrap();
    let through_tract = Classifier::from_file(&onnx).unwrap().logits(&crops);
    let tract_vs_native = common::max_abs_diff(&through_tract, &ours);
    assert!(
        tract_vs_native <= PARITY,
        "tract on the ONNX export vs runtime: max logit difference {tract_vs_native}"
    );
    (native_vs_burn, tract_vs_native)
}

#[test]
fn the_shipped_layout_gives_burns_logits_on_the_runtime_and_through_onnx() {
    if common::fer2013_dir().is_none() {
        return;
    }
    let (burn, tract) = check_parity(&shipped(), 36);
    eprintln!("shipped layout: runtime vs burn {burn:e}, tract vs runtime {tract:e}");
}

#[test]
fn shifted_windows_on_two_stages_give_burns_logits_on_the_runtime_and_through_onnx() {
    if common::fer2013_dir().is_none() {
        return;
    }
    let (burn, tract) = check_parity(&shifted_twice(), 37);
    eprintln!("two shifted stages: runtime vs burn {burn:e}, tract vs runtime {tract:e}");
}

/// A model file `<name>.safetensors` + `.json` in `dir` from inference tensors rounded to
/// float16 (what an ensemble stores, so its members and the ensemble hold the same numbers).
fn write_f16_model(
    dir: &Path,
    name: &str,
    tensors: &HostTensors,
    config: &ModelConfig,
) -> std::path::PathBuf {
    let rounded: HostTensors = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let values = values
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect();
            (name.clone(), (shape.clone(), values))
        })
        .collect();
    let path = dir.join(format!("{name}.safetensors"));
    write_atomic(&path, &safetensors_bytes(&rounded, None).unwrap()).unwrap();
    write_json(&path.with_extension("json"), config).unwrap();
    path
}

#[test]
fn a_resnet_and_a_swin_average_their_logits_in_one_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, config) = embedded_model().unwrap();
    let resnet_config = ModelConfig {
        temperature: 1.0,
        ..config
    };
    let resnet = write_f16_model(
        dir.path(),
        "resnet",
        &read_safetensors(bytes).unwrap(),
        &resnet_config,
    );
    let cfg = shipped();
    let net = network(&cfg, 38, &Device::flex());
    let run = dir.path().join("run");
    let (swin_bytes, swin_config, _) = exported(&net, &cfg, &run);
    let swin = write_f16_model(
        dir.path(),
        "swin",
        &read_safetensors(&swin_bytes).unwrap(),
        &swin_config,
    );

    let paths = [resnet, swin];
    let (bytes, config) = ensemble(&paths).unwrap();
    assert!(
        matches!(&config.architecture, Architecture::Ensemble { members }
            if matches!(members[..], [Architecture::Resnet { .. }, Architecture::Swin { .. }])),
        "{:?}",
        config.architecture
    );
    let crops = common::real_crops();
    let both = Classifier::from_bytes(&bytes, config, Path::new("ensemble")).unwrap();
    let whole = both.logits(&crops);
    let members: Vec<Vec<[f32; 7]>> = paths
        .iter()
        .map(|p| Classifier::from_file(p).unwrap().logits(&crops))
        .collect();
    let mean: Vec<[f32; 7]> = (0..crops.len())
        .map(|i| std::array::from_fn(|c| (members[0][i][c] + members[1][i][c]) / 2.0))
        .collect();
    let diff = common::max_abs_diff(&whole, &mean);
    assert!(diff <= PARITY, "ensemble vs mean of members: {diff}");
    assert!(
        common::max_abs_diff(&members[0], &members[1]) > 0.1,
        "the members give nearly the same logits"
    );
    // One ONNX graph, the two networks' outputs added, gives the same through tract.
    let (graph, graph_config) = both.to_onnx().unwrap();
    let onnx = dir.path().join("ensemble.onnx");
    std::fs::write(&onnx, graph).unwrap();
    write_json(&onnx.with_extension("json"), &graph_config).unwrap();
    let through_tract = Classifier::from_file(&onnx).unwrap().logits(&crops);
    let diff = common::max_abs_diff(&whole, &through_tract);
    assert!(diff <= PARITY, "native vs ONNX ensemble: {diff}");
}

#[test]
fn a_soup_is_refused_a_swin_member() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shipped();
    let net = network(&cfg, 39, &Device::flex());
    let (bytes, config, _) = exported(&net, &cfg, &dir.path().join("run"));
    let tensors = read_safetensors(&bytes).unwrap();
    let a = write_f16_model(dir.path(), "a", &tensors, &config);
    let b = write_f16_model(dir.path(), "b", &tensors, &config);
    let err = soup(&[a, b]).unwrap_err().to_string();
    assert!(
        err.contains("a.safetensors") && err.contains("only ResNets") && err.contains("--average"),
        "{err}"
    );
}

#[test]
fn a_swin_file_without_one_of_its_tensors_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shifted_twice();
    let net = network(&cfg, 40, &Device::flex());
    let (bytes, config, _) = exported(&net, &cfg, dir.path());
    let missing = "layers.1.blocks.1.attn.relative_position_bias_table";
    let mut tensors = read_safetensors(&bytes).unwrap();
    assert!(
        tensors.remove(missing).is_some(),
        "the export names it {missing}"
    );
    let bytes = safetensors_bytes(&tensors, None).unwrap();
    let err = Classifier::from_bytes(&bytes, config, Path::new("swin.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(missing) && err.contains("missing"), "{err}");
}

#[test]
fn a_swin_config_whose_window_does_not_tile_a_stage_says_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shipped();
    let net = network(&cfg, 41, &Device::flex());
    let (bytes, mut config, _) = exported(&net, &cfg, dir.path());
    if let Architecture::Swin { window, .. } = &mut config.architecture {
        *window = 5;
    }
    let err = Classifier::from_bytes(&bytes, config, Path::new("swin.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("window 5") && err.contains("divides"), "{err}");
}
