//! The embedded emotion classifier on one real FER-2013 val face (48x48), batch 1 and 8, with
//! every core and with one:
//!
//! ```text
//! cargo bench -p emotrack --no-default-features --bench bench_classify
//! ```
//!
//! `emotrack bench classify` reports the same figures from the release binary; this bench
//! rebuilds only the library, which makes it the quicker loop while tuning `nn`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use emotrack::classify::Classifier;

const FACE: &str = "val/happy/PublicTest_10130075.jpg";

fn main() {
    let Some(fer) = common::fer2013_dir() else {
        return;
    };
    let path = fer.join(FACE);
    let face = match image::open(&path) {
        Ok(img) => img.to_luma8(),
        Err(e) => {
            eprintln!("SKIPPED: {}: {e}", path.display());
            return;
        }
    };
    let classifier = match Classifier::embedded() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("the embedded classifier failed to load: {e}");
            std::process::exit(1);
        }
    };
    let single = common::single_thread_pool();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for batch in [1, 8] {
        let crops = vec![face.clone(); batch];
        let mut group = c.benchmark_group(format!("classify_batch_{batch}"));
        group.bench_function("all_cores", |b| {
            b.iter(|| classifier.classify(black_box(&crops)))
        });
        group.bench_function("1_thread", |b| {
            b.iter(|| single.install(|| classifier.classify(black_box(&crops))))
        });
        group.finish();
    }
    c.final_summary();
}
