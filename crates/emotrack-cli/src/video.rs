//! `emotrack video INPUT`: faces, emotions and vibes over a video file, a webcam, a stream or
//! an image sequence, with tracking and smoothing; annotated video, JSONL, CSV and timeline.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use emotrack::track::smoothing::DEFAULT_WINDOW;
use emotrack::track::{LabelRule, ScoreSmoothing, TrackerConfig};
use emotrack::video::{
    DEFAULT_DETECT_EVERY, DecodeOptions, EndReason, JsonlTarget, ListedVideo, OutputTargets,
    PipelineConfig, RunStats, Shard, Source, Summary, VideoInput, VideoList, VideoOutputs,
    VideoPipeline, output_name,
};
use emotrack::{Analyzer, Emotion};

use crate::options::{AnalyzerArgs, parse_size};
use crate::outcome::Outcome;
use crate::progress::progress_bar;

/// Set by Ctrl-C (or SIGTERM): finish the outputs and stop.
static STOP: AtomicBool = AtomicBool::new(false);
/// Ctrl-C presses (and SIGTERMs) so far; the second one quits at once.
static PRESSES: AtomicU8 = AtomicU8::new(0);
/// The number of the first signal that stopped the run (0: none).
static SIGNAL: AtomicU8 = AtomicU8::new(0);
/// Signal numbers (the same on every Unix), for exit codes 128 + number.
const SIGINT: u8 = 2;
#[cfg(unix)]
const SIGTERM: u8 = 15;

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
    /// The shown label changes only when another emotion's smoothed probability leads it by
    /// at least this much (0-1)...
    #[arg(long, value_name = "P", default_value_t = LabelRule::default().margin, help_heading = "Label")]
    pub label_margin: f32,
    /// ... for this many seconds: higher is steadier, lower follows a change sooner.
    #[arg(long, value_name = "SECONDS", default_value_t = LabelRule::default().hold, help_heading = "Label")]
    pub label_hold: f32,
    /// A lead this large (0-1) changes the label after only --label-fast-hold seconds, so a
    /// clear change of expression shows at once.
    #[arg(long, value_name = "P", default_value_t = LabelRule::default().fast_margin, help_heading = "Label")]
    pub label_fast_margin: f32,
    /// Seconds a lead of --label-fast-margin must last.
    #[arg(long, value_name = "SECONDS", default_value_t = LabelRule::default().fast_hold, help_heading = "Label")]
    pub label_fast_hold: f32,
    /// Seconds a label stays up before it may change again.
    #[arg(long, value_name = "SECONDS", default_value_t = LabelRule::default().min_show, help_heading = "Label")]
    pub label_min_show: f32,
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
                label: LabelRule {
                    margin: self.label_margin,
                    hold: self.label_hold,
                    fast_margin: self.label_fast_margin,
                    fast_hold: self.label_fast_hold,
                    min_show: self.label_min_show,
                },
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
  emotrack video clip.mp4 --out-dir results      # results/clip/{annotated.mp4,faces.jsonl,tracks.csv,timeline.png}
  emotrack video /dev/video0 --duration 30 --out webcam.mp4
  emotrack video rtsp://camera.local/stream --jsonl faces.jsonl
  emotrack video 'frames/%04d.png' --detector haar
  emotrack video --list videos.txt --shard 2/8 --out-dir results   # worker 2 of 8

Ctrl-C (or SIGTERM) stops and finishes every output (the video stays playable, the JSONL and
CSV cover the frames done); a second one quits at once. An output that cannot be finished (full
disk) is deleted, never left incomplete. Exit code: 0 done, 130 stopped by Ctrl-C (SIGINT) and
143 by SIGTERM (the outputs cover the frames before), 2 the input broke off mid-way (damaged
file, stream that stopped; the outputs hold what came before), 1 nothing could be done or an
output could not be written. With --list: 0 every video done, 2 some failed or broke off (each
is named; the run goes on with the next), 1 none could be done, 130/143 stopped.

