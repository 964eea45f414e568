//! The training loop: SGD or AdamW with a warm-up + cosine or one-cycle schedule, label
//! smoothing, optional mixup/CutMix,
//! class weighting and weight EMA; per-epoch validation, checkpoints, `metrics.csv` and the
//! export of the best weights. Resumable mid-epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use emotrack::{Emotion, EmotionScores};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

use crate::augment::augment_into;
use crate::checkpoint::{self, BestInfo, LoopState, METRICS_FILE, METRICS_HEADER, RunInfo};
use crate::config::{ONE_CYCLE_DIV, OptimizerKind, Schedule, TrainConfig};
use crate::data::{Dataset, IMAGE_PIXELS, IMAGE_SIDE};
use crate::distill::{TeacherTargets, Teachers};
use crate::error::TrainError;
use crate::metrics::{Metrics, MetricsBuilder};
use crate::model::{Net, NetConfig};
use crate::params;
use crate::tta::Tta;

/// Progress of one optimisation step, for progress bars.
#[derive(Debug, Clone)]
pub struct BatchProgress {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Batch within the epoch (0-based, just finished).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean training loss of the epoch so far.
    pub loss: f64,
    /// Training accuracy of the epoch so far.
    pub accuracy: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Images per second over this session's steps so far.
    pub images_per_s: f64,
}

/// One finished epoch (a line of `metrics.csv`).
#[derive(Debug, Clone)]
pub struct EpochSummary {
    /// Epoch (1-based, as in the CSV).
    pub epoch: usize,
    /// Total epochs of the schedule.
    pub epochs: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss (with label smoothing / mixing).
    pub train_loss: f64,
    /// Training accuracy (augmented images, hard labels).
    pub train_accuracy: f64,
    /// Validation metrics of the selected weights (EMA when on).
    pub val: Metrics,
    /// Validation accuracy of the raw (non-EMA) weights, when the EMA is on.
    pub raw_val_accuracy: Option<f64>,
    /// Training seconds so far (all sessions).
    pub elapsed_s: f64,
    /// Whether this epoch set a new best.
    pub is_best: bool,
}

/// Receives progress; the CLI draws bars with it.
pub trait TrainObserver {
    /// Training (re)starts at `state`, with `batches` per epoch.
    fn on_start(&mut self, _config: &TrainConfig, _state: &LoopState, _batches: usize) {}
    /// A step finished.
    fn on_batch(&mut self, _progress: &BatchProgress) {}
    /// Validation of an epoch is running.
    fn on_validate(&mut self, _epoch: usize) {}
    /// An epoch finished.
    fn on_epoch(&mut self, _summary: &EpochSummary) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl TrainObserver for Silent {}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// All epochs done.
    Finished {
        /// Best validation accuracy.
        best_val_accuracy: Option<f64>,
    },
    /// Stopped on request after writing a checkpoint; resume to continue.
    Stopped {
        /// Epoch in progress (0-based).
        epoch: usize,
        /// Next batch.
        batch: usize,
    },
}

/// What to train on and where to write.
#[derive(Debug)]
pub struct TrainRequest<'a> {
    /// Training split, already loaded.
    pub train: &'a Dataset,
    /// Validation split, already loaded.
    pub val: &'a Dataset,
    /// The run folder.
    pub run_dir: &'a Path,
    /// Set to stop after the current step (a checkpoint is written first).
    pub stop: Arc<AtomicBool>,
    /// Also stop (with a checkpoint) after this many epochs of this session, if set.
    pub max_epochs_this_session: Option<usize>,
}

