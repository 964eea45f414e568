//! The network's convolutions in training: forward and backward passes computed by emotrack's
//! inference kernels and matrix products instead of burn flex's own.
//!
//! # Why hand-written
//! Convolutions are about 90% of a training step, and flex runs the ones at 24x24 (and the
//! stem, and the strided 1x1 shortcuts) at 4-40 GFLOP/s forward + backward: it convolves one
//! image at a time in tiles of 512 pixels and computes the input gradient as a transposed
//! convolution. Here the forward pass and, for stride 1, the input gradient are direct
//! convolutions (emotrack's AVX2 kernel; the input gradient is the output gradient convolved
//! with the flipped, transposed kernel); the weight gradient and the strided input gradient
//! are one matrix product per image over its patch matrix ([`emotrack_nn::im2col`]). The
//! values equal flex's up to float rounding (`tests` below compare both gradients).
//! `examples/conv_speed.rs` times both per layer: 1.5-4x faster on all but the last stage's
//! 3x3 layers, 1.9x over the network's convolutions; whole training steps about 1.5x
//! (`examples/train_speed.rs`).
//!
//! Only the autodiff flex backend (the one `emotrack train` runs) takes this path; other
//! tensors, layouts it does not cover (bias, groups, dilation, uneven padding) and 3x3 layers
//! with outputs under 4x4 pixels (where flex is as fast) go through burn's own convolution.

use std::fmt;

use burn::backend::Autodiff;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use emotrack_nn::{ConvSpec, Scratch, im2col};
use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};
use rayon::prelude::*;

/// Output pixels per plane below which a 3x3 convolution stays on flex.
const MIN_PIXELS_3X3: usize = 16;

/// Images whose weight-gradient contributions one task sums (see [`Geometry::weight_grad`]).
const IMAGES_PER_SUM: usize = 16;

/// `conv.forward(x)`, on the fast path when it applies.
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    fast_forward(conv, &x).unwrap_or_else(|| conv.forward(x))
}

