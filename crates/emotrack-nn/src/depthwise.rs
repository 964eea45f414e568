//! Depthwise 3x3 convolution (`nn.Conv2d(c, c, 3, padding=1, groups=c)`), stride 1, with its bias
//! and activation fused into the one pass over the output; AVX2+FMA chosen at run time (`pulp`).
//!
//! Each channel is a 3x3 stencil over its own plane, 9 multiply-adds per output value, so the
//! layer is bound by memory traffic rather than arithmetic: the kernel reads each input row
//! three times straight from the plane (no padded copy) and writes each output once. Eight
//! pixels of a row are computed per vector, from unaligned loads at columns `x - 1`, `x`,
//! `x + 1` of the three input rows; the two edge columns, where the stencil overhangs the
//! zero padding, are computed one pixel at a time. A row at the top or bottom edge reuses the
//! middle row with the overhanging taps' weights set to zero, so no branch sits in the vector
//! loop. Written here because no crate offers a safe depthwise kernel; on a CPU without
//! AVX2+FMA the same row structure runs in scalar code.

use rayon::prelude::*;

use super::conv::Activation;
use super::{Tensor, Weights};
use crate::error::Result;

/// Multiply-adds below which a layer's planes are not worth handing to other threads.
const PARALLEL_MIN_MACS: usize = 200_000;

/// Pixels per AVX2 vector.
const LANES: usize = 8;

/// A depthwise 3x3 convolution with stride 1 and zero padding 1: output channel `c` is input
/// channel `c` convolved with its own 3x3 filter, plus a bias.
///
/// ```
/// use emotrack_nn::{Activation, DepthwiseConv3x3, Tensor};
///
/// // One channel, a filter summing the 3x3 neighbourhood, bias -1, ReLU.
/// let dw = DepthwiseConv3x3::new(1, vec![1.0; 9], Some(vec![-1.0]));
/// let x = Tensor::from_vec([1, 1, 3, 3], vec![1.0; 9]);
/// let mut y = Tensor::new();
/// dw.forward(&x, &mut y, Activation::Relu);
/// // Corners see four ones, edges six, the centre nine (zero padding outside).
/// assert_eq!(y.data(), &[3.0, 5.0, 3.0, 5.0, 8.0, 5.0, 3.0, 5.0, 3.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv3x3 {
    /// `[channels][9]`: each channel's filter, row by row (PyTorch's `[c, 1, 3, 3]`).
    weight: Vec<f32>,
    /// `[channels]` (zeros for a layer without one).
    bias: Vec<f32>,
}

impl DepthwiseConv3x3 {
    /// A layer from PyTorch-layout weights `[channels, 1, 3, 3]` (flattened) and an optional
    /// bias `[channels]`.
    ///
    /// # Panics
    /// If the lengths do not match `channels` (a programming error; [`DepthwiseConv3x3::load`]
    /// checks files).
    pub fn new(channels: usize, weight: Vec<f32>, bias: Option<Vec<f32>>) -> Self {
        assert_eq!(weight.len(), channels * 9, "depthwise weight length");
        let bias = bias.unwrap_or_else(|| vec![0.0; channels]);
        assert_eq!(bias.len(), channels, "depthwise bias length");
        Self { weight, bias }
    }

    /// Loads `{prefix}.weight` `[channels, 1, 3, 3]` and `{prefix}.bias` `[channels]`.
    pub fn load(w: &Weights<'_>, prefix: &str, channels: usize) -> Result<Self> {
        let weight = w.tensor(&format!("{prefix}.weight"), &[channels, 1, 3, 3])?;
        let bias = w.tensor(&format!("{prefix}.bias"), &[channels])?;
        Ok(Self::new(channels, weight, Some(bias)))
    }

    /// Channels in and out.
    pub fn channels(&self) -> usize {
        self.bias.len()
    }

    /// Filters `[channels, 1, 3, 3]`, flattened.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Bias `[channels]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The layers' channels one after another (each keeps its filters and bias): one layer
    /// instead of several over channels that are concatenated anyway, e.g. the heads of a
    /// detector whose 1x1 convolutions were fused into one.
    pub fn concat(layers: &[&Self]) -> Self {
        Self {
            weight: layers
                .iter()
                .flat_map(|l| l.weight.iter().copied())
                .collect(),
            bias: layers.iter().flat_map(|l| l.bias.iter().copied()).collect(),
        }
    }

