//! `emotrack bench smoothing`: what tracking, smoothing and the label rule do to the shown
//! results, and (`--sweep`) the steadiness-against-lag trade-off of other label settings.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use emotrack::Analyzer;
use emotrack::chart::{self, Canvas, ChartError};
use emotrack::track::{LabelRule, ScoreSmoothing};
use emotrack::video::{
    DecodeOptions, PipelineConfig, SmoothingRecorder, SmoothingStats, Source, VideoInput,
    VideoPipeline,
};
use plotters::prelude::*;
use serde::Serialize;

use super::video::{name, videos};
use crate::options::AnalyzerArgs;
use crate::outcome::Outcome;
use crate::video::TrackerArgs;

const HELP: &str = "\
Runs each video frame by frame through detection, tracking and classification, and compares,
per track, what a naive per-frame display would show (raw) with what emotrack shows (smoothed
probabilities + the label rule, smoothed boxes). One table, one row per video and a total.

Measures (over the frames where a track is shown):
  label changes/min  changes of label between consecutive frames, per minute of track time.
                     Raw: the top emotion of each frame's own probabilities. Shown: the label
                     after smoothing and the label rule. Target: at least 90% fewer.
  label s            how long a shown label lasts until it changes: the shortest (target: at
                     least 0.5 s) and the median.
  flickers           the share of shown label changes undone (back to the label before)
                     within --flicker seconds.
  box jitter (px)    mean length of the second difference of the box centre,
                     |c[t+1] - 2c[t] + c[t-1]|: 0 for steady motion, large for frame-to-frame
                     shake. Raw: the detector's box. Shown: the smoothed box. Target: at least
                     70% less.
  lag (s)            at each sustained raw change (the raw label held one emotion for
                     --sustain seconds, then holds another for --sustain seconds), the time
                     until the shown label becomes the new emotion, at the video's frame rate.
                     Changes the shown label never follows count as missed. Target: at most
                     0.3 s on scripts/lag_clip.sh's clip.

--sweep replays a grid of smoothing windows and label rules on the recorded probabilities
(exact: neither feeds back into tracking) and prints, for each setting, the measures over the
VIDEOs and the lag over the --lag videos; --plot draws the trade-off.";

/// Arguments of `emotrack bench smoothing`.
#[derive(Debug, clap::Args)]
#[command(after_help = HELP)]
pub struct SmoothingArgs {
    /// Videos (default: every video in ../shared/media/videos).
    #[arg(value_name = "VIDEO")]
    paths: Vec<PathBuf>,
    /// Seconds a raw label must hold on both sides of a change for the lag to be measured.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    sustain: f64,
    /// A shown label change undone within this many seconds counts as a flicker.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    flicker: f64,
    /// Replay a grid of smoothing windows and label rules instead of the one set by the
    /// flags, and print the trade-off (steadiness over the VIDEOs, lag over --lag).
    #[arg(long)]
    sweep: bool,
    /// With --sweep: videos whose sustained changes time the lag (e.g. scripts/lag_clip.sh's).
    #[arg(long, value_name = "VIDEO", requires = "sweep")]
    lag: Vec<PathBuf>,
    /// With --sweep: draw label changes removed against the largest lag into this PNG.
    #[arg(long, value_name = "PNG", requires = "sweep")]
    plot: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tracker: TrackerArgs,
    #[command(flatten)]
    analyzer: AnalyzerArgs,
}

/// One video's recording, with what the measures need.
struct Recording {
    video: String,
    frame_rate: f64,
    frames: u64,
    recorder: SmoothingRecorder,
}

impl Recording {
    fn stats(&self, a: &SmoothingArgs) -> SmoothingStats {
        self.stats_of(&self.recorder, a)
    }

    fn stats_of(&self, r: &SmoothingRecorder, a: &SmoothingArgs) -> SmoothingStats {
        let frames = |s: f64| (s * self.frame_rate).round().max(1.0) as usize;
        r.stats(frames(a.sustain), frames(a.flicker))
    }
}

