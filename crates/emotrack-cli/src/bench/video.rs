//! `emotrack bench smoothing` and `emotrack bench video`: what tracking and smoothing do to the
//! shown results, and how fast the video pipeline runs.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use emotrack::Analyzer;
use emotrack::track::ScoreSmoothing;
use emotrack::video::{
    DecodeOptions, OutputTargets, PipelineConfig, SmoothingRecorder, SmoothingStats, Source,
    VideoInput, VideoOutputs, VideoPipeline,
};
use serde::Serialize;

use crate::options::parse_size;
use crate::options::{AnalyzerArgs, DetectorArg};
use crate::outcome::Outcome;
use crate::video::TrackerArgs;

const SMOOTHING_HELP: &str = "\
Runs each video frame by frame through detection, tracking and classification, and compares,
per track, what a naive per-frame display would show (raw) with what emotrack shows (smoothed
probabilities + label hysteresis, smoothed boxes). One table, one row per video and a total.

Measures (over the frames where a track is shown):
  label flips/min   changes of label between consecutive frames, per minute of track time.
                    Raw: the top emotion of each frame's own probabilities. Shown: the label
                    after smoothing and hysteresis. Target: at least 80% fewer.
  box jitter (px)   mean length of the second difference of the box centre,
                    |c[t+1] - 2c[t] + c[t-1]|: 0 for steady motion, large for frame-to-frame
                    shake. Raw: the detector's box. Shown: the smoothed box. Target: at least
                    70% less.
  lag (s)           at each sustained raw change (the raw label held one emotion for
                    --sustain seconds, then holds another for --sustain seconds), the time
                    until the shown label becomes the new emotion, at the video's frame rate.
                    Changes the shown label never follows count as missed. Target: at most
                    0.3 s.

The built-in emotion model decides how often raw labels change: with a weak model the raw
labels flicker more and there are few sustained changes to time.";

/// Arguments of `emotrack bench smoothing`.
#[derive(Debug, clap::Args)]
#[command(after_help = SMOOTHING_HELP)]
pub struct SmoothingArgs {
    /// Videos (default: every video in ../shared/media/videos).
    #[arg(value_name = "VIDEO")]
    paths: Vec<PathBuf>,
    /// Seconds a raw label must hold on both sides of a change for the lag to be measured.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    sustain: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tracker: TrackerArgs,
    #[command(flatten)]
    analyzer: AnalyzerArgs,
}

/// Arguments of `emotrack bench video`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Frames per second of the video pipeline without encoding: ffmpeg decoding (resized to --size),
face detection, classification of every visible track, tracking and smoothing, as overlapping
stages. Also the time each stage spends per frame. Every video is processed frame by frame, in
full, once per detector and detect-every setting.")]
pub struct VideoArgs {
    /// Videos (default: every video in ../shared/media/videos).
    #[arg(value_name = "VIDEO")]
    paths: Vec<PathBuf>,
    /// Resize frames to WIDTHxHEIGHT while decoding (aspect ratio kept, black bars where the
    /// shapes differ, as `emotrack video --size`).
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    size: (u32, u32),
    /// Detectors to time.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "haar,mtcnn")]
    detectors: Vec<DetectorArg>,
    /// Detect-every settings to time (1, `emotrack video`'s default: whole-frame detection on
    /// every frame; N: every N-th frame, known faces re-found around where they were in
    /// between).
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    detect_every: Vec<u32>,
    /// Smallest face side searched for, in pixels of the resized frame.
    #[arg(long, default_value_t = emotrack::detect::DEFAULT_MIN_FACE)]
    min_face: u32,
    /// Haar: overlapping raw detections a face needs (OpenCV's minNeighbors).
    #[arg(long, default_value_t = emotrack::detect::HaarSettings::default().min_neighbors)]
    min_neighbors: u32,
    /// Emotion model (default: built in).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn videos(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return Ok(paths.to_vec());
    }
    let dir = super::default_media().join("videos");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "cannot list {}; give videos or set EMOTRACK_MEDIA",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("no .mp4 video in {}", dir.display());
    }
    Ok(found)
}

