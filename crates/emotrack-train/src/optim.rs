//! The optimiser of a run ([`OptimizerKind`]: SGD with momentum or AdamW, with weight decay)
//! and the weight EMA that shadows the trained weights.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;

use crate::config::{OptimizerKind, TrainConfig};
use crate::model::Net;
use crate::params;

/// The optimiser `cfg` asks for, without state.
pub(crate) fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: cfg.nesterov,
            }))
            .with_weight_decay((cfg.weight_decay > 0.0).then_some(WeightDecayConfig {
                penalty: cfg.weight_decay as f32,
            }))
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .init(),
    }
}

/// The EMA `ema` (on `plain`) moved towards `model`'s weights after its `updates`-th update:
/// `ema * d + model * (1 - d)`. timm-style warm-up: `d` is `decay` at most but
/// `(1 + updates) / (10 + updates)` early on, so the EMA first follows the weights closely.
pub(crate) fn ema_update(ema: Net, model: &Net, decay: f64, updates: u64, plain: &Device) -> Net {
    let u = updates as f64;
    let d = decay.min((1.0 + u) / (10.0 + u)) as f32;
    let current = params::collect(model);
    let (updated, _) = params::apply(ema, &current, |old, new| {
        old.mul_scalar(d) + new.to_device(plain).mul_scalar(1.0 - d)
    });
    updated
}
