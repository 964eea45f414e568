//! How much smoothing steadies what is shown, and what it costs in lag (`emotrack bench
//! smoothing`).
//!
//! Per track, over the frames where it is shown:
//! * **label flips per minute**: changes of label between consecutive frames where the track
//!   is shown (across a frame or two where the face was not found too), raw (the top
//!   emotion of each frame's own probabilities) against shown (smoothed + the label rule);
//! * **how long a shown label lasts**: the frames from one change of the shown label to the
//!   next (from the track's first frame to its first change), over the whole track (a label
//!   lasts across a frame or two where the face was not found), and how many changes are
//!   **flickers**: undone (back to the label before) within `flicker` frames;
//! * **box jitter**: the mean length of the second difference of the box centre,
//!   `|c[t+1] − 2c[t] + c[t−1]|` in pixels, which is 0 for steady motion and grows with
//!   frame-to-frame shake; raw (the detection) against shown (the smoothed box);
//! * **lag**: at each sustained raw change (the raw label held `M` for `sustain` frames, then
//!   holds `L ≠ M` for `sustain` frames), the frames until the shown label becomes `L`.
//!   Changes the shown label never follows while `L` lasts count as missed.
//!
//! [`SmoothingRecorder::replay`] replays other smoothing settings and another [`LabelRule`] on
//! the recorded raw probabilities: neither feeds anything back into tracking, so for a file
//! analysed frame by frame the replay shows exactly what a run with those settings would
//! (`emotrack bench smoothing --sweep`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::pipeline::FrameReport;
use crate::track::TrackId;
use crate::track::label::{LabelHysteresis, LabelRule};
use crate::track::smoothing::{ScoreSmoother, ScoreSmoothing};
use crate::types::{Emotion, EmotionScores};

#[derive(Debug, Clone, Copy)]
struct Obs {
    index: u64,
    raw: Emotion,
    raw_scores: EmotionScores,
    shown: Emotion,
    raw_center: (f32, f32),
    shown_center: (f32, f32),
}

/// Collects per-track raw and shown labels and boxes, frame by frame.
#[derive(Debug, Clone, Default)]
pub struct SmoothingRecorder {
    tracks: BTreeMap<TrackId, Vec<Obs>>,
}

/// The measures for one video (or several added together).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SmoothingStats {
    /// Frames × tracks observed.
    pub track_frames: u64,
    /// Tracks observed.
    pub tracks: u64,
    /// Raw label changes between consecutive observations of a track.
    pub raw_flips: u64,
    /// Shown label changes between consecutive observations of a track.
    pub shown_flips: u64,
    /// Sum of raw second-difference lengths (pixels) and their count.
    pub raw_jitter_sum: f64,
    /// Sum of shown second-difference lengths (pixels).
    pub shown_jitter_sum: f64,
    /// Second differences measured.
    pub jitter_samples: u64,
    /// Lags (frames) of the sustained raw changes the shown label followed.
    pub lags: Vec<u64>,
    /// Sustained raw changes the shown label did not follow.
    pub missed: u64,
    /// How long each shown label lasted until it changed (frames; one entry per change, over
    /// the whole track, gaps included).
    pub label_frames: Vec<u64>,
    /// Shown label changes undone within the flicker time.
    pub flickers: u64,
}

impl SmoothingStats {
    /// Adds another video's measures.
    pub fn add(&mut self, o: &SmoothingStats) {
        self.track_frames += o.track_frames;
        self.tracks += o.tracks;
        self.raw_flips += o.raw_flips;
        self.shown_flips += o.shown_flips;
        self.raw_jitter_sum += o.raw_jitter_sum;
        self.shown_jitter_sum += o.shown_jitter_sum;
        self.jitter_samples += o.jitter_samples;
        self.lags.extend_from_slice(&o.lags);
        self.missed += o.missed;
        self.label_frames.extend_from_slice(&o.label_frames);
        self.flickers += o.flickers;
    }

    fn minutes(&self, frame_rate: f64) -> f64 {
        self.track_frames as f64 / frame_rate / 60.0
    }

    /// Raw label flips per minute of track time.
    pub fn raw_flips_per_minute(&self, frame_rate: f64) -> f64 {
        per(self.raw_flips as f64, self.minutes(frame_rate))
    }

    /// Shown label flips per minute of track time.
    pub fn shown_flips_per_minute(&self, frame_rate: f64) -> f64 {
        per(self.shown_flips as f64, self.minutes(frame_rate))
    }

    /// Mean raw box-centre second difference (pixels).
    pub fn raw_jitter(&self) -> f64 {
        per(self.raw_jitter_sum, self.jitter_samples as f64)
    }

    /// Mean shown box-centre second difference (pixels).
    pub fn shown_jitter(&self) -> f64 {
        per(self.shown_jitter_sum, self.jitter_samples as f64)
    }

