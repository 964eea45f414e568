//! Following faces across frames and keeping their emotions steady.
//!
//! [`Tracker`] associates detections to tracks (IoU, Hungarian assignment), and per track
//! smooths the box ([`smoothing::BoxEma`]), the probabilities ([`smoothing::SlidingMean`] in
//! O(1) per frame, or [`smoothing::Ema`]) and the label ([`label::LabelHysteresis`]).

pub mod label;
pub mod smoothing;
pub mod tracker;

pub use label::LabelRule;
pub use smoothing::ScoreSmoothing;
pub use tracker::{NOMINAL_FPS, Track, TrackId, Tracker, TrackerConfig};
