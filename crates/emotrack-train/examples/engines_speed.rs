//! The shipped emotion model (the one built into `emotrack`) on three inference engines, timed in
//! one run with the engines interleaved, on real FER-2013 val crops at batch 1 and batch 8:
//!
//! * `emotrack`: the library's own runtime, [`Classifier::classify`] (what users get);
//! * `tract`: the same network exported with [`Classifier::to_onnx`] and run through tract-onnx,
//!   as `--model emotion.onnx` runs it (a batch-1 plan, a batch's faces spread over the cores);
//! * `burn`: the training crate's burn [`Net`] with the shipped weights, on burn's `flex` CPU
//!   backend without autodiff ([`predict_burn`], what `emotrack eval --backend burn` runs).
//!
//! ```text
//! CARGO_TARGET_DIR=/var/tmp/emotrack-target \
//!   cargo run --release -p emotrack-train --example engines_speed [ROUNDS] [SECONDS]
//! ```
//!
//! Every timed call takes already decoded 48x48 gray crops and includes normalisation and the
//! softmax (image decoding is excluded). Each round times every engine at batch 1 then at batch
//! 8 for `SECONDS` (default 0.3) each, in the order emotrack, tract, burn; `ROUNDS` (default 15)
//! rounds follow one warm-up round. Per engine the report gives the median, minimum and maximum
//! over rounds of the milliseconds per face, and the median (min-max) of each round's ratio to
//! emotrack's time in that round, so a machine that slows down between rounds moves both sides of
//! a ratio together. Before timing, the logits of all three are compared on the same crops.
//! The crops are the first 8 files (by name) of each class folder of FER-2013's `val/` split,
//! found at `$EMOTRACK_FER2013` or `<workspace>/../shared/datasets/fer2013`. Threads: rayon's
//! default (every core); set `RAYON_NUM_THREADS` to change it for all three engines.
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use emotrack::Emotion;
use emotrack::classify::{Classifier, Normalization, embedded_model};
use emotrack_train::evaluate::predict_burn;
use emotrack_train::model::{Net, NetConfig};
use emotrack_train::tta::Tta;
use emotrack_train::weights::net_from_inference;
use image::GrayImage;

/// Crops taken from each class folder.
const PER_CLASS: usize = 8;
/// Crop side of the shipped model.
const SIDE: usize = 48;
/// Batch sizes timed.
const BATCHES: [usize; 2] = [1, 8];
/// Engine names, in the order they run within a round.
const ENGINES: [&str; 3] = ["emotrack", "tract", "burn"];

/// The three engines, loaded.
struct Engines {
    native: Classifier,
    tract: Classifier,
    burn: Net,
    device: Device,
    norm: Normalization,
    /// `order[i]` = index in [`Emotion::ALL`] of the model's output `i`.
    order: Vec<usize>,
}

impl Engines {
    fn load() -> Result<Self, Box<dyn Error>> {
        let (bytes, config) = embedded_model()?;
        let origin = Path::new(emotrack::classify::EMBEDDED_ORIGIN);
        let native = Classifier::from_bytes(bytes, config.clone(), origin)?;
        let (onnx, onnx_config) = native.to_onnx()?;
        let tract = Classifier::from_bytes(&onnx, onnx_config, Path::new("emotion.onnx"))?;
        let device = Device::flex();
        let cfg = NetConfig::from_architecture(&config.architecture)
            .ok_or("the shipped model is not a single ResNet")?;
        let burn = net_from_inference(&cfg, bytes, &device, origin)?.valid();
        let order = config
            .classes
            .iter()
            .map(|c| Emotion::from_name(c).map(Emotion::index))
            .collect::<Option<Vec<_>>>()
            .ok_or("unknown class name in the model config")?;
        Ok(Self {
            native,
            tract,
            burn,
            device,
            norm: config.normalization,
            order,
        })
    }

    /// One timed call of engine `e` on `crops` (gray images and the same pixels as slices).
    fn run(&self, e: usize, crops: &[GrayImage], raw: &[&[u8]]) -> f32 {
        let scores = match e {
            0 => self.native.classify(crops),
            1 => self.tract.classify(crops),
            _ => predict_burn(&self.burn, raw, &self.norm, 1.0, Tta::None, &self.device),
        };
        // Something the optimiser cannot drop.
        scores.iter().map(|s| s.0[0]).sum()
    }

    /// The burn network's logits, indexed like [`Emotion::ALL`].
    fn burn_logits(&self, crops: &[GrayImage]) -> Result<Vec<[f32; 7]>, Box<dyn Error>> {
        let mut x = vec![0f32; crops.len() * SIDE * SIDE];
        for (c, out) in crops.iter().zip(x.chunks_exact_mut(SIDE * SIDE)) {
            self.norm.apply(c.as_raw(), out);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(x, [crops.len(), 1, SIDE, SIDE]),
            &self.device,
        );
        let values = self
            .burn
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| format!("burn output: {e:?}"))?;
        Ok(values
            .chunks_exact(self.order.len())
            .map(|row| {
                let mut l = [0.0; 7];
                for (&o, &v) in self.order.iter().zip(row) {
                    l[o] = v;
                }
                l
            })
            .collect())
    }
}

