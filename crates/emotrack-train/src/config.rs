//! Every training setting in one serde struct, saved into the run folder.

use std::path::PathBuf;

use emotrack::classify::Normalization;
use serde::{Deserialize, Serialize};

use crate::augment::AugmentConfig;
use crate::error::TrainError;
use crate::model::NetConfig;

/// A training run's settings. Missing JSON fields take the defaults below (the reference
/// recipe); unknown fields are an error so that typos do not pass silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of shuffling, augmentation, dropout and initialisation (default 42).
    pub seed: u64,
    /// Epochs of the whole schedule; the learning rate reaches `min_lr` after the last
    /// (default 100).
    pub epochs: usize,
    /// Images per optimisation step (default 128).
    pub batch_size: usize,
    /// The optimiser (default SGD).
    pub optimizer: OptimizerKind,
    /// The shape of the learning rate over the run (default cosine).
    pub schedule: Schedule,
    /// Peak learning rate after warm-up (default 0.1, for SGD with batch 128; AdamW wants
    /// about 1e-3).
    pub lr: f64,
    /// Learning rate at the end of the schedule (default 0).
    pub min_lr: f64,
    /// Fraction of all steps spent rising to `lr` (default 0.03; one-cycle is usually run
    /// with 0.3).
    pub warmup_frac: f64,
    /// SGD momentum (default 0.9; SGD only).
    pub momentum: f64,
    /// Nesterov momentum (default true; SGD only).
    pub nesterov: bool,
    /// Weight decay, all parameters (default 5e-4). SGD adds it to the gradients (L2);
    /// AdamW decays the weights directly by `lr · weight_decay` per step (decoupled), where
    /// about 0.05 is usual.
    pub weight_decay: f64,
    /// Label smoothing ε: targets are `(1-ε)·one_hot + ε/7` (default 0.1).
    pub label_smoothing: f32,
    /// Mixup Beta(α, α) parameter; 0 disables mixup (default 0).
    pub mixup_alpha: f32,
    /// CutMix Beta(α, α) parameter; 0 disables CutMix (default 0).
    pub cutmix_alpha: f32,
    /// Probability that a batch is mixed at all when mixup or CutMix is on (default 1). When
    /// both are on, each mixed batch picks one of them at random.
    pub mix_prob: f32,
    /// Class imbalance handling: each sample's loss is weighted by
    /// `(N / (7 · n_class))^power`, normalised over the batch. 0 disables it (default);
    /// 1 is inverse frequency; 0.5 a milder square-root weighting that helps disgust (436 of
    /// 28,709 images) without hurting overall accuracy much.
    pub class_weight_power: f32,
    /// Exponential moving average of the weights; `None` disables it. The exported and
    /// best-selected model is the EMA one when on (default 0.999, half-life ~3 epochs).
    pub ema_decay: Option<f64>,
    /// Knowledge distillation from trained models; `None` trains on the labels alone (default).
    pub distill: Option<DistillConfig>,
    /// Start from a trained model's weights instead of random ones (fine-tuning): a run folder
    /// or a `.safetensors` file beside its `.json`, as `emotrack eval --model` takes them, with
    /// the same architecture as `model`. Relative paths are from where `emotrack train` runs.
    /// `None` starts from random weights (default).
    pub init: Option<PathBuf>,
    /// The network layout.
    pub model: NetConfig,
    /// Training augmentation.
    pub augment: AugmentConfig,
    /// Pixel normalisation (the same struct inference uses).
    pub normalization: Normalization,
    /// Train on a stratified subset of this many images (smoke runs, tests).
    pub train_limit: Option<usize>,
    /// Validate on a stratified subset of this many images.
    pub val_limit: Option<usize>,
    /// With the EMA on, also validate the raw (non-EMA) weights every this many epochs, for the
    /// `raw_val_acc` column; 0 never (default 5; each costs one more pass over val).
    pub raw_val_every: usize,
    /// Batch size of validation forward passes (default 256).
    pub eval_batch_size: usize,
    /// Batches prepared ahead by the loader thread (default 4).
    pub prefetch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            epochs: 100,
            batch_size: 128,
            optimizer: OptimizerKind::default(),
            schedule: Schedule::default(),
            lr: 0.1,
            min_lr: 0.0,
            warmup_frac: 0.03,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            label_smoothing: 0.1,
            mixup_alpha: 0.0,
            cutmix_alpha: 0.0,
            mix_prob: 1.0,
            class_weight_power: 0.0,
            ema_decay: Some(0.999),
            distill: None,
            init: None,
            model: NetConfig::default(),
            augment: AugmentConfig::default(),
            normalization: Normalization::default(),
            train_limit: None,
            val_limit: None,
            raw_val_every: 5,
            eval_batch_size: 256,
            prefetch: 4,
        }
    }
}

