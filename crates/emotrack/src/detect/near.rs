//! Re-finding known faces: detection in a small region around each one
//! ([`FaceDetector::detect_near`]'s default).
//!
//! Between full-frame detections a video pipeline knows roughly where each face is. Searching
//! only a square of [`REGION_SCALE`] times a face's side around it, for faces between
//! 1/[`SIZE_RATIO`] and [`SIZE_RATIO`] times its side, costs a few percent of a full-frame pass
//! (the Haar pyramid and MTCNN's P-Net both scale with the area and the size range searched),
//! and the boxes follow the faces instead of drifting with a velocity guess.

use super::{FaceDetector, FaceSizes};
use crate::imgproc::area::Region;
use crate::imgproc::view::copy_region;
use crate::imgproc::{AsRgbView, RgbView};
use crate::types::{BBox, Detection, Landmarks};

/// Side of the searched square, relative to the face's side: the face may move by a quarter of
/// its own side in any direction between two searches and still be found. Searches run on
/// consecutive frames, where faces move far less; every window near a face runs deep into the
/// cascade, so the square's area is most of the cost.
pub const REGION_SCALE: f32 = 1.5;

/// How much a face may grow or shrink between two searches.
pub const SIZE_RATIO: f32 = 1.25;

/// Two faces found from neighbouring boxes that overlap more than this are the same face.
pub const SAME_FACE_IOU: f32 = 0.5;

/// Searches a square region around each of `boxes` (where faces were last seen) with
/// [`FaceDetector::detect_sized`] and returns the face found nearest each box's centre, in image
/// coordinates. Boxes outside the image, and regions where nothing is found, give nothing.
pub fn search_regions<D: FaceDetector + ?Sized>(
    detector: &D,
    image: &RgbView<'_>,
    boxes: &[BBox],
) -> Vec<Detection> {
    let limits = detector.sizes();
    boxes
        .iter()
        .filter_map(|b| find_one(detector, image, b, limits))
        .collect()
}

/// Keeps one detection of each face: of those overlapping by more than [`SAME_FACE_IOU`] (one
/// face found from two neighbouring boxes), the highest-scoring.
pub fn distinct(mut found: Vec<Detection>) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(found.len());
    for d in found {
        if kept.iter().all(|k| k.bbox.iou(&d.bbox) <= SAME_FACE_IOU) {
            kept.push(d);
        }
    }
    kept
}

/// The face nearest `b`'s centre in the square region around it, if any.
fn find_one<D: FaceDetector + ?Sized>(
    detector: &D,
    image: &RgbView<'_>,
    b: &BBox,
    limits: FaceSizes,
) -> Option<Detection> {
    let side = b.w.max(b.h);
    if !(side.is_finite() && side > 0.0) {
        return None;
    }
    let (cx, cy) = b.center();
    let half = side * REGION_SCALE / 2.0;
    let (iw, ih) = (image.width() as f32, image.height() as f32);
    let x0 = (cx - half).max(0.0).floor();
    let y0 = (cy - half).max(0.0).floor();
    let x1 = (cx + half).min(iw).ceil();
    let y1 = (cy + half).min(ih).ceil();
    if x1 - x0 < 12.0 || y1 - y0 < 12.0 {
        return None;
    }
    let sizes = FaceSizes {
        min: ((side / SIZE_RATIO) as u32).max(limits.min),
        max: Some(limits.max.map_or((side * SIZE_RATIO).ceil() as u32, |m| {
            m.min((side * SIZE_RATIO).ceil() as u32)
        })),
    };
    if sizes.max.is_some_and(|m| m < sizes.min) {
        return None;
    }
    let (ox, oy) = (x0 as u32, y0 as u32);
    let region = Region {
        x: ox,
        y: oy,
        w: (x1 - x0) as u32,
        h: (y1 - y0) as u32,
    };
    let crop = copy_region(image, region);
    let (lx, ly) = (cx - x0, cy - y0);
    let distance = |d: &Detection| {
        let (x, y) = d.bbox.center();
        (x - lx).powi(2) + (y - ly).powi(2)
    };
    let best = detector
        .detect_sized(&crop.as_rgb_view(), sizes)
        .into_iter()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))?;
    let (dx, dy) = (x0, y0);
    Some(Detection {
        bbox: BBox {
            x: best.bbox.x + dx,
            y: best.bbox.y + dy,
            ..best.bbox
        },
        landmarks: best
            .landmarks
            .map(|l| Landmarks(l.0.map(|[x, y]| [x + dx, y + dy]))),
        ..best
    })
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::detect::{
        DetectorBackend, DetectorConfig, HaarSettings, MtcnnSettings, YunetSettings,
    };

    /// A real photo of four faces, from the repo's fixtures.
    fn photo() -> RgbImage {
        crate::detect::fixture_photo("linzaer_imgs_2.jpg").to_rgb8()
    }

    fn refinds_every_face(backend: DetectorBackend) {
        let kind = backend.name();
        let image = photo();
        let detector = DetectorConfig {
            backend,
            ..DetectorConfig::default()
        }
        .build()
        .expect("detector");
        let full = detector.detect(&image);
        assert!(full.len() >= 2, "{kind} found {} faces", full.len());
        // Where the faces were a few frames ago: shifted by a fifth of their side.
        let shifted: Vec<BBox> = full
            .iter()
            .map(|d| BBox {
                x: d.bbox.x + d.bbox.w / 5.0,
                y: d.bbox.y - d.bbox.h / 5.0,
                ..d.bbox
            })
            .collect();
        let near = detector.detect_near(&image, &shifted);
        assert_eq!(near.len(), full.len(), "{kind}: {near:?}");
        for d in &full {
            let best = near.iter().map(|n| n.bbox.iou(&d.bbox)).fold(0.0, f32::max);
            assert!(best > 0.6, "{kind}: {d:?} re-found with IoU {best}");
        }
    }

    #[test]
    fn haar_refinds_faces_near_where_they_were() {
        refinds_every_face(DetectorBackend::Haar(HaarSettings::default()));
    }

    #[test]
    fn mtcnn_refinds_faces_near_where_they_were() {
        refinds_every_face(DetectorBackend::Mtcnn(MtcnnSettings::default()));
    }

    #[test]
    fn yunet_refinds_faces_near_where_they_were() {
        refinds_every_face(DetectorBackend::Yunet(YunetSettings::default()));
    }

    #[test]
    fn nothing_is_found_where_there_is_no_face() {
        let image = photo();
        let detector = DetectorConfig::default().build().expect("detector");
        let faces = detector.detect(&image);
        // A face-sized square in the corner farthest from every face, and one off the image.
        let corner = BBox {
            x: 0.0,
            y: image.height() as f32 - 60.0,
            w: 60.0,
            h: 60.0,
        };
        assert!(faces.iter().all(|f| f.bbox.iou(&corner) == 0.0));
        let outside = BBox {
            x: image.width() as f32 + 100.0,
            ..corner
        };
        for backend in [
            DetectorBackend::Haar(HaarSettings::default()),
            DetectorBackend::Mtcnn(MtcnnSettings::default()),
            DetectorBackend::Yunet(YunetSettings::default()),
        ] {
            let kind = backend.name();
            let detector = DetectorConfig {
                backend,
                ..DetectorConfig::default()
            }
            .build()
            .expect("detector");
            let found = detector.detect_near(&image, &[corner, outside]);
            assert!(found.is_empty(), "{kind}: {found:?}");
        }
    }
}
