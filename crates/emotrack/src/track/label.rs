//! Which emotion a tracked face shows: label hysteresis on the smoothed probabilities.
//!
//! Smoothed probabilities of two close emotions (happy and neutral on a half smile) can sit
//! within a few points of each other for seconds, trading the top place every few frames. A
//! label that followed the top place would flicker. [`LabelHysteresis`] changes the shown label
//! only when another emotion (the challenger) leads it clearly and for long enough
//! ([`LabelRule`]): by `margin` for `hold` seconds, or by `fast_margin` for `fast_hold` seconds
//! (a real, large change still shows quickly), and never before the shown label has been up for
//! `min_show` seconds.
//!
//! The defaults were chosen with `emotrack bench smoothing --sweep` (bench/RESULTS.md,
//! Smoothing) among the 559 of 2,700 settings that meet every target on the media clips:
//! they remove 95% of the raw label changes there, no label is shown for less than half a
//! second, and a clean change of expression shows within 0.24 s.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{Emotion, EmotionScores};

/// Small slack for comparing accumulated times (sums of `1 / fps`).
const TIME_EPS: f32 = 1e-4;

/// When the shown label changes; times in seconds, margins in probability (0-1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelRule {
    /// Lead over the shown label's smoothed probability that counts as clear (default 0.2).
    pub margin: f32,
    /// Seconds a challenger must keep a lead of `margin` before the label changes
    /// (default 0.5). Raise it for steadier labels; lower it for quicker ones.
    pub hold: f32,
    /// A lead that changes the label after only `fast_hold` seconds (default 0.5).
    pub fast_margin: f32,
    /// Seconds a lead of `fast_margin` must last (default 0.04: one or two frames).
    pub fast_hold: f32,
    /// Seconds a label stays up before any change (default 0.5).
    pub min_show: f32,
}

impl Default for LabelRule {
    fn default() -> Self {
        Self {
            margin: 0.2,
            hold: 0.5,
            fast_margin: 0.5,
            fast_hold: 0.04,
            min_show: 0.5,
        }
    }
}

impl LabelRule {
    /// The old rule of switching to the top emotion once it led for `frames` frames at
    /// `fps`, however small its lead (a baseline for `emotrack bench smoothing`).
    pub fn top_for_frames(frames: u32, fps: f32) -> Self {
        let hold = frames.max(1) as f32 / fps;
        Self {
            margin: 0.0,
            hold,
            fast_margin: 0.0,
            fast_hold: hold,
            min_show: 0.0,
        }
    }

    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("label rule: {m}")));
        for (name, v) in [("margin", self.margin), ("fast_margin", self.fast_margin)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{name} is {v}; it must be in [0, 1)"));
            }
        }
        for (name, v) in [
            ("hold", self.hold),
            ("fast_hold", self.fast_hold),
            ("min_show", self.min_show),
        ] {
            if !(0.0..=60.0).contains(&v) {
                return bad(format!("{name} is {v} s; it must be in [0, 60]"));
            }
        }
        if self.fast_margin < self.margin {
            return bad(format!(
                "fast_margin ({}) is below margin ({}); the fast path needs the larger lead",
                self.fast_margin, self.margin
            ));
        }
        Ok(())
    }
}

/// The label shown for one track, updated frame by frame from its smoothed probabilities by a
/// [`LabelRule`]. The first frame sets the label at once.
#[derive(Debug, Clone)]
pub struct LabelHysteresis {
    rule: LabelRule,
    shown: Option<Emotion>,
    /// Seconds the shown label has been up.
    shown_for: f32,
    challenger: Option<Emotion>,
    /// Seconds the challenger has led by `margin`, and by `fast_margin`, without a break.
    lead_for: f32,
    fast_for: f32,
}

impl LabelHysteresis {
    /// A fresh label (none shown yet).
    pub fn new(rule: LabelRule) -> Self {
        Self {
            rule,
            shown: None,
            shown_for: 0.0,
            challenger: None,
            lead_for: 0.0,
            fast_for: 0.0,
        }
    }

    /// Feeds the smoothed probabilities of a frame that lasts `seconds` (the time since the
    /// previous frame); returns the label to show.
    pub fn push(&mut self, scores: &EmotionScores, seconds: f32) -> Emotion {
        let dt = if seconds.is_finite() {
            seconds.clamp(0.0, 60.0)
        } else {
            0.0
        };
        let Some(shown) = self.shown else {
            let top = scores.top().0;
            self.show(top);
            return top;
        };
        self.shown_for += dt;
        let (challenger, p) = Emotion::ALL
            .into_iter()
            .filter(|&e| e != shown)
            .map(|e| (e, scores.get(e)))
            .fold((shown, f32::NEG_INFINITY), |best, c| {
                if c.1 > best.1 { c } else { best }
            });
        let lead = p - scores.get(shown);
        if self.challenger != Some(challenger) {
            self.challenger = Some(challenger);
            self.lead_for = 0.0;
            self.fast_for = 0.0;
        }
        let r = &self.rule;
        let leads = |margin: f32| lead > 0.0 && lead >= margin;
        self.lead_for = if leads(r.margin) {
            self.lead_for + dt
        } else {
            0.0
        };
        self.fast_for = if leads(r.fast_margin) {
            self.fast_for + dt
        } else {
            0.0
        };
        let held = (leads(r.margin) && self.lead_for >= r.hold - TIME_EPS)
            || (leads(r.fast_margin) && self.fast_for >= r.fast_hold - TIME_EPS);
        if held && self.shown_for >= r.min_show - TIME_EPS {
            self.show(challenger);
        }
        self.shown.unwrap_or(challenger)
    }

