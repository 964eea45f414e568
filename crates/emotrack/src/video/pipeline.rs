//! The staged pipeline: decode → search (whole-frame face detection) → analyse (faces around
//! known ones, classify, track) → output, each stage on its own thread, joined by bounded
//! channels.
//!
//! * Files: every frame, in order; the channels hold a couple of frames so the stages overlap
//!   and a slow stage slows the others down (back pressure) instead of filling memory.
//! * Live sources: the decoder keeps reading (so FFmpeg never buffers a backlog) and hands
//!   frames over through a one-slot mailbox where the newest frame replaces a stale one: at
//!   most one frame waits, and the analysis always works on the latest picture.
//!
//! The whole-frame searches depend on nothing but the frame, so they run ahead of the analysis
//! (two frames at once when every frame is searched). Inside the analysis stage, frame `t + 1`
//! is searched around the known faces while frame `t` is classified (that search needs only the
//! tracker's boxes, never the emotions). All of it shares the cores through the rayon pool, and
//! the reports are exactly those of a one-frame-at-a-time loop.
//!
//! Frame buffers go back from the output stage to the decoder, so the per-frame path does not
//! allocate images after the first few frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Serialize;

use super::decode::{Decoder, StopCause, VideoInput};
use super::mailbox::{LatestReceiver, LatestSender, latest};
use super::stream::StreamAnalyzer;
use crate::analyze::Analyzer;
use crate::annotate::FaceOverlay;
use crate::error::{Error, Result};
use crate::imgproc::AsRgbView;
use crate::track::{ScoreSmoothing, TrackId, TrackerConfig};
use crate::types::{BBox, Detection, Emotion, EmotionScores, Landmarks};

/// Default for [`PipelineConfig::detect_every`].
pub const DEFAULT_DETECT_EVERY: u32 = 1;

/// Frames a file's decode and output channels hold: enough for the stages to overlap.
const QUEUE_FRAMES: usize = 2;

/// Most frames the search stage may run ahead of the analysis (files).
const MAX_AHEAD: usize = 8;

/// How often the watchdog checks for Ctrl-C and stalled sources.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Settings of the video pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineConfig {
    /// Tracker and smoothing settings (each documents its default).
    pub tracker: TrackerConfig,
    /// Run the face detector on the whole frame every N-th frame (default 1: every frame); in
    /// between, each known face is searched for only in a small region around where it was
    /// ([`FaceDetector::detect_near`](crate::detect::FaceDetector::detect_near)), a fraction of the cost. Classification still runs on every frame.
    /// New faces appear up to N-1 frames late; raise N when the detector is the bottleneck.
    pub detect_every: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            tracker: TrackerConfig::default(),
            detect_every: DEFAULT_DETECT_EVERY,
        }
    }
}

impl PipelineConfig {
    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        self.tracker.validate()?;
        if self.detect_every == 0 {
            return Err(Error::config(
                "detect_every is 0, it must be at least 1 (1 = detect on every frame)",
            ));
        }
        Ok(())
    }
}

/// Some of a [`PipelineConfig`]'s settings, to change in another (`None` keeps its value):
/// what a live stream's client (the server's query and `settings` messages) and a Python
/// caller (`Tracker`, `video`) give. The names are those of `emotrack video`'s flags.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineOverrides {
    /// [`PipelineConfig::detect_every`].
    pub detect_every: Option<u32>,
    /// [`TrackerConfig::min_hits`].
    pub min_hits: Option<u32>,
    /// [`TrackerConfig::max_age`].
    pub max_age: Option<u32>,
    /// [`TrackerConfig::iou_threshold`].
    pub iou: Option<f32>,
    /// [`TrackerConfig::box_alpha`].
    pub box_alpha: Option<f32>,
    /// Smooth the probabilities over this many frames ([`ScoreSmoothing::Window`]).
    pub window: Option<usize>,
    /// Smooth them with an exponential moving average of this weight instead
    /// ([`ScoreSmoothing::Ema`]).
    pub ema: Option<f32>,
    /// [`LabelRule::margin`](crate::track::LabelRule::margin).
    pub label_margin: Option<f32>,
    /// [`LabelRule::hold`](crate::track::LabelRule::hold).
    pub label_hold: Option<f32>,
    /// [`LabelRule::fast_margin`](crate::track::LabelRule::fast_margin).
    pub label_fast_margin: Option<f32>,
    /// [`LabelRule::fast_hold`](crate::track::LabelRule::fast_hold).
    pub label_fast_hold: Option<f32>,
    /// [`LabelRule::min_show`](crate::track::LabelRule::min_show).
    pub label_min_show: Option<f32>,
}

