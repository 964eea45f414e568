//! A tiny training run on a few hundred real FER-2013 images: the loss goes down, a stopped
//! run resumes exactly, and the export loads in the inference runtime with the same outputs
//! as burn; distillation and fine-tuning from the built-in model.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../emotrack/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use emotrack::classify::Classifier;
use emotrack_train::checkpoint::{RunInfo, prepare_run};
use emotrack_train::config::{DistillConfig, OptimizerKind, Schedule, TeacherViews};
use emotrack_train::distill::{OnlineTeachers, teacher_targets};
use emotrack_train::evaluate::{Backend, load_model};
use emotrack_train::metrics::{Predictor, evaluate};
use emotrack_train::progress::Silent;
use emotrack_train::train::{TrainOutcome, TrainRequest, train};
use emotrack_train::tta::Tta;
use emotrack_train::{Dataset, NetConfig, TrainConfig, load_split};

/// The tests in this file run one at a time: burn's CPU kernels split work across the shared
/// rayon pool, and a second test competing for it changes float summation order, which would
/// break the bit-exact resume comparison.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 0.05,
        warmup_frac: 0.1,
        ema_decay: Some(0.9),
        raw_val_every: 1,
        ..TrainConfig::default()
    }
}

fn splits(fer: &Path) -> (Dataset, Dataset) {
    let train = load_split(&fer.join("train"))
        .unwrap()
        .stratified_subset(320);
    let val = load_split(&fer.join("val")).unwrap().stratified_subset(128);
    (train, val)
}

/// What every test here starts from.
struct Setup {
    /// Held for the whole test (while the `Setup` lives): these tests run one at a time.
    _serial: std::sync::MutexGuard<'static, ()>,
    fer: PathBuf,
    train: Dataset,
    val: Dataset,
}

/// The serial lock, the FER-2013 folder and its small splits; `None` (the test is skipped, or
/// fails with `EMOTRACK_REQUIRE_DATA=1`) without the folder.
fn setup() -> Option<Setup> {
    let serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fer = common::fer2013_dir()?;
    let (train, val) = splits(&fer);
    Some(Setup {
        _serial: serial,
        fer,
        train,
        val,
    })
}

fn run(
    dir: &Path,
    cfg: &TrainConfig,
    train_data: &Dataset,
    val: &Dataset,
    resume: bool,
    max: Option<usize>,
) -> TrainOutcome {
    let info = RunInfo {
        config: cfg.clone(),
        commit: None,
        command: Some("test".into()),
    };
    let info = prepare_run(dir, info, resume).unwrap();
    train(
        &info,
        TrainRequest {
            train: train_data,
            val,
            run_dir: dir,
            stop: Arc::new(AtomicBool::new(false)),
            max_epochs_this_session: max,
        },
        &mut Silent,
    )
    .unwrap()
}

