//! Running a model for evaluation, as the library's inference [`Classifier`] would run it (the
//! default) or through burn (a cross-check of the inference model file), with optional
//! test-time augmentation ([`Tta`]); and the burn network's predictions ([`predict_burn`]) and
//! validation metrics ([`validate`]) that training uses.

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use emotrack::classify::{Classifier, ModelConfig};
use emotrack::{Emotion, EmotionScores};

use crate::config::TrainConfig;
use crate::data::{Dataset, IMAGE_PIXELS, IMAGE_SIDE};
use crate::error::TrainError;
use crate::metrics::{Metrics, MetricsBuilder, Predictor};
use crate::model::{Net, NetConfig};
use crate::model_file;
use crate::tta::Tta;
use crate::weights;

/// Which implementation runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `emotrack::classify::Classifier`, the inference runtime (what users get).
    #[default]
    Runtime,
    /// The burn training network.
    Burn,
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

/// Loads the model at `path` (see [`model_file::read`]) on `backend`.
pub fn load_model(path: &Path, backend: Backend, tta: Tta) -> Result<LoadedModel, TrainError> {
    let (bytes, config) = model_file::read(path)?;
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
                bad(
                    "the burn backend runs our ResNet and Swin models only (not ensembles or \
                     ONNX graphs); use the runtime backend"
                        .into(),
                )
            })?;
            let net = weights::net_from_inference(&cfg, bytes, &device, path)?;
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
                let c = &self.config;
                predict_burn(
                    net,
                    crops,
                    &c.normalization,
                    c.temperature,
                    self.tta,
                    device,
                )
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

/// Scores of a non-autodiff network for a batch of crops, the logits divided by
/// `temperature` (1 during training; a model file's [`ModelConfig::temperature`]), averaged
/// over the `tta` views of each.
pub fn predict_burn(
    net: &Net,
    crops: &[&[u8]],
    norm: &emotrack::classify::Normalization,
    temperature: f32,
    tta: Tta,
    device: &Device,
) -> Vec<EmotionScores> {
    let views: Vec<Vec<u8>> = crops.iter().flat_map(|c| tta.views(c)).collect();
    let mut x = vec![0f32; views.len() * IMAGE_PIXELS];
    for (v, out) in views.iter().zip(x.chunks_exact_mut(IMAGE_PIXELS)) {
        norm.apply(v, out);
    }
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [views.len(), 1, IMAGE_SIDE, IMAGE_SIDE]),
        device,
    );
    let p = softmax(net.forward(x).div_scalar(temperature), 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let scores: Vec<EmotionScores> = p
        .chunks_exact(Emotion::COUNT)
        .map(|c| {
            let mut s = [0f32; Emotion::COUNT];
            s.copy_from_slice(c);
            EmotionScores(s)
        })
        .collect();
    tta.average(&scores)
}

/// Validation metrics of a (non-autodiff) network.
pub fn validate(net: &Net, data: &Dataset, cfg: &TrainConfig, device: &Device) -> Metrics {
    let mut m = MetricsBuilder::default();
    let mut start = 0;
    while start < data.len() {
        let end = (start + cfg.eval_batch_size).min(data.len());
        let crops: Vec<&[u8]> = (start..end).map(|i| data.image(i)).collect();
        for (i, s) in (start..end).zip(predict_burn(
            net,
            &crops,
            &cfg.normalization,
            1.0,
            Tta::None,
            device,
        )) {
            m.add(data.label(i), &s);
        }
        start = end;
    }
    m.finish()
}
