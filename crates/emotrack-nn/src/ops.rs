//! The non-convolution layers: activations, pooling, fully-connected, residual add, softmax.

use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};

use super::{Tensor, Weights};
use crate::error::Result;

/// `x = max(x, 0)`, in place.
pub fn relu_inplace(x: &mut Tensor) {
    for v in x.data_mut() {
        *v = v.max(0.0);
    }
}

/// PReLU with one slope per channel (`nn.PReLU(num_parameters=C)`), or one shared slope.
#[derive(Debug, Clone, PartialEq)]
pub struct PRelu {
    /// Negative-side slopes: one per channel, or a single shared one.
    slopes: Vec<f32>,
}

impl PRelu {
    /// PReLU with these slopes (length C, or 1 for a shared slope).
    pub fn new(slopes: Vec<f32>) -> Self {
        Self { slopes }
    }

    /// Loads `{prefix}.weight`, shape `[channels]`.
    pub fn load(w: &Weights<'_>, prefix: &str, channels: usize) -> Result<Self> {
        Ok(Self::new(
            w.tensor(&format!("{prefix}.weight"), &[channels])?,
        ))
    }

    /// The slope of channel `c` of `channels`.
    ///
    /// # Panics
    /// If there are several slopes and their count differs from `channels`.
    pub(crate) fn slope(&self, c: usize, channels: usize) -> f32 {
        if self.slopes.len() == 1 {
            self.slopes[0]
        } else {
            assert_eq!(
                self.slopes.len(),
                channels,
                "PReLU slope count differs from channels"
            );
            self.slopes[c]
        }
    }

    /// `x = x if x ≥ 0 else a_c · x`, in place, over dimension 1 (channels, or features of a
    /// `[N, F, 1, 1]` vector).
    ///
    /// # Panics
    /// If there are several slopes and their count differs from the channel count.
    pub fn forward_inplace(&self, x: &mut Tensor) {
        let c = x.c();
        let hw = x.h() * x.w();
        if hw == 0 || c == 0 {
            return;
        }
        assert!(
            self.slopes.len() == 1 || self.slopes.len() == c,
            "PReLU has {} slopes for {c} channels",
            self.slopes.len()
        );
        for (i, plane) in x.data_mut().chunks_exact_mut(hw).enumerate() {
            let a = if self.slopes.len() == 1 {
                self.slopes[0]
            } else {
                self.slopes[i % c]
            };
            // Branch-free (a select, vectorised): signs are random, a branch mispredicts.
            for v in plane {
                *v = if *v < 0.0 { *v * a } else { *v };
            }
        }
    }
}

