//! The Swin-style transformer on the [`emotrack_nn`] runtime (inference only; training lives
//! in `emotrack-train/src/swin.rs`, which exports the same tensor names).
//!
//! Activations are token rows: `[N * L, C]` row-major, each batch item's `L` tokens (row-major
//! over the stage's grid) one after the other. Every movement of tokens is a row gather by one
//! of [`super`]'s index maps: a block gathers its tokens into window order (the cyclic shift
//! included), attends within each window, and gathers the result back through the inverse
//! map; patch merging gathers each 2x2 square's four tokens into one row of `4C`.

use emotrack_nn::{
    Conv2d, ConvSpec, LayerNorm, Linear, MatLayout, Scratch, Tensor, Weights, add_assign,
    batched_matmul, channels_last, gather_rows, gelu_inplace, mean_of_rows, softmax_rows_inplace,
};

use super::{Stage, attention_mask, inverse, merge_order, relative_position_index, window_order};
use crate::classify::Architecture;
use crate::error::{Error, Result};

/// The whole net. `forward` maps `[N, 1, S, S]` normalised crops to `[N, classes, 1, 1]`
/// logits.
#[derive(Debug, Clone)]
pub(crate) struct Swin {
    /// The `P x P` convolution of stride `P` that makes the first stage's tokens.
    patch: Conv2d,
    patch_norm: LayerNorm,
    stages: Vec<StageNet>,
    norm: LayerNorm,
    head: Linear,
}

/// One stage: its shape, its blocks and the patch merging after it.
#[derive(Debug, Clone)]
struct StageNet {
    /// Tokens per item (`R * R`).
    tokens: usize,
    /// Channels per token.
    dim: usize,
    heads: usize,
    /// Tokens per window (`W * W`).
    window_tokens: usize,
    blocks: Vec<Block>,
    merge: Option<Merge>,
}

impl StageNet {
    fn windows(&self) -> usize {
        self.tokens / self.window_tokens
    }
}

/// Pre-norm window attention and MLP, each residual.
#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    /// `[3C, C]`: queries, keys and values, each head's channels together.
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    /// [`window_order`] with this block's shift: row `i` of the windows reads token `order[i]`.
    order: Vec<usize>,
    /// Its [`inverse`]: token `t` reads row `back[t]` of the windows' output.
    back: Vec<usize>,
    /// What is added to the scaled attention scores: the relative-position bias `[heads, N,
    /// N]`, the same for every window; or, on a shifted block, `[windows, heads, N, N]` with
    /// each window's [`attention_mask`] added in.
    bias: Vec<f32>,
    /// Whether `bias` holds one slice per window.
    per_window: bool,
}

/// 2x2 tokens concatenated (`[4C]`), normalised and projected to `2C`.
#[derive(Debug, Clone)]
struct Merge {
    /// [`merge_order`]'s four reads interleaved: rows `4t..4t + 4` of the gathered `[L, C]`
    /// are the four parts of merged token `t`, i.e. its `[4C]` row.
    order: Vec<usize>,
    norm: LayerNorm,
    /// `[2C, 4C]`, no bias.
    reduction: Linear,
}

/// Activations reused across calls (one set per concurrent caller); each grows to the
/// largest batch seen and stays.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// The patch embedding's NCHW output.
    map: Tensor,
    scratch: Scratch,
    /// The residual stream `[N * L, C]`.
    x: Vec<f32>,
    /// A block's normalised (windowed) tokens, and the branches' outputs.
    a: Vec<f32>,
    /// `[N * L, 3C]`.
    qkv: Vec<f32>,
    /// The attention's output, then the branch gathered back in place.
    att: Vec<f32>,
    /// One window's `[heads, N, N]` scores.
    scores: Vec<f32>,
    /// The MLP's hidden rows.
    hidden: Vec<f32>,
    /// The tokens' mean `[N, C, 1, 1]`.
    pooled: Tensor,
}

/// The first `len` values of `v`, growing it when it is shorter (never shrinking it, so a
/// buffer used at several sizes is allocated once).
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

