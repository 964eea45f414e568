//! The MTCNN detector against facenet-pytorch: same weights, same algorithm, same faces.
//!
//! `tests/fixtures/mtcnn_facenet.json` holds facenet-pytorch 2.6.0's
//! `MTCNN(keep_all=True).detect(img, landmarks=True)` (defaults: min face 20, thresholds
//! 0.6/0.7/0.7, factor 0.709) for every shared photo and no-face image, made by
//! `scripts/mtcnn_fixtures.py`, twice: on the pixels the `image` crate decodes (what we see; the
//! parity reference) and on Pillow's decode (`pil`, what a facenet-pytorch user sees). The two
//! JPEG decoders differ by up to 5 grey levels on some pixels, which moves a few boxes by a pixel
//! or two; the group-photo test uses Pillow's results with a looser match.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use emotrack::detect::mtcnn::Mtcnn;
use emotrack::detect::{FaceSizes, MtcnnSettings};
use emotrack::{BBox, Detection, DetectorBackend, DetectorConfig, Error, FaceDetector};
use image::RgbImage;
use serde::Deserialize;

/// A facenet-pytorch box is matched when one of ours overlaps it at least this much.
const MATCH_IOU: f32 = 0.9;
/// Largest allowed distance (pixels) between matched landmarks.
const LANDMARK_TOLERANCE: f32 = 2.0;
/// Largest allowed difference between matched face probabilities.
const PROB_TOLERANCE: f32 = 0.01;

#[derive(Deserialize)]
struct Fixture {
    parameters: Parameters,
    images: BTreeMap<String, Expected>,
}

#[derive(Deserialize)]
struct Parameters {
    min_face_size: u32,
    thresholds: [f32; 3],
    factor: f32,
}

#[derive(Deserialize)]
struct Expected {
    size: [u32; 2],
    /// [`common::rgb_checksum`] of the decoded pixels facenet-pytorch was run on.
    rgb_checksum: u64,
    #[serde(flatten)]
    faces: Faces,
    /// facenet-pytorch on Pillow's decode of the same file.
    pil: Faces,
}

#[derive(Deserialize)]
struct Faces {
    boxes: Vec<[f32; 4]>,
    probs: Vec<f32>,
    landmarks: Vec<[[f32; 2]; 5]>,
}

fn fixture() -> Fixture {
    let path = common::fixture("mtcnn_facenet.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn detector(sizes: FaceSizes, settings: &MtcnnSettings) -> Mtcnn {
    Mtcnn::embedded(sizes, settings).unwrap_or_else(|e| panic!("the embedded MTCNN must load: {e}"))
}

fn load(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// One fixture image: its name, the expectations and our detections.
type Case = (String, Expected, Vec<Detection>);

/// Our detections on every fixture image (computed once per test binary, shared by the tests),
/// or `None` when the shared media are absent.
fn cases() -> Option<&'static [Case]> {
    static CASES: OnceLock<Option<Vec<Case>>> = OnceLock::new();
    CASES.get_or_init(compute_cases).as_deref()
}

fn compute_cases() -> Option<Vec<Case>> {
    let media = common::media_dir()?;
    let fixture = fixture();
    let p = &fixture.parameters;
    let sizes = FaceSizes {
        min: p.min_face_size,
        max: None,
    };
    let [pnet_threshold, rnet_threshold, onet_threshold] = p.thresholds;
    let settings = MtcnnSettings {
        pnet_threshold,
        rnet_threshold,
        onet_threshold,
        factor: p.factor,
    };
    assert_eq!(
        (sizes, settings),
        (FaceSizes::default(), MtcnnSettings::default()),
        "the fixture uses the defaults"
    );
    let det = detector(sizes, &settings);
    let mut out = Vec::new();
    for (name, expected) in fixture.images {
        let image = load(&media.join(&name));
        assert_eq!(
            [image.width(), image.height()],
            expected.size,
            "{name}: not the image the fixture was made from"
        );
        assert_eq!(
            common::rgb_checksum(&image),
            expected.rgb_checksum,
            "{name}: the image crate decodes other pixels than when the fixture was made; \
             rerun scripts/mtcnn_fixtures.py"
        );
        let found = det.detect(&image);
        out.push((name, expected, found));
    }
    Some(out)
}

/// The cases of one media folder (`photos` or `no_faces`).
fn in_folder<'a>(cases: &'a [Case], folder: &str) -> Vec<&'a Case> {
    let prefix = format!("{folder}/");
    let found: Vec<&Case> = cases.iter().filter(|c| c.0.starts_with(&prefix)).collect();
    assert!(!found.is_empty(), "no fixture image in {folder}");
    found
}