impl PipelineOverrides {
    /// `base` with the given settings replaced. `window` and `ema` are two ways of smoothing:
    /// either replaces `base`'s, and giving both is an error. The values themselves are checked
    /// where the config is used ([`PipelineConfig::validate`]).
    pub fn apply(&self, base: &PipelineConfig) -> Result<PipelineConfig> {
        let mut config = *base;
        let t = &mut config.tracker;
        t.scores = match (self.window, self.ema) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "give window (a moving average over frames) or ema (an exponential one), \
                     not both",
                ));
            }
            (Some(window), None) => ScoreSmoothing::Window { window },
            (None, Some(alpha)) => ScoreSmoothing::Ema { alpha },
            (None, None) => t.scores,
        };
        let set = |field: &mut f32, value: Option<f32>| *field = value.unwrap_or(*field);
        set(&mut t.iou_threshold, self.iou);
        set(&mut t.box_alpha, self.box_alpha);
        set(&mut t.label.margin, self.label_margin);
        set(&mut t.label.hold, self.label_hold);
        set(&mut t.label.fast_margin, self.label_fast_margin);
        set(&mut t.label.fast_hold, self.label_fast_hold);
        set(&mut t.label.min_show, self.label_min_show);
        t.min_hits = self.min_hits.unwrap_or(t.min_hits);
        t.max_age = self.max_age.unwrap_or(t.max_age);
        config.detect_every = self.detect_every.unwrap_or(config.detect_every);
        Ok(config)
    }
}

/// One face shown on a frame: a visible track with its emotions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "crate::report::FaceJson")]
pub struct TrackedFace {
    /// Stable track id.
    pub id: TrackId,
    /// The smoothed box (what is drawn).
    pub bbox: BBox,
    /// This frame's detection, or the carried prediction on frames without detection.
    pub detected_bbox: BBox,
    /// Landmarks of the last detection (MTCNN, YuNet).
    pub landmarks: Option<Landmarks>,
    /// Score of the last detection.
    pub detector_score: f32,
    /// This frame's probabilities.
    pub raw: EmotionScores,
    /// Smoothed probabilities.
    pub smoothed: EmotionScores,
    /// The label shown (smoothed, with hysteresis).
    pub label: Emotion,
    /// A vibe message for the label; it changes only when the label does.
    pub vibe: String,
}

impl TrackedFace {
    /// What [`crate::annotate::Annotator`] draws for this face: the smoothed box and
    /// probabilities, the track id, the shown label and its vibe (no landmarks: they would
    /// jump between detections).
    pub fn overlay(&self) -> FaceOverlay<'_> {
        FaceOverlay {
            bbox: self.bbox,
            landmarks: None,
            id: Some(self.id),
            label: self.label,
            scores: &self.smoothed,
            vibe: &self.vibe,
        }
    }
}

/// Everything known about one analysed frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameReport {
    /// Position in the decoded sequence (0-based; live sources count dropped frames too).
    pub index: u64,
    /// Seconds: the player's clock for files, the time since the first frame for live sources.
    pub time: f64,
    /// Whether the face detector ran on the whole frame (see [`PipelineConfig::detect_every`]).
    pub detected: bool,
    /// The faces shown, by track id.
    pub faces: Vec<TrackedFace>,
}

/// Time spent in each stage, summed over the frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Waiting for ffmpeg's decoded frames.
    pub decode: Duration,
    /// Face detection (the whole-frame searches run on their own stage, beside the others).
    pub detect: Duration,
    /// Emotion classification (crops and CNN).
    pub classify: Duration,
    /// Tracking, smoothing and building the report.
    pub track: Duration,
    /// The caller's output (drawing, encoding, writing records).
    pub output: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "lowercase")]
