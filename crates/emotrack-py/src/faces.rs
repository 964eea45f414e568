//! The results as typed Python objects. Attributes hold the library's values at full
//! precision; `to_dict()` and `to_json()` give the one JSON shape of a face,
//! `emotrack::report::FaceJson` (rounded as the CLI and the server print it), by serialising
//! through serde, so the bindings cannot drift from the other outputs.

use std::collections::BTreeMap;

use emotrack::report::{FaceJson, FaceRecord};
use emotrack::video::{FrameReport as LibFrameReport, TrackedFace as LibTrackedFace};
use emotrack::{AnalyzedFace, BBox, EmotionScores, Landmarks};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde::Serialize;

/// `value` serialised to JSON text by serde (as every other output is).
fn json_text(value: &impl Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `value` as Python objects: its JSON text read back by `json.loads`, so the numbers are those
/// printed (an `f32` 0.8765 is 0.8765, not 0.87650001049).
fn json_object<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (json_text(value)?,))
}

/// Probabilities as `{emotion name: probability}`, in the library's order.
fn scores_dict<'py>(py: Python<'py>, scores: &EmotionScores) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (emotion, p) in emotrack::Emotion::ALL.iter().zip(scores.0) {
        dict.set_item(emotion.name(), p)?;
    }
    Ok(dict)
}

fn landmarks_list(landmarks: Option<&Landmarks>) -> Option<Vec<(f32, f32)>> {
    landmarks.map(|l| l.0.iter().map(|p| (p[0], p[1])).collect())
}

/// A face box in pixels: `x`, `y` (top-left corner), `w`, `h`; unpacks as `x, y, w, h = box`.
#[pyclass(module = "emotrack", frozen, eq)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Box {
    /// Left edge, pixels.
    #[pyo3(get)]
    x: f32,
    /// Top edge, pixels.
    #[pyo3(get)]
    y: f32,
    /// Width, pixels.
    #[pyo3(get)]
    w: f32,
    /// Height, pixels.
    #[pyo3(get)]
    h: f32,
}

impl From<BBox> for Box {
    fn from(b: BBox) -> Self {
        Self {
            x: b.x,
            y: b.y,
            w: b.w,
            h: b.h,
        }
    }
}

#[pymethods]
impl Box {
    #[new]
    fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    fn __repr__(&self) -> String {
        format!(
            "Box(x={:.1}, y={:.1}, w={:.1}, h={:.1})",
            self.x, self.y, self.w, self.h
        )
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyTuple::new(py, [self.x, self.y, self.w, self.h])?
            .as_any()
            .try_iter()?
            .into_any())
    }

    fn __len__(&self) -> usize {
        4
    }

    /// `(x, y, w, h)`.
    #[allow(clippy::wrong_self_convention)] // pyo3 methods take `&self`
    fn to_tuple(&self) -> (f32, f32, f32, f32) {
        (self.x, self.y, self.w, self.h)
    }
}

impl Box {
    pub(crate) fn bbox(&self) -> BBox {
        BBox {
            x: self.x,
            y: self.y,
            w: self.w,
            h: self.h,
        }
    }
}

/// One face in a still image: box, landmarks, detector score, the seven probabilities, the
/// most probable emotion (`label`) with its probability (`confidence`), and a vibe message.
#[pyclass(module = "emotrack", frozen)]
#[derive(Debug, Clone)]
pub struct Face {
    face: AnalyzedFace,
}

impl From<AnalyzedFace> for Face {
    fn from(face: AnalyzedFace) -> Self {
        Self { face }
    }
}

#[pymethods]
impl Face {
    /// The face box in image pixels.
    #[getter(r#box)]
    fn bbox(&self) -> Box {
        self.face.bbox.into()
    }

    /// Five `(x, y)` points: eyes, nose, mouth corners (MTCNN and YuNet; `None` with Haar).
    #[getter]
    fn landmarks(&self) -> Option<Vec<(f32, f32)>> {
        landmarks_list(self.face.landmarks.as_ref())
    }

    /// The detector's confidence that this is a face.
    #[getter]
    fn detector_score(&self) -> f32 {
        self.face.detector_score
    }

    /// `{emotion: probability}` for the seven emotions; they sum to 1.
    #[getter]
    fn probabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        scores_dict(py, &self.face.scores)
    }

    /// The most probable emotion's name.
    #[getter]
    fn label(&self) -> &'static str {
        self.face.emotion.name()
    }

    /// The label's probability.
    #[getter]
    fn confidence(&self) -> f32 {
        self.face.confidence
    }

    /// A friendly message for the emotions seen.
    #[getter]
    fn vibe(&self) -> &str {
        &self.face.vibe
    }

    /// The face as a dict, in the JSON shape of `emotrack analyze --format json` (probabilities
    /// rounded to 4 decimals, pixels to 0.1).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_object(py, &FaceJson::from(&self.face))
    }

    /// The face as one line of JSON, exactly as `emotrack analyze --format jsonl` prints it.
    fn to_json(&self) -> PyResult<String> {
        json_text(&FaceJson::from(&self.face))
    }

    fn __repr__(&self) -> String {
        let b = self.face.bbox;
        format!(
            "Face(box=({:.0}, {:.0}, {:.0}, {:.0}), label={:?}, confidence={:.2})",
            b.x,
            b.y,
            b.w,
            b.h,
            self.face.emotion.name(),
            self.face.confidence
        )
    }
}

