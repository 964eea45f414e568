//! A stump cascade on eight neighbouring windows at once (AVX2, chosen at run time through
//! `pulp`, with no `unsafe` here), giving exactly the scalar scan's windows.
//!
//! Eight neighbouring windows read eight consecutive integral-image entries at every corner, so
//! each corner is one unaligned load. (At OpenCV's step of 2 the caller lays the integral
//! images out with each row's even columns first, so every other window is consecutive too.)
//! Every lane does OpenCV's arithmetic in the scalar code's order and precision (`f64`
//! normalisation and stage sums, `f32` features, no fused multiply-add), so every lane's
//! verdict is the scalar one. The scan still walks the positions in order, applying OpenCV's
//! skip after a first-stage rejection to decide which positions are evaluated at all; only
//! those lanes are carried into the later stages.

use pulp::x86::V3;
use pulp::{f32x4, f32x8, f64x4, i32x4, i32x8, m64x4};

use super::{Compiled, Corners, HaarCascade};

/// Windows per vector.
const LANES: usize = 8;

/// Integral-image entries past a row's last window position that [`scan_row`] reads.
pub(super) const OVERREAD: usize = LANES;

/// Scans the window positions `0..cols` of one row (window `k` at integral entry `row + k`),
/// calling `hit(k)` for each window that passes the whole cascade, in order; after a
/// first-stage rejection the next position is skipped, like OpenCV. The integral images must
/// hold `row + cols + OVERREAD + c.span` entries, and the cascade must be stump based
/// (`c.stumps` non-empty).
pub(super) fn scan_row(
    simd: V3,
    c: &Compiled,
    cascade: &HaarCascade,
    integrals: (&[i32], &[u32]),
    row: usize,
    cols: usize,
    hit: impl FnMut(usize),
) {
    simd.vectorize(
        #[inline(always)]
        || scan(simd, c, cascade, integrals, row, cols, hit),
    );
}

/// [`scan_row`] inside the AVX2 context (everything below is inlined into it).
#[inline(always)]
fn scan(
    simd: V3,
    c: &Compiled,
    cascade: &HaarCascade,
    (sum, sq): (&[i32], &[u32]),
    row: usize,
    cols: usize,
    mut hit: impl FnMut(usize),
) {
    // (A parsed cascade always has a stage.)
    let Some((first, later)) = cascade.stages.split_first() else {
        return;
    };
    // The next position to evaluate (OpenCV's walk).
    let mut x = 0;
    for start in (0..cols).step_by(LANES) {
        if x >= start + LANES {
            continue;
        }
        let base = row + start;
        let win = &sum[base..base + c.span + LANES];
        let sqw = &sq[base..base + c.span + LANES];
        let (good, inv_norm) = normalise(simd, c, win, sqw);
        // Flat windows (no variance, or too little: black bars, plain walls) are rejected
        // before any stage, as in OpenCV; a group of only those costs no stage at all.
        let passed = if good == 0 {
            0
        } else {
            stage(simd, c.stage_stumps(first), first.threshold, win, inv_norm) & good
        };
        // Which positions OpenCV evaluates: after a first-stage rejection (not a flat window)
        // it skips the next one.
        let end = cols.min(start + LANES);
        let mut evaluated = 0u8;
        while x < end {
            let lane = 1u8 << (x - start);
            evaluated |= lane;
            x += if good & lane != 0 && passed & lane == 0 {
                2
            } else {
                1
            };
        }
        // The evaluated windows go through every later stage together: neighbouring windows
        // tend to pass or fail together, so the lanes stay busy (measured with
        // `cargo bench -p emotrack --bench bench_haar`: stopping after 1, 3, 5, 8 or 12 stages
        // and finishing one by one was slower every time).
        let mut alive = passed & evaluated;
        for s in later {
            if alive == 0 {
                break;
            }
            alive &= stage(simd, c.stage_stumps(s), s.threshold, win, inv_norm);
        }
        while alive != 0 {
            hit(start + alive.trailing_zeros() as usize);
            alive &= alive - 1;
        }
    }
}

/// Eight consecutive entries from `at`.
#[inline(always)]
fn load<T: pulp::bytemuck::Pod>(data: &[T], at: u32) -> i32x8 {
    let at = at as usize;
    let lanes: &[T; LANES] = match data[at..at + LANES].try_into() {
        Ok(lanes) => lanes,
        // A slice of LANES entries always converts.
        Err(_) => unreachable!(),
    };
    pulp::cast(*lanes)
}

