//! The ResNet-style emotion CNN on the [`emotrack_nn`] runtime (inference only; training lives in
//! `emotrack-train`, which exports the same tensor names).

use super::Architecture;
use crate::error::{Error, Result};
use emotrack_nn::{
    Activation, Conv2d, ConvSpec, Linear, Scratch, Tensor, Weights, add_inplace, global_avg_pool,
    relu_inplace,
};

/// One basic block: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. Batch norms are
/// folded into the convolutions at load time.
#[derive(Debug, Clone)]
struct Block {
    conv1: Conv2d,
    conv2: Conv2d,
    /// `None`: identity shortcut.
    shortcut: Option<Conv2d>,
}

/// The whole net. `forward` maps `[N, 1, S, S]` normalised crops to `[N, classes, 1, 1]` logits.
#[derive(Debug, Clone)]
pub(crate) struct ResNet {
    stem: Conv2d,
    blocks: Vec<Block>,
    head: Linear,
}

/// Activations reused across calls (one set per concurrent caller).
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    a: Tensor,
    b: Tensor,
    c: Tensor,
    short: Tensor,
    scratch: Scratch,
}

impl ResNet {
    /// Loads the net described by the architecture fields from `w`, its tensor names starting
    /// with `prefix` (empty for a lone model, `members.{i}.` in an ensemble).
    pub(crate) fn load(
        w: &Weights<'_>,
        prefix: &str,
        arch: &Architecture,
        classes: usize,
    ) -> Result<Self> {
        let Architecture::Resnet {
            stem_channels,
            stem_stride,
            widths,
            blocks,
            strides,
            bn_eps,
        } = arch
        else {
            return Err(Error::config("the native runtime runs ResNet models only"));
        };
        let (stem_channels, stem_stride, bn_eps) = (*stem_channels, *stem_stride, *bn_eps);
        let conv3 = |i, o, s| ConvSpec::new(i, o, 3).stride(s).padding(1).no_bias();
        let stem = Conv2d::load_with_batchnorm(
            w,
            &format!("{prefix}stem.conv"),
            &format!("{prefix}stem.bn"),
            conv3(1, stem_channels, stem_stride),
            bn_eps,
        )?;
        let mut layers = Vec::new();
        let mut in_ch = stem_channels;
        for (s, ((&width, &count), &stride)) in widths.iter().zip(blocks).zip(strides).enumerate() {
            for b in 0..count {
                let p = format!("{prefix}stages.{s}.{b}");
                let st = if b == 0 { stride } else { 1 };
                let conv1 = Conv2d::load_with_batchnorm(
                    w,
                    &format!("{p}.conv1"),
                    &format!("{p}.bn1"),
                    conv3(in_ch, width, st),
                    bn_eps,
                )?;
                let conv2 = Conv2d::load_with_batchnorm(
                    w,
                    &format!("{p}.conv2"),
                    &format!("{p}.bn2"),
                    conv3(width, width, 1),
                    bn_eps,
                )?;
                let shortcut = if st != 1 || in_ch != width {
                    Some(Conv2d::load_with_batchnorm(
                        w,
                        &format!("{p}.shortcut.conv"),
                        &format!("{p}.shortcut.bn"),
                        ConvSpec::new(in_ch, width, 1).stride(st).no_bias(),
                        bn_eps,
                    )?)
                } else {
                    None
                };
                layers.push(Block {
                    conv1,
                    conv2,
                    shortcut,
                });
                in_ch = width;
            }
        }
        let head = Linear::load(w, &format!("{prefix}head"), in_ch, classes)?;
        Ok(Self {
            stem,
            blocks: layers,
            head,
        })
    }

    /// Multiplies the logits by `factor` (baked into the head).
    pub(crate) fn scale_outputs(&mut self, factor: f32) {
        self.head.scale(factor);
    }

    /// Writes the net into an ONNX graph reading `input`; returns the logits' name. It walks
    /// the same layers as [`ResNet::forward`].
    #[cfg(feature = "onnx")]
    pub(crate) fn write_onnx(&self, g: &mut super::onnx::GraphBuilder, input: &str) -> String {
        let mut a = g.conv(input, &self.stem);
        a = g.relu(&a);
        for block in &self.blocks {
            let b = g.conv(&a, &block.conv1);
            let b = g.relu(&b);
            let c = g.conv(&b, &block.conv2);
            let short = match &block.shortcut {
                Some(sc) => g.conv(&a, sc),
                None => a,
            };
            let c = g.add(&c, &short);
            a = g.relu(&c);
        }
        let pooled = g.global_avg_pool(&a);
        g.linear(&pooled, &self.head)
    }

    /// Logits `[N, classes, 1, 1]` for the input `[N, 1, S, S]`, written into `out`.
    pub(crate) fn forward(&self, x: &Tensor, out: &mut Tensor, buf: &mut Buffers) {
        let Buffers {
            a,
            b,
            c,
            short,
            scratch,
        } = buf;
        self.stem.forward_act(x, a, scratch, Activation::Relu);
        for block in &self.blocks {
            block.conv1.forward_act(a, b, scratch, Activation::Relu);
            block.conv2.forward(b, c, scratch);
            match &block.shortcut {
                Some(sc) => {
                    sc.forward(a, short, scratch);
                    add_inplace(c, short);
                }
                None => add_inplace(c, a),
            }
            relu_inplace(c);
            std::mem::swap(a, c);
        }
        global_avg_pool(a, b);
        self.head.forward(b, out);
    }
}
