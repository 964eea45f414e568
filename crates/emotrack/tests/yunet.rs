//! The YuNet detector against the reference network: the same weights' ONNX original, run by
//! onnxruntime on the same pixels, decoded and suppressed (score ≥ 0.6, IoU 0.3, top 5000).
//!
//! `tests/fixtures/yunet/reference.json` and its input PNGs were written by
//! `scripts/yunet_weights.py reference`; the PNGs' pixels are the reference's input, so the
//! test decodes them and searches them at full resolution (shrink factor 1).

mod common;

use std::sync::OnceLock;

use emotrack::detect::yunet::Yunet;
use emotrack::detect::{FaceSizes, YunetSettings};
use emotrack::{BBox, Detection, DetectorBackend, DetectorConfig, FaceDetector};
use image::RgbImage;
use serde::Deserialize;

/// Every reference face must be found with at least this overlap …
const MIN_IOU: f32 = 0.95;
/// … a score this close …
const SCORE_TOLERANCE: f32 = 1e-3;
/// … and landmarks this close, in pixels.
const LANDMARK_TOLERANCE: f32 = 0.5;

#[derive(Deserialize)]
struct Fixture {
    nms: Nms,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Nms {
    score_threshold: f32,
    iou_threshold: f32,
    top_k_before_nms: usize,
}

#[derive(Deserialize)]
struct Case {
    image: String,
    width: u32,
    height: u32,
    /// `scripts/mtcnn_fixtures.py`'s checksum of the PNG's RGB pixels.
    rgb_checksum: u64,
    faces: Vec<Face>,
}

#[derive(Deserialize, Clone, Copy)]
struct Face {
    score: f32,
    /// `[x, y, w, h]`.
    #[serde(rename = "box")]
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = common::fixture("yunet/reference.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn load(case: &Case) -> RgbImage {
    let path = common::fixture(&format!("yunet/{}", case.image));
    let image = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(
        image.dimensions(),
        (case.width, case.height),
        "{}",
        case.image
    );
    assert_eq!(
        common::rgb_checksum(&image),
        case.rgb_checksum,
        "{}: decoded to other pixels than the reference saw",
        case.image
    );
    image
}

/// The detector with the fixture's thresholds, searching every fixture picture unshrunk.
fn reference_settings() -> YunetSettings {
    let nms = &fixture().nms;
    YunetSettings {
        score_threshold: nms.score_threshold,
        nms_iou: nms.iou_threshold,
        top_k: nms.top_k_before_nms,
        max_side: 640,
        frame_max_side: 640,
    }
}

fn detector(settings: &YunetSettings) -> Yunet {
    Yunet::embedded(FaceSizes::default(), settings)
        .unwrap_or_else(|e| panic!("the embedded YuNet must load: {e}"))
}

fn bbox(f: &Face) -> BBox {
    let [x, y, w, h] = f.bbox;
    BBox { x, y, w, h }
}

/// Our face overlapping `f` most, and the overlap.
fn best_match<'a>(found: &'a [Detection], f: &Face) -> Option<(&'a Detection, f32)> {
    found
        .iter()
        .map(|d| (d, d.bbox.iou(&bbox(f))))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[test]
fn faces_boxes_landmarks_and_scores_equal_the_reference_networks() {
    let det = detector(&reference_settings());
    let (mut faces, mut worst_iou, mut worst_score, mut worst_landmark) =
        (0, 1.0f32, 0.0f32, 0.0f32);
    for case in &fixture().cases {
        let image = load(case);
        assert_eq!(Yunet::shrink_factor(image.dimensions(), 640, 20), 1);
        let found = det.detect(&image);
        assert_eq!(found.len(), case.faces.len(), "{}: {found:?}", case.image);
        for f in &case.faces {
            let (d, iou) = best_match(&found, f).expect("as many faces as the reference");
            let score = (d.score - f.score).abs();
            let landmarks = d.landmarks.expect("YuNet gives landmarks").0;
            let landmark = landmarks
                .iter()
                .zip(&f.landmarks)
                .map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1]))
                .fold(0.0, f32::max);
            assert!(
                iou >= MIN_IOU && score <= SCORE_TOLERANCE && landmark <= LANDMARK_TOLERANCE,
                "{}: reference face {:?} ({}) matched by {d:?}: IoU {iou}, score off by \
                 {score}, landmarks by {landmark} px",
                case.image,
                f.bbox,
                f.score
            );
            faces += 1;
            worst_iou = worst_iou.min(iou);
            worst_score = worst_score.max(score);
            worst_landmark = worst_landmark.max(landmark);
        }
    }
    eprintln!(
        "yunet vs the reference network, {} pictures, {faces} faces: worst IoU {worst_iou:.5}, \
         worst score difference {worst_score:.2e}, worst landmark {worst_landmark:.3} px",
        fixture().cases.len()
    );
    assert!(faces >= 20, "the fixture holds {faces} faces");
}