fn record(
    pipeline: &VideoPipeline<'_>,
    paths: &[PathBuf],
    stop: &AtomicBool,
) -> Result<Vec<Recording>> {
    let mut out = Vec::new();
    for path in paths {
        let input = VideoInput::open(Source::File(path.clone()), DecodeOptions::default())?;
        let mut recorder = SmoothingRecorder::new();
        let stats = pipeline.run(&input, stop, |_, report| {
            recorder.push(report);
            Ok(())
        })?;
        out.push(Recording {
            video: name(path),
            frame_rate: input.frame_rate(),
            frames: stats.analysed,
            recorder,
        });
    }
    Ok(out)
}

/// The measures of one video or a total, in seconds and per minute.
#[derive(Debug, Clone, Default, Serialize)]
struct Row {
    video: String,
    frame_rate: Option<f64>,
    frames: u64,
    tracks: u64,
    track_seconds: f64,
    raw_changes_per_min: f64,
    shown_changes_per_min: f64,
    changes_reduction: f64,
    shortest_label_s: Option<f64>,
    median_label_s: Option<f64>,
    flicker_share: f64,
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

fn per(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Adds up videos' measures; each video's frames count at its own rate.
#[derive(Default)]
struct Total {
    stats: SmoothingStats,
    seconds: f64,
    frames: u64,
    raw_changes: f64,
    shown_changes: f64,
    /// Label durations and lags in seconds.
    labels_s: Vec<f64>,
    lags_s: Vec<f64>,
}

impl Total {
    fn add(&mut self, s: &SmoothingStats, fps: f64, frames: u64) {
        self.stats.add(s);
        self.seconds += s.track_frames as f64 / fps;
        self.frames += frames;
        self.raw_changes += s.raw_flips as f64;
        self.shown_changes += s.shown_flips as f64;
        self.labels_s
            .extend(s.label_frames.iter().map(|&f| f as f64 / fps));
        self.lags_s.extend(s.lags.iter().map(|&f| f as f64 / fps));
    }

    fn row(&self, video: String, frame_rate: Option<f64>) -> Row {
        let s = &self.stats;
        let minutes = self.seconds / 60.0;
        let (raw, shown) = (
            per(self.raw_changes, minutes),
            per(self.shown_changes, minutes),
        );
        let mut labels = self.labels_s.clone();
        labels.sort_by(f64::total_cmp);
        let median = match labels.len() {
            0 => None,
            n if n % 2 == 1 => Some(labels[n / 2]),
            n => Some((labels[n / 2 - 1] + labels[n / 2]) / 2.0),
        };
        Row {
            video,
            frame_rate,
            frames: self.frames,
            tracks: s.tracks,
            track_seconds: self.seconds,
            raw_changes_per_min: raw,
            shown_changes_per_min: shown,
            changes_reduction: reduction(raw, shown),
            shortest_label_s: labels.first().copied(),
            median_label_s: median,
            flicker_share: s.flicker_share(),
            raw_jitter_px: s.raw_jitter(),
            shown_jitter_px: s.shown_jitter(),
            jitter_reduction: reduction(s.raw_jitter(), s.shown_jitter()),
            sustained_changes: s.lags.len() as u64 + s.missed,
            followed: s.lags.len() as u64,
            mean_lag_s: (!self.lags_s.is_empty())
                .then(|| self.lags_s.iter().sum::<f64>() / self.lags_s.len() as f64),
            max_lag_s: self.lags_s.iter().copied().reduce(f64::max),
        }
    }
}

/// Runs `emotrack bench smoothing`.
pub fn smoothing(a: SmoothingArgs) -> Result<Outcome> {
    for (flag, v) in [("--sustain", a.sustain), ("--flicker", a.flicker)] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive number of seconds");
        }
    }
    let analyzer = Analyzer::new(a.analyzer.to_config()?).context("cannot set up the analyzer")?;
    let config = a.tracker.to_config();
    let pipeline = VideoPipeline::new(&analyzer, config)?;
    let stop = AtomicBool::new(false);
    let recordings = record(&pipeline, &videos(&a.paths)?, &stop)?;
    if a.sweep {
        let lag = record(&pipeline, &a.lag, &stop)?;
        return sweep(&a, &config, &recordings, &lag);
    }
    let mut rows = Vec::new();
    let mut total = Total::default();
    for r in &recordings {
        let s = r.stats(&a);
        let mut one = Total::default();
        one.add(&s, r.frame_rate, r.frames);
        rows.push(one.row(r.video.clone(), Some(r.frame_rate)));
        total.add(&s, r.frame_rate, r.frames);
    }
    rows.push(total.row("all".into(), None));
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Success);
    }
    println!(
        "{}; sustained change = {} s each side, flicker = undone within {} s",
        describe(&config),
        a.sustain,
        a.flicker
    );
    print_table(&rows);
    Ok(Outcome::Success)
}

