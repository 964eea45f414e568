//! `emotrack.Tracker`: one stream's tracking and smoothing over the caller's own frames (an
//! OpenCV capture loop), through the library's `StreamAnalyzer`, the analysis the server runs
//! for each WebSocket.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use emotrack::track::NOMINAL_FPS;
use emotrack::video::{PipelineConfig, PipelineOverrides, StreamAnalyzer};
use pyo3::prelude::*;

use crate::analyzer::Analyzer;
use crate::errors;
use crate::faces::FrameReport;
use crate::input::Picture;

/// Follows faces from frame to frame: stable ids, smoothed probabilities and steady labels.
///
/// Give it an `Analyzer` (or a `detector` name for a new one), then call `update(frame)` for
/// each frame of a stream, in order. `timestamp` is the frame's time in seconds (any origin);
/// without one, frames are taken `1 / frame_rate` apart (default 30 fps). Smoothing counts
/// time, so a slow loop is as steady per second as a fast one.
///
/// Tracking options (library defaults when `None`; the flags of `emotrack video`):
/// `detect_every` (search the whole frame every N frames, around known faces in between;
/// default 1), `min_hits` (matches before a face is shown; 3), `max_age` (frames a face
/// survives unseen; 30), `iou_threshold` (box overlap to match; 0.3), `window` (frames of
/// probability smoothing; 8) or instead `ema` (an exponential moving average: the newest
/// frame's weight, 0-1; 0.2 reacts about as fast as 8 frames), `box_alpha` (the newest box's
/// weight; 0.3).
///
/// The label rule (when the shown label changes; seconds, probabilities 0-1): another emotion
/// must lead the shown one by `label_margin` (0.2) for `label_hold` seconds (0.5), or by
/// `label_fast_margin` (0.5) for `label_fast_hold` seconds (0.04); a label stays up at least
/// `label_min_show` seconds (0.5). Higher margins and holds are steadier, lower ones follow a
/// change sooner.
///
/// One tracker is one stream: use a tracker per camera. Calls on one tracker are serialised.
#[pyclass(module = "emotrack", frozen)]
#[derive(Debug)]
pub struct Tracker {
    analyzer: Arc<emotrack::Analyzer>,
    stream: Mutex<StreamAnalyzer>,
    frame_rate: f64,
}

#[pymethods]
impl Tracker {
    #[new]
    #[pyo3(signature = (analyzer = None, *, detector = "yunet", frame_rate = None,
                        detect_every = None, min_hits = None, max_age = None,
                        iou_threshold = None, window = None, ema = None, box_alpha = None,
                        label_margin = None, label_hold = None, label_fast_margin = None,
                        label_fast_hold = None, label_min_show = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        analyzer: Option<&Analyzer>,
        detector: &str,
        frame_rate: Option<f64>,
        detect_every: Option<u32>,
        min_hits: Option<u32>,
        max_age: Option<u32>,
        iou_threshold: Option<f32>,
        window: Option<usize>,
        ema: Option<f32>,
        box_alpha: Option<f32>,
        label_margin: Option<f32>,
        label_hold: Option<f32>,
        label_fast_margin: Option<f32>,
        label_fast_hold: Option<f32>,
        label_min_show: Option<f32>,
    ) -> PyResult<Self> {
        let tracking = PipelineOverrides {
            detect_every,
            min_hits,
            max_age,
            iou: iou_threshold,
            window,
            ema,
            box_alpha,
            label_margin,
            label_hold,
            label_fast_margin,
            label_fast_hold,
            label_min_show,
        }
        .apply(&PipelineConfig::default())
        .map_err(|e| errors::to_py(py, &e))?;
        let analyzer = Analyzer::given_or_named(py, analyzer, detector)?;
        let frame_rate = frame_rate.unwrap_or(NOMINAL_FPS);
        if !(frame_rate.is_finite() && frame_rate > 0.0) {
            return Err(errors::bad_config(
                py,
                format!("frame_rate is {frame_rate}, it must be positive"),
            ));
        }
        let stream = StreamAnalyzer::new(tracking)
            .map_err(|e| errors::to_py(py, &e))?
            .with_frame_rate(frame_rate);
        Ok(Self {
            analyzer,
            stream: Mutex::new(stream),
            frame_rate,
        })
    }

    /// Analyses the stream's next frame and returns its `FrameReport` (the faces shown, with
    /// ids). `frame` is any image `Analyzer.analyze` takes; `bgr=True` for OpenCV's frames.
    /// `timestamp`: seconds, increasing (default: the previous frame's plus `1 / frame_rate`).
    #[pyo3(signature = (frame, timestamp = None, *, bgr = false))]
    fn update(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        timestamp: Option<f64>,
        bgr: bool,
    ) -> PyResult<FrameReport> {
        if let Some(t) = timestamp
            && !t.is_finite()
        {
            return Err(errors::bad_config(
                py,
                format!("timestamp is {t}, it must be a finite number of seconds"),
            ));
        }
        let frame = Picture::extract(frame, bgr)?.load(py, &self.analyzer)?;
        let image = frame.view()?;
        let analyzer = &self.analyzer;
        let report = py.detach(|| {
            let mut stream = lock(&self.stream);
            let time = timestamp.unwrap_or(stream.frames() as f64 / self.frame_rate);
            stream.analyze(analyzer, &image, time)
        });
        Ok(report.into())
    }

    /// Forgets every face: the next frame starts new tracks, numbered from 1.
    fn reset(&self, py: Python<'_>) {
        py.detach(|| lock(&self.stream).reset());
    }

    /// Frames analysed so far.
    #[getter]
    fn frames(&self, py: Python<'_>) -> u64 {
        py.detach(|| lock(&self.stream).frames())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Tracker(frames={}, frame_rate={})",
            self.frames(py),
            self.frame_rate
        )
    }
}

/// The stream's state. A panic in an analysis (a bug; Python sees a `PanicException`) leaves
/// at worst one frame half-recorded, which the next frames outweigh, so a poisoned lock is
/// taken over rather than failing every later frame.
fn lock(stream: &Mutex<StreamAnalyzer>) -> MutexGuard<'_, StreamAnalyzer> {
    stream.lock().unwrap_or_else(PoisonError::into_inner)
}
