//! `emotrack.video(source, ...)`: an iterator of frame reports over the library's
//! `VideoPipeline` (FFmpeg decoding, tracking, smoothing), writing the CLI's outputs
//! (annotated video, JSONL, CSV, timeline) when asked.
//!
//! The pipeline runs on a thread of its own and hands each report over a bounded channel, so
//! it keeps decoding and analysing while Python handles the previous frame, and waits (back
//! pressure) when Python is slower. Stopping early (`close()`, leaving a `with` block, or
//! dropping the iterator) stops the pipeline the way Ctrl-C stops the CLI: the outputs are
//! finished and cover the frames done.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use emotrack::video::{
    DEFAULT_STALL_TIMEOUT, DecodeOptions, EndReason, FrameReport as LibFrameReport, JsonlTarget,
    OutputTargets, PipelineConfig, PipelineOverrides, RunStats, Source, VideoInfo, VideoInput,
    VideoOutputs, VideoPipeline,
};
use emotrack::{Analyzer, Error};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::analyzer::Analyzer as PyAnalyzer;
use crate::errors;
use crate::faces::FrameReport;

/// Reports the pipeline may run ahead of the Python loop.
const AHEAD: usize = 4;

/// What the pipeline's thread ends with: the run's statistics (or its error) and the outputs'
/// files (or the first that could not be finished).
type RunResult = (Result<RunStats, Error>, Vec<PathBuf>, Option<Error>);

/// Analyses a video file, a camera (`/dev/video0`), a stream URL or an image sequence
/// (`frames/%04d.png`) frame by frame, yielding a `FrameReport` per frame (needs FFmpeg).
///
/// `analyzer` (or a `detector` name for a new one) does the analysis; the tracking, smoothing
/// and label options (`detect_every`, `min_hits`, `max_age`, `iou_threshold`, `window` or
/// `ema`, `box_alpha`, `label_margin`, `label_hold`, `label_fast_margin`, `label_fast_hold`,
/// `label_min_show`) are `Tracker`'s, with its defaults. `fps` samples that many frames per
/// second, `duration` stops after that many seconds, `size=(width, height)` scales (aspect
/// kept), `live` drops stale frames (default: for cameras and streams), `stall_timeout` ends
/// the run when a camera or stream sends nothing for that many seconds (default 10).
/// Outputs, as `emotrack video` writes them: `out` (annotated `.mp4`), `jsonl`, `csv`
/// (per-track summary), `timeline` (PNG), or `out_dir` for all four under fixed names. Every
/// option is the `emotrack video` flag of the same name (`iou_threshold` is `--iou`), save
/// `--list`/`--shard` (loop over your videos in Python) and `--jsonl -` (the reports are the
/// iterator's).
///
/// The iterator's `stats` and `written` tell how the run ended and which files it wrote; use it
/// in a `with` block (or call `close()`) to stop early and still finish the outputs.
#[pyfunction]
#[pyo3(signature = (source, analyzer = None, *, detector = "yunet", fps = None, duration = None,
                    size = None, live = None, stall_timeout = None, detect_every = None,
                    min_hits = None, max_age = None, iou_threshold = None, window = None,
                    ema = None, box_alpha = None, label_margin = None, label_hold = None,
                    label_fast_margin = None, label_fast_hold = None, label_min_show = None,
                    out = None, jsonl = None, csv = None, timeline = None, out_dir = None))]
#[allow(clippy::too_many_arguments)]
pub fn video(
    py: Python<'_>,
    source: PathBuf,
    analyzer: Option<&PyAnalyzer>,
    detector: &str,
    fps: Option<f64>,
    duration: Option<f64>,
    size: Option<(u32, u32)>,
    live: Option<bool>,
    stall_timeout: Option<f64>,
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
    out: Option<PathBuf>,
    jsonl: Option<PathBuf>,
    csv: Option<PathBuf>,
    timeline: Option<PathBuf>,
    out_dir: Option<PathBuf>,
) -> PyResult<VideoFrames> {
    let err = |e: Error| errors::to_py(py, &e);
    let Some(source) = source.to_str().map(Source::parse) else {
        return Err(errors::bad_config(
            py,
            format!("the source {} is not valid UTF-8", source.display()),
        ));
    };
    let config = PipelineOverrides {
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
    config.validate().map_err(err)?;
    let stall_timeout = match stall_timeout {
        None => DEFAULT_STALL_TIMEOUT,
        Some(s) => Duration::try_from_secs_f64(s).map_err(|_| {
            errors::bad_config(
                py,
                format!("stall_timeout is {s}, it must be a positive number of seconds"),
            )
        })?,
    };
    let analyzer = PyAnalyzer::given_or_named(py, analyzer, detector)?;
    let options = DecodeOptions {
        fps,
        duration,
        size,
        live,
        stall_timeout,
    };
    let input = py
        .detach(|| VideoInput::open(source, options))
        .map_err(err)?;
    let outputs = match out_dir {
        Some(dir) => py.detach(|| VideoOutputs::in_folder(&dir, &input)),
        None => {
            let targets = OutputTargets {
                video: out,
                jsonl: jsonl.map(JsonlTarget::File),
                csv,
                timeline,
            };
            py.detach(|| VideoOutputs::create(targets, &input))
        }
    }
    .map_err(err)?;
    let info = input.info().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = sync_channel(AHEAD);
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("emotrack-video".into())
            .spawn(move || run(&analyzer, config, &input, outputs, &stop, &tx))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the video thread: {e}")))?
    };
    Ok(VideoFrames {
        info,
        stop,
        state: Mutex::new(State {
            reports: Some(rx),
            thread: Some(thread),
            stats: None,
            written: Vec::new(),
        }),
    })
}

