//! Multi-face tracking by IoU association with optimal (Hungarian) assignment.
//!
//! Each frame's detections are matched to the tracks' predicted boxes by maximising the total
//! IoU (Kuhn-Munkres); pairs below `iou_threshold` stay unmatched. Unmatched detections start
//! new tracks, unless they lie mostly inside the box of a face matched on the same frame (a
//! second detection of that face, or of a part of it); tracks unmatched for more than
//! `max_age` frames are dropped, so an id survives a short occlusion. A track is shown once it was matched `min_hits` times. Boxes move with a
//! damped constant velocity while unseen, are smoothed with an EMA, and every track carries its
//! own probability smoother and label rule, all fresh when the track is new.
//!
//! Frame counts in [`TrackerConfig`] are frames at the stream's nominal rate. A caller whose
//! frames do not come at that rate (a browser sending 8 frames a second, a video sampled with
//! `--fps`) says with [`Tracker::update_for`] how many nominal frames passed since the last one,
//! and smoothing and `max_age` then measure time rather than frames (see
//! [`super::smoothing`]). The label rule counts seconds at the tracker's frame rate
//! ([`Tracker::with_frame_rate`]).

/// The frame rate that frame counts refer to when a stream does not say (30 fps).
pub const NOMINAL_FPS: f64 = 30.0;

use pathfinding::prelude::{Matrix, kuhn_munkres};
use serde::{Deserialize, Serialize};

use super::label::{LabelHysteresis, LabelRule};
use super::smoothing::{BoxEma, ScoreSmoother, ScoreSmoothing};
use crate::error::{Error, Result};
use crate::types::{BBox, Detection, Emotion, EmotionScores, Landmarks};

/// Stable integer identity of a tracked face (1, 2, 3, ... in order of appearance).
pub type TrackId = u64;

/// Fraction of its velocity a box keeps per frame while it is not seen (avoids runaway drift).
const VELOCITY_DAMPING: f32 = 0.8;

/// Share of an unmatched detection's area inside the box of a track matched on the same frame,
/// or of a confirmed track whose face went undetected on it (its predicted box), above which it
/// counts as a second detection of that face and starts no track. Haar cascades report a face
/// twice at neighbouring sizes, or a part of it (a mouth, an eye pair), when their window
/// groups do not merge, sometimes on a frame where they miss the face itself; a new track there
/// would show a phantom face and, when it later wins the face's detection, change the face's
/// id. Two real faces overlap far less.
const DUPLICATE_SHARE: f32 = 0.6;

/// Tracker settings; each field documents its default and how to tune it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackerConfig {
    /// Smallest IoU between a track's predicted box and a detection to associate them
    /// (default 0.3). Lower it for fast motion or low frame rates.
    pub iou_threshold: f32,
    /// Matches needed before a track is shown (default 3): filters one-frame false detections.
    pub min_hits: u32,
    /// Frames a track survives without a match (default 30, 1 s at 30 fps): how long an id is
    /// kept through an occlusion.
    pub max_age: u32,
    /// Weight of the newest box in the box EMA (default 0.3: 72% less jitter than the raw boxes
    /// on the media videos, `emotrack bench smoothing`; 1 disables box smoothing).
    pub box_alpha: f32,
    /// Probability smoothing (default: mean over 10 frames).
    pub scores: ScoreSmoothing,
    /// When the shown label changes (see [`LabelRule`] for each field and its default).
    pub label: LabelRule,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            iou_threshold: 0.3,
            min_hits: 3,
            max_age: 30,
            box_alpha: 0.3,
            scores: ScoreSmoothing::default(),
            label: LabelRule::default(),
        }
    }
}