/// Max pooling (`nn.MaxPool2d(kernel, stride, padding, ceil_mode=...)`, no dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Implicit −∞ padding on every side (at most `kernel / 2`, as PyTorch requires).
    pub padding: usize,
    /// Round the output size up, letting the last window hang over the edge (PyTorch's
    /// `ceil_mode=True`, used by MTCNN); a window never starts in the right/bottom padding.
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// `nn.MaxPool2d(kernel, stride)` with `ceil_mode=False`.
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self {
            kernel,
            stride,
            padding: 0,
            ceil_mode: false,
        }
    }

    /// The same with `ceil_mode=True`.
    pub fn ceil(self) -> Self {
        Self {
            ceil_mode: true,
            ..self
        }
    }

    /// The same with padding `p`.
    pub fn padding(self, p: usize) -> Self {
        Self { padding: p, ..self }
    }

    /// Output length along one axis, as PyTorch's `pooling_output_shape` (0 when the window
    /// does not fit).
    pub fn output_len(&self, len: usize) -> usize {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let padded = len + 2 * p;
        if padded < k {
            return 0;
        }
        let span = padded - k;
        let mut out = if self.ceil_mode {
            span.div_ceil(s) + 1
        } else {
            span / s + 1
        };
        // PyTorch: the last window must start inside the image or the left padding.
        if self.ceil_mode && (out - 1) * s >= len + p {
            out -= 1;
        }
        out
    }

    /// `y = maxpool(x)`; `y` is resized to `[N, C, oh, ow]`.
    ///
    /// Separable: for each output row, the elementwise max of its input rows (contiguous,
    /// vectorised), then the horizontal window maxima of that one row.
    pub fn forward(&self, x: &Tensor, y: &mut Tensor) {
        let (n, c, h, w) = (x.n(), x.c(), x.h(), x.w());
        let (oh, ow) = (self.output_len(h), self.output_len(w));
        y.resize([n, c, oh, ow]);
        if oh * ow == 0 {
            return;
        }
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        // Window `[start, end)` of output index `o`, clipped to the image.
        let bounds = |o: usize, len: usize| ((o * s).saturating_sub(p), (o * s + k - p).min(len));
        // Output columns whose window lies wholly inside the row take the fixed-size path.
        let first_full = p.div_ceil(s);
        let end_full = if w + p >= k {
            ((w + p - k) / s + 1).min(ow)
        } else {
            0
        };
        let full = first_full.min(end_full)..end_full;
        let edges: Vec<(usize, (usize, usize))> = (0..full.start)
            .chain(full.end..ow)
            .map(|ox| (ox, bounds(ox, w)))
            .collect();
        let mut vmax = vec![0.0f32; w];
        for (src, dst) in x
            .data()
            .chunks_exact(h * w)
            .zip(y.data_mut().chunks_exact_mut(oh * ow))
        {
            for (oy, out) in dst.chunks_exact_mut(ow).enumerate() {
                let (y0, y1) = bounds(oy, h);
                let mut rows = src[y0 * w..y1 * w].chunks_exact(w);
                if let Some(first) = rows.next() {
                    vmax.copy_from_slice(first);
                }
                for row in rows {
                    for (m, &v) in vmax.iter_mut().zip(row) {
                        *m = max(*m, v);
                    }
                }
                let v = &vmax;
                // Stride 2, windows of 2 or 3 (MTCNN's pools): eight outputs per vector step.
                let done = if s == 2 && p == 0 && (k == 2 || k == 3) {
                    pool_stride2(v, k, &mut out[full.clone()])
                } else {
                    0
                };
                let full = full.start + done..full.end;
                match k {
                    2 => {
                        for ox in full.clone() {
                            let i = ox * s - p;
                            out[ox] = max(v[i], v[i + 1]);
                        }
                    }
                    3 => {
                        for ox in full.clone() {
                            let i = ox * s - p;
                            out[ox] = max(max(v[i], v[i + 1]), v[i + 2]);
                        }
                    }
                    _ => {
                        for ox in full.clone() {
                            let i = ox * s - p;
                            out[ox] = v[i + 1..i + k].iter().fold(v[i], |m, &e| max(m, e));
                        }
                    }
                }
                for &(ox, (x0, x1)) in &edges {
                    out[ox] = v[x0 + 1..x1].iter().fold(v[x0], |m, &e| max(m, e));
                }
            }
        }
    }
}

