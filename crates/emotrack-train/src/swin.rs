//! The Swin-style transformer in burn, with the layout of
//! [`emotrack::classify::Architecture::Swin`]: every window partition, shift, relative position
//! and patch merge comes from the index maps of [`emotrack::classify::swin`], which the runtime
//! uses too.
//!
//! Module field names give the reference code's tensor names through [`crate::weights`]
//! (`layers.{s}.blocks.{b}.attn.qkv.weight`, `...norm1.gamma` → `.weight`, ...).

use burn::module::{Flag, Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use emotrack::classify::Architecture;
use emotrack::classify::swin::{self, Stage};
use serde::{Deserialize, Serialize};

use crate::conv;
use crate::data::IMAGE_SIDE;
use crate::error::TrainError;

/// Layout of the network; the training-side twin of [`Architecture::Swin`] plus the
/// regularisation only training has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwinConfig {
    /// Side of the square patches that become tokens.
    pub patch_size: usize,
    /// Channels of the first stage's tokens (doubled by each patch merging).
    pub embed_dim: usize,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Attention heads per stage.
    pub heads: Vec<usize>,
    /// Side of the attention windows in tokens.
    pub window: usize,
    /// The MLP's hidden width as a multiple of the block's.
    pub mlp_ratio: usize,
    /// Layer-norm epsilon.
    pub ln_eps: f64,
    /// Stochastic depth: the probability of skipping a block's residual branch, rising
    /// linearly from 0 at the first block to this at the last (training only).
    pub drop_path: f64,
    /// Dropout before the linear head (training only).
    pub dropout: f64,
}

impl Default for SwinConfig {
    fn default() -> Self {
        Self {
            patch_size: 4,
            embed_dim: 64,
            depths: vec![2, 2, 2],
            heads: vec![2, 4, 8],
            window: 6,
            mlp_ratio: 4,
            ln_eps: 1e-5,
            drop_path: 0.1,
            dropout: 0.0,
        }
    }
}

/// The standard deviation of the weights' truncated-normal initialisation (the reference
/// code's; burn has no truncation, and at 0.02 a normal exceeds 2σ in 5% of weights only).
const INIT_STD: f64 = 0.02;

impl SwinConfig {
    /// The architecture entry of the exported model config.
    pub fn architecture(&self) -> Architecture {
        Architecture::Swin {
            patch_size: self.patch_size,
            embed_dim: self.embed_dim,
            depths: self.depths.clone(),
            heads: self.heads.clone(),
            window: self.window,
            mlp_ratio: self.mlp_ratio,
            ln_eps: self.ln_eps as f32,
        }
    }

    /// The training config matching an exported architecture; `None` for another kind.
    pub fn from_architecture(arch: &Architecture) -> Option<Self> {
        match arch {
            Architecture::Swin {
                patch_size,
                embed_dim,
                depths,
                heads,
                window,
                mlp_ratio,
                ln_eps,
            } => Some(Self {
                patch_size: *patch_size,
                embed_dim: *embed_dim,
                depths: depths.clone(),
                heads: heads.clone(),
                window: *window,
                mlp_ratio: *mlp_ratio,
                ln_eps: f64::from(*ln_eps),
                ..Self::default()
            }),
            _ => None,
        }
    }

    /// The stages at the training input size, or what makes the layout impossible.
    pub fn stages(&self) -> Result<Vec<Stage>, TrainError> {
        swin::stages(&self.architecture(), IMAGE_SIDE)
            .map_err(|m| TrainError::Config(format!("model: {m}")))
    }

