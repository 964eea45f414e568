//! Test-time augmentation: each 48x48 crop is classified as several views (its mirror image,
//! shifted and enlarged sub-crops) and the views' probabilities are averaged.
//!
//! The crops follow torchvision's `FiveCrop`/`TenCrop`: the centre and the four corners, each
//! [`SUB_CROP`] pixels square, resized back to 48x48 (bilinear). That is a 1.09x zoom with a
//! shift of up to 2 pixels, well inside the training augmentation (scale ±10%, shift ±4 px),
//! so every view looks like a training image.

use std::borrow::Cow;

use emotrack::{Emotion, EmotionScores};
use image::GrayImage;
use image::imageops::{self, FilterType};

use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};

/// Side of the sub-crops of [`Tta::FiveCrop`] and [`Tta::TenCrop`].
pub const SUB_CROP: u32 = 44;

/// Which views of a crop are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tta {
    /// The crop alone.
    #[default]
    None,
    /// The crop and its mirror image (2 views).
    Flip,
    /// The centre and four corner sub-crops (5 views).
    FiveCrop,
    /// The five sub-crops and their mirror images (10 views).
    TenCrop,
}

impl Tta {
    /// Views per crop.
    pub fn count(self) -> usize {
        match self {
            Tta::None => 1,
            Tta::Flip => 2,
            Tta::FiveCrop => 5,
            Tta::TenCrop => 10,
        }
    }

    /// Its name in file names and JSON: "none", "flip", "five-crop", "ten-crop".
    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flip => "flip",
            Tta::FiveCrop => "five-crop",
            Tta::TenCrop => "ten-crop",
        }
    }

    /// A short description for reports ("flip TTA"); empty for [`Tta::None`].
    pub fn describe(self) -> &'static str {
        match self {
            Tta::None => "",
            Tta::Flip => "flip TTA",
            Tta::FiveCrop => "five-crop TTA",
            Tta::TenCrop => "ten-crop TTA",
        }
    }

    /// The [`Tta::count`] views of a 48x48 row-major `crop`, each 48x48 row-major.
    ///
    /// # Panics
    /// If `crop` is not 48x48 (the dataset loader guarantees it).
    pub fn views(self, crop: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(crop.len(), IMAGE_PIXELS, "TTA needs a 48x48 crop");
        match self {
            Tta::None => vec![crop.to_vec()],
            Tta::Flip => vec![crop.to_vec(), mirror(crop)],
            Tta::FiveCrop => sub_crops(crop),
            Tta::TenCrop => sub_crops(crop)
                .into_iter()
                .flat_map(|v| {
                    let m = mirror(&v);
                    [v, m]
                })
                .collect(),
        }
    }

    /// The mean of each crop's [`Tta::count`] consecutive view scores in `views`.
    pub fn average(self, views: &[EmotionScores]) -> Vec<EmotionScores> {
        let n = self.count();
        views
            .chunks_exact(n)
            .map(|chunk| {
                let mut mean = [0f32; Emotion::COUNT];
                for s in chunk {
                    for (m, p) in mean.iter_mut().zip(s.0) {
                        *m += p / n as f32;
                    }
                }
                EmotionScores(mean)
            })
            .collect()
    }
}

/// `crop` mirrored left to right (or a batch of crops: any number of 48-pixel rows).
pub fn mirror<T: Copy>(crop: &[T]) -> Vec<T> {
    crop.chunks_exact(IMAGE_SIDE)
        .flat_map(|row| row.iter().rev().copied())
        .collect()
}

/// Top-left corners of the five [`SUB_CROP`] squares of [`Tta::FiveCrop`]: the centre, then
/// the four corners.
pub const SUB_CROP_CORNERS: [(u32, u32); 5] = {
    let far = IMAGE_SIDE as u32 - SUB_CROP;
    [(far / 2, far / 2), (0, 0), (far, 0), (0, far), (far, far)]
};

/// The `side` x `side` square at `(x0, y0)` of each 48x48 image of `batch` (row-major, any
/// number of images), enlarged to 48x48 by bilinear interpolation between pixel centres (what
/// a triangle filter does when it enlarges). The whole image (`side` 48) is `batch` itself,
/// borrowed.
///
/// # Panics
/// If the square is not inside the image.
pub fn enlarge(batch: &[f32], side: usize, (x0, y0): (usize, usize)) -> Cow<'_, [f32]> {
    assert!(
        side >= 1 && x0 + side <= IMAGE_SIDE && y0 + side <= IMAGE_SIDE,
        "square of {side} px at ({x0}, {y0})"
    );
    if side == IMAGE_SIDE {
        return Cow::Borrowed(batch);
    }
    // Source coordinate of each output row (or column) at `offset`: its lower neighbour and
    // weight.
    let step = side as f32 / IMAGE_SIDE as f32;
    let taps = |offset: usize| -> Vec<(usize, f32)> {
        (0..IMAGE_SIDE)
            .map(|d| {
                let s = ((d as f32 + 0.5) * step - 0.5 + offset as f32)
                    .clamp(0.0, (IMAGE_SIDE - 1) as f32);
                let lo = (s.floor() as usize).min(IMAGE_SIDE - 2);
                (lo, s - lo as f32)
            })
            .collect()
    };
    let (columns, rows) = (taps(x0), taps(y0));
    let mut out = Vec::with_capacity(batch.len());
    for image in batch.chunks_exact(IMAGE_PIXELS) {
        for &(y, fy) in &rows {
            let (top, bottom) = (&image[y * IMAGE_SIDE..], &image[(y + 1) * IMAGE_SIDE..]);
            for &(x, fx) in &columns {
                let t = top[x] + fx * (top[x + 1] - top[x]);
                let b = bottom[x] + fx * (bottom[x + 1] - bottom[x]);
                out.push(t + fy * (b - t));
            }
        }
    }
    Cow::Owned(out)
}

