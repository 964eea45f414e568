//! Face detection: one file per backend behind [`FaceDetector`].
//!
//! * [`haar`]: Viola-Jones on OpenCV's `haarcascade_frontalface_default.xml` (embedded).
//! * [`mtcnn`]: P-Net / R-Net / O-Net with facenet-pytorch's weights (embedded), five landmarks.
//! * [`yunet`]: YuNet_s, one small convolutional network over the whole picture, with its
//!   authors' weights (embedded), five landmarks.
//!
//! [`DetectorConfig`] holds the settings every backend shares and the chosen
//! [`DetectorBackend`], which carries that backend's own settings ([`HaarSettings`],
//! [`MtcnnSettings`], [`YunetSettings`]). Adding a backend is one file and one [`DetectorBackend`] variant.
//! [`near`] holds the search around known faces that [`FaceDetector::detect_near`] does by
//! default.

pub mod haar;
pub mod mtcnn;
pub mod near;
mod pool;
pub mod yunet;

pub use haar::HaarSettings;
pub use mtcnn::MtcnnSettings;
pub use yunet::YunetSettings;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imgproc::{AsRgbView, RgbView};
use crate::types::{BBox, Detection};

/// A face detector. "No face" is an empty list, not an error.
pub trait FaceDetector: Send + Sync {
    /// Finds the faces whose side lies in `sizes`, in any order.
    fn detect_sized(&self, image: &RgbView<'_>, sizes: FaceSizes) -> Vec<Detection>;

    /// The face sizes [`FaceDetector::detect`] searches (the configured `min_face`/`max_face`).
    fn sizes(&self) -> FaceSizes;

    /// Finds the faces of the configured sizes in an RGB image (an `RgbImage`, an
    /// [`RgbView`]), in any order.
    fn detect(&self, image: &dyn AsRgbView) -> Vec<Detection> {
        self.detect_sized(&image.as_rgb_view(), self.sizes())
    }

    /// Finds the faces of the configured sizes in a whole video frame. The same faces as
    /// [`FaceDetector::detect`], unless the backend searches frames at a lower resolution to
    /// keep up with live video (YuNet: [`YunetSettings::frame_max_side`]).
    fn detect_frame(&self, image: &dyn AsRgbView) -> Vec<Detection> {
        self.detect(image)
    }

    /// Re-finds faces last seen at `boxes` (a video's frames between full-frame detections):
    /// at most one face per box, each found once. The default searches a small region around
    /// each box ([`near::search_regions`]).
    fn detect_near(&self, image: &dyn AsRgbView, boxes: &[BBox]) -> Vec<Detection> {
        near::distinct(near::search_regions(self, &image.as_rgb_view(), boxes))
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

/// Smallest face side (pixels) searched by default. Smaller faces carry too little detail for
/// emotion (FER-2013 itself is 48x48), and scanning them costs most of the detector's time.
pub const DEFAULT_MIN_FACE: u32 = 20;

/// Smallest `min_face` accepted: MTCNN's smallest face (P-Net's 12x12 cell); Haar's smallest
/// window is 24x24 anyway.
const SMALLEST_MIN_FACE: u32 = 12;

impl Default for FaceSizes {
    /// From [`DEFAULT_MIN_FACE`] up to the image size.
    fn default() -> Self {
        Self {
            min: DEFAULT_MIN_FACE,
            max: None,
        }
    }
}

impl FaceSizes {
    /// Checks the range, naming the [`DetectorConfig`] field to change.
    pub fn validate(&self) -> Result<()> {
        if self.min < SMALLEST_MIN_FACE {
            return Err(Error::config(format!(
                "min_face is {}, it must be at least {SMALLEST_MIN_FACE} pixels",
                self.min
            )));
        }
        if let Some(max) = self.max
            && max < self.min
        {
            return Err(Error::config(format!(
                "max_face ({max}) is smaller than min_face ({})",
                self.min
            )));
        }
        Ok(())
    }
}

/// The detector backend, carrying its own settings.
///
/// Serialised with the backend's name as `kind` beside its settings, e.g.
/// `{"kind": "haar", "scale_factor": 1.1, "min_neighbors": 3}`; settings left out take their
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DetectorBackend {
    /// Viola-Jones Haar cascade: fast, frontal faces, no landmarks.
    Haar(HaarSettings),
    /// MTCNN: slower, handles pose better, gives landmarks and a calibrated probability.
    Mtcnn(MtcnnSettings),
    /// YuNet: one pass of a small network over the (shrunk) picture; the fastest on every
    /// frame of a video, gives landmarks and a score in [0, 1].
    Yunet(YunetSettings),
}

impl Default for DetectorBackend {
    /// YuNet with its default settings: on the media photos it finds as many faces as MTCNN
    /// (none false) 9x as fast, and searches 640x480 video frames about three
    /// times as fast (`bench/RESULTS.md`, "YuNet").
    fn default() -> Self {
        Self::Yunet(YunetSettings::default())
    }
}

impl DetectorBackend {
    /// The backend's name, as serialised in `kind`: `"haar"`, `"mtcnn"` or `"yunet"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Haar(_) => "haar",
            Self::Mtcnn(_) => "mtcnn",
            Self::Yunet(_) => "yunet",
        }
    }

    /// Every backend's name, as [`DetectorBackend::from_name`] takes them.
    pub const NAMES: [&'static str; 3] = ["haar", "mtcnn", "yunet"];

    /// The backend called `name` (`"haar"`, `"mtcnn"` or `"yunet"`, as in [`Self::name`]) with
    /// its default settings; another name is a [`Error::Config`] listing the valid ones.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "haar" => Ok(Self::Haar(HaarSettings::default())),
            "mtcnn" => Ok(Self::Mtcnn(MtcnnSettings::default())),
            "yunet" => Ok(Self::Yunet(YunetSettings::default())),
            other => Err(Error::config(format!(
                "unknown detector {other:?}; choose one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// The same backend with the face score it needs set to `threshold`: MTCNN's final
    /// stage ([`MtcnnSettings::onet_threshold`]), YuNet's score
    /// ([`YunetSettings::score_threshold`]). Haar has no score and is returned unchanged
    /// (its strictness is [`HaarSettings::min_neighbors`]).
    #[must_use]
    pub fn with_threshold(self, threshold: f32) -> Self {
        match self {
            Self::Haar(settings) => Self::Haar(settings),
            Self::Mtcnn(settings) => Self::Mtcnn(MtcnnSettings {
                onet_threshold: threshold,
                ..settings
            }),
            Self::Yunet(settings) => Self::Yunet(YunetSettings {
                score_threshold: threshold,
                ..settings
            }),
        }
    }

    /// Checks the backend's settings, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Haar(settings) => settings.validate(),
            Self::Mtcnn(settings) => settings.validate(),
            Self::Yunet(settings) => settings.validate(),
        }
    }
}

/// Settings shared by every detector, and the backend with its own settings.
///
/// ```
/// # fn main() -> emotrack::error::Result<()> {
/// use emotrack::DetectorConfig;
/// use emotrack::detect::{DetectorBackend, HaarSettings};
/// let config = DetectorConfig {
///     min_face: 40,
///     backend: DetectorBackend::Haar(HaarSettings {
///         min_neighbors: 5,
///         ..HaarSettings::default()
///     }),
///     ..DetectorConfig::default()
/// };
/// let detector = config.build()?;
/// # let _ = detector;
/// # Ok(()) }
/// ```
///
/// Serialised (serde), the backend's settings nest under `backend`, and missing fields take
/// their defaults:
///
/// ```
/// # fn main() -> Result<(), serde_json::Error> {
/// use emotrack::DetectorConfig;
/// use emotrack::detect::{DetectorBackend, MtcnnSettings};
/// let config: DetectorConfig = serde_json::from_str(
///     r#"{"min_face": 40, "backend": {"kind": "mtcnn", "onet_threshold": 0.9}}"#,
/// )?;
/// let strict = MtcnnSettings {
///     onet_threshold: 0.9,
///     ..MtcnnSettings::default()
/// };
/// assert_eq!(config.backend, DetectorBackend::Mtcnn(strict));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Smallest face side in pixels, at least 12 (default [`DEFAULT_MIN_FACE`]). Raise it to
    /// go faster on large images.
    pub min_face: u32,
    /// Largest face side in pixels (`None`, the default: no limit).
    pub max_face: Option<u32>,
    /// The backend and its settings (default: YuNet).
    pub backend: DetectorBackend,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        let sizes = FaceSizes::default();
        Self {
            min_face: sizes.min,
            max_face: sizes.max,
            backend: DetectorBackend::default(),
        }
    }
}

impl DetectorConfig {
    /// The face sizes to search (`min_face`, `max_face`).
    pub fn sizes(&self) -> FaceSizes {
        FaceSizes {
            min: self.min_face,
            max: self.max_face,
        }
    }

