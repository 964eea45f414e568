//! Emotion classification: a model file is weights (safetensors) plus a JSON config
//! ([`ModelConfig`]) that travels with them as `<name>.json` next to `<name>.safetensors`.
//!
//! The config says which architecture the weights are for, the input size, the class names
//! in output order, the input normalisation and the model's measured validation metrics.
//! Tensor names follow PyTorch conventions (see `docs/DECISIONS.md`, "Model files").
//!
//! ```no_run
//! # fn main() -> emotrack::error::Result<()> {
//! let classifier = emotrack::classify::Classifier::embedded()?;
//! let crop = image::GrayImage::new(48, 48); // a face crop, see emotrack::imgproc::face_crop
//! let scores = classifier.classify(&[crop]);
//! println!("{:?}", scores[0].top());
//! # Ok(()) }
//! ```

pub mod cost;
#[cfg(feature = "onnx")]
mod onnx;
mod resnet;
pub mod swin;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::GrayImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use emotrack_nn::{Tensor, Weights};

use crate::error::{Error, Result};
use crate::types::{Emotion, EmotionScores};

/// Pixel normalisation applied to a grayscale crop: `x = (pixel / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean subtracted after scaling pixels to `[0, 1]`.
    pub mean: f32,
    /// Divisor applied after the mean is subtracted.
    pub std: f32,
}

impl Default for Normalization {
    fn default() -> Self {
        // FER-2013 train statistics (mean 0.5077, std 0.2550), rounded.
        Self {
            mean: 0.508,
            std: 0.255,
        }
    }
}

impl Normalization {
    /// Writes the normalised pixels of `gray` (row-major, one channel) into `out`.
    ///
    /// `out` must have exactly `gray.len()` elements.
    pub fn apply(&self, gray: &[u8], out: &mut [f32]) {
        debug_assert_eq!(gray.len(), out.len());
        let scale = 1.0 / (255.0 * self.std);
        let shift = self.mean / self.std;
        for (o, &p) in out.iter_mut().zip(gray) {
            *o = f32::from(p) * scale - shift;
        }
    }
}

/// The network layout the weights are for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Architecture {
    /// A ResNet-style CNN: 3x3 stem conv (+BN+ReLU) with `stem_stride`, then one stage per entry
    /// of `widths`, each of `blocks[i]` basic blocks (conv3x3-BN-ReLU-conv3x3-BN + shortcut,
    /// ReLU), the first block of stage `i` having stride `strides[i]`; then global average
    /// pooling, (dropout in training) and a linear layer to the classes.
    Resnet {
        /// Output channels of the stem convolution.
        stem_channels: usize,
        /// Stride of the stem convolution.
        stem_stride: usize,
        /// Channels of each stage.
        widths: Vec<usize>,
        /// Basic blocks per stage.
        blocks: Vec<usize>,
        /// Stride of the first block of each stage.
        strides: Vec<usize>,
        /// Batch-norm epsilon.
        #[serde(default = "default_bn_eps")]
        bn_eps: f32,
    },
    /// Several networks over the same input (ResNets, Swins or both) whose logits are
    /// averaged: an ensemble, stored in one weights file with member `i`'s tensors under
    /// `members.{i}.` (float16 keeps two members under 5 MB). Made by `emotrack ensemble`.
    Ensemble {
        /// The members' layouts, each a `resnet` or a `swin`.
        members: Vec<Architecture>,
    },
    /// A Swin-style vision transformer (Liu et al., 2021): a `patch_size` patch embedding
    /// (convolution + layer norm), then one stage per entry of `depths`, each of `depths[i]`
    /// blocks (layer norm, window attention with `heads[i]` heads and a relative-position
    /// bias, the window shifted by half on odd blocks; layer norm, MLP of `mlp_ratio` times
    /// the width with GELU; both residual), patch merging (2x2 tokens → one of twice the
    /// channels) between stages; then a layer norm, the tokens' mean and a linear layer.
    /// [`swin`] holds the layout both training and the runtime build it from.
    Swin {
        /// Side of the square patches that become tokens (4: a 48x48 face is 12x12 tokens).
        patch_size: usize,
        /// Channels of the first stage's tokens (each later stage doubles them).
        embed_dim: usize,
        /// Blocks per stage.
        depths: Vec<usize>,
        /// Attention heads per stage.
        heads: Vec<usize>,
        /// Side of the attention windows in tokens (smaller stages use their whole grid).
        window: usize,
        /// The MLP's hidden width as a multiple of the block's.
        #[serde(default = "default_mlp_ratio")]
        mlp_ratio: usize,
        /// Layer-norm epsilon.
        #[serde(default = "default_bn_eps")]
        ln_eps: f32,
    },
    /// An ONNX graph (`<name>.onnx`, run with tract), ours from `emotrack export --onnx` or
    /// another tool's. Its input is one grayscale `input_size` square, NCHW `[N, 1, S, S]` or
    /// NHWC `[N, S, S, 1]` (read from the graph); its output holds one value per class.
    Onnx {
        /// Whether the graph ends in raw logits or already in probabilities (a softmax).
        #[serde(default)]
        outputs: OnnxOutputs,
    },
}