pub enum EndReason {
    /// The source ended (end of file, the duration limit, or a stream that closed).
    Finished,
    /// Stopped on request (Ctrl-C).
    Stopped,
    /// A live source sent no frame within the stall timeout.
    Stalled,
    /// FFmpeg reported an error after some frames (a damaged or truncated file, a dropped
    /// connection); the frames before it were processed. The text is FFmpeg's message.
    Failed(String),
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStats {
    /// Frames read from the decoder.
    pub decoded: u64,
    /// Frames analysed and given to the output.
    pub analysed: u64,
    /// Stale frames dropped (live sources).
    pub dropped: u64,
    /// Frames the source was expected to have (files), for spotting truncation.
    pub expected: Option<u64>,
    /// How the run ended.
    pub end: EndReason,
    /// FFmpeg's error messages, if any, even when the run ended normally.
    pub ffmpeg_messages: String,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// Time per stage.
    pub stages: StageTimes,
}

/// A decoded frame travelling through the stages.
#[derive(Debug)]
struct Frame {
    index: u64,
    time: f64,
    image: RgbImage,
}

/// A frame on its way from the search stage to the analysis: the faces found on the whole
/// frame when it was one to search whole (see [`PipelineConfig::detect_every`]), and how long
/// that took.
struct Searched {
    frame: Frame,
    whole: Option<Vec<Detection>>,
    took: Duration,
}

/// A link between two stages: a bounded queue (files) or a newest-wins slot (live).
enum LinkTx<T> {
    Queue(mpsc::SyncSender<T>),
    Latest(LatestSender<T>),
}

enum LinkRx<T> {
    Queue(mpsc::Receiver<T>),
    Latest(LatestReceiver<T>),
}

/// A link for a live source (newest wins) or a file (a queue of `capacity` items).
fn link<T>(live: bool, capacity: usize) -> (LinkTx<T>, LinkRx<T>) {
    if live {
        let (tx, rx) = latest();
        (LinkTx::Latest(tx), LinkRx::Latest(rx))
    } else {
        let (tx, rx) = mpsc::sync_channel(capacity);
        (LinkTx::Queue(tx), LinkRx::Queue(rx))
    }
}

impl<T> LinkTx<T> {
    /// Ok(Some(stale item)) when a live item was replaced; Err when the receiver is gone.
    fn send(&self, item: T) -> std::result::Result<Option<T>, ()> {
        match self {
            LinkTx::Queue(tx) => tx.send(item).map(|()| None).map_err(|_| ()),
            LinkTx::Latest(tx) => tx.send(item).map_err(|_| ()),
        }
    }
}

impl<T> LinkRx<T> {
    fn recv(&self) -> Option<T> {
        match self {
            LinkRx::Queue(rx) => rx.recv().ok(),
            LinkRx::Latest(rx) => rx.recv(),
        }
    }

    /// The next item if it is at hand: a file's next item (waiting for the stage before,
    /// which runs ahead), a live source's only if one is already waiting.
    fn next_at_hand(&self) -> Option<T> {
        match self {
            LinkRx::Queue(rx) => rx.recv().ok(),
            LinkRx::Latest(rx) => rx.try_recv(),
        }
    }
}

/// Runs an [`Analyzer`] over a video with tracking and smoothing.
///
/// ```no_run
/// # fn main() -> emotrack::error::Result<()> {
/// use std::sync::atomic::AtomicBool;
/// use emotrack::video::{DecodeOptions, PipelineConfig, Source, VideoInput, VideoPipeline};
/// use emotrack::{Analyzer, AnalyzerConfig};
///
/// let analyzer = Analyzer::new(AnalyzerConfig::default())?;
/// let input = VideoInput::open(Source::parse("clip.mp4"), DecodeOptions::default())?;
/// let pipeline = VideoPipeline::new(&analyzer, PipelineConfig::default())?;
/// let stop = AtomicBool::new(false); // set it from a Ctrl-C handler to end early
/// let stats = pipeline.run(&input, &stop, |_image, report| {
///     for face in &report.faces {
///         println!("{:.2}s #{} {}", report.time, face.id, face.label);
///     }
///     Ok(())
/// })?;
/// println!("{} frames", stats.analysed);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct VideoPipeline<'a> {
    analyzer: &'a Analyzer,
    config: PipelineConfig,
}

impl<'a> VideoPipeline<'a> {
    /// A pipeline with validated settings.
    pub fn new(analyzer: &'a Analyzer, config: PipelineConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { analyzer, config })
    }

