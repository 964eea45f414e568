//! Per-track smoothing of probabilities, boxes and labels.
//!
//! * [`SlidingMean`]: the mean of the last `window` score vectors in O(1) per frame (running
//!   sums over a ring buffer).
//! * [`Ema`]: exponential moving average of score vectors, an alternative to the window.
//! * [`BoxEma`]: exponential moving average of a box's centre and size, against jitter.
//!
//! # Time, not frames
//!
//! Every setting counts *frames at the stream's nominal rate*, and every `push_for` says how
//! many nominal frames the new sample stands for (1 when frames come at the nominal rate, 3.75
//! for a browser sending 8 frames a second against a nominal 30): the window covers the same
//! time and an EMA decays by the same amount per second, whatever the rate. `push` is
//! `push_for(.., 1.0)`, exactly the frame-counting behaviour. (The label rule,
//! [`super::label`], counts seconds.)
//!
//! Tuning: a longer window / smaller EMA alpha is steadier but lags more. The default window
//! of 8 frames with the default label rule removes over 90% of label changes on the media
//! videos and follows a real change of expression within 0.3 s (`emotrack bench smoothing`,
//! bench/RESULTS.md).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::types::{BBox, EmotionScores};

/// The mean of the score vectors of the last `window` frames, updated in O(1): a running sum
/// gains the new vector and loses the ones leaving the window. Each vector is weighted by the
/// frames it stands for (see the module docs), and the window keeps the newest vectors that
/// cover `window` frames. Sums are kept in `f64` and rebuilt from the buffer once per window
/// so floating-point drift cannot accumulate.
#[derive(Debug, Clone)]
pub struct SlidingMean {
    window: f64,
    /// Each vector with its weight (frames).
    buf: VecDeque<([f32; 7], f64)>,
    sum: [f64; 7],
    weight: f64,
    since_rebuild: usize,
}

impl SlidingMean {
    /// A window of `window` frames (at least 1).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Self {
            window: window as f64,
            buf: VecDeque::with_capacity(window),
            sum: [0.0; 7],
            weight: 0.0,
            since_rebuild: 0,
        }
    }

    /// Adds a frame's scores and returns the mean over the window (fewer frames at the start).
    pub fn push(&mut self, scores: &EmotionScores) -> EmotionScores {
        self.push_for(scores, 1.0)
    }

    /// Adds scores that stand for `frames` frames (see the module docs) and returns the
    /// weighted mean over the newest vectors covering the window.
    pub fn push_for(&mut self, scores: &EmotionScores, frames: f32) -> EmotionScores {
        let w = f64::from(sane_frames(frames));
        self.buf.push_back((scores.0, w));
        for (s, v) in self.sum.iter_mut().zip(scores.0) {
            *s += w * f64::from(v);
        }
        self.weight += w;
        // Drop the oldest vectors while the newer ones still cover the window.
        while let Some(&(old, ow)) = self.buf.front() {
            if self.buf.len() == 1 || self.weight - ow < self.window - 1e-6 {
                break;
            }
            self.buf.pop_front();
            for (s, v) in self.sum.iter_mut().zip(old) {
                *s -= ow * f64::from(v);
            }
            self.weight -= ow;
        }
        self.since_rebuild += 1;
        if self.since_rebuild as f64 >= self.window {
            self.sum = [0.0; 7];
            self.weight = 0.0;
            for (row, w) in &self.buf {
                for (s, v) in self.sum.iter_mut().zip(row) {
                    *s += w * f64::from(*v);
                }
                self.weight += w;
            }
            self.since_rebuild = 0;
        }
        self.mean()
    }

    /// The current mean (all zeros before the first push).
    pub fn mean(&self) -> EmotionScores {
        let n = if self.weight > 0.0 { self.weight } else { 1.0 };
        EmotionScores(self.sum.map(|s| (s / n) as f32))
    }

    /// Frames currently in the window.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no frame was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Exponential moving average of score vectors: `m ← m + alpha·(x − m)`; the first frame
