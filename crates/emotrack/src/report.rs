//! The one JSON shape of a face, shared by every output: `emotrack analyze --format json`,
//! `emotrack video --jsonl`, and whatever else serialises an [`AnalyzedFace`] or a
//! [`TrackedFace`] (both serialise through [`FaceJson`]).
//!
//! ```json
//! {"id": 1, "box": {"x": 212.4, "y": 80.1, "w": 96.0, "h": 96.0},
//!  "detected_box": {"x": 213.0, "y": 79.5, "w": 95.2, "h": 97.1},
//!  "landmarks": [[240.2, 118.9], [281.7, 120.3], [262.0, 141.5], [243.1, 160.2], [278.4, 161.0]],
//!  "detector_score": 0.9998,
//!  "probabilities": {"angry": 0.0123, "disgust": 0.0004, "fear": 0.0211, "happy": 0.8832,
//!                    "neutral": 0.0601, "sad": 0.0102, "surprise": 0.0127},
//!  "smoothed": {"angry": 0.0150, "disgust": 0.0005, "fear": 0.0230, "happy": 0.8701,
//!               "neutral": 0.0688, "sad": 0.0111, "surprise": 0.0115},
//!  "label": "happy", "confidence": 0.8701, "vibe": "That smile could power a city."}
//! ```
//!
//! `id`, `detected_box` and `smoothed` are there for tracked faces (video) only, `landmarks`
//! when the detector gives them (MTCNN, YuNet). Probabilities are rounded to 4 decimals, coordinates
//! to 0.1 pixel (finer is noise). A video's JSONL holds one [`FaceRecord`] per frame per face:
//! the face's fields with the frame's `time` (seconds) and `frame` (index) in front.
//!
//! ```
//! use emotrack::report::FaceRecord;
//! let line = r#"{"time":0.04,"frame":1,"id":1,"box":{"x":1.0,"y":2.0,"w":30.0,"h":30.0},
//!   "detector_score":1.0,"probabilities":{"angry":0,"disgust":0,"fear":0,"happy":1,
//!   "neutral":0,"sad":0,"surprise":0},"label":"happy","confidence":1.0,"vibe":"hi"}"#;
//! let record: FaceRecord = serde_json::from_str(line)?;
//! assert_eq!(record.face.label, emotrack::Emotion::Happy);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::analyze::AnalyzedFace;
use crate::track::TrackId;
use crate::types::{BBox, Emotion, EmotionScores, Landmarks};
use crate::video::{FrameReport, TrackedFace};

/// Probabilities, scores and times keep this many decimals.
const DECIMALS: i32 = 4;

/// Pixel coordinates keep this many decimals.
const PIXEL_DECIMALS: i32 = 1;

/// One face as JSON: the same fields whether it comes from a still image ([`AnalyzedFace`]) or
/// a tracked video face ([`TrackedFace`]). See the [module docs](self) for an example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceJson {
    /// Track id (tracked faces only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TrackId>,
    /// The box drawn: the detection for a still image, the smoothed box for a tracked face.
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// This frame's detection, or the tracker's prediction on frames without one (tracked
    /// faces only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_box: Option<BBox>,
    /// Five landmarks `[x, y]` (when the detector gives them: MTCNN, YuNet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Landmarks>,
    /// Detector confidence (see [`crate::Detection::score`]).
    pub detector_score: f32,
    /// This image's (this frame's) probabilities, keyed by emotion name.
    pub probabilities: EmotionScores,
    /// Probabilities smoothed over recent frames (tracked faces only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothed: Option<EmotionScores>,
    /// The label shown: the most probable emotion for a still image, the smoothed label with
    /// hysteresis for a tracked face.
    pub label: Emotion,
    /// The label's probability: in `smoothed` for a tracked face, in `probabilities` otherwise.
    pub confidence: f32,
    /// A friendly message for the label.
    pub vibe: String,
}

/// One line of a video's JSONL: a face on a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceRecord {
    /// Seconds (see [`FrameReport::time`]).
    pub time: f64,
    /// Frame index (see [`FrameReport::index`]).
    pub frame: u64,
    /// The face, its fields flattened into the line.
    #[serde(flatten)]
    pub face: FaceJson,
}

impl FaceRecord {
    /// The records of a frame: one per face shown, rounded like [`FaceJson`].
    pub fn from_report(report: &FrameReport) -> impl Iterator<Item = FaceRecord> + '_ {
        let time = round_f64(report.time, DECIMALS);
        report.faces.iter().map(move |f| FaceRecord {
            time,
            frame: report.index,
            face: f.into(),
        })
    }
}

impl From<&AnalyzedFace> for FaceJson {
    fn from(f: &AnalyzedFace) -> Self {
        Self {
            id: None,
            bbox: round_box(&f.bbox),
            detected_box: None,
            landmarks: f.landmarks.as_ref().map(round_landmarks),
            detector_score: round(f.detector_score, DECIMALS),
            probabilities: round_scores(&f.scores),
            smoothed: None,
            label: f.emotion,
            confidence: round(f.confidence, DECIMALS),
            vibe: f.vibe.clone(),
        }
    }
}