/// The first [`PER_CLASS`] crops (by file name) of each class folder of `val/`.
fn load_crops() -> Result<Vec<GrayImage>, Box<dyn Error>> {
    let root = std::env::var_os("EMOTRACK_FER2013")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/fer2013")
        });
    let mut crops = Vec::new();
    for emotion in Emotion::ALL {
        let dir = root.join("val").join(emotion.name());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        files.sort();
        for file in files.iter().take(PER_CLASS) {
            let crop = image::open(file)?.to_luma8();
            if crop.dimensions() != (SIDE as u32, SIDE as u32) {
                return Err(format!("{} is not {SIDE}x{SIDE}", file.display()).into());
            }
            crops.push(crop);
        }
    }
    Ok(crops)
}

/// The largest absolute difference between two sets of logits.
fn max_abs_diff(a: &[[f32; 7]], b: &[[f32; 7]]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

/// Items whose largest logit is at the same class in both.
fn same_top(a: &[[f32; 7]], b: &[[f32; 7]]) -> usize {
    let top = |l: &[f32; 7]| {
        (0..7)
            .max_by(|&i, &j| l[i].total_cmp(&l[j]))
            .unwrap_or_default()
    };
    a.iter().zip(b).filter(|(a, b)| top(a) == top(b)).count()
}

/// Median, minimum and maximum.
fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn main() -> Result<(), Box<dyn Error>> {
    let arg = |i: usize| std::env::args().nth(i).and_then(|s| s.parse::<f64>().ok());
    let rounds = arg(1).map_or(15, |r| r.max(1.0) as usize);
    let seconds = arg(2).unwrap_or(0.3);

    let engines = Engines::load()?;
    let crops = load_crops()?;
    println!(
        "{} val crops ({PER_CLASS} per class), {} rayon threads, {rounds} rounds of {seconds} s \
         per engine and batch",
        crops.len(),
        rayon::current_num_threads()
    );

    // Do the three engines compute the same function?
    let native = engines.native.logits(&crops);
    let tract = engines.tract.logits(&crops);
    let burn = engines.burn_logits(&crops)?;
    let n = crops.len();
    println!(
        "logits vs emotrack: tract max |diff| {:.2e} (same top class {}/{n}), \
         burn max |diff| {:.2e} (same top class {}/{n})",
        max_abs_diff(&native, &tract),
        same_top(&native, &tract),
        max_abs_diff(&native, &burn),
        same_top(&native, &burn),
    );

    let raw: Vec<&[u8]> = crops.iter().map(|c| c.as_raw().as_slice()).collect();
    // ms_per_face[batch][engine][round]
    let mut ms_per_face = vec![vec![Vec::new(); ENGINES.len()]; BATCHES.len()];
    let mut sink = 0.0;
    let mut next = 0; // first crop of the next batch; batches cycle through the crops
    for round in 0..=rounds {
        for (b, &batch) in BATCHES.iter().enumerate() {
            for (e, times) in ms_per_face[b].iter_mut().enumerate() {
                let mut calls = 0usize;
                let start = Instant::now();
                while calls == 0 || start.elapsed().as_secs_f64() < seconds {
                    if next + batch > n {
                        next = 0;
                    }
                    sink += engines.run(e, &crops[next..next + batch], &raw[next..next + batch]);
                    next += batch;
                    calls += 1;
                }
                let ms = start.elapsed().as_secs_f64() * 1e3 / (calls * batch) as f64;
                // Round 0 warms up.
                if round > 0 {
                    times.push(ms);
                }
            }
        }
    }

    println!("ms per face: median (min-max) over rounds; ratio to emotrack in the same round");
    println!(
        "{:<6} {:<9} {:>22} {:>22}",
        "batch", "engine", "ms per face", "x emotrack"
    );
    for (b, &batch) in BATCHES.iter().enumerate() {
        for (e, name) in ENGINES.iter().enumerate() {
            let (med, lo, hi) = summary(&ms_per_face[b][e]);
            let ratios: Vec<f64> = ms_per_face[b][e]
                .iter()
                .zip(&ms_per_face[b][0])
                .map(|(t, base)| t / base)
                .collect();
            let (rmed, rlo, rhi) = summary(&ratios);
            println!(
                "{batch:<6} {name:<9} {:>22} {:>22}",
                format!("{med:.3} ({lo:.3}-{hi:.3})"),
                format!("{rmed:.2} ({rlo:.2}-{rhi:.2})")
            );
        }
    }
    // Printed so that the timed calls have an observable effect.
    println!("(checksum {sink:.1})");
    Ok(())
}