Needs FFmpeg (`ffmpeg` and `ffprobe` on PATH; Debian/Ubuntu: apt-get install ffmpeg).")]
pub struct Args {
    /// Video file (mp4, mkv, webm, avi, mov), webcam (/dev/video0), stream URL (rtsp://,
    /// http(s)://, HLS .m3u8) or image sequence ('frames/%04d.png', 'frames/*.jpg').
    #[arg(
        value_name = "INPUT",
        required_unless_present = "list",
        conflicts_with = "list"
    )]
    pub input: Option<String>,
    /// Analyse every video named in FILE, one path or URL a line (blank lines and lines
    /// starting with # are skipped), each into its own folder of --out-dir.
    #[arg(long, value_name = "FILE", requires = "out_dir")]
    pub list: Option<PathBuf>,
    /// With --list: take only the videos at positions p (0-based, comments and blank lines not
    /// counted) with p % COUNT == INDEX, so COUNT workers (a Kubernetes Indexed Job's pods)
    /// share one list.
    #[arg(long, value_name = "INDEX/COUNT", requires = "list")]
    pub shard: Option<String>,
    /// Write all four outputs of each video into DIR/NAME/: annotated.mp4, faces.jsonl,
    /// tracks.csv and timeline.png (NAME: the video's file name without its extension).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "jsonl", "csv", "timeline"])]
    pub out_dir: Option<PathBuf>,
    /// Write the annotated video (.mp4, .mov or .mkv; H.264 with the input's audio): boxes
    /// with track id, label, top-three bars and vibe.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write one JSON line per frame per face (time, frame, id, box, detected_box,
    /// detector_score, probabilities, smoothed, label, confidence, vibe); `-` for stdout.
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

    /// The shard to take (the whole list without --shard).
    fn shard(&self) -> Result<Shard> {
        match &self.shard {
            Some(s) => s
                .parse()
                .map_err(|e: emotrack::Error| anyhow::anyhow!("--shard {s}: {}", e.detail())),
            None => Ok(Shard::ALL),
        }
    }

    /// The outputs named by --out, --jsonl, --csv and --timeline.
    fn targets(&self) -> OutputTargets {
        OutputTargets {
            video: self.out.clone(),
            jsonl: self.jsonl.as_ref().map(|p| {
                if p.as_os_str() == "-" {
                    JsonlTarget::stdout()
                } else {
                    JsonlTarget::File(p.clone())
                }
            }),
            csv: self.csv.clone(),
            timeline: self.timeline.clone(),
        }
    }

    fn jsonl_on_stdout(&self) -> bool {
        self.jsonl.as_ref().is_some_and(|p| p.as_os_str() == "-")
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Outcome> {
    let pipeline_config = args.tracker.to_config();
    pipeline_config
        .validate()
        .context("check the tracker flags")?;
    let options = args.decode_options()?;
    let shard = args.shard()?;
    let targets = args.targets();
    targets.check()?;
    let list = match &args.list {
        Some(path) => Some((path, VideoList::read(path)?)),
        None => None,
    };
    let analyzer =
        Analyzer::new(args.analyzer.to_config()?).context("cannot set up the analyzer")?;
    let pipeline = VideoPipeline::new(&analyzer, pipeline_config)?;
    // Installed before probing so that Ctrl-C never leaves ffprobe/ffmpeg children behind: a
    // press during the probe (bounded by --stall-timeout) ends the run before its first frame.
    install_signal_handlers();
    let run = Run {
        pipeline: &pipeline,
        options: &options,
    };
    match (&list, &args.input, &args.out_dir) {
        (Some((path, list)), _, Some(dir)) => run.list(path, list, shard, dir),
        (None, Some(input), Some(dir)) => run.to_folder(input, &dir.join(output_name(input))),
        (None, Some(input), None) => run.one(input, targets, args.jsonl_on_stdout()),
        // clap requires INPUT or --list, and --out-dir with --list.
        _ => bail!("give a video (INPUT) or --list FILE with --out-dir DIR"),
    }
}

/// What every video of a run shares.
struct Run<'a> {
    pipeline: &'a VideoPipeline<'a>,
    options: &'a DecodeOptions,
}

