//! The network a run trains: a [`Resnet`] or a [`Swin`], chosen by the `kind` of the config's
//! `model` (`"resnet"` when absent, so configs written before there was a choice still read).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use emotrack::classify::Architecture;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::TrainError;
use crate::resnet::{Resnet, ResnetConfig};
use crate::swin::{Swin, SwinConfig};

/// The layout of the network to train.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetConfig {
    /// The ResNet-style CNN (the built-in model's kind).
    Resnet(ResnetConfig),
    /// The Swin-style transformer.
    Swin(SwinConfig),
}

impl Default for NetConfig {
    fn default() -> Self {
        Self::Resnet(ResnetConfig::default())
    }
}

impl<'de> Deserialize<'de> for NetConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let kind = match map.remove("kind") {
            None => "resnet".to_string(),
            Some(serde_json::Value::String(k)) => k,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "model.kind must be \"resnet\" or \"swin\", not {other}"
                )));
            }
        };
        let fields = serde_json::Value::Object(map);
        match kind.as_str() {
            "resnet" => ResnetConfig::deserialize(fields)
                .map(Self::Resnet)
                .map_err(D::Error::custom),
            "swin" => SwinConfig::deserialize(fields)
                .map(Self::Swin)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "model.kind must be \"resnet\" or \"swin\", not {other:?}"
            ))),
        }
    }
}

impl NetConfig {
    /// Checks the layout, saying what to change.
    pub fn validate(&self) -> Result<(), TrainError> {
        match self {
            Self::Resnet(c) => c.validate(),
            Self::Swin(c) => c.validate(),
        }
    }

    /// The architecture entry of the exported model config.
    pub fn architecture(&self) -> Architecture {
        match self {
            Self::Resnet(c) => c.architecture(),
            Self::Swin(c) => c.architecture(),
        }
    }

    /// The training config matching an exported architecture (training-only settings take
    /// their defaults); `None` for an architecture burn does not build (an ensemble, an ONNX
    /// graph).
    pub fn from_architecture(arch: &Architecture) -> Option<Self> {
        ResnetConfig::from_architecture(arch)
            .map(Self::Resnet)
            .or_else(|| SwinConfig::from_architecture(arch).map(Self::Swin))
    }

    /// Builds a freshly initialised network on `device`.
    pub fn init(&self, num_classes: usize, device: &Device) -> Net {
        match self {
            Self::Resnet(c) => Net::Resnet(c.init(num_classes, device)),
            Self::Swin(c) => Net::Swin(c.init(num_classes, device)),
        }
    }
}

/// A network of either kind. Its tensors' paths are the variant's own (the variant's name is
/// not part of them: see [`crate::params`]).
#[derive(Module, Debug)]
pub enum Net {
    /// The CNN.
    Resnet(Resnet),
    /// The transformer.
    Swin(Swin),
}

impl Net {
    /// Class logits.
    ///
    /// * `x`: `[batch, 1, H, W]` normalised grayscale crops.
    /// * returns `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Resnet(n) => n.forward(x),
            Self::Swin(n) => n.forward(x),
        }
    }
}