    /// The settings.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Decodes `input`, analyses every frame (live: the newest frame) and calls `output` on
    /// this thread with each frame (which it may draw on) and its report, in order.
    ///
    /// Setting `stop` ends the run after the frames under way; an error from `output` also
    /// ends it and is returned. A source that fails before its first frame is an error; one
    /// that fails later ends the run normally with [`EndReason::Failed`].
    pub fn run<F>(&self, input: &VideoInput, stop: &AtomicBool, mut output: F) -> Result<RunStats>
    where
        F: FnMut(&mut RgbImage, &FrameReport) -> Result<()>,
    {
        // Frame counts in the settings refer to the source's own rate: every frame of a file
        // counts one; sampled (`fps`) or dropped (live) frames count the time they stand for.
        let mut stream = StreamAnalyzer::new(self.config)?.with_frame_rate(input.info().frame_rate);
        let decoder = input.decoder()?;
        let live = input.is_live();
        let stall_timeout = input.options().stall_timeout;
        tracing::debug!(live, config = ?self.config, "video analysis starts");
        let start = Instant::now();
        let halt = AtomicBool::new(false);
        let decode_done = AtomicBool::new(false);
        let (frame_tx, frame_rx) = link(live, QUEUE_FRAMES);
        // Room for the frames between two whole-frame searches, so the search of the next one
        // runs while they are analysed.
        let ahead = (self.config.detect_every as usize).clamp(QUEUE_FRAMES, MAX_AHEAD);
        let (searched_tx, searched_rx) = link(live, ahead);
        let (report_tx, report_rx) =
            mpsc::sync_channel::<(Frame, FrameReport)>(if live { 1 } else { QUEUE_FRAMES });
        let (recycle_tx, recycle_rx) = mpsc::channel::<RgbImage>();

        let mut output_error = None;
        let mut output_time = Duration::ZERO;
        let mut analysed = 0u64;
        let (decode, search, analysis) = std::thread::scope(|s| {
            let decoder = &decoder;
            let (halt, decode_done) = (&halt, &decode_done);
            // Watchdog: Ctrl-C and stalled sources kill ffmpeg, which unblocks the decoder.
            s.spawn(move || {
                while !decode_done.load(Ordering::Acquire) {
                    if stop.load(Ordering::Relaxed) || halt.load(Ordering::Relaxed) {
                        decoder.stop(StopCause::Requested);
                    } else if decoder.blocked_for().is_some_and(|b| b > stall_timeout) {
                        decoder.stop(StopCause::Stalled);
                    }
                    std::thread::sleep(WATCH_INTERVAL);
                }
            });
            let decode = s.spawn(move || {
                // Tells the watchdog to end even if decoding panics.
                let _done = SetOnDrop(decode_done);
                decode_stage(decoder, input, live, frame_tx, &recycle_rx, stop, halt)
            });
            let stale = recycle_tx.clone();
            let search = s.spawn(move || self.search_stage(frame_rx, searched_tx, &stale, halt));
            let analysis =
                s.spawn(|| self.analysis_stage(&mut stream, searched_rx, report_tx, halt));
            for (mut frame, report) in report_rx.iter() {
                let t = Instant::now();
                let result = output(&mut frame.image, &report);
                output_time += t.elapsed();
                if let Err(e) = result {
                    output_error = Some(e);
                    halt.store(true, Ordering::Relaxed);
                    break;
                }
                analysed += 1;
                let _ = recycle_tx.send(frame.image);
            }
            drop(report_rx);
            let decode = decode.join();
            let search = search.join();
            let analysis = analysis.join();
            (decode, search, analysis)
        });
        let exit = decoder.finish();
        let decode = decode.map_err(|_| internal("the decoding thread panicked"))?;
        let search_dropped = search.map_err(|_| internal("the search thread panicked"))?;
        let mut stages = analysis.map_err(|_| internal("the analysis thread panicked"))?;
        if let Some(e) = output_error {
            return Err(e);
        }
        stages.decode = decode.time;
        stages.output = output_time;
        let name = input.source().to_string();
        let stopped = exit.stopped.is_some() || stop.load(Ordering::Relaxed);
        let end = match (exit.stopped, decode.error) {
            (Some(StopCause::Stalled), _) => EndReason::Stalled,
            _ if stopped => EndReason::Stopped,
            (_, Some(e)) if decode.frames == 0 => return Err(e),
            (_, Some(e)) => EndReason::Failed(e.to_string()),
            _ if decode.frames == 0 => {
                let why = if exit.messages.is_empty() {
                    format!("ffmpeg decoded no frame ({})", exit.status)
                } else {
                    exit.messages.clone()
                };
                return Err(Error::video(
                    name,
                    format!(
                        "no frame could be decoded ({why}); the file may be truncated or damaged"
                    ),
                ));
            }
            _ if !exit.success => EndReason::Failed(if exit.messages.is_empty() {
                format!("ffmpeg failed ({})", exit.status)
            } else {
                exit.messages.clone()
            }),
            _ if exit.partial_frame => {
                EndReason::Failed("the stream ended in the middle of a frame".into())
            }
            _ => match input.expected_frames() {
                // FFmpeg complained and far fewer frames came than the file announced: a
                // truncated or damaged file that FFmpeg read as far as it could.
                Some(expected)
                    if !exit.messages.is_empty()
                        && decode.frames + (expected / 50).max(2) < expected =>
                {
                    EndReason::Failed(format!(
                        "the video ended after {} of {expected} frames ({})",
                        decode.frames, exit.messages
                    ))
                }
                _ => EndReason::Finished,
            },
        };
        tracing::debug!(
            decoded = decode.frames,
            analysed,
            dropped = decode.dropped + search_dropped,
            end = ?end,
            "video analysis ended"
        );
        Ok(RunStats {
            decoded: decode.frames,
            analysed,
            dropped: decode.dropped + search_dropped,
            expected: input.expected_frames(),
            end,
            ffmpeg_messages: exit.messages,
            wall: start.elapsed(),
            stages,
        })
    }

