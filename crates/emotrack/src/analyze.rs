//! The one-call pipeline: `Analyzer::new(config)?.analyze(&image)` returns every face with its
//! box, landmarks, detector score, seven probabilities, label and vibe.
//!
//! ```no_run
//! # fn main() -> emotrack::error::Result<()> {
//! use emotrack::{Analyzer, AnalyzerConfig};
//! let analyzer = Analyzer::new(AnalyzerConfig::default())?;
//! for face in analyzer.analyze_file("photo.jpg".as_ref())? {
//!     println!("{:?} {} {:.0}% - {}", face.bbox, face.emotion, face.confidence * 100.0, face.vibe);
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use serde::Serialize;

use crate::annotate::FaceOverlay;
use crate::classify::{Classifier, ModelSource};
use crate::detect::{DetectorConfig, FaceDetector};
use crate::error::{Error, Result};
use crate::imgproc::{
    AsRgbView, CropSettings, DecodeLimits, crop_as_input, decode_image, face_crop, load_image,
};
use crate::types::{BBox, Detection, Emotion, EmotionScores, Landmarks};
use crate::vibes::Vibes;

/// Everything the analyzer needs; the defaults are the built-in models.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Face detector backend and thresholds.
    pub detector: DetectorConfig,
    /// Emotion model (built in by default).
    pub model: ModelSource,
    /// Vibe messages file (`None`: the built-in messages).
    pub vibes: Option<PathBuf>,
    /// Crop margin as a fraction of the face box's larger side.
    pub crop_margin: f32,
    /// Level the eye line before classifying (needs landmarks: MTCNN or YuNet).
    pub align: bool,
    /// Decode limits for image files.
    pub decode_limits: DecodeLimits,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            detector: DetectorConfig::default(),
            model: ModelSource::Embedded,
            vibes: None,
            crop_margin: crate::imgproc::crop::DEFAULT_MARGIN,
            align: true,
            decode_limits: DecodeLimits::default(),
        }
    }
}

/// One analysed face. Serialises as [`FaceJson`](crate::report::FaceJson), the one JSON shape
/// of a face (`box`, `probabilities` keyed by emotion name, `label`, `confidence`, `vibe`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "crate::report::FaceJson")]
pub struct AnalyzedFace {
    /// Face box in image pixels.
    pub bbox: BBox,
    /// Five landmarks (MTCNN and YuNet).
    pub landmarks: Option<Landmarks>,
    /// Detector confidence (see [`Detection::score`]).
    pub detector_score: f32,
    /// Probabilities of the seven emotions.
    pub scores: EmotionScores,
    /// The most probable emotion.
    pub emotion: Emotion,
    /// Its probability.
    pub confidence: f32,
    /// A friendly message for it.
    pub vibe: String,
}

/// Detector + classifier + vibes, built once and used for many images (`&self`, thread-safe).
pub struct Analyzer {
    detector: Box<dyn FaceDetector>,
    classifier: Classifier,
    vibes: Vibes,
    crop: CropSettings,
    min_face: u32,
    decode_limits: DecodeLimits,
}

impl AnalyzedFace {
    /// What [`crate::annotate::Annotator`] draws for this face: box, landmarks, label, bars, vibe.
    pub fn overlay(&self) -> FaceOverlay<'_> {
        FaceOverlay {
            bbox: self.bbox,
            landmarks: self.landmarks.as_ref(),
            id: None,
            label: self.emotion,
            scores: &self.scores,
            vibe: &self.vibe,
        }
    }
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("classifier", &self.classifier.origin())
            .field("crop", &self.crop)
            .finish_non_exhaustive()
    }
}

