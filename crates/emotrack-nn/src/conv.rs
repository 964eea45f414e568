//! 2-D convolution as im2col + GEMM, with batch-norm folding at load time.

use ndarray::{ArrayView2, ArrayViewMut2, Axis, Slice, linalg::general_mat_mul};

use super::{PRelu, Scratch, Tensor, Weights, direct};
use crate::error::Result;

/// The hyper-parameters of a [`Conv2d`] (PyTorch's `nn.Conv2d` arguments, no dilation or groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[vertical, horizontal]` (≥ 1).
    pub stride: [usize; 2],
    /// Zero padding `[top/bottom, left/right]`.
    pub padding: [usize; 2],
    /// Whether the layer has a bias (`bias=True` in PyTorch).
    pub bias: bool,
}

impl ConvSpec {
    /// A square `kernel` with stride 1, no padding and a bias, like `nn.Conv2d(i, o, k)`.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [0, 0],
            bias: true,
        }
    }

    /// The same with stride `s` in both directions.
    pub fn stride(self, s: usize) -> Self {
        Self {
            stride: [s, s],
            ..self
        }
    }

    /// The same with padding `p` on every side.
    pub fn padding(self, p: usize) -> Self {
        Self {
            padding: [p, p],
            ..self
        }
    }

    /// The same without bias (`bias=False`, as before a batch norm).
    pub fn no_bias(self) -> Self {
        Self {
            bias: false,
            ..self
        }
    }

    /// Rows of the im2col matrix: `in_channels * kh * kw`.
    fn patch_len(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output `(height, width)` for an input of `(h, w)`: PyTorch's
    /// `(h + 2p - k) / s + 1`, or 0 when the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let out = |len: usize, k: usize, s: usize, p: usize| {
            let padded = len + 2 * p;
            if padded < k { 0 } else { (padded - k) / s + 1 }
        };
        (
            out(h, self.kernel[0], self.stride[0], self.padding[0]),
            out(w, self.kernel[1], self.stride[1], self.padding[1]),
        )
    }

    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// Batch-norm statistics and affine parameters (`nn.BatchNorm2d` in eval mode), to be folded
/// into the convolution before it with [`Conv2d::fold_batchnorm`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// γ, per channel.
    pub weight: Vec<f32>,
    /// β, per channel.
    pub bias: Vec<f32>,
    /// Running mean, per channel.
    pub running_mean: Vec<f32>,
    /// Running variance, per channel.
    pub running_var: Vec<f32>,
    /// ε added to the variance (PyTorch's default is `1e-5`).
    pub eps: f32,
}

impl BatchNorm {
    /// Loads `{prefix}.weight`, `.bias`, `.running_mean`, `.running_var`, each `[channels]`.
    pub fn load(w: &Weights<'_>, prefix: &str, channels: usize, eps: f32) -> Result<Self> {
        let get = |name: &str| w.tensor(&format!("{prefix}.{name}"), &[channels]);
        Ok(Self {
            weight: get("weight")?,
            bias: get("bias")?,
            running_mean: get("running_mean")?,
            running_var: get("running_var")?,
            eps,
        })
    }
}

/// A 2-D convolution (`nn.Conv2d` without dilation or groups) over NCHW tensors.
///
/// `forward` builds the im2col matrix `[in*kh*kw, oh*ow]` of each batch item in the caller's
/// [`Scratch`] and multiplies the `[out, in*kh*kw]` weight matrix by it (matrixmultiply's sgemm,
/// through ndarray), which writes the output plane by plane in NCHW order. 1x1 stride-1
/// convolutions multiply the input directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    spec: ConvSpec,
    /// `[out, in * kh * kw]`, row-major (PyTorch's `[out, in, kh, kw]` flattened).
    weight: Vec<f32>,
    /// `[out]` (zeros when the layer has none).
    bias: Vec<f32>,
    /// The weights packed for the direct 3x3 path (`direct::pack`), empty when the layer does
    /// not qualify.
    packed: Vec<f32>,
}