impl TrackerConfig {
    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("tracker: {m}")));
        if !(0.0..1.0).contains(&self.iou_threshold) {
            return bad(format!(
                "iou_threshold is {}, it must be in [0, 1)",
                self.iou_threshold
            ));
        }
        if !(self.box_alpha > 0.0 && self.box_alpha <= 1.0) {
            return bad(format!(
                "box_alpha is {}, it must be in (0, 1]",
                self.box_alpha
            ));
        }
        match self.scores {
            ScoreSmoothing::Window { window: 0 } => {
                bad("the smoothing window must be at least 1 frame".into())
            }
            ScoreSmoothing::Ema { alpha } if !(alpha > 0.0 && alpha <= 1.0) => bad(format!(
                "the smoothing EMA alpha is {alpha}, it must be in (0, 1]"
            )),
            _ => self.label.validate(),
        }
    }
}

/// One tracked face.
#[derive(Debug, Clone)]
pub struct Track {
    /// Stable id.
    pub id: TrackId,
    /// Smoothed box (what to draw).
    pub bbox: BBox,
    /// The last associated detection's box, or the carried prediction.
    pub raw_bbox: BBox,
    /// The last associated detection's landmarks.
    pub landmarks: Option<Landmarks>,
    /// The last associated detection's score.
    pub detector_score: f32,
    /// Times this track was matched to a detection.
    pub hits: u32,
    /// Frames since the last match (0: matched this frame).
    pub misses: u32,
    /// Nominal frames since the last match (equals `misses` when frames come at the nominal
    /// rate; see [`Tracker::update_for`]).
    missed: f32,
    /// Frames since the track started.
    pub age: u32,
    /// The last raw probabilities given to [`Tracker::observe`].
    pub raw_scores: Option<EmotionScores>,
    /// Smoothed probabilities.
    pub scores: Option<EmotionScores>,
    /// The label shown (after the label rule).
    pub label: Option<Emotion>,
    /// Centre displacement per frame.
    velocity: (f32, f32),
    /// The last matched detection's box, and the frames since it (carried or missed), so the
    /// velocity stays per frame when detection runs every N frames.
    last_detection: BBox,
    since_detection: u32,
    box_ema: BoxEma,
    smoother: ScoreSmoother,
    label_rule: LabelHysteresis,
}

impl Track {
    /// Whether the track is confirmed: detected on at least `min_hits` frames, so it is shown
    /// whenever it is seen.
    pub fn is_confirmed(&self, min_hits: u32) -> bool {
        self.hits >= min_hits
    }

    /// Where the face should be on the next frame: the last box moved by the velocity.
    pub fn predicted(&self) -> BBox {
        BBox {
            x: self.raw_bbox.x + self.velocity.0,
            y: self.raw_bbox.y + self.velocity.1,
            ..self.raw_bbox
        }
    }
}

/// The tracker. Feed it every frame: [`Tracker::update`] with detections, or
/// [`Tracker::carry`] on frames where detection is skipped; then [`Tracker::observe`] the
/// classifier's scores per track.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: TrackId,
    /// Nominal frames the current frame stands for (see [`Tracker::update_for`]).
    step: f32,
    /// Nominal frames a second.
    frame_rate: f32,
}