impl Swin {
    /// Loads the net of `arch` (a `swin`) for `input_size` crops from `w`, its tensor names
    /// starting with `prefix` (empty for a lone model, `members.{i}.` in an ensemble).
    pub(crate) fn load(
        w: &Weights<'_>,
        prefix: &str,
        arch: &Architecture,
        input_size: usize,
        classes: usize,
    ) -> Result<Self> {
        let Architecture::Swin {
            patch_size,
            embed_dim,
            mlp_ratio,
            ln_eps,
            ..
        } = arch
        else {
            return Err(Error::config("not a swin architecture"));
        };
        let (patch_size, embed_dim, mlp_ratio, eps) =
            (*patch_size, *embed_dim, *mlp_ratio, *ln_eps);
        let layout = super::stages(arch, input_size)
            .map_err(|m| Error::config(format!("model config: {m}")))?;
        let name = |n: &str| format!("{prefix}{n}");
        let patch = Conv2d::load(
            w,
            &name("patch_embed.proj"),
            ConvSpec::new(1, embed_dim, patch_size).stride(patch_size),
        )?;
        let patch_norm = LayerNorm::load(w, &name("patch_embed.norm"), embed_dim, eps)?;
        let mut stages = Vec::with_capacity(layout.len());
        for (s, stage) in layout.iter().enumerate() {
            let c = stage.dim;
            let blocks = (0..stage.depth)
                .map(|b| {
                    let p = name(&format!("layers.{s}.blocks.{b}"));
                    let linear = |n: &str, i, o| Linear::load(w, &format!("{p}.{n}"), i, o);
                    let (bias, per_window) = attention_bias(w, &p, stage, b)?;
                    let order = window_order(stage.resolution, stage.window, stage.shift_of(b));
                    Ok(Block {
                        norm1: LayerNorm::load(w, &format!("{p}.norm1"), c, eps)?,
                        qkv: linear("attn.qkv", c, 3 * c)?,
                        proj: linear("attn.proj", c, c)?,
                        norm2: LayerNorm::load(w, &format!("{p}.norm2"), c, eps)?,
                        fc1: linear("mlp.fc1", c, mlp_ratio * c)?,
                        fc2: linear("mlp.fc2", mlp_ratio * c, c)?,
                        back: inverse(&order),
                        order,
                        bias,
                        per_window,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let merge = if stage.merge {
                let p = name(&format!("layers.{s}.downsample"));
                let [x0, x1, x2, x3] = merge_order(stage.resolution);
                let order = (0..x0.len())
                    .flat_map(|t| [x0[t], x1[t], x2[t], x3[t]])
                    .collect();
                let reduction = w.tensor(&format!("{p}.reduction.weight"), &[2 * c, 4 * c])?;
                Some(Merge {
                    order,
                    norm: LayerNorm::load(w, &format!("{p}.norm"), 4 * c, eps)?,
                    reduction: Linear::new(4 * c, 2 * c, reduction, None),
                })
            } else {
                None
            };
            stages.push(StageNet {
                tokens: stage.resolution * stage.resolution,
                dim: c,
                heads: stage.heads,
                window_tokens: stage.window_tokens(),
                blocks,
                merge,
            });
        }
        let last = layout.last().map_or(embed_dim, |s| s.dim);
        Ok(Self {
            patch,
            patch_norm,
            stages,
            norm: LayerNorm::load(w, &name("norm"), last, eps)?,
            head: Linear::load(w, &name("head"), last, classes)?,
        })
    }

    /// Multiplies the logits by `factor` (baked into the head).
    pub(crate) fn scale_outputs(&mut self, factor: f32) {
        self.head.scale(factor);
    }

    /// Logits `[N, classes, 1, 1]` for the input `[N, 1, S, S]`, written into `out`.
    ///
    /// # Panics
    /// If the input is not of the size the net was loaded for (a programming error: the
    /// classifier builds it from crops of that size).
    pub(crate) fn forward(&self, x: &Tensor, out: &mut Tensor, buf: &mut Buffers) {
        let n = x.n();
        self.patch.forward(x, &mut buf.map, &mut buf.scratch);
        let (mut tokens, mut c) = (buf.map.h() * buf.map.w(), self.patch_norm.dim());
        let first = self.stages.first().map_or(tokens, |s| s.tokens);
        assert_eq!(tokens, first, "input of the wrong size for this swin");
        let rows = sized(&mut buf.x, n * tokens * c);
        channels_last(&buf.map, rows);
        self.patch_norm.forward_inplace(rows);
        for stage in &self.stages {
            for block in &stage.blocks {
                block.forward(stage, n, buf);
            }
            if let Some(merge) = &stage.merge {
                let len = n * tokens * c;
                let (x, gathered) = (&buf.x[..len], sized(&mut buf.a, len));
                for (src, dst) in x
                    .chunks_exact(tokens * c)
                    .zip(gathered.chunks_exact_mut(tokens * c))
                {
                    gather_rows(src, c, &merge.order, dst);
                }
                merge.norm.forward_inplace(gathered);
                tokens /= 4;
                c *= 2;
                merge
                    .reduction
                    .forward_rows(gathered, sized(&mut buf.x, n * tokens * c));
            }
        }
        let rows = &mut buf.x[..n * tokens * c];
        self.norm.forward_inplace(rows);
        buf.pooled.resize([n, c, 1, 1]);
        for (i, item) in rows.chunks_exact(tokens * c).enumerate() {
            mean_of_rows(item, buf.pooled.item_mut(i));
        }
        self.head.forward(&buf.pooled, out);
    }

    /// Writes the net into an ONNX graph reading `input` (`[N, 1, S, S]`); returns the
    /// logits' name (`[N, classes]`). It walks the same layers as [`Swin::forward`], the
    /// token maps as `Gather`s of int64 indices.
    #[cfg(feature = "onnx")]
    pub(crate) fn write_onnx(
        &self,
        g: &mut crate::classify::onnx::GraphBuilder,
        input: &str,
    ) -> String {
        let c0 = self.patch_norm.dim();
        let tokens0 = self.stages.first().map_or(0, |s| s.tokens);
        let map = g.conv(input, &self.patch);
        let rows = g.reshape(&map, &[-1, c0 as i64, tokens0 as i64]);
        let rows = g.transpose(&rows, &[0, 2, 1]);
        let mut x = g.layer_norm(&rows, &self.patch_norm);
        for stage in &self.stages {
            let (l, c, heads, nt) = (stage.tokens, stage.dim, stage.heads, stage.window_tokens);
            let (windows, hd) = (stage.windows(), c / stage.heads);
            // [B, L, C] in window order → [B, windows, heads, N, hd].
            let split = [-1, windows as i64, nt as i64, heads as i64, hd as i64];
            for block in &stage.blocks {
                let h = g.gather(&x, &block.order, 1);
                let h = g.layer_norm(&h, &block.norm1);
                let [q, k, v] = std::array::from_fn(|part| {
                    let t = g.linear_part(&h, &block.qkv, part * c..(part + 1) * c);
                    let t = g.reshape(&t, &split);
                    // Keys go straight to [.., hd, N]: the scores are q · kᵀ.
                    let perm: &[i64] = if part == 1 {
                        &[0, 1, 3, 4, 2]
                    } else {
                        &[0, 1, 3, 2, 4]
                    };
                    g.transpose(&t, perm)
                });
                let scores = g.matmul(&q, &k);
                let scale = (hd as f64).powf(-0.5) as f32;
                let scores = g.mul_constant(&scores, scale);
                let bias_dims: Vec<usize> = if block.per_window {
                    vec![windows, heads, nt, nt]
                } else {
                    vec![heads, nt, nt]
                };
                let scores = g.add_constant(&scores, &bias_dims, &block.bias);
                let attn = g.softmax(&scores, -1);
                let o = g.matmul(&attn, &v);
                let o = g.transpose(&o, &[0, 1, 3, 2, 4]);
                let o = g.reshape(&o, &[-1, l as i64, c as i64]);
                let o = g.linear_rows(&o, &block.proj);
                let o = g.gather(&o, &block.back, 1);
                x = g.add(&x, &o);
                let h = g.layer_norm(&x, &block.norm2);
                let h = g.linear_rows(&h, &block.fc1);
                let h = g.gelu(&h);
                let h = g.linear_rows(&h, &block.fc2);
                x = g.add(&x, &h);
            }
            if let Some(merge) = &stage.merge {
                let h = g.gather(&x, &merge.order, 1);
                let h = g.reshape(&h, &[-1, (l / 4) as i64, (4 * c) as i64]);
                let h = g.layer_norm(&h, &merge.norm);
                x = g.linear_rows(&h, &merge.reduction);
            }
        }
        let x = g.layer_norm(&x, &self.norm);
        let pooled = g.reduce_mean(&x, 1);
        g.linear(&pooled, &self.head)
    }
}

/// The bias added to block `b`'s scaled attention scores: its relative-position table read
/// through [`relative_position_index`] as `[heads, N, N]`; on a shifted block,
/// `[windows, heads, N, N]` with the shifted windows' mask added. The flag says which.
fn attention_bias(
    w: &Weights<'_>,
    block: &str,
    stage: &Stage,
    b: usize,
) -> Result<(Vec<f32>, bool)> {
    let (heads, n) = (stage.heads, stage.window_tokens());
    let side = 2 * stage.window - 1;
    let table = w.tensor(
        &format!("{block}.attn.relative_position_bias_table"),
        &[side * side, heads],
    )?;
    let relative = relative_position_index(stage.window);
    let bias: Vec<f32> = (0..heads)
        .flat_map(|h| relative.iter().map(move |&r| (r, h)))
        .map(|(r, h)| table[r * heads + h])
        .collect();
    match attention_mask(stage.resolution, stage.window, stage.shift_of(b)) {
        None => Ok((bias, false)),
        Some(mask) => {
            let windowed = mask
                .chunks_exact(n * n)
                .flat_map(|m| {
                    bias.chunks_exact(n * n)
                        .flat_map(move |head| head.iter().zip(m).map(|(b, m)| b + m))
                })
                .collect();
            Ok((windowed, true))
        }
    }
}

impl Block {
    /// Applies the block to the residual stream `buf.x` (`n` items of `stage`'s tokens).
    fn forward(&self, stage: &StageNet, n: usize, buf: &mut Buffers) {
        let (l, c, heads, nt) = (stage.tokens, stage.dim, stage.heads, stage.window_tokens);
        let hd = c / heads;
        let len = n * l * c;
        let Buffers {
            x,
            a,
            qkv,
            att,
            scores,
            hidden,
            ..
        } = buf;
        let x = &mut x[..len];
        let a = sized(a, len);
        // Attention: the tokens in window order (shifted on odd blocks), normalised.
        for (src, dst) in x.chunks_exact(l * c).zip(a.chunks_exact_mut(l * c)) {
            gather_rows(src, c, &self.order, dst);
        }
        self.norm1.forward_inplace(a);
        let qkv = sized(qkv, 3 * len);
        self.qkv.forward_rows(a, qkv);
        let att = sized(att, len);
        let scores = sized(scores, heads * nt * nt);
        // One head's queries (keys, values) of one window: N rows of hd in the [3C] rows,
        // the heads hd columns apart; its output goes to the same columns of [C] rows.
        let q = MatLayout::row_major(nt, hd)
            .with_row_stride(3 * c)
            .with_batch_stride(hd);
        let o = MatLayout::row_major(nt, hd)
            .with_row_stride(c)
            .with_batch_stride(hd);
        let s = MatLayout::row_major(nt, nt);
        let scale = (hd as f64).powf(-0.5) as f32;
        let per_window = heads * nt * nt;
        for w in 0..n * stage.windows() {
            let row = w * nt;
            let at = row * 3 * c;
            batched_matmul(
                heads,
                scale,
                qkv,
                q.at(at),
                qkv,
                q.at(at + c).t(),
                0.0,
                scores,
                s,
            );
            let bias = if self.per_window {
                let k = w % stage.windows();
                &self.bias[k * per_window..(k + 1) * per_window]
            } else {
                &self.bias[..]
            };
            add_assign(scores, bias);
            softmax_rows_inplace(scores, nt);
            batched_matmul(
                heads,
                1.0,
                scores,
                s,
                qkv,
                q.at(at + 2 * c),
                0.0,
                att,
                o.at(row * c),
            );
        }
        self.proj.forward_rows(att, a);
        // Back to row-major token order (the shift undone), added to the stream.
        for (src, dst) in a.chunks_exact(l * c).zip(att.chunks_exact_mut(l * c)) {
            gather_rows(src, c, &self.back, dst);
        }
        add_assign(x, att);
        // MLP.
        self.norm2.forward(x, a);
        let hidden = sized(hidden, n * l * self.fc1.out_features());
        self.fc1.forward_rows(a, hidden);
        gelu_inplace(hidden);
        self.fc2.forward_rows(hidden, a);
        add_assign(x, a);
    }
}