impl TrainConfig {
    /// Checks every value, saying what to change.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.epochs == 0 || self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("epochs, batch_size and eval_batch_size must be positive");
        }
        if !(self.lr > 0.0) || !(self.min_lr >= 0.0) || self.min_lr > self.lr {
            return bad("lr must be positive and 0 <= min_lr <= lr");
        }
        if !(0.0..1.0).contains(&self.warmup_frac) {
            return bad("warmup_frac must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.momentum) || !(self.weight_decay >= 0.0) {
            return bad("momentum must be in [0, 1) and weight_decay >= 0");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing must be in [0, 1)");
        }
        if !(self.mixup_alpha >= 0.0) || !(self.cutmix_alpha >= 0.0) {
            return bad("mixup_alpha and cutmix_alpha must be >= 0 (0 disables them)");
        }
        if !(0.0..=1.0).contains(&self.mix_prob) || !(0.0..=2.0).contains(&self.class_weight_power)
        {
            return bad("mix_prob must be in [0, 1] and class_weight_power in [0, 2]");
        }
        if let Some(d) = self.ema_decay
            && !(0.0..1.0).contains(&d)
        {
            return bad("ema_decay must be in [0, 1) (or null to disable the EMA)");
        }
        if self.normalization.std <= 0.0 {
            return bad("normalization.std must be positive");
        }
        if self.prefetch == 0 {
            return bad("prefetch must be at least 1");
        }
        if let Some(d) = &self.distill {
            if d.teachers.is_empty() {
                return bad("distill.teachers is empty: name at least one trained model");
            }
            if !(d.weight > 0.0 && d.weight <= 1.0) {
                return bad("distill.weight must be in (0, 1]");
            }
            let side = crate::data::IMAGE_SIDE as u32;
            if let TeacherViews::Zoom(n) = d.teacher_views
                && !((side / 2..=side).contains(&n) && n % 2 == 0)
            {
                return bad(
                    "distill.teacher_views zoom must be an even number in [24, 48] (48: the whole image)",
                );
            }
            if d.teacher_views != TeacherViews::Flip && !d.online {
                return bad(
                    "distill.teacher_views other than \"flip\" needs online teachers (\"online\": true)",
                );
            }
        }
        self.model.validate()?;
        self.augment.validate()
    }
}

/// The optimiser of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with `momentum` (Nesterov if `nesterov`) and L2 weight
    /// decay.
    #[default]
    Sgd,
    /// Adam with decoupled weight decay (Loshchilov & Hutter), β = (0.9, 0.999), ε = 1e-5.
    Adamw,
}

/// How the learning rate moves over a run of `epochs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// A linear warm-up from about 0 to `lr` over the first `warmup_frac` of the steps, then
    /// a cosine decay to `min_lr`.
    #[default]
    Cosine,
    /// Smith's one-cycle policy as PyTorch's `OneCycleLR` shapes it: the rate climbs along a
    /// half cosine from `lr / 25` to `lr` over the first `warmup_frac` of the steps, then falls
    /// along a half cosine to `min_lr`. (PyTorch also cycles the momentum; this keeps it
    /// fixed.)
    OneCycle,
}

