//! One stream's analysis, a frame at a time: feed it frames (an image and a timestamp), get a
//! [`FrameReport`] back. No FFmpeg: the caller brings the frames (a WebSocket, a camera API, a
//! test). [`VideoPipeline`](super::VideoPipeline) runs the same steps on decoded video, so
//! files, cameras and browser streams share one implementation.
//!
//! Each frame: faces are searched for on the whole frame every `detect_every`-th frame and
//! around the known ones in between ([`FaceDetector::detect_near`]); the [`Tracker`] matches
//! them to tracks; every visible track is classified; smoothing and hysteresis give the shown
//! probabilities and label; a vibe message is picked when a track's label changes.
//!
//! Smoothing measures time, not frames: settings count frames at a nominal rate (30 fps unless
//! [`StreamAnalyzer::with_frame_rate`] says otherwise), and a frame that comes later than
//! that weighs as the nominal frames it stands for. A browser sending 8 frames a second gets
//! the same steadiness per second as a 30 fps file.
//!
//! [`FaceDetector::detect_near`]: crate::detect::FaceDetector::detect_near

use std::collections::HashMap;

use super::pipeline::{FrameReport, PipelineConfig, TrackedFace};
use crate::analyze::{AnalyzedFace, Analyzer};
use crate::error::Result;
use crate::imgproc::AsRgbView;
use crate::track::{NOMINAL_FPS, Track, TrackId, Tracker};
use crate::types::{BBox, Detection, Emotion};

/// Between whole-frame detections, tracks missed on more than this many frames in a row are not
/// searched for around their last box (see [`PipelineConfig::detect_every`]).
const SEARCHED_MISSES: u32 = 1;

/// Frames closer than this to one nominal frame count as exactly one (a file's timestamps,
/// rounded, are never exactly `1 / rate` apart).
const NOMINAL_TOLERANCE: f32 = 1e-3;

/// Tracking, classification and smoothing of one stream of frames (one video, one camera,
/// one WebSocket connection): the state that must not mix between streams.
///
/// ```no_run
/// # fn main() -> emotrack::error::Result<()> {
/// use emotrack::video::{PipelineConfig, StreamAnalyzer};
/// use emotrack::imgproc::{DecodeLimits, load_image};
/// use emotrack::{Analyzer, AnalyzerConfig};
///
/// let analyzer = Analyzer::new(AnalyzerConfig::default())?;
/// let mut stream = StreamAnalyzer::new(PipelineConfig::default())?;
/// for (i, path) in ["frame1.jpg", "frame2.jpg"].iter().enumerate() {
///     let image = load_image(path.as_ref(), DecodeLimits::default())?;
///     let report = stream.analyze(&analyzer, &image, i as f64 / 8.0);
///     for face in &report.faces {
///         println!("#{} {} ({})", face.id, face.label, face.vibe);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamAnalyzer {
    config: PipelineConfig,
    tracker: Tracker,
    /// Each track's shown label and the vibe picked for it.
    vibes: HashMap<TrackId, (Emotion, String)>,
    frame_rate: f64,
    last_time: Option<f64>,
    /// Frames analysed so far (the next frame's index).
    frames: u64,
}

/// A frame between its tracker update and its classification: the visible tracks and the boxes
/// to classify (see [`StreamAnalyzer::track`]).
#[derive(Debug)]
pub(crate) struct TrackedFrame {
    index: u64,
    time: f64,
    detected: bool,
    ids: Vec<TrackId>,
    boxes: Vec<Detection>,
}

impl TrackedFrame {
    /// The boxes of the visible tracks, to classify.
    pub(crate) fn boxes(&self) -> &[Detection] {
        &self.boxes
    }
}

