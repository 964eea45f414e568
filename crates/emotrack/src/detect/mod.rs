//! Face detection: one file per backend behind [`FaceDetector`].
//!
//! * [`haar`]: Viola-Jones on OpenCV's `haarcascade_frontalface_default.xml` (embedded).
//! * [`mtcnn`]: P-Net / R-Net / O-Net with facenet-pytorch's weights (embedded), five landmarks.
//!
//! Adding a backend is one file and one [`DetectorKind`] variant. [`near`] holds the search
//! around known faces that [`FaceDetector::detect_near`] does by default.

pub mod haar;
pub mod mtcnn;
pub mod near;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{BBox, Detection};

/// A face detector. "No face" is an empty list, not an error.
pub trait FaceDetector: Send + Sync {
    /// Finds the faces whose side lies in `sizes`, in any order.
    fn detect_sized(&self, image: &RgbImage, sizes: FaceSizes) -> Vec<Detection>;

    /// The face sizes [`FaceDetector::detect`] searches (the configured `min_face`/`max_face`).
    fn sizes(&self) -> FaceSizes;

    /// Finds the faces of the configured sizes in an RGB image, in any order.
    fn detect(&self, image: &RgbImage) -> Vec<Detection> {
        self.detect_sized(image, self.sizes())
    }

    /// Re-finds faces last seen at `boxes` (a video's frames between full-frame detections):
    /// at most one face per box, each found once. The default searches a small region around
    /// each box ([`near::search_regions`]).
    fn detect_near(&self, image: &RgbImage, boxes: &[BBox]) -> Vec<Detection> {
        near::distinct(near::search_regions(self, image, boxes))
    }
}

/// The range of face sides (pixels) a detector searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceSizes {
    /// Smallest face side.
    pub min: u32,
    /// Largest face side (`None`: as large as the image).
    pub max: Option<u32>,
}

/// Which detector backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// Viola-Jones Haar cascade: fast, frontal faces, no landmarks.
    Haar,
    /// MTCNN: slower, handles pose better, gives landmarks and a calibrated probability.
    #[default]
    Mtcnn,
}

/// Smallest face side (pixels) searched by default. Smaller faces carry too little detail for
/// emotion (FER-2013 itself is 48x48), and scanning them costs most of the detector's time.
pub const DEFAULT_MIN_FACE: u32 = 20;

/// Settings shared by every detector, plus per-backend tunables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// The backend.
    pub kind: DetectorKind,
    /// Smallest face side in pixels. Raise it to go faster on large images.
    pub min_face: u32,
    /// Largest face side in pixels (`None`: no limit).
    pub max_face: Option<u32>,
    /// Haar: the scale step between pyramid levels (OpenCV `scaleFactor`), > 1.
    pub haar_scale_factor: f32,
    /// Haar: how many overlapping raw windows a face needs (OpenCV `minNeighbors`).
    /// Raise it for fewer false faces, lower it to find more faces.
    pub haar_min_neighbors: u32,
    /// MTCNN: the three stage thresholds (P-Net, R-Net, O-Net). The last one is the final
    /// face probability; raise it to reject more non-faces.
    pub mtcnn_thresholds: [f32; 3],
    /// MTCNN: the image pyramid's scale step (< 1).
    pub mtcnn_factor: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            kind: DetectorKind::default(),
            min_face: DEFAULT_MIN_FACE,
            max_face: None,
            haar_scale_factor: 1.1,
            haar_min_neighbors: 3,
            mtcnn_thresholds: [0.6, 0.7, 0.7],
            mtcnn_factor: 0.709,
        }
    }
}

impl DetectorConfig {
    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        if self.min_face < 12 {
            return Err(Error::config(format!(
                "min_face is {}, it must be at least 12 pixels",
                self.min_face
            )));
        }
        if let Some(max) = self.max_face
            && max < self.min_face
        {
            return Err(Error::config(format!(
                "max_face ({max}) is smaller than min_face ({})",
                self.min_face
            )));
        }
        if !(self.haar_scale_factor > 1.0 && self.haar_scale_factor < 2.0) {
            return Err(Error::config(format!(
                "haar_scale_factor is {}, it must be in (1, 2); 1.1 is OpenCV's default",
                self.haar_scale_factor
            )));
        }
        for (i, t) in self.mtcnn_thresholds.iter().enumerate() {
            if !(0.0..=1.0).contains(t) {
                return Err(Error::config(format!(
                    "mtcnn threshold {} is {t}, it must be in [0, 1]",
                    i + 1
                )));
            }
        }
        if !(self.mtcnn_factor > 0.1 && self.mtcnn_factor < 1.0) {
            return Err(Error::config(format!(
                "mtcnn_factor is {}, it must be in (0.1, 1); 0.709 is the usual value",
                self.mtcnn_factor
            )));
        }
        Ok(())
    }

    /// Builds the configured detector with its embedded model.
    pub fn build(&self) -> Result<Box<dyn FaceDetector>> {
        self.validate()?;
        tracing::debug!(config = ?self, "building the face detector");
        Ok(match self.kind {
            DetectorKind::Haar => Box::new(haar::HaarDetector::frontal_face(self)?),
            DetectorKind::Mtcnn => Box::new(mtcnn::Mtcnn::embedded(self)?),
        })
    }
}

/// A photo from the repository's test fixtures (`tests/fixtures/photos/NAME`).
#[cfg(test)]
pub(crate) fn fixture_photo(name: &str) -> image::DynamicImage {
    let path = format!(
        "{}/../../tests/fixtures/photos/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    match image::open(&path) {
        Ok(img) => img,
        Err(e) => panic!("{path}: {e}"),
    }
}