    /// Checks the layout, saying what to change.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(format!("model: {m}")));
        if !(0.0..1.0).contains(&self.drop_path) || !(0.0..1.0).contains(&self.dropout) {
            return bad("drop_path and dropout must be in [0, 1)");
        }
        if self.embed_dim == 0 || self.mlp_ratio == 0 || self.depths.contains(&0) {
            return bad("embed_dim, mlp_ratio and depths must be positive");
        }
        if !(self.ln_eps > 0.0) {
            return bad("ln_eps must be positive");
        }
        self.stages().map(|_| ())
    }

    /// Builds a freshly initialised network on `device`.
    ///
    /// # Panics
    /// If the layout is invalid ([`SwinConfig::validate`] says why; configs are validated
    /// when read).
    pub fn init(&self, num_classes: usize, device: &Device) -> Swin {
        let stages = self.stages().expect("a validated swin layout");
        let linear = |i: usize, o: usize, bias: bool| {
            LinearConfig::new(i, o)
                .with_bias(bias)
                .with_layout(burn::nn::LinearLayout::Col)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: INIT_STD,
                })
                .init(device)
        };
        let norm = |c: usize| {
            LayerNormConfig::new(c)
                .with_epsilon(self.ln_eps)
                .init(device)
        };
        let total: usize = self.depths.iter().sum();
        let mut block_index = 0;
        let mut layers = Vec::with_capacity(stages.len());
        for stage in &stages {
            let c = stage.dim;
            let hidden = c * self.mlp_ratio;
            let side = 2 * stage.window - 1;
            let blocks = (0..stage.depth)
                .map(|b| {
                    let rate = if total > 1 {
                        self.drop_path * block_index as f64 / (total - 1) as f64
                    } else {
                        0.0
                    };
                    block_index += 1;
                    Block {
                        norm1: norm(c),
                        attn: WindowAttention {
                            qkv: linear(c, 3 * c, true),
                            relative_position_bias_table: Initializer::Normal {
                                mean: 0.0,
                                std: INIT_STD,
                            }
                            .init([side * side, stage.heads], device),
                            proj: linear(c, c, true),
                            layout: WindowLayout::new(stage, b),
                        },
                        norm2: norm(c),
                        mlp: Mlp {
                            fc1: linear(c, hidden, true),
                            fc2: linear(hidden, c, true),
                        },
                        drop_path: DropPath::new(rate),
                    }
                })
                .collect();
            let downsample = stage.merge.then(|| PatchMerging {
                norm: norm(4 * c),
                reduction: linear(4 * c, 2 * c, false),
                order: swin::merge_order(stage.resolution)
                    .into_iter()
                    .map(indices)
                    .collect(),
            });
            layers.push(SwinStage { blocks, downsample });
        }
        let last = stages.last().map_or(self.embed_dim, |s| s.dim);
        Swin {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([1, self.embed_dim], [self.patch_size; 2])
                    .with_stride([self.patch_size; 2])
                    .with_initializer(Initializer::Normal {
                        mean: 0.0,
                        std: INIT_STD,
                    })
                    .init(device),
                norm: norm(self.embed_dim),
            },
            layers,
            norm: norm(last),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: linear(last, num_classes, true),
        }
    }
}

/// An index map as burn's `select` takes it.
fn indices(map: Vec<usize>) -> Vec<i64> {
    map.into_iter().map(|i| i as i64).collect()
}

/// A `[n]` integer tensor of `map` on `device`.
fn index_tensor(map: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(map.to_vec(), [map.len()]), device)
}

/// The patch embedding: a `P x P` convolution of stride `P`, then a layer norm over channels.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// The convolution (with bias).
    pub proj: Conv2d,
    /// Its layer norm.
    pub norm: LayerNorm,
}

/// Where a block's tokens go: its window order (shift included), the inverse, the relative
/// position index and the shifted windows' mask. Constants, not parameters.
#[derive(Debug, Clone)]
pub struct WindowLayout {
    window_tokens: usize,
    order: Vec<i64>,
    back: Vec<i64>,
    relative: Vec<i64>,
    /// `[windows, N, N]` flattened, for shifted blocks.
    mask: Option<(usize, Vec<f32>)>,
}

impl WindowLayout {
    fn new(stage: &Stage, block: usize) -> Self {
        let shift = stage.shift_of(block);
        let order = swin::window_order(stage.resolution, stage.window, shift);
        let back = swin::inverse(&order);
        Self {
            window_tokens: stage.window_tokens(),
            order: indices(order),
            back: indices(back),
            relative: indices(swin::relative_position_index(stage.window)),
            mask: swin::attention_mask(stage.resolution, stage.window, shift)
                .map(|m| (stage.windows(), m)),
        }
    }
}

/// Multi-head self-attention inside each window, with a learned bias per relative position
/// and head.
#[derive(Module, Debug)]
pub struct WindowAttention {
    /// Queries, keys and values in one layer (`[3C, C]`).
    pub qkv: Linear,
    /// `[(2W-1)^2, heads]`.
    pub relative_position_bias_table: Param<Tensor<2>>,
    /// The output projection.
    pub proj: Linear,
    /// The block's token maps.
    #[module(skip)]
    pub layout: WindowLayout,
}

