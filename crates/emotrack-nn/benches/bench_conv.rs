//! The direct 3x3 convolution kernel (`nn::direct`) alone, on one thread, at the shapes MTCNN
//! runs most: P-Net's three layers on the first pyramid level of a 640x480 frame, R-Net's and
//! O-Net's 3x3 layers on a batch of 16 crops. Throughput is in floating-point operations
//! (2 per multiply-add), so criterion's "elem/s" reads as FLOP/s:
//!
//! ```text
//! cargo bench -p emotrack-nn --bench bench_conv
//! ```
//!
//! The weights and inputs are ramps, not a real net's: the kernel's speed does not depend on
//! the values, and these shapes need no model file.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use emotrack_nn::{Conv2d, ConvSpec, Scratch, Tensor};

/// `(name, batch, in channels, out channels, input height, input width)`.
const LAYERS: [(&str, usize, usize, usize, usize, usize); 8] = [
    ("pnet_conv1", 1, 3, 10, 288, 384),
    ("pnet_conv2", 1, 10, 16, 143, 191),
    ("pnet_conv3", 1, 16, 32, 141, 189),
    ("rnet_conv1", 16, 3, 28, 24, 24),
    ("rnet_conv2", 16, 28, 48, 11, 11),
    ("onet_conv1", 16, 3, 32, 48, 48),
    ("onet_conv2", 16, 32, 64, 23, 23),
    ("onet_conv3", 16, 64, 64, 10, 10),
];

fn ramp(n: usize, step: f32) -> Vec<f32> {
    (0..n).map(|i| (i % 17) as f32 * step - 0.5).collect()
}

fn main() {
    let single = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("cannot build a 1-thread pool: {e}");
            std::process::exit(1);
        }
    };
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("conv3x3_1_thread");
    for (name, n, ci, co, h, w) in LAYERS {
        let spec = ConvSpec::new(ci, co, 3);
        let conv = Conv2d::new(spec, ramp(co * ci * 9, 0.01), Some(vec![0.0; co]));
        let x = Tensor::from_vec([n, ci, h, w], ramp(n * ci * h * w, 0.06));
        let (oh, ow) = spec.output_size(h, w);
        group.throughput(Throughput::Elements((2 * n * co * ci * 9 * oh * ow) as u64));
        let (mut y, mut scratch) = (Tensor::new(), Scratch::new());
        group.bench_function(name, |b| {
            b.iter(|| single.install(|| conv.forward(black_box(&x), &mut y, &mut scratch)))
        });
    }
    group.finish();
    c.final_summary();
}