/// Eight rectangle sums (OpenCV's `CALC_SUM_OFS`, wrapping like the scalar [`super::rect_sum`]).
#[inline(always)]
fn rect_sums<T: pulp::bytemuck::Pod>(simd: V3, data: &[T], o: &Corners) -> i32x8 {
    let (a, b) = (load(data, o[0]), load(data, o[1]));
    let (c, d) = (load(data, o[2]), load(data, o[3]));
    simd.wrapping_add_i32x8(simd.wrapping_sub_i32x8(simd.wrapping_sub_i32x8(a, b), c), d)
}

/// Bits of the lanes whose two halves' masks are set.
#[inline(always)]
fn bits(simd: V3, lo: m64x4, hi: m64x4) -> u8 {
    let lo = simd.avx._mm256_movemask_pd(pulp::cast(lo));
    let hi = simd.avx._mm256_movemask_pd(pulp::cast(hi));
    (lo | hi << 4) as u8
}

/// [`Compiled::inv_norm`] on eight windows: the lanes that can be normalised, and their factor.
#[inline(always)]
fn normalise(simd: V3, c: &Compiled, win: &[i32], sq: &[u32]) -> (u8, f32x8) {
    // The inner area's sum of squares is below 2^31 (22 · 22 · 255²), so its wrapped u32 value
    // read as i32 is the same number.
    let sums: [i32x4; 2] = pulp::cast(rect_sums(simd, win, &c.norm));
    let squares: [i32x4; 2] = pulp::cast(rect_sums(simd, sq, &c.norm));
    let area = simd.splat_f64x4(c.norm_area);
    let (good_lo, inv_lo) = normalise_half(simd, area, sums[0], squares[0]);
    let (good_hi, inv_hi) = normalise_half(simd, area, sums[1], squares[1]);
    let inv: f32x8 = pulp::cast([inv_lo, inv_hi]);
    (bits(simd, good_lo, good_hi), inv)
}

/// [`normalise`] on four lanes, from their inner sums and sums of squares.
#[inline(always)]
fn normalise_half(simd: V3, area: f64x4, s: i32x4, q: i32x4) -> (m64x4, f32x4) {
    let s = simd.convert_i32x4_to_f64x4(s);
    let q = simd.convert_i32x4_to_f64x4(q);
    let nf = simd.sub_f64x4(simd.mul_f64x4(area, q), simd.mul_f64x4(s, s));
    let inv =
        simd.convert_f64x4_to_f32x4(simd.div_f64x4(simd.splat_f64x4(1.0), simd.sqrt_f64x4(nf)));
    let scaled = simd.mul_f64x4(area, simd.convert_f32x4_to_f64x4(inv));
    let good = simd.and_m64x4(
        simd.cmp_gt_f64x4(nf, simd.splat_f64x4(0.0)),
        simd.cmp_lt_f64x4(scaled, simd.splat_f64x4(0.1)),
    );
    (good, inv)
}

/// One stage on eight windows: the bits of the lanes it passes.
#[inline(always)]
fn stage(
    simd: V3,
    stumps: &[super::CompiledStump],
    threshold: f32,
    win: &[i32],
    inv_norm: f32x8,
) -> u8 {
    let mut lo = simd.splat_f64x4(0.0);
    let mut hi = simd.splat_f64x4(0.0);
    for s in stumps {
        let f = &s.feature;
        let mut v = simd.add_f32x8(term(simd, f, 0, win), term(simd, f, 1, win));
        if f.weights[2] != 0.0 {
            v = simd.add_f32x8(v, term(simd, f, 2, win));
        }
        let v = simd.mul_f32x8(v, inv_norm);
        // The leaves were widened from f32, so narrowing them back is exact.
        let leaf = simd.select_f32x8(
            simd.cmp_ge_f32x8(v, simd.splat_f32x8(s.threshold)),
            simd.splat_f32x8(s.leaves[1] as f32),
            simd.splat_f32x8(s.leaves[0] as f32),
        );
        let [l0, l1]: [f32x4; 2] = pulp::cast(leaf);
        lo = simd.add_f64x4(lo, simd.convert_f32x4_to_f64x4(l0));
        hi = simd.add_f64x4(hi, simd.convert_f32x4_to_f64x4(l1));
    }
    let t = simd.splat_f64x4(f64::from(threshold));
    bits(simd, simd.cmp_ge_f64x4(lo, t), simd.cmp_ge_f64x4(hi, t))
}

/// One weighted rectangle of a feature on eight windows.
#[inline(always)]
fn term(simd: V3, f: &super::CompiledFeature, k: usize, win: &[i32]) -> f32x8 {
    let r = simd.convert_i32x8_to_f32x8(rect_sums(simd, win, &f.corners[k]));
    simd.mul_f32x8(simd.splat_f32x8(f.weights[k]), r)
}