/// The one-cycle schedule starts at `lr` divided by this (PyTorch's `div_factor`).
pub const ONE_CYCLE_DIV: f64 = 25.0;

/// Knowledge distillation: each training image's target mixes its (label-smoothed) label with
/// the teachers' probabilities for it.
///
/// Offline (the default), the teachers see each training image once, un-augmented, with its
/// mirror image averaged in (flip test-time augmentation), before the first epoch, and mixed
/// (mixup/CutMix) images mix these targets like the labels. Online, the teachers classify
/// every batch as the student sees it, augmented and mixed (also flip-averaged); see
/// [`crate::distill`]. Either way the teachers' probabilities are averaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Trained models, as `emotrack eval --model` takes them (a run folder or a
    /// `.safetensors` file beside its `.json`); relative paths are from where `emotrack train`
    /// runs.
    pub teachers: Vec<PathBuf>,
    /// The teachers' share of each target, in (0, 1] (default 0.5).
    #[serde(default = "DistillConfig::default_weight")]
    pub weight: f32,
    /// Teachers run on every augmented batch instead of once per image (default false).
    #[serde(default)]
    pub online: bool,
    /// What online teachers see of each image ([`TeacherViews`]; default: it and its mirror
    /// image).
    #[serde(default)]
    pub teacher_views: TeacherViews,
}

/// The views of each (augmented) training image that online teachers classify; their
/// probabilities are averaged. Test-time augmentation makes our models more accurate (on
/// val, flip-averaged: the 100-epoch model 67.71%, the centre 46 px enlarged 68.04%, ten-crop
/// 68.40%); shown such views, the teachers are that much better, and the student, which sees
/// only the image, learns what they say at their best (the views are functions of the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeacherViews {
    /// The image and its mirror image (2 views).
    #[default]
    Flip,
    /// `{"zoom": N}`: the centre N x N pixels (N even, so the square is centred on whole
    /// pixels) enlarged back to 48x48 (bilinear), and its mirror image (2 views).
    Zoom(u32),
    /// `eval --tta ten-crop`'s views: the centre and the four corner squares of 44 px, each
    /// enlarged to 48x48, and their mirror images (10 views: five times the teachers' work).
    TenCrop,
}

impl DistillConfig {
    fn default_weight() -> f32 {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
    fn every_config_in_the_repo_parses_and_is_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                let cfg: TrainConfig = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                cfg.validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 3, "only {seen} configs in {}", dir.display());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn teacher_views_need_online_teachers_and_a_sensible_zoom() {
        let with = |online, teacher_views| TrainConfig {
            distill: Some(DistillConfig {
                teachers: vec!["runs/teacher".into()],
                weight: 0.5,
                online,
                teacher_views,
            }),
            ..TrainConfig::default()
        };
        for views in [
            TeacherViews::Flip,
            TeacherViews::Zoom(46),
            TeacherViews::TenCrop,
        ] {
            assert!(with(true, views).validate().is_ok(), "{views:?}");
        }
        assert!(with(false, TeacherViews::Flip).validate().is_ok());
        for views in [TeacherViews::Zoom(46), TeacherViews::TenCrop] {
            let err = with(false, views).validate().unwrap_err().to_string();
            assert!(err.contains("online"), "{err}");
        }
        for bad in [0, 22, 45, 49] {
            let err = with(true, TeacherViews::Zoom(bad))
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains("zoom"), "{bad}: {err}");
        }
        // The JSON forms.
        let parse = |v: &str| serde_json::from_str::<TeacherViews>(v).unwrap();
        assert_eq!(parse(r#""flip""#), TeacherViews::Flip);
        assert_eq!(parse(r#"{"zoom": 46}"#), TeacherViews::Zoom(46));
        assert_eq!(parse(r#""ten-crop""#), TeacherViews::TenCrop);
    }
}
