//! Flags shared by the subcommands that analyse faces (`analyze`, `video`, `bench`), and the
//! `--size` parser.

use std::path::PathBuf;

use clap::ValueEnum;
use emotrack::classify::ModelSource;
use emotrack::detect::{HaarSettings, MtcnnSettings, YunetSettings};
use emotrack::{AnalyzerConfig, DetectorBackend, DetectorConfig};

/// Face detector choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DetectorArg {
    /// YuNet: one small network over the picture; the fastest, finds as many faces as MTCNN,
    /// gives landmarks for alignment.
    Yunet,
    /// MTCNN: a cascade of three networks over an image pyramid, gives landmarks for
    /// alignment; several times slower than YuNet.
    Mtcnn,
    /// Viola-Jones Haar cascade: frontal faces only, no landmarks.
    Haar,
}

/// Detector and model flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzerArgs {
    /// Face detector.
    #[arg(long, value_enum, default_value_t = DetectorArg::Yunet)]
    pub detector: DetectorArg,
    /// Smallest face side searched for, in pixels (raise it to go faster on big images).
    #[arg(long, default_value_t = emotrack::detect::DEFAULT_MIN_FACE)]
    pub min_face: u32,
    /// Largest face side searched for, in pixels.
    #[arg(long)]
    pub max_face: Option<u32>,
    /// MTCNN and YuNet (ignored with --detector haar): face score needed, 0-1 (raise for fewer
    /// false faces). Default 0.7 for MTCNN (its final stage's probability), 0.6 for YuNet.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Haar only (ignored with the others): overlapping detections a face needs (raise for
    /// fewer false faces).
    #[arg(long, default_value_t = HaarSettings::default().min_neighbors)]
    pub min_neighbors: u32,
    /// YuNet only: the longer side, in pixels, a picture is shrunk towards before the search
    /// (by a whole factor, never so far that a face of --min-face pixels would be under 10).
    /// Smaller is faster; raise it for crowds of small faces. Default 640 for photos, 320 for
    /// video frames.
    #[arg(long)]
    pub max_side: Option<u32>,
    /// Emotion model: a .safetensors or .onnx file with its .json config beside it, or a training
    /// run folder (default: built in).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Vibe messages file, laid out like models/vibes.json (default: built in).
    #[arg(long, value_name = "FILE")]
    pub vibes: Option<PathBuf>,
}

impl AnalyzerArgs {
    /// The library config these flags describe. Each backend takes only its own flags:
    /// `--threshold` is ignored with Haar, `--min-neighbors` with the others. Fails when `--model`
    /// names nothing usable.
    pub fn to_config(&self) -> emotrack::error::Result<AnalyzerConfig> {
        let backend = match self.detector {
            DetectorArg::Haar => DetectorBackend::Haar(HaarSettings {
                min_neighbors: self.min_neighbors,
                ..HaarSettings::default()
            }),
            DetectorArg::Mtcnn => DetectorBackend::Mtcnn(MtcnnSettings::default()),
            DetectorArg::Yunet => {
                let defaults = YunetSettings::default();
                DetectorBackend::Yunet(YunetSettings {
                    max_side: self.max_side.unwrap_or(defaults.max_side),
                    frame_max_side: self.max_side.unwrap_or(defaults.frame_max_side),
                    ..defaults
                })
            }
        };
        let backend = match self.threshold {
            Some(threshold) => backend.with_threshold(threshold),
            None => backend,
        };
        Ok(AnalyzerConfig {
            detector: DetectorConfig {
                min_face: self.min_face,
                max_face: self.max_face,
                backend,
            },
            model: ModelSource::resolve(self.model.as_deref())?,
            vibes: self.vibes.clone(),
            ..AnalyzerConfig::default()
        })
    }
}

/// Parses a `WIDTHxHEIGHT` flag (`--size`), each side within 24..=8192 pixels: a frame smaller
/// than the smallest face searched, or larger than FFmpeg's usual limits, is a typing mistake.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or("expected WIDTHxHEIGHT, e.g. 640x480")?;
    let w: u32 = w.parse().map_err(|_| format!("bad width {w:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height {h:?}"))?;
    if !(24..=8192).contains(&w) || !(24..=8192).contains(&h) {
        return Err("width and height must be within 24..=8192".into());
    }
    Ok((w, h))
}