/// initialises it.
#[derive(Debug, Clone)]
pub struct Ema {
    alpha: f32,
    value: Option<[f32; 7]>,
}

impl Ema {
    /// `alpha` in (0, 1]: the weight of the newest frame.
    pub fn new(alpha: f32) -> Self {
        Self {
            alpha: alpha.clamp(1e-3, 1.0),
            value: None,
        }
    }

    /// Adds a frame's scores and returns the average.
    pub fn push(&mut self, scores: &EmotionScores) -> EmotionScores {
        self.push_for(scores, 1.0)
    }

    /// Adds scores that stand for `frames` frames: the old average decays as much as over that
    /// many frames.
    pub fn push_for(&mut self, scores: &EmotionScores, frames: f32) -> EmotionScores {
        let alpha = alpha_for(self.alpha, frames);
        let next = match self.value {
            None => scores.0,
            Some(m) => std::array::from_fn(|i| m[i] + alpha * (scores.0[i] - m[i])),
        };
        self.value = Some(next);
        EmotionScores(next)
    }
}

/// Exponential moving average of a box's centre and size (`alpha` is the newest box's weight).
#[derive(Debug, Clone)]
pub struct BoxEma {
    alpha: f32,
    value: Option<[f32; 4]>,
}

impl BoxEma {
    /// `alpha` in (0, 1]; 1 disables smoothing.
    pub fn new(alpha: f32) -> Self {
        Self {
            alpha: alpha.clamp(1e-3, 1.0),
            value: None,
        }
    }

    /// Adds a box and returns the smoothed one.
    pub fn push(&mut self, b: &BBox) -> BBox {
        self.push_for(b, 1.0)
    }

    /// Adds a box that stands for `frames` frames and returns the smoothed one.
    pub fn push_for(&mut self, b: &BBox, frames: f32) -> BBox {
        let alpha = alpha_for(self.alpha, frames);
        let (cx, cy) = b.center();
        let x = [cx, cy, b.w, b.h];
        let m = match self.value {
            None => x,
            Some(m) => std::array::from_fn(|i| m[i] + alpha * (x[i] - m[i])),
        };
        self.value = Some(m);
        BBox {
            x: m[0] - m[2] / 2.0,
            y: m[1] - m[3] / 2.0,
            w: m[2],
            h: m[3],
        }
    }

    /// The current smoothed box, if any.
    pub fn value(&self) -> Option<BBox> {
        self.value.map(|m| BBox {
            x: m[0] - m[2] / 2.0,
            y: m[1] - m[3] / 2.0,
            w: m[2],
            h: m[3],
        })
    }
}

/// How a track's probabilities are smoothed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ScoreSmoothing {
    /// Mean over the last `window` frames.
    Window {
        /// Frames in the window.
        window: usize,
    },
    /// Exponential moving average with weight `alpha` on the newest frame.
    Ema {
        /// Newest frame's weight, in (0, 1].
        alpha: f32,
    },
}

/// Frames in the default smoothing window ([`ScoreSmoothing::default`]).
pub const DEFAULT_WINDOW: usize = 8;

impl Default for ScoreSmoothing {
    fn default() -> Self {
        ScoreSmoothing::Window {
            window: DEFAULT_WINDOW,
        }
    }
}

/// The score smoother a [`ScoreSmoothing`] describes.
#[derive(Debug, Clone)]
pub enum ScoreSmoother {
    /// Sliding window mean.
    Window(SlidingMean),
    /// Exponential moving average.
    Ema(Ema),
}

impl ScoreSmoother {
    /// A fresh smoother.
    pub fn new(kind: ScoreSmoothing) -> Self {
        match kind {
            ScoreSmoothing::Window { window } => ScoreSmoother::Window(SlidingMean::new(window)),
            ScoreSmoothing::Ema { alpha } => ScoreSmoother::Ema(Ema::new(alpha)),
        }
    }

