//! Bilinear resizing of 8-bit gray images, bit-exact with OpenCV's `cv::resize` using
//! `INTER_LINEAR_EXACT`.
//!
//! That is the interpolation OpenCV 4's `CascadeClassifier` uses to build its image pyramid
//! (`FeatureEvaluator::setImage`), so the Haar detector needs these exact pixels for parity.
//! Plain `INTER_LINEAR` on `u8` uses 11-bit weights and a SIMD rounding shortcut; it differs from
//! the exact variant by at most one gray level on some pixels.
//!
//! The method, as OpenCV defines it (fixed point with 8 fractional bits per axis):
//! * destination pixel `d` samples the source at `f = (d + 0.5) · s − 0.5` with
//!   `s = 1 / (dst / src)` computed in `f64`; `i = ⌊f⌋`, weights
//!   `w1 = round_half_even((f − i) · 256)` and `w0 = 256 − w1`;
//! * samples left of the first pixel (`i < 0`) take the first pixel, samples at or right of the
//!   last one take the last pixel;
//! * rows are interpolated first into 16-bit values, columns then combine two such rows into
//!   32 bits, rounded back with `(v + 2^15) >> 16` (or `(v + 2^7) >> 8` for clamped rows).
//!
//! Written by hand because no crate reproduces OpenCV's rounding (`image`'s and
//! `fast_image_resize`'s bilinear filters weigh pixels differently).

use image::GrayImage;

/// Fractional bits of one axis weight.
const FRAC_BITS: u32 = 8;
/// Weight of a whole pixel on one axis.
const ONE: u16 = 1 << FRAC_BITS;

/// Where each destination coordinate samples the source along one axis.
#[derive(Debug, Default, Clone)]
struct AxisTable {
    /// First source index of the pair for each destination index in `lo..hi`.
    offsets: Vec<usize>,
    /// `(w0, w1)` for each destination index in `lo..hi` (zero elsewhere).
    weights: Vec<(u16, u16)>,
    /// Destination indices below `lo` clamp to the first source pixel.
    lo: usize,
    /// Destination indices at or above `hi` clamp to the last source pixel.
    hi: usize,
}

impl AxisTable {
    fn build(&mut self, src: usize, dst: usize) {
        self.offsets.clear();
        self.offsets.resize(dst, 0);
        self.weights.clear();
        self.weights.resize(dst, (0, 0));
        self.lo = 0;
        self.hi = dst;
        // OpenCV computes the inverse scale first and inverts it (both in f64); keep that order,
        // `src / dst` can differ in the last bit.
        let inv_scale = dst as f64 / src as f64;
        let scale = 1.0 / inv_scale;
        for d in 0..dst {
            let f = scale * (d as f64 + 0.5) - 0.5;
            let i = f.floor();
            if i >= 0.0 && src > 1 {
                let i = i as usize;
                if i < src - 1 {
                    let w1 = ((f - i as f64) * f64::from(ONE)).round_ties_even() as u16;
                    self.offsets[d] = i;
                    self.weights[d] = (ONE - w1, w1);
                } else {
                    self.offsets[d] = src - 1;
                    self.hi = self.hi.min(d);
                }
            } else {
                self.lo = self.lo.max(d + 1);
            }
        }
        // With a single source pixel every destination clamps to it.
        self.hi = self.hi.max(self.lo);
    }
}

/// Reusable tables and row buffers for [`resize_bilinear_with`]; keep one per thread to resize
/// without allocating.
#[derive(Debug, Default, Clone)]
pub struct ResizeScratch {
    x: AxisTable,
    y: AxisTable,
    /// Two horizontally interpolated rows (8.8 fixed point) and the source rows they hold.
    rows: [Vec<u16>; 2],
    row_src: [usize; 2],
}