impl WindowAttention {
    /// `x`: `[B, L, C]` tokens in row-major order; returns the same shape.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let device = x.device();
        let [b, l, c] = x.dims();
        let [_, heads] = self.relative_position_bias_table.dims();
        let n = self.layout.window_tokens;
        let windows = l / n;
        let hd = c / heads;
        let rows = b * windows;
        let x = x
            .select(1, index_tensor(&self.layout.order, &device))
            .reshape([rows, n, c]);
        let qkv = self
            .qkv
            .forward(x)
            .reshape([rows, n, 3 * heads, hd])
            .swap_dims(1, 2);
        let q = qkv.clone().narrow(1, 0, heads);
        let k = qkv.clone().narrow(1, heads, heads);
        let v = qkv.narrow(1, 2 * heads, heads);
        let scale = (hd as f64).powf(-0.5);
        let mut attn = q.mul_scalar(scale).matmul(k.swap_dims(2, 3));
        let bias = self
            .relative_position_bias_table
            .val()
            .select(0, index_tensor(&self.layout.relative, &device))
            .swap_dims(0, 1)
            .reshape([1, heads, n, n]);
        attn = attn + bias;
        if let Some((mask_windows, mask)) = &self.layout.mask {
            let mask = Tensor::<3>::from_data(
                TensorData::new(mask.clone(), [*mask_windows, n, n]),
                &device,
            )
            .reshape([1, *mask_windows, 1, n, n]);
            attn = (attn.reshape([b, windows, heads, n, n]) + mask).reshape([rows, heads, n, n]);
        }
        let out = softmax(attn, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([rows, n, c]);
        self.proj
            .forward(out)
            .reshape([b, l, c])
            .select(1, index_tensor(&self.layout.back, &device))
    }
}

/// Linear, GELU, linear.
#[derive(Module, Debug)]
pub struct Mlp {
    /// To `mlp_ratio` times the width.
    pub fc1: Linear,
    /// Back to the width.
    pub fc2: Linear,
}

/// Skips a residual branch for a random part of the batch during training, scaling the rest
/// (stochastic depth); the identity otherwise.
#[derive(Module, Debug)]
pub struct DropPath {
    /// The probability of skipping the branch for one image.
    pub prob: f64,
    /// Whether to behave as during training (as burn's `Dropout`).
    pub training: Param<Flag>,
}

impl DropPath {
    fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        if !self.training.is_enabled() || !x.device().is_autodiff() || self.prob == 0.0 {
            return x;
        }
        let keep = 1.0 - self.prob;
        let [b, _, _] = x.dims();
        let mask = Tensor::<3>::random([b, 1, 1], Distribution::Bernoulli(keep), &x.device());
        x * mask.div_scalar(keep)
    }
}

/// Pre-norm attention and MLP, each residual.
#[derive(Module, Debug)]
pub struct Block {
    /// Before the attention.
    pub norm1: LayerNorm,
    /// Window attention (shifted on odd blocks).
    pub attn: WindowAttention,
    /// Before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
    /// Stochastic depth of both branches.
    pub drop_path: DropPath,
}

impl Block {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.attn.forward(self.norm1.forward(x.clone()));
        let x = x + self.drop_path.forward(y);
        let y = self.norm2.forward(x.clone());
        let y = self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(y)));
        x + self.drop_path.forward(y)
    }
}

/// 2x2 neighbouring tokens concatenated (`[4C]`), normalised and projected to `2C`.
#[derive(Module, Debug)]
pub struct PatchMerging {
    /// Over the concatenated channels.
    pub norm: LayerNorm,
    /// `[2C, 4C]`, no bias.
    pub reduction: Linear,
    /// The four reads of [`swin::merge_order`].
    #[module(skip)]
    pub order: Vec<Vec<i64>>,
}

impl PatchMerging {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let device = x.device();
        let parts = self
            .order
            .iter()
            .map(|ix| x.clone().select(1, index_tensor(ix, &device)))
            .collect();
        self.reduction
            .forward(self.norm.forward(Tensor::cat(parts, 2)))
    }
}

/// One stage: its blocks, then patch merging unless it is the last.
#[derive(Module, Debug)]
pub struct SwinStage {
    /// The transformer blocks.
    pub blocks: Vec<Block>,
    /// Patch merging to the next stage.
    pub downsample: Option<PatchMerging>,
}

/// The whole classifier.
#[derive(Module, Debug)]
pub struct Swin {
    /// Pixels to tokens.
    pub patch_embed: PatchEmbed,
    /// The stages.
    pub layers: Vec<SwinStage>,
    /// The last layer norm, before pooling.
    pub norm: LayerNorm,
    /// Dropout before the head (identity outside training).
    pub dropout: Dropout,
    /// Linear layer to the classes.
    pub head: Linear,
}

impl Swin {
    /// Class logits.
    ///
    /// * `x`: `[batch, 1, H, W]` normalised grayscale crops.
    /// * returns `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = conv::forward(&self.patch_embed.proj, x);
        let [b, c, h, w] = x.dims();
        let mut x = self
            .patch_embed
            .norm
            .forward(x.reshape([b, c, h * w]).swap_dims(1, 2));
        for stage in &self.layers {
            for block in &stage.blocks {
                x = block.forward(x);
            }
            if let Some(merge) = &stage.downsample {
                x = merge.forward(x);
            }
        }
        let [b, _, c] = x.dims();
        let x = self.norm.forward(x).mean_dim(1).reshape([b, c]);
        self.head.forward(self.dropout.forward(x))
    }
}