impl Conv2d {
    /// A convolution from PyTorch-layout weights `[out, in, kh, kw]` (flattened) and an
    /// optional bias `[out]`.
    ///
    /// # Panics
    /// If the lengths do not match `spec` (a programming error; [`Conv2d::load`] checks files).
    pub fn new(spec: ConvSpec, weight: Vec<f32>, bias: Option<Vec<f32>>) -> Self {
        assert!(
            spec.stride[0] >= 1 && spec.stride[1] >= 1,
            "stride must be ≥ 1"
        );
        assert_eq!(weight.len(), spec.out_channels * spec.patch_len());
        let bias = bias.unwrap_or_else(|| vec![0.0; spec.out_channels]);
        assert_eq!(bias.len(), spec.out_channels);
        let mut layer = Self {
            spec,
            weight,
            bias,
            packed: Vec::new(),
        };
        layer.repack();
        layer
    }

    /// Packs the weights again for the direct path after they changed.
    fn repack(&mut self) {
        if direct::supports(&self.spec) {
            self.packed = direct::pack(&self.weight, &self.spec);
        }
    }

    /// Weights `[out, in, kh, kw]`, flattened (batch norm folded in, if any was).
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Bias `[out]` (zeros for a layer without one).
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Loads `{prefix}.weight` `[out, in, kh, kw]` and, if `spec.bias`, `{prefix}.bias` `[out]`.
    pub fn load(w: &Weights<'_>, prefix: &str, spec: ConvSpec) -> Result<Self> {
        let shape = [
            spec.out_channels,
            spec.in_channels,
            spec.kernel[0],
            spec.kernel[1],
        ];
        let weight = w.tensor(&format!("{prefix}.weight"), &shape)?;
        let bias = if spec.bias {
            Some(w.tensor(&format!("{prefix}.bias"), &[spec.out_channels])?)
        } else {
            None
        };
        Ok(Self::new(spec, weight, bias))
    }

    /// Loads a bias-free convolution `{conv}.weight` followed by the batch norm `{bn}.*` and
    /// folds them into one convolution (the usual `conv → bn` of a ResNet).
    pub fn load_with_batchnorm(
        w: &Weights<'_>,
        conv: &str,
        bn: &str,
        spec: ConvSpec,
        eps: f32,
    ) -> Result<Self> {
        let mut layer = Self::load(w, conv, spec)?;
        layer.fold_batchnorm(&BatchNorm::load(w, bn, spec.out_channels, eps)?);
        Ok(layer)
    }

    /// Folds an eval-mode batch norm that follows this convolution into its weights:
    /// `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`.
    ///
    /// # Panics
    /// If the batch norm's channel count differs from the convolution's output channels.
    pub fn fold_batchnorm(&mut self, bn: &BatchNorm) {
        let out = self.spec.out_channels;
        assert!(
            bn.weight.len() == out
                && bn.bias.len() == out
                && bn.running_mean.len() == out
                && bn.running_var.len() == out,
            "batch norm has a different channel count than the convolution"
        );
        let k = self.spec.patch_len();
        for o in 0..out {
            let scale = bn.weight[o] / (bn.running_var[o] + bn.eps).sqrt();
            for v in &mut self.weight[o * k..(o + 1) * k] {
                *v *= scale;
            }
            self.bias[o] = (self.bias[o] - bn.running_mean[o]) * scale + bn.bias[o];
        }
        self.repack();
    }

    /// The layer's hyper-parameters.
    pub fn spec(&self) -> &ConvSpec {
        &self.spec
    }

    /// Computes `y = conv(x)`; `y` is resized to `[N, out, oh, ow]`.
    ///
    /// # Panics
    /// If `x` does not have `in_channels` channels.
    pub fn forward(&self, x: &Tensor, y: &mut Tensor, scratch: &mut Scratch) {
        self.forward_act(x, y, scratch, Activation::Identity);
    }