/// The centre and the four corner [`SUB_CROP`]-pixel squares of `crop`, resized to 48x48.
fn sub_crops(crop: &[u8]) -> Vec<Vec<u8>> {
    let side = IMAGE_SIDE as u32;
    let image = GrayImage::from_raw(side, side, crop.to_vec()).expect("length checked");
    SUB_CROP_CORNERS
        .into_iter()
        .map(|(x, y)| {
            let sub = imageops::crop_imm(&image, x, y, SUB_CROP, SUB_CROP).to_image();
            imageops::resize(&sub, side, side, FilterType::Triangle).into_raw()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<u8> {
        (0..IMAGE_PIXELS)
            .map(|i| ((i % IMAGE_SIDE) * 5 + i / IMAGE_SIDE) as u8)
            .collect()
    }

    #[test]
    fn enlarging_the_whole_image_borrows_it_and_a_square_is_interpolated() {
        // Linear: 5 per column, 1 per row.
        let ramp: Vec<f32> = (0..IMAGE_PIXELS)
            .map(|i| ((i % IMAGE_SIDE) * 5 + i / IMAGE_SIDE) as f32)
            .collect();
        let batch = [ramp.clone(), ramp.iter().map(|v| -v).collect()].concat();
        assert_eq!(enlarge(&batch, IMAGE_SIDE, (0, 0)), batch.as_slice());
        // Bilinear interpolation of a linear ramp is exact: output pixel d samples source
        // (d + 0.5) * side / 48 - 0.5 + offset, clamped to the image.
        for (side, (x0, y0)) in [(46, (1, 1)), (44, (4, 0)), (44, (0, 4))] {
            let out = enlarge(&batch, side, (x0, y0));
            assert_eq!(out.len(), batch.len());
            let source = |d: usize, o: usize| {
                ((d as f32 + 0.5) * side as f32 / 48.0 - 0.5 + o as f32).clamp(0.0, 47.0)
            };
            for y in 0..IMAGE_SIDE {
                for x in 0..IMAGE_SIDE {
                    let want = 5.0 * source(x, x0) + source(y, y0);
                    let got = out[y * IMAGE_SIDE + x];
                    assert!(
                        (got - want).abs() < 1e-3,
                        "{side} ({x}, {y}): {got} vs {want}"
                    );
                    assert!((out[IMAGE_PIXELS + y * IMAGE_SIDE + x] + want).abs() < 1e-3);
                }
            }
        }
    }

    #[test]
    fn every_mode_gives_its_count_of_48x48_views_the_first_being_the_crop_or_its_centre() {
        let crop = ramp();
        for tta in [Tta::None, Tta::Flip, Tta::FiveCrop, Tta::TenCrop] {
            let views = tta.views(&crop);
            assert_eq!(views.len(), tta.count(), "{tta:?}");
            assert!(views.iter().all(|v| v.len() == IMAGE_PIXELS), "{tta:?}");
        }
        assert_eq!(Tta::None.views(&crop)[0], crop);
        assert_eq!(Tta::Flip.views(&crop)[1], mirror(&crop));
        // Ten-crop is five-crop with each view followed by its mirror image.
        let five = Tta::FiveCrop.views(&crop);
        let ten = Tta::TenCrop.views(&crop);
        for (k, v) in five.iter().enumerate() {
            assert_eq!(&ten[2 * k], v);
            assert_eq!(ten[2 * k + 1], mirror(v));
        }
    }

    #[test]
    fn sub_crops_zoom_into_their_corner() {
        // One bright pixel in the top-left corner: the top-left sub-crop keeps it (enlarged),
        // the bottom-right one does not see it.
        let mut crop = vec![0u8; IMAGE_PIXELS];
        crop[0] = 255;
        let views = Tta::FiveCrop.views(&crop);
        assert!(views[1][0] > 0, "top-left sub-crop keeps the corner");
        assert!(
            views[4].iter().all(|&p| p == 0),
            "bottom-right sub-crop misses it"
        );
        // A uniform crop stays uniform in every view.
        let flat = vec![77u8; IMAGE_PIXELS];
        for v in Tta::TenCrop.views(&flat) {
            assert!(v.iter().all(|&p| p == 77));
        }
    }

    #[test]
    fn average_is_the_mean_of_each_crops_views() {
        let a = EmotionScores([0.7, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let b = EmotionScores([0.1, 0.5, 0.4, 0.0, 0.0, 0.0, 0.0]);
        let c = EmotionScores([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let d = EmotionScores([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let mean = Tta::Flip.average(&[a, b, c, d]);
        assert_eq!(mean.len(), 2);
        let expect = [0.4, 0.4, 0.2, 0.0, 0.0, 0.0, 0.0];
        for (m, e) in mean[0].0.iter().zip(expect) {
            assert!((m - e).abs() < 1e-6);
        }
        assert_eq!(mean[1].0[5], 0.5);
        assert_eq!(mean[1].0[6], 0.5);
    }
}
