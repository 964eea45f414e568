//! Direct 3x3 convolution on pre-packed weights, with AVX2+FMA chosen at run time (`pulp`).
//!
//! At batch 1 the im2col + GEMM path spends about 40% of its time re-packing the weights and
//! unfolding the input on every call. Here the weights are packed once, at load time, into
//! blocks of 16 output channels (`[block][in][ky][kx][16]`). Each tile of 6 output pixels of a
//! row by 16 channels is accumulated in 12 of the 16 AVX2 registers straight from a zero-padded
//! copy of the input, one kernel tap at a time, and written out through a transpose in
//! registers. Blocks of output channels are independent and are spread over the rayon pool,
//! which is what lets one face use both cores. Written here because no crate offers a safe
//! convolution kernel of this kind; `pulp` gives the SIMD without `unsafe` in this crate. On a
//! CPU without AVX2+FMA, [`conv3x3`] returns `false` and the caller uses the GEMM path.
//!
//! Stride-1 layers with at most 4 input channels (MTCNN's RGB first layers: 27 taps per tile,
//! 10 or 28 output channels) turn the tile around: 24 pixels of a row (three vectors) by 4
//! output channels, from weights packed `[in][ky][kx][out]`, so no channel is padded to 16.
//!
//! The large layers run at 50-70 GFLOP/s on one core of this project's machine (a 2.45 GHz
//! Zen 3 peaks at 78; `cargo bench -p emotrack --bench bench_conv`), the 3-channel first
//! layers at 30-48.

use pulp::f32x8;
use rayon::prelude::*;

use super::conv::ConvSpec;

/// Output channels per weight block (two 8-lane vectors).
pub(super) const BLOCK: usize = 16;
/// Output pixels per tile, along a row: 6 x 2 accumulators leave room in the 16 AVX2 registers
/// for a tap's two weight vectors and a broadcast. (With the nine taps unrolled, the compiler
/// hoisted every weight load and spilled; walking the taps as a loop over their offsets keeps
/// the tile in registers, 1.5-2x faster than the unrolled 4 x 2 tiles were.)
const TILE: usize = 6;
/// The tile for rows that 6 would pad more: 8 (two tiles of 4, not 12) or 3 (one of 4, not 6) —
/// O-Net's last 3x3 layer and the emotion net's last stage.
const NARROW_TILE: usize = 4;

/// The tile width for output rows of `ow` pixels: [`NARROW_TILE`] only where [`TILE`] would
/// compute at least a third more pixels (rows of 1-4, 7 or 8 pixels). A narrow tile keeps 8
/// accumulators instead of 12, too few to hide the FMA latency, so a pixel costs more in it:
/// on wide rows, saving a pixel or two of padding does not pay for that.
fn tile_for(ow: usize) -> usize {
    if 3 * ow.div_ceil(TILE) * TILE >= 4 * ow.div_ceil(NARROW_TILE) * NARROW_TILE {
        NARROW_TILE
    } else {
        TILE
    }
}

/// Multiply-adds below which a layer's blocks are not worth handing to other threads.
const PARALLEL_MIN_MACS: usize = 200_000;

/// Input channels up to which a stride-1 layer runs the pixel-row kernel ([`pixel_group`]):
/// with 27 taps or fewer per tile, the channel-tile kernel spends as much on a tile's set-up
/// and transposed stores as on its multiply-adds, and rounds 10 or 28 output channels up to
/// blocks of 16.
const PIXEL_MAX_IN: usize = 4;
/// Output channels one tile of the pixel-row kernel computes (a last group may hold 2).
const PIXEL_GROUP: usize = 4;
/// Vectors of eight pixels along a row in one tile of the pixel-row kernel: 4 channels x 3
/// vectors = 12 accumulators, for 3 loads and 4 broadcasts per 12 multiply-adds.
const PIXEL_VECTORS: usize = 3;
/// Pixels per vector.
const LANES: usize = 8;

/// Whether a layer runs the pixel-row kernel: stride 1, at most [`PIXEL_MAX_IN`] input
/// channels (MTCNN's RGB first layers), an even number of output channels.
fn pixel_rows(spec: &ConvSpec) -> bool {
    spec.stride[0] == 1 && spec.in_channels <= PIXEL_MAX_IN && spec.out_channels.is_multiple_of(2)
}

