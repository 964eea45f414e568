//! The ResNet-style emotion CNN in burn, with the layout of
//! [`emotrack::classify::Architecture::Resnet`].
//!
//! Module field names are chosen so that burn's parameter paths map one-to-one onto the
//! PyTorch-style tensor names of the inference model file (see [`crate::weights`]):
//! `stem.conv.weight`, `stages.{s}.{b}.bn1.gamma` (→ `.weight`), `head.weight`, ...

use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use emotrack::classify::Architecture;
use serde::{Deserialize, Serialize};

use crate::conv;
use crate::error::TrainError;

/// Layout of the network; the training-side twin of [`Architecture::Resnet`] plus dropout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResnetConfig {
    /// Output channels of the 3x3 stem convolution.
    pub stem_channels: usize,
    /// Stride of the stem convolution (2 halves 48x48 to 24x24 at once, the cheap choice).
    pub stem_stride: usize,
    /// Channels of each stage.
    pub widths: Vec<usize>,
    /// Basic blocks per stage.
    pub blocks: Vec<usize>,
    /// Stride of the first block of each stage.
    pub strides: Vec<usize>,
    /// Dropout before the linear head (training only).
    pub dropout: f64,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
    /// Batch-norm running-statistics momentum (PyTorch convention: weight of the new batch).
    pub bn_momentum: f64,
}

impl Default for ResnetConfig {
    fn default() -> Self {
        // The reference recipe: 1.23 M parameters, 35.6 M MACs at 48x48.
        Self {
            stem_channels: 32,
            stem_stride: 2,
            widths: vec![32, 64, 128, 256],
            blocks: vec![1, 1, 1, 1],
            strides: vec![1, 2, 2, 2],
            dropout: 0.3,
            bn_eps: 1e-5,
            bn_momentum: 0.1,
        }
    }
}

impl ResnetConfig {
    /// Checks the layout, saying what to change.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(format!("model: {m}")));
        if self.widths.is_empty()
            || self.widths.len() != self.blocks.len()
            || self.widths.len() != self.strides.len()
        {
            return bad("widths, blocks and strides must be non-empty lists of equal length");
        }
        if self.stem_channels == 0 || self.widths.contains(&0) || self.blocks.contains(&0) {
            return bad("stem_channels, widths and blocks must be positive");
        }
        if self.stem_stride == 0 || self.strides.contains(&0) {
            return bad("strides must be positive");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout must be in [0, 1)");
        }
        if !(self.bn_eps > 0.0) || !(0.0..=1.0).contains(&self.bn_momentum) {
            return bad("bn_eps must be positive and bn_momentum in [0, 1]");
        }
        Ok(())
    }

    /// The architecture entry of the exported model config.
    pub fn architecture(&self) -> Architecture {
        Architecture::Resnet {
            stem_channels: self.stem_channels,
            stem_stride: self.stem_stride,
            widths: self.widths.clone(),
            blocks: self.blocks.clone(),
            strides: self.strides.clone(),
            bn_eps: self.bn_eps as f32,
        }
    }

    /// The training config matching an exported architecture (dropout is irrelevant there);
    /// `None` for another kind.
    pub fn from_architecture(arch: &Architecture) -> Option<Self> {
        match arch {
            Architecture::Resnet {
                stem_channels,
                stem_stride,
                widths,
                blocks,
                strides,
                bn_eps,
            } => Some(Self {
                stem_channels: *stem_channels,
                stem_stride: *stem_stride,
                widths: widths.clone(),
                blocks: blocks.clone(),
                strides: strides.clone(),
                bn_eps: f64::from(*bn_eps),
                ..Self::default()
            }),
            _ => None,
        }
    }

    /// Builds a freshly initialised network on `device`.
    pub fn init(&self, num_classes: usize, device: &Device) -> Resnet {
        let bn = |c: usize| {
            BatchNormConfig::new(c)
                .with_epsilon(self.bn_eps)
                .with_momentum(self.bn_momentum)
                .init(device)
        };
        let stem = ConvBn {
            conv: conv(1, self.stem_channels, 3, self.stem_stride, device),
            bn: bn(self.stem_channels),
        };
        let mut stages = Vec::with_capacity(self.widths.len());
        let mut in_ch = self.stem_channels;
        for ((&width, &blocks), &stride) in self.widths.iter().zip(&self.blocks).zip(&self.strides)
        {
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let s = if b == 0 { stride } else { 1 };
                let shortcut = (s != 1 || in_ch != width).then(|| ConvBn {
                    conv: conv(in_ch, width, 1, s, device),
                    bn: bn(width),
                });
                stage.push(BasicBlock {
                    conv1: conv(in_ch, width, 3, s, device),
                    bn1: bn(width),
                    conv2: conv(width, width, 3, 1, device),
                    bn2: bn(width),
                    shortcut,
                });
                in_ch = width;
            }
            stages.push(stage);
        }
        Resnet {
            stem,
            stages,
            dropout: DropoutConfig::new(self.dropout).init(),
            // Column layout stores the weight as [out, in], PyTorch's layout, in records too.
            head: LinearConfig::new(in_ch, num_classes)
                .with_layout(burn::nn::LinearLayout::Col)
                .init(device),
        }
    }
}

/// A bias-free convolution with "same"-style padding (k/2), He-initialised like torchvision's
/// ResNet (normal, fan-out, gain √2).
fn conv(in_ch: usize, out_ch: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([in_ch, out_ch], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

/// Convolution followed by batch norm (stem and projection shortcut).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution (no bias).
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(conv::forward(&self.conv, x))
    }
}

/// conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3x3 convolution (carries the stride).
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// 1x1 projection when the shape changes; identity otherwise.
    pub shortcut: Option<ConvBn>,
}

impl BasicBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.shortcut {
            Some(sc) => sc.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(self.bn1.forward(conv::forward(&self.conv1, x)));
        let y = self.bn2.forward(conv::forward(&self.conv2, y));
        relu(y + identity)
    }
}

/// The whole classifier.
#[derive(Module, Debug)]
pub struct Resnet {
    /// 3x3 stem convolution + BN (+ ReLU in `forward`).
    pub stem: ConvBn,
    /// Stages of basic blocks.
    pub stages: Vec<Vec<BasicBlock>>,
    /// Dropout before the head (identity outside training).
    pub dropout: Dropout,
    /// Linear layer to the classes.
    pub head: Linear,
}

impl Resnet {
    /// Class logits.
    ///
    /// * `x`: `[batch, 1, H, W]` normalised grayscale crops.
    /// * returns `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem.forward(x));
        for stage in &self.stages {
            for block in stage {
                x = block.forward(x);
            }
        }
        let [n, c, h, w] = x.dims();
        // Global average pooling.
        let x = x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
        self.head.forward(self.dropout.forward(x))
    }
}
