//! Pointwise (1x1, stride 1) convolution on pre-packed weights, with AVX2+FMA chosen at run
//! time (`pulp`).
//!
//! A 1x1 convolution is a matrix product, `y[o][p] = Σᵢ w[o][i] · x[i][p]`, and the GEMM path
//! (matrixmultiply) computes it well for large matrices; but with YuNet's 16 to 64 input
//! channels it spends much of its time packing the input into its own layout on every call. Here
//! the input is read where it lies: a tile of 24 pixels (three vectors) of every input channel
//! stays in the L1 cache while 4 output channels at a time are accumulated over it in 12
//! registers (per input channel: three loads, four broadcast weights, twelve multiply-adds),
//! the weights packed once, at load time, as `[out / 4][in][4]`. The tiles of a row of pixels
//! are spread over the rayon pool in groups of output channels for large layers. On a CPU
//! without AVX2+FMA, or with fewer than 24 pixels, [`conv1x1`] returns `false` and the caller
//! uses the GEMM path.

use rayon::prelude::*;

use super::conv::ConvSpec;

/// Output channels per tile (each with three accumulators).
const GROUP: usize = 4;
/// Pixels per tile: three vectors of eight.
const VECTORS: usize = 3;
const LANES: usize = 8;
const TILE: usize = VECTORS * LANES;

/// Multiply-adds below which a layer's channel groups are not worth handing to other threads.
const PARALLEL_MIN_MACS: usize = 400_000;

/// Whether a layer can use [`conv1x1`]: a 1x1 kernel, stride 1, no padding.
pub(super) fn supports(spec: &ConvSpec) -> bool {
    spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.padding == [0, 0]
}

/// PyTorch-layout weights `[out][in]` packed as `[ceil(out / 4)][in][4]`; a last, partial
/// group is filled up with zero weights (its extra channels are computed, not stored).
pub(super) fn pack(weight: &[f32], spec: &ConvSpec) -> Vec<f32> {
    let (c, o) = (spec.in_channels, spec.out_channels);
    let mut packed = vec![0.0; o.div_ceil(GROUP) * GROUP * c];
    for (oc, filter) in weight.chunks_exact(c).enumerate() {
        let (g, j) = (oc / GROUP, oc % GROUP);
        for (ic, &w) in filter.iter().enumerate() {
            packed[(g * c + ic) * GROUP + j] = w;
        }
    }
    packed
}

/// `y = conv(x) + bias` for one CHW image `x` of `pixels` values per plane into `y`
/// (`[out][pixels]`), with the weights packed by [`pack`], then `finish(o, plane)` on each
/// output channel's plane (an activation). Returns `false` (and writes nothing) when the CPU
/// lacks AVX2+FMA or the planes are shorter than a tile.
pub(super) fn conv1x1(
    x: &[f32],
    pixels: usize,
    (packed, bias): (&[f32], &[f32]),
    y: &mut [f32],
    finish: impl Fn(usize, &mut [f32]) + Sync,
) -> bool {
    if pixels < TILE || bias.is_empty() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        let o = bias.len();
        let c = packed.len() / (o.div_ceil(GROUP) * GROUP);
        let (groups, _) = packed.as_chunks::<GROUP>();
        let per = per_task(o, c, pixels);
        // Task `t`: output channel groups from `t · per` (`yg` their planes, `wg` their weights).
        let task = |(t, (wg, yg)): (usize, (&[[f32; GROUP]], &mut [f32]))| {
            let first = t * per;
            let bias = &bias[first * GROUP..];
            simd.vectorize(
                #[inline(always)]
                || channel_groups(simd, (x, pixels, c), (wg, bias), yg),
            );
            for (j, plane) in yg.chunks_exact_mut(pixels).enumerate() {
                finish(first * GROUP + j, plane);
            }
        };
        if per * GROUP < o {
            groups
                .par_chunks(per * c)
                .zip(y.par_chunks_mut(per * GROUP * pixels))
                .enumerate()
                .for_each(task);
        } else {
            task((0, (groups, y)));
        }
        return true;
    }
    let _ = (x, pixels, packed, bias, y, finish);
    false
}

/// Channel groups per parallel task: all of them for a small layer, else an even share per
/// thread.
fn per_task(o: usize, c: usize, pixels: usize) -> usize {
    let groups = o.div_ceil(GROUP);
    let threads = rayon::current_num_threads();
    if o * c * pixels < PARALLEL_MIN_MACS || threads < 2 {
        groups
    } else {
        groups.div_ceil(threads)
    }
}

/// Output planes `yg` (`[channels][pixels]`: the channels of `weights`' groups, the last group
/// perhaps partial) from the `c` planes of `x`, a tile of [`TILE`] pixels at a time, every
/// channel group over each tile. The last tile is moved left to end at the planes' end (it
/// recomputes a few pixels with the same values).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn channel_groups(
    simd: pulp::x86::V3,
    (x, pixels, c): (&[f32], usize, usize),
    (weights, bias): (&[[f32; GROUP]], &[f32]),
    yg: &mut [f32],
) {
    let channels = yg.len() / pixels;
    for p in (0..pixels).step_by(TILE) {
        let p = p.min(pixels - TILE);
        for (g, wg) in weights.chunks_exact(c).enumerate() {
            let mut acc: [[pulp::f32x8; VECTORS]; GROUP] = std::array::from_fn(|j| {
                [simd.splat_f32x8(bias.get(g * GROUP + j).copied().unwrap_or(0.0)); VECTORS]
            });
            for (ic, w) in wg.iter().enumerate() {
                let row: &[f32; TILE] = match x[ic * pixels + p..][..TILE].try_into() {
                    Ok(row) => row,
                    Err(_) => unreachable!("a tile lies inside the plane"),
                };
                let v: [pulp::f32x8; VECTORS] = pulp::cast(*row);
                for (a, &w) in acc.iter_mut().zip(w) {
                    let w = simd.splat_f32x8(w);
                    for (a, &v) in a.iter_mut().zip(&v) {
                        *a = simd.mul_add_f32x8(w, v, *a);
                    }
                }
            }
            for (j, a) in acc.iter().enumerate().take(channels - g * GROUP) {
                let a: [f32; TILE] = pulp::cast(*a);
                yg[(g * GROUP + j) * pixels + p..][..TILE].copy_from_slice(&a);
            }
        }
    }
}