/// Our detection overlapping `b` most, with the IoU.
fn best_match<'a>(b: &BBox, ours: &'a [Detection]) -> Option<(&'a Detection, f32)> {
    ours.iter()
        .map(|d| (d, d.bbox.iou(b)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Worst-case agreement of our detections with a reference.
#[derive(Debug)]
struct Agreement {
    faces: usize,
    worst_iou: f32,
    worst_landmark_px: f32,
    worst_prob: f32,
    /// Our detections with no reference box at IoU ≥ [`MATCH_IOU`].
    extra: usize,
    /// Reference faces outside the tolerances, described.
    failures: Vec<String>,
}

fn agreement<'a>(
    cases: impl IntoIterator<Item = (&'a str, &'a Faces, &'a [Detection])>,
) -> Agreement {
    let mut a = Agreement {
        faces: 0,
        worst_iou: 1.0,
        worst_landmark_px: 0.0,
        worst_prob: 0.0,
        extra: 0,
        failures: Vec::new(),
    };
    for (name, expected, ours) in cases {
        for (k, b) in expected.boxes.iter().enumerate() {
            a.faces += 1;
            let theirs = BBox::from_corners(b[0], b[1], b[2], b[3]);
            let Some((d, iou)) = best_match(&theirs, ours) else {
                a.failures.push(format!("{name}: face {k} {b:?} not found"));
                a.worst_iou = 0.0;
                continue;
            };
            a.worst_iou = a.worst_iou.min(iou);
            let prob = (d.score - expected.probs[k]).abs();
            a.worst_prob = a.worst_prob.max(prob);
            let landmarks = d.landmarks.map(|l| l.0).unwrap_or_default();
            let dist = landmarks
                .iter()
                .zip(&expected.landmarks[k])
                .map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1]))
                .fold(0.0f32, f32::max);
            a.worst_landmark_px = a.worst_landmark_px.max(dist);
            if iou < MATCH_IOU || dist > LANDMARK_TOLERANCE || prob > PROB_TOLERANCE {
                a.failures.push(format!(
                    "{name}: face {k} {b:?} p={}: IoU {iou:.3}, landmarks off by {dist:.2} px, \
                     probability off by {prob:.4} (ours {:?} p={})",
                    expected.probs[k], d.bbox, d.score
                ));
            }
        }
        a.extra +=
            ours.iter()
                .filter(|d| {
                    !expected.boxes.iter().any(|b| {
                        d.bbox.iou(&BBox::from_corners(b[0], b[1], b[2], b[3])) >= MATCH_IOU
                    })
                })
                .count();
    }
    a
}

#[test]
fn boxes_landmarks_and_probabilities_match_facenet_pytorch() {
    let Some(cases) = cases() else {
        return;
    };
    let photos = in_folder(cases, "photos");
    let a = agreement(
        photos
            .iter()
            .map(|(n, e, d)| (n.as_str(), &e.faces, d.as_slice())),
    );
    eprintln!(
        "mtcnn vs facenet-pytorch (same pixels), {} photos, {} faces: worst IoU {:.4}, worst \
         landmark distance {:.3} px, worst probability difference {:.6}; {} extra detections",
        photos.len(),
        a.faces,
        a.worst_iou,
        a.worst_landmark_px,
        a.worst_prob,
        a.extra
    );
    assert!(a.failures.is_empty(), "{}", a.failures.join("\n"));
    assert_eq!(a.extra, 0, "we find faces facenet-pytorch does not");
}

#[test]
fn finds_no_face_in_the_no_face_images() {
    let Some(cases) = cases() else {
        return;
    };
    for (name, expected, ours) in in_folder(cases, "no_faces") {
        assert!(
            expected.pil.boxes.is_empty(),
            "{name}: the fixture has faces"
        );
        assert!(ours.is_empty(), "{name}: found {ours:?}");
    }
}