    /// Mean lag in frames (`None`: no sustained change was followed).
    pub fn mean_lag_frames(&self) -> Option<f64> {
        (!self.lags.is_empty())
            .then(|| self.lags.iter().sum::<u64>() as f64 / self.lags.len() as f64)
    }

    /// Largest lag in frames.
    pub fn max_lag_frames(&self) -> Option<u64> {
        self.lags.iter().copied().max()
    }

    /// The share of shown label changes that were flickers (0 without changes).
    pub fn flicker_share(&self) -> f64 {
        per(self.flickers as f64, self.label_frames.len() as f64)
    }
}

fn per(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl SmoothingRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a frame's faces.
    pub fn push(&mut self, report: &FrameReport) {
        for f in &report.faces {
            self.tracks.entry(f.id).or_default().push(Obs {
                index: report.index,
                raw: f.raw.top().0,
                raw_scores: f.raw,
                shown: f.label,
                raw_center: f.detected_bbox.center(),
                shown_center: f.bbox.center(),
            });
        }
    }

    /// The measures; `sustain` is the number of frames a raw label must hold on both sides of
    /// a change for the change to count as sustained, `flicker` the frames within which an
    /// undone change counts as a flicker.
    pub fn stats(&self, sustain: usize, flicker: usize) -> SmoothingStats {
        let sustain = sustain.max(1);
        let mut s = SmoothingStats {
            tracks: self.tracks.len() as u64,
            ..SmoothingStats::default()
        };
        for obs in self.tracks.values() {
            s.track_frames += obs.len() as u64;
            // Split into runs of consecutive frames (a track hidden for a while restarts).
            for run in obs.chunk_by(|a, b| b.index == a.index + 1) {
                measure_run(run, sustain, &mut s);
            }
            // A label lasts across a short gap in its track: the user sees it again.
            measure_labels(obs, flicker as u64, &mut s);
        }
        s
    }

    /// The same recording with the smoothed probabilities and shown labels that `scores` and
    /// `rule` would have given, each frame lasting `1 / frame_rate` seconds (a file analysed
    /// frame by frame at its own rate).
    pub fn replay(&self, scores: ScoreSmoothing, rule: LabelRule, frame_rate: f64) -> Self {
        let dt = (1.0 / frame_rate) as f32;
        let tracks = self
            .tracks
            .iter()
            .map(|(&id, obs)| {
                let mut smoother = ScoreSmoother::new(scores);
                let mut label = LabelHysteresis::new(rule);
                let obs = obs
                    .iter()
                    .map(|o| {
                        let smoothed = smoother.push(&o.raw_scores);
                        Obs {
                            shown: label.push(&smoothed, dt),
                            ..*o
                        }
                    })
                    .collect();
                (id, obs)
            })
            .collect();
        Self { tracks }
    }
}

/// A track's label changes between consecutive observations (raw and shown; across a short
/// gap too, as a user sees the label change), how long each shown label lasted (in frames, from the frame it appeared, or the
/// track's first, to the frame it was replaced) and which changes were undone within `flicker`
/// frames.
fn measure_labels(obs: &[Obs], flicker: u64, s: &mut SmoothingStats) {
    let changes: Vec<(u64, Emotion, Emotion)> = obs
        .windows(2)
        .filter(|w| w[0].shown != w[1].shown)
        .map(|w| (w[1].index, w[0].shown, w[1].shown))
        .collect();
    for w in obs.windows(2) {
        s.raw_flips += u64::from(w[0].raw != w[1].raw);
        s.shown_flips += u64::from(w[0].shown != w[1].shown);
    }
    let mut since = obs.first().map_or(0, |o| o.index);
    for (i, &(at, from, _)) in changes.iter().enumerate() {
        s.label_frames.push(at - since);
        since = at;
        if let Some(&(next, _, back)) = changes.get(i + 1) {
            s.flickers += u64::from(back == from && next - at <= flicker);
        }
    }
}