/// Whether a layer can use [`conv3x3`]: a 3x3 kernel, stride 1 or 2 (the same both ways).
pub(super) fn supports(spec: &ConvSpec) -> bool {
    spec.kernel == [3, 3]
        && spec.stride[0] == spec.stride[1]
        && (1..=2).contains(&spec.stride[0])
        && spec.padding[0] == spec.padding[1]
}

/// PyTorch-layout weights `[out][in][3][3]` packed as `[ceil(out / 16)][in][3][3][16]`; a last,
/// partial block is filled up with zero weights (its extra channels are computed, not stored).
/// Layers for the pixel-row kernel are packed as `[in][3][3][out]` instead.
pub(super) fn pack(weight: &[f32], spec: &ConvSpec) -> Vec<f32> {
    let (c, o) = (spec.in_channels, spec.out_channels);
    if pixel_rows(spec) {
        let mut packed = vec![0.0; c * 9 * o];
        for (oc, filter) in weight.chunks_exact(c * 9).enumerate() {
            for (tap, &w) in filter.iter().enumerate() {
                packed[tap * o + oc] = w;
            }
        }
        return packed;
    }
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
        let pixels = pixel_rows(spec);
        let t = if pixels {
            LANES * PIXEL_VECTORS
        } else {
            tile_for(ow)
        };
        // A row's last tile is moved left to end at the row's end (see `tile_start`), so an
        // unpadded layer with rows of at least one tile reads its input in place. Otherwise
        // the tiles read a zero-padded copy, wide enough for whole tiles, written in one pass
        // (zeros around each copied row).
        let (pad, (plane, pw)) = if p == 0 && ow >= t {
            (x, (h * w, w))
        } else {
            let pw = (w + 2 * p).max(ow.div_ceil(t) * t * s - s + 3);
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
            (&pad[..], (plane, pw))
        };
        let parallel = spec.out_channels * c * 9 * ohw >= PARALLEL_MIN_MACS;
        if pixels {
            let o = spec.out_channels;
            let group = |(g, yg): (usize, &mut [f32])| {
                let o0 = g * PIXEL_GROUP;
                let geometry = (pad, (plane, pw), (oh, ow), (&packed[o0..], o));
                // One `vectorize` per instance (see below).
                if yg.len() / ohw == PIXEL_GROUP {
                    simd.vectorize(
                        #[inline(always)]
                        || pixel_group::<PIXEL_GROUP>(simd, c, geometry, yg),
                    );
                } else {
                    simd.vectorize(
                        #[inline(always)]
                        || pixel_group::<2>(simd, c, geometry, yg),
                    );
                }
                for (j, out) in yg.chunks_exact_mut(ohw).enumerate() {
                    finish(o0 + j, out);
                }
            };
            if parallel {
                y.par_chunks_mut(PIXEL_GROUP * ohw)
                    .enumerate()
                    .with_min_len(o.div_ceil(PIXEL_GROUP * rayon::current_num_threads()))
                    .for_each(group);
            } else {
                y.chunks_mut(PIXEL_GROUP * ohw).enumerate().for_each(group);
            }
            return true;
        }
        let block = |(b, (wb, yb)): (usize, (&[[f32; BLOCK]], &mut [f32]))| {
            let geometry = (pad, (plane, pw), (oh, ow), wb);
            // One `vectorize` per instance: a closure choosing among all four was not inlined
            // into the AVX2 context, and every intrinsic became a call (50x slower).
            match (s, t) {
                (1, TILE) => simd.vectorize(
                    #[inline(always)]
                    || conv_block::<1, TILE>(simd, geometry, yb),
                ),
                (1, _) => simd.vectorize(
                    #[inline(always)]
                    || conv_block::<1, NARROW_TILE>(simd, geometry, yb),
                ),
                (_, TILE) => simd.vectorize(
                    #[inline(always)]
                    || conv_block::<2, TILE>(simd, geometry, yb),
                ),
                _ => simd.vectorize(
                    #[inline(always)]
                    || conv_block::<2, NARROW_TILE>(simd, geometry, yb),
                ),
            }
            for (j, out) in yb.chunks_exact_mut(ohw).enumerate() {
                finish(b * BLOCK + j, out);
            }
        };
        let (weights, _) = packed.as_chunks::<BLOCK>();
        if parallel {
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

/// The input (in place, or its padded copy), its `(plane, row)` strides, the output size and
/// the weights `W` of one block (channel tiles) or group (pixel rows).
type Geometry<'a, W> = (&'a [f32], (usize, usize), (usize, usize), W);

/// Offsets of a 3x3 kernel's nine taps in an input whose rows are `pw` apart.
#[inline(always)]
fn taps(pw: usize) -> [usize; 9] {
    [0, 1, 2, pw, pw + 1, pw + 2, 2 * pw, 2 * pw + 1, 2 * pw + 2]
}

/// Where the tile for output pixels from `ox` of a row of `ow` starts: at `ox`, except that a
/// row's last tile, when it would run past the row's end, is moved left to end there (it
/// recomputes a few pixels of the tile before it, with the same values). A row narrower than
/// one tile starts at 0 and reads a padded copy.
#[inline(always)]
fn tile_start(ox: usize, ow: usize, t: usize) -> usize {
    if ow >= t { ox.min(ow - t) } else { ox }
}

/// One block of 16 output channels (fewer in a last, partial block): `yb` (`[16][oh][ow]`) from
/// the input, `T` pixels of a row at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn conv_block<const S: usize, const T: usize>(
    simd: pulp::x86::V3,
    (pad, (plane, pw), (oh, ow), weights): Geometry<'_, &[[f32; BLOCK]]>,
    yb: &mut [f32],
) {
    let ohw = oh * ow;
    let channels = yb.len() / ohw;
    for oy in 0..oh {
        for ox in (0..ow).step_by(T) {
            let ox = tile_start(ox, ow, T);
            let acc = tile::<S, T>(simd, pad, plane, pw, oy * S * pw + ox * S, weights);
            let valid = T.min(ow - ox);
            let at = oy * ow + ox;
            for half in 0..2 {
                let lanes = channels.saturating_sub(half * 8).min(8);
                let out = &mut yb[(half * 8).min(channels) * ohw..];
                let mut v = [acc[0][0]; T];
                for (v, a) in v.iter_mut().zip(&acc) {
                    *v = a[half];
                }
                if valid == T && lanes == 8 {
                    store_transposed(simd, v, out, ohw, at);
                } else {
                    for (px, lane) in v.iter().enumerate().take(valid) {
                        let lane: [f32; 8] = pulp::cast(*lane);
                        for (j, x) in lane.iter().enumerate().take(lanes) {
                            out[j * ohw + at + px] = *x;
                        }
                    }
                }
            }
        }
    }
}