impl StreamAnalyzer {
    /// A fresh stream with validated settings, whose frame counts refer to [`NOMINAL_FPS`].
    pub fn new(config: PipelineConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            tracker: Tracker::new(config.tracker)?,
            vibes: HashMap::new(),
            frame_rate: NOMINAL_FPS,
            last_time: None,
            frames: 0,
        })
    }

    /// The rate the settings' frame counts refer to: a file's own frame rate, so that analysing
    /// every frame of it counts frames exactly (ignored unless finite and positive).
    pub fn with_frame_rate(mut self, fps: f64) -> Self {
        if fps.is_finite() && fps > 0.0 {
            self.frame_rate = fps;
            self.tracker = self.tracker.with_frame_rate(fps);
        }
        self
    }

    /// The settings.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Frames analysed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Changes the settings. Tracker settings apply to a fresh start (as [`Self::reset`]);
    /// a new `detect_every` alone keeps the tracks.
    pub fn set_config(&mut self, config: PipelineConfig) -> Result<()> {
        config.validate()?;
        if config.tracker != self.config.tracker {
            self.tracker = Tracker::new(config.tracker)?.with_frame_rate(self.frame_rate);
            self.vibes.clear();
        }
        self.config = config;
        Ok(())
    }

    /// Forgets every face: the next frame starts new tracks, numbered from 1.
    pub fn reset(&mut self) {
        self.tracker.reset();
        self.vibes.clear();
        self.last_time = None;
        self.frames = 0;
    }

    /// Analyses the next frame, taken at `time` seconds (any origin; only differences count).
    pub fn analyze(
        &mut self,
        analyzer: &Analyzer,
        image: &impl AsRgbView,
        time: f64,
    ) -> FrameReport {
        let image = &image.as_rgb_view();
        let detector = analyzer.detector();
        let whole = self
            .frames
            .is_multiple_of(u64::from(self.config.detect_every.max(1)));
        let detections = if whole {
            detector.detect_frame(image)
        } else {
            detector.detect_near(image, &self.known_boxes())
        };
        let tracked = self.track(self.frames, time, whole, &detections);
        let faces = analyzer.classify_detections(image, tracked.boxes());
        self.report(analyzer, tracked, &faces)
    }

    /// Where to search for known faces between whole-frame detections: faces seen on one of
    /// the last two frames, at their predicted place (the next whole-frame pass re-finds the
    /// others; searching every lost track until it expires would cost more than the faces
    /// being followed).
    pub(crate) fn known_boxes(&self) -> Vec<BBox> {
        self.tracker
            .tracks()
            .iter()
            .filter(|t| t.misses <= SEARCHED_MISSES)
            .map(Track::predicted)
            .collect()
    }

    /// The first half of a frame's analysis: matches its detections to the tracks and says
    /// which boxes to classify. `index` is the frame's position in its source.
    pub(crate) fn track(
        &mut self,
        index: u64,
        time: f64,
        detected: bool,
        detections: &[Detection],
    ) -> TrackedFrame {
        let frames = self.nominal_frames_since_last(time);
        self.tracker.update_for(detections, frames);
        let (ids, boxes) = self
            .tracker
            .visible()
            .map(|t| {
                let d = Detection {
                    bbox: t.raw_bbox,
                    score: t.detector_score,
                    landmarks: t.landmarks,
                };
                (t.id, d)
            })
            .unzip();
        self.frames = index + 1;
        TrackedFrame {
            index,
            time,
            detected,
            ids,
            boxes,
        }
    }

    /// The second half: records the classified `faces` (in the order of
    /// [`TrackedFrame::boxes`]) and builds the report.
    pub(crate) fn report(
        &mut self,
        analyzer: &Analyzer,
        tracked: TrackedFrame,
        faces: &[AnalyzedFace],
    ) -> FrameReport {
        for (id, face) in tracked.ids.iter().zip(faces) {
            self.tracker.observe(*id, face.scores);
        }
        FrameReport {
            index: tracked.index,
            time: tracked.time,
            detected: tracked.detected,
            faces: self.shown_faces(analyzer),
        }
    }

    /// How many nominal frames passed since the previous frame (1 for the first).
    fn nominal_frames_since_last(&mut self, time: f64) -> f32 {
        let frames = match self.last_time {
            Some(last) => ((time - last) * self.frame_rate) as f32,
            None => 1.0,
        };
        self.last_time = Some(time);
        if (frames - 1.0).abs() < NOMINAL_TOLERANCE {
            1.0
        } else {
            frames
        }
    }

    /// The visible tracks that have emotions, by id, each with its vibe (a new message only
    /// when the shown label changes).
    fn shown_faces(&mut self, analyzer: &Analyzer) -> Vec<TrackedFace> {
        let mut shown = Vec::new();
        for t in self.tracker.visible() {
            let (Some(raw), Some(smoothed), Some(label)) = (t.raw_scores, t.scores, t.label) else {
                continue;
            };
            let vibe = match self.vibes.get(&t.id) {
                Some((l, v)) if *l == label => v.clone(),
                _ => {
                    let v = analyzer.vibes().message(&smoothed).to_owned();
                    self.vibes.insert(t.id, (label, v.clone()));
                    v
                }
            };
            shown.push(TrackedFace {
                id: t.id,
                bbox: t.bbox,
                detected_bbox: t.raw_bbox,
                landmarks: t.landmarks,
                detector_score: t.detector_score,
                raw,
                smoothed,
                label,
                vibe,
            });
        }
        shown.sort_by_key(|f| f.id);
        let tracks = self.tracker.tracks();
        if self.vibes.len() > tracks.len() {
            self.vibes
                .retain(|id, _| tracks.iter().any(|t| t.id == *id));
        }
        shown
    }
}