impl Tracker {
    /// A tracker with validated settings.
    pub fn new(config: TrackerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            tracks: Vec::new(),
            next_id: 1,
            step: 1.0,
            frame_rate: NOMINAL_FPS as f32,
        })
    }

    /// The same tracker with frame counts referring to `fps` frames a second (default
    /// [`NOMINAL_FPS`]): a video's own rate, so the label rule's seconds are the video's.
    pub fn with_frame_rate(mut self, fps: f64) -> Self {
        if fps.is_finite() && fps > 0.0 {
            self.frame_rate = fps as f32;
        }
        self
    }

    /// The settings.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Forgets every track; the next one is numbered 1 again.
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.next_id = 1;
        self.step = 1.0;
    }

    /// All live tracks, shown or not.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Tracks to show this frame: matched at least `min_hits` times and seen this frame (or
    /// carried on a frame without detection).
    pub fn visible(&self) -> impl Iterator<Item = &Track> {
        self.tracks
            .iter()
            .filter(|t| t.is_confirmed(self.config.min_hits) && t.misses == 0)
    }

    /// Associates this frame's detections with the tracks; returns, in detection order, the id
    /// of the track each one was matched to, created or (a second detection of a face) merged
    /// into.
    pub fn update(&mut self, detections: &[Detection]) -> Vec<TrackId> {
        self.update_for(detections, 1.0)
    }

    /// [`Tracker::update`] for a frame that comes `frames` nominal frames after the previous
    /// one (1.0 at the nominal rate, 3.75 for 8 fps against a nominal 30): box smoothing,
    /// `max_age`, and the probability smoothing and hysteresis of the following
    /// [`Tracker::observe`] calls weigh it as that many frames.
    pub fn update_for(&mut self, detections: &[Detection], frames: f32) -> Vec<TrackId> {
        self.step = super::smoothing::sane_frames(frames);
        let predicted: Vec<BBox> = self.tracks.iter().map(Track::predicted).collect();
        let confirmed: Vec<bool> = self
            .tracks
            .iter()
            .map(|t| t.is_confirmed(self.config.min_hits))
            .collect();
        let pairs = assign(
            &predicted,
            &confirmed,
            detections,
            self.config.iou_threshold,
        );
        let mut det_track: Vec<Option<usize>> = vec![None; detections.len()];
        for &(t, d) in &pairs {
            det_track[d] = Some(t);
        }
        let mut matched = vec![false; self.tracks.len()];
        for (t, d) in pairs {
            matched[t] = true;
            let det = &detections[d];
            let track = &mut self.tracks[t];
            // Displacement since the last detection, per frame in between (1 when detecting
            // every frame; N in detect-every-N mode, where carried positions are predictions).
            let (ox, oy) = track.last_detection.center();
            let (nx, ny) = det.bbox.center();
            let steps = (track.since_detection + 1) as f32;
            track.velocity = (
                0.5 * track.velocity.0 + 0.5 * (nx - ox) / steps,
                0.5 * track.velocity.1 + 0.5 * (ny - oy) / steps,
            );
            track.last_detection = det.bbox;
            track.since_detection = 0;
            track.raw_bbox = det.bbox;
            track.bbox = track.box_ema.push_for(&det.bbox, self.step);
            track.landmarks = det.landmarks;
            track.detector_score = det.score;
            track.hits += 1;
            track.misses = 0;
            track.missed = 0.0;
            track.age += 1;
        }
        for (track, was_matched) in self.tracks.iter_mut().zip(&matched) {
            if !was_matched {
                track.misses += 1;
                track.missed += self.step;
                track.age += 1;
                track.since_detection += 1;
                track.raw_bbox = track.predicted();
                track.velocity = (
                    track.velocity.0 * VELOCITY_DAMPING,
                    track.velocity.1 * VELOCITY_DAMPING,
                );
            }
        }
        let max_age = self.config.max_age;
        // Drop expired tracks, keeping the index map for detections valid by doing it last.
        let mut ids: Vec<TrackId> = det_track
            .iter()
            .map(|t| t.map_or(0, |t| self.tracks[t].id))
            .collect();
        // Tracks that existed before this frame (new ones spawn below): the matched ones and the
        // confirmed ones missed on it may cover a second detection of their face.
        let existing = self.tracks.len();
        let min_hits = self.config.min_hits;
        for (d, det) in detections.iter().enumerate() {
            if det_track[d].is_some() {
                continue;
            }
            let area = det.bbox.area();
            let covering = self.tracks[..existing]
                .iter()
                .zip(&matched)
                .find(|(t, m)| {
                    (**m || t.is_confirmed(min_hits))
                        && area > 0.0
                        && det.bbox.intersection(&t.raw_bbox) >= DUPLICATE_SHARE * area
                })
                .map(|(t, _)| t.id);
            ids[d] = covering.unwrap_or_else(|| self.spawn(det));
        }
        self.tracks.retain(|t| t.missed <= max_age as f32 + 1e-4);
        ids
    }

    /// Carries every track one frame forward without detections (detect-every-N mode): boxes
    /// move with their velocity; tracks are neither aged out nor hidden.
    pub fn carry(&mut self) {
        for track in &mut self.tracks {
            if track.misses == 0 {
                track.raw_bbox = track.predicted();
                track.bbox = track.box_ema.push(&track.raw_bbox);
                track.age += 1;
                track.since_detection += 1;
            }
        }
    }

    /// Records a track's raw probabilities for this frame; updates its smoothed scores and
    /// label. Unknown ids are ignored.
    pub fn observe(&mut self, id: TrackId, raw: EmotionScores) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.id == id) {
            let smooth = t.smoother.push_for(&raw, self.step);
            t.raw_scores = Some(raw);
            t.scores = Some(smooth);
            t.label = Some(t.label_rule.push(&smooth, self.step / self.frame_rate));
        }
    }

    fn spawn(&mut self, det: &Detection) -> TrackId {
        let id = self.next_id;
        self.next_id += 1;
        let mut box_ema = BoxEma::new(self.config.box_alpha);
        let bbox = box_ema.push(&det.bbox);
        self.tracks.push(Track {
            id,
            bbox,
            raw_bbox: det.bbox,
            landmarks: det.landmarks,
            detector_score: det.score,
            hits: 1,
            misses: 0,
            missed: 0.0,
            age: 1,
            raw_scores: None,
            scores: None,
            label: None,
            velocity: (0.0, 0.0),
            last_detection: det.bbox,
            since_detection: 0,
            box_ema,
            smoother: ScoreSmoother::new(self.config.scores),
            label_rule: LabelHysteresis::new(self.config.label),
        });
        id
    }
}