    /// Computes `y = act(conv(x))` with the activation fused into the pass that adds the bias
    /// (one pass over the output instead of two); `y` is resized to `[N, out, oh, ow]`.
    ///
    /// Small images are batched: the im2col matrices of several batch items sit side by side
    /// (up to [`COL_BUDGET`] floats) and one GEMM computes them all, so a batch of 24x24 crops
    /// costs a few large matrix products rather than many tiny ones.
    ///
    /// # Panics
    /// If `x` does not have `in_channels` channels, or a PReLU's slope count does not fit.
    pub fn forward_act(
        &self,
        x: &Tensor,
        y: &mut Tensor,
        scratch: &mut Scratch,
        act: Activation<'_>,
    ) {
        let s = &self.spec;
        assert_eq!(
            x.c(),
            s.in_channels,
            "conv input has the wrong channel count"
        );
        let (n, h, w) = (x.n(), x.h(), x.w());
        let (oh, ow) = s.output_size(h, w);
        let out_c = s.out_channels;
        y.resize([n, out_c, oh, ow]);
        let ohw = oh * ow;
        if ohw == 0 || n == 0 {
            return;
        }
        if !self.packed.is_empty() {
            let finish = |o: usize, plane: &mut [f32]| {
                finish_inplace(plane, self.bias[o], act.slope(o, out_c));
            };
            let ran = (0..n).all(|i| {
                direct::conv3x3(
                    x.item(i),
                    (h, w),
                    s,
                    &self.packed,
                    y.item_mut(i),
                    &mut scratch.pad,
                    finish,
                )
            });
            if ran {
                return;
            }
        }
        let k = s.patch_len();
        let a = ArrayView2::from_shape((out_c, k), &self.weight)
            .expect("weight length checked at construction");
        let group = (COL_BUDGET / (k * ohw)).clamp(1, n);
        let mut i0 = 0;
        while i0 < n {
            let g = group.min(n - i0);
            if g == 1 {
                // One item: the GEMM writes straight into the output.
                let mut c = ArrayViewMut2::from_shape((out_c, ohw), y.item_mut(i0))
                    .expect("output resized above");
                if s.is_pointwise() {
                    let b =
                        ArrayView2::from_shape((k, ohw), x.item(i0)).expect("input shape checked");
                    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
                } else {
                    // A large image is unfolded in bands of output rows, each band's im2col
                    // matrix small enough to stay in cache while the GEMM packs and reads it.
                    let band = (COL_BUDGET / (k * ow)).max(1);
                    for oy0 in (0..oh).step_by(band) {
                        let oy1 = (oy0 + band).min(oh);
                        let cols = (oy1 - oy0) * ow;
                        let col = scratch.col(k * cols);
                        im2col(x.item(i0), h, w, s, oy0..oy1, ow, col, cols, 0);
                        let b = ArrayView2::from_shape((k, cols), &*col).expect("col sized above");
                        let mut c =
                            c.slice_axis_mut(Axis(1), Slice::from(oy0 * ow..oy0 * ow + cols));
                        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
                    }
                }
                for (o, plane) in y.item_mut(i0).chunks_exact_mut(ohw).enumerate() {
                    finish_inplace(plane, self.bias[o], act.slope(o, out_c));
                }
            } else {
                // Several items: one GEMM over their im2col matrices side by side, then each
                // item's planes are copied out with bias and activation.
                let cols = g * ohw;
                let (col, out) = scratch.col_and_out(k * cols, out_c * cols);
                for j in 0..g {
                    im2col(x.item(i0 + j), h, w, s, 0..oh, ow, col, cols, j * ohw);
                }
                let b = ArrayView2::from_shape((k, cols), &*col).expect("col sized above");
                let mut c =
                    ArrayViewMut2::from_shape((out_c, cols), &mut *out).expect("out sized above");
                general_mat_mul(1.0, &a, &b, 0.0, &mut c);
                for j in 0..g {
                    let item = y.item_mut(i0 + j);
                    for (o, plane) in item.chunks_exact_mut(ohw).enumerate() {
                        let src = &out[o * cols + j * ohw..o * cols + (j + 1) * ohw];
                        finish_copy(plane, src, self.bias[o], act.slope(o, out_c));
                    }
                }
            }
            i0 += g;
        }
    }
}

