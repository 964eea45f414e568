//! Forward + backward time (both gradients) of each convolution of the default network in
//! training, burn flex's own convolution against `emotrack_train::conv` (what the network
//! runs), alternating in one run, with the rates in GFLOP/s and the speed-up.
//!
//! `cargo run --release -p emotrack-train --example conv_speed [BATCH] [REPEATS]`
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Distribution, Tensor};
use emotrack_train::conv;
use emotrack_train::resnet::{Resnet, ResnetConfig};

/// The network's convolutions in order, each with the side of its (square) input.
fn convolutions(net: &Resnet) -> Vec<(&Conv2d, usize)> {
    let mut side = 48;
    let mut layers = vec![(&net.stem.conv, side)];
    side = output_side(&net.stem.conv, side);
    for block in net.stages.iter().flatten() {
        let inner = output_side(&block.conv1, side);
        layers.push((&block.conv1, side));
        layers.push((&block.conv2, inner));
        if let Some(shortcut) = &block.shortcut {
            layers.push((&shortcut.conv, side));
        }
        side = inner;
    }
    layers
}

/// The side of `conv`'s output for a square input of `side` (the network pads evenly).
fn output_side(conv: &Conv2d, side: usize) -> usize {
    let [.., k, _] = conv.weight.dims();
    let p = match conv.padding {
        PaddingConfig2d::Explicit(p, ..) => p,
        _ => 0,
    };
    (side + 2 * p - k) / conv.stride[0] + 1
}

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
    let net = ResnetConfig::default().init(7, &device);
    for (layer, side) in convolutions(&net) {
        let [o, i, k, _] = layer.weight.dims();
        let stride = layer.stride[0];
        // The stem's input (the images) needs no gradient.
        let x = Tensor::<4>::random(
            [batch, i, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let x = if i > 1 { x.require_grad() } else { x };
        let paths: [Path; 2] = [|c, x| c.forward(x), conv::forward];
        let step = |path: Path| {
            let grads = path(layer, x.clone()).sum().backward();
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
            *total += best;
        }
        let out = output_side(layer, side);
        // A backward pass costs two forward passes (input and weight gradients).
        let flops = 3.0 * 2.0 * (batch * o * out * out * i * k * k) as f64;
        println!(
            "{i:>3} -> {o:<3} {k}x{k} stride {stride} at {side:>2} px: \
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
