//! YuNet face detection (Wu, Peng, Yu, "YuNet: A Tiny Millisecond-level Face Detector", 2023)
//! with its authors' trained YuNet_s weights, written on [`emotrack_nn`] from the network's
//! description.
//!
//! One small fully-convolutional network (53 k parameters) looks at the whole picture once:
//! a backbone of 1x1 and depthwise 3x3 convolutions with 2x2 max pooling, a feature pyramid
//! whose coarser levels are upsampled and added to the finer ones, and at strides 8, 16 and 32
//! a head that gives, for every grid cell, a face score, a box and five landmarks (`net.rs`).
//! No image pyramid, no second stage: where MTCNN runs P-Net on a dozen scales and R-Net and
//! O-Net on the proposals, YuNet costs one pass of 69 M multiply-adds on a 320x240 picture.
//!
//! * **Input**: the picture shrunk by a whole factor (block means, `input.rs`), as values
//!   0..255 without normalisation, zero-padded on the right and bottom to multiples of 32. The
//!   network was trained on BGR pictures; its first layer's filters are swapped at load time
//!   to read RGB, which gives the same sums.
//! * **Decoding** (`decode.rs`): the prior of cell `(r, c)` at stride `s` is its top-left
//!   corner; the score is `sqrt(sigmoid(cls) · sigmoid(obj))`, as libfacedetection and
//!   OpenCV's `FaceDetectorYN` compute it.
//! * **Suppression**: faces above [`YunetSettings::score_threshold`], the best
//!   [`YunetSettings::top_k`] of them, greedy NMS at [`YunetSettings::nms_iou`].
//! * **Landmarks**: the eye, eye, nose and mouth corners in MTCNN's order (left and right as
//!   seen in the image), so alignment treats both detectors alike.
//!
//! **Scale.** A whole-picture search shrinks the picture by the smallest whole factor that
//! brings its longer side to [`YunetSettings::max_side`] for a photo (default 640: a 640x480
//! photo is searched whole) or [`YunetSettings::frame_max_side`] for a video frame (default
//! 320: a 640x480 frame is searched at 320x240, the speed live video wants), but never so far
//! that a face of the smallest size searched (`min_face`) would be under [`NET_MIN_FACE`]
//! pixels at the network's input. So with the default `min_face` of 20 a picture is shrunk by
//! at most 2; `--min-face 40` allows 4.
//!
//! Parity: `crates/emotrack/tests/yunet.rs` compares the faces with the reference network's
//! (the ONNX original run by onnxruntime, `tests/fixtures/yunet/`). Weights:
//! `models/yunet.safetensors`, converted by `scripts/yunet_weights.py`; origin and license
//! (Apache-2.0) in `models/NOTICE.md`.

mod decode;
mod input;
mod net;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::net::{Workspace, YunetNet};
use super::pool::Pool;
use super::{FaceDetector, FaceSizes, near};
use crate::error::{Error, Result};
use crate::imgproc::area::Region;
use crate::imgproc::{AsRgbView, RgbView};
use crate::types::{BBox, Detection, Landmarks};
use emotrack_nn::Weights;

/// libfacedetection.train's YuNet_s weights (Apache-2.0), converted by
/// `scripts/yunet_weights.py`; see `models/NOTICE.md`.
const WEIGHTS: &[u8] = include_bytes!("../../../../../models/yunet.safetensors");

/// The smallest face side, in pixels at the network's input, that a search is planned for:
/// a whole-picture search never shrinks the picture so far that a face of `min_face` pixels
/// would come out smaller. So with the default `min_face` of 20 a picture is shrunk by at most
/// 2, and a 640x480 frame is searched at 320x240 (the speed the video targets need).
///
/// Measured on the media photos letterboxed to 640x480, MTCNN's faces (score ≥ 0.95) as the
/// truth (YuNet's boxes are as large as MTCNN's: median ratio of the longer sides 1.05): a
/// search at 320x240 finds 87% of the faces of 16-20 pixels, 98% of 20-24, 97% of 24-30 and
/// all larger ones (209 faces in all, MTCNN 212); at 640x480, every face (214), at about twice
/// the time per video frame. Faces under 16 pixels (a crowd photo's) need a search where they
/// are 10 pixels or more.
pub const NET_MIN_FACE: u32 = 10;

/// [`FaceDetector::detect_near`]: the side, in network pixels, of the square searched around
/// each known face (three cells of the coarsest level), and how many times the face's side
/// that square covers in the picture (rounded to a whole shrink factor). A face of side `s` is
/// searched in a square of about `2s`, shrunk to 96x96: the face at about 48 pixels, the size
/// YuNet finds most surely, whatever its size in the picture, for an eighth of a 320x240
/// search.
const NEAR_INPUT: u32 = 96;
const NEAR_REGION: f32 = 2.0;