/// The largest im2col matrix (in floats, 512 KiB) that [`Conv2d::forward_act`] builds at once,
/// batching small items or banding a large one: big enough that a GEMM amortises its packing,
/// small enough to stay in the L2 cache.
pub const COL_BUDGET: usize = 1 << 17;

/// An activation fused into a convolution's output pass ([`Conv2d::forward_act`]).
#[derive(Debug, Clone, Copy)]
pub enum Activation<'a> {
    /// None: `y = conv(x)`.
    Identity,
    /// `max(y, 0)`.
    Relu,
    /// PReLU with per-channel (or one shared) slopes.
    PRelu(&'a PRelu),
}

impl Activation<'_> {
    /// The negative-side slope for output channel `o` of `channels`: `None` for identity,
    /// 0 for ReLU.
    pub(crate) fn slope(&self, o: usize, channels: usize) -> Option<f32> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(0.0),
            Activation::PRelu(p) => Some(p.slope(o, channels)),
        }
    }
}

/// `v = act(v + bias)` over one output plane; `slope` is the negative-side slope (`None`: no
/// activation). Branch-free so it vectorises.
fn finish_inplace(plane: &mut [f32], bias: f32, slope: Option<f32>) {
    match slope {
        None => plane.iter_mut().for_each(|v| *v += bias),
        Some(a) => plane.iter_mut().for_each(|v| {
            let t = *v + bias;
            *v = if t < 0.0 { t * a } else { t };
        }),
    }
}

/// `dst = act(src + bias)`, as [`finish_inplace`].
fn finish_copy(dst: &mut [f32], src: &[f32], bias: f32, slope: Option<f32>) {
    match slope {
        None => dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + bias),
        Some(a) => dst.iter_mut().zip(src).for_each(|(d, s)| {
            let t = s + bias;
            *d = if t < 0.0 { t * a } else { t };
        }),
    }
}