/// One tracked face on a video frame: a stable `id`, the smoothed box and probabilities, this
/// frame's own, and the shown label (it changes only on a clear, lasting lead).
#[pyclass(module = "emotrack", frozen)]
#[derive(Debug, Clone)]
pub struct TrackedFace {
    face: LibTrackedFace,
}

#[pymethods]
impl TrackedFace {
    /// The track's id: the same face keeps it from frame to frame.
    #[getter]
    fn id(&self) -> u64 {
        self.face.id
    }

    /// The smoothed box (the one to draw).
    #[getter(r#box)]
    fn bbox(&self) -> Box {
        self.face.bbox.into()
    }

    /// This frame's detection (or the tracker's prediction on frames without one).
    #[getter]
    fn detected_box(&self) -> Box {
        self.face.detected_bbox.into()
    }

    /// Five `(x, y)` points of the last detection (MTCNN and YuNet; `None` with Haar).
    #[getter]
    fn landmarks(&self) -> Option<Vec<(f32, f32)>> {
        landmarks_list(self.face.landmarks.as_ref())
    }

    /// The last detection's score.
    #[getter]
    fn detector_score(&self) -> f32 {
        self.face.detector_score
    }

    /// This frame's own probabilities.
    #[getter]
    fn probabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        scores_dict(py, &self.face.raw)
    }

    /// The probabilities smoothed over recent frames.
    #[getter]
    fn smoothed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        scores_dict(py, &self.face.smoothed)
    }

    /// The label shown (smoothed, with hysteresis).
    #[getter]
    fn label(&self) -> &'static str {
        self.face.label.name()
    }

    /// The label's smoothed probability.
    #[getter]
    fn confidence(&self) -> f32 {
        self.face.smoothed.get(self.face.label)
    }

    /// A vibe message for the label; it changes only when the label does.
    #[getter]
    fn vibe(&self) -> &str {
        &self.face.vibe
    }

    /// The face as a dict, in the JSON shape of `emotrack video --jsonl` (without the frame's
    /// `time` and `frame`, which are on the report).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_object(py, &FaceJson::from(&self.face))
    }

    /// The face as one line of JSON.
    fn to_json(&self) -> PyResult<String> {
        json_text(&FaceJson::from(&self.face))
    }

    fn __repr__(&self) -> String {
        let b = self.face.bbox;
        format!(
            "TrackedFace(id={}, box=({:.0}, {:.0}, {:.0}, {:.0}), label={:?}, confidence={:.2})",
            self.face.id,
            b.x,
            b.y,
            b.w,
            b.h,
            self.face.label.name(),
            self.confidence()
        )
    }
}

/// One analysed video frame: its index, its time in seconds, whether faces were searched for
/// on the whole frame, and the faces shown (by id).
#[pyclass(module = "emotrack", frozen)]
#[derive(Debug, Clone)]
pub struct FrameReport {
    report: LibFrameReport,
}

impl From<LibFrameReport> for FrameReport {
    fn from(report: LibFrameReport) -> Self {
        Self { report }
    }
}

#[pymethods]
impl FrameReport {
    /// The frame's position in its source (0-based).
    #[getter]
    fn index(&self) -> u64 {
        self.report.index
    }

    /// Seconds: the file's clock, or the timestamps given to `Tracker.update`.
    #[getter]
    fn time(&self) -> f64 {
        self.report.time
    }

    /// Whether the detector searched the whole frame (see `detect_every`).
    #[getter]
    fn detected(&self) -> bool {
        self.report.detected
    }

    /// The faces shown, by track id.
    #[getter]
    fn faces(&self) -> Vec<TrackedFace> {
        self.report
            .faces
            .iter()
            .map(|f| TrackedFace { face: f.clone() })
            .collect()
    }

    /// The frame's lines of `emotrack video --jsonl`, one dict per face (`time`, `frame`, then
    /// the face's fields).
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let records: Vec<FaceRecord> = FaceRecord::from_report(&self.report).collect();
        let list = PyList::empty(py);
        for record in &records {
            list.append(json_object(py, record)?)?;
        }
        Ok(list)
    }

    /// `{"index", "time", "detected", "faces": [face dicts]}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("index", self.report.index)?;
        dict.set_item("time", self.report.time)?;
        dict.set_item("detected", self.report.detected)?;
        let faces = PyList::empty(py);
        for f in &self.report.faces {
            faces.append(json_object(py, &FaceJson::from(f))?)?;
        }
        dict.set_item("faces", faces)?;
        Ok(dict)
    }

    fn __len__(&self) -> usize {
        self.report.faces.len()
    }

    fn __repr__(&self) -> String {
        let labels: BTreeMap<u64, &str> = self
            .report
            .faces
            .iter()
            .map(|f| (f.id, f.label.name()))
            .collect();
        format!(
            "FrameReport(index={}, time={:.3}, faces={labels:?})",
            self.report.index, self.report.time
        )
    }
}