fn metrics_rows(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// Asserts that the run in `dir` finished all `epochs` and that its train loss fell from the
/// first epoch to the last; returns its metrics rows.
fn assert_finished_with_falling_loss(
    dir: &Path,
    out: &TrainOutcome,
    epochs: usize,
) -> Vec<Vec<String>> {
    assert!(matches!(out, TrainOutcome::Finished { .. }), "{out:?}");
    let rows = metrics_rows(dir);
    assert_eq!(rows.len(), epochs);
    let loss = |r: &Vec<String>| r[2].parse::<f64>().unwrap();
    assert!(
        loss(&rows[epochs - 1]) < loss(&rows[0]),
        "train loss did not go down: {rows:?}"
    );
    rows
}

#[test]
fn tiny_run_lowers_the_loss_resumes_exactly_and_exports() {
    let Some(s) = setup() else {
        return;
    };
    let (train_data, val) = (&s.train, &s.val);
    let cfg = tiny_config();

    // Uninterrupted.
    let a = tempfile::tempdir().unwrap();
    let out = run(a.path(), &cfg, train_data, val, false, None);
    let rows = assert_finished_with_falling_loss(a.path(), &out, 3);

    // Stopped after one epoch, then resumed: the same numbers (elapsed time aside).
    let b = tempfile::tempdir().unwrap();
    let out = run(b.path(), &cfg, train_data, val, false, Some(1));
    assert!(
        matches!(out, TrainOutcome::Stopped { epoch: 1, batch: 0 }),
        "{out:?}"
    );
    run(b.path(), &cfg, train_data, val, true, None);
    let resumed = metrics_rows(b.path());
    let strip = |rows: Vec<Vec<String>>| {
        rows.into_iter()
            .map(|mut r| {
                r.pop();
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(resumed), strip(rows));

    // Export: the documented tensor names, loadable by the inference runtime, which agrees
    // with burn on real crops.
    let (bytes, config) = emotrack_train::model_file::from_run(a.path()).unwrap();
    config.validate().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("stem.conv.weight").unwrap().shape(),
        &[32, 1, 3, 3]
    );
    assert_eq!(st.tensor("head.weight").unwrap().shape(), &[7, 256]);
    assert!(st.tensor("stages.1.0.shortcut.bn.running_var").is_ok());
    assert!(st.tensor("stages.0.0.bn1.weight").is_ok());
    assert!(config.provenance.val_accuracy.is_some());
    Classifier::from_bytes(&bytes, config, a.path()).unwrap();
    assert!(a.path().join("model.safetensors").is_file());

    // With test-time augmentation too: both average the same views.
    for tta in [Tta::None, Tta::TenCrop] {
        let mut runtime =
            load_model(&a.path().join("model.safetensors"), Backend::Runtime, tta).unwrap();
        let mut burn = load_model(a.path(), Backend::Burn, tta).unwrap();
        let crops: Vec<&[u8]> = (0..16).map(|i| val.image(i * 7)).collect();
        let r = runtime.predict(&crops);
        let b = burn.predict(&crops);
        assert_eq!((r.len(), b.len()), (16, 16));
        for (x, y) in r.iter().zip(&b) {
            for (p, q) in x.0.iter().zip(y.0) {
                assert!((p - q).abs() < 1e-4, "{tta:?}: runtime {x:?} vs burn {y:?}");
            }
        }
    }
}

/// AdamW with the one-cycle schedule trains, and a stopped run resumes exactly (the optimiser's
/// moment estimates are in the checkpoint).
#[test]
fn adamw_with_one_cycle_lowers_the_loss_and_resumes_exactly() {
    let Some(s) = setup() else {
        return;
    };
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Adamw,
        schedule: Schedule::OneCycle,
        lr: 3e-3,
        weight_decay: 0.05,
        warmup_frac: 0.3,
        ..tiny_config()
    };
    let a = tempfile::tempdir().unwrap();
    let out = run(a.path(), &cfg, &s.train, &s.val, false, None);
    let rows = assert_finished_with_falling_loss(a.path(), &out, 3);
    let b = tempfile::tempdir().unwrap();
    run(b.path(), &cfg, &s.train, &s.val, false, Some(2));
    run(b.path(), &cfg, &s.train, &s.val, true, None);
    let without_time = |rows: Vec<Vec<String>>| {
        rows.into_iter()
            .map(|mut r| {
                r.pop();
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_time(metrics_rows(b.path())), without_time(rows));
}

#[test]
fn eval_on_a_real_subset_counts_every_image() {
    let Some(s) = setup() else {
        return;
    };
    let (train_data, val) = (&s.train, &s.val);
    let cfg = TrainConfig {
        epochs: 1,
        ..tiny_config()
    };
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &cfg, train_data, val, false, None);
    let subset = load_split(&s.fer.join("val"))
        .unwrap()
        .stratified_subset(200);
    let mut model = load_model(
        &dir.path().join("model.safetensors"),
        Backend::Runtime,
        Tta::TenCrop,
    )
    .unwrap();
    let m = evaluate(&mut model, &subset, 64);
    assert_eq!(m.count as usize, subset.len());
    let total: u64 = m.confusion.iter().flatten().sum();
    assert_eq!(total as usize, subset.len());
    for (c, row) in m.per_class.iter().zip(&m.confusion) {
        assert_eq!(c.support, row.iter().sum::<u64>());
    }
    assert!((0.0..=1.0).contains(&m.accuracy) && (0.0..=1.0).contains(&m.ece));
    let png = dir.path().join("confusion.png");
    emotrack_train::plot::metrics_png(&m, "test", &png).unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (1200, 740),
        "matrix and reliability diagram"
    );
}

/// The built-in model as a teacher: its probabilities line up with the images they belong to,
/// online teachers give un-augmented images the offline targets, and runs distilling from it,
/// offline and online, train.
#[test]
fn distilling_from_the_built_in_model() {
    let Some(s) = setup() else {
        return;
    };
    let (train_data, val) = (&s.train, &s.val);
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/emotion.safetensors");
    let distill = DistillConfig {
        teachers: vec![teacher],
        weight: 0.5,
        online: false,
        teacher_views: TeacherViews::Flip,
    };

    // On val, the teacher's targets are its predictions: about its accuracy, far above the 1 in
    // 7 that misaligned rows would give.
    let probs = teacher_targets(&distill, val).unwrap();
    assert_eq!(probs.len(), val.len());
    let right = probs
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            let best = (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            best == val.label(*i)
        })
        .count();
    assert!(right * 2 > val.len(), "{right} of {} right", val.len());
    assert!(
        probs
            .iter()
            .all(|p| (p.iter().sum::<f32>() - 1.0).abs() < 1e-4)
    );

    // Online teachers see the batches normalised as the student's input; un-augmented, they
    // give the offline targets.
    let student = TrainConfig::default().normalization;
    let online = OnlineTeachers::load(&distill, student).unwrap();
    let mut x = vec![0f32; val.len() * 48 * 48];
    for (i, item) in x.chunks_exact_mut(48 * 48).enumerate() {
        student.apply(val.image(i), item);
    }
    let live = online.probabilities(&x);
    assert_eq!(live.len(), probs.len());
    for (a, b) in live.iter().zip(&probs) {
        assert!(
            a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-4),
            "{a:?} vs {b:?}"
        );
    }

    // Teachers shown zoomed or ten-crop views: as accurate, but other probabilities.
    for views in [TeacherViews::Zoom(46), TeacherViews::TenCrop] {
        let other = DistillConfig {
            online: true,
            teacher_views: views,
            ..distill.clone()
        };
        let probs = OnlineTeachers::load(&other, student)
            .unwrap()
            .probabilities(&x);
        let right = probs
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() == val.label(*i)
            })
            .count();
        assert!(
            right * 2 > val.len(),
            "{views:?}: {right} of {} right",
            val.len()
        );
        let moved = probs
            .iter()
            .zip(&live)
            .filter(|(a, b)| a.iter().zip(*b).any(|(a, b)| (a - b).abs() > 1e-3))
            .count();
        assert!(moved * 2 > val.len(), "{views:?} changed {moved} targets");
    }

    for (online, teacher_views) in [
        (false, TeacherViews::Flip),
        (true, TeacherViews::Flip),
        (true, TeacherViews::Zoom(46)),
    ] {
        let cfg = TrainConfig {
            epochs: 2,
            distill: Some(DistillConfig {
                online,
                teacher_views,
                ..distill.clone()
            }),
            ..tiny_config()
        };
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), &cfg, train_data, val, false, None);
        assert_finished_with_falling_loss(dir.path(), &out, 2);
    }
}