/// The YuNet backend's settings in a [`DetectorConfig`](super::DetectorConfig).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct YunetSettings {
    /// The face score needed, in (0, 1]; default 0.6 (OpenCV's YuNet sample's). Clear faces
    /// score 0.85-0.95; small, blurred or turned ones less: on the crowd clip
    /// (`facenet_pytorch_video.mp4`) 0.7 keeps two thirds of the faces 0.6 keeps, 0.8 a third.
    /// False faces score 0.6-0.75 (none on the media's no-face pictures from 0.5 up). Lower it
    /// to keep harder faces, raise it for fewer false ones. The CLI's `--threshold`.
    pub score_threshold: f32,
    /// Two faces overlapping by more than this intersection over union are one, in (0, 1];
    /// default 0.3 (OpenCV's `FaceDetectorYN`). Raise it for crowds of overlapping faces.
    pub nms_iou: f32,
    /// The longer side, in pixels, a photo is shrunk towards before the search (by a whole
    /// factor, and only as far as `min_face` allows, see [`NET_MIN_FACE`]), at least 32;
    /// default 640. On the media photos fitted into 640x480, 640 finds 214 faces (MTCNN 212,
    /// none false with either) 9x as fast as MTCNN; 320 finds 209, missing
    /// faces of 16-30 pixels. A value at or above the picture's size searches it at full
    /// resolution.
    pub max_side: u32,
    /// The same for a video frame ([`FaceDetector::detect_frame`]), at least 32; default 320.
    /// The cost follows the area searched: a 640x480 video runs at about 230 frames per second
    /// end to end with 320 and 120-130 with 640, which finds faces of 16-20 pixels more surely
    /// (a crowd's).
    pub frame_max_side: u32,
    /// How many of the best-scoring faces go through NMS, at least 1; default 5000 (OpenCV's).
    pub top_k: usize,
}

impl Default for YunetSettings {
    fn default() -> Self {
        Self {
            score_threshold: 0.6,
            nms_iou: 0.3,
            max_side: 640,
            frame_max_side: 320,
            top_k: 5000,
        }
    }
}

impl YunetSettings {
    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        if !(self.score_threshold > 0.0 && self.score_threshold <= 1.0) {
            return Err(Error::config(format!(
                "yunet score_threshold is {}, it must be in (0, 1]; 0.6 is the default",
                self.score_threshold
            )));
        }
        if !(self.nms_iou > 0.0 && self.nms_iou <= 1.0) {
            return Err(Error::config(format!(
                "yunet nms_iou is {}, it must be in (0, 1]; 0.3 is the default",
                self.nms_iou
            )));
        }
        for (name, side) in [
            ("max_side", self.max_side),
            ("frame_max_side", self.frame_max_side),
        ] {
            if side < net::ALIGN as u32 {
                return Err(Error::config(format!(
                    "yunet {name} is {side}, it must be at least {} pixels",
                    net::ALIGN
                )));
            }
        }
        if self.top_k == 0 {
            return Err(Error::config("yunet top_k is 0, it must be at least 1"));
        }
        Ok(())
    }
}

/// The YuNet detector. Build it with [`Yunet::embedded`] or
/// [`DetectorConfig::build`](super::DetectorConfig::build).
///
/// ```
/// # fn main() -> emotrack::error::Result<()> {
/// use emotrack::FaceDetector;
/// use emotrack::detect::yunet::Yunet;
/// use emotrack::detect::{FaceSizes, YunetSettings};
///
/// let settings = YunetSettings::default();
/// let detector = Yunet::embedded(FaceSizes::default(), &settings)?;
/// // A 640x480 photo is searched whole, a 640x480 video frame at 320x240, when faces from
/// // 20 px are asked for.
/// assert_eq!(Yunet::shrink_factor((640, 480), settings.max_side, 20), 1);
/// assert_eq!(Yunet::shrink_factor((640, 480), settings.frame_max_side, 20), 2);
/// let faces = detector.detect_frame(&image::RgbImage::new(640, 480));
/// assert!(faces.is_empty(), "a black frame has no face");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Yunet {
    net: YunetNet,
    sizes: FaceSizes,
    settings: YunetSettings,
    workspaces: Pool<Workspace>,
}

impl Yunet {
    /// The detector with the embedded YuNet_s weights, searching faces of `sizes` with
    /// `settings` (both validated here).
    pub fn embedded(sizes: FaceSizes, settings: &YunetSettings) -> Result<Self> {
        Self::from_safetensors(sizes, settings, WEIGHTS, "<embedded yunet.safetensors>")
    }

