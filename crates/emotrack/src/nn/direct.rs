//! Direct 3x3 convolution on pre-packed weights, with AVX2+FMA chosen at run time (`pulp`).
//!
//! At batch 1 the im2col + GEMM path spends about 40% of its time re-packing the weights and
//! unfolding the input on every call. Here the weights are packed once, at load time, into
//! blocks of 16 output channels (`[block][in][ky][kx][16]`). Each tile of 4 output pixels of a
//! row by 16 channels is accumulated in 8 of the 16 AVX2 registers straight from a zero-padded
//! copy of the input. Blocks of output channels are independent and are spread over the rayon
//! pool, which is what lets one face use both cores. Written here because no crate offers a
//! safe convolution kernel of this kind; `pulp` gives the SIMD without `unsafe` in this crate. On a CPU without AVX2+FMA, [`conv3x3`]
//! returns `false` and the caller uses the GEMM path.

use pulp::f32x8;
use rayon::prelude::*;

use super::conv::ConvSpec;

/// Output channels per weight block (two 8-lane vectors).
pub(super) const BLOCK: usize = 16;
/// Output pixels per tile, along a row: 4 x 2 accumulators leave room in the 16 AVX2 registers
/// for the weights and a broadcast (6 x 2 spilled and ran slower).
const TILE: usize = 4;
/// Multiply-adds below which a layer's blocks are not worth handing to other threads.
const PARALLEL_MIN_MACS: usize = 200_000;

/// Whether a layer can use [`conv3x3`]: a 3x3 kernel, stride 1 or 2 (the same both ways).
pub(super) fn supports(spec: &ConvSpec) -> bool {
    spec.kernel == [3, 3]
        && spec.stride[0] == spec.stride[1]
        && (1..=2).contains(&spec.stride[0])
        && spec.padding[0] == spec.padding[1]
}

/// PyTorch-layout weights `[out][in][3][3]` packed as `[ceil(out / 16)][in][3][3][16]`; a last,
/// partial block is filled up with zero weights (its extra channels are computed, not stored).
pub(super) fn pack(weight: &[f32], spec: &ConvSpec) -> Vec<f32> {
    let (c, o) = (spec.in_channels, spec.out_channels);
    let mut packed = vec![0.0; o.div_ceil(BLOCK) * BLOCK * c * 9];
    for oc in 0..o {
        let (b, j) = (oc / BLOCK, oc % BLOCK);
        for ic in 0..c {
            for k in 0..9 {
                packed[((b * c + ic) * 9 + k) * BLOCK + j] = weight[(oc * c + ic) * 9 + k];
            }
        }
    }
    packed
}