    /// Computes `y = act(conv(x))`; `y` is resized to `x`'s shape.
    ///
    /// # Panics
    /// If `x` does not have [`DepthwiseConv3x3::channels`] channels.
    pub fn forward(&self, x: &Tensor, y: &mut Tensor, act: Activation<'_>) {
        let c = self.channels();
        assert_eq!(x.c(), c, "depthwise input has the wrong channel count");
        let (h, w) = (x.h(), x.w());
        y.resize(x.shape());
        let hw = h * w;
        if hw == 0 || x.n() == 0 {
            return;
        }
        let plane = |(i, (dst, src)): (usize, (&mut [f32], &[f32]))| {
            let ch = i % c;
            let k: &[f32; 9] = match self.weight[ch * 9..ch * 9 + 9].try_into() {
                Ok(k) => k,
                Err(_) => unreachable!("nine weights per channel"),
            };
            let slope = act.slope(ch, c);
            plane3x3(src, dst, (h, w), (k, self.bias[ch], slope), true);
        };
        if x.len() * 9 >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1 {
            let total = x.n() * c;
            y.data_mut()
                .par_chunks_exact_mut(hw)
                .zip(x.data().par_chunks_exact(hw))
                .enumerate()
                // One piece per thread: finer pieces cost more in hand-overs than they gain.
                .with_min_len(total.div_ceil(rayon::current_num_threads()))
                .for_each(plane);
        } else {
            y.data_mut()
                .chunks_exact_mut(hw)
                .zip(x.data().chunks_exact(hw))
                .enumerate()
                .for_each(plane);
        }
    }
}

/// One plane: `dst = act(conv3x3(src) + bias)` over an `h` x `w` plane with zero padding 1;
/// `slope` is the activation's negative-side slope (`None`: identity). `vector`: whether rows
/// may take the AVX2 pass (false: the scalar code a CPU without AVX2 runs, for tests).
fn plane3x3(
    src: &[f32],
    dst: &mut [f32],
    (h, w): (usize, usize),
    (k, bias, slope): (&[f32; 9], f32, Option<f32>),
    vector: bool,
) {
    for oy in 0..h {
        // A missing row (the zero padding) is the middle row with zero weights: the same
        // vector loop for every row, and the same sum, since x·0 adds 0 for finite x.
        let mut taps = *k;
        let up = if oy > 0 {
            oy - 1
        } else {
            taps[..3].fill(0.0);
            oy
        };
        let down = if oy + 1 < h {
            oy + 1
        } else {
            taps[6..].fill(0.0);
            oy
        };
        let rows = [
            &src[up * w..][..w],
            &src[oy * w..][..w],
            &src[down * w..][..w],
        ];
        let out = &mut dst[oy * w..][..w];
        row3x3(rows, out, (&taps, bias, slope), vector);
    }
}

/// One output row from its three input rows (`taps` already zeroed for padding rows).
fn row3x3(
    rows: [&[f32]; 3],
    out: &mut [f32],
    (taps, bias, slope): (&[f32; 9], f32, Option<f32>),
    vector: bool,
) {
    let w = out.len();
    // Interior columns 1..w-1, whose stencil lies inside the row, eight at a time where the
    // row is wide enough; `done` is the range the vector pass wrote.
    let done = if vector {
        interior(rows, out, taps, bias, slope)
    } else {
        0..0
    };
    let pixel = |x: usize| {
        let mut acc = bias;
        for (r, row) in rows.iter().enumerate() {
            for kx in 0..3 {
                // Column x + kx - 1, inside the row.
                if let Some(ix) = (x + kx).checked_sub(1)
                    && ix < w
                {
                    acc += row[ix] * taps[r * 3 + kx];
                }
            }
        }
        activate(acc, slope)
    };
    for x in (0..done.start).chain(done.end..w) {
        out[x] = pixel(x);
    }
}

