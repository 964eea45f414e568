//! Layers over token rows: a transformer keeps its activations as a row-major `[tokens, C]`
//! matrix in a plain slice (one row per token, every batch item's rows one after the other),
//! and these operate on such rows: layer norm, exact GELU, softmax, gathering rows by an
//! index map, the tokens' mean, and the conversion from an NCHW feature map.

use rayon::prelude::*;

use crate::error::Result;
use crate::{Tensor, Weights};

/// Layer normalisation over each row (`nn.LayerNorm(C)`): `y = (x - mean) / sqrt(var + eps)
/// * weight + bias`, with the biased variance of the row.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// γ, `[C]`.
    weight: Vec<f32>,
    /// β, `[C]`.
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    /// A layer norm over rows of `weight.len()` values.
    ///
    /// # Panics
    /// If `weight` and `bias` differ in length (a programming error; [`LayerNorm::load`]
    /// checks files).
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, eps: f32) -> Self {
        assert_eq!(
            weight.len(),
            bias.len(),
            "layer norm weight and bias lengths"
        );
        Self { weight, bias, eps }
    }

    /// Loads `{prefix}.weight` and `{prefix}.bias`, each `[dim]`.
    pub fn load(w: &Weights<'_>, prefix: &str, dim: usize, eps: f32) -> Result<Self> {
        Ok(Self::new(
            w.tensor(&format!("{prefix}.weight"), &[dim])?,
            w.tensor(&format!("{prefix}.bias"), &[dim])?,
            eps,
        ))
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.weight.len()
    }

    /// γ, `[C]`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// β, `[C]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// ε added to the variance.
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// Normalises every row of `x` in place.
    ///
    /// # Panics
    /// If `x` is not a whole number of rows.
    pub fn forward_inplace(&self, x: &mut [f32]) {
        let c = self.dim();
        assert!(
            c > 0 && x.len().is_multiple_of(c),
            "layer norm over rows of {c}: {} values",
            x.len()
        );
        let inv_c = 1.0 / c as f32;
        for row in x.chunks_exact_mut(c) {
            // Two passes (mean, then the deviations' squares): no cancellation.
            let mean = row.iter().sum::<f32>() * inv_c;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() * inv_c;
            let inv_std = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = (*v - mean) * inv_std * g + b;
            }
        }
    }

    /// `y = layer_norm(x)`, row by row (`y` as long as `x`).
    ///
    /// # Panics
    /// If the lengths differ or are not a whole number of rows.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        assert_eq!(x.len(), y.len(), "layer norm input and output lengths");
        y.copy_from_slice(x);
        self.forward_inplace(y);
    }
}

/// Values of [`gelu_inplace`] per rayon task: large buffers are spread over the pool.
const GELU_CHUNK: usize = 1 << 13;

/// GELU with the exact Gaussian CDF, `x * (1 + erf(x / √2)) / 2` (PyTorch's `nn.GELU()`
/// default, not the tanh approximation), in place, with erf from `erf` (this module). Large buffers (16k
/// values and more) are split over the rayon pool.
pub fn gelu_inplace(x: &mut [f32]) {
    let gelu = |chunk: &mut [f32]| {
        for v in chunk {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    };
    if x.len() >= 2 * GELU_CHUNK {
        x.par_chunks_mut(GELU_CHUNK).for_each(gelu);
    } else {
        gelu(x);
    }
}

/// The error function within 5e-7 of the exact one for every `f32` (a float32 erf is exact
/// to about 6e-8): `x · P(x²) / Q(x²)` on `x` clamped to ±4 (where erf is 1 to within 2e-8),
/// with P of degree 6 and Q of degree 4, a rational fit to erf(x)/x made for emotrack (weighted
/// least squares over [0, 4], `scripts/fit_erf.py`).
///
/// Why not libm's `erff`: it branches on the range of `x` and runs one value at a time, about
/// 3 ns each, which made GELU a quarter of a Swin's time. This has no branch, so the loop in
/// [`gelu_inplace`] is vectorised by the compiler.
#[inline]
pub fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        1.128_378_8,
        0.206_109_15,
        0.051_385_417,
        0.003_965_437,
        0.000_148_221_05,
        -1.977_522_3e-6,
        1.966_839_7e-8,
    ];
    const Q: [f32; 5] = [
        1.0,
        0.515_988_64,
        0.117_551_5,
        0.014_880_282,
        0.001_020_432_7,
    ];
    let x = x.clamp(-4.0, 4.0);
    let t = x * x;
    let p = P[0] + t * (P[1] + t * (P[2] + t * (P[3] + t * (P[4] + t * (P[5] + t * P[6])))));
    let q = Q[0] + t * (Q[1] + t * (Q[2] + t * (Q[3] + t * Q[4])));
    (x * p / q).clamp(-1.0, 1.0)
}