/// `y = conv(x)` for one CHW image `x` of `h` x `w` into `y` (`[out][oh][ow]`), then
/// `finish(o, plane)` on each output channel's plane (bias, activation), using `pad` as
/// scratch. Returns `false` (and writes nothing) when the CPU lacks AVX2+FMA.
pub(super) fn conv3x3(
    x: &[f32],
    (h, w): (usize, usize),
    spec: &ConvSpec,
    packed: &[f32],
    y: &mut [f32],
    pad: &mut Vec<f32>,
    finish: impl Fn(usize, &mut [f32]) + Sync,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        let (c, p, s) = (spec.in_channels, spec.padding[0], spec.stride[0]);
        let (oh, ow) = spec.output_size(h, w);
        let ohw = oh * ow;
        // Zero-padded input, wide enough for the whole tiles the last ones read, written in one
        // pass (zeros around each copied row).
        let pw = (w + 2 * p).max(ow.div_ceil(TILE) * TILE * s - s + 3);
        let plane = (h + 2 * p) * pw;
        pad.clear();
        pad.reserve(c * plane);
        for channel in x.chunks_exact(h * w) {
            pad.resize(pad.len() + p * pw + p, 0.0);
            for row in channel.chunks_exact(w) {
                pad.extend_from_slice(row);
                pad.resize(pad.len() + pw - w, 0.0);
            }
            pad.resize(pad.len() + p * pw - p, 0.0);
        }
        debug_assert_eq!(pad.len(), c * plane);
        let pad = &pad[..];
        let block = |(b, (wb, yb)): (usize, (&[[f32; BLOCK]], &mut [f32]))| {
            let geometry = (pad, (plane, pw), (oh, ow), wb);
            simd.vectorize(
                #[inline(always)]
                || match s {
                    1 => conv_block::<1>(simd, geometry, yb),
                    _ => conv_block::<2>(simd, geometry, yb),
                },
            );
            for (j, out) in yb.chunks_exact_mut(ohw).enumerate() {
                finish(b * BLOCK + j, out);
            }
        };
        let (weights, _) = packed.as_chunks::<BLOCK>();
        if spec.out_channels * c * 9 * ohw >= PARALLEL_MIN_MACS {
            weights
                .par_chunks_exact(c * 9)
                .zip(y.par_chunks_mut(BLOCK * ohw))
                .enumerate()
                // One piece per thread: finer pieces cost more in hand-overs than they gain.
                .with_min_len(
                    spec.out_channels
                        .div_ceil(BLOCK * rayon::current_num_threads()),
                )
                .for_each(block);
        } else {
            weights
                .chunks_exact(c * 9)
                .zip(y.chunks_mut(BLOCK * ohw))
                .enumerate()
                .for_each(block);
        }
        return true;
    }
    let _ = (x, h, w, spec, packed, y, pad, finish);
    false
}

/// The padded input, its `(plane, row)` strides, the output size and one block's weights.
type Geometry<'a> = (
    &'a [f32],
    (usize, usize),
    (usize, usize),
    &'a [[f32; BLOCK]],
);

/// One block of 16 output channels (fewer in a last, partial block): `yb` (`[16][oh][ow]`) from
/// the padded input, [`TILE`] pixels of a row at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn conv_block<const S: usize>(
    simd: pulp::x86::V3,
    (pad, (plane, pw), (oh, ow), weights): Geometry<'_>,
    yb: &mut [f32],
) {
    let ohw = oh * ow;
    let channels = yb.len() / ohw;
    for oy in 0..oh {
        for ox in (0..ow).step_by(TILE) {
            let acc = tile::<S>(simd, pad, plane, pw, oy * S * pw + ox * S, weights);
            let valid = TILE.min(ow - ox);
            for (px, lanes) in acc.iter().enumerate().take(valid) {
                for (j, v) in lanes.iter().enumerate().take(channels) {
                    yb[j * ohw + oy * ow + ox + px] = *v;
                }
            }
        }
    }
}

/// One tile: [`TILE`] output pixels of a row (input columns `start + p*S + kx` of each padded
/// plane) by 16 output channels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile<const S: usize>(
    simd: pulp::x86::V3,
    pad: &[f32],
    plane: usize,
    pw: usize,
    start: usize,
    weights: &[[f32; BLOCK]],
) -> [[f32; BLOCK]; TILE] {
    let zero = simd.splat_f32x8(0.0);
    let mut acc = [[zero; 2]; TILE];
    let span = (TILE - 1) * S + 3;
    for (ci, wc) in weights.chunks_exact(9).enumerate() {
        for ky in 0..3 {
            let base = ci * plane + ky * pw + start;
            // In bounds: the padded buffer is sized for whole tiles.
            let row = &pad[base..base + span];
            for kx in 0..3 {
                let [w0, w1]: [f32x8; 2] = pulp::cast(wc[ky * 3 + kx]);
                for (px, a) in acc.iter_mut().enumerate() {
                    let v = simd.splat_f32x8(row[px * S + kx]);
                    a[0] = simd.mul_add_f32x8(v, w0, a[0]);
                    a[1] = simd.mul_add_f32x8(v, w1, a[1]);
                }
            }
        }
    }
    acc.map(pulp::cast)
}