    /// Checks every field, saying which one to change.
    pub fn validate(&self) -> Result<()> {
        self.sizes().validate()?;
        self.backend.validate()
    }

    /// Builds the configured detector with its embedded model (each backend's constructor
    /// checks the sizes and its settings, as [`DetectorConfig::validate`] does).
    pub fn build(&self) -> Result<Box<dyn FaceDetector>> {
        tracing::debug!(config = ?self, "building the face detector");
        Ok(match &self.backend {
            DetectorBackend::Haar(settings) => {
                Box::new(haar::HaarDetector::frontal_face(self.sizes(), settings)?)
            }
            DetectorBackend::Mtcnn(settings) => {
                Box::new(mtcnn::Mtcnn::embedded(self.sizes(), settings)?)
            }
            DetectorBackend::Yunet(settings) => {
                Box::new(yunet::Yunet::embedded(self.sizes(), settings)?)
            }
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

/// A fixture photo resized to `(pw, ph)` in the middle of a black `(w, h)` frame (as the video
/// decoder letterboxes), the resized photo alone, and where it lies in the frame.
#[cfg(test)]
pub(crate) fn letterboxed_fixture(
    name: &str,
    (w, h): (u32, u32),
    (pw, ph): (u32, u32),
) -> (image::RgbImage, image::RgbImage, (u32, u32)) {
    let photo = fixture_photo(name).to_rgb8();
    let photo = image::imageops::resize(&photo, pw, ph, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::new(w, h);
    let (x, y) = ((w - pw) / 2, (h - ph) / 2);
    image::imageops::replace(&mut frame, &photo, i64::from(x), i64::from(y));
    (frame, photo, (x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_is_found_by_its_name_and_an_unknown_name_lists_the_valid_ones() {
        for name in DetectorBackend::NAMES {
            let backend = DetectorBackend::from_name(name).expect("a known name");
            assert_eq!(backend.name(), name);
        }
        let err = DetectorBackend::from_name("retina").expect_err("unknown name accepted");
        assert_eq!(err.code(), "config");
        assert!(err.to_string().contains("haar, mtcnn, yunet"), "{err}");
    }

    #[test]
    fn the_threshold_sets_each_backends_own_score_and_leaves_haar_alone() {
        let mtcnn = DetectorBackend::from_name("mtcnn").expect("known");
        let DetectorBackend::Mtcnn(m) = mtcnn.with_threshold(0.9) else {
            panic!("backend changed");
        };
        assert_eq!(m.onet_threshold, 0.9);
        assert_eq!(m.pnet_threshold, MtcnnSettings::default().pnet_threshold);
        let yunet = DetectorBackend::from_name("yunet").expect("known");
        let DetectorBackend::Yunet(y) = yunet.with_threshold(0.8) else {
            panic!("backend changed");
        };
        assert_eq!(y.score_threshold, 0.8);
        let haar = DetectorBackend::Haar(HaarSettings::default());
        assert_eq!(haar.clone().with_threshold(0.5), haar);
    }

    #[test]
    fn serialised_config_nests_the_backend_settings_under_its_name() {
        let config = DetectorConfig {
            backend: DetectorBackend::Haar(HaarSettings::default()),
            ..DetectorConfig::default()
        };
        let json = serde_json::to_string(&config).expect("serialises");
        assert_eq!(
            json,
            r#"{"min_face":20,"max_face":null,"backend":{"kind":"haar","scale_factor":1.1,"min_neighbors":3}}"#
        );
        let back: DetectorConfig = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, config);
        let partial: DetectorConfig =
            serde_json::from_str(r#"{"backend":{"kind":"haar","min_neighbors":5}}"#)
                .expect("missing fields default");
        let five = HaarSettings {
            min_neighbors: 5,
            ..HaarSettings::default()
        };
        assert_eq!(partial.backend, DetectorBackend::Haar(five));
    }

    #[test]
    fn old_flat_config_is_rejected_rather_than_misread() {
        let old = r#"{"kind":"haar","min_face":20,"haar_min_neighbors":5}"#;
        let err = serde_json::from_str::<DetectorConfig>(old).expect_err("old form accepted");
        assert!(err.to_string().contains("unknown field `kind`"), "{err}");
    }
}