impl From<AnalyzedFace> for FaceJson {
    fn from(f: AnalyzedFace) -> Self {
        Self::from(&f)
    }
}

impl From<&TrackedFace> for FaceJson {
    fn from(f: &TrackedFace) -> Self {
        Self {
            id: Some(f.id),
            bbox: round_box(&f.bbox),
            detected_box: Some(round_box(&f.detected_bbox)),
            landmarks: f.landmarks.as_ref().map(round_landmarks),
            detector_score: round(f.detector_score, DECIMALS),
            probabilities: round_scores(&f.raw),
            smoothed: Some(round_scores(&f.smoothed)),
            label: f.label,
            confidence: round(f.smoothed.get(f.label), DECIMALS),
            vibe: f.vibe.clone(),
        }
    }
}

impl From<TrackedFace> for FaceJson {
    fn from(f: TrackedFace) -> Self {
        Self::from(&f)
    }
}

/// `v` rounded to `decimals` decimals. In `f32` this is the float nearest the decimal, which
/// serde_json prints as that decimal.
fn round(v: f32, decimals: i32) -> f32 {
    let scale = 10f32.powi(decimals);
    (v * scale).round() / scale
}

fn round_f64(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

fn round_box(b: &BBox) -> BBox {
    let r = |v| round(v, PIXEL_DECIMALS);
    BBox {
        x: r(b.x),
        y: r(b.y),
        w: r(b.w),
        h: r(b.h),
    }
}

fn round_landmarks(l: &Landmarks) -> Landmarks {
    Landmarks(l.0.map(|p| p.map(|v| round(v, PIXEL_DECIMALS))))
}

fn round_scores(s: &EmotionScores) -> EmotionScores {
    EmotionScores(s.0.map(|p| round(p, DECIMALS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox() -> BBox {
        BBox {
            x: 10.04,
            y: 20.06,
            w: 30.0,
            h: 31.25,
        }
    }

    fn scores() -> EmotionScores {
        EmotionScores([0.012_34, 0.0, 0.0, 0.876_54, 0.111_12, 0.0, 0.0])
    }

    fn still() -> AnalyzedFace {
        AnalyzedFace {
            bbox: bbox(),
            landmarks: Some(Landmarks([[1.04, 2.0]; 5])),
            detector_score: 0.999_87,
            scores: scores(),
            emotion: Emotion::Happy,
            confidence: 0.876_54,
            vibe: "hi".into(),
        }
    }

    fn tracked() -> TrackedFace {
        TrackedFace {
            id: 7,
            bbox: bbox(),
            detected_bbox: bbox(),
            landmarks: None,
            detector_score: 1.0,
            raw: scores(),
            smoothed: EmotionScores([0.0, 0.0, 0.0, 0.4, 0.6, 0.0, 0.0]),
            label: Emotion::Neutral,
            vibe: "calm".into(),
        }
    }

    /// As a reader sees it: through the JSON text (an `f32` becomes its shortest decimal).
    fn json(value: impl Serialize) -> serde_json::Value {
        let text = serde_json::to_string(&value).expect("serialises");
        serde_json::from_str(&text).expect("parses")
    }

    #[test]
    fn a_still_face_has_named_probabilities_a_label_and_no_track_fields() {
        let v = json(still());
        assert_eq!(
            v["box"],
            serde_json::json!({"x": 10.0, "y": 20.1, "w": 30.0, "h": 31.3})
        );
        assert_eq!(v["probabilities"]["happy"], 0.8765);
        assert_eq!(v["probabilities"]["angry"], 0.0123);
        assert_eq!(v["label"], "happy");
        assert_eq!(v["confidence"], 0.8765);
        assert_eq!(v["detector_score"], 0.9999);
        assert_eq!(v["landmarks"][0], serde_json::json!([1.0, 2.0]));
        for absent in [
            "id",
            "detected_box",
            "smoothed",
            "scores",
            "emotion",
            "bbox",
        ] {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
    }

    #[test]
    fn a_tracked_face_has_its_id_both_boxes_and_the_smoothed_confidence() {
        let v = json(tracked());
        assert_eq!(v["id"], 7);
        assert_eq!(v["detected_box"]["y"], 20.1);
        assert_eq!(v["probabilities"]["happy"], 0.8765);
        assert_eq!(v["smoothed"]["neutral"], 0.6);
        assert_eq!(v["label"], "neutral");
        assert_eq!(v["confidence"], 0.6, "the label's smoothed probability");
        assert!(v.get("landmarks").is_none());
    }

    #[test]
    fn a_jsonl_record_flattens_the_face_after_time_and_frame_and_reads_back() {
        let report = FrameReport {
            index: 3,
            time: 0.123_456,
            detected: true,
            faces: vec![tracked()],
        };
        let records: Vec<_> = FaceRecord::from_report(&report).collect();
        let line = serde_json::to_string(&records[0]).expect("serialises");
        assert!(
            line.starts_with(r#"{"time":0.1235,"frame":3,"id":7,"box":"#),
            "{line}"
        );
        let back: FaceRecord = serde_json::from_str(&line).expect("reads back");
        assert_eq!(back, records[0]);
        assert_eq!(back.face, FaceJson::from(&tracked()));
    }
}