/// Softmax over each row of `cols` values, in place.
///
/// # Panics
/// If `x` is not a whole number of rows.
pub fn softmax_rows_inplace(x: &mut [f32], cols: usize) {
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "softmax over rows of {cols}: {} values",
        x.len()
    );
    for row in x.chunks_exact_mut(cols) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Row `i` of `dst` = row `map[i]` of `src` (rows of `cols` values): a permutation, a window
/// partition or any other re-reading of tokens given as an index map.
///
/// # Panics
/// If `dst` does not hold `map.len()` rows or an index is past `src`'s rows.
pub fn gather_rows(src: &[f32], cols: usize, map: &[usize], dst: &mut [f32]) {
    assert_eq!(
        dst.len(),
        map.len() * cols,
        "gathered rows and the map's length"
    );
    for (out, &i) in dst.chunks_exact_mut(cols).zip(map) {
        out.copy_from_slice(&src[i * cols..(i + 1) * cols]);
    }
}

/// `y += x` elementwise over slices (a residual connection on token rows).
///
/// # Panics
/// If the lengths differ.
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    assert_eq!(y.len(), x.len(), "residual add of different lengths");
    y.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

/// `out[c]` = the mean of column `c` over the rows of `x` (a transformer's token pooling).
///
/// # Panics
/// If `x` is not a whole number of rows of `out.len()` values.
pub fn mean_of_rows(x: &[f32], out: &mut [f32]) {
    let cols = out.len();
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "mean over rows of {cols}: {} values",
        x.len()
    );
    out.fill(0.0);
    for row in x.chunks_exact(cols) {
        add_assign(out, row);
    }
    let inv = 1.0 / (x.len() / cols).max(1) as f32;
    out.iter_mut().for_each(|v| *v *= inv);
}