/// The horizontal pass of a stride-2 max pool without padding, window `k` of 2 or 3:
/// `out[o] = max(v[2o], v[2o + 1] (, v[2o + 2]))`, eight outputs at a time with AVX2 (even and
/// odd lanes split by shuffles, the same `max` order as the scalar pass). Returns how many
/// leading outputs it wrote; the caller finishes the rest.
fn pool_stride2(v: &[f32], k: usize, out: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        use core::arch::x86_64::__m256;
        // Step n writes outputs 8n..8n+8, reading v[16n..16n + 16] (up to 16n + 18 for k = 3).
        let extra = if k == 3 { 2 } else { 0 };
        let steps = (out.len() / 8).min(v.len().saturating_sub(extra) / 16);
        simd.vectorize(
            #[inline(always)]
            || {
                let (avx, avx2) = (simd.avx, simd.avx2);
                let load = |i: usize| -> __m256 {
                    pulp::cast(*v[i..].first_chunk::<8>().expect("within the checked steps"))
                };
                for (step, dst) in out.chunks_exact_mut(8).take(steps).enumerate() {
                    let i = 16 * step;
                    let (a, b) = (load(i), load(i + 8));
                    let even = avx._mm256_shuffle_ps::<0x88>(a, b);
                    let odd = avx._mm256_shuffle_ps::<0xDD>(a, b);
                    let mut m = avx._mm256_max_ps(even, odd);
                    if k == 3 {
                        let next = avx._mm256_shuffle_ps::<0x88>(load(i + 2), load(i + 10));
                        m = avx._mm256_max_ps(m, next);
                    }
                    // The shuffles work per 128-bit half: put the four 64-bit pairs in order.
                    let m = avx2._mm256_permute4x64_pd::<0xD8>(avx._mm256_castps_pd(m));
                    let m: [f32; 8] = pulp::cast(m);
                    dst.copy_from_slice(&m);
                }
            },
        );
        return 8 * steps;
    }
    let _ = (v, k, out);
    0
}

/// The larger of two values, as one `maxss`/`vmaxps` (unlike `f32::max`, no NaN handling; the
/// nets never produce NaN from finite inputs).
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// A fully-connected layer (`nn.Linear`, weight `[out, in]`), applied to each batch item's
/// flattened CHW values, or to token rows.
///
/// The weight is kept transposed, `[in, out]` row-major: the GEMM packs its right-hand matrix
/// a row of `out` values at a time, which is a plain copy from this layout (matrixmultiply's
/// fast path) but an element at a time from `[out, in]`. With the weights re-packed on every
/// call, that was 0.45 ms of a Swin's 1.35 ms per face.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
    /// `[in, out]`, row-major (the transpose of PyTorch's weight).
    weight_t: Vec<f32>,
    /// `[out]`.
    bias: Vec<f32>,
}

