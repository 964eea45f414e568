//! Face crops for the classifier: level the eye line (when landmarks are known), take a square
//! around the face with a margin, and resample it to the classifier's input size in grayscale.
//!
//! This is the one function training and inference share: FER-2013 images are already such
//! crops, so training feeds them as they are, and inference makes the same kind of crop.

use image::{GrayImage, Luma};

use super::area::Region;
use super::gray::gray_of_region;
use super::view::{AsRgbView, RgbView};
use crate::types::Detection;

/// Extra context around the detector's box, as a fraction of its larger side. FER-2013 crops
/// show the whole face from just above the eyebrows to the chin with a little background;
/// MTCNN and Haar boxes are tighter, so a small margin brings them closer to the training data.
pub const DEFAULT_MARGIN: f32 = 0.1;

/// How to crop a face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropSettings {
    /// Output side in pixels (the classifier's `input_size`).
    pub size: u32,
    /// Margin as a fraction of the box's larger side, added on every edge.
    pub margin: f32,
    /// Rotate so that the eyes are level when landmarks are available.
    pub align: bool,
}

impl Default for CropSettings {
    fn default() -> Self {
        Self {
            size: 48,
            margin: DEFAULT_MARGIN,
            align: true,
        }
    }
}

/// Crops, aligns and resizes one face of an RGB image to a gray `size` x `size` crop.
///
/// The crop is a square of side `max(w, h) * (1 + 2 * margin)` centred on the box, rotated by
/// the eye-line angle when `align` is set and landmarks are present. Pixels outside the image
/// repeat the nearest edge pixel. Sampling is bilinear, with a box pre-filter when shrinking a
/// lot (by averaging `k x k` source samples per output pixel) so small crops do not alias.
///
/// Only the pixels the square covers are converted to gray (a face is a small part of a video
/// frame): the crop is the same, bit for bit, as one cut from the whole picture made gray.
pub fn face_crop(image: &impl AsRgbView, face: &Detection, settings: &CropSettings) -> GrayImage {
    let image = image.as_rgb_view();
    let mut out = GrayImage::new(settings.size, settings.size);
    let Some(region) = source_region(&image, face, settings) else {
        return out;
    };
    let gray = gray_of_region(&image, region);
    crop_gray(&gray, (region.x, region.y), face, settings, &mut out);
    out
}

/// Where a face's crop is cut from: centre, side and rotation of its square.
struct Square {
    cx: f32,
    cy: f32,
    side: f32,
    sin: f32,
    cos: f32,
}

impl Square {
    fn of(face: &Detection, settings: &CropSettings) -> Self {
        let b = face.bbox;
        let (cx, cy) = b.center();
        let side = b.w.max(b.h).max(1.0) * (1.0 + 2.0 * settings.margin);
        let angle = match (settings.align, face.landmarks) {
            (true, Some(lm)) => {
                let [lx, ly] = lm.left_eye();
                let [rx, ry] = lm.right_eye();
                (ry - ly).atan2(rx - lx)
            }
            _ => 0.0,
        };
        let (sin, cos) = angle.sin_cos();
        Self {
            cx,
            cy,
            side,
            sin,
            cos,
        }
    }

    /// How far from the centre, along either axis, the crop's samples lie (half the rotated
    /// square's extent), plus two pixels: bilinear sampling reads around a point shifted half a
    /// pixel to pixel centres, so 1.5 px of slack remain below and 0.5 px above.
    fn reach(&self) -> f32 {
        self.side.abs() / 2.0 * (self.sin.abs() + self.cos.abs()) + 2.0
    }
}

/// The pixels of `image` the crop of `face` reads: the bounding box of its rotated square with
/// the slack of [`Square::reach`], within the image (at least its nearest pixel, whose value
/// the crop repeats when the square lies outside). `None` for an empty image or a box that is
/// not finite.
fn source_region(image: &RgbView<'_>, face: &Detection, settings: &CropSettings) -> Option<Region> {
    let (w, h) = image.dimensions();
    let square = Square::of(face, settings);
    let (cx, cy, reach) = (square.cx, square.cy, square.reach());
    if w == 0 || h == 0 || !(reach.is_finite() && cx.is_finite() && cy.is_finite()) {
        return None;
    }
    // Float-to-int casts saturate, so far-away boxes clamp to the image's edge.
    let span = |c: f32, len: u32| {
        let first = ((c - reach).floor().max(0.0) as u32).min(len - 1);
        let end = ((c + reach).ceil().max(0.0) as u32).clamp(first + 1, len);
        (first, end - first)
    };
    let ((x, w), (y, h)) = (span(cx, w), span(cy, h));
    Some(Region { x, y, w, h })
}