impl Analyzer {
    /// Builds the detector, loads the model and the vibes; fails with a message saying what to
    /// change if any setting or file is bad.
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        if !(0.0..=1.0).contains(&config.crop_margin) {
            return Err(Error::config(format!(
                "crop_margin is {}, it must be in [0, 1]",
                config.crop_margin
            )));
        }
        let detector = config.detector.build()?;
        let classifier = Classifier::load(&config.model)?;
        let vibes = match &config.vibes {
            Some(path) => Vibes::from_file(path)?,
            None => Vibes::embedded(),
        };
        let crop = CropSettings {
            size: classifier.input_size(),
            margin: config.crop_margin,
            align: config.align,
        };
        Ok(Self {
            detector,
            classifier,
            vibes,
            crop,
            min_face: config.detector.min_face,
            decode_limits: config.decode_limits,
        })
    }

    /// The face detector.
    pub fn detector(&self) -> &dyn FaceDetector {
        self.detector.as_ref()
    }

    /// The emotion classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The vibe messages.
    pub fn vibes(&self) -> &Vibes {
        &self.vibes
    }

    /// The limits [`Analyzer::load`] and [`Analyzer::decode`] decode images with.
    pub fn decode_limits(&self) -> DecodeLimits {
        self.decode_limits
    }

    /// Finds and analyses every face in an RGB image. No face is an empty list.
    pub fn analyze(&self, image: &impl AsRgbView) -> Vec<AnalyzedFace> {
        let image = image.as_rgb_view();
        let detections = self.detector.detect(&image);
        self.classify_detections(&image, &detections)
    }

    /// Classifies given detections (e.g. from a tracker) in an RGB image.
    pub fn classify_detections(
        &self,
        image: &impl AsRgbView,
        detections: &[Detection],
    ) -> Vec<AnalyzedFace> {
        if detections.is_empty() {
            return Vec::new();
        }
        let image = image.as_rgb_view();
        let crops: Vec<_> = detections
            .iter()
            .map(|d| face_crop(&image, d, &self.crop))
            .collect();
        let scores = self.classifier.classify(&crops);
        detections
            .iter()
            .zip(scores)
            .map(|(d, s)| self.face(d, s))
            .collect()
    }

    /// Reads the emotions of faces that are already cut out, skipping detection: FER-2013
    /// images, or faces a caller's own detector found and cropped. Each crop is taken whole as
    /// the face and made into the classifier's input by [`crop_as_input`] (resized when it is
    /// not the model's input size, 48x48 for the built-in model), then classified as `emotrack
    /// eval` classifies a dataset's images (without test-time augmentation). A face's box is
    /// its whole crop, its detector score 1, and it has no landmarks.
    ///
    /// Use [`Analyzer::classify_detections`] instead for a face's box in a larger picture: it
    /// adds the margin and eye alignment that [`Analyzer::analyze`] uses.
    pub fn classify_crops(&self, crops: Vec<GrayImage>) -> Vec<AnalyzedFace> {
        let side = self.classifier.input_size();
        let detections: Vec<Detection> = crops
            .iter()
            .map(|c| Detection {
                bbox: BBox {
                    x: 0.0,
                    y: 0.0,
                    w: c.width() as f32,
                    h: c.height() as f32,
                },
                score: 1.0,
                landmarks: None,
            })
            .collect();
        let inputs: Vec<GrayImage> = crops.into_iter().map(|c| crop_as_input(c, side)).collect();
        let scores = self.classifier.classify(&inputs);
        detections
            .iter()
            .zip(scores)
            .map(|(d, s)| self.face(d, s))
            .collect()
    }

    /// A detection and its scores as an analysed face, with its label and vibe.
    fn face(&self, detection: &Detection, scores: EmotionScores) -> AnalyzedFace {
        let (emotion, confidence) = scores.top();
        AnalyzedFace {
            bbox: detection.bbox,
            landmarks: detection.landmarks,
            detector_score: detection.score,
            scores,
            emotion,
            confidence,
            vibe: self.vibes.message(&scores).to_owned(),
        }
    }

    /// Loads an image file (with decode limits) and analyses it. Images smaller than the
    /// smallest face searched for are an error, since no face can be found in them.
    pub fn analyze_file(&self, path: &Path) -> Result<Vec<AnalyzedFace>> {
        let image = self.load(path)?;
        Ok(self.analyze(&image))
    }

    /// Loads an image file with this analyzer's decode limits, refusing images too small to hold
    /// a face.
    pub fn load(&self, path: &Path) -> Result<RgbImage> {
        let image = load_image(path, self.decode_limits)?;
        self.check_size(image.dimensions(), path)?;
        Ok(image)
    }

    /// Decodes an image held in memory (an upload, a stream's frame) with this analyzer's
    /// decode limits and the checks of [`Analyzer::load`]; `name` names it in errors.
    pub fn decode(&self, bytes: &[u8], name: &Path) -> Result<RgbImage> {
        let image = decode_image(bytes, name, self.decode_limits)?;
        self.check_size(image.dimensions(), name)?;
        Ok(image)
    }

    /// An error when an image of `(width, height)` is too small to hold a face (smaller than
    /// the detector's `min_face` on a side); `path` names it in the error. [`Analyzer::load`]
    /// and [`Analyzer::decode`] check this; callers that bring their own pixels (a NumPy array
    /// in the Python bindings) call it before [`Analyzer::analyze`].
    pub fn check_size(&self, (w, h): (u32, u32), path: &Path) -> Result<()> {
        if w < self.min_face || h < self.min_face {
            return Err(Error::image(
                path,
                format!(
                    "the image is {w}x{h} pixels, smaller than the smallest face searched for ({0}x{0})",
                    self.min_face
                ),
            )
            .with_hint("lower min_face (--min-face) if this is a tiny face crop"));
        }
        Ok(())
    }
}