/// Optimal one-to-one assignment of boxes to detections maximising total IoU, where a
/// `confirmed` box (a shown track) goes before any unconfirmed one (as SORT-style trackers
/// match confirmed tracks first): a young track born on a second detection of a face never
/// takes the face from its established track. Returns `(box index, detection index)` pairs
/// whose IoU reaches `threshold`.
fn assign(
    boxes: &[BBox],
    confirmed: &[bool],
    detections: &[Detection],
    threshold: f32,
) -> Vec<(usize, usize)> {
    if boxes.is_empty() || detections.is_empty() {
        return Vec::new();
    }
    let min = (threshold * 1e6) as i64;
    // Kuhn-Munkres needs integer weights and rows ≤ columns: IoU in millionths, plus a bonus
    // larger than any IoU sum for a confirmed box's usable pairs; transposed when there are
    // more boxes than detections.
    let bonus = 1e6 as i64 * (detections.len().max(boxes.len()) as i64 + 1);
    let iou = |b: usize, d: usize| {
        let v = (boxes[b].iou(&detections[d].bbox) * 1e6) as i64;
        if confirmed[b] && v > 0 && v >= min {
            v + bonus
        } else {
            v
        }
    };
    let transpose = boxes.len() > detections.len();
    let (rows, cols) = if transpose {
        (detections.len(), boxes.len())
    } else {
        (boxes.len(), detections.len())
    };
    let mut m = Matrix::new(rows, cols, 0i64);
    for r in 0..rows {
        for c in 0..cols {
            m[(r, c)] = if transpose { iou(c, r) } else { iou(r, c) };
        }
    }
    let (_, cols_of_rows) = kuhn_munkres(&m);
    cols_of_rows
        .into_iter()
        .enumerate()
        .filter(|&(r, c)| m[(r, c)] > 0 && m[(r, c)] >= min)
        .map(|(r, c)| if transpose { (c, r) } else { (r, c) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y,
                w: 50.0,
                h: 50.0,
            },
            score: 1.0,
            landmarks: None,
        }
    }

    /// A detection with the box `x, y, w, h`.
    fn det_box(x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            bbox: BBox { x, y, w, h },
            ..det(0.0, 0.0)
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig {
            min_hits: 2,
            max_age: 5,
            ..TrackerConfig::default()
        })
        .expect("valid config")
    }

    fn id_at(t: &Tracker, x: f32) -> TrackId {
        t.tracks()
            .iter()
            .min_by(|a, b| {
                (a.raw_bbox.x - x)
                    .abs()
                    .total_cmp(&(b.raw_bbox.x - x).abs())
            })
            .map_or(0, |t| t.id)
    }

    #[test]
    fn max_age_is_time_when_frames_stand_for_several() {
        // max_age 5 nominal frames: two missed frames at 3 nominal frames each exceed it.
        let mut t = tracker();
        for _ in 0..3 {
            t.update_for(&[det(10.0, 10.0)], 3.0);
        }
        t.update_for(&[], 3.0);
        assert_eq!(t.tracks().len(), 1, "3 frames unseen: kept");
        t.update_for(&[], 3.0);
        assert!(t.tracks().is_empty(), "6 frames unseen: gone");
    }

    #[test]
    fn two_faces_crossing_keep_their_ids() {
        // Face A moves right, face B moves left, at different heights so they pass each other
        // with partial overlap; each step is small relative to the box.
        let mut t = tracker();
        let mut ids = None;
        for step in 0..30 {
            let s = step as f32 * 8.0;
            t.update(&[det(100.0 + s, 100.0), det(340.0 - s, 130.0)]);
            let a = t
                .tracks()
                .iter()
                .find(|tr| (tr.raw_bbox.y - 100.0).abs() < 1.0)
                .map(|tr| tr.id);
            let b = t
                .tracks()
                .iter()
                .find(|tr| (tr.raw_bbox.y - 130.0).abs() < 1.0)
                .map(|tr| tr.id);
            match ids {
                None => ids = Some((a, b)),
                Some(prev) => assert_eq!(prev, (a, b), "ids swapped at step {step}"),
            }
        }
        assert_eq!(t.tracks().len(), 2);
    }

    #[test]
    fn carried_boxes_move_at_the_per_frame_velocity_between_detections() {
        // A face moving 3 px a frame, detected every 5th frame: the carried box must arrive
        // where the next detection is, so the id holds and the box does not run away.
        let mut t = tracker();
        let mut ids = std::collections::BTreeSet::new();
        for frame in 0..60 {
            let x = 100.0 + 3.0 * frame as f32;
            if frame % 5 == 0 {
                ids.extend(t.update(&[det(x, 100.0)]));
            } else {
                t.carry();
            }
            if frame > 20 {
                let carried = t
                    .tracks()
                    .iter()
                    .map(|tr| tr.raw_bbox.x)
                    .fold(f32::NAN, f32::max);
                assert!(
                    (carried - x).abs() < 3.0,
                    "frame {frame}: box at {carried}, face at {x}"
                );
            }
        }
        assert_eq!(ids.len(), 1, "one id: {ids:?}");
    }

    #[test]
    fn an_occluded_face_keeps_its_id_and_a_long_absence_ends_the_track() {
        let mut t = tracker();
        for _ in 0..5 {
            t.update(&[det(100.0, 100.0)]);
        }
        let id = id_at(&t, 100.0);
        for _ in 0..4 {
            t.update(&[]); // hidden for 4 frames (max_age 5)
        }
        assert_eq!(t.visible().count(), 0, "an unseen track is not shown");
        t.update(&[det(102.0, 100.0)]);
        assert_eq!(id_at(&t, 102.0), id, "same id after the occlusion");
        assert_eq!(t.visible().next().map(|tr| tr.id), Some(id));
        for _ in 0..6 {
            t.update(&[]);
        }
        assert!(t.tracks().is_empty(), "dropped after max_age frames unseen");
        t.update(&[det(100.0, 100.0)]);
        assert_ne!(
            id_at(&t, 100.0),
            id,
            "a face after a long absence is a new track"
        );
    }

    #[test]
    fn a_new_face_entering_gets_a_new_id_after_min_hits() {
        let mut t = tracker();
        for _ in 0..3 {
            t.update(&[det(100.0, 100.0)]);
        }
        let first = id_at(&t, 100.0);
        let ids = t.update(&[det(100.0, 100.0), det(400.0, 100.0)]);
        assert_eq!(ids[0], first);
        assert_ne!(ids[1], first);
        assert_eq!(t.visible().count(), 1, "the newcomer waits for min_hits");
        t.update(&[det(100.0, 100.0), det(400.0, 100.0)]);
        assert_eq!(t.visible().count(), 2);
    }

    #[test]
    fn a_second_detection_of_a_known_face_starts_no_track() {
        // Haar's double reports: the face at two neighbouring sizes, and a part of it.
        let mut t = tracker();
        for _ in 0..3 {
            t.update(&[det(100.0, 100.0)]);
        }
        let face = id_at(&t, 100.0);
        let bigger = det_box(96.0, 97.0, 56.0, 56.0);
        let mouth = det_box(115.0, 130.0, 20.0, 15.0);
        for _ in 0..10 {
            let ids = t.update(&[det(100.0, 100.0), bigger.clone(), mouth.clone()]);
            assert_eq!(ids, vec![face; 3]);
        }
        assert_eq!(t.tracks().len(), 1);
        // The face itself missed on a frame and a part of it found: no new track either.
        let ids = t.update(std::slice::from_ref(&mouth));
        assert_eq!(ids, vec![face]);
        assert_eq!(t.tracks().len(), 1);
        // The larger box alone now: still the same face.
        t.update(std::slice::from_ref(&bigger));
        assert_eq!(t.visible().map(|tr| tr.id).collect::<Vec<_>>(), vec![face]);
        // A face beside it, overlapping a little, is a new face.
        let ids = t.update(&[bigger.clone(), det(160.0, 100.0)]);
        assert_eq!(ids[0], face);
        assert_ne!(ids[1], face);
        // A young track born on a second box that overlapped too little to be merged never
        // takes the face from its established track, even where it overlaps the face more.
        let shifted = det_box(120.0, 97.0, 60.0, 60.0);
        let ids = t.update(&[bigger.clone(), shifted.clone()]);
        assert_eq!(ids[0], face);
        let young = ids[1];
        assert_ne!(young, face);
        let ids = t.update(std::slice::from_ref(&shifted));
        assert_eq!(ids, vec![face], "the established track keeps the face");
        assert!(t.tracks().iter().any(|tr| tr.id == young && tr.misses == 1));
    }

    #[test]
    fn scores_are_smoothed_per_track_and_reset_for_new_tracks() {
        let mut t = Tracker::new(TrackerConfig {
            label: LabelRule::top_for_frames(3, NOMINAL_FPS as f32),
            ..TrackerConfig::default()
        })
        .expect("valid");
        let happy = EmotionScores([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let sad = EmotionScores([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let id = t.update(&[det(0.0, 0.0)])[0];
        t.observe(id, happy);
        t.observe(id, sad);
        let tr = &t.tracks()[0];
        assert!((tr.scores.map_or(0.0, |s| s.get(Emotion::Happy)) - 0.5).abs() < 1e-6);
        assert_eq!(
            tr.label,
            Some(Emotion::Happy),
            "the label rule holds the first label"
        );
        let other = t.update(&[det(0.0, 0.0), det(500.0, 500.0)])[1];
        t.observe(other, sad);
        let tr2 = t
            .tracks()
            .iter()
            .find(|x| x.id == other)
            .expect("new track");
        assert_eq!(tr2.scores.map(|s| s.get(Emotion::Sad)), Some(1.0));
        assert_eq!(tr2.label, Some(Emotion::Sad));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            Tracker::new(TrackerConfig {
                iou_threshold: 1.5,
                ..TrackerConfig::default()
            })
            .is_err()
        );
        assert!(
            Tracker::new(TrackerConfig {
                scores: ScoreSmoothing::Window { window: 0 },
                ..TrackerConfig::default()
            })
            .is_err()
        );
    }
}