/// What the last layer of an ONNX classifier gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxOutputs {
    /// Unnormalised scores; emotrack applies the softmax.
    #[default]
    Logits,
    /// Probabilities that already sum to one (the graph ends in a softmax).
    Probabilities,
}

fn default_bn_eps() -> f32 {
    1e-5
}

fn default_mlp_ratio() -> usize {
    4
}

/// Where a model came from and how good it is; informational, shown by `emotrack eval`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelProvenance {
    /// Validation accuracy on FER-2013 PublicTest (our `val/`), in `[0, 1]`.
    pub val_accuracy: Option<f32>,
    /// Validation macro-F1.
    pub val_macro_f1: Option<f32>,
    /// The command that trained it.
    pub command: Option<String>,
    /// The git commit of the code that trained it.
    pub commit: Option<String>,
    /// Free-form notes (training time, epochs, ...).
    pub notes: Option<String>,
}

/// Everything needed to run a weights file: travels next to it as `<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The network layout.
    pub architecture: Architecture,
    /// Side of the square grayscale input in pixels (48 for FER-2013).
    pub input_size: u32,
    /// Class names in output order; must be the seven FER-2013 emotions.
    pub classes: Vec<String>,
    /// Input normalisation.
    pub normalization: Normalization,
    /// Softmax temperature: the logits are divided by it before the softmax, so that a face
    /// given 70% is right about 70% of the time (fitted on held-out data by `emotrack
    /// calibrate`; 1, the default, leaves the probabilities as trained).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub temperature: f32,
    /// Origin and measured quality.
    #[serde(default)]
    pub provenance: ModelProvenance,
}

fn one() -> f32 {
    1.0
}

fn is_one(t: &f32) -> bool {
    *t == 1.0
}

/// The temperatures a model config may hold: far outside what calibration ever finds.
pub const TEMPERATURES: RangeInclusive<f32> = 0.05..=20.0;

impl ModelConfig {
    /// Checks that the config is usable, saying what to fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Error::config(format!("model config: {m}"));
        if !(8..=512).contains(&self.input_size) {
            return Err(bad(format!(
                "input_size {} is outside 8..=512",
                self.input_size
            )));
        }
        if self.normalization.std <= 0.0 || !self.normalization.std.is_finite() {
            return Err(bad("normalization.std must be a positive number".into()));
        }
        if !TEMPERATURES.contains(&self.temperature) {
            return Err(bad(format!(
                "temperature {} is outside {}..={}; fit one with `emotrack calibrate` or remove the field",
                self.temperature,
                TEMPERATURES.start(),
                TEMPERATURES.end()
            )));
        }
        for c in &self.classes {
            if crate::types::Emotion::from_name(c).is_none() {
                return Err(bad(format!(
                    "unknown class {c:?}; classes must be among angry, disgust, fear, happy, neutral, sad, surprise"
                )));
            }
        }
        if self.classes.len() != crate::types::Emotion::COUNT {
            return Err(bad(format!(
                "{} classes given, 7 expected",
                self.classes.len()
            )));
        }
        self.architecture.validate().map_err(bad)?;
        for (prefix, member) in self.architecture.members() {
            if let Architecture::Swin { .. } = member {
                swin::stages(member, self.input_size as usize).map_err(|m| {
                    bad(if prefix.is_empty() {
                        m
                    } else {
                        format!("ensemble member {}: {m}", prefix.trim_end_matches('.'))
                    })
                })?;
            }
        }
        Ok(())
    }
}

