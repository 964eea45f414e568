//! Area resampling (adaptive average pooling) of an RGB region into planar `f32`, bit-exact with
//! PyTorch's `F.interpolate(x, size, mode="area")` on a float image of `u8` values.
//!
//! Written by hand because no image crate implements PyTorch's window rule, which MTCNN's
//! weights were trained with (and facenet-pytorch's detector uses for its pyramid and crops):
//! output pixel `i` of `O` averages input pixels `floor(i·I/O) .. ceil((i+1)·I/O)`, so windows
//! overlap when `I/O` is not an integer and are never weighted by partial coverage (unlike
//! OpenCV's `INTER_AREA` or a box filter). Sums of `u8` values are exact integers, and the mean
//! is `sum / kh / kw` in `f32`, PyTorch's own order of operations, so results match to the bit.

use image::GenericImageView;

use crate::imgproc::RgbView;

/// A rectangle of pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Region {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub w: u32,
    /// Height in pixels.
    pub h: u32,
}

impl Region {
    /// The whole image.
    pub fn full(image: &impl GenericImageView) -> Self {
        Self {
            x: 0,
            y: 0,
            w: image.width(),
            h: image.height(),
        }
    }

    /// The smallest region holding both.
    pub fn union(self, other: Self) -> Self {
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        Self {
            x,
            y,
            w: (self.x + self.w).max(other.x + other.w) - x,
            h: (self.y + self.h).max(other.y + other.h) - y,
        }
    }
}

/// Input window `[start, end)` of output index `i` when `input` samples shrink or grow to
/// `output` (PyTorch's `start_index` / `end_index` of adaptive pooling).
fn window(i: usize, input: usize, output: usize) -> (usize, usize) {
    let start = (i * input) / output;
    let end = ((i + 1) * input).div_ceil(output);
    (start, end)
}

/// A summed-area table (integral image) of one region of an RGB image, from which any area
/// resampling inside that region costs four look-ups per output value, whatever the window size.
///
/// MTCNN resamples one image many times: a dozen pyramid levels of the whole frame and a few
/// hundred crops, some as large as the frame. Summing each window afresh cost a tenth of the
/// detector's time; with one table per frame it is a small part. Sums are exact integers, so
/// the means are still PyTorch's to the bit. The table takes 12 bytes per pixel of the region
/// (3.7 MB for a 640x480 frame) and keeps its memory between [`AreaSums::fill`] calls.
#[derive(Debug, Default)]
pub struct AreaSums {
    /// The summed region, in image pixels.
    region: Region,
    /// `[(h + 1)][(w + 1)][3]`: entry `(y, x, c)` is the sum of channel `c` over the region's
    /// rows `0..y` and columns `0..x`, modulo 2³² (window sums, far smaller, come out exact).
    sums: Vec<u32>,
}