/// Horizontal pass over one source row into 8.8 fixed point.
fn resize_row(src: &[u8], t: &AxisTable, out: &mut [u16]) {
    let first = u16::from(src[0]) << FRAC_BITS;
    let last = u16::from(src[src.len() - 1]) << FRAC_BITS;
    let (left, rest) = out.split_at_mut(t.lo);
    let (mid, right) = rest.split_at_mut(t.hi - t.lo);
    left.fill(first);
    for ((o, &i), &(w0, w1)) in mid
        .iter_mut()
        .zip(&t.offsets[t.lo..t.hi])
        .zip(&t.weights[t.lo..t.hi])
    {
        // w0 + w1 = 256 and pixels ≤ 255, so the sum fits 16 bits.
        *o = w0 * u16::from(src[i]) + w1 * u16::from(src[i + 1]);
    }
    right.fill(last);
}

/// Rounds an 8.8 fixed-point row back to bytes (rows clamped at the top or bottom).
fn round_row(row: &[u16], dst: &mut [u8]) {
    for (d, &v) in dst.iter_mut().zip(row) {
        *d = ((u32::from(v) + (1 << (FRAC_BITS - 1))) >> FRAC_BITS) as u8;
    }
}

/// Resizes `src` (`src_w × src_h`, row-major, no padding) into `dst` (`dst_w × dst_h`) like
/// OpenCV's `cv::resize(…, INTER_LINEAR_EXACT)`, reusing `scratch`'s buffers.
///
/// # Panics
/// If a size is zero or a slice is shorter than its size says (caller bugs, not bad input).
pub fn resize_bilinear_with(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    dst: &mut [u8],
    dst_w: usize,
    dst_h: usize,
    scratch: &mut ResizeScratch,
) {
    assert!(
        src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0,
        "resize_bilinear: empty size {src_w}x{src_h} -> {dst_w}x{dst_h}"
    );
    assert!(
        src.len() >= src_w * src_h,
        "resize_bilinear: source slice too short"
    );
    assert!(
        dst.len() >= dst_w * dst_h,
        "resize_bilinear: destination slice too short"
    );
    if src_w == dst_w && src_h == dst_h {
        dst[..src_w * src_h].copy_from_slice(&src[..src_w * src_h]);
        return;
    }
    let ResizeScratch {
        x,
        y,
        rows,
        row_src,
    } = scratch;
    x.build(src_w, dst_w);
    y.build(src_h, dst_h);
    for r in rows.iter_mut() {
        r.clear();
        r.resize(dst_w, 0);
    }
    *row_src = [usize::MAX; 2];
    let src_row = |i: usize| &src[i * src_w..(i + 1) * src_w];

    for (dy, out) in dst.chunks_exact_mut(dst_w).take(dst_h).enumerate() {
        if dy < y.lo || dy >= y.hi {
            let sy = if dy < y.lo { 0 } else { src_h - 1 };
            if row_src[0] != sy {
                resize_row(src_row(sy), x, &mut rows[0]);
                row_src[0] = sy;
            }
            round_row(&rows[0], out);
            continue;
        }
        let sy = y.offsets[dy];
        // Keep rows `sy` and `sy + 1` in slots 0 and 1, reusing what the previous row computed.
        if row_src[0] != sy {
            if row_src[1] == sy {
                rows.swap(0, 1);
                row_src.swap(0, 1);
            } else {
                resize_row(src_row(sy), x, &mut rows[0]);
                row_src[0] = sy;
            }
        }
        if row_src[1] != sy + 1 {
            resize_row(src_row(sy + 1), x, &mut rows[1]);
            row_src[1] = sy + 1;
        }
        let (w0, w1) = y.weights[dy];
        let (w0, w1) = (u32::from(w0), u32::from(w1));
        for ((d, &a), &b) in out.iter_mut().zip(&rows[0]).zip(&rows[1]) {
            // 16.16 fixed point; at most 255 · 2^16, so the rounded shift fits a byte.
            *d = ((u32::from(a) * w0 + u32::from(b) * w1 + (1 << 15)) >> 16) as u8;
        }
    }
}