/// Bounds on a ResNet config's numbers: far above any network that fits the 48-pixel input,
/// far below what would exhaust memory.
const MAX_CHANNELS: usize = 4096;
const MAX_BLOCKS: usize = 64;
const MAX_STRIDE: usize = 8;
/// Bounds on a Swin config's own numbers, in the same spirit.
const MAX_PATCH: usize = 64;
const MAX_WINDOW: usize = 64;
const MAX_HEADS: usize = 64;
const MAX_MLP_RATIO: usize = 16;

/// Bounds every number the runtime sizes a layer or a loop by, so that a typo in a config is a
/// message naming the field rather than a panic or a huge allocation.
fn within(
    field: String,
    value: usize,
    range: RangeInclusive<usize>,
) -> std::result::Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "architecture.{field} is {value}; it must be in {}..={}",
            range.start(),
            range.end()
        ))
    }
}

/// A normalisation epsilon: finite and positive.
fn positive_eps(field: &str, eps: f32) -> std::result::Result<(), String> {
    if eps.is_finite() && eps > 0.0 {
        Ok(())
    } else {
        Err(format!(
            "architecture.{field} is {eps}; it must be a small positive number such as 1e-5"
        ))
    }
}

impl Architecture {
    /// Checks the layout, saying what is wrong.
    fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Self::Resnet {
                stem_channels,
                stem_stride,
                widths,
                blocks,
                strides,
                bn_eps,
            } => {
                if widths.is_empty()
                    || widths.len() != blocks.len()
                    || widths.len() != strides.len()
                {
                    return Err(
                        "resnet widths, blocks and strides must be non-empty and of equal length"
                            .into(),
                    );
                }
                within("stem_channels".into(), *stem_channels, 1..=MAX_CHANNELS)?;
                within("stem_stride".into(), *stem_stride, 1..=MAX_STRIDE)?;
                for (i, ((&w, &b), &s)) in widths.iter().zip(blocks).zip(strides).enumerate() {
                    within(format!("widths[{i}]"), w, 1..=MAX_CHANNELS)?;
                    within(format!("blocks[{i}]"), b, 1..=MAX_BLOCKS)?;
                    within(format!("strides[{i}]"), s, 1..=MAX_STRIDE)?;
                }
                positive_eps("bn_eps", *bn_eps)?;
            }
            Self::Ensemble { members } => {
                if members.len() < 2 {
                    return Err("an ensemble needs at least two members".into());
                }
                for m in members {
                    if !matches!(m, Self::Resnet { .. } | Self::Swin { .. }) {
                        return Err("every ensemble member must be a resnet or a swin".into());
                    }
                    m.validate()?;
                }
            }
            Self::Swin {
                patch_size,
                embed_dim,
                depths,
                heads,
                window,
                mlp_ratio,
                ln_eps,
            } => {
                within("patch_size".into(), *patch_size, 1..=MAX_PATCH)?;
                within("embed_dim".into(), *embed_dim, 1..=MAX_CHANNELS)?;
                within("window".into(), *window, 1..=MAX_WINDOW)?;
                within("mlp_ratio".into(), *mlp_ratio, 1..=MAX_MLP_RATIO)?;
                if depths.is_empty() || depths.len() != heads.len() {
                    return Err(
                        "swin depths and heads must be non-empty and of equal length".into(),
                    );
                }
                for (i, (&d, &h)) in depths.iter().zip(heads).enumerate() {
                    within(format!("depths[{i}]"), d, 1..=MAX_BLOCKS)?;
                    within(format!("heads[{i}]"), h, 1..=MAX_HEADS)?;
                }
                // Each stage doubles the channels.
                if embed_dim
                    .checked_shl(depths.len() as u32 - 1)
                    .is_none_or(|c| c > MAX_CHANNELS)
                {
                    return Err(format!(
                        "architecture.embed_dim {embed_dim} doubled over {} stages exceeds {MAX_CHANNELS} channels",
                        depths.len()
                    ));
                }
                positive_eps("ln_eps", *ln_eps)?;
            }
            Self::Onnx { .. } => {}
        }
        Ok(())
    }

    /// The networks this layout runs on the native runtime (itself, or an ensemble's
    /// members), with the prefix of each one's tensor names.
    fn members(&self) -> Vec<(String, &Self)> {
        match self {
            Self::Resnet { .. } | Self::Swin { .. } => vec![(String::new(), self)],
            Self::Ensemble { members } => members
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("members.{i}."), m))
                .collect(),
            Self::Onnx { .. } => Vec::new(),
        }
    }
}