fn measure_run(run: &[Obs], sustain: usize, s: &mut SmoothingStats) {
    let second = |a: (f32, f32), b: (f32, f32), c: (f32, f32)| {
        let dx = f64::from(c.0 - 2.0 * b.0 + a.0);
        let dy = f64::from(c.1 - 2.0 * b.1 + a.1);
        (dx * dx + dy * dy).sqrt()
    };
    for w in run.windows(3) {
        s.raw_jitter_sum += second(w[0].raw_center, w[1].raw_center, w[2].raw_center);
        s.shown_jitter_sum += second(w[0].shown_center, w[1].shown_center, w[2].shown_center);
        s.jitter_samples += 1;
    }
    // Sustained changes: the same raw label on `sustain` frames before i and from i on.
    for i in sustain..run.len() {
        let (before, after) = (run[i - 1].raw, run[i].raw);
        if before == after || i + sustain > run.len() {
            continue;
        }
        if !run[i - sustain..i].iter().all(|o| o.raw == before) {
            continue;
        }
        let holds = run[i..].iter().take_while(|o| o.raw == after).count();
        if holds < sustain {
            continue;
        }
        match run[i..i + holds].iter().position(|o| o.shown == after) {
            Some(lag) => s.lags.push(lag as u64),
            None => s.missed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BBox, EmotionScores};
    use crate::video::TrackedFace;

    fn scores(e: Emotion) -> EmotionScores {
        let mut s = [0.0; 7];
        s[e.index()] = 1.0;
        EmotionScores(s)
    }

    fn push(r: &mut SmoothingRecorder, index: u64, raw: Emotion, shown: Emotion, x: f32) {
        let b = BBox {
            x,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        r.push(&FrameReport {
            index,
            time: index as f64 / 10.0,
            detected: true,
            faces: vec![TrackedFace {
                id: 1,
                bbox: BBox { x: 0.0, ..b },
                detected_bbox: b,
                landmarks: None,
                detector_score: 1.0,
                raw: scores(raw),
                smoothed: scores(shown),
                label: shown,
                vibe: String::new(),
            }],
        });
    }

    #[test]
    fn flips_jitter_and_lag_follow_their_definitions() {
        use Emotion::{Happy as H, Sad as S};
        let mut r = SmoothingRecorder::new();
        // Raw: 4 happy, 4 sad (a sustained change at frame 4); shown follows 2 frames late.
        // Raw x alternates 0, 2, 0, 2 ... (second difference 4 px); shown x is steady.
        let raw = [H, H, H, H, S, S, S, S];
        let shown = [H, H, H, H, H, H, S, S];
        for i in 0..8 {
            push(
                &mut r,
                i as u64,
                raw[i],
                shown[i],
                if i % 2 == 0 { 0.0 } else { 2.0 },
            );
        }
        let s = r.stats(3, 10);
        assert_eq!((s.raw_flips, s.shown_flips), (1, 1));
        assert_eq!(s.jitter_samples, 6);
        assert!((s.raw_jitter() - 4.0).abs() < 1e-9);
        assert_eq!(s.shown_jitter(), 0.0);
        assert_eq!(s.lags, vec![2]);
        assert_eq!(s.missed, 0);
        assert!((s.raw_flips_per_minute(10.0) - 1.0 / (8.0 / 600.0)).abs() < 1e-9);
    }

    #[test]
    fn label_durations_and_flickers_follow_their_definitions_and_relabel_replays_a_rule() {
        use Emotion::{Happy as H, Sad as S};
        let mut r = SmoothingRecorder::new();
        // Shown: 5 happy, 3 sad (undone after 3 frames: a flicker within 4), 10 happy, 2 sad.
        let shown: Vec<Emotion> = [(H, 5), (S, 3), (H, 10), (S, 2)]
            .iter()
            .flat_map(|&(e, n)| std::iter::repeat_n(e, n))
            .collect();
        for (i, &e) in shown.iter().enumerate() {
            push(&mut r, i as u64, e, e, 0.0);
        }
        let s = r.stats(3, 4);
        assert_eq!(s.shown_flips, 3);
        assert_eq!(s.label_frames, vec![5, 3, 10]);
        assert_eq!(s.flickers, 1);
        assert!((s.flicker_share() - 1.0 / 3.0).abs() < 1e-9);
        // The raw scores are the shown labels here: without smoothing (a window of 1),
        // following the top emotion at once gives the same labels back; a rule that keeps a
        // label up for a second (10 frames at 10 fps) drops the 3-frame sad and keeps happy
        // until the sad at frame 18.
        let unsmoothed = ScoreSmoothing::Window { window: 1 };
        let same = r
            .replay(unsmoothed, LabelRule::top_for_frames(1, 10.0), 10.0)
            .stats(3, 4);
        assert_eq!(same, s);
        let slow = LabelRule {
            min_show: 1.0,
            ..LabelRule::top_for_frames(1, 10.0)
        };
        let steady = r.replay(unsmoothed, slow, 10.0).stats(3, 4);
        assert_eq!(steady.label_frames, vec![18]);
        assert_eq!(steady.flickers, 0);
    }

    #[test]
    fn brief_raw_blips_are_not_sustained_changes_and_changes_count_across_gaps() {
        use Emotion::{Happy as H, Sad as S};
        let mut r = SmoothingRecorder::new();
        let raw = [H, H, H, S, H, H, H];
        for (i, e) in raw.iter().enumerate() {
            push(&mut r, i as u64, *e, H, 0.0);
        }
        // A gap: frames 20.. are a separate run. A change of label across it is still one a
        // user sees; a sustained change is not timed across it (the raw sad at 20 does not
        // follow 3 frames of happy right before it).
        push(&mut r, 20, S, S, 0.0);
        let s = r.stats(3, 10);
        assert_eq!(s.raw_flips, 3);
        assert_eq!(s.shown_flips, 1);
        assert_eq!(s.label_frames, vec![20]);
        assert!(s.lags.is_empty() && s.missed == 0);
    }
}
