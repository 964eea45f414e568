//! Direct 3x3 convolution on pre-packed weights, with AVX2+FMA chosen at run time (`pulp`).
//!
//! At batch 1 the im2col + GEMM path spends about 40% of its time re-packing the weights and
//! unfolding the input on every call. Here the weights are packed once, at load time, into
//! blocks of 16 output channels (`[block][in][ky][kx][16]`), and each tile of 4 output pixels by
//! 16 channels is accumulated in eight 8-lane registers straight from a zero-padded copy of the
//! input. Written here because no crate offers a safe convolution kernel of this kind; `pulp`
//! gives the SIMD without `unsafe` in this crate. On a CPU without AVX2+FMA, [`conv3x3`] returns
//! `false` and the caller uses the GEMM path.

use pulp::f32x8;

use super::conv::ConvSpec;

/// Output channels per weight block (two 8-lane vectors).
pub(super) const BLOCK: usize = 16;
/// Output pixels per tile, along a row.
const TILE: usize = 4;

/// Whether a layer can use [`conv3x3`]: a 3x3 kernel, stride 1 or 2 (the same both ways) and
/// whole blocks of output channels.
pub(super) fn supports(spec: &ConvSpec) -> bool {
    spec.kernel == [3, 3]
        && spec.stride[0] == spec.stride[1]
        && (1..=2).contains(&spec.stride[0])
        && spec.padding[0] == spec.padding[1]
        && spec.out_channels.is_multiple_of(BLOCK)
}

/// PyTorch-layout weights `[out][in][3][3]` packed as `[out / 16][in][3][3][16]`.
pub(super) fn pack(weight: &[f32], spec: &ConvSpec) -> Vec<f32> {
    let (c, o) = (spec.in_channels, spec.out_channels);
    let mut packed = vec![0.0; weight.len()];
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

/// `y = conv(x)` without bias for one CHW image `x` of `h` x `w` into `y` (`[out][oh][ow]`),
/// using `pad` as scratch. Returns `false` (and writes nothing) when the CPU lacks AVX2+FMA.
pub(super) fn conv3x3(
    x: &[f32],
    (h, w): (usize, usize),
    spec: &ConvSpec,
    packed: &[f32],
    y: &mut [f32],
    pad: &mut Vec<f32>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        simd.vectorize(
            #[inline(always)]
            || match spec.stride[0] {
                1 => layer::<1>(simd, x, (h, w), spec, packed, y, pad),
                _ => layer::<2>(simd, x, (h, w), spec, packed, y, pad),
            },
        );
        return true;
    }
    let _ = (x, h, w, spec, packed, y, pad);
    false
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn layer<const S: usize>(
    simd: pulp::x86::V3,
    x: &[f32],
    (h, w): (usize, usize),
    spec: &ConvSpec,
    packed: &[f32],
    y: &mut [f32],
    pad: &mut Vec<f32>,
) {
    let c = spec.in_channels;
    let p = spec.padding[0];
    let (oh, ow) = spec.output_size(h, w);
    let tiles = ow.div_ceil(TILE);
    // Zero-padded input, wide enough for whole tiles and the 9 floats each tile row reads.
    let pw = (w + 2 * p).max(tiles * TILE * S + 9);
    let ph = h + 2 * p;
    let plane = ph * pw;
    pad.clear();
    pad.resize(c * plane + pw, 0.0);
    for ci in 0..c {
        for r in 0..h {
            let dst = ci * plane + (r + p) * pw + p;
            pad[dst..dst + w].copy_from_slice(&x[(ci * h + r) * w..(ci * h + r + 1) * w]);
        }
    }
    let ohw = oh * ow;
    let (weights, _) = packed.as_chunks::<BLOCK>();
    for (b, wb) in weights.chunks_exact(c * 9).enumerate() {
        for oy in 0..oh {
            for t in 0..tiles {
                let ox = t * TILE;
                let acc = tile::<S>(simd, pad, plane, pw, oy * S * pw + ox * S, wb);
                let valid = TILE.min(ow - ox);
                for (px, lanes) in acc.iter().enumerate().take(valid) {
                    for (j, v) in lanes.iter().enumerate() {
                        y[(b * BLOCK + j) * ohw + oy * ow + ox + px] = *v;
                    }
                }
            }
        }
    }
}

/// One tile: 4 output pixels (input columns `start + p*S + kx`) by 16 channels.
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
    for (ci, wc) in weights.chunks_exact(9).enumerate() {
        for ky in 0..3 {
            let base = ci * plane + ky * pw + start;
            let Some(row) = pad.get(base..base + 9) else {
                continue; // unreachable: the padded buffer covers every tile
            };
            let row: &[f32; 9] = row.try_into().unwrap_or(&[0.0; 9]);
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
