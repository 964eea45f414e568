//! `emotrack video INPUT`: faces, emotions and vibes over a video file, a webcam, a stream or
//! an image sequence, with tracking and smoothing; annotated video, JSONL, CSV and timeline.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use emotrack::annotate::Annotator;
use emotrack::track::smoothing::DEFAULT_WINDOW;
use emotrack::track::{ScoreSmoothing, TrackerConfig};
use emotrack::video::{
    DEFAULT_DETECT_EVERY, DecodeOptions, Encoder, EndReason, FrameReport, PipelineConfig, RunStats,
    Source, Summary, Timeline, TrackedFace, VideoInput, VideoPipeline, write_jsonl,
};
use emotrack::{Analyzer, Emotion};

use crate::options::{AnalyzerArgs, parse_size};
use crate::outcome::Outcome;
use crate::progress::progress_bar;

/// Set by Ctrl-C (or SIGTERM): finish the outputs and stop.
static STOP: AtomicBool = AtomicBool::new(false);
/// Ctrl-C presses so far; the second one quits at once.
static PRESSES: AtomicU8 = AtomicU8::new(0);
/// Exit code after a second Ctrl-C (128 + SIGINT, the shell convention).
const EXIT_INTERRUPTED: i32 = 130;

/// Live or frame-by-frame processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LiveArg {
    /// Live for cameras and streams, every frame for files and image sequences.
    Auto,
    /// Real time: drop stale frames, analyse the newest.
    Yes,
    /// Every frame, however long it takes.
    No,
}

/// Tracker and smoothing flags (shared with `emotrack bench smoothing`).
#[derive(Debug, Clone, clap::Args)]
pub struct TrackerArgs {
    /// Search the whole frame for faces every N frames; in between, each known face is searched
    /// for only around where it was (a fraction of the cost). New faces appear up to N-1 frames
    /// late. 1 searches every frame; raise it for speed.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DETECT_EVERY)]
    pub detect_every: u32,
    /// Detections a face needs before it is shown; filters one-frame false faces.
    #[arg(long, value_name = "N", default_value_t = TrackerConfig::default().min_hits)]
    pub min_hits: u32,
    /// Frames a face may go unseen (occluded, missed) before its track and id end.
    #[arg(long, value_name = "FRAMES", default_value_t = TrackerConfig::default().max_age)]
    pub max_age: u32,
    /// Frames averaged to smooth each face's probabilities: longer is steadier but reacts
    /// later (8 frames is 0.27 s at 30 fps).
    #[arg(long, value_name = "FRAMES", default_value_t = DEFAULT_WINDOW)]
    pub window: usize,
    /// Smooth each face's probabilities with an exponential moving average instead of the
    /// window: ALPHA (0-1] is the newest frame's weight (0.2 reacts about as fast as an
    /// 8-frame window).
    #[arg(long, value_name = "ALPHA", conflicts_with = "window")]
    pub ema: Option<f32>,
    /// Frames a new emotion must lead the smoothed probabilities before the shown label
    /// changes (label hysteresis; 1 = follow at once).
    #[arg(long, value_name = "K", default_value_t = TrackerConfig::default().hysteresis)]
    pub hysteresis: u32,
    /// Smallest box overlap (IoU, 0-1) that matches a face to its track; lower it for fast
    /// motion or low frame rates.
    #[arg(long, value_name = "IOU", default_value_t = TrackerConfig::default().iou_threshold)]
    pub iou: f32,
    /// Box smoothing: the weight (0-1] of each new detection in the box's moving average;
    /// lower is steadier, higher follows fast motion sooner (1 = no smoothing).
    #[arg(long, value_name = "ALPHA", default_value_t = TrackerConfig::default().box_alpha)]
    pub box_alpha: f32,
}

impl TrackerArgs {
    /// The pipeline settings these flags describe.
    pub fn to_config(&self) -> PipelineConfig {
        PipelineConfig {
            tracker: TrackerConfig {
                min_hits: self.min_hits,
                max_age: self.max_age,
                scores: match self.ema {
                    Some(alpha) => ScoreSmoothing::Ema { alpha },
                    None => ScoreSmoothing::Window {
                        window: self.window,
                    },
                },
                hysteresis: self.hysteresis,
                iou_threshold: self.iou,
                box_alpha: self.box_alpha,
            },
            detect_every: self.detect_every,
        }
    }
}

/// Arguments of `emotrack video`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  emotrack video clip.mp4 --out annotated.mp4 --csv faces.csv --timeline timeline.png
  emotrack video clip.mp4 --fps 5 --jsonl - | jq .label
  emotrack video /dev/video0 --duration 30 --out webcam.mp4
  emotrack video rtsp://camera.local/stream --jsonl faces.jsonl
  emotrack video 'frames/%04d.png' --detector haar