impl Run<'_> {
    /// One video into the outputs named by the flags.
    fn one(&self, name: &str, targets: OutputTargets, jsonl_on_stdout: bool) -> Result<Outcome> {
        let input = self.open(name)?;
        let outputs = VideoOutputs::create(targets, &input)?;
        self.analyse(name, &input, outputs, jsonl_on_stdout)
    }

    /// One video into `dir`, under the fixed output names.
    fn to_folder(&self, name: &str, dir: &Path) -> Result<Outcome> {
        let input = self.open(name)?;
        let outputs = VideoOutputs::in_folder(dir, &input)?;
        self.analyse(name, &input, outputs, false)
    }

    fn open(&self, name: &str) -> Result<VideoInput> {
        Ok(VideoInput::open(Source::parse(name), self.options.clone())?)
    }

    /// Runs the pipeline into `outputs`, finishes every one of them whatever happened, and
    /// reports the run.
    fn analyse(
        &self,
        name: &str,
        input: &VideoInput,
        mut outputs: VideoOutputs,
        jsonl_on_stdout: bool,
    ) -> Result<Outcome> {
        let bar = progress_bar(input.expected_frames(), "frames");
        let result = self.pipeline.run(input, &STOP, |image, report| {
            outputs.push(image, report)?;
            bar.inc(1);
            Ok(())
        });
        bar.finish_and_clear();
        let finished = outputs.finish();
        for path in &finished.not_written {
            eprintln!(
                "note: no frame was analysed, so {} was not written",
                path.display()
            );
        }
        let problems: Vec<String> = finished.problems.iter().map(|p| p.to_string()).collect();
        let stats = match result {
            Ok(stats) => stats,
            Err(err) => {
                for p in &problems {
                    eprintln!("error: {p}");
                }
                return Err(err.into());
            }
        };
        if let Some((first, others)) = problems.split_first() {
            for p in others {
                eprintln!("error: {p}");
            }
            bail!("{first}");
        }
        report(name, input, &stats, &finished.summary, jsonl_on_stdout)
    }

    /// This shard's videos of the list, each into `out_dir/<name>/`; goes on after a failure.
    fn list(
        &self,
        list_path: &Path,
        list: &VideoList,
        shard: Shard,
        out_dir: &Path,
    ) -> Result<Outcome> {
        let mine: Vec<&ListedVideo> = list.shard(shard).collect();
        let list_name = list_path.display();
        if mine.is_empty() {
            eprintln!(
                "{list_name}: no video for shard {shard} (the list has {})",
                list.len()
            );
            return Ok(Outcome::Success);
        }
        if shard != Shard::ALL {
            eprintln!(
                "{list_name}: shard {shard} takes {} of {} videos",
                mine.len(),
                list.len()
            );
        }
        let mut tally = Tally::default();
        for (k, video) in mine.iter().enumerate() {
            if STOP.load(Ordering::SeqCst) {
                tally.not_started = mine[k..].iter().map(|v| describe(v)).collect();
                break;
            }
            let result = self.to_folder(&video.source, &out_dir.join(&video.name));
            tally.add(video, result);
        }
        let outcome = tally.outcome(mine.len())?;
        Ok(interrupted().unwrap_or(outcome))
    }
}

/// How the videos of a list went.
#[derive(Default)]
struct Tally {
    done: usize,
    /// Broke off mid-way: their outputs hold the frames before.
    partial: Vec<String>,
    failed: Vec<String>,
    not_started: Vec<String>,
}

impl Tally {
    fn add(&mut self, video: &ListedVideo, result: Result<Outcome>) {
        match result {
            Ok(Outcome::Success) => self.done += 1,
            Ok(Outcome::SomeFailed | Outcome::Interrupted(_)) => self.partial.push(describe(video)),
            Err(err) => {
                eprintln!("error: {err:#}");
                self.failed.push(describe(video));
            }
        }
    }

    fn outcome(self, total: usize) -> Result<Outcome> {
        if self.failed.len() == total {
            bail!(
                "none of the {total} video{} could be analysed: {}",
                if total == 1 { "" } else { "s" },
                self.failed.join(", ")
            );
        }
        let groups = [
            ("failed", &self.failed),
            ("broke off (outputs hold the frames before)", &self.partial),
            ("not started (stopped)", &self.not_started),
        ];
        if groups.iter().all(|(_, v)| v.is_empty()) {
            eprintln!("{total} of {total} videos done");
            return Ok(Outcome::Success);
        }
        eprintln!("{} of {total} videos done", self.done);
        for (what, videos) in groups.iter().filter(|(_, v)| !v.is_empty()) {
            eprintln!("{what}: {}", videos.join(", "));
        }
        Ok(Outcome::SomeFailed)
    }
}

/// A listed video for messages: its source and line.
fn describe(video: &ListedVideo) -> String {
    format!("{} (line {})", video.source, video.line)
}

/// The outcome of a run a signal stopped, if one did.
fn interrupted() -> Option<Outcome> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Outcome::Interrupted(signal)),
    }
}

/// The first signal stops the run (its outputs are finished); the second quits at once.
fn on_signal(signal: u8) {
    if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
        SIGNAL.store(signal, Ordering::SeqCst);
        STOP.store(true, Ordering::SeqCst);
        eprintln!("\nstopping: finishing the outputs (Ctrl-C again to quit at once)");
    } else {
        std::process::exit(128 + i32::from(signal));
    }
}

/// SIGINT and SIGTERM, told apart for the exit code, on a thread of their own (tokio's
/// signal streams; no unsafe code here). Returns once they are installed, so that a signal
/// from then on stops the run rather than killing the process.
#[cfg(unix)]
fn install_signal_handlers() {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                drop(ready_tx);
                loop {
                    let number = tokio::select! {
                        _ = int.recv() => SIGINT,
                        _ = term.recv() => SIGTERM,
                    };
                    on_signal(number);
                }
            });
        });
    if spawned.is_ok() {
        // Ends when the handlers are installed, or when installing them failed (then the
        // signals keep their default action).
        let _ = ready_rx.recv();
    }
}

#[cfg(not(unix))]
fn install_signal_handlers() {
    // Fails only if a handler is already installed (then Ctrl-C keeps its default action).
    let _ = ctrlc::set_handler(|| on_signal(SIGINT));
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
            Ok(interrupted().unwrap_or(Outcome::Interrupted(SIGINT)))
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
