//! Measures training throughput (images/s) of the default network on random input.
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::tensor::{Device, Distribution, Int, Tensor};
use emotrack_train::model::NetConfig;

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let steps: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let device = Device::flex().autodiff();
    let mut model = NetConfig::default().init(7, &device);
    println!("params: {}", burn::module::Module::num_params(&model));
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
        }))
        .with_weight_decay(Some(WeightDecayConfig { penalty: 5e-4 }))
        .init();
    for step in 0..steps {
        let t = std::time::Instant::now();
        let x = Tensor::<4>::random([batch, 1, 48, 48], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<1, Int>::random([batch], Distribution::Uniform(0.0, 7.0), &device);
        let logits = model.forward(x);
        let logp = burn::tensor::activation::log_softmax(logits, 1);
        let onehot = y.one_hot(7).float();
        let loss = (logp * onehot).sum_dim(1).mean().neg();
        let t_fwd = t.elapsed();
        let grads = loss.backward();
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(0.1, model, grads);
        let l: f32 = loss_value(&model);
        let dt = t.elapsed().as_secs_f64();
        println!(
            "step {step}: fwd {:.3}s total {:.3}s -> {:.1} img/s ({l})",
            t_fwd.as_secs_f64(),
            dt,
            batch as f64 / dt
        );
    }
}

fn loss_value(model: &emotrack_train::model::Net) -> f32 {
    model.head.weight.val().sum().into_scalar::<f32>()
}
