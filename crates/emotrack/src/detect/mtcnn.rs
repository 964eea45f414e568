//! MTCNN face detection with facenet-pytorch's weights. (Being written.)

use image::RgbImage;

use super::{DetectorConfig, FaceDetector};
use crate::error::{Error, Result};
use crate::types::Detection;

/// MTCNN detector.
#[derive(Debug)]
pub struct Mtcnn {}

impl Mtcnn {
    /// The detector with the embedded facenet-pytorch weights.
    pub fn embedded(_config: &DetectorConfig) -> Result<Self> {
        Err(Error::Config("the mtcnn detector is not built yet".into()))
    }
}

impl FaceDetector for Mtcnn {
    fn detect(&self, _image: &RgbImage) -> Vec<Detection> {
        Vec::new()
    }
}
