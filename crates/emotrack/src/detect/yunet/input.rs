//! From an RGB picture to YuNet's input: a region shrunk by a whole factor, as planar `f32`,
//! zero-padded to the network's alignment.

use emotrack_nn::Tensor;

use super::net::ALIGN;
use crate::imgproc::RgbView;
use crate::imgproc::area::Region;

/// Writes `region` of `image`, shrunk by the whole factor `k` (each value the mean of a `k` x
/// `k` block, so nothing aliases), into `input` as `[1, 3, H, W]` planes R, G, B of values
/// 0..255, zero-padded on the right and bottom to `H`, `W` multiples of [`ALIGN`]. The
/// picture is `region.w / k` x `region.h / k` (a last partial block is dropped: at most `k - 1`
/// pixels), and network pixel `(x, y)` is image pixel `(region.x + k·x, region.y + k·y)`.
/// Returns the picture's size in network pixels; `(0, 0)` (and `input` untouched) when the
/// region is smaller than one block.
///
/// `sums` is scratch for one output row's block sums.
///
/// # Panics
/// If `region` is not inside the image or `k` is 0.
pub(super) fn fill_input(
    image: &RgbView<'_>,
    region: Region,
    k: u32,
    input: &mut Tensor,
    sums: &mut Vec<u32>,
) -> (usize, usize) {
    assert!(k >= 1, "shrink factor 0");
    assert!(
        region.x + region.w <= image.width() && region.y + region.h <= image.height(),
        "region {region:?} outside a {}x{} image",
        image.width(),
        image.height()
    );
    let (ow, oh) = ((region.w / k) as usize, (region.h / k) as usize);
    if ow == 0 || oh == 0 {
        return (0, 0);
    }
    let (pw, ph) = (ow.next_multiple_of(ALIGN), oh.next_multiple_of(ALIGN));
    input.resize([1, 3, ph, pw]);
    input.fill(0.0);
    let k = k as usize;
    let stride = image.width() as usize * 3;
    let raw = image.as_raw();
    // The region's pixels of image row `y`, interleaved RGB.
    let row = |y: usize| {
        let start = (region.y as usize + y) * stride + region.x as usize * 3;
        &raw[start..start + ow * k * 3]
    };
    let plane_len = ph * pw;
    let planes = input.data_mut();
    if k == 1 {
        for y in 0..oh {
            for (x, px) in row(y).chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    planes[c * plane_len + y * pw + x] = f32::from(v);
                }
            }
        }
        return (ow, oh);
    }
    // Block sums of u8 values: exact integers, far below 2^24 for any sensible factor, so the
    // mean is exact to f32's rounding.
    let scale = 1.0 / (k * k) as f32;
    sums.clear();
    sums.resize(3 * ow, 0);
    for y in 0..oh {
        sums.fill(0);
        for dy in 0..k {
            for (sum, block) in sums
                .chunks_exact_mut(3)
                .zip(row(y * k + dy).chunks_exact(3 * k))
            {
                for px in block.chunks_exact(3) {
                    for (s, &v) in sum.iter_mut().zip(px) {
                        *s += u32::from(v);
                    }
                }
            }
        }
        for (x, sum) in sums.chunks_exact(3).enumerate() {
            for (c, &s) in sum.iter().enumerate() {
                planes[c * plane_len + y * pw + x] = s as f32 * scale;
            }
        }
    }
    (ow, oh)
}

/// The smallest region holding every pixel of `image` that is not black (0, 0, 0); `None`
/// when the whole picture is black. Letterboxed frames (the video decoder's black bars) give
/// the picture between the bars.
pub(super) fn not_black(image: &RgbView<'_>) -> Option<Region> {
    let w = image.width() as usize;
    let rows = || image.as_raw().chunks_exact(w * 3);
    let lit = |row: &[u8]| row.iter().any(|&v| v != 0);
    let top = rows().position(lit)?;
    let bottom = rows().rposition(lit).map_or(top, |y| y + 1);
    // Columns: the first and last lit pixel over the picture's rows.
    let column_lit = |x: usize| {
        rows()
            .skip(top)
            .take(bottom - top)
            .any(|r| r[3 * x..3 * x + 3] != [0, 0, 0])
    };
    let left = (0..w).find(|&x| column_lit(x)).unwrap_or(0);
    let right = (left..w)
        .rev()
        .find(|&x| column_lit(x))
        .map_or(w, |x| x + 1);
    Some(Region {
        x: left as u32,
        y: top as u32,
        w: (right - left) as u32,
        h: (bottom - top) as u32,
    })
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::imgproc::AsRgbView;

    #[test]
    fn the_picture_between_black_bars_is_found() {
        let mut image = RgbImage::new(9, 7);
        assert_eq!(not_black(&image.as_rgb_view()), None);
        image.put_pixel(2, 1, image::Rgb([0, 0, 1]));
        image.put_pixel(6, 4, image::Rgb([5, 0, 0]));
        let region = Region {
            x: 2,
            y: 1,
            w: 5,
            h: 4,
        };
        assert_eq!(not_black(&image.as_rgb_view()), Some(region));
        let full = RgbImage::from_pixel(3, 2, image::Rgb([1, 1, 1]));
        assert_eq!(not_black(&full.as_rgb_view()), Some(Region::full(&full)));
    }

    #[test]
    fn a_region_is_shrunk_by_block_means_and_padded_with_zeros() {
        // 7 x 5 picture, each channel a different ramp.
        let image = RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb([(x * 10 + y) as u8, (y * 7) as u8, 200])
        });
        let region = Region {
            x: 1,
            y: 1,
            w: 6,
            h: 4,
        };
        let (mut input, mut sums) = (Tensor::new(), Vec::new());
        assert_eq!(
            fill_input(&image.as_rgb_view(), region, 2, &mut input, &mut sums),
            (3, 2)
        );
        assert_eq!(input.shape(), [1, 3, 32, 32]);
        // Network pixel (1, 1) is the block of image pixels x 3..5, y 3..5.
        let mean = |c: usize| {
            let mut s = 0.0;
            for y in 3..5 {
                for x in 3..5 {
                    s += f32::from(image.get_pixel(x, y)[c]);
                }
            }
            s / 4.0
        };
        for c in 0..3 {
            let plane = input.plane(0, c);
            assert_eq!(plane[32 + 1], mean(c), "channel {c}");
            // Padding: right of the picture, and below it.
            assert_eq!(plane[3], 0.0);
            assert_eq!(plane[2 * 32], 0.0);
        }
        // Factor 1 copies; a region smaller than a block gives nothing.
        assert_eq!(
            fill_input(
                &image.as_rgb_view(),
                Region::full(&image),
                1,
                &mut input,
                &mut sums
            ),
            (7, 5)
        );
        assert_eq!(
            input.plane(0, 1)[4 * 32 + 6],
            f32::from(image.get_pixel(6, 4)[1])
        );
        let tiny = Region {
            x: 0,
            y: 0,
            w: 2,
            h: 2,
        };
        assert_eq!(
            fill_input(&image.as_rgb_view(), tiny, 3, &mut input, &mut sums),
            (0, 0)
        );
    }
}