fn describe(config: &PipelineConfig) -> String {
    let c = &config.tracker;
    let l = &c.label;
    format!(
        "smoothing: {}, label: lead {} for {} s or {} for {} s, shown at least {} s; box alpha \
         {}, min hits {}, detect every {}",
        smoothing_name(c.scores),
        l.margin,
        l.hold,
        l.fast_margin,
        l.fast_hold,
        l.min_show,
        c.box_alpha,
        c.min_hits,
        config.detect_every
    )
}

fn smoothing_name(s: ScoreSmoothing) -> String {
    match s {
        ScoreSmoothing::Window { window } => format!("window {window} frames"),
        ScoreSmoothing::Ema { alpha } => format!("EMA alpha {alpha}"),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

fn print_table(rows: &[Row]) {
    println!(
        "| video | fps | frames | tracks | track s | changes/min raw | changes/min shown | fewer | \
         shortest label s | median label s | flickers | jitter raw px | jitter shown px | less | \
         sustained changes (followed) | lag mean s | lag max s |"
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0}% | {} | {} | {:.0}% | {:.2} | {:.2} | {:.0}% | {} ({}) | {} | {} |",
            r.video,
            opt(r.frame_rate),
            r.frames,
            r.tracks,
            r.track_seconds,
            r.raw_changes_per_min,
            r.shown_changes_per_min,
            r.changes_reduction * 100.0,
            opt(r.shortest_label_s),
            opt(r.median_label_s),
            r.flicker_share * 100.0,
            r.raw_jitter_px,
            r.shown_jitter_px,
            r.jitter_reduction * 100.0,
            r.sustained_changes,
            r.followed,
            opt(r.mean_lag_s),
            opt(r.max_lag_s),
        );
    }
}

/// One setting of the sweep and its measures.
#[derive(Debug, Clone, Serialize)]
struct SweepPoint {
    scores: ScoreSmoothing,
    label: LabelRule,
    changes_reduction: f64,
    shown_changes_per_min: f64,
    shortest_label_s: Option<f64>,
    median_label_s: Option<f64>,
    flicker_share: f64,
    lag_followed: u64,
    lag_missed: u64,
    max_lag_s: Option<f64>,
    mean_lag_s: Option<f64>,
    meets_targets: bool,
}

/// The targets of the sweep: label changes removed, shortest label, largest lag.
const TARGET_REDUCTION: f64 = 0.9;
const TARGET_SHORTEST_S: f64 = 0.5;
const TARGET_LAG_S: f64 = 0.3;

