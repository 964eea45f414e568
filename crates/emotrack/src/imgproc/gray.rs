//! RGB to 8-bit gray, bit-exact with OpenCV's `cvtColor(…, COLOR_RGB2GRAY)` on `u8`.
//!
//! OpenCV 4 converts `u8` colour with 15-bit fixed-point weights of the BT.601 luma formula
//! (`0.299 R + 0.587 G + 0.114 B`): `(9798 R + 19235 G + 3735 B + 2^14) >> 15`. The weights sum
//! to exactly `2^15`, so white stays 255. We use the same integers so that the Haar detector sees
//! the very pixels OpenCV's `detectMultiScale` sees; a float formula differs by one gray level on
//! about 0.3% of pixels, which is enough to flip borderline detection windows.
//!
//! Written by hand: `image`'s `to_luma8` uses different (float, Rec. 709) weights.

use image::GrayImage;

use crate::imgproc::area::Region;
use crate::imgproc::view::region_rows;
use crate::imgproc::{AsRgbView, RgbView};

/// Fixed-point weight of red (`0.299 · 2^15`, rounded as OpenCV does).
const R_WEIGHT: u32 = 9798;
/// Fixed-point weight of green (`0.587 · 2^15`).
const G_WEIGHT: u32 = 19235;
/// Fixed-point weight of blue (`0.114 · 2^15`).
const B_WEIGHT: u32 = 3735;
/// Fractional bits of the weights.
const SHIFT: u32 = 15;
/// Half of the last unit, so that the shift rounds to nearest.
const ROUND: u32 = 1 << (SHIFT - 1);

/// The gray level of one RGB pixel.
#[inline]
pub fn gray_of(r: u8, g: u8, b: u8) -> u8 {
    // At most (2^15 · 255 + 2^14) >> 15 = 255, so the cast never truncates.
    ((u32::from(r) * R_WEIGHT + u32::from(g) * G_WEIGHT + u32::from(b) * B_WEIGHT + ROUND) >> SHIFT)
        as u8
}

/// Converts packed RGB bytes (`3 · n` of them) into `n` gray bytes.
///
/// # Panics
/// If `dst.len() * 3 != rgb.len()` (a caller bug, not bad input).
pub fn gray_from_rgb_slice(rgb: &[u8], dst: &mut [u8]) {
    assert_eq!(
        rgb.len(),
        dst.len() * 3,
        "gray_from_rgb_slice: {} RGB bytes cannot fill {} gray pixels",
        rgb.len(),
        dst.len()
    );
    for (px, out) in rgb.chunks_exact(3).zip(dst.iter_mut()) {
        *out = gray_of(px[0], px[1], px[2]);
    }
}

/// Converts an RGB image to gray into a buffer the caller owns (resized to `width · height`).
pub fn gray_from_rgb_into(src: &impl AsRgbView, dst: &mut Vec<u8>) {
    let src = src.as_rgb_view();
    let n = src.width() as usize * src.height() as usize;
    dst.clear();
    dst.resize(n, 0);
    gray_from_rgb_slice(src.as_raw(), dst);
}

/// The gray pixels of `region` of an RGB image, row by row.
///
/// # Panics
/// If `region` is not inside the image.
pub fn gray_of_region(image: &RgbView<'_>, region: Region) -> GrayImage {
    let mut gray = GrayImage::new(region.w, region.h);
    let rows = region_rows(image, region);
    for (src, dst) in rows.zip(gray.chunks_exact_mut(region.w.max(1) as usize)) {
        gray_from_rgb_slice(src, dst);
    }
    gray
}

/// Converts an RGB image to a new gray image.
pub fn gray_from_rgb(src: &impl AsRgbView) -> GrayImage {
    let src = src.as_rgb_view();
    let mut buf = Vec::new();
    gray_from_rgb_into(&src, &mut buf);
    // The buffer has exactly width · height bytes, so `from_raw` cannot fail; fall back to an
    // empty image rather than panic to keep the function total.
    GrayImage::from_raw(src.width(), src.height(), buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;

    #[test]
    fn weights_sum_to_one_so_white_and_black_are_kept() {
        assert_eq!(R_WEIGHT + G_WEIGHT + B_WEIGHT, 1 << SHIFT);
        assert_eq!(gray_of(255, 255, 255), 255);
        assert_eq!(gray_of(0, 0, 0), 0);
        for v in 0..=255u8 {
            assert_eq!(gray_of(v, v, v), v, "a gray pixel keeps its level");
        }
    }

    #[test]
    fn matches_opencv_cvtcolor_values() {
        // Expected values from OpenCV 4.14 (opencv-python-headless 4.14.0.94):
        //   cv2.cvtColor(np.array([[[r, g, b]]], np.uint8), cv2.COLOR_RGB2GRAY)
        let cases: [([u8; 3], u8); 6] = [
            ([255, 0, 0], 76),
            ([0, 255, 0], 150),
            ([0, 0, 255], 29),
            ([10, 200, 30], 124),
            ([123, 45, 67], 71),
            ([1, 2, 3], 2),
        ];
        for ([r, g, b], want) in cases {
            assert_eq!(gray_of(r, g, b), want, "rgb({r}, {g}, {b})");
        }
    }

    #[test]
    fn image_conversion_keeps_size_and_pixel_order() {
        let img = RgbImage::from_fn(3, 2, |x, y| {
            image::Rgb([(x * 80) as u8, (y * 100) as u8, 7])
        });
        let gray = gray_from_rgb(&img);
        assert_eq!(gray.dimensions(), (3, 2));
        for (x, y, p) in gray.enumerate_pixels() {
            let c = img.get_pixel(x, y).0;
            assert_eq!(p.0[0], gray_of(c[0], c[1], c[2]));
        }
    }
}