/// Writes one tile's eight channels, `v[px]` holding channels 0..8 of pixel `px`, as runs of
/// `T` (4 or 6) pixels into eight planes: channel `j` to `out[j * ohw + at..][..T]`. A
/// transpose in registers (unpack, shuffle) replaces 8T scalar stores with 8 or 16 short ones.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn store_transposed<const T: usize>(
    simd: pulp::x86::V3,
    v: [f32x8; T],
    out: &mut [f32],
    ohw: usize,
    at: usize,
) {
    use core::arch::x86_64::{__m128, __m256};
    let avx = simd.avx;
    let m = |x: f32x8| -> __m256 { pulp::cast(x) };
    // Letters are pixels, digits channels: v[0] = a0..a7, v[1] = b0..b7, ...
    let ab_lo = avx._mm256_unpacklo_ps(m(v[0]), m(v[1])); // a0 b0 a1 b1 | a4 b4 a5 b5
    let ab_hi = avx._mm256_unpackhi_ps(m(v[0]), m(v[1])); // a2 b2 a3 b3 | a6 b6 a7 b7
    let cd_lo = avx._mm256_unpacklo_ps(m(v[2]), m(v[3]));
    let cd_hi = avx._mm256_unpackhi_ps(m(v[2]), m(v[3]));
    // Pixels a..d of channels (j, j + 4), j = 0..4.
    let quads = [
        avx._mm256_shuffle_ps::<0x44>(ab_lo, cd_lo),
        avx._mm256_shuffle_ps::<0xEE>(ab_lo, cd_lo),
        avx._mm256_shuffle_ps::<0x44>(ab_hi, cd_hi),
        avx._mm256_shuffle_ps::<0xEE>(ab_hi, cd_hi),
    ];
    for (j, q) in quads.into_iter().enumerate() {
        let lo: [f32; 4] = pulp::cast::<__m128, _>(avx._mm256_castps256_ps128(q));
        let hi: [f32; 4] = pulp::cast::<__m128, _>(avx._mm256_extractf128_ps::<1>(q));
        out[j * ohw + at..][..4].copy_from_slice(&lo);
        out[(j + 4) * ohw + at..][..4].copy_from_slice(&hi);
    }
    if T == 6 {
        // Pixels e, f: pairs for channels 0, 1, 4, 5 and 2, 3, 6, 7.
        let (e, f) = (m(v[T - 2]), m(v[T - 1]));
        let ef_lo = avx._mm256_unpacklo_ps(e, f); // e0 f0 e1 f1 | e4 f4 e5 f5
        let ef_hi = avx._mm256_unpackhi_ps(e, f); // e2 f2 e3 f3 | e6 f6 e7 f7
        let pairs: [[[f32; 2]; 4]; 2] = [pulp::cast(ef_lo), pulp::cast(ef_hi)];
        for (k, pair) in pairs.iter().enumerate() {
            for (i, p) in pair.iter().enumerate() {
                let j = 2 * k + (i & 1) + 4 * (i >> 1);
                out[j * ohw + at + 4..][..2].copy_from_slice(p);
            }
        }
    }
}