/// The grid: smoothing windows (frames) and label rules.
fn grid() -> Vec<(ScoreSmoothing, LabelRule)> {
    let mut out = Vec::new();
    for window in [4, 8, 12] {
        for margin in [0.0, 0.05, 0.1, 0.15, 0.2] {
            for hold in [0.2, 0.35, 0.5, 0.75, 1.0] {
                for fast_margin in [0.2, 0.3, 0.4, 0.5] {
                    for fast_hold in [0.0, 0.04, 0.1] {
                        for min_show in [0.0, 0.25, 0.5] {
                            let rule = LabelRule {
                                margin,
                                hold,
                                fast_margin,
                                fast_hold,
                                min_show,
                            };
                            if rule.validate().is_ok() && fast_hold <= hold {
                                out.push((ScoreSmoothing::Window { window }, rule));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn sweep(
    a: &SmoothingArgs,
    config: &PipelineConfig,
    steadiness: &[Recording],
    lag: &[Recording],
) -> Result<Outcome> {
    let measure = |recs: &[Recording], scores, rule| {
        let mut total = Total::default();
        for r in recs {
            let replayed = r.recorder.replay(scores, rule, r.frame_rate);
            total.add(&r.stats_of(&replayed, a), r.frame_rate, r.frames);
        }
        total
    };
    let point = |scores: ScoreSmoothing, label: LabelRule| {
        let s = measure(steadiness, scores, label).row(String::new(), None);
        let l = measure(lag, scores, label).row(String::new(), None);
        let meets_targets = s.changes_reduction >= TARGET_REDUCTION
            && s.shortest_label_s
                .is_none_or(|v| v >= TARGET_SHORTEST_S - 1e-9)
            && l.sustained_changes == l.followed
            && l.max_lag_s.is_none_or(|v| v <= TARGET_LAG_S + 1e-9);
        SweepPoint {
            scores,
            label,
            changes_reduction: s.changes_reduction,
            shown_changes_per_min: s.shown_changes_per_min,
            shortest_label_s: s.shortest_label_s,
            median_label_s: s.median_label_s,
            flicker_share: s.flicker_share,
            lag_followed: l.followed,
            lag_missed: l.sustained_changes - l.followed,
            max_lag_s: l.max_lag_s,
            mean_lag_s: l.mean_lag_s,
            meets_targets,
        }
    };
    let current = point(config.tracker.scores, config.tracker.label);
    let points: Vec<SweepPoint> = grid().into_iter().map(|(s, r)| point(s, r)).collect();
    if let Some(path) = &a.plot {
        plot(&points, &current, path)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&points)?);
        return Ok(Outcome::Success);
    }
    let front = pareto(&points);
    println!(
        "{} settings replayed on {} video(s), lag on {}; targets: >= {:.0}% fewer label changes, \
         no label under {} s, every sustained change followed within {} s. Shown: the \
         settings of the flags, then the trade-off front (fewest changes for each largest lag).",
        points.len(),
        steadiness.len(),
        lag.len(),
        TARGET_REDUCTION * 100.0,
        TARGET_SHORTEST_S,
        TARGET_LAG_S
    );
    println!(
        "| window | margin | hold s | fast margin | fast hold s | min show s | fewer | changes/min | \
         shortest s | median s | flickers | lag max s (missed) | targets |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in std::iter::once(&current).chain(front) {
        let window = match p.scores {
            ScoreSmoothing::Window { window } => window.to_string(),
            ScoreSmoothing::Ema { alpha } => format!("EMA {alpha}"),
        };
        let l = &p.label;
        println!(
            "| {window} | {} | {} | {} | {} | {} | {:.1}% | {:.1} | {} | {} | {:.0}% | {} ({}) | {} |",
            l.margin,
            l.hold,
            l.fast_margin,
            l.fast_hold,
            l.min_show,
            p.changes_reduction * 100.0,
            p.shown_changes_per_min,
            opt(p.shortest_label_s),
            opt(p.median_label_s),
            p.flicker_share * 100.0,
            opt(p.max_lag_s),
            p.lag_missed,
            if p.meets_targets { "met" } else { "-" }
        );
    }
    let met = points.iter().filter(|p| p.meets_targets).count();
    println!("{met} of {} settings meet every target", points.len());
    Ok(Outcome::Success)
}

/// The largest lag of a point, infinite when a sustained change was missed.
fn worst_lag(p: &SweepPoint) -> f64 {
    if p.lag_missed > 0 {
        f64::INFINITY
    } else {
        p.max_lag_s.unwrap_or(0.0)
    }
}

/// The points no other point beats on both label changes removed and largest lag, by lag.
fn pareto(points: &[SweepPoint]) -> Vec<&SweepPoint> {
    let mut sorted: Vec<&SweepPoint> = points.iter().filter(|p| p.lag_missed == 0).collect();
    sorted.sort_by(|a, b| {
        worst_lag(a)
            .total_cmp(&worst_lag(b))
            .then(b.changes_reduction.total_cmp(&a.changes_reduction))
    });
    let mut front: Vec<&SweepPoint> = Vec::new();
    for p in sorted {
        if front
            .last()
            .is_none_or(|best| p.changes_reduction > best.changes_reduction + 1e-9)
        {
            front.push(p);
        }
    }
    front
}

/// Picture size in pixels.
const PLOT_SIZE: (u32, u32) = (720, 520);

fn plot(points: &[SweepPoint], current: &SweepPoint, path: &Path) -> Result<()> {
    chart::render(PLOT_SIZE, |canvas| draw(canvas, points, current))
        .and_then(|image| chart::save_png(&image, path))
        .with_context(|| format!("cannot draw {}", path.display()))
}

fn draw(
    canvas: &Canvas<'_>,
    points: &[SweepPoint],
    current: &SweepPoint,
) -> Result<(), ChartError> {
    let shown: Vec<&SweepPoint> = points.iter().filter(|p| p.lag_missed == 0).collect();
    let max_lag = shown
        .iter()
        .map(|p| worst_lag(p))
        .fold(TARGET_LAG_S * 1.5, f64::max);
    let min_red = shown
        .iter()
        .map(|p| p.changes_reduction)
        .fold(TARGET_REDUCTION, f64::min);
    let mut c = ChartBuilder::on(canvas)
        .caption(
            "Label changes removed against the largest lag",
            chart::font(chart::TITLE_SIZE),
        )
        .margin(12)
        .margin_bottom(44)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_lag * 1.05, (min_red * 100.0 - 2.0)..100.0)?;
    c.configure_mesh()
        .x_desc("largest lag on the lag clips (s)")
        .y_desc("label changes removed (%)")
        .axis_desc_style(chart::font(chart::LABEL_SIZE))
        .label_style(chart::font(chart::LABEL_SIZE))
        .bold_line_style(chart::GRID)
        .light_line_style(chart::BACKGROUND)
        .draw()?;
    let dot = |p: &SweepPoint| (worst_lag(p), p.changes_reduction * 100.0);
    let short = RGBColor(200, 200, 200);
    let ok = chart::ACCENT;
    c.draw_series(shown.iter().map(|p| {
        let long_enough = p
            .shortest_label_s
            .is_none_or(|v| v >= TARGET_SHORTEST_S - 1e-9);
        Circle::new(dot(p), 3, if long_enough { ok } else { short }.filled())
    }))?;
    let front: Vec<(f64, f64)> = pareto(points).into_iter().map(dot).collect();
    c.draw_series(LineSeries::new(front, chart::INK))?;
    c.draw_series(std::iter::once(Cross::new(
        dot(current),
        7,
        RGBColor(214, 39, 40).stroke_width(3),
    )))?;
    let (x0, x1) = (0.0, max_lag * 1.05);
    let y = TARGET_REDUCTION * 100.0;
    c.draw_series(LineSeries::new([(x0, y), (x1, y)], chart::INK.mix(0.4)))?;
    let x = TARGET_LAG_S;
    c.draw_series(LineSeries::new(
        [(x, min_red * 100.0 - 2.0), (x, 100.0)],
        chart::INK.mix(0.4),
    ))?;
    chart::legend(
        canvas,
        (80, PLOT_SIZE.1 as i32 - 28),
        [
            ("no label under 0.5 s", ok),
            ("some label shorter", short),
            ("the flags' setting", RGBColor(214, 39, 40)),
        ],
    )?;
    Ok(())
}