Ctrl-C stops and finishes every output (the video stays playable); a second Ctrl-C quits at
once. Exit code: 0 done (or stopped), 2 the input broke off mid-way (damaged file, stream that
stopped; the outputs hold what came before), 1 nothing could be done.

Needs FFmpeg (`ffmpeg` and `ffprobe` on PATH; Debian/Ubuntu: apt-get install ffmpeg).")]
pub struct Args {
    /// Video file (mp4, mkv, webm, avi, mov), webcam (/dev/video0), stream URL (rtsp://,
    /// http(s)://, HLS .m3u8) or image sequence ('frames/%04d.png', 'frames/*.jpg').
    #[arg(value_name = "INPUT")]
    pub input: String,
    /// Write the annotated video (.mp4, .mov or .mkv; H.264 with the input's audio): boxes
    /// with track id, label, top-three bars and vibe.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write one JSON line per frame per face (time, frame, id, box, raw and smoothed
    /// probabilities, label, vibe); `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Write a per-track summary CSV: first/last seen, frames, dominant emotion, share of
    /// frames per emotion.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw every track's emotions over time into one PNG.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Analyse N frames per second instead of every frame (files).
    #[arg(long, value_name = "N")]
    pub fps: Option<f64>,
    /// Stop after this many seconds (of video; for cameras and streams, of recording).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Resize frames to WIDTHxHEIGHT first (also the annotated video's size); the picture keeps
    /// its aspect ratio, with black bars where the shapes differ.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// auto: live (drop stale frames, keep the newest) for cameras and streams, every frame
    /// for files; yes/no force it.
    #[arg(long, value_enum, default_value_t = LiveArg::Auto)]
    pub live: LiveArg,
    /// End when a camera or stream sends no frame for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub stall_timeout: f64,
    #[command(flatten)]
    pub tracker: TrackerArgs,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

impl Args {
    fn decode_options(&self) -> Result<DecodeOptions> {
        if !(self.stall_timeout.is_finite() && self.stall_timeout > 0.0) {
            bail!("--stall-timeout must be a positive number of seconds");
        }
        Ok(DecodeOptions {
            fps: self.fps,
            duration: self.duration,
            size: self.size,
            stall_timeout: Duration::from_secs_f64(self.stall_timeout),
            live: match self.live {
                LiveArg::Auto => None,
                LiveArg::Yes => Some(true),
                LiveArg::No => Some(false),
            },
        })
    }
}

/// Where the JSONL records go.
enum JsonlOut {
    Stdout(std::io::Stdout),
    File(PathBuf, BufWriter<File>),
}

impl JsonlOut {
    fn write(&mut self, report: &FrameReport) -> emotrack::error::Result<()> {
        let (path, result) = match self {
            JsonlOut::Stdout(out) => {
                let mut lock = out.lock();
                let r = write_jsonl(&mut lock, report).and_then(|()| lock.flush());
                (Path::new("<stdout>"), r)
            }
            JsonlOut::File(path, w) => (path.as_path(), write_jsonl(w, report)),
        };
        result.map_err(|source| emotrack::Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn finish(self) -> Result<()> {
        match self {
            JsonlOut::Stdout(out) => out.lock().flush().context("cannot write to stdout"),
            JsonlOut::File(path, mut w) => w
                .flush()
                .with_context(|| format!("cannot write {}", path.display())),
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Outcome> {
    let pipeline_config = args.tracker.to_config();
    pipeline_config
        .validate()
        .context("check the tracker flags")?;
    let options = args.decode_options()?;
    for path in [&args.csv, &args.timeline].into_iter().flatten() {
        check_writable(path)?;
    }
    let analyzer =
        Analyzer::new(args.analyzer.to_config()?).context("cannot set up the analyzer")?;
    let pipeline = VideoPipeline::new(&analyzer, pipeline_config)?;
    // Installed before probing so that Ctrl-C never leaves ffprobe/ffmpeg children behind: a
    // press during the probe (bounded by --stall-timeout) ends the run before its first frame.
    install_ctrlc();
    let input = VideoInput::open(Source::parse(&args.input), options)?;

    let mut encoder = match &args.out {
        Some(path) => Some(Encoder::create(path, &input)?),
        None => None,
    };
    let mut jsonl = match &args.jsonl {
        Some(p) if p.as_os_str() == "-" => Some(JsonlOut::Stdout(std::io::stdout())),
        Some(p) => {
            let file = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Some(JsonlOut::File(p.clone(), BufWriter::new(file)))
        }
        None => None,
    };

    let bar = progress_bar(input.expected_frames(), "frames");
    let annotator = Annotator::new();
    let mut summary = Summary::new();
    let mut timeline = args.timeline.as_ref().map(|_| Timeline::new());
    let result = pipeline.run(&input, &STOP, |image, report| {
        summary.push(report);
        if let Some(t) = timeline.as_mut() {
            t.push(report);
        }
        if let Some(j) = jsonl.as_mut() {
            j.write(report)?;
        }
        if let Some(e) = encoder.as_mut() {
            let overlays: Vec<_> = report.faces.iter().map(TrackedFace::overlay).collect();
            annotator.draw(image, &overlays);
            e.write(image, report.time)?;
        }
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();

    // Finish every output, whatever happened: what was written stays valid.
    let mut problems = Vec::new();
    if let Some(e) = encoder {
        let path = e.path().to_path_buf();
        if e.frames_written() == 0 {
            eprintln!(
                "note: no frame was analysed, so {} was not written",
                path.display()
            );
        }
        if let Err(err) = e.finish() {
            problems.push(format!("{} was not finished: {err}", path.display()));
        }
    }
    if let Some(j) = jsonl
        && let Err(err) = j.finish()
    {
        problems.push(format!("{err:#}"));
    }
    if let Some(path) = &args.csv
        && let Err(err) = write_csv(path, &summary)
    {
        problems.push(format!("{err:#}"));
    }
    if let (Some(path), Some(t)) = (&args.timeline, &timeline)
        && let Err(err) = t.save(path, 1.0 / input.frame_rate())
    {
        problems.push(format!("{err:#}"));
    }
    let stats = match result {
        Ok(stats) => stats,
        Err(err) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            return Err(err.into());
        }
    };
    if let Some(first) = problems.first() {
        for p in &problems[1..] {
            eprintln!("error: {p}");
        }
        bail!("{first}");
    }
    let to_stdout = args.jsonl.as_ref().is_some_and(|p| p.as_os_str() == "-");
    report(&args.input, &input, &stats, &summary, to_stdout)
}

fn check_writable(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(
            "cannot write {}: the folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

fn write_csv(path: &Path, summary: &Summary) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    summary
        .write_csv(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn install_ctrlc() {
    // Fails only if a handler is already installed (then Ctrl-C keeps its default action).
    let _ = ctrlc::set_handler(|| {
        if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
            STOP.store(true, Ordering::SeqCst);
            eprintln!("\nstopping: finishing the outputs (Ctrl-C again to quit at once)");
        } else {
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
}

/// Prints the per-track table (stdout, unless JSONL goes there) and how the run ended.
fn report(
    name: &str,
    input: &VideoInput,
    stats: &RunStats,
    summary: &Summary,
    jsonl_on_stdout: bool,
) -> Result<Outcome> {
    let (w, h) = input.frame_size();
    let mut head = format!(
        "{name}: {} frames analysed ({w}x{h}, {:.2} fps)",
        stats.analysed,
        input.frame_rate()
    );
    if stats.dropped > 0 {
        head.push_str(&format!(", {} stale frames dropped", stats.dropped));
    }
    head.push_str(&format!(
        ", {} track{}",
        summary.len(),
        if summary.len() == 1 { "" } else { "s" }
    ));
    let mut lines = vec![head];
    if !summary.is_empty() {
        lines.push("| track | first seen | last seen | frames | dominant | shares |".into());
        lines.push("|---|---:|---:|---:|---|---|".into());
        for t in summary.tracks() {
            let mut shares: Vec<(Emotion, f64)> =
                Emotion::ALL.iter().map(|&e| (e, t.share(e))).collect();
            shares.sort_by(|a, b| b.1.total_cmp(&a.1));
            let shares = shares
                .iter()
                .filter(|(_, s)| *s > 0.0)
                .take(3)
                .map(|(e, s)| format!("{e} {:.0}%", s * 100.0))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!(
                "| #{} | {:.2} s | {:.2} s | {} | {} | {} |",
                t.id,
                t.first_seen,
                t.last_seen,
                t.frames,
                t.dominant(),
                shares
            ));
        }
    }
    let text = lines.join("\n");
    if jsonl_on_stdout {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    match &stats.end {
        EndReason::Finished => Ok(Outcome::Success),
        EndReason::Stopped => {
            eprintln!(
                "stopped after {} frames; the outputs cover them",
                stats.analysed
            );
            Ok(Outcome::Success)
        }
        EndReason::Stalled => {
            eprintln!(
                "warning: {name} sent no frame for {:.0} s, so the run ended; the outputs cover \
                 the {} frames before (raise --stall-timeout for slow sources)",
                input.options().stall_timeout.as_secs_f64(),
                stats.analysed
            );
            Ok(Outcome::SomeFailed)
        }
        EndReason::Failed(why) => {
            eprintln!(
                "warning: {name} broke off: {why}; the outputs cover the {} frames before",
                stats.analysed
            );
            Ok(Outcome::SomeFailed)
        }
    }
}