/// The built-in model's weights and config (see models/README.md for how it was made).
const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../../../models/emotion.safetensors");
const EMBEDDED_CONFIG: &str = include_str!("../../../../models/emotion.json");

/// How the built-in model is named in messages.
pub const EMBEDDED_ORIGIN: &str = "<embedded model>";

/// The built-in model's safetensors bytes and config (for tools that run it another way, such as
/// `emotrack eval --backend burn`).
pub fn embedded_model() -> Result<(&'static [u8], ModelConfig)> {
    let config = serde_json::from_str(EMBEDDED_CONFIG)
        .map_err(|e| Error::model(EMBEDDED_ORIGIN, format!("config: {e}")))?;
    Ok((EMBEDDED_WEIGHTS, config))
}

/// Where a classifier's model comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModelSource {
    /// The model built into the binary.
    #[default]
    Embedded,
    /// `<name>.safetensors` (or `<name>.onnx`) with its `<name>.json` config next to it.
    File(PathBuf),
}

/// What a model is on disk, for messages.
const MODEL_FILES_HINT: &str = "a model is <name>.safetensors (or <name>.onnx) with <name>.json \
     beside it, or a training run folder";

/// The inference weights a training run folder holds: `emotrack train` exports its best weights
/// there (with [`RUN_MODEL_CONFIG`] beside them) whenever validation improves.
pub const RUN_MODEL_WEIGHTS: &str = "model.safetensors";
/// The config of [`RUN_MODEL_WEIGHTS`].
pub const RUN_MODEL_CONFIG: &str = "model.json";

impl ModelSource {
    /// What a user named with `--model` (every subcommand and the server read it this way):
    ///
    /// * `None`: the built-in model;
    /// * a `.safetensors` or `.onnx` file: that model, its `<name>.json` config beside it;
    /// * a folder: a training run, whose [`RUN_MODEL_WEIGHTS`] it loads.
    ///
    /// Only the path is checked here (that it exists, and that a folder holds a model); the
    /// files are read by [`Classifier::load`].
    ///
    /// ```
    /// use emotrack::classify::ModelSource;
    /// assert_eq!(ModelSource::resolve(None).unwrap(), ModelSource::Embedded);
    /// assert!(ModelSource::resolve(Some("no/such/model.safetensors".as_ref())).is_err());
    /// ```
    pub fn resolve(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::Embedded);
        };
        if path.is_dir() {
            let weights = path.join(RUN_MODEL_WEIGHTS);
            if !weights.is_file() {
                return Err(Error::model(
                    path,
                    format!("is a folder without {RUN_MODEL_WEIGHTS}"),
                )
                .with_hint(format!(
                    "{MODEL_FILES_HINT}; a training run folder holds one after its first epoch"
                )));
            }
            return Ok(Self::File(weights));
        }
        if !path.exists() {
            return Err(Error::model(path, "does not exist").with_hint(MODEL_FILES_HINT));
        }
        Ok(Self::File(path.to_path_buf()))
    }

    /// The weights file this source reads (`None` for the built-in model).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Embedded => None,
            Self::File(path) => Some(path),
        }
    }
}