/// The pipeline's thread: every report to `reports`, every frame to `outputs`, which are
/// finished whatever ended the run.
fn run(
    analyzer: &Analyzer,
    config: emotrack::video::PipelineConfig,
    input: &VideoInput,
    mut outputs: VideoOutputs,
    stop: &AtomicBool,
    reports: &SyncSender<LibFrameReport>,
) -> RunResult {
    let stats = VideoPipeline::new(analyzer, config).and_then(|pipeline| {
        pipeline.run(input, stop, |image, report| {
            outputs.push(image, report)?;
            if reports.send(report.clone()).is_err() {
                // The iterator is gone: stop as Ctrl-C does (the outputs are finished).
                stop.store(true, Ordering::Relaxed);
            }
            Ok(())
        })
    });
    let finished = outputs.finish();
    let problem = finished.problems.into_iter().next().map(|p| p.error);
    (stats, finished.written, problem)
}

/// The iterator `video()` returns: `FrameReport`s in order, then `StopIteration` (or the
/// error that ended the run before its first frame, or an output that could not be finished).
#[pyclass(module = "emotrack", frozen)]
#[derive(Debug)]
pub struct VideoFrames {
    info: VideoInfo,
    stop: Arc<AtomicBool>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// `None` once the run has ended and been collected.
    reports: Option<Receiver<LibFrameReport>>,
    thread: Option<JoinHandle<RunResult>>,
    stats: Option<RunStats>,
    written: Vec<PathBuf>,
}

impl State {
    /// Waits for the pipeline's thread and keeps what it did; its error, if it failed.
    fn collect(&mut self) -> Option<Error> {
        self.reports = None;
        let thread = self.thread.take()?;
        match thread.join() {
            Ok((stats, written, problem)) => {
                self.written = written;
                match stats {
                    Ok(stats) => {
                        self.stats = Some(stats);
                        problem
                    }
                    Err(e) => Some(e),
                }
            }
            Err(_) => Some(
                Error::video("pipeline", "the video thread panicked")
                    .with_hint("this is a bug, please report it"),
            ),
        }
    }
}

#[pymethods]
impl VideoFrames {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<FrameReport>> {
        // The lock is taken without the GIL, so a second Python thread waiting for it cannot
        // hold the GIL this one needs to return.
        let next = py.detach(|| {
            let mut state = lock(&self.state);
            let report = state.reports.as_ref().and_then(|rx| rx.recv().ok());
            match report {
                Some(report) => Ok(Some(report)),
                None => state.collect().map_or(Ok(None), Err),
            }
        });
        match next {
            Ok(report) => Ok(report.map(FrameReport::from)),
            Err(e) => Err(errors::to_py(py, &e)),
        }
    }

    /// Stops the run (if it is still going) and finishes its outputs, which then cover the
    /// frames analysed; an output that could not be finished raises.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop.store(true, Ordering::Relaxed);
        let problem = py.detach(|| lock(&self.state).collect());
        match problem {
            Some(e) => Err(errors::to_py(py, &e)),
            None => Ok(()),
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// The source as ffprobe describes it: `width`, `height`, `frame_rate`, `frame_count`,
    /// `duration` (seconds), `codec`, `has_audio`.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("width", self.info.width)?;
        d.set_item("height", self.info.height)?;
        d.set_item("frame_rate", self.info.frame_rate)?;
        d.set_item("frame_count", self.info.frame_count)?;
        d.set_item("duration", self.info.duration)?;
        d.set_item("codec", &self.info.codec)?;
        d.set_item("has_audio", self.info.has_audio)?;
        Ok(d)
    }

    /// How the run ended, once it has (`None` before): `decoded`, `analysed` and `dropped`
    /// frames, `end` (`"finished"`, `"stopped"`, `"stalled"` or `"failed"`), `detail` (FFmpeg's
    /// message when it failed mid-way), `seconds` (wall time).
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(stats) = py.detach(|| lock(&self.state).stats.clone()) else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("decoded", stats.decoded)?;
        d.set_item("analysed", stats.analysed)?;
        d.set_item("dropped", stats.dropped)?;
        let (end, detail) = match &stats.end {
            EndReason::Finished => ("finished", None),
            EndReason::Stopped => ("stopped", None),
            EndReason::Stalled => ("stalled", None),
            EndReason::Failed(why) => ("failed", Some(why.clone())),
        };
        d.set_item("end", end)?;
        d.set_item("detail", detail)?;
        d.set_item("seconds", stats.wall.as_secs_f64())?;
        Ok(Some(d))
    }

    /// The output files finished (video, JSONL, CSV, timeline), once the run has ended.
    #[getter]
    fn written(&self, py: Python<'_>) -> Vec<PathBuf> {
        py.detach(|| lock(&self.state).written.clone())
    }
}

impl Drop for VideoFrames {
    /// Dropped mid-run: stop the pipeline and finish the outputs, as `close()` does.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = lock(&self.state).collect();
    }
}

/// The state, usable even if a thread panicked while holding it (it is only ever replaced by
/// whole fields).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