    /// The whole-frame face searches, ahead of the analysis: every `detect_every`-th frame is
    /// searched here (the search depends on nothing but the frame), the others pass through.
    /// When every frame is searched, two are searched at once (`rayon::join`): one search
    /// spreads over the cores only in part (MTCNN's small layers and its R-Net and O-Net
    /// stages run on one), two keep both busy. Returns the frames dropped (live sources).
    fn search_stage(
        &self,
        frames: LinkRx<Frame>,
        searched: LinkTx<Searched>,
        recycle: &mpsc::Sender<RgbImage>,
        halt: &AtomicBool,
    ) -> u64 {
        let detector = self.analyzer.detector();
        let search = |frame: &Frame| detector.detect_frame(&frame.image.as_rgb_view());
        let every = u64::from(self.config.detect_every.max(1));
        let mut dropped = 0;
        // Index of the next frame among those received.
        let mut n: u64 = 0;
        // False once the analysis is gone.
        let mut send = |frame: Frame, whole: Option<Vec<Detection>>, took: Duration| match searched
            .send(Searched { frame, whole, took })
        {
            Ok(stale) => {
                if let Some(stale) = stale {
                    dropped += 1;
                    let _ = recycle.send(stale.frame.image);
                }
                true
            }
            Err(()) => false,
        };
        while !halt.load(Ordering::Relaxed) {
            let Some(frame) = frames.recv() else {
                break;
            };
            let whole = n.is_multiple_of(every);
            n += 1;
            let sent = if !whole {
                send(frame, None, Duration::ZERO)
            } else if let Some(second) = (every == 1).then(|| frames.next_at_hand()).flatten() {
                n += 1;
                // Each frame is charged half the pair's wall time: its share of the stage's.
                let ((first_found, second_found), took) =
                    timed(|| rayon::join(|| search(&frame), || search(&second)));
                send(frame, Some(first_found), took / 2)
                    && send(second, Some(second_found), took / 2)
            } else {
                let (found, took) = timed(|| search(&frame));
                send(frame, Some(found), took)
            };
            if !sent {
                break;
            }
        }
        dropped
    }

    /// Tracking and classification, one frame after another, with the faces of frames that
    /// were not searched whole found around the known ones, in a two-step software pipeline:
    /// while frame `t` is classified, frame `t + 1`'s faces are already being looked for
    /// (`rayon::join`, so the two share the cores). That needs only the tracker's boxes after
    /// `t`'s update, never `t`'s emotions, so every report is exactly what a
    /// one-frame-at-a-time loop gives.
    fn analysis_stage(
        &self,
        stream: &mut StreamAnalyzer,
        frames: LinkRx<Searched>,
        reports: mpsc::SyncSender<(Frame, FrameReport)>,
        halt: &AtomicBool,
    ) -> StageTimes {
        let mut times = StageTimes::default();
        let Some(first) = frames.recv() else {
            return times;
        };
        let (mut frame, mut detected, mut detections, took) = self.faces_of(first, &[]);
        times.detect += took;
        loop {
            if halt.load(Ordering::Relaxed) {
                break;
            }
            let t0 = Instant::now();
            let tracked = stream.track(frame.index, frame.time, detected, &detections);
            let known = stream.known_boxes();
            times.track += t0.elapsed();
            let next = frames.next_at_hand();
            let ((faces, classify_time), located) = rayon::join(
                || {
                    timed(|| {
                        self.analyzer
                            .classify_detections(&frame.image, tracked.boxes())
                    })
                },
                || next.map(|s| self.faces_of(s, &known)),
            );
            times.classify += classify_time;
            let t1 = Instant::now();
            let report = stream.report(self.analyzer, tracked, &faces);
            times.track += t1.elapsed();
            if reports.send((frame, report)).is_err() {
                break;
            }
            // A live source whose next frame was not there yet: wait for it now.
            let located = match located {
                Some(l) => l,
                None => {
                    let Some(s) = frames.recv() else {
                        break;
                    };
                    self.faces_of(s, &known)
                }
            };
            let took;
            (frame, detected, detections, took) = located;
            times.detect += took;
        }
        times
    }