#[test]
fn a_cat_is_not_a_face() {
    let det = detector(&reference_settings());
    let cat = fixture()
        .cases
        .iter()
        .find(|c| c.image.starts_with("skimage_chelsea"))
        .expect("the fixture has the cat");
    assert!(cat.faces.is_empty());
    assert_eq!(det.detect(&load(cat)), Vec::new());
}

#[test]
fn a_picture_shrunk_by_two_gives_the_faces_found_at_half_size() {
    // A video frame's default search shrinks 640x480 to 320x240 by 2x2 means: the faces the reference
    // finds on the photo resized to 320x240 (by Pillow, a slightly different filter), at
    // twice the size. (YuNet's boxes for one face differ from scale to scale by more than
    // between these two filters.)
    let cases = &fixture().cases;
    let case = |width: u32| {
        cases
            .iter()
            .find(|c| c.width == width && c.image.starts_with("linzaer_imgs_9"))
            .expect("the group photo at 640x480 and 320x240")
    };
    let (full, half) = (case(640), case(320));
    let settings = YunetSettings::default();
    let det = detector(&settings);
    let image = load(full);
    assert_eq!(
        Yunet::shrink_factor(image.dimensions(), settings.frame_max_side, 20),
        2
    );
    let found = det.detect_frame(&image);
    assert_eq!(found.len(), half.faces.len(), "{found:?}");
    for f in &half.faces {
        let doubled = Face {
            bbox: f.bbox.map(|v| 2.0 * v),
            ..*f
        };
        let (d, iou) = best_match(&found, &doubled).expect("a face");
        assert!(iou >= 0.9, "{:?} found as {d:?} (IoU {iou})", doubled.bbox);
        assert!((d.score - f.score).abs() < 0.02, "{d:?} vs {}", f.score);
    }
}

#[test]
fn known_faces_are_refound_around_where_they_were() {
    let case = fixture()
        .cases
        .iter()
        .find(|c| c.width == 640 && c.faces.len() >= 5)
        .expect("a 640x480 group photo");
    let image = load(case);
    let det = DetectorConfig {
        backend: DetectorBackend::Yunet(YunetSettings::default()),
        ..DetectorConfig::default()
    }
    .build()
    .expect("builds");
    // A video's whole-frame search, as between the searches these faces are followed.
    let full = det.detect_frame(&image);
    // Where the faces were a few frames ago: shifted by a fifth of their side, 10% larger.
    let moved: Vec<BBox> = full
        .iter()
        .map(|d| BBox {
            x: d.bbox.x + d.bbox.w / 5.0,
            y: d.bbox.y - d.bbox.h / 5.0,
            w: d.bbox.w * 1.1,
            h: d.bbox.h * 1.1,
        })
        .collect();
    let near = det.detect_near(&image, &moved);
    assert_eq!(near.len(), full.len(), "{near:?}");
    for d in &full {
        let best = near.iter().map(|n| n.bbox.iou(&d.bbox)).fold(0.0, f32::max);
        assert!(best > 0.8, "{d:?} re-found with IoU {best}");
        assert!(near.iter().all(|n| n.landmarks.is_some()));
    }
    // Nowhere near a face: a corner square, and a box off the picture.
    let corner = BBox {
        x: 0.0,
        y: 400.0,
        w: 60.0,
        h: 60.0,
    };
    let off = BBox {
        x: 2000.0,
        ..corner
    };
    assert!(full.iter().all(|d| d.bbox.iou(&corner) == 0.0));
    assert_eq!(det.detect_near(&image, &[corner, off]), Vec::new());
}