/// Crops, aligns and resizes one face into `out` (whose size sets the output size) from `gray`,
/// the part of the picture whose top-left pixel is at `origin` (see [`face_crop`]).
fn crop_gray(
    gray: &GrayImage,
    origin: (u32, u32),
    face: &Detection,
    settings: &CropSettings,
    out: &mut GrayImage,
) {
    let (iw, ih) = gray.dimensions();
    let (ow, oh) = out.dimensions();
    if iw == 0 || ih == 0 || ow == 0 || oh == 0 {
        return;
    }
    let Square {
        cx,
        cy,
        side,
        sin,
        cos,
    } = Square::of(face, settings);
    // Whole numbers no larger than the sample coordinates they are subtracted from (the region
    // holds every sample; samples before it are clamped at 0, where the origin is 0), so the
    // subtraction is exact and the crop equals one from the whole picture.
    let (ox, oy) = (origin.0 as f32, origin.1 as f32);
    // Output pixel (u, v) maps to the source point centre + R(angle) * ((u, v) - half) * step.
    let step = side / ow as f32;
    // Supersampling factor: how many source samples per output pixel along each axis.
    let k = (step.floor() as usize).clamp(1, 4);
    let sub = step / k as f32;
    let half = ow as f32 / 2.0;
    let inv = 1.0 / (k * k) as f32;
    for v in 0..oh {
        for u in 0..ow {
            let mut acc = 0.0;
            for sj in 0..k {
                for si in 0..k {
                    let dx = (u as f32 - half) * step + (si as f32 + 0.5) * sub;
                    let dy = (v as f32 - half) * step + (sj as f32 + 0.5) * sub;
                    let sx = cx + cos * dx - sin * dy;
                    let sy = cy + sin * dx + cos * dy;
                    acc += bilinear(gray, sx - 0.5 - ox, sy - 0.5 - oy);
                }
            }
            out.put_pixel(u, v, Luma([(acc * inv).round().clamp(0.0, 255.0) as u8]));
        }
    }
}

/// A face that is already cut out (a FER-2013 image, a face a caller's own detector found) as
/// the classifier's `side` x `side` input: unchanged when it has that size, otherwise resized
/// whole (aspect ratio not kept) with a triangle (bilinear) filter. This is how `emotrack eval`
/// and training read a dataset's images, and how [`crate::Analyzer::classify_crops`] reads a
/// caller's crops. An empty crop gives a black input.
pub fn crop_as_input(crop: GrayImage, side: u32) -> GrayImage {
    if crop.dimensions() == (side, side) {
        return crop;
    }
    if crop.width() == 0 || crop.height() == 0 {
        return GrayImage::new(side, side);
    }
    image::imageops::resize(&crop, side, side, image::imageops::FilterType::Triangle)
}