/// Creates a run folder with its `config.json`, or, with `resume`, reads the existing one.
/// Refuses to start over an existing run without `resume`.
pub fn prepare_run(run_dir: &Path, info: RunInfo, resume: bool) -> Result<RunInfo, TrainError> {
    let cfg_path = run_dir.join(checkpoint::CONFIG_FILE);
    if resume {
        if !cfg_path.is_file() {
            return Err(TrainError::Config(format!(
                "cannot resume: {} does not exist; start the run without --resume",
                cfg_path.display()
            )));
        }
        let stored: RunInfo = checkpoint::read_json(&cfg_path)?;
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
    checkpoint::write_json(&cfg_path, &info)?;
    Ok(info)
}

/// Mixes seed components into one 64-bit seed (splitmix64 finaliser over a running hash).
fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

const STREAM_SHUFFLE: u64 = 1;
const STREAM_SAMPLE: u64 = 2;
const STREAM_MIX: u64 = 3;
const STREAM_DROPOUT: u64 = 4;
const STREAM_INIT: u64 = 5;

/// Learning rate at `step` of `total`: the warm-up of `cfg.schedule`, then cosine to `min_lr`.
pub fn learning_rate(cfg: &TrainConfig, step: u64, total: u64) -> f64 {
    let warm = ((cfg.warmup_frac * total as f64).round() as u64).min(total.saturating_sub(1));
    let half_cosine = |from: f64, to: f64, t: f64| {
        to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    };
    if step < warm {
        return match cfg.schedule {
            Schedule::Cosine => cfg.lr * (step + 1) as f64 / warm as f64,
            Schedule::OneCycle => {
                half_cosine(cfg.lr / ONE_CYCLE_DIV, cfg.lr, step as f64 / warm as f64)
            }
        };
    }
    let span = (total - warm).max(1) as f64;
    let t = ((step - warm) as f64 / span).min(1.0);
    half_cosine(cfg.lr, cfg.min_lr, t)
}

/// Batches per epoch: the last incomplete batch is dropped (BatchNorm dislikes tiny batches),
/// unless the dataset is smaller than one batch.
pub fn batches_per_epoch(n: usize, batch: usize) -> usize {
    (n / batch).max(1)
}

/// One prepared batch.
struct Batch {
    index: usize,
    x: Vec<f32>,
    targets: Vec<f32>,
    weights: Vec<f32>,
    labels: Vec<i64>,
}

/// How a training image's target is made: its label, smoothed, mixed with the teachers'
/// probabilities when distilling.
#[derive(Debug, Clone, Copy)]
struct Targets<'a> {
    smoothing: f32,
    /// The teachers' probabilities and their share of each target, when distilling.
    teachers: Option<(&'a TeacherTargets, f32)>,
}

impl Targets<'_> {
    /// Adds `w` times the target of image `i` (labelled `label`) to `t`.
    fn add(&self, i: usize, label: usize, t: &mut [f32], w: f32) {
        let k = t.len() as f32;
        // Teachers classified every training image, so `i` always has its row.
        let soft = self.teachers.map(|(p, weight)| (&p[i], weight));
        for (m, v) in t.iter_mut().enumerate() {
            let hard = if m == label {
                1.0 - self.smoothing
            } else {
                0.0
            } + self.smoothing / k;
            let mixed = match soft {
                Some((p, weight)) => (1.0 - weight) * hard + weight * p[m],
                None => hard,
            };
            *v += w * mixed;
        }
    }
}