#[test]
fn fine_tuning_starts_from_the_models_weights() {
    let Some(s) = setup() else {
        return;
    };
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/emotion.safetensors");
    // One epoch at a tiny learning rate on 320 images leaves the built-in model nearly as it
    // is: far above the ~25% that one such epoch from random weights reaches.
    let cfg = TrainConfig {
        epochs: 1,
        lr: 1e-4,
        warmup_frac: 0.0,
        ema_decay: None,
        init: Some(built_in.clone()),
        ..tiny_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &cfg, &s.train, &s.val, false, None);
    assert!(matches!(out, TrainOutcome::Finished { .. }), "{out:?}");
    let val_acc: f64 = metrics_rows(dir.path())[0][5].parse().unwrap();
    assert!(val_acc > 0.5, "val accuracy {val_acc} after fine-tuning");

    // Another layout than the model's is refused, saying what to change.
    let mut other = cfg.clone();
    let NetConfig::Resnet(resnet) = &mut other.model else {
        panic!("the tiny config trains a ResNet");
    };
    resnet.widths = vec![16, 32, 64, 128];
    let info = RunInfo {
        config: other,
        commit: None,
        command: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let info = prepare_run(dir.path(), info, false).unwrap();
    let err = train(
        &info,
        TrainRequest {
            train: &s.train,
            val: &s.val,
            run_dir: dir.path(),
            stop: Arc::new(AtomicBool::new(false)),
            max_epochs_this_session: None,
        },
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("architecture") && err.contains("`model`"),
        "{err}"
    );
}