    /// Adds a frame's scores and returns the smoothed ones.
    pub fn push(&mut self, scores: &EmotionScores) -> EmotionScores {
        self.push_for(scores, 1.0)
    }

    /// Adds scores that stand for `frames` frames and returns the smoothed ones.
    pub fn push_for(&mut self, scores: &EmotionScores, frames: f32) -> EmotionScores {
        match self {
            ScoreSmoother::Window(w) => w.push_for(scores, frames),
            ScoreSmoother::Ema(e) => e.push_for(scores, frames),
        }
    }
}

/// The weight of a sample standing for `frames` frames in an EMA whose per-frame weight is
/// `alpha`: what is left of the old average after that many frames is `(1 - alpha)^frames`.
/// Exactly `alpha` for one frame.
fn alpha_for(alpha: f32, frames: f32) -> f32 {
    let frames = sane_frames(frames);
    if frames == 1.0 {
        alpha
    } else {
        1.0 - (1.0 - alpha).powf(frames)
    }
}

/// Frames a sample stands for, kept to a usable range: a repeated or backwards timestamp still
/// counts a little, a long pause counts as at most a minute at 30 fps.
pub(crate) fn sane_frames(frames: f32) -> f32 {
    if frames.is_finite() {
        frames.clamp(0.01, 1800.0)
    } else {
        1.0
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Probability vectors (non-negative, summing to 1).
    pub(in crate::track) fn scores_strategy() -> impl Strategy<Value = EmotionScores> {
        proptest::array::uniform7(0.0f32..1.0).prop_map(|mut a| {
            let s: f32 = a.iter().sum::<f32>().max(1e-6);
            for v in &mut a {
                *v /= s;
            }
            EmotionScores(a)
        })
    }

    proptest! {
        #[test]
        fn sliding_mean_equals_the_naive_mean_of_the_window(
            window in 1usize..20,
            frames in proptest::collection::vec(scores_strategy(), 1..200),
        ) {
            let mut m = SlidingMean::new(window);
            for (i, f) in frames.iter().enumerate() {
                let got = m.push(f);
                let start = (i + 1).saturating_sub(window);
                let slice = &frames[start..=i];
                for c in 0..7 {
                    let naive = slice.iter().map(|s| f64::from(s.0[c])).sum::<f64>() / slice.len() as f64;
                    prop_assert!((f64::from(got.0[c]) - naive).abs() < 1e-5, "frame {i} class {c}");
                }
            }
        }
    }

    #[test]
    fn a_window_covers_the_same_time_at_8_fps_as_at_30() {
        // 8 nominal frames (30 fps) are 0.27 s: at 8 fps, 3.75 frames each, 3 samples cover it.
        let mut w = SlidingMean::new(8);
        let one = |i: usize| {
            let mut a = [0.0; 7];
            a[i] = 1.0;
            EmotionScores(a)
        };
        for i in 0..5 {
            w.push_for(&one(i), 3.75);
        }
        let m = w.mean();
        assert_eq!(m.0[..2], [0.0, 0.0], "the oldest samples left the window");
        for i in 2..5 {
            assert!((m.0[i] - 1.0 / 3.0).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn an_ema_decays_by_the_same_amount_per_second_at_any_rate() {
        let (a, b) = (EmotionScores([1.0; 7]), EmotionScores([0.0; 7]));
        let mut fast = Ema::new(0.2);
        let mut slow = Ema::new(0.2);
        fast.push(&a);
        slow.push(&a);
        for _ in 0..4 {
            fast.push(&b);
        }
        slow.push_for(&b, 4.0);
        assert!((fast.push(&b).0[0] - slow.push(&b).0[0]).abs() < 1e-6);
    }

    #[test]
    fn box_ema_moves_part_way_towards_the_new_box() {
        let mut e = BoxEma::new(0.5);
        e.push(&BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        });
        let b = e.push(&BBox {
            x: 10.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        });
        assert!((b.x - 5.0).abs() < 1e-5 && (b.w - 10.0).abs() < 1e-5);
    }
}