/// The fast path; `None` when it does not apply.
fn fast_forward(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let geometry = Geometry::of(conv, x.dims())?;
    let (Ok(x_ad), Ok(w_ad)) = (
        x.clone().try_into_primitive::<Autodiff<Flex>>(),
        conv.weight.val().try_into_primitive::<Autodiff<Flex>>(),
    ) else {
        return None;
    };
    let (x_p, x_node) = x_ad.into_parts();
    let (w_p, w_node) = w_ad.into_parts();
    let (x_p, w_p) = (contiguous(&x_p), contiguous(&w_p));
    let y = geometry.forward(values(&x_p), values(&w_p));
    let dims = [
        geometry.n,
        geometry.spec.out_channels,
        geometry.oh,
        geometry.ow,
    ];
    let y = flex_tensor(y, dims);
    let out = match ConvBackward
        .prepare::<NoCheckpointing>([x_node, w_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                x: x_p,
                weight: w_p,
                geometry,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

/// One convolution's sizes: `n` images of `spec.in_channels` x `h` x `w` to `oh` x `ow`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    spec: ConvSpec,
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    /// The geometry of `conv` on an input of `dims`; `None` for what the fast path does not
    /// cover (bias, groups, dilation, unequal or asymmetric strides and padding).
    fn of(conv: &Conv2d, [n, c, h, w]: [usize; 4]) -> Option<Self> {
        let [out, inp, kh, kw] = conv.weight.dims();
        // The network pads explicitly and evenly (`resnet::conv`).
        let pad = match conv.padding {
            PaddingConfig2d::Valid => 0,
            PaddingConfig2d::Explicit(a, b, c, d) if a == b && b == c && c == d => a,
            _ => return None,
        };
        let [sy, sx] = conv.stride;
        let square = kh == kw && sy == sx;
        let plain = conv.bias.is_none() && conv.groups == 1 && conv.dilation == [1, 1];
        if !plain || !square || inp != c || n == 0 {
            return None;
        }
        let spec = ConvSpec::new(c, out, kh).stride(sy).padding(pad).no_bias();
        let (oh, ow) = spec.output_size(h, w);
        // Flex's per-image products are as fast for the last stage's 3x3 layers (3x3 outputs;
        // `examples/conv_speed.rs`).
        if kh > 1 && oh * ow < MIN_PIXELS_3X3 {
            return None;
        }
        (oh > 0 && ow > 0).then_some(Self {
            spec,
            n,
            h,
            w,
            oh,
            ow,
        })
    }

    fn image_len(&self) -> usize {
        self.spec.in_channels * self.h * self.w
    }

    fn out_len(&self) -> usize {
        self.spec.out_channels * self.oh * self.ow
    }

    /// Rows of the patch matrix: `in_channels * k * k`.
    fn patch_len(&self) -> usize {
        self.spec.in_channels * self.spec.kernel[0] * self.spec.kernel[1]
    }

    /// `y = conv(x, weight)` for the whole batch, images spread over the threads.
    fn forward(&self, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let conv = emotrack_nn::Conv2d::new(self.spec, weight.to_vec(), None);
        let (c, h, w) = (self.spec.in_channels, self.h, self.w);
        convolve_batch(&conv, x, [c, h, w], self.n, self.out_len())
    }

    /// The input gradient: for stride 1 the convolution of `gy` with the flipped, transposed
    /// kernel (padding `k - 1 - p`); otherwise each image's patch-matrix gradient `Wᵀ · gy`
    /// folded back onto the image.
    fn input_grad(&self, gy: &[f32], weight: &[f32]) -> Vec<f32> {
        let (c, o) = (self.spec.in_channels, self.spec.out_channels);
        let k = self.spec.kernel[0];
        let p = self.spec.padding[0];
        if self.spec.stride[0] == 1 && p < k {
            let spec = ConvSpec::new(o, c, k).padding(k - 1 - p).no_bias();
            let conv = emotrack_nn::Conv2d::new(spec, flip_transpose(weight, o, c, k), None);
            return convolve_batch(&conv, gy, [o, self.oh, self.ow], self.n, self.image_len());
        }
        let (kk, ohw) = (self.patch_len(), self.oh * self.ow);
        let wt = ArrayView2::from_shape((o, kk), weight).expect("weight shape checked");
        let mut gx = vec![0.0; self.n * self.image_len()];
        gx.par_chunks_mut(self.image_len())
            .zip(gy.par_chunks(self.out_len()))
            .for_each_init(
                || vec![0.0; kk * ohw],
                |col, (gx, gy)| {
                    let g = ArrayView2::from_shape((o, ohw), gy).expect("gradient shape checked");
                    let mut cols =
                        ArrayViewMut2::from_shape((kk, ohw), &mut col[..]).expect("sized above");
                    general_mat_mul(1.0, &wt.t(), &g, 0.0, &mut cols);
                    self.col2im(col, gx);
                },
            );
        gx
    }

    /// The weight gradient `Σ_images gy · patchesᵀ`: partial sums over fixed groups of
    /// [`IMAGES_PER_SUM`] images, in parallel, then added in order, so the result does not
    /// depend on how the threads shared the work (a resumed run repeats the same numbers).
    fn weight_grad(&self, x: &[f32], gy: &[f32]) -> Vec<f32> {
        let (o, kk, ohw) = (self.spec.out_channels, self.patch_len(), self.oh * self.ow);
        let partials: Vec<Vec<f32>> = x
            .par_chunks(IMAGES_PER_SUM * self.image_len())
            .zip(gy.par_chunks(IMAGES_PER_SUM * self.out_len()))
            .map(|(xs, gys)| {
                let mut gw = vec![0.0; o * kk];
                let mut acc = ArrayViewMut2::from_shape((o, kk), &mut gw[..]).expect("sized");
                let mut col = vec![0.0; kk * ohw];
                for (x, gy) in xs
                    .chunks_exact(self.image_len())
                    .zip(gys.chunks_exact(self.out_len()))
                {
                    im2col(
                        x,
                        self.h,
                        self.w,
                        &self.spec,
                        0..self.oh,
                        self.ow,
                        &mut col,
                        ohw,
                        0,
                    );
                    let g = ArrayView2::from_shape((o, ohw), gy).expect("gradient shape checked");
                    let patches = ArrayView2::from_shape((kk, ohw), &col[..]).expect("sized above");
                    general_mat_mul(1.0, &g, &patches.t(), 1.0, &mut acc);
                }
                gw
            })
            .collect();
        let mut parts = partials.into_iter();
        let mut gw = parts.next().unwrap_or_else(|| vec![0.0; o * kk]);
        for part in parts {
            gw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        }
        gw
    }

    /// Adds each patch-matrix entry back onto the image pixel it was read from (the adjoint
    /// of [`im2col`]): `gx[ci, oy*s + ky - p, ox*s + kx - p] += col[(ci, ky, kx), (oy, ox)]`.
    fn col2im(&self, col: &[f32], gx: &mut [f32]) {
        let k = self.spec.kernel[0];
        let (s, p) = (self.spec.stride[0], self.spec.padding[0]);
        let (h, w, ohw) = (self.h, self.w, self.oh * self.ow);
        for (row, patch) in col.chunks_exact(ohw).enumerate() {
            let (ci, ky, kx) = (row / (k * k), row / k % k, row % k);
            let plane = &mut gx[ci * h * w..(ci + 1) * h * w];
            for (oy, line) in patch.chunks_exact(self.ow).enumerate() {
                let Some(iy) = (oy * s + ky).checked_sub(p).filter(|&iy| iy < h) else {
                    continue;
                };
                let dst = &mut plane[iy * w..(iy + 1) * w];
                for (ox, v) in line.iter().enumerate() {
                    if let Some(ix) = (ox * s + kx).checked_sub(p).filter(|&ix| ix < w) {
                        dst[ix] += v;
                    }
                }
            }
        }
    }
}

/// The `[o, c, k, k]` kernel `weight` as the `[c, o, k, k]` kernel of the stride-1 input
/// gradient: input and output channels swapped, each `k x k` tap grid turned by 180°.
fn flip_transpose(weight: &[f32], o: usize, c: usize, k: usize) -> Vec<f32> {
    let kk = k * k;
    let mut flipped = vec![0.0; weight.len()];
    for (i, taps) in weight.chunks_exact(kk).enumerate() {
        let (oc, ic) = (i / c, i % c);
        let dst = &mut flipped[(ic * o + oc) * kk..][..kk];
        // Reversing the row-major taps turns the grid by 180°.
        dst.iter_mut()
            .zip(taps.iter().rev())
            .for_each(|(d, t)| *d = *t);
    }
    flipped
}

/// Runs `conv` over `n` images of `[c, h, w]` in `x`, one chunk of images per thread;
/// `out_len` values per image.
fn convolve_batch(
    conv: &emotrack_nn::Conv2d,
    x: &[f32],
    [c, h, w]: [usize; 3],
    n: usize,
    out_len: usize,
) -> Vec<f32> {
    let per_thread = n.div_ceil(rayon::current_num_threads()).max(1);
    let mut y = vec![0.0; n * out_len];
    y.par_chunks_mut(per_thread * out_len)
        .zip(x.par_chunks(per_thread * c * h * w))
        .for_each(|(y, x)| {
            let images = x.len() / (c * h * w);
            let input = emotrack_nn::Tensor::from_vec([images, c, h, w], x.to_vec());
            let mut out = emotrack_nn::Tensor::new();
            conv.forward(&input, &mut out, &mut Scratch::new());
            y.copy_from_slice(out.data());
        });
    y
}

/// What the backward pass needs: the input, the weights and the sizes.
#[derive(Clone)]
struct State {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = State;

    fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let gy = contiguous(&grads.consume::<Flex>(&ops.node));
        let State {
            x,
            weight,
            geometry: g,
        } = ops.state;
        if let Some(node) = node_x {
            let gx = g.input_grad(values(&gy), values(&weight));
            let dims = [g.n, g.spec.in_channels, g.h, g.w];
            grads.register::<Flex>(node.id, flex_tensor(gx, dims));
        }
        if let Some(node) = node_weight {
            let gw = g.weight_grad(values(&x), values(&gy));
            let [kh, kw] = g.spec.kernel;
            let dims = [g.spec.out_channels, g.spec.in_channels, kh, kw];
            grads.register::<Flex>(node.id, flex_tensor(gw, dims));
        }
    }
}

/// `t` with contiguous values from offset 0, copied only when it is a view.
fn contiguous(t: &FlexTensor) -> FlexTensor {
    let c = t.to_contiguous();
    if c.layout().start_offset() == 0 {
        c
    } else {
        FlexTensor::from_data(c.into_data())
    }
}

/// The values of a [`contiguous`] `f32` tensor.
fn values(t: &FlexTensor) -> &[f32] {
    let len = t.layout().shape().num_elements();
    &t.storage::<f32>()[..len]
}

fn flex_tensor(values: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().expect("f32 values");
        let b = b.into_data().try_to_vec::<f32>().expect("f32 values");
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// The fast path's output and both gradients equal burn's own convolution's, for every
    /// layer shape of the network (3x3 and 1x1, stride 1 and 2, odd sizes, one input channel).
    #[test]
    fn forward_and_gradients_match_burns_convolution() {
        let device = Device::flex().autodiff();
        // (in, out, kernel, stride, side, input needs a gradient)
        for (i, o, k, s, side, input_grad) in [
            (1, 4, 3, 2, 9, false),
            (3, 5, 3, 1, 7, true),
            (4, 6, 3, 2, 7, true),
            (4, 6, 1, 2, 8, true),
            (5, 3, 3, 1, 4, true),
            (16, 16, 3, 1, 6, true),
        ] {
            let conv = Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .with_bias(false)
                .init(&device);
            let x =
                Tensor::<4>::random([8, i, side, side], Distribution::Normal(0.0, 1.0), &device);
            let x = if input_grad { x.require_grad() } else { x };
            // A weighting so each output element gets its own gradient.
            let y_ref = conv.forward(x.clone());
            let mix = Tensor::<4>::random(y_ref.dims(), Distribution::Normal(0.0, 1.0), &device);
            let Some(y) = fast_forward(&conv, &x) else {
                panic!("the fast path does not apply to {i}->{o} {k}x{k} stride {s}");
            };
            let what = format!("{i}->{o} {k}x{k} stride {s} at {side}");
            assert!(
                max_abs_diff(y.clone(), y_ref.clone()) < 1e-4,
                "output, {what}"
            );
            let g = (y * mix.clone()).sum().backward();
            let g_ref = (y_ref * mix).sum().backward();
            let gw = conv.weight.grad(&g).expect("weight gradient");
            let gw_ref = conv.weight.grad(&g_ref).expect("weight gradient");
            assert!(max_abs_diff(gw, gw_ref) < 1e-3, "weight gradient, {what}");
            if input_grad {
                let gx = x.grad(&g).expect("input gradient");
                let gx_ref = x.grad(&g_ref).expect("input gradient");
                assert!(max_abs_diff(gx, gx_ref) < 1e-4, "input gradient, {what}");
            } else {
                assert!(x.grad(&g).is_none());
            }
        }
    }
}