/// A loaded emotion classifier. Cheap to share across threads (`&self` methods); each call
/// borrows a set of activation buffers from an internal pool so nothing is allocated in steady
/// state.
#[derive(Debug)]
pub struct Classifier {
    config: ModelConfig,
    net: Net,
    /// `order[i]` = index in [`Emotion::ALL`] of the model's output `i`.
    order: [usize; 7],
    origin: PathBuf,
}

/// What runs the model.
#[derive(Debug)]
enum Net {
    /// Our network (a ResNet or a Swin), or an ensemble of them, on the [`emotrack_nn`]
    /// runtime, with a pool of activation buffers. An ensemble's heads are scaled by
    /// `1 / members` at load time, so the sum of the members' outputs is their mean.
    Native {
        members: Vec<Member>,
        pool: Mutex<Vec<Buffers>>,
    },
    /// An ONNX graph on tract.
    #[cfg(feature = "onnx")]
    Onnx(onnx::OnnxNet),
}

/// One network on the native runtime: a model, or one member of an ensemble.
#[derive(Debug)]
pub(crate) enum Member {
    /// The CNN.
    Resnet(resnet::ResNet),
    /// The transformer.
    Swin(swin::net::Swin),
}

/// The activations of either kind of [`Member`] (each uses its own; one set per concurrent
/// caller, so an ensemble mixing both kinds reuses them too).
#[derive(Debug, Default)]
struct Buffers {
    resnet: resnet::Buffers,
    swin: swin::net::Buffers,
}

impl Member {
    /// Loads the network of `arch` (a `resnet` or a `swin`) whose tensor names start with
    /// `prefix`.
    fn load(
        w: &Weights<'_>,
        prefix: &str,
        arch: &Architecture,
        config: &ModelConfig,
    ) -> Result<Self> {
        let classes = config.classes.len();
        match arch {
            Architecture::Resnet { .. } => {
                resnet::ResNet::load(w, prefix, arch, classes).map(Self::Resnet)
            }
            Architecture::Swin { .. } => {
                swin::net::Swin::load(w, prefix, arch, config.input_size as usize, classes)
                    .map(Self::Swin)
            }
            Architecture::Ensemble { .. } | Architecture::Onnx { .. } => Err(Error::config(
                "the native runtime runs ResNet and Swin networks only",
            )),
        }
    }

    /// Multiplies the logits by `factor` (baked into the head).
    fn scale_outputs(&mut self, factor: f32) {
        match self {
            Self::Resnet(net) => net.scale_outputs(factor),
            Self::Swin(net) => net.scale_outputs(factor),
        }
    }

    /// Logits `[N, classes, 1, 1]` for the input `[N, 1, S, S]`, written into `out`.
    fn forward(&self, x: &Tensor, out: &mut Tensor, buf: &mut Buffers) {
        match self {
            Self::Resnet(net) => net.forward(x, out, &mut buf.resnet),
            Self::Swin(net) => net.forward(x, out, &mut buf.swin),
        }
    }

    /// Writes the network into an ONNX graph reading `input`; returns the logits' name.
    #[cfg(feature = "onnx")]
    fn write_onnx(&self, g: &mut onnx::GraphBuilder, input: &str) -> String {
        match self {
            Self::Resnet(net) => net.write_onnx(g, input),
            Self::Swin(net) => net.write_onnx(g, input),
        }
    }
}

