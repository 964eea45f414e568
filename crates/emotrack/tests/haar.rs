//! The Haar detector against OpenCV: same cascade, same parameters, same boxes.
//!
//! `tests/fixtures/haar_opencv.json` holds OpenCV 4.14's `detectMultiScale(gray, 1.1, 3,
//! minSize=(20, 20))` boxes for every shared photo (made by `scripts/haar_fixtures.py`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use emotrack::detect::haar::{HaarCascade, HaarDetector};
use emotrack::detect::{FaceSizes, HaarSettings};
use emotrack::{BBox, Error, FaceDetector};
use image::RgbImage;
use serde::Deserialize;

/// A Rust box matches an OpenCV box when they overlap at least this much.
const MATCH_IOU: f32 = 0.9;
/// Share of OpenCV's boxes that must be matched.
const MIN_MATCHED: f64 = 0.95;
/// Extra Rust boxes (no OpenCV counterpart) allowed, as a share of OpenCV's boxes.
const MAX_EXTRA: f64 = 0.05;

#[derive(Deserialize)]
struct Fixture {
    params: Params,
    images: BTreeMap<String, Vec<[i32; 4]>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    scale_factor: f32,
    min_neighbors: u32,
    min_size: [u32; 2],
}

fn frontal_face(sizes: FaceSizes, settings: &HaarSettings) -> HaarDetector {
    HaarDetector::frontal_face(sizes, settings)
        .unwrap_or_else(|e| panic!("the embedded cascade must load: {e}"))
}

/// Greedy one-to-one matching: `(matched OpenCV boxes, extra Rust boxes)`.
fn match_boxes(opencv: &[BBox], ours: &[BBox]) -> (usize, usize) {
    let mut used = vec![false; ours.len()];
    let mut matched = 0;
    for o in opencv {
        let best = ours
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .map(|(i, r)| (i, o.iou(r)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, iou)) = best
            && iou >= MATCH_IOU
        {
            used[i] = true;
            matched += 1;
        }
    }
    (matched, used.iter().filter(|u| !**u).count())
}

#[test]
fn boxes_match_opencv_on_every_shared_photo() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let text = std::fs::read_to_string(common::fixture("haar_opencv.json"))
        .unwrap_or_else(|e| panic!("tests/fixtures/haar_opencv.json: {e}"));
    let fixture: Fixture = serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture: {e}"));
    assert_eq!(fixture.params.min_size[0], fixture.params.min_size[1]);
    let sizes = FaceSizes {
        min: fixture.params.min_size[0],
        max: None,
    };
    let settings = HaarSettings {
        scale_factor: fixture.params.scale_factor,
        min_neighbors: fixture.params.min_neighbors,
    };
    let detector = frontal_face(sizes, &settings);

    let (mut total, mut matched, mut extra) = (0, 0, 0);
    println!(
        "{:<40} {:>6} {:>7} {:>5}",
        "image", "opencv", "matched", "extra"
    );
    for (name, boxes) in &fixture.images {
        let path = media.join(name);
        let image = image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_rgb8();
        let ours: Vec<BBox> = detector.detect(&image).iter().map(|d| d.bbox).collect();
        let theirs: Vec<BBox> = boxes
            .iter()
            .map(|&[x, y, w, h]| BBox {
                x: x as f32,
                y: y as f32,
                w: w as f32,
                h: h as f32,
            })
            .collect();
        let (m, e) = match_boxes(&theirs, &ours);
        println!("{name:<40} {:>6} {m:>7} {e:>5}", theirs.len());
        total += theirs.len();
        matched += m;
        extra += e;
    }
    println!("{:<40} {total:>6} {matched:>7} {extra:>5}", "total");
    assert!(total > 0, "the fixture lists no OpenCV boxes");
    assert!(
        matched as f64 >= MIN_MATCHED * total as f64,
        "only {matched} of OpenCV's {total} boxes have a Rust box with IoU >= {MATCH_IOU}"
    );
    assert!(
        extra as f64 <= MAX_EXTRA * total as f64,
        "{extra} Rust boxes have no OpenCV counterpart (OpenCV found {total})"
    );
}

