//! `emotrack calibrate`: fits the softmax temperature of a classifier on a FER-2013 split,
//! shows on held-out halves that it calibrates the probabilities, and stores it in the model's
//! config.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use emotrack::classify::ModelConfig;
use emotrack_train::calibrate::{
    CurvePoint, TARGET_ECE, best_ece, ece_curve, ece_noise_floor, fit_temperature, halves,
    log_spaced, logits_of, metrics_at,
};
use emotrack_train::evaluate::{Backend, load_embedded, load_model};
use emotrack_train::metrics::Metrics;
use emotrack_train::plot::{TemperatureSeries, temperature_png};
use emotrack_train::tta::Tta;
use serde::Serialize;

use crate::outcome::Outcome;

/// Arguments of `emotrack calibrate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Temperature scaling: the model's logits are divided by one number T before the softmax, which
changes how sure the probabilities are but never which emotion is on top (the accuracy stays).
T is fitted to minimise the negative log-likelihood (NLL). To show that it holds on images it
was not fitted on, the split is cut into two halves (every other image of each class); T is
fitted on each half and measured on the other. The T stored is the one fitted on the whole
split. ECE: expected calibration error over 15 confidence bins (0: a face given 70% is right
70% of the time). Even a perfectly calibrated model shows some ECE on a finite set of images,
from sampling alone: the last column simulates it (each image right with exactly its
confidence), so a measured ECE can be read against it; the very last, the lowest ECE any one
temperature gives on the images measured (fitted on them, so out of reach in practice): when
it is above a target, no temperature meets that target there. --plot draws the ECE of each
half against the temperature, with the temperature fitted on the other half, the noise floor
and the 0.03 target (issue 35): what one temperature can and cannot do.

Example:
  emotrack calibrate --model models/emotion.safetensors --data ../shared/datasets/fer2013/val --write")]