#[test]
fn finds_every_face_facenet_finds_in_the_group_photos() {
    let Some(cases) = cases() else {
        return;
    };
    // The linzaer_* pictures are the group photos (1 to 66 faces each, 200 in all); the
    // reference here is facenet-pytorch exactly as its users run it, on Pillow's decode.
    let groups: Vec<&Case> = in_folder(cases, "photos")
        .into_iter()
        .filter(|(n, ..)| n.contains("linzaer"))
        .collect();
    let mut faces = 0;
    for (name, expected, ours) in &groups {
        for b in &expected.pil.boxes {
            let theirs = BBox::from_corners(b[0], b[1], b[2], b[3]);
            let found = best_match(&theirs, ours).is_some_and(|(_, iou)| iou >= 0.5);
            assert!(found, "{name}: face {b:?} missed");
        }
        faces += expected.pil.boxes.len();
    }
    assert!(faces >= 150, "only {faces} group faces in the fixture");
    let a = agreement(
        groups
            .iter()
            .map(|(n, e, d)| (n.as_str(), &e.pil, d.as_slice())),
    );
    eprintln!(
        "mtcnn vs facenet-pytorch on Pillow's decode, {} group photos, {} faces: worst IoU \
         {:.4}, worst landmark distance {:.3} px, worst probability difference {:.6}; {} extra \
         detections; {} faces outside the same-pixel tolerances",
        groups.len(),
        a.faces,
        a.worst_iou,
        a.worst_landmark_px,
        a.worst_prob,
        a.extra,
        a.failures.len()
    );
}

#[test]
fn max_face_drops_larger_faces() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let image = load(&media.join("photos/ageitgey_two_people.jpg"));
    let all = detector(FaceSizes::default(), &MtcnnSettings::default()).detect(&image);
    assert_eq!(all.len(), 2, "two people: {all:?}");
    let largest = all
        .iter()
        .map(|d| d.bbox.w.max(d.bbox.h))
        .fold(0.0, f32::max);
    let sizes = FaceSizes {
        max: Some(largest as u32 - 1),
        ..FaceSizes::default()
    };
    let limited = detector(sizes, &MtcnnSettings::default()).detect(&image);
    assert_eq!(limited.len(), all.len() - 1, "{all:?} vs {limited:?}");
    assert!(limited.iter().all(|d| d.bbox.w.max(d.bbox.h) < largest));
}

#[test]
fn bad_configuration_fails_when_the_detector_is_built() {
    let sizes = FaceSizes::default();
    let settings = MtcnnSettings::default();
    let cases = [
        (FaceSizes { min: 5, ..sizes }, settings),
        (
            sizes,
            MtcnnSettings {
                factor: 1.2,
                ..settings
            },
        ),
        (
            sizes,
            MtcnnSettings {
                rnet_threshold: 1.5,
                ..settings
            },
        ),
        (
            FaceSizes {
                min: 40,
                max: Some(30),
            },
            settings,
        ),
    ];
    for (sizes, settings) in cases {
        let err = Mtcnn::embedded(sizes, &settings).expect_err("invalid config accepted");
        assert!(matches!(err, Error::Config { .. }), "{err}");
        let via_build = DetectorConfig {
            min_face: sizes.min,
            max_face: sizes.max,
            backend: DetectorBackend::Mtcnn(settings),
        }
        .build();
        assert!(matches!(via_build, Err(Error::Config { .. })));
    }
}

#[test]
fn weights_of_another_model_are_a_model_error() {
    let err = Mtcnn::from_safetensors(
        FaceSizes::default(),
        &MtcnnSettings::default(),
        b"garbage",
        "x.safetensors",
    )
    .expect_err("garbage accepted");
    assert!(matches!(err, Error::Model { .. }), "{err}");
}

#[test]
fn tiny_images_give_no_faces() {
    let det = detector(FaceSizes::default(), &MtcnnSettings::default());
    for (w, h) in [(0, 0), (1, 1), (11, 11), (19, 19), (12, 40), (40, 21)] {
        let image = RgbImage::from_pixel(w, h, image::Rgb([128, 100, 90]));
        assert!(det.detect(&image).is_empty(), "{w}x{h}");
    }
}

/// Not a test: the tool `scripts/mtcnn_fixtures.py` runs to get the exact pixels we decode. With
/// `EMOTRACK_DUMP_RGB=<dir>`, writes every shared image's RGB bytes (rows top to bottom) to
/// `<dir>/<folder>__<file>.rgb`.
#[test]
#[ignore = "a tool for scripts/mtcnn_fixtures.py"]
fn dump_decoded_rgb() {
    let Some(out) = std::env::var_os("EMOTRACK_DUMP_RGB") else {
        eprintln!("set EMOTRACK_DUMP_RGB to the folder to write to");
        return;
    };
    let out = Path::new(&out);
    let Some(media) = common::media_dir() else {
        return;
    };
    for folder in ["photos", "no_faces"] {
        let dir = media.join(folder);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let target = out.join(format!("{folder}__{name}.rgb"));
            std::fs::write(&target, load(&path).as_raw())
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
}