#[test]
fn embedded_cascade_is_opencvs_frontal_face_default() {
    let cascade = HaarCascade::frontal_face_default().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cascade.stage_count(), 25);
    assert_eq!(cascade.window_size(), (24, 24));
    assert_eq!(cascade.weak_count(), 2913);
    assert_eq!(cascade.feature_count(), 2913);
}

#[test]
fn malformed_xml_names_the_file_and_the_problem() {
    let err = HaarCascade::from_reader("<opencv_storage><cascade>".as_bytes(), "broken.xml")
        .expect_err("truncated XML must not parse");
    let msg = err.to_string();
    assert!(matches!(err, Error::Model { .. }), "{msg}");
    assert!(
        msg.contains("broken.xml") && msg.contains("not valid XML"),
        "{msg}"
    );
}

#[test]
fn cascade_without_stages_is_rejected_with_the_missing_element() {
    let xml = "<opencv_storage><cascade><stageType>BOOST</stageType>\
               <featureType>HAAR</featureType><height>24</height><width>24</width>\
               <features><_><rects><_>0 0 2 2 -1.</_><_>0 0 1 1 2.</_></rects></_></features>\
               </cascade></opencv_storage>";
    let msg = HaarCascade::from_xml(xml, Path::new("nostages.xml"))
        .expect_err("a cascade needs stages")
        .to_string();
    assert!(
        msg.contains("nostages.xml") && msg.contains("<stages>"),
        "{msg}"
    );
}

#[test]
fn lbp_cascade_is_refused_clearly() {
    let xml = "<opencv_storage><cascade><stageType>BOOST</stageType>\
               <featureType>LBP</featureType></cascade></opencv_storage>";
    let msg = HaarCascade::from_xml(xml, Path::new("lbp.xml"))
        .expect_err("LBP is not supported")
        .to_string();
    assert!(msg.contains("LBP") && msg.contains("HAAR"), "{msg}");
}

#[test]
fn missing_cascade_file_is_an_io_error_naming_it() {
    let err = HaarCascade::from_path("/nonexistent/cascade.xml").expect_err("no such file");
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/cascade.xml"));
}

#[test]
fn cascade_file_from_disk_equals_the_embedded_one() {
    let path = common::workspace_root().join("models/haarcascade_frontalface_default.xml");
    let from_disk = HaarCascade::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
    let embedded = HaarCascade::frontal_face_default().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_disk, embedded);
}

#[test]
fn image_smaller_than_the_window_has_no_faces() {
    let detector = frontal_face(FaceSizes::default(), &HaarSettings::default());
    assert!(detector.detect(&RgbImage::new(23, 100)).is_empty());
    assert!(detector.detect(&RgbImage::new(100, 23)).is_empty());
}

#[test]
fn one_pixel_and_empty_images_have_no_faces() {
    let detector = frontal_face(FaceSizes::default(), &HaarSettings::default());
    assert!(detector.detect(&RgbImage::new(1, 1)).is_empty());
    assert!(detector.detect(&RgbImage::new(0, 0)).is_empty());
}

#[test]
fn detections_have_neighbour_scores_and_no_landmarks() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let path = media.join("photos/linzaer_imgs_2.jpg");
    let image = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (sizes, settings) = (FaceSizes::default(), HaarSettings::default());
    let faces = frontal_face(sizes, &settings).detect(&image);
    assert!(!faces.is_empty());
    for f in &faces {
        assert!(f.score > settings.min_neighbors as f32, "score {}", f.score);
        assert_eq!(f.score.fract(), 0.0);
        assert!(f.landmarks.is_none());
        assert!(f.bbox.w >= sizes.min as f32);
    }
}

#[test]
fn single_threaded_pool_gives_the_same_faces() {
    let Some(media) = common::media_dir() else {
        return;
    };
    let path = media.join("photos/linzaer_imgs_8.jpg");
    let image = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let detector = frontal_face(FaceSizes::default(), &HaarSettings::default());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let single = pool.install(|| detector.detect(&image));
    assert_eq!(single, detector.detect(&image));
    assert!(!single.is_empty());
}