impl AreaSums {
    /// The summed region.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Sums `region` of `image` into this table, reusing its memory.
    ///
    /// # Panics
    /// If `region` is not inside the image.
    pub fn fill(&mut self, image: &RgbView<'_>, region: Region) {
        assert!(
            region.x + region.w <= image.width() && region.y + region.h <= image.height(),
            "region {region:?} outside a {}x{} image",
            image.width(),
            image.height()
        );
        let (w, h) = (region.w as usize, region.h as usize);
        let line = (w + 1) * 3;
        self.region = region;
        self.sums.clear();
        self.sums.resize(line * (h + 1), 0);
        let stride = image.width() as usize * 3;
        let raw = image.as_raw();
        for y in 0..h {
            let start = (region.y as usize + y) * stride + region.x as usize * 3;
            let pixels = &raw[start..start + w * 3];
            let (above, below) = self.sums.split_at_mut((y + 1) * line);
            let above = &above[y * line..];
            let row = &mut below[..line];
            let mut running = [0u32; 3];
            for (x, px) in pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    running[c] = running[c].wrapping_add(u32::from(px[c]));
                    let i = (x + 1) * 3 + c;
                    row[i] = above[i].wrapping_add(running[c]);
                }
            }
        }
    }

    /// Resizes `region` (in image pixels, inside the summed region) to `out_w x out_h` by area
    /// averaging and writes it planar (`[3, out_h, out_w]`, R then G then B) into `out`, mapping
    /// each mean `m` to `(m - offset) * scale` (MTCNN: `offset = 127.5`, `scale = 1/128`).
    ///
    /// Nothing is written when the region or the output is empty.
    ///
    /// # Panics
    /// If `region` is not inside the summed region or `out` is shorter than
    /// `3 * out_h * out_w`.
    #[allow(clippy::too_many_arguments)] // an image op's natural inputs; a struct would only rename them
    pub fn resize_planar(
        &self,
        region: Region,
        out_w: usize,
        out_h: usize,
        offset: f32,
        scale: f32,
        out: &mut [f32],
    ) {
        let whole = Region {
            x: 0,
            y: 0,
            w: out_w as u32,
            h: out_h as u32,
        };
        self.resize_planar_window(region, (out_w, out_h), whole, (offset, scale), out);
    }

    /// [`AreaSums::resize_planar`] computing only `window` of the `out_w x out_h` result
    /// (`[3, window.h, window.w]` written to `out`): the same values as the window cut from the
    /// whole result.
    ///
    /// # Panics
    /// If `region` is not inside the summed region, `window` not inside the result, or `out`
    /// shorter than `3 * window.h * window.w`.
    pub fn resize_planar_window(
        &self,
        region: Region,
        (out_w, out_h): (usize, usize),
        window_out: Region,
        (offset, scale): (f32, f32),
        out: &mut [f32],
    ) {
        let (rw, rh) = (region.w as usize, region.h as usize);
        let (cols, rows) = (
            window_out.x as usize..(window_out.x + window_out.w) as usize,
            window_out.y as usize..(window_out.y + window_out.h) as usize,
        );
        if rw == 0 || rh == 0 || cols.is_empty() || rows.is_empty() {
            return;
        }
        assert!(
            cols.end <= out_w && rows.end <= out_h,
            "window {window_out:?} outside the {out_w}x{out_h} result"
        );
        let table = self.region;
        assert!(
            region.x >= table.x
                && region.y >= table.y
                && region.x + region.w <= table.x + table.w
                && region.y + region.h <= table.y + table.h,
            "region {region:?} outside the summed {table:?}"
        );
        let ww = cols.len();
        let plane = ww * rows.len();
        assert!(out.len() >= 3 * plane, "output buffer too small");
        let line = (table.w as usize + 1) * 3;
        let (dx, dy) = ((region.x - table.x) as usize, (region.y - table.y) as usize);
        // Each output column's window, as offsets of its first and one-past-last column, and
        // its width.
        let (columns, widths): (Vec<(usize, usize)>, Vec<f32>) = cols
            .map(|ox| {
                let (x0, x1) = window(ox, rw, out_w);
                (((dx + x0) * 3, (dx + x1) * 3), (x1 - x0) as f32)
            })
            .unzip();
        // One output row's window sums, planar. They are exact integers below 2^24 (a window
        // of 255s would need 65 793 pixels to pass it), so exact as `i32` and as `f32`.
        let mut sums = vec![0i32; 3 * ww];
        let (out_r, rest) = out.split_at_mut(plane);
        let (out_g, out_b) = rest.split_at_mut(plane);
        for (r, oy) in rows.enumerate() {
            let (y0, y1) = window(oy, rh, out_h);
            let top = &self.sums[(dy + y0) * line..][..line];
            let bottom = &self.sums[(dy + y1) * line..][..line];
            for (ox, &(x0, x1)) in columns.iter().enumerate() {
                for c in 0..3 {
                    let sum = bottom[x1 + c]
                        .wrapping_sub(bottom[x0 + c])
                        .wrapping_sub(top[x1 + c])
                        .wrapping_add(top[x0 + c]);
                    sums[c * ww + ox] = sum as i32;
                }
            }
            // The mean is `sum / kh / kw` in f32, PyTorch's order of operations; this pass
            // vectorises.
            let kh = (y1 - y0) as f32;
            let row = r * ww..(r + 1) * ww;
            for (channel, sums) in [
                &mut out_r[row.clone()],
                &mut out_g[row.clone()],
                &mut out_b[row],
            ]
            .into_iter()
            .zip(sums.chunks_exact(ww))
            {
                for ((o, &sum), &kw) in channel.iter_mut().zip(sums).zip(&widths) {
                    *o = (sum as f32 / kh / kw - offset) * scale;
                }
            }
        }
    }

    /// The smallest part of the summed region holding every pixel that is not black (0, 0, 0),
    /// relative to the summed region; `None` when all of it is black. Letterboxed frames (the
    /// video decoder's black bars) give the picture between the bars.
    pub fn not_black(&self) -> Option<Region> {
        let (w, h) = (self.region.w as usize, self.region.h as usize);
        let line = (w + 1) * 3;
        let at = |y: usize, x: usize| &self.sums[y * line + x * 3..][..3];
        // Pixels are never negative, so a row or column is black when its sums are 0.
        let zero = |a: &[u32], b: &[u32], c: &[u32], d: &[u32]| {
            (0..3).all(|k| {
                d[k].wrapping_sub(c[k])
                    .wrapping_sub(b[k])
                    .wrapping_add(a[k])
                    == 0
            })
        };
        let row_black = |y: usize| zero(at(y, 0), at(y, w), at(y + 1, 0), at(y + 1, w));
        let column_black = |x: usize| zero(at(0, x), at(0, x + 1), at(h, x), at(h, x + 1));
        let top = (0..h).find(|&y| !row_black(y))?;
        let bottom = (0..h).rev().find(|&y| !row_black(y)).unwrap_or(top);
        let left = (0..w).find(|&x| !column_black(x)).unwrap_or(0);
        let right = (0..w).rev().find(|&x| !column_black(x)).unwrap_or(left);
        Some(Region {
            x: left as u32,
            y: top as u32,
            w: (right + 1 - left) as u32,
            h: (bottom + 1 - top) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::imgproc::AsRgbView;

    /// A deterministic test image with values spread over 0..=255.
    fn image(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                ((x * 37 + y * 11) % 256) as u8,
                ((x * 5 + y * 53 + 7) % 256) as u8,
                ((x * y + 3 * x) % 256) as u8,
            ])
        })
    }

    fn sums(img: &RgbImage, region: Region) -> AreaSums {
        let mut table = AreaSums::default();
        table.fill(&img.as_rgb_view(), region);
        table
    }

    #[test]
    fn the_picture_between_black_bars_is_found() {
        let mut img = RgbImage::new(9, 7);
        img.put_pixel(2, 1, image::Rgb([0, 0, 1]));
        img.put_pixel(6, 4, image::Rgb([5, 0, 0]));
        let table = sums(&img, Region::full(&img));
        let expected = Region {
            x: 2,
            y: 1,
            w: 5,
            h: 4,
        };
        assert_eq!(table.not_black(), Some(expected));
        // Relative to the summed region.
        let inner = Region {
            x: 1,
            y: 1,
            w: 7,
            h: 5,
        };
        let part = sums(&img, inner);
        assert_eq!(part.not_black().map(|r| (r.x, r.y)), Some((1, 0)));
        let black = RgbImage::new(4, 3);
        assert_eq!(sums(&black, Region::full(&black)).not_black(), None);
    }

    #[test]
    fn a_window_of_the_result_equals_the_same_window_cut_from_it() {
        let img = image(37, 23);
        let table = sums(&img, Region::full(&img));
        let (ow, oh) = (17, 11);
        let mut whole = vec![0.0; 3 * ow * oh];
        table.resize_planar(Region::full(&img), ow, oh, 127.5, 0.0078125, &mut whole);
        let window = Region {
            x: 3,
            y: 2,
            w: 9,
            h: 6,
        };
        let mut part = vec![0.0; 3 * 9 * 6];
        table.resize_planar_window(
            Region::full(&img),
            (ow, oh),
            window,
            (127.5, 0.0078125),
            &mut part,
        );
        for c in 0..3 {
            for y in 0..6 {
                for x in 0..9 {
                    assert_eq!(
                        part[(c * 6 + y) * 9 + x],
                        whole[(c * oh + y + 2) * ow + x + 3],
                        "channel {c}, ({x}, {y})"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_pytorch_area_interpolation_bit_for_bit() {
        // import torch
        // w, h = 7, 5
        // img = torch.tensor([[[(x*37+y*11) % 256, (x*5+y*53+7) % 256, (x*y+3*x) % 256]
        //                      for x in range(w)] for y in range(h)], dtype=torch.uint8)
        // t = img[None].permute(0, 3, 1, 2).float()
        // print(torch.nn.functional.interpolate(t, size=(3, 4), mode="area").flatten().tolist())
        let expected: [f32; 36] = [
            24.0, 79.5, 153.5, 209.0, 40.5, 96.0, 170.0, 225.5, 57.0, 112.5, 186.5, 178.0, 36.0,
            43.5, 53.5, 61.0, 115.5, 123.0, 133.0, 140.5, 195.0, 202.5, 212.5, 220.0, 1.75, 7.0,
            14.0, 19.25, 2.5, 10.0, 20.0, 27.5, 3.25, 13.0, 26.0, 35.75,
        ];
        let img = image(7, 5);
        let mut out = vec![0.0; 36];
        sums(&img, Region::full(&img)).resize_planar(Region::full(&img), 4, 3, 0.0, 1.0, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn upsampling_and_regions_follow_the_same_windows() {
        // import torch  (same image as above)
        // t = ... ; print(torch.nn.functional.interpolate(t[:, :, 1:4, 2:4], size=(4, 3), mode="area")
        //                 .sub(127.5).mul(0.0078125).flatten().tolist())
        let expected: [f32; 36] = [
            -0.332_031_25,
            -0.1875,
            -0.042_968_75,
            -0.289_062_5,
            -0.144_531_25,
            0.0,
            -0.203_125,
            -0.058_593_75,
            0.085_937_5,
            -0.160_156_25,
            -0.015_625,
            0.128_906_25,
            -0.449_218_75,
            -0.429_687_5,
            -0.410_156_25,
            -0.242_187_5,
            -0.222_656_25,
            -0.203_125,
            0.171_875,
            0.191_406_25,
            0.210_937_5,
            0.378_906_25,
            0.398_437_5,
            0.417_968_75,
            -0.933_593_75,
            -0.917_968_75,
            -0.902_343_75,
            -0.925_781_25,
            -0.908_203_1,
            -0.890_625,
            -0.910_156_25,
            -0.888_671_9,
            -0.867_187_5,
            -0.902_343_75,
            -0.878_906_25,
            -0.855_468_75,
        ];
        let img = image(7, 5);
        let region = Region {
            x: 2,
            y: 1,
            w: 2,
            h: 3,
        };
        let mut out = vec![0.0; 36];
        // The same from a table of the whole image and from one of a region around it.
        for table in [
            Region::full(&img),
            Region {
                x: 1,
                y: 0,
                w: 4,
                h: 5,
            },
        ] {
            sums(&img, table).resize_planar(region, 3, 4, 127.5, 0.0078125, &mut out);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn windows_cover_the_input_and_overlap_like_pytorch() {
        assert_eq!(window(0, 5, 3), (0, 2));
        assert_eq!(window(1, 5, 3), (1, 4));
        assert_eq!(window(2, 5, 3), (3, 5));
        assert_eq!(window(0, 2, 3), (0, 1));
        assert_eq!(window(1, 2, 3), (0, 2));
        assert_eq!(window(2, 2, 3), (1, 2));
    }
}