    /// The detector with weights from safetensors bytes laid out like
    /// `models/yunet.safetensors` (`scripts/yunet_weights.py` describes the names).
    pub fn from_safetensors(
        sizes: FaceSizes,
        settings: &YunetSettings,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Self> {
        sizes.validate()?;
        settings.validate()?;
        let w = Weights::from_bytes(bytes, origin)?;
        Ok(Self {
            net: YunetNet::load(&w)?,
            sizes,
            settings: *settings,
            workspaces: Pool::default(),
        })
    }

    /// The whole factor a `w` x `h` picture is shrunk by to search faces from `min_face`
    /// pixels: the smallest that brings the longer side to `max_side`, at most
    /// `min_face / NET_MIN_FACE` (at least 1).
    pub fn shrink_factor((w, h): (u32, u32), max_side: u32, min_face: u32) -> u32 {
        let wanted = w.max(h).div_ceil(max_side).max(1);
        wanted.min((min_face / NET_MIN_FACE).max(1))
    }

    /// The faces of `sizes` in the picture shrunk towards `max_side` (see
    /// [`Yunet::shrink_factor`]), black borders left out.
    fn search_whole(&self, image: &RgbView<'_>, sizes: FaceSizes, max_side: u32) -> Vec<Detection> {
        let k = Self::shrink_factor(image.dimensions(), max_side, sizes.min);
        let max = sizes.max.map_or(f32::INFINITY, |m| m as f32);
        let Some(picture) = input::not_black(image) else {
            return Vec::new();
        };
        self.search(image, picture, k)
            .into_iter()
            .filter(|d| d.bbox.w.max(d.bbox.h) <= max)
            .collect()
    }

    /// The faces in `region` of `image` searched at shrink factor `k`, in image pixels, after
    /// NMS.
    fn search(&self, image: &RgbView<'_>, region: Region, k: u32) -> Vec<Detection> {
        let found = self.workspaces.with(|ws| {
            if input::fill_input(image, region, k, &mut ws.input, &mut ws.sums) == (0, 0) {
                return Vec::new();
            }
            self.net.forward(ws);
            decode::decode(&ws.heads, self.settings.score_threshold)
        });
        let (k, dx, dy) = (k as f32, region.x as f32, region.y as f32);
        decode::nms(found, self.settings.nms_iou, self.settings.top_k)
            .into_iter()
            .map(|d| Detection {
                bbox: BBox {
                    x: dx + k * d.bbox.x,
                    y: dy + k * d.bbox.y,
                    w: k * d.bbox.w,
                    h: k * d.bbox.h,
                },
                landmarks: d
                    .landmarks
                    .map(|l| Landmarks(l.0.map(|[x, y]| [dx + k * x, dy + k * y]))),
                ..d
            })
            .collect()
    }

    /// The face nearest `b`'s centre in a square of about [`NEAR_REGION`] times its side
    /// around it, of a size within [`near::SIZE_RATIO`] of its own and at most `max_face`.
    fn find_near(&self, image: &RgbView<'_>, b: &BBox, max_face: Option<u32>) -> Option<Detection> {
        let side = b.w.max(b.h);
        if !(side.is_finite() && side > 0.0) {
            return None;
        }
        let k = ((side * NEAR_REGION / NEAR_INPUT as f32).round() as u32).max(1);
        let half = (NEAR_INPUT * k) as f32 / 2.0;
        let (cx, cy) = b.center();
        let (iw, ih) = (image.width() as f32, image.height() as f32);
        let x0 = (cx - half).clamp(0.0, iw).floor();
        let y0 = (cy - half).clamp(0.0, ih).floor();
        let x1 = (cx + half).clamp(0.0, iw).floor();
        let y1 = (cy + half).clamp(0.0, ih).floor();
        let region = Region {
            x: x0 as u32,
            y: y0 as u32,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        };
        let smallest = side / near::SIZE_RATIO;
        let largest = max_face
            .map_or(f32::INFINITY, |m| m as f32)
            .min(side * near::SIZE_RATIO);
        let distance = |d: &Detection| {
            let (x, y) = d.bbox.center();
            (x - cx).powi(2) + (y - cy).powi(2)
        };
        self.search(image, region, k)
            .into_iter()
            .filter(|d| (smallest..=largest).contains(&d.bbox.w.max(d.bbox.h)))
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
    }
}

impl FaceDetector for Yunet {
    fn sizes(&self) -> FaceSizes {
        self.sizes
    }

