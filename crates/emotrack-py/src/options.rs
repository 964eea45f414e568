//! The keyword options of `Analyzer` (also `Tracker`'s and `video`'s `detector`), turned into
//! the library's config (whose own validation says what is wrong with a value).

use std::path::PathBuf;

use emotrack::classify::ModelSource;
use emotrack::{AnalyzerConfig, DetectorBackend, DetectorConfig};
use pyo3::prelude::*;

use crate::errors;

/// What `Analyzer(...)` takes.
pub(crate) struct AnalyzerOptions {
    pub detector: String,
    pub model: Option<PathBuf>,
    pub min_face: Option<u32>,
    pub max_face: Option<u32>,
    pub threshold: Option<f32>,
    pub min_neighbors: Option<u32>,
    pub scale_factor: Option<f32>,
    pub vibes: Option<PathBuf>,
}

impl AnalyzerOptions {
    /// The detector called `detector`, every other setting at its default.
    pub fn named(detector: &str) -> Self {
        Self {
            detector: detector.to_owned(),
            model: None,
            min_face: None,
            max_face: None,
            threshold: None,
            min_neighbors: None,
            scale_factor: None,
            vibes: None,
        }
    }

    /// The library config, as the CLI's `--detector --model --min-face ...` flags give it.
    pub fn to_config(&self, py: Python<'_>) -> PyResult<AnalyzerConfig> {
        let err = |e: emotrack::Error| errors::to_py(py, &e);
        let mut backend = DetectorBackend::from_name(&self.detector).map_err(err)?;
        if let Some(threshold) = self.threshold {
            backend = backend.with_threshold(threshold);
        }
        if let DetectorBackend::Haar(settings) = &mut backend {
            if let Some(n) = self.min_neighbors {
                settings.min_neighbors = n;
            }
            if let Some(f) = self.scale_factor {
                settings.scale_factor = f;
            }
        }
        let defaults = DetectorConfig::default();
        Ok(AnalyzerConfig {
            detector: DetectorConfig {
                min_face: self.min_face.unwrap_or(defaults.min_face),
                max_face: self.max_face,
                backend,
            },
            model: ModelSource::resolve(self.model.as_deref()).map_err(err)?,
            vibes: self.vibes.clone(),
            ..AnalyzerConfig::default()
        })
    }
}
