//! Forward + backward time (both gradients) of each convolution of the default network in
//! training, burn flex's own convolution against `emotrack_train::conv` (what the network
//! runs), alternating in one run, with the rates in GFLOP/s and the speed-up.
//!
//! `cargo run --release -p emotrack-train --example conv_speed [BATCH] [REPEATS]`
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use emotrack_train::conv;

/// The network's convolutions: input channels, output channels, kernel, stride, input side,
/// and how many of them the network has.
const LAYERS: [(usize, usize, usize, usize, usize, usize); 11] = [
    (1, 32, 3, 2, 48, 1),
    (32, 32, 3, 1, 24, 2),
    (32, 64, 3, 2, 24, 1),
    (64, 64, 3, 1, 12, 1),
    (32, 64, 1, 2, 24, 1),
    (64, 128, 3, 2, 12, 1),
    (128, 128, 3, 1, 6, 1),
    (64, 128, 1, 2, 12, 1),
    (128, 256, 3, 2, 6, 1),
    (256, 256, 3, 1, 3, 1),
    (128, 256, 1, 2, 6, 1),
];

/// One way to run a convolution layer.
type Path = fn(&Conv2d, Tensor<4>) -> Tensor<4>;

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (batch, repeats) = (arg(1, 128), arg(2, 5).max(1));
    let device = Device::flex().autodiff();
    let mut totals = [0.0; 2];
    for (i, o, k, stride, side, count) in LAYERS {
        let p = k / 2;
        let layer = Conv2dConfig::new([i, o], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(&device);
        // The stem's input (the images) needs no gradient.
        let x = Tensor::<4>::random(
            [batch, i, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let x = if i > 1 { x.require_grad() } else { x };
        let paths: [Path; 2] = [|c, x| c.forward(x), conv::forward];
        let step = |path: Path| {
            let grads = path(&layer, x.clone()).sum().backward();
            let gw = layer.weight.grad(&grads).expect("the weight is trained");
            let _ = (gw.into_data(), x.grad(&grads).map(Tensor::into_data));
        };
        let mut best = [f64::MAX; 2];
        for round in 0..=repeats {
            for (path, best) in paths.iter().zip(&mut best) {
                let t = Instant::now();
                step(*path);
                // Round 0 warms up.
                if round > 0 {
                    *best = best.min(t.elapsed().as_secs_f64());
                }
            }
        }
        for (total, best) in totals.iter_mut().zip(best) {
            *total += count as f64 * best;
        }
        let out = (side + 2 * p - k) / stride + 1;
        // A backward pass costs two forward passes (input and weight gradients).
        let flops = 3.0 * 2.0 * (batch * o * out * out * i * k * k) as f64;
        println!(
            "{count}x {i:>3} -> {o:<3} {k}x{k} stride {stride} at {side:>2} px: \
             flex {:6.1} ms ({:5.1} GFLOP/s), emotrack_train::conv {:6.1} ms ({:5.1} GFLOP/s): {:.2}x",
            best[0] * 1e3,
            flops / best[0] / 1e9,
            best[1] * 1e3,
            flops / best[1] / 1e9,
            best[0] / best[1]
        );
    }
    println!(
        "the network's convolutions, batch {batch}, forward + backward: flex {:.1} ms, \
         emotrack_train::conv {:.1} ms: {:.2}x",
        totals[0] * 1e3,
        totals[1] * 1e3,
        totals[0] / totals[1]
    );
}