impl Linear {
    /// A layer from PyTorch-layout weights `[out, in]` (flattened) and an optional bias.
    ///
    /// # Panics
    /// If the lengths do not match (a programming error; [`Linear::load`] checks files).
    pub fn new(
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Self {
        assert_eq!(weight.len(), in_features * out_features);
        let bias = bias.unwrap_or_else(|| vec![0.0; out_features]);
        assert_eq!(bias.len(), out_features);
        let mut weight_t = vec![0.0; weight.len()];
        for (o, row) in weight.chunks_exact(in_features.max(1)).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                weight_t[i * out_features + o] = v;
            }
        }
        Self {
            in_features,
            out_features,
            weight_t,
            bias,
        }
    }

    /// Loads `{prefix}.weight` `[out, in]` and `{prefix}.bias` `[out]`.
    pub fn load(
        w: &Weights<'_>,
        prefix: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Self> {
        let weight = w.tensor(&format!("{prefix}.weight"), &[out_features, in_features])?;
        let bias = w.tensor(&format!("{prefix}.bias"), &[out_features])?;
        Ok(Self::new(in_features, out_features, weight, Some(bias)))
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Weights transposed, `[in, out]` row-major (PyTorch's `weight.T`).
    pub fn weight_t(&self) -> &[f32] {
        &self.weight_t
    }

    /// Bias `[out]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Multiplies the outputs by `factor` (weights and bias).
    pub fn scale(&mut self, factor: f32) {
        for v in self.weight_t.iter_mut().chain(&mut self.bias) {
            *v *= factor;
        }
    }

    /// Reorders the weight's input columns: afterwards input `i` uses the column that was at
    /// `source[i]`. Use it to bake a fixed permutation of the flattened input into the layer
    /// (e.g. a net that flattens NWHC instead of NCHW) instead of permuting on every call.
    ///
    /// # Panics
    /// If `source` is not `in_features` long or indexes out of range.
    pub fn permute_inputs(&mut self, source: &[usize]) {
        assert_eq!(source.len(), self.in_features);
        let out = self.out_features;
        let mut permuted = vec![0.0; self.weight_t.len()];
        for (dst, &s) in permuted.chunks_exact_mut(out.max(1)).zip(source) {
            dst.copy_from_slice(&self.weight_t[s * out..(s + 1) * out]);
        }
        self.weight_t = permuted;
    }

    /// `y = x·Wᵀ + b` for each batch item; `y` is resized to `[N, out, 1, 1]`.
    ///
    /// # Panics
    /// If an item of `x` does not hold `in_features` values.
    pub fn forward(&self, x: &Tensor, y: &mut Tensor) {
        let n = x.n();
        assert_eq!(
            x.item_len(),
            self.in_features,
            "linear input has the wrong size"
        );
        y.resize([n, self.out_features, 1, 1]);
        if n == 0 {
            return;
        }
        for row in y.data_mut().chunks_exact_mut(self.out_features) {
            row.copy_from_slice(&self.bias);
        }
        let a = ArrayView2::from_shape((n, self.in_features), x.data()).expect("shape checked");
        let mut c = ArrayViewMut2::from_shape((n, self.out_features), y.data_mut())
            .expect("output resized above");
        general_mat_mul(1.0, &a, &self.weight_view(), 1.0, &mut c);
    }

    /// `y = x·Wᵀ + b` for every row of `x` (token rows: `[rows, in]` row-major), into `y`
    /// (`[rows, out]`); all rows in one GEMM.
    ///
    /// # Panics
    /// If `x` is not a whole number of `in_features` rows or `y` does not hold their outputs.
    pub fn forward_rows(&self, x: &[f32], y: &mut [f32]) {
        assert!(
            self.in_features > 0 && x.len().is_multiple_of(self.in_features),
            "linear rows of {}: {} values",
            self.in_features,
            x.len()
        );
        let rows = x.len() / self.in_features;
        assert_eq!(
            y.len(),
            rows * self.out_features,
            "linear output rows have the wrong size"
        );
        if rows == 0 {
            return;
        }
        for row in y.chunks_exact_mut(self.out_features) {
            row.copy_from_slice(&self.bias);
        }
        let a = ArrayView2::from_shape((rows, self.in_features), x).expect("length checked");
        let mut c =
            ArrayViewMut2::from_shape((rows, self.out_features), y).expect("length checked");
        general_mat_mul(1.0, &a, &self.weight_view(), 1.0, &mut c);
    }

    /// `Wᵀ` as the GEMM's right-hand matrix.
    fn weight_view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.in_features, self.out_features), &self.weight_t)
            .expect("weight length checked at construction")
    }
}

/// `y += x` elementwise (a residual connection).
///
/// # Panics
/// If the shapes differ.
pub fn add_inplace(y: &mut Tensor, x: &Tensor) {
    assert_eq!(y.shape(), x.shape(), "residual add of different shapes");
    for (a, b) in y.data_mut().iter_mut().zip(x.data()) {
        *a += b;
    }
}

/// `y += upsample(x)`, where `upsample` is nearest-neighbour upsampling by 2 in both directions
/// (PyTorch's `F.interpolate(x, scale_factor=2, mode="nearest")`): `y[n, c, i, j] += x[n, c,
/// i / 2, j / 2]`. A feature pyramid's top-down path (YuNet's neck) adds a coarse level to the
/// next finer one this way; fused, the upsampled map is never stored.
///
/// # Panics
/// If `y` is not `x`'s batch and channels at twice its height and width.
pub fn add_upsampled_2x(y: &mut Tensor, x: &Tensor) {
    let [n, c, h, w] = x.shape();
    assert_eq!(
        y.shape(),
        [n, c, 2 * h, 2 * w],
        "upsampled add needs the finer map at twice the coarser one's size"
    );
    if h * w == 0 {
        return;
    }
    for (fine, coarse) in y
        .data_mut()
        .chunks_exact_mut(4 * h * w)
        .zip(x.data().chunks_exact(h * w))
    {
        for (rows, src) in fine.chunks_exact_mut(4 * w).zip(coarse.chunks_exact(w)) {
            // Two output rows from one input row, each input value added to two neighbours.
            for row in rows.chunks_exact_mut(2 * w) {
                for (pair, &v) in row.chunks_exact_mut(2).zip(src) {
                    pair[0] += v;
                    pair[1] += v;
                }
            }
        }
    }
}