/// Bilinear sample at continuous pixel coordinates (pixel centres at integers), edges clamped.
fn bilinear(img: &GrayImage, x: f32, y: f32) -> f32 {
    let (w, h) = img.dimensions();
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let x0 = x.floor() as u32;
    let y0 = y.floor() as u32;
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    let fx = x - x0 as f32;
    let fy = y - y0 as f32;
    let p = |xx, yy| f32::from(img.get_pixel(xx, yy).0[0]);
    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
    let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imgproc::gray::gray_from_rgb;
    use crate::types::{BBox, Landmarks};

    /// The crop of `face` from a whole gray picture.
    fn crop(gray: &GrayImage, face: &Detection, settings: &CropSettings) -> GrayImage {
        let mut out = GrayImage::new(settings.size, settings.size);
        crop_gray(gray, (0, 0), face, settings, &mut out);
        out
    }

    fn gradient(w: u32, h: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, _| Luma([(x * 255 / (w - 1)) as u8]))
    }

    #[test]
    fn crop_without_margin_of_a_48px_box_copies_the_pixels() {
        let img = gradient(200, 100);
        let face = Detection {
            bbox: BBox {
                x: 50.0,
                y: 20.0,
                w: 48.0,
                h: 48.0,
            },
            score: 1.0,
            landmarks: None,
        };
        let s = CropSettings {
            size: 48,
            margin: 0.0,
            align: true,
        };
        let out = crop(&img, &face, &s);
        for u in 0..48 {
            assert_eq!(out.get_pixel(u, 10).0[0], img.get_pixel(50 + u, 30).0[0]);
        }
    }

    #[test]
    fn a_crop_of_the_input_size_is_the_input_unchanged() {
        let crop = gradient(48, 48);
        assert_eq!(crop_as_input(crop.clone(), 48), crop);
    }

    #[test]
    fn a_crop_of_another_size_is_resized_whole() {
        // Left edge dark, right edge bright: still so at 48x48, whatever the aspect ratio.
        let out = crop_as_input(gradient(100, 60), 48);
        assert_eq!(out.dimensions(), (48, 48));
        assert!(out.get_pixel(0, 24).0[0] < 10);
        assert!(out.get_pixel(47, 24).0[0] > 245);
    }

    #[test]
    fn an_empty_crop_is_a_black_input() {
        let out = crop_as_input(GrayImage::new(0, 5), 48);
        assert_eq!(out.dimensions(), (48, 48));
        assert!(out.pixels().all(|p| p.0[0] == 0));
    }

    #[test]
    fn alignment_levels_a_tilted_eye_line() {
        // A horizontal bright bar rotated by 30 degrees, with "eyes" on it: after alignment the
        // bar must be horizontal again (constant along rows near the centre).
        let angle = 30f32.to_radians();
        let (c, s) = (100.0f32, angle.sin_cos());
        let img = GrayImage::from_fn(200, 200, |x, y| {
            let (dx, dy) = (x as f32 - c, y as f32 - c);
            let across = -s.0 * dx + s.1 * dy; // distance from the rotated horizontal line
            Luma([if across.abs() < 6.0 { 255 } else { 0 }])
        });
        let eye = |d: f32| [c + d * s.1, c + d * s.0];
        let lm = Landmarks([eye(-30.0), eye(30.0), [c, c], [c, c], [c, c]]);
        let face = Detection {
            bbox: BBox {
                x: 50.0,
                y: 50.0,
                w: 100.0,
                h: 100.0,
            },
            score: 1.0,
            landmarks: Some(lm),
        };
        let out = crop(
            &img,
            &face,
            &CropSettings {
                size: 48,
                margin: 0.0,
                align: true,
            },
        );
        // The centre row is bright across the middle of the crop, rows far away are dark.
        for u in 8..40 {
            assert!(out.get_pixel(u, 24).0[0] > 200, "u={u}");
            assert!(out.get_pixel(u, 5).0[0] < 30, "u={u}");
        }
    }

    #[test]
    fn boxes_outside_the_image_do_not_panic() {
        let img = gradient(10, 10);
        let face = Detection {
            bbox: BBox {
                x: -100.0,
                y: 500.0,
                w: 30.0,
                h: 30.0,
            },
            score: 1.0,
            landmarks: None,
        };
        let out = crop(&img, &face, &CropSettings::default());
        assert_eq!(out.dimensions(), (48, 48));
    }

    #[test]
    fn a_crop_from_the_face_s_region_equals_one_from_the_whole_gray_picture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/photos/ageitgey_kit_with_rose.jpg"
        );
        let rgb = crate::imgproc::load_image(std::path::Path::new(path), Default::default())
            .expect("the fixture photo loads");
        let gray = gray_from_rgb(&rgb);
        let (w, h) = (rgb.width() as f32, rgb.height() as f32);
        let tilted = |x: f32, y: f32, d: f32| {
            Some(Landmarks([
                [x, y],
                [x + 30.0, y + d],
                [x, y],
                [x, y],
                [x, y],
            ]))
        };
        // Faces inside, tilted both ways, across each edge, beyond the picture, tiny and huge.
        let faces = [
            (259.4, 80.3, 91.9, 118.5, tilted(280.0, 120.0, 9.0)),
            (78.1, 110.9, 78.9, 99.8, tilted(95.0, 150.0, -14.0)),
            (-20.0, 40.0, 60.0, 60.0, None),
            (w - 30.0, h - 25.0, 80.0, 70.0, tilted(w - 10.0, h, 25.0)),
            (100.0, -50.0, 40.0, 90.0, None),
            (w + 200.0, 30.0, 50.0, 50.0, None),
            (-500.0, -400.0, 50.0, 50.0, tilted(-480.0, -380.0, 5.0)),
            (200.0, 150.0, 3.0, 3.0, None),
            (
                -100.0,
                -100.0,
                w + 200.0,
                h + 200.0,
                tilted(w / 3.0, h / 3.0, 40.0),
            ),
        ];
        for (x, y, bw, bh, landmarks) in faces {
            let face = Detection {
                bbox: BBox { x, y, w: bw, h: bh },
                score: 1.0,
                landmarks,
            };
            for settings in [
                CropSettings::default(),
                CropSettings {
                    size: 64,
                    margin: 0.3,
                    align: false,
                },
            ] {
                assert_eq!(
                    face_crop(&rgb, &face, &settings),
                    crop(&gray, &face, &settings),
                    "{face:?} {settings:?}"
                );
            }
        }
    }
}