/// Starts the loader thread for one epoch: it augments batches `from..` ahead of the model.
/// Everything random is seeded from `(seed, epoch, position)`, so the batches do not depend on
/// timing or on where a resumed run picks up.
fn spawn_loader(
    data: Arc<Dataset>,
    cfg: Arc<TrainConfig>,
    class_weights: [f32; Emotion::COUNT],
    teachers: Option<Arc<Teachers>>,
    epoch: usize,
    from: usize,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(cfg.prefetch);
    std::thread::spawn(move || {
        let n = data.len();
        let bs = cfg.batch_size.min(n);
        let batches = batches_per_epoch(n, bs);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(&[
            cfg.seed,
            STREAM_SHUFFLE,
            epoch as u64,
        ])));
        let k = Emotion::COUNT;
        // Online teachers run on the training thread instead (see `train`).
        let offline = match teachers.as_deref() {
            Some(Teachers::Offline { targets, weight }) => Some((targets, *weight)),
            _ => None,
        };
        let target = Targets {
            smoothing: cfg.label_smoothing,
            teachers: offline,
        };
        for b in from..batches {
            let idx = &order[b * bs..(b + 1) * bs];
            let mut x = vec![0f32; bs * IMAGE_PIXELS];
            for (j, (&i, out)) in idx.iter().zip(x.chunks_exact_mut(IMAGE_PIXELS)).enumerate() {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(&[
                    cfg.seed,
                    STREAM_SAMPLE,
                    epoch as u64,
                    (b * bs + j) as u64,
                ]));
                augment_into(
                    data.image(i),
                    out,
                    &cfg.augment,
                    &cfg.normalization,
                    &mut rng,
                );
            }
            let labels: Vec<usize> = idx.iter().map(|&i| data.label(i)).collect();
            let mut targets = vec![0f32; bs * k];
            let mut weights = vec![0f32; bs];
            let mut hard = labels.clone();
            let mut mrng =
                ChaCha8Rng::seed_from_u64(mix(&[cfg.seed, STREAM_MIX, epoch as u64, b as u64]));
            let mixing = mix_batch(&cfg, &mut x, bs, &mut mrng);
            for j in 0..bs {
                let t = &mut targets[j * k..(j + 1) * k];
                match &mixing {
                    Some((lam, perm)) => {
                        let (a, o) = (labels[j], labels[perm[j]]);
                        target.add(idx[j], a, t, *lam);
                        target.add(idx[perm[j]], o, t, 1.0 - *lam);
                        weights[j] = lam * class_weights[a] + (1.0 - lam) * class_weights[o];
                        if *lam < 0.5 {
                            hard[j] = o;
                        }
                    }
                    None => {
                        target.add(idx[j], labels[j], t, 1.0);
                        weights[j] = class_weights[labels[j]];
                    }
                }
            }
            let wsum: f32 = weights.iter().sum();
            for w in &mut weights {
                *w /= wsum;
            }
            let batch = Batch {
                index: b,
                x,
                targets,
                weights,
                labels: hard.into_iter().map(|l| l as i64).collect(),
            };
            if tx.send(batch).is_err() {
                return; // the trainer stopped
            }
        }
    });
    rx
}

/// Applies mixup or CutMix to the batch in place; returns `(λ, partner of each image)`.
fn mix_batch(
    cfg: &TrainConfig,
    x: &mut [f32],
    bs: usize,
    rng: &mut ChaCha8Rng,
) -> Option<(f32, Vec<usize>)> {
    let mixup = cfg.mixup_alpha > 0.0;
    let cutmix = cfg.cutmix_alpha > 0.0;
    if !(mixup || cutmix) || rng.random::<f32>() >= cfg.mix_prob || bs < 2 {
        return None;
    }
    let use_cutmix = cutmix && (!mixup || rng.random::<bool>());
    let alpha = if use_cutmix {
        cfg.cutmix_alpha
    } else {
        cfg.mixup_alpha
    };
    let lam: f32 = Beta::new(alpha, alpha).ok()?.sample(rng);
    let mut perm: Vec<usize> = (0..bs).collect();
    perm.shuffle(rng);
    let src = x.to_vec();
    if use_cutmix {
        let n = IMAGE_SIDE as f32;
        let cut = (1.0 - lam).sqrt();
        let (w, h) = ((n * cut) as usize, (n * cut) as usize);
        let cx = rng.random_range(0..IMAGE_SIDE);
        let cy = rng.random_range(0..IMAGE_SIDE);
        let x0 = cx.saturating_sub(w / 2);
        let x1 = (cx + w / 2).min(IMAGE_SIDE);
        let y0 = cy.saturating_sub(h / 2);
        let y1 = (cy + h / 2).min(IMAGE_SIDE);
        for (j, &p) in perm.iter().enumerate() {
            for y in y0..y1 {
                let row = y * IMAGE_SIDE;
                let d = j * IMAGE_PIXELS + row;
                let s = p * IMAGE_PIXELS + row;
                x[d + x0..d + x1].copy_from_slice(&src[s + x0..s + x1]);
            }
        }
        // λ is the fraction of the image that stayed.
        let area = ((x1 - x0) * (y1 - y0)) as f32 / (n * n);
        Some((1.0 - area, perm))
    } else {
        for (j, &p) in perm.iter().enumerate() {
            let (d, s) = (j * IMAGE_PIXELS, p * IMAGE_PIXELS);
            for i in 0..IMAGE_PIXELS {
                x[d + i] = lam * src[d + i] + (1.0 - lam) * src[s + i];
            }
        }
        Some((lam, perm))
    }
}