/// Global average pooling: `y[n, c] = mean(x[n, c, :, :])`; `y` is resized to `[N, C, 1, 1]`.
pub fn global_avg_pool(x: &Tensor, y: &mut Tensor) {
    let hw = x.h() * x.w();
    y.resize([x.n(), x.c(), 1, 1]);
    if hw == 0 {
        y.fill(0.0);
        return;
    }
    for (v, plane) in y.data_mut().iter_mut().zip(x.data().chunks_exact(hw)) {
        *v = plane.iter().sum::<f32>() / hw as f32;
    }
}

/// Softmax over dimension 1 (channels) at every `(n, y, x)`, in place: PyTorch's
/// `softmax(dim=1)` for both `[N, C, H, W]` maps and `[N, F, 1, 1]` vectors.
pub fn softmax_channels_inplace(x: &mut Tensor) {
    let (c, hw) = (x.c(), x.h() * x.w());
    if c == 0 || hw == 0 {
        return;
    }
    for item in x.data_mut().chunks_exact_mut(c * hw) {
        for p in 0..hw {
            let max = (0..c)
                .map(|ch| item[ch * hw + p])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for ch in 0..c {
                let e = (item[ch * hw + p] - max).exp();
                item[ch * hw + p] = e;
                sum += e;
            }
            for ch in 0..c {
                item[ch * hw + p] /= sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    fn ramp(len: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..len).map(|i| i as f32 * scale + offset).collect()
    }

    #[test]
    fn maxpool_ceil_mode_matches_pytorch() {
        // import torch
        // x = torch.arange(5*7, dtype=torch.float32).view(1,1,5,7).remainder(11) - 5
        // y = torch.nn.MaxPool2d(3, 2, ceil_mode=True)(x); print(list(y.shape), y.flatten().tolist())
        // y = torch.nn.MaxPool2d(2, 2, ceil_mode=True)(x); print(list(y.shape), y.flatten().tolist())
        // y = torch.nn.MaxPool2d(3, 2, padding=1)(x); print(list(y.shape), y.flatten().tolist())
        let x = Tensor::from_vec(
            [1, 1, 5, 7],
            (0..35).map(|i| (i % 11) as f32 - 5.0).collect(),
        );
        let cases: [(MaxPool2d, [usize; 4], Vec<f32>); 3] = [
            (
                MaxPool2d::new(3, 2).ceil(),
                [1, 1, 2, 3],
                vec![4., 5., 4., 5., 5., 5.],
            ),
            (
                MaxPool2d::new(2, 2).ceil(),
                [1, 1, 3, 4],
                vec![3., 5., 0., 1., 5., 1., 3., 4., 2., 4., 5., -4.],
            ),
            (
                MaxPool2d::new(3, 2).padding(1),
                [1, 1, 3, 4],
                vec![3., 5., 5., 1., 5., 5., 5., 4., 5., 4., 5., 0.],
            ),
        ];
        let mut y = Tensor::new();
        for (pool, shape, expected) in cases {
            pool.forward(&x, &mut y);
            assert_eq!(y.shape(), shape, "{pool:?}");
            assert_eq!(y.data(), expected.as_slice(), "{pool:?}");
        }
    }

    #[test]
    fn maxpool_equals_the_naive_definition_for_many_shapes() {
        let mut y = Tensor::new();
        for (k, s, p, ceil) in [
            (2, 2, 0, true),
            (2, 2, 0, false),
            (3, 2, 0, true),
            (3, 2, 1, false),
            (3, 2, 1, true),
            (3, 1, 1, false),
            (4, 3, 2, true),
            (5, 2, 2, true),
        ] {
            let pool = MaxPool2d {
                kernel: k,
                stride: s,
                padding: p,
                ceil_mode: ceil,
            };
            // Rows of 16 and more take the vector pass for stride 2, with a scalar tail.
            for (h, w) in [
                (5, 7),
                (6, 6),
                (9, 4),
                (11, 13),
                (3, 16),
                (4, 18),
                (7, 37),
                (5, 50),
            ] {
                let data = (0..2 * h * w)
                    .map(|i| ((i * 37) % 23) as f32 - 11.0)
                    .collect();
                let x = Tensor::from_vec([1, 2, h, w], data);
                pool.forward(&x, &mut y);
                let (oh, ow) = (pool.output_len(h), pool.output_len(w));
                assert_eq!(y.shape(), [1, 2, oh, ow]);
                for c in 0..2 {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut m = f32::NEG_INFINITY;
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (oy * s + ky, ox * s + kx);
                                    if iy >= p && ix >= p && iy - p < h && ix - p < w {
                                        m = m.max(x.plane(0, c)[(iy - p) * w + ix - p]);
                                    }
                                }
                            }
                            assert_eq!(y.plane(0, c)[oy * ow + ox], m, "{pool:?} {h}x{w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn maxpool_output_sizes_follow_pytorch() {
        // ceil_mode drops a last window that would start in the padding: L=5, k=2, s=2, p=1
        // gives 3 (not 4) in PyTorch.
        assert_eq!(MaxPool2d::new(2, 2).padding(1).ceil().output_len(5), 3);
        assert_eq!(MaxPool2d::new(2, 2).ceil().output_len(5), 3);
        assert_eq!(MaxPool2d::new(2, 2).output_len(5), 2);
        assert_eq!(MaxPool2d::new(3, 2).ceil().output_len(22), 11);
        assert_eq!(MaxPool2d::new(3, 2).output_len(2), 0);
    }

    #[test]
    fn prelu_scales_negatives_per_channel() {
        let mut x = Tensor::from_vec([1, 2, 1, 2], vec![-1.0, 2.0, -4.0, 3.0]);
        PRelu::new(vec![0.5, 0.25]).forward_inplace(&mut x);
        assert_eq!(x.data(), &[-0.5, 2.0, -1.0, 3.0]);
        let mut v = Tensor::from_vec([2, 2, 1, 1], vec![-1.0, -1.0, -2.0, 4.0]);
        PRelu::new(vec![0.5, 0.25]).forward_inplace(&mut v);
        assert_eq!(v.data(), &[-0.5, -0.25, -1.0, 4.0]);
    }

    #[test]
    fn linear_matches_pytorch() {
        // import torch
        // l = torch.nn.Linear(6, 3)
        // l.weight.data = torch.arange(18, dtype=torch.float32).view(3,6) / 9 - 1
        // l.bias.data = torch.tensor([0.5, 0., -0.5])
        // x = torch.arange(12, dtype=torch.float32).view(2,6) / 4 - 1
        // print(l(x).flatten().tolist())
        let expected = [
            2.611_111, 0.611_111, -1.388_889, -3.888_889, 0.111_111, 4.111_111,
        ];
        let l = Linear::new(6, 3, ramp(18, 1.0 / 9.0, -1.0), Some(vec![0.5, 0.0, -0.5]));
        let x = Tensor::from_vec([2, 6, 1, 1], ramp(12, 0.25, -1.0));
        let mut y = Tensor::new();
        l.forward(&x, &mut y);
        assert_eq!(y.shape(), [2, 3, 1, 1]);
        assert!(close(y.data(), &expected, 1e-5), "{:?}", y.data());
    }

    #[test]
    fn linear_on_token_rows_equals_linear_on_vectors() {
        // The rows of linear_matches_pytorch, as one [2, 6] matrix of token rows.
        let l = Linear::new(6, 3, ramp(18, 1.0 / 9.0, -1.0), Some(vec![0.5, 0.0, -0.5]));
        let x = ramp(12, 0.25, -1.0);
        let mut rows = vec![f32::NAN; 6];
        l.forward_rows(&x, &mut rows);
        let mut vectors = Tensor::new();
        l.forward(&Tensor::from_vec([2, 6, 1, 1], x), &mut vectors);
        assert!(close(&rows, vectors.data(), 1e-6), "{rows:?}");
    }

    #[test]
    fn permuted_linear_on_permuted_input_equals_the_original() {
        let mut l = Linear::new(4, 2, ramp(8, 0.3, -1.0), Some(vec![0.1, 0.2]));
        let x = Tensor::from_vec([1, 4, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
        let (mut a, mut b) = (Tensor::new(), Tensor::new());
        l.forward(&x, &mut a);
        let source = [2, 0, 3, 1];
        l.permute_inputs(&source);
        let permuted_x = source.iter().map(|&s| x.data()[s]).collect();
        l.forward(&Tensor::from_vec([1, 4, 1, 1], permuted_x), &mut b);
        assert!(close(a.data(), b.data(), 1e-6), "{a:?} {b:?}");
    }

    #[test]
    fn softmax_over_channels_matches_pytorch() {
        // import torch
        // x = torch.tensor([[[[1., 2.]], [[3., -1.]], [[0., 0.]]]])
        // print(torch.softmax(x, dim=1).flatten().tolist())
        let expected = [
            0.114_195_2,
            0.843_794_7,
            0.843_794_7,
            0.042_010_07,
            0.042_010_07,
            0.114_195_2,
        ];
        let mut x = Tensor::from_vec([1, 3, 1, 2], vec![1., 2., 3., -1., 0., 0.]);
        softmax_channels_inplace(&mut x);
        assert!(close(x.data(), &expected, 1e-6), "{:?}", x.data());
    }

    #[test]
    fn upsampled_add_equals_upsampling_then_adding() {
        for [n, c, h, w] in [[1, 1, 1, 1], [1, 3, 2, 5], [2, 4, 5, 3], [1, 64, 8, 10]] {
            let x = Tensor::from_vec([n, c, h, w], ramp(n * c * h * w, 0.5, -3.0));
            let fine = ramp(n * c * 4 * h * w, -0.25, 7.0);
            let mut y = Tensor::from_vec([n, c, 2 * h, 2 * w], fine.clone());
            add_upsampled_2x(&mut y, &x);
            // The definition: nearest upsampling into a tensor of its own, then an add.
            let mut up = Tensor::zeros([n, c, 2 * h, 2 * w]);
            for i in 0..n * c {
                for oy in 0..2 * h {
                    for ox in 0..2 * w {
                        up.data_mut()[(i * 2 * h + oy) * 2 * w + ox] =
                            x.data()[(i * h + oy / 2) * w + ox / 2];
                    }
                }
            }
            let mut expected = Tensor::from_vec([n, c, 2 * h, 2 * w], fine);
            add_inplace(&mut expected, &up);
            assert_eq!(y, expected, "{n}x{c}x{h}x{w}");
        }
    }

    #[test]
    fn global_average_pool_and_residual_add() {
        let x = Tensor::from_vec([1, 2, 2, 2], vec![1., 2., 3., 4., -1., -1., -1., 3.]);
        let mut y = Tensor::new();
        global_avg_pool(&x, &mut y);
        assert_eq!(y.shape(), [1, 2, 1, 1]);
        assert_eq!(y.data(), &[2.5, 0.0]);
        let mut z = y.clone();
        add_inplace(&mut z, &y);
        assert_eq!(z.data(), &[5.0, 0.0]);
        let mut r = Tensor::from_vec([1, 1, 1, 3], vec![-1.0, 0.0, 2.0]);
        relu_inplace(&mut r);
        assert_eq!(r.data(), &[0.0, 0.0, 2.0]);
    }
}
