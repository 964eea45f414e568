//! Loading a model for evaluation, as the library's inference [`Classifier`] would run it (the
//! default) or through burn (a cross-check of the export), with optional test-time
//! augmentation ([`Tta`]).

use std::path::Path;

use burn::tensor::Device;
use emotrack::EmotionScores;
use emotrack::classify::{Classifier, ModelConfig};

use crate::checkpoint;
use crate::data::IMAGE_SIDE;
use crate::error::TrainError;
use crate::metrics::Predictor;
use crate::model::{Net, NetConfig};
use crate::tta::Tta;

/// Which implementation runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `emotrack::classify::Classifier`, the inference runtime (what users get).
    #[default]
    Runtime,
    /// The burn training network.
    Burn,
}

/// The exported weights and config of `path`: a `.safetensors` file (with its `.json`), a run
/// folder (its best weights) or a checkpoint folder.
pub fn model_bytes(path: &Path) -> Result<(Vec<u8>, ModelConfig), TrainError> {
    if path.is_dir() {
        return crate::export::export(path);
    }
    let json = path.with_extension("json");
    let config: ModelConfig = checkpoint::read_json(&json)?;
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    Ok((bytes, config))
}

/// A loaded model ready for [`crate::metrics::evaluate`].
pub struct LoadedModel {
    /// Its config (architecture, normalisation, provenance).
    pub config: ModelConfig,
    inner: Inner,
    tta: Tta,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("config", &self.config)
            .field("tta", &self.tta)
            .finish_non_exhaustive()
    }
}

enum Inner {
    Runtime(Box<Classifier>),
    Burn { net: Box<Net>, device: Device },
}

/// Loads the model at `path` (see [`model_bytes`]) on `backend`.
pub fn load_model(path: &Path, backend: Backend, tta: Tta) -> Result<LoadedModel, TrainError> {
    let (bytes, config) = model_bytes(path)?;
    from_bytes(&bytes, config, path, backend, tta)
}

/// Loads the model built into the binary on `backend`.
pub fn load_embedded(backend: Backend, tta: Tta) -> Result<LoadedModel, TrainError> {
    let origin = Path::new(emotrack::classify::EMBEDDED_ORIGIN);
    let (bytes, config) =
        emotrack::classify::embedded_model().map_err(|e| TrainError::Checkpoint {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
    from_bytes(bytes, config, origin, backend, tta)
}

/// A model from its safetensors bytes and config (`origin` names it in errors) on `backend`.
pub fn from_bytes(
    bytes: &[u8],
    config: ModelConfig,
    path: &Path,
    backend: Backend,
    tta: Tta,
) -> Result<LoadedModel, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let inner = match backend {
        Backend::Runtime => Inner::Runtime(Box::new(
            Classifier::from_bytes(bytes, config.clone(), path).map_err(|e| bad(e.to_string()))?,
        )),
        Backend::Burn => {
            config.validate().map_err(|e| bad(e.to_string()))?;
            let device = Device::flex();
            let cfg = NetConfig::from_architecture(&config.architecture).ok_or_else(|| {
                bad("the burn backend runs ResNet models only; use the runtime backend".into())
            })?;
            let net = crate::export::net_from_exported(&cfg, bytes, &device, path)?;
            use burn::module::Module;
            Inner::Burn {
                net: Box::new(net.valid()),
                device,
            }
        }
    };
    if config.input_size as usize != IMAGE_SIDE {
        return Err(bad(format!(
            "model input is {0}x{0}; FER-2013 evaluation needs a 48x48 model",
            config.input_size
        )));
    }
    Ok(LoadedModel { config, inner, tta })
}

impl LoadedModel {
    /// The inference runtime's classifier, when loaded on [`Backend::Runtime`].
    pub fn into_runtime(self) -> Option<Classifier> {
        match self.inner {
            Inner::Runtime(classifier) => Some(*classifier),
            Inner::Burn { .. } => None,
        }
    }
}

impl Predictor for LoadedModel {
    fn predict(&mut self, crops: &[&[u8]]) -> Vec<EmotionScores> {
        match &self.inner {
            Inner::Burn { net, device } => {
                crate::train::predict_burn(net, crops, &self.config.normalization, self.tta, device)
            }
            Inner::Runtime(classifier) => {
                let side = IMAGE_SIDE as u32;
                let views: Vec<image::GrayImage> = crops
                    .iter()
                    .flat_map(|c| self.tta.views(c))
                    .map(|v| {
                        image::GrayImage::from_raw(side, side, v).expect("TTA views are 48x48")
                    })
                    .collect();
                self.tta.average(&classifier.classify(&views))
            }
        }
    }
}
