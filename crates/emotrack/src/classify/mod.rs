//! Emotion classification: a model file is weights (safetensors) plus a JSON config
//! ([`ModelConfig`]) that travels with them.
//!
//! The config says which architecture the weights are for, the input size, the class names
//! in output order, the input normalisation and the model's measured validation metrics.
//! Tensor names follow PyTorch conventions (see `ARCHITECTURE.md`, "Model files").

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
        Self { mean: 0.508, std: 0.255 }
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
}

fn default_bn_eps() -> f32 {
    1e-5
}

/// Where a model came from and how good it is; informational, shown by `emotrack info`/`eval`.
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
    /// Origin and measured quality.
    #[serde(default)]
    pub provenance: ModelProvenance,
}

impl ModelConfig {
    /// Checks that the config is usable, saying what to fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Error::Config(format!("model config: {m}"));
        if !(8..=512).contains(&self.input_size) {
            return Err(bad(format!("input_size {} is outside 8..=512", self.input_size)));
        }
        if self.normalization.std <= 0.0 || !self.normalization.std.is_finite() {
            return Err(bad("normalization.std must be a positive number".into()));
        }
        for c in &self.classes {
            if crate::types::Emotion::from_name(c).is_none() {
                return Err(bad(format!(
                    "unknown class {c:?}; classes must be among angry, disgust, fear, happy, neutral, sad, surprise"
                )));
            }
        }
        if self.classes.len() != crate::types::Emotion::COUNT {
            return Err(bad(format!("{} classes given, 7 expected", self.classes.len())));
        }
        match &self.architecture {
            Architecture::Resnet { widths, blocks, strides, .. } => {
                if widths.is_empty() || widths.len() != blocks.len() || widths.len() != strides.len() {
                    return Err(bad("resnet widths, blocks and strides must be non-empty and of equal length".into()));
                }
            }
        }
        Ok(())
    }
}