/// Unfolds output rows `rows` of one CHW image `x` (`h` x `w`) into their
/// `[c*kh*kw, rows.len()*ow]` patch matrix (zeros where the kernel overlaps the padding),
/// written at column `offset` of `col`, whose rows are `ld` long. Row `(ci, ky, kx)`, column
/// `offset + (oy - rows.start, ox)` holds `x[ci, oy*sy + ky - py, ox*sx + kx - px]`.
///
/// Public for training (`emotrack-train` computes weight gradients from it).
///
/// # Panics
/// If `x` has fewer than `in_channels` planes or `col` fewer than `c*kh*kw` rows of `ld`.
#[allow(clippy::too_many_arguments)] // geometry of one unfold; a struct would only rename them
pub fn im2col(
    x: &[f32],
    h: usize,
    w: usize,
    s: &ConvSpec,
    rows: std::ops::Range<usize>,
    ow: usize,
    col: &mut [f32],
    ld: usize,
    offset: usize,
) {
    let [kh, kw] = s.kernel;
    let [sy, sx] = s.stride;
    let [py, px] = s.padding;
    let ohw = rows.len() * ow;
    let oy0 = rows.start;
    let mut col_rows = col.chunks_exact_mut(ld);
    for plane in x.chunks_exact(h * w).take(s.in_channels) {
        for ky in 0..kh {
            for kx in 0..kw {
                let row = col_rows.next().expect("col has c*kh*kw rows");
                let row = &mut row[offset..offset + ohw];
                // Output columns whose input column `ox*sx + kx - px` lies inside [0, w).
                let lo = if kx >= px { 0 } else { (px - kx).div_ceil(sx) };
                let hi = if w + px > kx {
                    ((w + px - kx - 1) / sx + 1).min(ow)
                } else {
                    0
                };
                let lo = lo.min(hi);
                for (r, out) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = (oy0 + r) * sy + ky;
                    if iy < py || iy - py >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[(iy - py) * w..(iy - py + 1) * w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if sx == 1 {
                        let start = lo + kx - px;
                        out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                    } else {
                        for (ox, v) in out[lo..hi].iter_mut().enumerate() {
                            *v = src[(lo + ox) * sx + kx - px];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PRelu;
    use crate::weights::tests::safetensors_bytes;

    fn ramp(len: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..len).map(|i| i as f32 * scale + offset).collect()
    }

    /// Direct (no im2col) convolution, the definition, to check the fast path against.
    fn conv_reference(conv: &Conv2d, x: &Tensor) -> Tensor {
        let s = conv.spec;
        let (oh, ow) = s.output_size(x.h(), x.w());
        let mut y = Tensor::zeros([x.n(), s.out_channels, oh, ow]);
        let k = s.patch_len();
        for n in 0..x.n() {
            for o in 0..s.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = conv.bias[o];
                        for ci in 0..s.in_channels {
                            for ky in 0..s.kernel[0] {
                                for kx in 0..s.kernel[1] {
                                    let iy =
                                        (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                                    let ix =
                                        (ox * s.stride[1] + kx) as isize - s.padding[1] as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= x.h() as isize
                                        || ix >= x.w() as isize
                                    {
                                        continue;
                                    }
                                    let xv = x.plane(n, ci)[iy as usize * x.w() + ix as usize];
                                    let wv = conv.weight
                                        [o * k + (ci * s.kernel[0] + ky) * s.kernel[1] + kx];
                                    acc += xv * wv;
                                }
                            }
                        }
                        let idx = ((n * s.out_channels + o) * oh + oy) * ow + ox;
                        y.data_mut()[idx] = acc;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn conv_matches_pytorch_on_a_small_case() {
        // import torch
        // x = torch.arange(2*4*5, dtype=torch.float32).view(1,2,4,5) / 10
        // c = torch.nn.Conv2d(2, 2, 3, stride=2, padding=1)
        // c.weight.data = torch.arange(36, dtype=torch.float32).view(2,2,3,3) / 36 - 0.5
        // c.bias.data = torch.tensor([0.1, -0.2])
        // print(c(x).flatten().tolist())
        let expected = [
            -0.977_777_8,
            -2.119_444_6,
            -1.833_333_4,
            -4.208_333_5,
            -7.566_667,
            -5.891_667,
            3.922_222,
            6.280_555_7,
            4.266_666_4,
            7.791_666_5,
            11.933_332,
            7.908_333_3,
        ];
        let x = Tensor::from_vec([1, 2, 4, 5], ramp(40, 0.1, 0.0));
        let spec = ConvSpec::new(2, 2, 3).stride(2).padding(1);
        let conv = Conv2d::new(spec, ramp(36, 1.0 / 36.0, -0.5), Some(vec![0.1, -0.2]));
        let mut y = Tensor::new();
        conv.forward(&x, &mut y, &mut Scratch::new());
        assert_eq!(y.shape(), [1, 2, 2, 3]);
        for (a, b) in y.data().iter().zip(expected) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{:?}", y.data());
        }
    }

    /// `conv.forward(x)` equals [`conv_reference`] within `tol` (relative above 1).
    fn assert_matches_reference(
        conv: &Conv2d,
        x: &Tensor,
        y: &mut Tensor,
        scratch: &mut Scratch,
        tol: f32,
    ) {
        conv.forward(x, y, scratch);
        let r = conv_reference(conv, x);
        let what = format!("{:?} on {:?}", conv.spec, x.shape());
        assert_eq!(y.shape(), r.shape(), "{what}");
        for (a, b) in y.data().iter().zip(r.data()) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
        }
    }

    #[test]
    fn im2col_conv_equals_the_definition_for_many_shapes() {
        let mut scratch = Scratch::new();
        let mut y = Tensor::new();
        for (k, s, p, h, w) in [
            (3, 1, 0, 7, 9),
            (3, 1, 1, 7, 9),
            (3, 2, 1, 8, 8),
            (5, 2, 2, 9, 6),
            (2, 2, 0, 5, 5),
            (1, 1, 0, 4, 3),
            (1, 2, 0, 5, 5),
            (3, 3, 2, 4, 4),
            (7, 2, 3, 11, 13),
            // Large enough to be unfolded in bands of rows (27 x 100 x 90 > COL_BUDGET).
            (3, 1, 1, 100, 90),
        ] {
            let spec = ConvSpec::new(3, 4, k).stride(s).padding(p);
            let mut conv = Conv2d::new(
                spec,
                ramp(4 * 3 * k * k, 0.013, -0.4),
                Some(vec![0.5, -0.5, 0.0, 1.0]),
            );
            // 3x3 layers too: the GEMM path is what CPUs without AVX2 run them on.
            conv.packed.clear();
            let x = Tensor::from_vec([2, 3, h, w], ramp(2 * 3 * h * w, 0.07, -1.0));
            assert_matches_reference(&conv, &x, &mut y, &mut scratch, 1e-5);
        }
    }

    #[test]
    fn direct_3x3_conv_equals_the_definition() {
        // 3x3 layers take the direct path on AVX2 CPUs: sizes that leave partial tiles of 6
        // pixels, partial blocks of 16 channels (MTCNN's 10 and 28), both strides, with and
        // without padding, the emotion ResNet's own shapes, and a batch. Stride 1 with up to
        // 4 input channels and an even number of outputs runs the pixel-row kernel: groups of
        // 4 channels and a last one of 2, rows of whole and partial tiles of 24 pixels.
        // Unpadded layers with rows of at least one tile read their input in place, the last
        // tile of a row moved left (rows of 13 and 10 pixels in tiles of 6, 46 in tiles of 24).
        let mut scratch = Scratch::new();
        let mut y = Tensor::new();
        for (c, o, s, p, n, h, w) in [
            (1, 32, 2, 1, 1, 48, 48),
            (32, 32, 1, 1, 1, 24, 24),
            (64, 128, 2, 1, 1, 12, 12),
            (256, 256, 1, 1, 1, 3, 3),
            (3, 16, 1, 0, 2, 7, 9),
            (5, 48, 2, 1, 3, 11, 6),
            (16, 32, 1, 0, 1, 13, 10),
            (3, 10, 1, 0, 2, 17, 12),
            (3, 28, 1, 0, 1, 24, 24),
            (2, 7, 2, 1, 1, 9, 5),
            (3, 32, 1, 0, 1, 48, 48),
            (1, 14, 1, 1, 1, 5, 13),
            (4, 20, 1, 1, 2, 9, 17),
            (2, 8, 1, 0, 1, 10, 3),
            (16, 32, 1, 0, 1, 13, 15),
            (8, 16, 2, 0, 1, 15, 21),
        ] {
            let spec = ConvSpec::new(c, o, 3).stride(s).padding(p);
            assert!(direct::supports(&spec));
            let conv = Conv2d::new(
                spec,
                ramp(o * c * 9, 0.37 / (o * c * 9) as f32, -0.2),
                Some(ramp(o, 0.01, -0.1)),
            );
            let x = Tensor::from_vec([n, c, h, w], ramp(n * c * h * w, 0.011, -1.5));
            assert_matches_reference(&conv, &x, &mut y, &mut scratch, 1e-4);
        }
    }

    #[test]
    fn fused_activations_equal_separate_ones_batched_or_not() {
        let spec = ConvSpec::new(2, 3, 3).padding(1);
        let conv = Conv2d::new(spec, ramp(54, 0.05, -1.2), Some(vec![0.3, -0.1, 0.0]));
        let prelu = PRelu::new(vec![0.25, 0.5, 0.1]);
        let mut scratch = Scratch::new();
        // 1 item (GEMM into the output), 3 items (one batched GEMM), and 40 items of 64x64,
        // more than COL_BUDGET holds at once (several batched GEMMs).
        for (n, side) in [(1, 5), (3, 5), (40, 64)] {
            let x = Tensor::from_vec([n, 2, side, side], ramp(n * 2 * side * side, 0.013, -2.0));
            let (mut plain, mut fused) = (Tensor::new(), Tensor::new());
            conv.forward(&x, &mut plain, &mut scratch);
            let reference = conv_reference(&conv, &x);
            for (a, b) in plain.data().iter().zip(reference.data()) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "n={n}: {a} vs {b}");
            }
            prelu.forward_inplace(&mut plain);
            conv.forward_act(&x, &mut fused, &mut scratch, Activation::PRelu(&prelu));
            assert_eq!(plain, fused, "n={n}");
            conv.forward(&x, &mut plain, &mut scratch);
            crate::relu_inplace(&mut plain);
            conv.forward_act(&x, &mut fused, &mut scratch, Activation::Relu);
            assert_eq!(plain, fused, "n={n}");
        }
    }

    #[test]
    fn kernel_larger_than_input_gives_an_empty_output() {
        let conv = Conv2d::new(ConvSpec::new(1, 1, 3), vec![1.0; 9], None);
        let mut y = Tensor::new();
        conv.forward(&Tensor::zeros([1, 1, 2, 2]), &mut y, &mut Scratch::new());
        assert_eq!(y.shape(), [1, 1, 0, 0]);
        assert!(y.is_empty());
    }

    #[test]
    fn folded_batchnorm_equals_conv_then_batchnorm() {
        // import torch
        // x = torch.arange(2*3*3, dtype=torch.float32).view(1,2,3,3) / 10
        // c = torch.nn.Conv2d(2, 2, 1, bias=False); c.weight.data = torch.tensor([[1., -1.], [0.5, 2.]]).view(2,2,1,1)
        // bn = torch.nn.BatchNorm2d(2).eval()
        // bn.weight.data = torch.tensor([2., 0.5]); bn.bias.data = torch.tensor([0.1, -0.3])
        // bn.running_mean.data = torch.tensor([-0.9, 1.0]); bn.running_var.data = torch.tensor([4., 0.25])
        // print(bn(c(x)).flatten().tolist())
        let expected = [
            0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.499_984, 0.749_979, 0.999_974,
            1.249_969, 1.499_964, 1.749_959, 1.999_954, 2.249_949, 2.499_944,
        ];
        let bytes = safetensors_bytes(&[
            ("c.weight", vec![2, 2, 1, 1], vec![1., -1., 0.5, 2.]),
            ("bn.weight", vec![2], vec![2., 0.5]),
            ("bn.bias", vec![2], vec![0.1, -0.3]),
            ("bn.running_mean", vec![2], vec![-0.9, 1.0]),
            ("bn.running_var", vec![2], vec![4., 0.25]),
        ]);
        let w = Weights::from_bytes(&bytes, "t").expect("valid");
        let conv =
            Conv2d::load_with_batchnorm(&w, "c", "bn", ConvSpec::new(2, 2, 1).no_bias(), 1e-5)
                .expect("shapes match");
        let x = Tensor::from_vec([1, 2, 3, 3], ramp(18, 0.1, 0.0));
        let mut y = Tensor::new();
        conv.forward(&x, &mut y, &mut Scratch::new());
        for (a, b) in y.data().iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{:?}", y.data());
        }
    }

    #[test]
    fn loading_a_wrong_shape_names_the_tensor() {
        let bytes = safetensors_bytes(&[("conv.weight", vec![4, 3, 3, 3], vec![0.0; 108])]);
        let w = Weights::from_bytes(&bytes, "m.safetensors").expect("valid");
        let err = Conv2d::load(&w, "conv", ConvSpec::new(3, 8, 3).no_bias()).expect_err("shape");
        assert!(err.to_string().contains("conv.weight"), "{err}");
        let err = Conv2d::load(&w, "conv", ConvSpec::new(3, 4, 3)).expect_err("no bias stored");
        assert!(err.to_string().contains("conv.bias"), "{err}");
    }
}
