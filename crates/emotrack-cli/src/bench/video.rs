//! `emotrack bench video`: how fast the video pipeline runs.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use emotrack::Analyzer;
use emotrack::video::{
    DecodeOptions, OutputTargets, PipelineConfig, Source, VideoInput, VideoOutputs, VideoPipeline,
};
use serde::Serialize;

use crate::options::parse_size;
use crate::options::{AnalyzerArgs, DetectorArg};
use crate::outcome::Outcome;

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
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "haar,mtcnn,yunet"
    )]
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
    /// YuNet: the longer side a frame is shrunk towards before the search (default 320).
    #[arg(long)]
    max_side: Option<u32>,
    /// Emotion model (default: built in).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn videos(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
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

pub(super) fn name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
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
            max_side: a.max_side,
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
