//! Viola-Jones face detection on OpenCV's Haar cascade XML. (Being written.)

use image::RgbImage;

use super::{DetectorConfig, FaceDetector};
use crate::error::{Error, Result};
use crate::types::Detection;

/// Haar cascade detector.
#[derive(Debug)]
pub struct HaarDetector {}

impl HaarDetector {
    /// OpenCV's `haarcascade_frontalface_default.xml`, embedded.
    pub fn frontal_face(_config: &DetectorConfig) -> Result<Self> {
        Err(Error::Config("the haar detector is not built yet".into()))
    }
}

impl FaceDetector for HaarDetector {
    fn detect(&self, _image: &RgbImage) -> Vec<Detection> {
        Vec::new()
    }
}