    /// The faces whose longer box side is at most `sizes.max`. `sizes.min` sets how far the
    /// picture may be shrunk (see the module's "Scale"), as it sets MTCNN's first pyramid
    /// level; smaller faces found all the same are kept (MTCNN too returns faces down to about
    /// 0.6 of it).
    ///
    /// Black borders (a letterboxed video frame's bars) are not searched: the network sees the
    /// picture between them, zero-padded, as it would see the picture alone.
    fn detect_sized(&self, image: &RgbView<'_>, sizes: FaceSizes) -> Vec<Detection> {
        self.search_whole(image, sizes, self.settings.max_side)
    }

    /// As [`FaceDetector::detect`], the picture shrunk towards
    /// [`YunetSettings::frame_max_side`] instead (default 320 rather than 640).
    fn detect_frame(&self, image: &dyn AsRgbView) -> Vec<Detection> {
        self.search_whole(
            &image.as_rgb_view(),
            self.sizes,
            self.settings.frame_max_side,
        )
    }

    /// A small search around each known face: a square of about twice its side, shrunk so
    /// that the face is about 48 pixels at the network's input (a 96x96 input, an eighth of a
    /// 320x240 search, whatever the face's size); of the faces found there, the one nearest
    /// the known box's centre, of a size within [`near::SIZE_RATIO`] of its own. Known faces
    /// are searched in parallel.
    fn detect_near(&self, image: &dyn AsRgbView, boxes: &[BBox]) -> Vec<Detection> {
        let image = &image.as_rgb_view();
        let found = boxes
            .par_iter()
            .filter_map(|b| self.find_near(image, b, self.sizes.max))
            .collect();
        near::distinct(found)
    }
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;

    #[test]
    fn pictures_are_shrunk_as_far_as_the_smallest_face_allows() {
        let k = Yunet::shrink_factor;
        assert_eq!(k((640, 480), 320, 20), 2);
        assert_eq!(k((320, 240), 320, 20), 1);
        // 1920x1080 would need 6 for 320, but 20-pixel faces allow only 2 (and 40 pixels 4).
        assert_eq!(k((1920, 1080), 320, 20), 2);
        assert_eq!(k((1920, 1080), 320, 40), 4);
        assert_eq!(k((100, 80), 320, 200), 1);
        assert_eq!(k((640, 480), 640, 20), 1);
    }

    #[test]
    fn invalid_settings_name_the_field() {
        for (settings, field) in [
            (
                YunetSettings {
                    score_threshold: 0.0,
                    ..YunetSettings::default()
                },
                "score_threshold",
            ),
            (
                YunetSettings {
                    nms_iou: 1.5,
                    ..YunetSettings::default()
                },
                "nms_iou",
            ),
            (
                YunetSettings {
                    max_side: 16,
                    ..YunetSettings::default()
                },
                "max_side",
            ),
            (
                YunetSettings {
                    top_k: 0,
                    ..YunetSettings::default()
                },
                "top_k",
            ),
        ] {
            let err = Yunet::embedded(FaceSizes::default(), &settings).expect_err("invalid");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn a_letterboxed_picture_gives_the_faces_of_the_picture_alone() {
        let d = Yunet::embedded(FaceSizes::default(), &YunetSettings::default()).expect("loads");
        // Bars above and below (a 16:9 picture in 4:3), and on all four sides at odd offsets;
        // shrunk by 2 from the picture's corner either way.
        for (frame, photo, (x, y)) in [
            crate::detect::letterboxed_fixture("linzaer_imgs_2.jpg", (640, 480), (640, 360)),
            crate::detect::letterboxed_fixture("linzaer_imgs_2.jpg", (501, 397), (377, 301)),
        ] {
            let framed = d.detect(&frame);
            let alone = d.detect(&photo);
            assert!(alone.len() >= 2, "the photo has faces: {alone:?}");
            assert_eq!(framed.len(), alone.len(), "{framed:?} vs {alone:?}");
            for (f, a) in framed.iter().zip(&alone) {
                let moved = BBox {
                    x: a.bbox.x + x as f32,
                    y: a.bbox.y + y as f32,
                    ..a.bbox
                };
                assert!(
                    f.bbox.iou(&moved) > 0.999 && f.score == a.score,
                    "{f:?} vs {a:?}"
                );
            }
        }
    }

    #[test]
    fn a_black_picture_has_no_face() {
        let d = Yunet::embedded(FaceSizes::default(), &YunetSettings::default()).expect("loads");
        assert!(d.detect(&RgbImage::new(640, 480)).is_empty());
        // Smaller than one block: nothing to search, no panic.
        assert!(d.detect(&RgbImage::new(1, 1)).is_empty());
    }
}