/// Per-class loss weights `(N / (7 n_c))^power`.
fn class_weights(counts: [usize; Emotion::COUNT], power: f32) -> [f32; Emotion::COUNT] {
    let n: usize = counts.iter().sum();
    counts.map(|c| {
        if power == 0.0 || c == 0 {
            1.0
        } else {
            (n as f32 / (Emotion::COUNT as f32 * c as f32)).powf(power)
        }
    })
}

fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: cfg.nesterov,
            }))
            .with_weight_decay((cfg.weight_decay > 0.0).then_some(WeightDecayConfig {
                penalty: cfg.weight_decay as f32,
            }))
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .init(),
    }
}

/// Scores of a non-autodiff network for a batch of crops, averaged over the `tta` views of
/// each.
pub fn predict_burn(
    net: &Net,
    crops: &[&[u8]],
    norm: &emotrack::classify::Normalization,
    tta: Tta,
    device: &Device,
) -> Vec<EmotionScores> {
    let views: Vec<Vec<u8>> = crops.iter().flat_map(|c| tta.views(c)).collect();
    let mut x = vec![0f32; views.len() * IMAGE_PIXELS];
    for (v, out) in views.iter().zip(x.chunks_exact_mut(IMAGE_PIXELS)) {
        norm.apply(v, out);
    }
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [views.len(), 1, IMAGE_SIDE, IMAGE_SIDE]),
        device,
    );
    let p = softmax(net.forward(x), 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let scores: Vec<EmotionScores> = p
        .chunks_exact(Emotion::COUNT)
        .map(|c| {
            let mut s = [0f32; Emotion::COUNT];
            s.copy_from_slice(c);
            EmotionScores(s)
        })
        .collect();
    tta.average(&scores)
}

/// Validation metrics of a (non-autodiff) network.
pub fn validate(net: &Net, data: &Dataset, cfg: &TrainConfig, device: &Device) -> Metrics {
    let mut m = MetricsBuilder::default();
    let mut start = 0;
    while start < data.len() {
        let end = (start + cfg.eval_batch_size).min(data.len());
        let crops: Vec<&[u8]> = (start..end).map(|i| data.image(i)).collect();
        for (i, s) in (start..end).zip(predict_burn(
            net,
            &crops,
            &cfg.normalization,
            Tta::None,
            device,
        )) {
            m.add(data.label(i), &s);
        }
        start = end;
    }
    m.finish()
}

/// Everything the loop carries between steps.
struct Session {
    model: Net,
    optim: ModuleOptimizer,
    ema: Option<Net>,
    state: LoopState,
}

fn save_checkpoint(run_dir: &Path, s: &Session) -> Result<(), TrainError> {
    let staging = run_dir.join(format!("{}.new", checkpoint::CHECKPOINT_DIR));
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
    let model_path = staging.join("model.bpk");
    s.model
        .valid()
        .into_record()
        .save(&model_path)
        .map_err(ck(model_path.clone()))?;
    let optim_path = staging.join("optim.bpk");
    s.optim.save(&optim_path).map_err(ck(optim_path.clone()))?;
    if let Some(ema) = &s.ema {
        let path = staging.join("ema.safetensors");
        let bytes =
            checkpoint::safetensors_bytes(&params::collect_host(ema), None).map_err(|message| {
                TrainError::Checkpoint {
                    path: path.clone(),
                    message,
                }
            })?;
        std::fs::write(&path, bytes).map_err(TrainError::io(&path))?;
    }
    checkpoint::write_json(&staging.join("state.json"), &s.state)?;
    checkpoint::commit_checkpoint_dir(run_dir, &staging)
}

