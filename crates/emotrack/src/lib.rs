//! emotrack: facial emotion recognition.
//!
//! The flow for one image is `detect → align/crop → classify → vibe`:
//!
//! * [`detect`] finds faces ([`Detection`]: box, score, optional five landmarks) with a
//!   [`detect::FaceDetector`] backend (`haar`, `mtcnn` or `yunet`).
//! * [`imgproc`] levels the eye line, crops with a margin and resizes to the classifier's input
//!   ([`imgproc::face_crop`], the one function training and inference share).
//! * [`classify`] turns a crop into [`EmotionScores`] with a small CNN (weights in safetensors).
//! * [`vibes`] picks a friendly message for the dominant emotion.
//! * [`Analyzer`] ties them together: `Analyzer::new(config)?.analyze(&image)`.
//! * [`video`] runs it over videos, webcams and streams with tracking ([`track`]) and smoothing.
//! * [`annotate`] draws the results onto images; [`chart`] draws plots (the video timeline) in
//!   the same embedded font.
//! * [`report`] is the one JSON shape of a face ([`FaceJson`]) that every output uses.
//! * [`Error`] says what went wrong, in fields: the file, what, and what to do about it.
//!
//! The layers run on `emotrack-nn`, a small CPU runtime of its own crate.

#![warn(missing_docs)]

pub mod analyze;
pub mod annotate;
pub mod chart;
pub mod classify;
pub mod detect;
pub mod error;
pub mod imgproc;
pub mod report;
pub mod track;
pub mod types;
pub mod vibes;
pub mod video;

pub use analyze::{AnalyzedFace, Analyzer, AnalyzerConfig};
pub use detect::{DetectorBackend, DetectorConfig, FaceDetector};
pub use error::Error;
pub use report::FaceJson;
pub use types::{BBox, Detection, Emotion, EmotionScores, Landmarks};