/// `v` through the activation with negative-side slope `slope`.
#[inline(always)]
fn activate(v: f32, slope: Option<f32>) -> f32 {
    match slope {
        Some(a) if v < 0.0 => v * a,
        _ => v,
    }
}

/// The vector pass over a row's interior: columns `1..w-1` in vectors of eight, the last
/// vector moved left to end at column `w - 2` (it recomputes a few pixels with the same
/// values). Returns the columns written (empty without AVX2+FMA or on rows under 10 pixels).
fn interior(
    rows: [&[f32]; 3],
    out: &mut [f32],
    taps: &[f32; 9],
    bias: f32,
    slope: Option<f32>,
) -> std::ops::Range<usize> {
    let w = out.len();
    if w < LANES + 2 {
        return 0..0;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        simd.vectorize(
            #[inline(always)]
            || {
                let load = |row: &[f32], x: usize| -> pulp::f32x8 {
                    pulp::cast(*row[x..].first_chunk::<LANES>().expect("x + 8 <= w"))
                };
                let t = taps.map(|t| simd.splat_f32x8(t));
                let b = simd.splat_f32x8(bias);
                let (zero, a) = (
                    simd.splat_f32x8(0.0),
                    simd.splat_f32x8(slope.unwrap_or(1.0)),
                );
                let mut x = 1;
                while x < w - 1 {
                    let x0 = x.min(w - 1 - LANES);
                    let mut acc = b;
                    for (r, row) in rows.iter().enumerate() {
                        acc = simd.mul_add_f32x8(load(row, x0 - 1), t[r * 3], acc);
                        acc = simd.mul_add_f32x8(load(row, x0), t[r * 3 + 1], acc);
                        acc = simd.mul_add_f32x8(load(row, x0 + 1), t[r * 3 + 2], acc);
                    }
                    if slope.is_some() {
                        // max(v, 0) + a·min(v, 0): v for v ≥ 0, a·v below.
                        let pos = simd.max_f32x8(acc, zero);
                        let neg = simd.min_f32x8(acc, zero);
                        acc = simd.mul_add_f32x8(neg, a, pos);
                    }
                    let v: [f32; LANES] = pulp::cast(acc);
                    out[x0..x0 + LANES].copy_from_slice(&v);
                    x += LANES;
                }
            },
        );
        return 1..w - 1;
    }
    let _ = (rows, taps, bias, slope);
    0..0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PRelu;

    /// The definition, one output value at a time.
    fn reference(
        dw: &DepthwiseConv3x3,
        x: &Tensor,
        slope: impl Fn(usize) -> Option<f32>,
    ) -> Tensor {
        let (n, c, h, w) = (x.n(), x.c(), x.h(), x.w());
        let mut y = Tensor::zeros([n, c, h, w]);
        for i in 0..n {
            for ch in 0..c {
                let src = x.plane(i, ch);
                for oy in 0..h {
                    for ox in 0..w {
                        let mut acc = dw.bias[ch];
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (oy + ky, ox + kx);
                                if iy >= 1 && ix >= 1 && iy - 1 < h && ix - 1 < w {
                                    acc += src[(iy - 1) * w + ix - 1]
                                        * dw.weight[ch * 9 + ky * 3 + kx];
                                }
                            }
                        }
                        let v = match slope(ch) {
                            Some(a) if acc < 0.0 => acc * a,
                            _ => acc,
                        };
                        y.data_mut()[((i * c + ch) * h + oy) * w + ox] = v;
                    }
                }
            }
        }
        y
    }

    fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        for (p, q) in a.data().iter().zip(b.data()) {
            assert!(
                (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                "{what}: {p} vs {q}"
            );
        }
    }

    #[test]
    fn depthwise_equals_the_definition_for_many_shapes() {
        // Rows narrower than a vector plus its two edge columns (scalar only), exactly one
        // vector wide, with a moved last vector, one-row and one-column planes, a batch, and
        // planes large enough to be spread over threads.
        for (n, c, h, w) in [
            (1, 3, 5, 7),
            (1, 2, 4, 10),
            (2, 4, 6, 11),
            (1, 5, 9, 26),
            (1, 1, 1, 1),
            (1, 2, 1, 17),
            (1, 2, 13, 1),
            (3, 16, 20, 33),
            (1, 64, 32, 40),
        ] {
            let weight = (0..c * 9)
                .map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0)
                .collect();
            let bias = (0..c).map(|i| i as f32 * 0.1 - 0.2).collect();
            let dw = DepthwiseConv3x3::new(c, weight, Some(bias));
            let x = Tensor::from_vec(
                [n, c, h, w],
                (0..n * c * h * w)
                    .map(|i| ((i * 37) % 29) as f32 * 0.25 - 3.0)
                    .collect(),
            );
            let mut y = Tensor::new();
            let what = format!("{n}x{c}x{h}x{w}");
            dw.forward(&x, &mut y, Activation::Identity);
            assert_close(
                &y,
                &reference(&dw, &x, |_| None),
                &format!("{what} identity"),
            );
            dw.forward(&x, &mut y, Activation::Relu);
            assert_close(
                &y,
                &reference(&dw, &x, |_| Some(0.0)),
                &format!("{what} relu"),
            );
            let slopes: Vec<f32> = (0..c).map(|i| 0.1 + i as f32 * 0.05).collect();
            let prelu = PRelu::new(slopes.clone());
            dw.forward(&x, &mut y, Activation::PRelu(&prelu));
            assert_close(
                &y,
                &reference(&dw, &x, |ch| Some(slopes[ch])),
                &format!("{what} prelu"),
            );
        }
    }

    #[test]
    fn the_scalar_rows_equal_the_vector_rows() {
        // What a CPU without AVX2 computes, against the vector pass (with its scalar edges).
        let (h, w) = (5, 29);
        let src: Vec<f32> = (0..h * w).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let k: [f32; 9] = std::array::from_fn(|i| i as f32 * 0.25 - 1.0);
        let (mut scalar, mut vector) = (vec![0.0; h * w], vec![0.0; h * w]);
        for slope in [None, Some(0.0), Some(0.1)] {
            plane3x3(&src, &mut scalar, (h, w), (&k, 0.5, slope), false);
            plane3x3(&src, &mut vector, (h, w), (&k, 0.5, slope), true);
            for (a, b) in scalar.iter().zip(&vector) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{slope:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn concatenated_layers_equal_the_layers_side_by_side() {
        let a = DepthwiseConv3x3::new(1, (0..9).map(|i| i as f32).collect(), Some(vec![1.0]));
        let b = DepthwiseConv3x3::new(2, (0..18).map(|i| 1.0 - i as f32 / 9.0).collect(), None);
        let both = DepthwiseConv3x3::concat(&[&a, &b]);
        assert_eq!(both.channels(), 3);
        let x = Tensor::from_vec([1, 3, 4, 12], (0..144).map(|i| (i % 11) as f32).collect());
        let (mut y, mut ya, mut yb) = (Tensor::new(), Tensor::new(), Tensor::new());
        both.forward(&x, &mut y, Activation::Identity);
        a.forward(
            &Tensor::from_vec([1, 1, 4, 12], x.data()[..48].to_vec()),
            &mut ya,
            Activation::Identity,
        );
        b.forward(
            &Tensor::from_vec([1, 2, 4, 12], x.data()[48..].to_vec()),
            &mut yb,
            Activation::Identity,
        );
        assert_eq!(&y.data()[..48], ya.data());
        assert_eq!(&y.data()[48..], yb.data());
    }

    #[test]
    fn loading_checks_the_depthwise_shape() {
        let bytes = crate::weights::tests::safetensors_bytes(&[
            ("dw.weight", vec![2, 1, 3, 3], vec![0.5; 18]),
            ("dw.bias", vec![2], vec![0.0, 1.0]),
        ]);
        let w = Weights::from_bytes(&bytes, "dw.safetensors").expect("valid");
        let dw = DepthwiseConv3x3::load(&w, "dw", 2).expect("shapes match");
        assert_eq!(dw.bias(), &[0.0, 1.0]);
        let err = DepthwiseConv3x3::load(&w, "dw", 3).expect_err("three channels");
        assert!(err.to_string().contains("dw.weight"), "{err}");
    }
}