fn load_session(
    run_dir: &Path,
    cfg: &TrainConfig,
    device: &Device,
    plain: &Device,
) -> Result<Session, TrainError> {
    let Some(dir) = checkpoint::find_checkpoint(run_dir) else {
        // A run folder without checkpoint (stopped before the first one): start afresh.
        return fresh_session(cfg, device, plain);
    };
    let state: LoopState = checkpoint::read_json(&dir.join("state.json"))?;
    let model = crate::export::load_burn_model(&cfg.model, &dir.join("model.bpk"), device)?;
    let optim_path = dir.join("optim.bpk");
    let optim = build_optimizer(cfg)
        .load(&optim_path)
        .map_err(|e| TrainError::Checkpoint {
            path: optim_path,
            message: e.to_string(),
        })?;
    let ema = if cfg.ema_decay.is_some() {
        let path = dir.join("ema.safetensors");
        let t = checkpoint::load_safetensors(&path)?;
        Some(crate::export::net_from_tensors(&cfg.model, &t, plain, &path)?.valid())
    } else {
        None
    };
    Ok(Session {
        model,
        optim,
        ema,
        state,
    })
}

/// A session before its first step: random weights, or `cfg.init`'s.
fn fresh_session(
    cfg: &TrainConfig,
    device: &Device,
    plain: &Device,
) -> Result<Session, TrainError> {
    device.seed(mix(&[cfg.seed, STREAM_INIT]));
    let model = match &cfg.init {
        Some(path) => initial_weights(&cfg.model, path, device)?,
        None => cfg.model.init(Emotion::COUNT, device),
    };
    let ema = cfg.ema_decay.map(|_| model.valid().to_device(plain));
    Ok(Session {
        model,
        optim: build_optimizer(cfg),
        ema,
        state: LoopState::default(),
    })
}

/// The trained model at `path` as the starting point of a run whose layout is `net`.
fn initial_weights(net: &NetConfig, path: &Path, device: &Device) -> Result<Net, TrainError> {
    let (bytes, config) = crate::evaluate::model_bytes(path)?;
    if config.architecture != net.architecture() {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "init: this model's architecture ({}) is not the run's `model`; set `model` to \
             the same layout to fine-tune it",
                serde_json::to_string(&config.architecture).unwrap_or_default()
            ),
        });
    }
    crate::export::net_from_exported(net, &bytes, device, path)
}

fn append_metrics(run_dir: &Path, e: &EpochSummary) -> Result<(), TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(TrainError::io(&path))?;
    let mut line = String::new();
    if new {
        line.push_str(METRICS_HEADER);
        line.push('\n');
    }
    line.push_str(&format!(
        "{},{:.6},{:.4},{:.4},{:.4},{:.4},{:.4},{},{:.0}\n",
        e.epoch,
        e.lr,
        e.train_loss,
        e.train_accuracy,
        e.val.nll,
        e.val.accuracy,
        e.val.macro_f1,
        e.raw_val_accuracy
            .map(|a| format!("{a:.4}"))
            .unwrap_or_default(),
        e.elapsed_s
    ));
    f.write_all(line.as_bytes()).map_err(TrainError::io(&path))
}

/// Drops `metrics.csv` lines of epochs after `done` (a crash between writing the CSV line and
/// the checkpoint would otherwise duplicate the epoch on resume).
fn truncate_metrics(run_dir: &Path, done: usize) -> Result<(), TrainError> {
    let path = run_dir.join(METRICS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|e| e.parse::<usize>().ok())
                .is_none_or(|e| e <= done)
        })
        .collect();
    if kept.len() != text.lines().count() {
        checkpoint::write_atomic(&path, (kept.join("\n") + "\n").as_bytes())?;
    }
    Ok(())
}