fn name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[derive(Debug, Serialize)]
struct SmoothingRow {
    video: String,
    frame_rate: f64,
    frames: u64,
    tracks: u64,
    track_seconds: f64,
    raw_flips_per_min: f64,
    shown_flips_per_min: f64,
    flips_reduction: f64,
    raw_jitter_px: f64,
    shown_jitter_px: f64,
    jitter_reduction: f64,
    sustained_changes: u64,
    followed: u64,
    mean_lag_s: Option<f64>,
    max_lag_s: Option<f64>,
}

fn reduction(raw: f64, shown: f64) -> f64 {
    if raw > 0.0 { 1.0 - shown / raw } else { 0.0 }
}

fn smoothing_row(
    video: String,
    fps: f64,
    frames: u64,
    s: &SmoothingStats,
    lags_s: &[f64],
) -> SmoothingRow {
    let minutes = s.track_frames as f64 / fps / 60.0;
    let per_min = |n: u64| {
        if minutes > 0.0 {
            n as f64 / minutes
        } else {
            0.0
        }
    };
    let (raw_f, shown_f) = (per_min(s.raw_flips), per_min(s.shown_flips));
    SmoothingRow {
        video,
        frame_rate: fps,
        frames,
        tracks: s.tracks,
        track_seconds: minutes * 60.0,
        raw_flips_per_min: raw_f,
        shown_flips_per_min: shown_f,
        flips_reduction: reduction(raw_f, shown_f),
        raw_jitter_px: s.raw_jitter(),
        shown_jitter_px: s.shown_jitter(),
        jitter_reduction: reduction(s.raw_jitter(), s.shown_jitter()),
        sustained_changes: s.lags.len() as u64 + s.missed,
        followed: s.lags.len() as u64,
        mean_lag_s: (!lags_s.is_empty()).then(|| lags_s.iter().sum::<f64>() / lags_s.len() as f64),
        max_lag_s: lags_s.iter().copied().reduce(f64::max),
    }
}

/// Runs `emotrack bench smoothing`.
pub fn smoothing(a: SmoothingArgs) -> Result<Outcome> {
    if !(a.sustain.is_finite() && a.sustain > 0.0) {
        bail!("--sustain must be a positive number of seconds");
    }
    let analyzer = Analyzer::new(a.analyzer.to_config()?).context("cannot set up the analyzer")?;
    let config = a.tracker.to_config();
    let pipeline = VideoPipeline::new(&analyzer, config)?;
    let stop = AtomicBool::new(false);
    let mut rows = Vec::new();
    let (mut total, mut total_lags, mut total_seconds, mut total_frames) =
        (SmoothingStats::default(), Vec::new(), 0.0, 0);
    let (mut raw_flips_w, mut shown_flips_w) = (0.0, 0.0);
    for path in videos(&a.paths)? {
        let input = VideoInput::open(Source::File(path.clone()), DecodeOptions::default())?;
        let fps = input.frame_rate();
        let mut rec = SmoothingRecorder::new();
        let stats = pipeline.run(&input, &stop, |_, report| {
            rec.push(report);
            Ok(())
        })?;
        let sustain = (a.sustain * fps).round().max(1.0) as usize;
        let s = rec.stats(sustain);
        let lags: Vec<f64> = s.lags.iter().map(|&l| l as f64 / fps).collect();
        let row = smoothing_row(name(&path), fps, stats.analysed, &s, &lags);
        raw_flips_w += row.raw_flips_per_min * row.track_seconds;
        shown_flips_w += row.shown_flips_per_min * row.track_seconds;
        total_seconds += row.track_seconds;
        total_frames += stats.analysed;
        total_lags.extend(lags);
        total.add(&s);
        rows.push(row);
    }
    // The total weighs each video by its track time (videos may differ in frame rate).
    let mut t = smoothing_row("all".into(), f64::NAN, total_frames, &total, &total_lags);
    t.track_seconds = total_seconds;
    t.raw_flips_per_min = if total_seconds > 0.0 {
        raw_flips_w / total_seconds
    } else {
        0.0
    };
    t.shown_flips_per_min = if total_seconds > 0.0 {
        shown_flips_w / total_seconds
    } else {
        0.0
    };
    t.flips_reduction = reduction(t.raw_flips_per_min, t.shown_flips_per_min);
    rows.push(t);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Success);
    }
    let c = &config.tracker;
    let scores = match c.scores {
        ScoreSmoothing::Window { window } => format!("window {window} frames"),
        ScoreSmoothing::Ema { alpha } => format!("EMA alpha {alpha}"),
    };
    println!(
        "smoothing: {scores}, hysteresis {}, box alpha {}, min hits {}, detect every {}; \
         sustained change = {} s each side",
        c.hysteresis, c.box_alpha, c.min_hits, config.detect_every, a.sustain
    );
    println!(
        "| video | fps | frames | tracks | track s | flips/min raw | flips/min shown | fewer | \
         jitter raw px | jitter shown px | less | sustained changes (followed) | lag mean s | lag max s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0}% | {:.2} | {:.2} | {:.0}% | {} ({}) | {} | {} |",
            r.video,
            if r.frame_rate.is_finite() {
                format!("{:.2}", r.frame_rate)
            } else {
                "-".into()
            },
            r.frames,
            r.tracks,
            r.track_seconds,
            r.raw_flips_per_min,
            r.shown_flips_per_min,
            r.flips_reduction * 100.0,
            r.raw_jitter_px,
            r.shown_jitter_px,
            r.jitter_reduction * 100.0,
            r.sustained_changes,
            r.followed,
            opt(r.mean_lag_s),
            opt(r.max_lag_s),
        );
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Serialize)]
struct SpeedRow {
    video: String,
    detector: String,
    detect_every: u32,
    frames: u64,
    faces_per_frame: f64,
    fps: f64,
    decode_ms: f64,
    detect_ms: f64,
    classify_ms: f64,
    track_ms: f64,
}