pub struct Args {
    /// The model: `<name>.safetensors` or `<name>.onnx` with `<name>.json` beside it (default:
    /// the built-in model, which can be measured but not rewritten).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A FER-2013 split folder with one sub-folder per emotion (e.g. `fer2013/val`).
    #[arg(long)]
    data: PathBuf,
    /// Store the temperature fitted on the whole split in the model's `<name>.json`.
    #[arg(long)]
    write: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw the ECE of each half against the temperature into this PNG (the JSON then holds
    /// the curves too).
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
}

/// Simulations behind the noise floor of the ECE.
const NOISE_DRAWS: usize = 200;
/// The temperatures of `--plot`: from half to one and a half times 1 (the untempered logits),
/// log-spaced, wide enough to show the ECE climb on both sides of every fit so far (0.83-0.87).
const CURVE_TEMPERATURES: std::ops::RangeInclusive<f32> = 0.5..=1.5;
/// Points on each curve (each costs one pass over the half's logits and its noise floor).
const CURVE_POINTS: usize = 41;
/// Simulations behind each point's noise floor: fewer than the table's, as 41 points of a
/// smooth curve average out what one point's simulation would not.
const CURVE_NOISE_DRAWS: usize = 50;

/// The ECE of one half across temperatures, and at the temperature fitted on the other.
#[derive(Debug, Serialize)]
struct Curve {
    measured_on: String,
    /// Fitted on the other half: the table's row for this half.
    held_out: CurvePoint,
    points: Vec<CurvePoint>,
}

/// One fit and where it was measured.
#[derive(Debug, Serialize)]
struct Row {
    fitted_on: String,
    measured_on: String,
    temperature: f32,
    images: u64,
    accuracy_before: f64,
    accuracy_after: f64,
    nll_before: f64,
    nll_after: f64,
    ece_before: f64,
    ece_after: f64,
    /// The ECE a perfectly calibrated model would show on these images (sampling alone).
    ece_noise_floor: f64,
    /// The lowest ECE any temperature gives on these images (fitted on them), and which.
    best_ece: f64,
    best_ece_temperature: f32,
}

impl Row {
    fn new(
        fitted_on: &str,
        measured_on: &str,
        t: f32,
        [before, after]: [&Metrics; 2],
        ece_noise_floor: f64,
        (best_ece_temperature, best_ece): (f32, f64),
    ) -> Self {
        Self {
            fitted_on: fitted_on.into(),
            measured_on: measured_on.into(),
            temperature: t,
            images: after.count,
            accuracy_before: before.accuracy,
            accuracy_after: after.accuracy,
            nll_before: before.nll,
            nll_after: after.nll,
            ece_before: before.ece,
            ece_after: after.ece,
            ece_noise_floor,
            best_ece,
            best_ece_temperature,
        }
    }
}

/// The config file beside a model file, which `--write` rewrites.
fn config_path(model: &Path) -> anyhow::Result<PathBuf> {
    match model.extension().and_then(|e| e.to_str()) {
        Some("safetensors" | "onnx") => Ok(model.with_extension("json")),
        _ => bail!(
            "--write needs a model file (`<name>.safetensors` or `<name>.onnx`), not {}; \
             export a run folder's model.safetensors and calibrate that",
            model.display()
        ),
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.write && args.model.is_none() {
        bail!(
            "--write needs --model: the built-in model cannot be rewritten (pass \
             models/emotion.safetensors to change the one the next build embeds)"
        );
    }
    let loaded = match &args.model {
        Some(p) => load_model(p, Backend::Runtime, Tta::None)
            .with_context(|| format!("loading model {}", p.display()))?,
        None => load_embedded(Backend::Runtime, Tta::None).context("loading the built-in model")?,
    };
    let current = loaded.config.temperature;
    let classifier = loaded
        .into_runtime()
        .context("the runtime backend gives a classifier")?;
    let data = emotrack_train::load_split(&args.data)?;
    for s in &data.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if data.is_empty() {
        bail!("{} holds no images", args.data.display());
    }
    // Logits at the current temperature; a fitted factor multiplies it.
    let logits = logits_of(&classifier, &data, 256);
    let labels: Vec<usize> = (0..data.len()).map(|i| data.label(i)).collect();
    let [a, b] = halves(&labels);
    let all: Vec<usize> = (0..labels.len()).collect();
    let mut rows = Vec::new();
    let mut factors = Vec::new();
    for (fit_name, fit, measure_name, measure) in [
        ("half A", &a, "half B", &b),
        ("half B", &b, "half A", &a),
        ("all", &all, "all", &all),
    ] {
        let factor = fit_temperature(&logits, &labels, fit);
        factors.push(factor);
        let before = metrics_at(&logits, &labels, measure, 1.0);
        let after = metrics_at(&logits, &labels, measure, factor);
        let floor = ece_noise_floor(&logits, measure, factor, NOISE_DRAWS);
        rows.push(Row::new(
            fit_name,
            measure_name,
            current * factor,
            [&before, &after],
            floor,
            {
                let (t, ece) = best_ece(&logits, &labels, measure);
                (current * t, ece)
            },
        ));
    }
    let fitted = rows.last().map_or(current, |r| r.temperature);
    let curves = args.plot.as_ref().map(|_| {
        // The logits are already divided by `current`: a factor f on them is T = current * f.
        let absolute = |p: CurvePoint| CurvePoint {
            temperature: current * p.temperature,
            ..p
        };
        let grid: Vec<f32> = log_spaced(CURVE_TEMPERATURES, CURVE_POINTS)
            .into_iter()
            .map(|t| t / current)
            .collect();
        let curve = |name: &str, items: &[usize], factor: f32| Curve {
            measured_on: name.into(),
            held_out: absolute(ece_curve(&logits, &labels, items, &[factor], NOISE_DRAWS)[0]),
            points: ece_curve(&logits, &labels, items, &grid, CURVE_NOISE_DRAWS)
                .into_iter()
                .map(absolute)
                .collect(),
        };
        // factors[0] was fitted on half A, factors[1] on half B.
        [
            curve("half A", &a, factors[1]),
            curve("half B", &b, factors[0]),
        ]
    });
    if let (Some(path), Some(curves)) = (&args.plot, &curves) {
        let accuracy = |items: &[usize]| metrics_at(&logits, &labels, items, 1.0).accuracy;
        let series = [(&curves[0], &a), (&curves[1], &b)].map(|(c, items)| TemperatureSeries {
            name: &c.measured_on,
            curve: &c.points,
            held_out: c.held_out,
            accuracy: accuracy(items),
            images: items.len() as u64,
        });
        temperature_png(&series, TARGET_ECE, current, path)?;
    }
    let written = match (&args.model, args.write) {
        (Some(model), true) => Some(write_temperature(model, fitted)?),
        _ => None,
    };
    if args.json {
        let out = serde_json::json!({
            "model": args.model,
            "data": args.data,
            "temperature_before": current,
            "fits": rows,
            "written": written,
            "curves": curves,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Success);
    }
    println!(
        "{} on {} ({} images, halves of {} and {}); temperature now {current}",
        args.model
            .as_ref()
            .map_or_else(|| "built-in model".to_owned(), |p| p.display().to_string()),
        args.data.display(),
        labels.len(),
        a.len(),
        b.len()
    );
    println!(
        "| fitted on | measured on | temperature | accuracy before / after | NLL before / after | ECE before / after | ECE if perfectly calibrated | lowest ECE of any temperature |"
    );
    println!("|---|---|---:|---|---|---|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.4} | {:.2}% / {:.2}% | {:.4} / {:.4} | {:.4} / {:.4} | {:.4} | {:.4} (T {:.2}) |",
            r.fitted_on,
            r.measured_on,
            r.temperature,
            r.accuracy_before * 100.0,
            r.accuracy_after * 100.0,
            r.nll_before,
            r.nll_after,
            r.ece_before,
            r.ece_after,
            r.ece_noise_floor,
            r.best_ece,
            r.best_ece_temperature
        );
    }
    if let Some(path) = &args.plot {
        println!(
            "drew the ECE of each half against T = {:.2}-{:.2} to {}",
            CURVE_TEMPERATURES.start(),
            CURVE_TEMPERATURES.end(),
            path.display()
        );
    }
    match written {
        Some(path) => println!("wrote temperature {fitted:.4} to {}", path.display()),
        None => println!("(--write stores temperature {fitted:.4} in the model's config)"),
    }
    Ok(Outcome::Success)
}

/// Sets the temperature in the model's config file, keeping everything else.
fn write_temperature(model: &Path, t: f32) -> anyhow::Result<PathBuf> {
    let path = config_path(model)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut config: ModelConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a model config", path.display()))?;
    // Four decimals: the NLL is flat around its minimum, and the file stays readable.
    config.temperature = (t * 1e4).round() / 1e4;
    config.validate()?;
    let mut json = serde_json::to_string_pretty(&config)?;
    json.push('\n');
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