    fn show(&mut self, e: Emotion) {
        self.shown = Some(e);
        self.shown_for = 0.0;
        self.challenger = None;
        self.lead_for = 0.0;
        self.fast_for = 0.0;
    }

    /// The label currently shown.
    pub fn shown(&self) -> Option<Emotion> {
        self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::smoothing::tests::scores_strategy;
    use proptest::prelude::*;

    const FPS: f32 = 30.0;

    /// Probabilities with `a` on `ea`, `b` on `eb` and the rest spread evenly.
    fn two(ea: Emotion, a: f32, eb: Emotion, b: f32) -> EmotionScores {
        let rest = (1.0 - a - b) / 5.0;
        let mut s = [rest; 7];
        s[ea.index()] = a;
        s[eb.index()] = b;
        EmotionScores(s)
    }

    fn rule() -> LabelRule {
        LabelRule {
            margin: 0.1,
            hold: 0.5,
            fast_margin: 0.3,
            fast_hold: 0.1,
            min_show: 0.5,
        }
    }

    /// Frames until the label changes when `scores` repeat after a first frame of `start`.
    fn frames_to_switch(rule: LabelRule, start: EmotionScores, scores: EmotionScores) -> usize {
        let mut h = LabelHysteresis::new(rule);
        let first = h.push(&start, 1.0 / FPS);
        (1..=300)
            .find(|_| h.push(&scores, 1.0 / FPS) != first)
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn a_small_lead_never_changes_the_label() {
        use Emotion::{Happy, Neutral};
        let start = two(Happy, 0.5, Neutral, 0.4);
        // Neutral on top by 0.05 (under the 0.1 margin) for ten seconds.
        let close = two(Neutral, 0.47, Happy, 0.42);
        assert_eq!(frames_to_switch(rule(), start, close), usize::MAX);
    }

    #[test]
    fn a_clear_lead_changes_the_label_after_hold_and_a_large_one_sooner() {
        use Emotion::{Happy, Surprise};
        let start = two(Happy, 0.8, Surprise, 0.1);
        let clear = two(Surprise, 0.5, Happy, 0.35);
        let large = two(Surprise, 0.8, Happy, 0.1);
        // Both wait for min_show (0.5 s = 15 frames) counted from the first frame.
        assert_eq!(frames_to_switch(rule(), start, clear), 15);
        let quick = LabelRule {
            min_show: 0.0,
            ..rule()
        };
        assert_eq!(frames_to_switch(quick, start, clear), 15, "hold: 0.5 s");
        assert_eq!(frames_to_switch(quick, start, large), 3, "fast_hold: 0.1 s");
    }

    #[test]
    fn a_broken_lead_starts_the_hold_over() {
        use Emotion::{Happy, Sad};
        let r = LabelRule {
            min_show: 0.0,
            ..rule()
        };
        let mut h = LabelHysteresis::new(r);
        h.push(&two(Happy, 0.6, Sad, 0.2), 0.1);
        let lead = two(Sad, 0.5, Happy, 0.3);
        let tie = two(Sad, 0.4, Happy, 0.4);
        for _ in 0..4 {
            assert_eq!(h.push(&lead, 0.1), Happy);
        }
        assert_eq!(h.push(&tie, 0.1), Happy);
        for _ in 0..4 {
            assert_eq!(h.push(&lead, 0.1), Happy);
        }
        assert_eq!(h.push(&lead, 0.1), Sad, "0.5 s of lead after the break");
    }

    #[test]
    fn the_rule_measures_seconds_not_frames() {
        use Emotion::{Happy, Sad};
        let start = two(Happy, 0.6, Sad, 0.2);
        let lead = two(Sad, 0.5, Happy, 0.3);
        for fps in [8.0f32, 30.0, 60.0] {
            let mut h = LabelHysteresis::new(rule());
            h.push(&start, 1.0 / fps);
            let frames = (1..1000).find(|_| h.push(&lead, 1.0 / fps) == Sad).unwrap();
            let seconds = frames as f32 / fps;
            assert!(
                (0.5..0.5 + 1.0 / fps + 1e-3).contains(&seconds),
                "{fps} fps: {seconds} s"
            );
        }
    }

    #[test]
    fn the_old_rule_is_the_top_emotion_held_for_k_frames() {
        use Emotion::{Happy, Sad};
        let old = LabelRule::top_for_frames(3, FPS);
        let start = two(Happy, 0.6, Sad, 0.2);
        let barely = two(Sad, 0.41, Happy, 0.4);
        assert_eq!(frames_to_switch(old, start, barely), 3);
    }

    #[test]
    fn validation_names_the_field() {
        let e = LabelRule {
            fast_margin: 0.05,
            ..LabelRule::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("fast_margin"), "{e}");
        let e = LabelRule {
            hold: -1.0,
            ..LabelRule::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("hold"), "{e}");
        assert!(LabelRule::default().validate().is_ok());
    }

    proptest! {
        #[test]
        fn a_label_never_changes_sooner_than_min_show_nor_to_an_emotion_that_does_not_lead(
            frames in proptest::collection::vec(scores_strategy(), 1..300),
            fps in 5.0f32..60.0,
        ) {
            let r = LabelRule::default();
            let mut h = LabelHysteresis::new(r);
            let mut shown = h.push(&frames[0], 1.0 / fps);
            let mut up = 0.0f32;
            for s in &frames[1..] {
                up += 1.0 / fps;
                let next = h.push(s, 1.0 / fps);
                if next != shown {
                    prop_assert!(up >= r.min_show - 1e-3, "changed after {} s", up);
                    prop_assert!(s.get(next) - s.get(shown) >= r.margin - 1e-6);
                    shown = next;
                    up = 0.0;
                }
            }
        }
    }
}
