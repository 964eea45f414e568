//! `emotrack bench`: speed measurements on real media (benchmarks, not tests).
//!
//! Every figure is a mean over repeated runs after a warm-up, on images resized to the same
//! size as the reference scripts under `bench/` use, so their ratios are like for like.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use emotrack::classify::{Classifier, ModelSource};
use emotrack::detect::{HaarSettings, MtcnnSettings, YunetSettings};
use emotrack::imgproc::{CropSettings, DecodeLimits, face_crop, load_image};
use emotrack::{DetectorBackend, DetectorConfig};
use image::{GrayImage, RgbImage};
use serde::Serialize;

use crate::inputs::{Input, expand};
use crate::options::parse_size;
use crate::outcome::Outcome;

mod serve;
mod smoothing;
mod video;

/// Arguments of `emotrack bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Time the face detectors per image at 640x480, on one thread and on all cores.
    Detect(DetectArgs),
    /// Time the emotion classifier per face, batch 1 and batched.
    Classify(ClassifyArgs),
    /// Label changes, label durations, box jitter and lag: raw per-frame results against
    /// smoothed ones (--sweep: the trade-off of other settings).
    Smoothing(smoothing::SmoothingArgs),
    /// Video pipeline speed (decode + detect + classify + track) and time per stage.
    Video(video::VideoArgs),
    /// The server under load: concurrent WebSocket streams, and /v1/analyze against `analyze`.
    Serve(serve::ServeArgs),
}

#[derive(Debug, clap::Args)]
struct DetectArgs {
    /// Images or folders (default: ../shared/media/photos).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Fit every image into WIDTHxHEIGHT first (aspect ratio kept, black bars), as
    /// `emotrack video --size` does with frames.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    size: (u32, u32),
    /// Minimum seconds to spend per detector and thread setting.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ClassifyArgs {
    /// Emotion model: a .safetensors or .onnx file with its .json config beside it, or a training
    /// run folder (default: built in).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batch: Vec<usize>,
    /// Also time this model (`--baseline` alone: the built-in one) on the same crops, each
    /// setting right after the model's, so the two compare within one run.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    baseline: Option<Option<PathBuf>>,
    /// Minimum seconds per setting.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Outcome> {
    match args.what {
        What::Detect(a) => detect(a),
        What::Classify(a) => classify(a),
        What::Smoothing(a) => smoothing::smoothing(a),
        What::Video(a) => video::video(a),
        What::Serve(a) => serve::serve(a),
    }
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    threads: usize,
    ms_per_item: f64,
    items_per_second: f64,
    runs: usize,
}

/// Calls `f` repeatedly for at least `seconds` after one warm-up call; mean seconds per call.
fn time_it(seconds: f64, mut f: impl FnMut()) -> (f64, usize) {
    f();
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        f();
        runs += 1;
    }
    (start.elapsed().as_secs_f64() / runs as f64, runs)
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start a thread pool")
}

fn default_media() -> PathBuf {
    std::env::var_os("EMOTRACK_MEDIA")
        .map_or_else(|| PathBuf::from("../shared/media"), PathBuf::from)
}

fn load_images(paths: &[PathBuf], size: (u32, u32)) -> Result<Vec<(PathBuf, RgbImage)>> {
    let paths = if paths.is_empty() {
        vec![default_media().join("photos")]
    } else {
        paths.to_vec()
    };
    let mut images = Vec::new();
    for input in expand(&paths) {
        match input {
            Input::File(p) => {
                let img = load_image(&p, DecodeLimits::default())
                    .with_context(|| format!("cannot load {}", p.display()))?;
                images.push((p, letterbox(&img, size)));
            }
            Input::Problem(p, m) => bail!("{}: {m}", p.display()),
        }
    }
    Ok(images)
}

/// `img` fitted inside `size` with its aspect ratio kept (bilinear), centred on black, so faces
/// keep their shape (bench/detect_reference.py's `letterbox` does the same for the peers).
fn letterbox(img: &RgbImage, (w, h): (u32, u32)) -> RgbImage {
    let scale = (f64::from(w) / f64::from(img.width())).min(f64::from(h) / f64::from(img.height()));
    let fit = |side: u32, limit: u32| ((f64::from(side) * scale).round() as u32).clamp(1, limit);
    let (fw, fh) = (fit(img.width(), w), fit(img.height(), h));
    let fitted = image::imageops::resize(img, fw, fh, image::imageops::FilterType::Triangle);
    let mut out = RgbImage::new(w, h);
    image::imageops::replace(
        &mut out,
        &fitted,
        i64::from((w - fw) / 2),
        i64::from((h - fh) / 2),
    );
    out
}

