//! Keyword options shared by `Analyzer`, `Tracker` and `video`, turned into the library's
//! configs (whose own validation says what is wrong with a value).

use std::path::PathBuf;

use emotrack::classify::ModelSource;
use emotrack::track::ScoreSmoothing;
use emotrack::video::PipelineConfig;
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

/// What `Tracker(...)` and `video(...)` take about tracking, smoothing and the label rule: the
/// flags of `emotrack video` (`TrackerArgs` in the CLI), `None` for the library's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TrackingOptions {
    pub detect_every: Option<u32>,
    pub min_hits: Option<u32>,
    pub max_age: Option<u32>,
    pub iou_threshold: Option<f32>,
    pub window: Option<usize>,
    pub ema: Option<f32>,
    pub box_alpha: Option<f32>,
    pub label_margin: Option<f32>,
    pub label_hold: Option<f32>,
    pub label_fast_margin: Option<f32>,
    pub label_fast_hold: Option<f32>,
    pub label_min_show: Option<f32>,
}

impl TrackingOptions {
    /// The pipeline config: the library's defaults with the given fields replaced (the library
    /// validates the values where the config is used). `window` and `ema` are two ways of
    /// smoothing, so giving both is an error, as in the CLI.
    pub fn to_config(self, py: Python<'_>) -> PyResult<PipelineConfig> {
        let mut config = PipelineConfig::default();
        if let Some(v) = self.detect_every {
            config.detect_every = v;
        }
        let t = &mut config.tracker;
        if let Some(v) = self.min_hits {
            t.min_hits = v;
        }
        if let Some(v) = self.max_age {
            t.max_age = v;
        }
        if let Some(v) = self.iou_threshold {
            t.iou_threshold = v;
        }
        match (self.window, self.ema) {
            (Some(_), Some(_)) => {
                return Err(errors::bad_config(
                    py,
                    "give window (a moving average over frames) or ema (an exponential one), \
                     not both",
                ));
            }
            (Some(window), None) => t.scores = ScoreSmoothing::Window { window },
            (None, Some(alpha)) => t.scores = ScoreSmoothing::Ema { alpha },
            (None, None) => {}
        }
        if let Some(v) = self.box_alpha {
            t.box_alpha = v;
        }
        let label = &mut t.label;
        for (field, value) in [
            (&mut label.margin, self.label_margin),
            (&mut label.hold, self.label_hold),
            (&mut label.fast_margin, self.label_fast_margin),
            (&mut label.fast_hold, self.label_fast_hold),
            (&mut label.min_show, self.label_min_show),
        ] {
            if let Some(v) = value {
                *field = v;
            }
        }
        Ok(config)
    }
}