/// One tile: `T` output pixels of a row (input columns `start + p*S + kx` of each padded
/// plane) by 16 output channels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile<const S: usize, const T: usize>(
    simd: pulp::x86::V3,
    pad: &[f32],
    plane: usize,
    pw: usize,
    start: usize,
    weights: &[[f32; BLOCK]],
) -> [[f32x8; 2]; T] {
    let zero = simd.splat_f32x8(0.0);
    let mut acc = [[zero; 2]; T];
    let span = (T - 1) * S + 1;
    let taps = taps(pw);
    for (ci, wc) in weights.chunks_exact(9).enumerate() {
        let base = ci * plane + start;
        for (w, &off) in wc.iter().zip(&taps) {
            // In bounds: a tile ends at its row's end, or reads a copy sized for whole tiles.
            let row = &pad[base + off..base + off + span];
            let [w0, w1]: [f32x8; 2] = pulp::cast(*w);
            for (px, a) in acc.iter_mut().enumerate() {
                let v = simd.splat_f32x8(row[px * S]);
                a[0] = simd.mul_add_f32x8(v, w0, a[0]);
                a[1] = simd.mul_add_f32x8(v, w1, a[1]);
            }
        }
    }
    acc
}

/// The pixel-row kernel: output channels `0..G` of `yg` (`[G][oh][ow]`) from the input, in
/// tiles of [`PIXEL_VECTORS`] vectors of eight pixels of a row by `G` channels, one
/// kernel tap at a time: per tap, the tile's input pixels are loaded once and each channel's
/// weight broadcast once. `weights` starts at this group's first channel of the `[in][3][3][o]`
/// packing.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pixel_group<const G: usize>(
    simd: pulp::x86::V3,
    c: usize,
    (pad, (plane, pw), (oh, ow), (weights, o)): Geometry<'_, (&[f32], usize)>,
    yg: &mut [f32],
) {
    const P: usize = PIXEL_VECTORS;
    let ohw = oh * ow;
    let taps = taps(pw);
    let zero = simd.splat_f32x8(0.0);
    for oy in 0..oh {
        for ox in (0..ow).step_by(LANES * P) {
            let ox = tile_start(ox, ow, LANES * P);
            let mut acc = [[zero; P]; G];
            for ci in 0..c {
                let base = ci * plane + oy * pw + ox;
                for (k, &off) in taps.iter().enumerate() {
                    // In bounds: a tile ends at its row's end, or reads a copy sized for
                    // whole tiles.
                    let row: &[f32; LANES * P] = match pad[base + off..][..LANES * P].try_into() {
                        Ok(row) => row,
                        Err(_) => unreachable!(),
                    };
                    let v: [f32x8; P] = pulp::cast(*row);
                    let w = &weights[(ci * 9 + k) * o..][..G];
                    for (a, &w) in acc.iter_mut().zip(w) {
                        let w = simd.splat_f32x8(w);
                        for (a, &v) in a.iter_mut().zip(&v) {
                            *a = simd.mul_add_f32x8(w, v, *a);
                        }
                    }
                }
            }
            let valid = (LANES * P).min(ow - ox);
            let at = oy * ow + ox;
            for (j, a) in acc.iter().enumerate() {
                let a: [f32; LANES * P] = pulp::cast(*a);
                let out = &mut yg[j * ohw + at..];
                // A whole tile is a copy of known length (vector stores, not a `memcpy` call).
                if valid == LANES * P {
                    out[..LANES * P].copy_from_slice(&a);
                } else {
                    out[..valid].copy_from_slice(&a[..valid]);
                }
            }
        }
    }
}
