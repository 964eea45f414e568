//! Measures training throughput (images/s) of a network on random input:
//! `train_speed [BATCH] [STEPS] [CONFIG.json]`, the network of the training config's `model`
//! (default: the reference ResNet).
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::tensor::{Device, Distribution, Int, Tensor};
use emotrack_train::TrainConfig;
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
    let net = match std::env::args().nth(3) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).expect("a readable config");
            serde_json::from_str::<TrainConfig>(&text)
                .expect("a training config")
                .model
        }
        None => NetConfig::default(),
    };
    let device = Device::flex().autodiff();
    let mut model = net.init(7, &device);
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
        let l: f32 = loss.clone().into_scalar::<f32>();
        let t_fwd = t.elapsed();
        let grads = loss.backward();
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(0.1, model, grads);
        let dt = t.elapsed().as_secs_f64();
        println!(
            "step {step}: fwd {:.3}s total {:.3}s -> {:.1} img/s ({l})",
            t_fwd.as_secs_f64(),
            dt,
            batch as f64 / dt
        );
    }
}
