//! The training loop: per epoch, SGD or AdamW steps on the batches of the loader thread (with
//! label smoothing, optional mixup/CutMix and distillation, class weighting) at the scheduled
//! learning rate ([`crate::schedule`]), and the weight EMA; then validation, the best weights
//! and their inference model ([`crate::model_file`]), `metrics.csv` and a checkpoint
//! ([`crate::checkpoint`]). Resumable mid-epoch.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use emotrack::Emotion;

use crate::checkpoint::{BestInfo, RunInfo, Session};
use crate::config::TrainConfig;
use crate::data::{Dataset, IMAGE_SIDE};
use crate::distill::Teachers;
use crate::error::TrainError;
use crate::evaluate::validate;
use crate::loader::{Batch, Loader};
use crate::metrics::Metrics;
use crate::model::{Net, NetConfig};
use crate::optim::{build_optimizer, ema_update};
use crate::progress::{BatchProgress, EpochSummary, TrainObserver};
use crate::schedule::learning_rate;
use crate::seed::{STREAM_DROPOUT, STREAM_INIT, mix};
use crate::{checkpoint, metrics_csv, model_file, weights};

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

/// Trains (or resumes) the run in `req.run_dir` with `info`'s settings (see
/// [`checkpoint::prepare_run`]).
pub fn train(
    info: &RunInfo,
    req: TrainRequest<'_>,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome, TrainError> {
    let cfg = Arc::new(info.config.clone());
    cfg.validate()?;
    let devices = Devices::flex();
    let mut s = open_session(req.run_dir, &cfg, &devices)?;
    metrics_csv::truncate(req.run_dir, s.state.epoch)?;
    let trainer = Trainer::new(cfg, devices, &req)?;
    let batches = trainer.loader.batches();
    observer.on_start(&trainer.cfg, &s.state, batches);
    let mut clock = Clock::start(s.state.elapsed_s);
    let mut epochs_this_session = 0;
    while s.state.epoch < trainer.cfg.epochs {
        let epoch = s.state.epoch;
        let lr = trainer.train_epoch(&mut s, observer, &mut clock);
        s.state.elapsed_s = clock.elapsed_s();
        if trainer.stop_requested() && s.state.batch < batches {
            s.save(req.run_dir)?;
            return Ok(TrainOutcome::Stopped {
                epoch,
                batch: s.state.batch,
            });
        }
        observer.on_validate(epoch);
        let summary = trainer.finish_epoch(&mut s, lr, &mut clock)?;
        // Go on from what was just written, as a resumed run would: the weights' values are
        // the same either way, but tensors loaded from a file are not laid out in memory like
        // those the optimiser made, and some of burn's kernels then round differently (seen as
        // resumed runs drifting in the fourth decimal of the loss). This also checks every
        // epoch's checkpoint as it is written.
        s = open_session(req.run_dir, &trainer.cfg, &trainer.devices)?;
        observer.on_epoch(&summary);
        epochs_this_session += 1;
        let out_of_epochs = req
            .max_epochs_this_session
            .is_some_and(|m| epochs_this_session >= m);
        if (trainer.stop_requested() || out_of_epochs) && s.state.epoch < trainer.cfg.epochs {
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

/// The CPU device, with autodiff for training and without for the EMA and validation.
struct Devices {
    /// With autodiff: the trained model.
    train: Device,
    /// Without: the EMA weights and validation.
    plain: Device,
}

impl Devices {
    fn flex() -> Self {
        let plain = Device::flex();
        Self {
            train: plain.clone().autodiff(),
            plain,
        }
    }
}

/// The run's checkpoint, or a fresh start when it has none (stopped before the first one).
fn open_session(
    run_dir: &Path,
    cfg: &TrainConfig,
    devices: &Devices,
) -> Result<Session, TrainError> {
    match Session::load(run_dir, cfg, &devices.train, &devices.plain)? {
        Some(session) => Ok(session),
        None => fresh_session(cfg, devices),
    }
}

/// A session before its first step: random weights, or `cfg.init`'s.
fn fresh_session(cfg: &TrainConfig, devices: &Devices) -> Result<Session, TrainError> {
    let device = &devices.train;
    device.seed(mix(&[cfg.seed, STREAM_INIT]));
    let model = match &cfg.init {
        Some(path) => initial_weights(&cfg.model, path, device)?,
        None => cfg.model.init(Emotion::COUNT, device),
    };
    let ema = cfg
        .ema_decay
        .map(|_| model.valid().to_device(&devices.plain));
    Ok(Session {
        model,
        optim: build_optimizer(cfg),
        ema,
        state: checkpoint::LoopState::default(),
    })
}

/// The trained model at `path` as the starting point of a run whose layout is `net`.
fn initial_weights(net: &NetConfig, path: &Path, device: &Device) -> Result<Net, TrainError> {
    let (bytes, config) = model_file::read(path)?;
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
    weights::net_from_inference(net, &bytes, device, path)
}

/// Training time over all sessions, and this session's throughput.
struct Clock {
    /// When this session started.
    session_start: Instant,
    /// Images trained on in this session.
    session_images: u64,
    /// Training seconds (all sessions) when `since` was taken.
    base_s: f64,
    since: Instant,
}

impl Clock {
    /// A clock for a session that resumes after `elapsed_s` seconds of training.
    fn start(elapsed_s: f64) -> Self {
        let now = Instant::now();
        Self {
            session_start: now,
            session_images: 0,
            base_s: elapsed_s,
            since: now,
        }
    }

    /// Training seconds so far, all sessions.
    fn elapsed_s(&self) -> f64 {
        self.base_s + self.since.elapsed().as_secs_f64()
    }

    /// Restarts the count from `elapsed_s` seconds, now.
    fn restart_at(&mut self, elapsed_s: f64) {
        self.base_s = elapsed_s;
        self.since = Instant::now();
    }

    /// Counts `n` more images trained on.
    fn add_images(&mut self, n: usize) {
        self.session_images += n as u64;
    }

    /// Images per second of this session.
    fn images_per_s(&self) -> f64 {
        self.session_images as f64 / self.session_start.elapsed().as_secs_f64().max(1e-9)
    }
}

/// What stays the same for a whole call to [`train`].
struct Trainer<'a> {
    cfg: Arc<TrainConfig>,
    devices: Devices,
    req: &'a TrainRequest<'a>,
    loader: Loader,
    teachers: Option<Arc<Teachers>>,
    /// Steps of the whole schedule.
    total_steps: u64,
}

impl<'a> Trainer<'a> {
    /// Loads the teachers, when distilling, and sets up the loader.
    fn new(
        cfg: Arc<TrainConfig>,
        devices: Devices,
        req: &'a TrainRequest<'a>,
    ) -> Result<Self, TrainError> {
        let train_data = Arc::new(req.train.clone());
        let teachers = match &cfg.distill {
            Some(d) => Some(Arc::new(Teachers::load(d, &train_data, cfg.normalization)?)),
            None => None,
        };
        let loader = Loader::new(train_data, cfg.clone(), teachers.clone());
        let total_steps = (loader.batches() * cfg.epochs) as u64;
        Ok(Self {
            cfg,
            devices,
            req,
            loader,
            teachers,
            total_steps,
        })
    }

    fn stop_requested(&self) -> bool {
        self.req.stop.load(Ordering::SeqCst)
    }

    /// Trains on the rest of the current epoch's batches, or until a stop is requested;
    /// returns the learning rate of the last step.
    fn train_epoch(
        &self,
        s: &mut Session,
        observer: &mut dyn TrainObserver,
        clock: &mut Clock,
    ) -> f64 {
        let epoch = s.state.epoch;
        let bs = self.loader.batch_size();
        let mut lr = learning_rate(&self.cfg, s.state.global_step, self.total_steps);
        for mut batch in self.loader.spawn(epoch, s.state.batch) {
            debug_assert_eq!(batch.index, s.state.batch);
            if let Some(Teachers::Online(online)) = self.teachers.as_deref() {
                // Here rather than on the loader thread: run alongside the training step, the
                // teachers and burn compete for the same two cores and both slow down (the
                // online-distill run trained at 42 img/s that way, 79 this way).
                online.blend(&batch.x, &mut batch.targets);
            }
            lr = learning_rate(&self.cfg, s.state.global_step, self.total_steps);
            let index = batch.index;
            let (loss, correct) = self.gradient_step(s, batch, lr);
            self.update_ema(s);
            s.state.add_step(index, bs, loss, correct);
            clock.add_images(bs);
            observer.on_batch(&BatchProgress {
                epoch,
                batch: index,
                batches: self.loader.batches(),
                loss: s.state.train_loss(),
                accuracy: s.state.train_accuracy(),
                lr,
                images_per_s: clock.images_per_s(),
            });
            if self.stop_requested() {
                break;
            }
        }
        lr
    }

    /// One optimisation step on `batch` at learning rate `lr`: the weighted cross-entropy of
    /// the model's logits against the batch's targets. Returns the loss and how many images
    /// the model (before the step) classified as their label.
    fn gradient_step(&self, s: &mut Session, batch: Batch, lr: f64) -> (f32, usize) {
        let device = &self.devices.train;
        let bs = self.loader.batch_size();
        device.seed(mix(&[
            self.cfg.seed,
            STREAM_DROPOUT,
            s.state.epoch as u64,
            batch.index as u64,
        ]));
        let x = Tensor::<4>::from_data(
            TensorData::new(batch.x, [bs, 1, IMAGE_SIDE, IMAGE_SIDE]),
            device,
        );
        let t =
            Tensor::<2>::from_data(TensorData::new(batch.targets, [bs, Emotion::COUNT]), device);
        let w = Tensor::<1>::from_data(TensorData::new(batch.weights, [bs]), device);
        let logits = s.model.forward(x);
        let per_sample = (log_softmax(logits.clone(), 1) * t)
            .sum_dim(1)
            .reshape([bs])
            .neg();
        let loss = (per_sample * w).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &s.model);
        s.model = s.optim.step(lr, s.model.clone(), grads);
        let loss: f32 = loss.into_scalar();
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
        (loss, correct)
    }

    /// Moves the weight EMA, when on, towards the model just stepped.
    fn update_ema(&self, s: &mut Session) {
        if let (Some(decay), Some(ema)) = (self.cfg.ema_decay, s.ema.take()) {
            let updates = s.state.ema_updates;
            s.ema = Some(ema_update(
                ema,
                &s.model,
                decay,
                updates,
                &self.devices.plain,
            ));
            s.state.ema_updates += 1;
        }
    }

    /// Ends the epoch whose steps are done: validates, keeps the weights if they are the best
    /// so far, logs the epoch to `metrics.csv` and writes the checkpoint of the next epoch.
    fn finish_epoch(
        &self,
        s: &mut Session,
        lr: f64,
        clock: &mut Clock,
    ) -> Result<EpochSummary, TrainError> {
        let epoch = s.state.epoch;
        let raw = s.model.valid();
        let (val, raw_val_accuracy) = self.validate(s.ema.as_ref(), &raw, epoch);
        let is_best = s.state.best_val_accuracy.is_none_or(|b| val.accuracy > b);
        let summary = EpochSummary {
            epoch: epoch + 1,
            epochs: self.cfg.epochs,
            lr,
            train_loss: s.state.train_loss(),
            train_accuracy: s.state.train_accuracy(),
            val,
            raw_val_accuracy,
            elapsed_s: s.state.elapsed_s,
            is_best,
        };
        if is_best {
            s.state.best_val_accuracy = Some(summary.val.accuracy);
            s.state.best_epoch = Some(summary.epoch);
            self.save_best(s.ema.as_ref().unwrap_or(&raw), s.ema.is_some(), &summary)?;
        }
        metrics_csv::append(self.req.run_dir, &summary)?;
        s.state.next_epoch();
        s.state.elapsed_s = clock.elapsed_s();
        clock.restart_at(s.state.elapsed_s);
        s.save(self.req.run_dir)?;
        Ok(summary)
    }

    /// Validation metrics of the weights the run keeps (the EMA's when on), and, every
    /// [`TrainConfig::raw_val_every`] epochs and at the last, the accuracy of the `raw`
    /// weights beside an EMA.
    fn validate(&self, ema: Option<&Net>, raw: &Net, epoch: usize) -> (Metrics, Option<f64>) {
        let (cfg, val, plain) = (&*self.cfg, self.req.val, &self.devices.plain);
        match ema {
            Some(ema) => {
                let want_raw = cfg.raw_val_every > 0
                    && ((epoch + 1).is_multiple_of(cfg.raw_val_every) || epoch + 1 == cfg.epochs);
                let raw_acc = want_raw.then(|| validate(raw, val, cfg, plain).accuracy);
                (validate(ema, val, cfg, plain), raw_acc)
            }
            None => (validate(raw, val, cfg, plain), None),
        }
    }

    /// Writes `net` as the run's best weights, and their inference model.
    fn save_best(&self, net: &Net, ema: bool, summary: &EpochSummary) -> Result<(), TrainError> {
        let run_dir = self.req.run_dir;
        let best = BestInfo {
            epoch: summary.epoch,
            val_accuracy: summary.val.accuracy,
            val_macro_f1: summary.val.macro_f1,
            elapsed_s: summary.elapsed_s,
            ema,
        };
        checkpoint::write_best(run_dir, net, &best)?;
        model_file::write_into_run(run_dir)
    }
}