    /// A frame's faces: those the search stage found on the whole frame, or else those found
    /// around the `known` boxes; with whether the frame was searched whole and the time taken.
    fn faces_of(
        &self,
        searched: Searched,
        known: &[BBox],
    ) -> (Frame, bool, Vec<Detection>, Duration) {
        let Searched { frame, whole, took } = searched;
        match whole {
            Some(found) => (frame, true, found, took),
            None => {
                let (found, took) = timed(|| {
                    self.analyzer
                        .detector()
                        .detect_near(&frame.image.as_rgb_view(), known)
                });
                (frame, false, found, took)
            }
        }
    }
}

/// Runs `f` and measures it.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

/// What the decode stage did.
struct DecodeStage {
    frames: u64,
    dropped: u64,
    time: Duration,
    error: Option<Error>,
}

fn decode_stage(
    decoder: &Decoder,
    input: &VideoInput,
    live: bool,
    frames: LinkTx<Frame>,
    recycle: &mpsc::Receiver<RgbImage>,
    stop: &AtomicBool,
    halt: &AtomicBool,
) -> DecodeStage {
    let mut stage = DecodeStage {
        frames: 0,
        dropped: 0,
        time: Duration::ZERO,
        error: None,
    };
    let (w, h) = decoder.frame_size();
    let mut first: Option<Instant> = None;
    let mut spare: Option<RgbImage> = None;
    loop {
        if stop.load(Ordering::Relaxed) || halt.load(Ordering::Relaxed) {
            break;
        }
        let mut image = spare
            .take()
            .or_else(|| recycle.try_recv().ok())
            .unwrap_or_else(|| RgbImage::new(w, h));
        let t = Instant::now();
        match decoder.read_into(&mut image) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                stage.error = Some(e);
                break;
            }
        }
        stage.time += t.elapsed();
        let time = if live {
            first
                .get_or_insert_with(Instant::now)
                .elapsed()
                .as_secs_f64()
        } else {
            input.frame_time(stage.frames)
        };
        let frame = Frame {
            index: stage.frames,
            time,
            image,
        };
        stage.frames += 1;
        match frames.send(frame) {
            Ok(Some(stale)) => {
                stage.dropped += 1;
                spare = Some(stale.image);
            }
            Ok(None) => {}
            Err(()) => break,
        }
    }
    stage
}

/// Sets a flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn internal(what: &str) -> Error {
    Error::video("pipeline", what).with_hint("this is a bug, please report it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_what_they_give_and_keep_the_rest() {
        let base = PipelineConfig::default();
        let given = PipelineOverrides {
            detect_every: Some(3),
            iou: Some(0.2),
            label_hold: Some(1.5),
            ema: Some(0.25),
            ..PipelineOverrides::default()
        };
        let config = given.apply(&base).unwrap();
        assert_eq!(config.detect_every, 3);
        assert_eq!(config.tracker.iou_threshold, 0.2);
        assert_eq!(config.tracker.label.hold, 1.5);
        assert_eq!(config.tracker.scores, ScoreSmoothing::Ema { alpha: 0.25 });
        assert_eq!(config.tracker.min_hits, base.tracker.min_hits);
        assert_eq!(config.tracker.label.margin, base.tracker.label.margin);
        assert_eq!(PipelineOverrides::default().apply(&config).unwrap(), config);
        // A window replaces the base's moving average.
        let window = PipelineOverrides {
            window: Some(5),
            ..PipelineOverrides::default()
        };
        assert_eq!(
            window.apply(&config).unwrap().tracker.scores,
            ScoreSmoothing::Window { window: 5 }
        );
    }

    #[test]
    fn a_window_and_an_ema_together_are_an_error_naming_both() {
        let both = PipelineOverrides {
            window: Some(4),
            ema: Some(0.2),
            ..PipelineOverrides::default()
        };
        let e = both.apply(&PipelineConfig::default()).unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e}");
        assert!(e.to_string().contains("not both"), "{e}");
    }
}