/// Resizes `src` into `dst` like [`resize_bilinear_with`], with temporary buffers.
pub fn resize_bilinear(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    dst: &mut [u8],
    dst_w: usize,
    dst_h: usize,
) {
    resize_bilinear_with(
        src,
        src_w,
        src_h,
        dst,
        dst_w,
        dst_h,
        &mut ResizeScratch::default(),
    );
}

/// Resizes a gray image to `width × height` (both > 0) like OpenCV's `INTER_LINEAR_EXACT`.
pub fn resize_gray(src: &GrayImage, width: u32, height: u32) -> GrayImage {
    let mut out = GrayImage::new(width, height);
    if width == 0 || height == 0 || src.width() == 0 || src.height() == 0 {
        return out;
    }
    resize_bilinear(
        src.as_raw(),
        src.width() as usize,
        src.height() as usize,
        &mut out,
        width as usize,
        height as usize,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 7x5 test pattern `(i · 37) mod 256`, row-major.
    fn pattern() -> Vec<u8> {
        (0..35u32).map(|i| ((i * 37) % 256) as u8).collect()
    }

    fn resize(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
        let mut out = vec![0; dw * dh];
        resize_bilinear(src, sw, sh, &mut out, dw, dh);
        out
    }

    #[test]
    fn matches_opencv_linear_exact_downscales() {
        // Expected values from OpenCV 4.14 (opencv-python-headless 4.14.0.94):
        //   src = (np.arange(35).reshape(5, 7) * 37 % 256).astype(np.uint8)
        //   cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR_EXACT)
        let src = pattern();
        let cases: [(usize, usize, &[u8]); 5] = [
            (
                4,
                3,
                &[15, 80, 144, 209, 20, 85, 149, 214, 25, 90, 154, 219],
            ),
            (
                5,
                4,
                &[
                    8, 60, 111, 163, 215, 11, 63, 115, 167, 219, 15, 67, 119, 171, 223, 19, 71,
                    123, 174, 226,
                ],
            ),
            (3, 2, &[27, 113, 200, 34, 121, 207]),
            (
                6,
                5,
                &[
                    3, 46, 89, 133, 176, 219, 6, 49, 92, 136, 179, 222, 9, 52, 95, 139, 182, 225,
                    12, 55, 98, 142, 185, 228, 15, 58, 101, 145, 188, 231,
                ],
            ),
            (2, 1, &[52, 182]),
        ];
        for (w, h, want) in cases {
            assert_eq!(resize(&src, 7, 5, w, h), want, "7x5 -> {w}x{h}");
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let src = pattern();
        assert_eq!(resize(&src, 7, 5, 7, 5), src);
    }

    #[test]
    fn exact_halving_averages_two_by_two_blocks() {
        // OpenCV switches to INTER_AREA for an exact 2x shrink because the results agree:
        // (a + b + c + d + 2) >> 2.
        let src: Vec<u8> = vec![0, 10, 200, 255, 1, 3, 100, 50];
        assert_eq!(resize(&src, 4, 2, 2, 1), vec![4, 151]);
    }

    #[test]
    fn upscaling_a_single_pixel_repeats_it() {
        assert_eq!(resize(&[77], 1, 1, 3, 2), vec![77; 6]);
    }

    #[test]
    fn scratch_reuse_gives_the_same_result() {
        let src = pattern();
        let mut scratch = ResizeScratch::default();
        let mut a = vec![0; 12];
        let mut b = vec![0; 4];
        resize_bilinear_with(&src, 7, 5, &mut a, 4, 3, &mut scratch);
        resize_bilinear_with(&src, 7, 5, &mut b, 2, 2, &mut scratch);
        resize_bilinear_with(&src, 7, 5, &mut a, 4, 3, &mut scratch);
        assert_eq!(a, resize(&src, 7, 5, 4, 3));
        assert_eq!(b, resize(&src, 7, 5, 2, 2));
    }
}