/// Trains (or resumes) the run in `req.run_dir` with `info`'s settings.
pub fn train(
    info: &RunInfo,
    req: TrainRequest<'_>,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome, TrainError> {
    let cfg = Arc::new(info.config.clone());
    cfg.validate()?;
    let plain = Device::flex();
    let device = plain.clone().autodiff();
    let run_dir = req.run_dir;
    let mut s = load_session(run_dir, &cfg, &device, &plain)?;
    truncate_metrics(run_dir, s.state.epoch)?;
    let train_data = Arc::new(req.train.clone());
    let n = train_data.len();
    let bs = cfg.batch_size.min(n);
    let batches = batches_per_epoch(n, bs);
    let total_steps = (batches * cfg.epochs) as u64;
    let weights = class_weights(train_data.class_counts(), cfg.class_weight_power);
    let teachers = match &cfg.distill {
        Some(d) => Some(Arc::new(Teachers::load(d, &train_data, cfg.normalization)?)),
        None => None,
    };
    observer.on_start(&cfg, &s.state, batches);
    let session_start = Instant::now();
    let mut session_images = 0u64;
    let mut epochs_this_session = 0;
    let mut elapsed_base = s.state.elapsed_s;
    let mut session_clock = Instant::now();

    while s.state.epoch < cfg.epochs {
        let epoch = s.state.epoch;
        let rx = spawn_loader(
            train_data.clone(),
            cfg.clone(),
            weights,
            teachers.clone(),
            epoch,
            s.state.batch,
        );
        let mut lr = learning_rate(&cfg, s.state.global_step, total_steps);
        for mut batch in rx.iter() {
            debug_assert_eq!(batch.index, s.state.batch);
            if let Some(Teachers::Online(online)) = teachers.as_deref() {
                // Here rather than on the loader thread: run alongside the training step, the
                // teachers and burn compete for the same two cores and both slow down (the
                // online-distill run trained at 42 img/s that way, 79 this way).
                online.blend(&batch.x, &mut batch.targets);
            }
            lr = learning_rate(&cfg, s.state.global_step, total_steps);
            device.seed(mix(&[
                cfg.seed,
                STREAM_DROPOUT,
                epoch as u64,
                batch.index as u64,
            ]));
            let x = Tensor::<4>::from_data(
                TensorData::new(batch.x, [bs, 1, IMAGE_SIDE, IMAGE_SIDE]),
                &device,
            );
            let t = Tensor::<2>::from_data(
                TensorData::new(batch.targets, [bs, Emotion::COUNT]),
                &device,
            );
            let w = Tensor::<1>::from_data(TensorData::new(batch.weights, [bs]), &device);
            let logits = s.model.forward(x);
            let per_sample = (log_softmax(logits.clone(), 1) * t)
                .sum_dim(1)
                .reshape([bs])
                .neg();
            let loss = (per_sample * w).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &s.model);
            s.model = s.optim.step(lr, s.model.clone(), grads);
            let loss_v: f32 = loss.into_scalar();
            let pred = logits
                .argmax(1)
                .reshape([bs])
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default();
            let correct = pred
                .iter()
                .zip(&batch.labels)
                .filter(|(a, b)| a == b)
                .count();
            if let (Some(decay), Some(ema)) = (cfg.ema_decay, s.ema.take()) {
                // timm-style warm-up: early on the EMA follows the weights closely.
                let u = s.state.ema_updates as f64;
                let d = decay.min((1.0 + u) / (10.0 + u)) as f32;
                let current = params::collect(&s.model);
                let (updated, _) = params::apply(ema, &current, |old, new| {
                    old.mul_scalar(d) + new.to_device(&plain).mul_scalar(1.0 - d)
                });
                s.ema = Some(updated);
                s.state.ema_updates += 1;
            }
            s.state.global_step += 1;
            s.state.batch = batch.index + 1;
            s.state.epoch_loss_sum += f64::from(loss_v) * bs as f64;
            s.state.epoch_correct += correct as u64;
            s.state.epoch_seen += bs as u64;
            session_images += bs as u64;
            let seen = s.state.epoch_seen.max(1) as f64;
            observer.on_batch(&BatchProgress {
                epoch,
                batch: batch.index,
                batches,
                loss: s.state.epoch_loss_sum / seen,
                accuracy: s.state.epoch_correct as f64 / seen,
                lr,
                images_per_s: session_images as f64
                    / session_start.elapsed().as_secs_f64().max(1e-9),
            });
            if req.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        s.state.elapsed_s = elapsed_base + session_clock.elapsed().as_secs_f64();
        if req.stop.load(Ordering::SeqCst) && s.state.batch < batches {
            save_checkpoint(run_dir, &s)?;
            return Ok(TrainOutcome::Stopped {
                epoch,
                batch: s.state.batch,
            });
        }
        // Epoch done: validate, log, checkpoint.
        observer.on_validate(epoch);
        let raw = s.model.valid();
        let (val, raw_val_accuracy) = match &s.ema {
            Some(ema) => {
                let want_raw = cfg.raw_val_every > 0
                    && ((epoch + 1) % cfg.raw_val_every == 0 || epoch + 1 == cfg.epochs);
                let raw_acc = want_raw.then(|| validate(&raw, req.val, &cfg, &plain).accuracy);
                (validate(ema, req.val, &cfg, &plain), raw_acc)
            }
            None => (validate(&raw, req.val, &cfg, &plain), None),
        };
        let seen = s.state.epoch_seen.max(1) as f64;
        let is_best = s.state.best_val_accuracy.is_none_or(|b| val.accuracy > b);
        let summary = EpochSummary {
            epoch: epoch + 1,
            epochs: cfg.epochs,
            lr,
            train_loss: s.state.epoch_loss_sum / seen,
            train_accuracy: s.state.epoch_correct as f64 / seen,
            val,
            raw_val_accuracy,
            elapsed_s: s.state.elapsed_s,
            is_best,
        };
        if is_best {
            s.state.best_val_accuracy = Some(summary.val.accuracy);
            s.state.best_epoch = Some(epoch + 1);
            let best_net = s.ema.as_ref().unwrap_or(&raw);
            let path = run_dir.join(checkpoint::BEST_WEIGHTS);
            let bytes = checkpoint::safetensors_bytes(&params::collect_host(best_net), None)
                .map_err(|message| TrainError::Checkpoint {
                    path: path.clone(),
                    message,
                })?;
            checkpoint::write_atomic(&path, &bytes)?;
            checkpoint::write_json(
                &run_dir.join(checkpoint::BEST_INFO),
                &BestInfo {
                    epoch: epoch + 1,
                    val_accuracy: summary.val.accuracy,
                    val_macro_f1: summary.val.macro_f1,
                    elapsed_s: summary.elapsed_s,
                    ema: s.ema.is_some(),
                },
            )?;
            let (bytes, model_cfg) = crate::export::export(run_dir)?;
            checkpoint::write_atomic(&run_dir.join(checkpoint::MODEL_WEIGHTS), &bytes)?;
            checkpoint::write_json(&run_dir.join(checkpoint::MODEL_CONFIG), &model_cfg)?;
        }
        append_metrics(run_dir, &summary)?;
        s.state.epoch += 1;
        s.state.batch = 0;
        s.state.epoch_loss_sum = 0.0;
        s.state.epoch_correct = 0;
        s.state.epoch_seen = 0;
        s.state.elapsed_s = elapsed_base + session_clock.elapsed().as_secs_f64();
        elapsed_base = s.state.elapsed_s;
        session_clock = Instant::now();
        save_checkpoint(run_dir, &s)?;
        // Go on from what was just written, as a resumed run would: the weights' values are
        // the same either way, but tensors loaded from a file are not laid out in memory like
        // those the optimiser made, and some of burn's kernels then round differently (seen as
        // resumed runs drifting in the fourth decimal of the loss). This also checks every
        // epoch's checkpoint as it is written.
        s = load_session(run_dir, &cfg, &device, &plain)?;
        observer.on_epoch(&summary);
        epochs_this_session += 1;
        let out_of_epochs = req
            .max_epochs_this_session
            .is_some_and(|m| epochs_this_session >= m);
        if (req.stop.load(Ordering::SeqCst) || out_of_epochs) && s.state.epoch < cfg.epochs {
            return Ok(TrainOutcome::Stopped {
                epoch: s.state.epoch,
                batch: 0,
            });
        }
    }
    Ok(TrainOutcome::Finished {
        best_val_accuracy: s.state.best_val_accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: &Targets<'_>, i: usize, label: usize) -> [f32; Emotion::COUNT] {
        let mut out = [0.0; Emotion::COUNT];
        t.add(i, label, &mut out, 1.0);
        out
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn schedules_rise_to_lr_then_fall_to_min_lr() {
        let total = 1000;
        for schedule in [Schedule::Cosine, Schedule::OneCycle] {
            let cfg = TrainConfig {
                schedule,
                lr: 0.1,
                min_lr: 0.001,
                warmup_frac: 0.3,
                ..TrainConfig::default()
            };
            let lr: Vec<f64> = (0..total).map(|s| learning_rate(&cfg, s, total)).collect();
            let peak = lr.iter().cloned().fold(0.0, f64::max);
            assert!((peak - 0.1).abs() < 1e-9, "{schedule:?} peaks at {peak}");
            assert!(
                lr[..300].windows(2).all(|w| w[0] <= w[1]),
                "{schedule:?} rises"
            );
            assert!(
                lr[300..].windows(2).all(|w| w[0] >= w[1]),
                "{schedule:?} falls"
            );
            assert!(
                (lr[total as usize - 1] - 0.001).abs() < 1e-5,
                "{schedule:?} ends"
            );
        }
        // One-cycle starts at lr / 25 and is halfway up at half the climb; the linear warm-up
        // starts near 0.
        let one_cycle = TrainConfig {
            schedule: Schedule::OneCycle,
            warmup_frac: 0.3,
            ..TrainConfig::default()
        };
        assert!((learning_rate(&one_cycle, 0, total) - 0.1 / 25.0).abs() < 1e-12);
        let mid = learning_rate(&one_cycle, 150, total);
        assert!((mid - (0.004 + 0.096 / 2.0)).abs() < 1e-9, "{mid}");
        let cosine = TrainConfig {
            warmup_frac: 0.3,
            ..TrainConfig::default()
        };
        assert!(learning_rate(&cosine, 0, total) < 0.001);
    }

    #[test]
    fn targets_mix_the_smoothed_label_with_the_teachers() {
        let teachers: TeacherTargets = vec![
            [0.7, 0.0, 0.1, 0.0, 0.2, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        ];
        let labels_only = Targets {
            smoothing: 0.07,
            teachers: None,
        };
        // 0.07 spread over seven classes: 0.01 each, and the label keeps 0.93 + 0.01.
        let hard = [0.01, 0.01, 0.01, 0.01, 0.01, 0.94, 0.01];
        assert!(close(&target(&labels_only, 0, 5), &hard));

        let half = Targets {
            teachers: Some((&teachers, 0.5)),
            ..labels_only
        };
        let t = target(&half, 0, 5);
        let expected: Vec<f32> = hard
            .iter()
            .zip(teachers[0])
            .map(|(h, p)| 0.5 * h + 0.5 * p)
            .collect();
        assert!(close(&t, &expected), "{t:?}");
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-6);

        let all = Targets {
            teachers: Some((&teachers, 1.0)),
            ..half
        };
        assert!(close(&target(&all, 1, 5), &teachers[1]));
    }

    #[test]
    fn mixed_images_mix_their_targets() {
        let teachers: TeacherTargets = vec![[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; 2];
        let t = Targets {
            smoothing: 0.0,
            teachers: Some((&teachers, 0.5)),
        };
        let mut out = [0.0; Emotion::COUNT];
        t.add(0, 3, &mut out, 0.25);
        t.add(1, 6, &mut out, 0.75);
        // Teachers: all angry (0.5 of the target); labels: happy 0.25, surprise 0.75 (0.5 of it).
        let expected = [0.5, 0.0, 0.0, 0.125, 0.0, 0.0, 0.375];
        assert!(close(&out, &expected), "{out:?}");
    }
}