/// An NCHW map as token rows: `out` = `[N, H * W, C]`, one row per pixel (row-major), its
/// channels along the row (PyTorch's `x.flatten(2).transpose(1, 2)`).
///
/// # Panics
/// If `out` does not hold `x.len()` values.
pub fn channels_last(x: &Tensor, out: &mut [f32]) {
    let (c, hw) = (x.c(), x.h() * x.w());
    assert_eq!(out.len(), x.len(), "token rows for an NCHW map");
    if c * hw == 0 {
        return;
    }
    for (src, dst) in x
        .data()
        .chunks_exact(c * hw)
        .zip(out.chunks_exact_mut(c * hw))
    {
        for (ch, plane) in src.chunks_exact(hw).enumerate() {
            for (p, &v) in plane.iter().enumerate() {
                dst[p * c + ch] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn layer_norm_matches_pytorch() {
        // import torch
        // ln = torch.nn.LayerNorm(4, eps=1e-5)
        // ln.weight.data = torch.tensor([1., 2., 0.5, -1.]); ln.bias.data = torch.tensor([0., 1., 0., 0.5])
        // x = torch.tensor([[1., 2., 3., 4.], [-2., 0., 0., 10.]])
        // print(ln(x).flatten().tolist())
        let ln = LayerNorm::new(vec![1.0, 2.0, 0.5, -1.0], vec![0.0, 1.0, 0.0, 0.5], 1e-5);
        let mut x = vec![1.0, 2.0, 3.0, 4.0, -2.0, 0.0, 0.0, 10.0];
        ln.forward_inplace(&mut x);
        let expected = [
            -1.341_635_5,
            0.105_576_34,
            0.223_605_9,
            -0.841_635_5,
            -0.852_802_7,
            0.147_197_3,
            -0.213_200_67,
            -1.205_605_4,
        ];
        assert!(close(&x, &expected, 1e-5), "{x:?}");
    }

    #[test]
    fn gelu_is_the_exact_erf_form() {
        // import torch; x = torch.tensor([-3., -1., -0.5, 0., 0.5, 1., 3.])
        // print(torch.nn.functional.gelu(x).tolist())
        let mut x = vec![-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0];
        gelu_inplace(&mut x);
        let expected = [
            -0.004_050_225,
            -0.158_655_26,
            -0.154_268_77,
            0.0,
            0.345_731_23,
            0.841_344_7,
            2.995_949_7,
        ];
        assert!(close(&x, &expected, 1e-6), "{x:?}");
        // The tanh approximation gives -0.158_808 at -1: 1.5e-4 away, so this tells them apart.
        assert!((x[1] - -0.158_808).abs() > 1e-4);
    }

    #[test]
    fn erf_is_within_5e_7_of_libms_everywhere() {
        let mut worst = (0.0f32, 0.0f32);
        for i in -1_000_000..=1_000_000 {
            let x = i as f32 * 1e-5; // [-10, 10]
            let err = (erf(x) - libm::erff(x)).abs();
            if err > worst.1 {
                worst = (x, err);
            }
        }
        assert!(worst.1 < 5e-7, "erf({}) is {} off", worst.0, worst.1);
        for x in [f32::INFINITY, f32::MAX, 1e30] {
            assert_eq!((erf(x), erf(-x)), (1.0, -1.0));
        }
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn gelu_on_a_large_buffer_equals_gelu_value_by_value() {
        let values: Vec<f32> = (0..3 * GELU_CHUNK + 5)
            .map(|i| (i as f32 * 0.001).sin() * 4.0)
            .collect();
        let mut whole = values.clone();
        gelu_inplace(&mut whole);
        for (i, (&v, &g)) in values.iter().zip(&whole).enumerate() {
            let mut one = [v];
            gelu_inplace(&mut one);
            assert_eq!(one[0], g, "value {i}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_ignore_a_shift() {
        let mut x = vec![1.0, 2.0, 3.0, 1001.0, 1002.0, 1003.0];
        softmax_rows_inplace(&mut x, 3);
        // torch.softmax(torch.tensor([1., 2., 3.]), 0) = [0.0900, 0.2447, 0.6652]
        let expected = [0.090_030_57, 0.244_728_48, 0.665_240_9];
        assert!(close(&x[..3], &expected, 1e-6), "{x:?}");
        assert!(close(&x[3..], &expected, 1e-6), "{x:?}");
    }

    #[test]
    fn gathering_rows_follows_the_map() {
        let src = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
        let mut dst = [0.0; 6];
        gather_rows(&src, 2, &[2, 0, 1], &mut dst);
        assert_eq!(dst, [20.0, 21.0, 0.0, 1.0, 10.0, 11.0]);
    }

    #[test]
    fn the_mean_of_rows_pools_tokens() {
        let mut out = [0.0; 2];
        mean_of_rows(&[1.0, 2.0, 3.0, 6.0, 5.0, -2.0], &mut out);
        assert_eq!(out, [3.0, 2.0]);
    }

    #[test]
    fn channels_last_turns_planes_into_token_rows() {
        // [1, 2, 1, 3]: channel 0 is 0, 1, 2 and channel 1 is 10, 11, 12.
        let x = Tensor::from_vec([1, 2, 1, 3], vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        let mut out = [0.0; 6];
        channels_last(&x, &mut out);
        assert_eq!(out, [0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }
}
