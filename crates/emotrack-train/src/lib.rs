//! Training and evaluation of emotrack's emotion classifier on FER-2013, with burn's
//! pure-Rust `flex` CPU backend.
//!
//! * [`data`]: [`Dataset`] — a FER-2013 split (`<split>/<emotion>/*.jpg`) decoded into memory.
//! * [`augment`]: on-the-fly flip/rotate/scale/shift, brightness/contrast, random erasing.
//! * [`model`]: [`Net`], the ResNet-style CNN of [`emotrack::classify::Architecture::Resnet`];
//!   its convolutions train through [`conv`] (faster forward and backward passes than flex's).
//! * [`config`]: [`TrainConfig`], every setting of a run in one serde struct.
//! * [`distill`]: the teachers of knowledge distillation, offline or online.
//! * [`train`]: the resumable loop ([`train::train`]), writing a run folder
//!   (see [`checkpoint`] for its layout).
//! * [`export()`]: best weights → `model.safetensors` + `model.json` for inference.
//! * [`evaluate`]: a model file or run folder loaded for evaluation (inference runtime or burn),
//!   with optional test-time augmentation ([`tta`]).
//! * [`metrics`]: accuracy, macro-F1, per-class P/R/F1, confusion matrix, ECE over any
//!   [`metrics::Predictor`]; [`plot`] draws the confusion matrix.
//! * [`compare`]: two models on the same images, McNemar's exact test.

pub mod augment;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod conv;
pub mod data;
pub mod distill;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod metrics;
pub mod model;
pub mod params;
pub mod plot;
pub mod train;
pub mod tta;

pub use config::TrainConfig;
pub use data::{Dataset, load_split};
pub use error::{DataError, TrainError};
pub use export::export;
pub use model::{Net, NetConfig};