/// Runs `emotrack bench video`.
pub fn video(a: VideoArgs) -> Result<Outcome> {
    let paths = videos(&a.paths)?;
    let mut rows = Vec::new();
    let stop = AtomicBool::new(false);
    for &detector in &a.detectors {
        let analyzer_args = AnalyzerArgs {
            detector,
            min_face: a.min_face,
            max_face: None,
            threshold: None,
            min_neighbors: a.min_neighbors,
            model: a.model.clone(),
            vibes: None,
        };
        let config = analyzer_args.to_config()?;
        let backend = config.detector.backend.name();
        let analyzer = Analyzer::new(config).context("cannot set up the analyzer")?;
        for &every in &a.detect_every {
            let pipeline = VideoPipeline::new(
                &analyzer,
                PipelineConfig {
                    detect_every: every,
                    ..PipelineConfig::default()
                },
            )?;
            for path in &paths {
                let input = VideoInput::open(
                    Source::File(path.clone()),
                    DecodeOptions {
                        size: Some(a.size),
                        ..DecodeOptions::default()
                    },
                )?;
                // No files: the outputs keep only the per-track summary, as in `emotrack
                // video` without output flags.
                let mut outputs = VideoOutputs::create(OutputTargets::default(), &input)?;
                let stats =
                    pipeline.run(&input, &stop, |image, report| outputs.push(image, report))?;
                let faces: u64 = outputs.finish().summary.tracks().map(|t| t.frames).sum();
                let n = stats.analysed.max(1) as f64;
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n;
                rows.push(SpeedRow {
                    video: name(path),
                    detector: backend.into(),
                    detect_every: every,
                    frames: stats.analysed,
                    faces_per_frame: faces as f64 / n,
                    fps: stats.analysed as f64 / stats.wall.as_secs_f64(),
                    decode_ms: ms(stats.stages.decode),
                    detect_ms: ms(stats.stages.detect),
                    classify_ms: ms(stats.stages.classify),
                    track_ms: ms(stats.stages.track),
                });
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Success);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "video pipeline at {}x{} (decode + detect + classify + track, no encoding; {cores} cores)",
        a.size.0, a.size.1
    );
    println!(
        "| video | detector | detect every | frames | faces/frame | FPS | decode ms | detect ms | classify ms | track ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.3} |",
            r.video,
            r.detector,
            r.detect_every,
            r.frames,
            r.faces_per_frame,
            r.fps,
            r.decode_ms,
            r.detect_ms,
            r.classify_ms,
            r.track_ms
        );
    }
    Ok(Outcome::Success)
}
