//! MTCNN face detection on one shared photo shrunk to 640x480, with every core and with one.
//!
//! The input is what `scripts/mtcnn_fixtures.py --bench` gives facenet-pytorch (the same photo,
//! bilinear to 640x480; the two decoders and resizers differ by a few grey levels, the faces
//! found are the same), with the same defaults (min face 20, thresholds 0.6/0.7/0.7, factor
//! 0.709), so the timings compare like for like:
//!
//! ```text
//! cargo bench -p emotrack --bench bench_mtcnn                          # every core
//! MATMUL_NUM_THREADS=1 cargo bench -p emotrack --bench bench_mtcnn     # for the 1-thread figure
//! /work/venv/bin/python scripts/mtcnn_fixtures.py --bench
//! ```
//!
//! The "1 thread" case runs in a 1-thread rayon pool; matrixmultiply (our GEMM) has its own
//! threads for large products, which only `MATMUL_NUM_THREADS=1` turns off (it is read once per
//! process, so the single-thread figure needs its own run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use emotrack::FaceDetector;
use emotrack::detect::mtcnn::Mtcnn;
use emotrack::detect::{FaceSizes, MtcnnSettings};
use image::imageops::{FilterType, resize};

const PHOTO: &str = "photos/linzaer_imgs_3.jpg";
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn main() {
    let Some(rgb) = common::shared_photo(PHOTO) else {
        return;
    };
    let rgb = resize(&rgb, WIDTH, HEIGHT, FilterType::Triangle);
    let detector = match Mtcnn::embedded(FaceSizes::default(), &MtcnnSettings::default()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("the embedded MTCNN failed to load: {e}");
            std::process::exit(1);
        }
    };
    let single = common::single_thread_pool();
    println!(
        "{PHOTO} at {WIDTH}x{HEIGHT}: {} faces, {} rayon threads, MATMUL_NUM_THREADS={}",
        detector.detect(&rgb).len(),
        rayon::current_num_threads(),
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    let mut group = c.benchmark_group("mtcnn_640x480");
    group.bench_function("all_cores", |b| b.iter(|| detector.detect(black_box(&rgb))));
    group.bench_function("1_thread", |b| {
        b.iter(|| single.install(|| detector.detect(black_box(&rgb))))
    });
    group.finish();
    c.final_summary();
}