impl Classifier {
    /// Loads a model from its source.
    pub fn load(source: &ModelSource) -> Result<Self> {
        match source {
            ModelSource::Embedded => Self::embedded(),
            ModelSource::File(path) => Self::from_file(path),
        }
    }

    /// The built-in model.
    pub fn embedded() -> Result<Self> {
        let (weights, config) = embedded_model()?;
        Self::from_bytes(weights, config, Path::new(EMBEDDED_ORIGIN))
    }

    /// Loads `path` (a `.safetensors` or `.onnx` file) and the `.json` config next to it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config_path = path.with_extension("json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            Error::model(
                &config_path,
                format!("cannot read the model config that must sit next to the weights ({e})"),
            )
            .with_hint(MODEL_FILES_HINT)
        })?;
        let config: ModelConfig = serde_json::from_str(&text).map_err(|e| {
            Error::model(
                config_path.clone(),
                format!("not a valid model config: {e}"),
            )
        })?;
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        Self::from_bytes(&bytes, config, path)
    }

    /// A classifier from model bytes (safetensors weights, or an ONNX graph when the config's
    /// architecture is `onnx`) and their config; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], config: ModelConfig, origin: &Path) -> Result<Self> {
        let model_error = |message: String| Error::model(origin, message);
        config.validate().map_err(|e| model_error(e.to_string()))?;
        let net = match config.architecture {
            Architecture::Resnet { .. }
            | Architecture::Swin { .. }
            | Architecture::Ensemble { .. } => {
                let w = Weights::from_bytes(bytes, origin)?;
                let nets = config.architecture.members();
                let share = 1.0 / nets.len() as f32;
                let members = nets
                    .into_iter()
                    .map(|(prefix, arch)| {
                        let mut net = Member::load(&w, &prefix, arch, &config)?;
                        net.scale_outputs(share);
                        Ok(net)
                    })
                    .collect::<Result<_>>()?;
                Net::Native {
                    members,
                    pool: Mutex::new(Vec::new()),
                }
            }
            #[cfg(feature = "onnx")]
            Architecture::Onnx { outputs } => Net::Onnx(
                onnx::OnnxNet::load(
                    bytes,
                    config.input_size as usize,
                    config.classes.len(),
                    outputs,
                )
                .map_err(model_error)?,
            ),
            #[cfg(not(feature = "onnx"))]
            Architecture::Onnx { .. } => {
                return Err(model_error(
                    "this build has no ONNX support (enable the `onnx` feature)".into(),
                ));
            }
        };
        let mut order = [0; 7];
        for (o, name) in order.iter_mut().zip(&config.classes) {
            // validate() checked every name.
            *o = Emotion::from_name(name).map_or(0, Emotion::index);
        }
        tracing::debug!(
            origin = %origin.display(),
            architecture = ?config.architecture,
            input_size = config.input_size,
            "emotion model loaded"
        );
        Ok(Self {
            config,
            net,
            order,
            origin: origin.into(),
        })
    }

    /// The model as ONNX bytes (input `input` `[N, 1, S, S]` of normalised pixels, output
    /// `logits` `[N, classes]` in the config's class order), with the config to save next to
    /// it as `<name>.json`. Our own models (ResNet, Swin, ensembles of them) can be exported.
    #[cfg(feature = "onnx")]
    pub fn to_onnx(&self) -> Result<(Vec<u8>, ModelConfig)> {
        let Net::Native { members, .. } = &self.net else {
            return Err(
                Error::model(self.origin.clone(), "is already an ONNX model")
                    .with_hint("copy the .onnx file instead"),
            );
        };
        let doc = format!(
            "emotrack emotion classifier; classes {:?}; input (pixel/255 - {}) / {}",
            self.config.classes, self.config.normalization.mean, self.config.normalization.std
        );
        let bytes = onnx::export(
            members,
            self.config.input_size as usize,
            self.config.classes.len(),
            self.config.temperature,
            &doc,
        )?;
        // The graph divides by the temperature itself, so any ONNX runtime gets the calibrated
        // logits; the config must not divide again.
        let config = ModelConfig {
            architecture: Architecture::Onnx {
                outputs: OnnxOutputs::Logits,
            },
            temperature: 1.0,
            ..self.config.clone()
        };
        Ok((bytes, config))
    }

    /// The model's config (architecture, input size, classes, metrics).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Where the model was loaded from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Side of the square grayscale crop the model takes.
    pub fn input_size(&self) -> u32 {
        self.config.input_size
    }

    /// Logits, indexed like [`Emotion::ALL`], for a batch of crops of `input_size` pixels,
    /// divided by the model's [`ModelConfig::temperature`]: their softmax is the calibrated
    /// probabilities [`Classifier::classify`] gives.
    ///
    /// # Panics
    /// If a crop is not `input_size` x `input_size` (a programming error: crop with
    /// [`crate::imgproc::face_crop`] at [`Classifier::input_size`]).
    pub fn logits(&self, crops: &[GrayImage]) -> Vec<[f32; 7]> {
        let s = self.config.input_size;
        let side = s as usize;
        let mut x = Tensor::zeros([crops.len(), 1, side, side]);
        for (i, crop) in crops.iter().enumerate() {
            assert_eq!(
                crop.dimensions(),
                (s, s),
                "crop size differs from the model's input size"
            );
            self.config
                .normalization
                .apply(crop.as_raw(), x.item_mut(i));
        }
        self.logits_of_tensor(&x)
    }

    /// Logits (divided by the temperature, as [`Classifier::logits`]) for an already
    /// normalised `[N, 1, S, S]` tensor, indexed like [`Emotion::ALL`].
    pub fn logits_of_tensor(&self, x: &Tensor) -> Vec<[f32; 7]> {
        let mut logits = self.raw_logits(x);
        let t = self.config.temperature;
        if t != 1.0 {
            for v in logits.iter_mut().flatten() {
                *v /= t;
            }
        }
        logits
    }

    /// The network's own logits, before the temperature.
    fn raw_logits(&self, x: &Tensor) -> Vec<[f32; 7]> {
        match &self.net {
            Net::Native { members, pool } => {
                // An ensemble's members run side by side on the rayon pool.
                let outputs: Vec<Tensor> = members
                    .par_iter()
                    .map(|net| {
                        let mut buf = pool
                            .lock()
                            .map(|mut p| p.pop())
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        let mut out = Tensor::new();
                        net.forward(x, &mut out, &mut buf);
                        if let Ok(mut p) = pool.lock() {
                            p.push(buf);
                        }
                        out
                    })
                    .collect();
                let mut sum = vec![[0.0; 7]; x.shape()[0]];
                for out in &outputs {
                    for (s, row) in sum.iter_mut().zip(out.data().chunks_exact(7)) {
                        for (s, v) in s.iter_mut().zip(self.in_emotion_order(row)) {
                            *s += v;
                        }
                    }
                }
                sum
            }
            #[cfg(feature = "onnx")]
            Net::Onnx(net) => net
                .forward(x)
                .iter()
                .map(|row| self.in_emotion_order(row))
                .collect(),
        }
    }

    /// One item's outputs, from the model's class order to [`Emotion::ALL`]'s.
    fn in_emotion_order(&self, row: &[f32]) -> [f32; 7] {
        let mut l = [0.0; 7];
        for (&o, &v) in self.order.iter().zip(row) {
            l[o] = v;
        }
        l
    }

    /// Emotion probabilities for a batch of crops of `input_size` pixels. Several crops (the
    /// faces of one frame) are split across the rayon pool's threads, so a frame's faces are
    /// classified on every core.
    pub fn classify(&self, crops: &[GrayImage]) -> Vec<EmotionScores> {
        let per_thread = crops.len().div_ceil(rayon::current_num_threads()).max(1);
        crops
            .par_chunks(per_thread)
            .flat_map_iter(|chunk| self.logits(chunk))
            .map(|l| EmotionScores::from_logits(&l))
            .collect()
    }
}
