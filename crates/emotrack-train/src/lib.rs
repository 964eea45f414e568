//! Training and evaluation of emotrack's emotion classifier on FER-2013, with burn's
//! pure-Rust `flex` CPU backend.
//!
//! * [`data`]: [`Dataset`] — a FER-2013 split (`<split>/<emotion>/*.jpg`) decoded into memory.
//! * [`augment`]: on-the-fly flip/rotate/scale/shift, brightness/contrast, random erasing.
//! * [`model`]: [`Net`], the network a run trains: [`resnet`], the CNN of
//!   [`emotrack::classify::Architecture::Resnet`], or [`swin`], the transformer of
//!   [`emotrack::classify::Architecture::Swin`]; their convolutions train through [`conv`]
//!   (faster forward and backward passes than flex's).
//! * [`config`]: [`TrainConfig`], every setting of a run in one serde struct.
//! * [`weights`]: tensors by name in safetensors files, burn's names ↔ the inference file's,
//!   networks built from either ([`params`] reads and writes a network's tensors by path).
//! * [`checkpoint`]: the run folder (its layout and files) and resuming a run.
//! * [`model_file`]: a run's best weights → its inference model (`model.safetensors` +
//!   `model.json`); reading any model path the commands take.
//! * [`ensemble`]: several models combined into one file (mean logits, or a weight soup).
//! * [`evaluate`]: a model file or run folder loaded for evaluation (inference runtime or burn),
//!   with optional test-time augmentation ([`tta`]); the burn network's validation.
//! * [`distill`]: the teachers of knowledge distillation, offline or online.
//! * [`schedule`]: the learning rate of each step.
//! * [`train`]: the resumable loop ([`train::train`]), reporting to a [`progress`] observer and
//!   writing a run folder (see [`checkpoint`] for its layout); its private parts are the
//!   loader thread (batches, mixup/CutMix, targets), the optimiser and weight EMA, the seeds
//!   of the random streams and `metrics.csv`.
//! * [`metrics`]: accuracy, macro-F1, per-class P/R/F1, confusion matrix, ECE over any
//!   [`metrics::Predictor`]; [`plot`] draws the confusion matrix and the reliability diagram,
//!   and the ECE against the temperature.
//! * [`compare`]: two models on the same images, McNemar's exact test.
//! * [`calibrate`]: temperature scaling fitted on held-out images, and the ECE across
//!   temperatures.
//!
//! # Module dependencies
//!
//! Each module uses only modules on lines below its own (`error` is used throughout):
//!
//! ```text
//! train                         the loop
//!   metrics_csv, progress       what it reports
//!   loader                      batches: seed, augment, distill
//!   distill                     teachers: evaluate
//! ensemble, evaluate            model_file, weights, metrics, tta
//! model_file                    run folder → inference model: checkpoint, weights
//! checkpoint                    run folder, resuming: optim, weights, params, model, config
//! optim, schedule, seed         config, model, params
//! weights                       tensors by name: params, model
//! plot                          charts of metrics and calibrate's curves
//! calibrate                     metrics, data
//! config, augment, model        model: resnet, swin
//! resnet, swin, conv, params, metrics, compare, tta, data, error
//! ```

#![warn(missing_docs)]

pub mod augment;
pub mod calibrate;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod conv;
pub mod data;
pub mod distill;
pub mod ensemble;
pub mod error;
pub mod evaluate;
mod loader;
pub mod metrics;
mod metrics_csv;
pub mod model;
pub mod model_file;
mod optim;
pub mod params;
pub mod plot;
pub mod progress;
pub mod resnet;
pub mod schedule;
mod seed;
pub mod swin;
pub mod train;
pub mod tta;
pub mod weights;

pub use config::TrainConfig;
pub use data::{Dataset, load_split};
pub use error::{DataError, TrainError};
pub use model::{Net, NetConfig};
