//! Haar face detection on one shared photo shrunk to 640x480, with every core and with one.
//!
//! The input is exactly what `scripts/haar_fixtures.py --bench` gives OpenCV (gray, then
//! `INTER_LINEAR_EXACT` to 640x480), with the same parameters (scale 1.1, 3 neighbours, min 20
//! px), so the two timings compare like for like:
//!
//! ```text
//! cargo bench -p emotrack --bench bench_haar
//! /work/venv/bin/python scripts/haar_fixtures.py --bench
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use emotrack::detect::haar::HaarDetector;
use emotrack::detect::{FaceSizes, HaarSettings};
use emotrack::imgproc::gray::gray_from_rgb;
use emotrack::imgproc::resize::resize_gray;

const PHOTO: &str = "photos/linzaer_imgs_3.jpg";
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn main() {
    let Some(rgb) = common::shared_photo(PHOTO) else {
        return;
    };
    let gray = resize_gray(&gray_from_rgb(&rgb), WIDTH, HEIGHT);
    let detector = match HaarDetector::frontal_face(FaceSizes::default(), &HaarSettings::default())
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("the embedded cascade failed to load: {e}");
            std::process::exit(1);
        }
    };
    let single = common::single_thread_pool();
    println!(
        "{PHOTO} at {WIDTH}x{HEIGHT}: {} faces, {} rayon threads",
        detector.detect_gray(&gray).len(),
        rayon::current_num_threads()
    );

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("haar_640x480");
    group.bench_function("all_threads", |b| {
        b.iter(|| detector.detect_gray(black_box(&gray)))
    });
    group.bench_function("one_thread", |b| {
        single.install(|| b.iter(|| detector.detect_gray(black_box(&gray))))
    });
    group.finish();
    c.final_summary();
}