fn detect(a: DetectArgs) -> Result<Outcome> {
    let images = load_images(&a.paths, a.size)?;
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    let yunet = YunetSettings::default();
    // YuNet as it searches video frames: the picture shrunk towards `frame_max_side`.
    let yunet_frames = YunetSettings {
        max_side: yunet.frame_max_side,
        ..yunet
    };
    for (name, backend) in [
        ("haar", DetectorBackend::Haar(HaarSettings::default())),
        ("mtcnn", DetectorBackend::Mtcnn(MtcnnSettings::default())),
        ("yunet", DetectorBackend::Yunet(yunet)),
        ("yunet-frames", DetectorBackend::Yunet(yunet_frames)),
    ] {
        let detector = DetectorConfig {
            backend,
            ..DetectorConfig::default()
        }
        .build()?;
        for threads in [1, all] {
            let faces = std::sync::atomic::AtomicUsize::new(0);
            let (secs, runs) = pool(threads)?.install(|| {
                time_it(a.seconds, || {
                    let n: usize = images
                        .iter()
                        .map(|(_, img)| detector.detect(img).len())
                        .sum();
                    faces.store(n, std::sync::atomic::Ordering::Relaxed);
                })
            });
            let per = secs / images.len() as f64;
            rows.push(Row {
                name: format!(
                    "{name} ({} faces in {} images)",
                    faces.load(std::sync::atomic::Ordering::Relaxed),
                    images.len()
                ),
                threads,
                ms_per_item: per * 1e3,
                items_per_second: 1.0 / per,
                runs,
            });
        }
    }
    print_rows(
        &rows,
        "ms/image",
        "images/s",
        a.json,
        &format!("face detection at {}x{}", a.size.0, a.size.1),
    )?;
    Ok(Outcome::Success)
}

/// A model to time, with what it is called in the table.
struct Timed {
    name: String,
    classifier: Classifier,
}

impl Timed {
    fn load(path: Option<&Path>) -> Result<Self> {
        let classifier = Classifier::load(&ModelSource::resolve(path)?)?;
        let config = classifier.config();
        let name = match path {
            Some(p) => p.display().to_string(),
            None => "built-in model".into(),
        };
        let cost = emotrack::classify::cost::multiply_adds(
            &config.architecture,
            config.input_size as usize,
            config.classes.len(),
        )
        .map(|n| format!(", {:.1} M multiply-adds per face", n as f64 / 1e6))
        .unwrap_or_default();
        Ok(Self {
            name: format!("{name}{cost}"),
            classifier,
        })
    }
}

fn classify(a: ClassifyArgs) -> Result<Outcome> {
    let model = Timed::load(a.model.as_deref())?;
    let baseline = match &a.baseline {
        Some(path) => Some(Timed::load(path.as_deref())?),
        None => None,
    };
    if let Some(b) = &baseline
        && b.classifier.input_size() != model.classifier.input_size()
    {
        bail!("the baseline takes another input size than the model");
    }
    let classifier = &model.classifier;
    // Real faces: crops of the example photo's faces, repeated to fill a batch.
    let photo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/photos/linzaer_imgs_2.jpg");
    let crops: Vec<GrayImage> = match load_image(&photo, DecodeLimits::default()) {
        Ok(img) => {
            let dets = DetectorConfig {
                backend: DetectorBackend::Haar(HaarSettings::default()),
                ..DetectorConfig::default()
            }
            .build()
            .map(|d| d.detect(&img))
            .unwrap_or_default();
            let s = CropSettings {
                size: classifier.input_size(),
                ..CropSettings::default()
            };
            dets.iter().map(|d| face_crop(&img, d, &s)).collect()
        }
        Err(_) => Vec::new(),
    };
    let crops = if crops.is_empty() {
        vec![GrayImage::from_pixel(
            classifier.input_size(),
            classifier.input_size(),
            image::Luma([128]),
        )]
    } else {
        crops
    };
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for &batch in &a.batch {
        if batch == 0 {
            bail!("batch sizes must be at least 1");
        }
        let input: Vec<GrayImage> = crops.iter().cycle().take(batch).cloned().collect();
        for threads in [1, all] {
            for (role, timed) in [("model", Some(&model)), ("baseline", baseline.as_ref())] {
                let Some(timed) = timed else { continue };
                let (secs, runs) = pool(threads)?.install(|| {
                    // `classify` splits a batch across the pool's threads itself.
                    time_it(a.seconds, || {
                        std::hint::black_box(timed.classifier.classify(&input));
                    })
                });
                let per = secs / batch as f64;
                let name = if baseline.is_some() {
                    format!("{role} batch {batch}")
                } else {
                    format!("classify batch {batch}")
                };
                rows.push(Row {
                    name,
                    threads,
                    ms_per_item: per * 1e3,
                    items_per_second: 1.0 / per,
                    runs,
                });
            }
        }
    }
    let mut title = format!("emotion classifier: {}", model.name);
    if let Some(b) = &baseline {
        title.push_str(&format!("; baseline: {}", b.name));
    }
    print_rows(&rows, "ms/face", "faces/s", a.json, &title)?;
    Ok(Outcome::Success)
}

fn print_rows(rows: &[Row], per: &str, rate: &str, json: bool, title: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!("{title}");
    println!("| what | threads | {per} | {rate} |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.3} | {:.1} |",
            r.name, r.threads, r.ms_per_item, r.items_per_second
        );
    }
    Ok(())
}
