//! `emotrack eval`: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix (printed
//! and as PNG) and calibration of a classifier on a FER-2013 split.

use std::path::PathBuf;

use anyhow::Context;
use emotrack::{Emotion, EmotionScores};
use emotrack_train::compare::{Paired, paired};
use emotrack_train::evaluate::{Backend, LoadedModel, load_embedded, load_model};
use emotrack_train::metrics::{Metrics, evaluate_each};
use emotrack_train::tta::Tta;

use crate::outcome::Outcome;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// A readable report.
    Text,
    /// The metrics as one JSON object.
    Json,
}

/// Test-time augmentation: the views of each crop whose probabilities are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TtaArg {
    /// The crop and its mirror image (2 views).
    Flip,
    /// The centre and four corners, 44 pixels square, each resized to 48 (5 views).
    FiveCrop,
    /// The five crops and their mirror images (10 views).
    TenCrop,
}

impl From<TtaArg> for Tta {
    fn from(a: TtaArg) -> Self {
        match a {
            TtaArg::Flip => Tta::Flip,
            TtaArg::FiveCrop => Tta::FiveCrop,
            TtaArg::TenCrop => Tta::TenCrop,
        }
    }
}

/// Which implementation runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    /// The inference runtime `emotrack analyze` uses.
    Runtime,
    /// The burn training network (cross-check of the export).
    Burn,
}

/// Arguments of `emotrack eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: `<name>.safetensors` (with `<name>.json` beside it), a training run folder
    /// (its best weights), a run's `checkpoint/` folder, or an ONNX classifier `<name>.onnx`
    /// (with a sidecar `<name>.json` when it is not one of ours; see `emotrack export`)
    /// (default: the built-in model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A FER-2013 split folder with one sub-folder per emotion (e.g. `fer2013/val`).
    #[arg(long)]
    data: PathBuf,
    /// Test-time augmentation: average the probabilities of several views of each crop
    /// (`--tta` alone: flip).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "flip")]
    tta: Option<TtaArg>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Where to write the PNG of the confusion matrix and the reliability diagram (default:
    /// `confusion-<split>.png` next to the model; in the current folder for the built-in
    /// model).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Don't write the PNG.
    #[arg(long, conflicts_with = "png")]
    no_png: bool,
    /// Evaluate a stratified subset of about this many images.
    #[arg(long)]
    limit: Option<usize>,
    /// Which implementation runs the network.
    #[arg(long, value_enum, default_value_t = BackendArg::Runtime)]
    backend: BackendArg,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Also evaluate this model (`--baseline` alone: the built-in one) on the same images,
    /// with the same TTA, and compare the two image by image: the images only one of them gets
    /// right and McNemar's exact p-value (below 0.05: the difference is more than chance).
    #[arg(long, value_name = "MODEL", num_args = 0..=1)]
    baseline: Option<Option<PathBuf>>,
    /// Write each image's prediction to this JSON Lines file: its `path`, true `label`,
    /// `predicted` emotion and `probabilities` (unrounded), in the split's order.
    #[arg(long, value_name = "FILE.jsonl")]
    predictions: Option<PathBuf>,
}

/// One line of `--predictions`.
#[derive(Debug, serde::Serialize)]
struct Prediction<'a> {
    path: Option<&'a std::path::Path>,
    label: Emotion,
    predicted: Emotion,
    probabilities: &'a EmotionScores,
}

/// Writes `--predictions`: one JSON line per image of `data`.
fn write_predictions(
    path: &std::path::Path,
    data: &emotrack_train::Dataset,
    scores: &[EmotionScores],
) -> anyhow::Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating the predictions file {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (i, s) in scores.iter().enumerate() {
        let line = Prediction {
            path: data.path(i),
            label: Emotion::ALL[data.label(i)],
            predicted: s.top().0,
            probabilities: s,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing the predictions file {}", path.display()))
}

/// The model a path names, or the built-in one.
fn load(
    path: Option<&PathBuf>,
    backend: Backend,
    tta: Tta,
) -> anyhow::Result<(LoadedModel, String)> {
    Ok(match path {
        Some(path) => (
            load_model(path, backend, tta)
                .with_context(|| format!("loading model {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            load_embedded(backend, tta).context("loading the built-in model")?,
            "built-in model".to_owned(),
        ),
    })
}

/// The evaluated model against `--baseline` (the `baseline` object of `--format json`).
#[derive(Debug, serde::Serialize)]
struct Comparison {
    /// The baseline's name.
    model: String,
    accuracy: f64,
    macro_f1: f64,
    /// Images only the evaluated model gets right.
    right_only_by_model: u64,
    /// Images only the baseline gets right.
    right_only_by_baseline: u64,
    /// McNemar's exact two-sided p-value.
    mcnemar_p: f64,
}

impl Comparison {
    fn new(model: String, baseline: &Metrics, paired: Paired) -> Self {
        Self {
            model,
            accuracy: baseline.accuracy,
            macro_f1: baseline.macro_f1,
            right_only_by_model: paired.only_first,
            right_only_by_baseline: paired.only_second,
            mcnemar_p: paired.p_value,
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let tta = args.tta.map_or(Tta::None, Tta::from);
    let backend = match args.backend {
        BackendArg::Runtime => Backend::Runtime,
        BackendArg::Burn => Backend::Burn,
    };
    let (mut model, model_name) = load(args.model.as_ref(), backend, tta)?;
    let mut baseline = match &args.baseline {
        Some(path) => Some(load(path.as_ref(), backend, tta).context("loading the baseline")?),
        None => None,
    };
    let mut data = emotrack_train::load_split(&args.data)?;
    let skipped = data.skipped.len();
    for s in &data.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if let Some(n) = args.limit {
        data = data.stratified_subset(n);
    }
    let started = std::time::Instant::now();
    let evaluation = evaluate_each(&mut model, &data, args.batch);
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.predictions {
        write_predictions(path, &data, &evaluation.scores)?;
    }
    let comparison = baseline.as_mut().map(|(base, name)| {
        let base_eval = evaluate_each(base, &data, args.batch);
        let truth: Vec<usize> = (0..data.len()).map(|i| data.label(i)).collect();
        Comparison::new(
            std::mem::take(name),
            &base_eval.metrics,
            paired(&truth, &evaluation.predicted(), &base_eval.predicted()),
        )
    });
    let metrics = evaluation.metrics;
    let split = args
        .data
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let png = (!args.no_png).then(|| {
        args.png.clone().unwrap_or_else(|| {
            let dir = match &args.model {
                Some(m) if m.is_dir() => m.clone(),
                Some(m) => m.parent().map(PathBuf::from).unwrap_or_default(),
                None => PathBuf::new(),
            };
            let suffix = match tta {
                Tta::None => String::new(),
                t => format!("-tta-{}", t.name()),
            };
            dir.join(format!("confusion-{split}{suffix}.png"))
        })
    });
    let mut png_written = None;
    if let Some(path) = &png {
        let title = format!("{model_name} on {split}{}", in_parens(tta));
        match emotrack_train::plot::metrics_png(&metrics, &title, path) {
            Ok(()) => png_written = Some(path.clone()),
            Err(e) => eprintln!("warning: evaluation PNG not written: {e}"),
        }
    }
    match args.format {
        Format::Json => {
            let out = serde_json::json!({
                "model": model_name,
                "data": args.data,
                "tta": tta.name(),
                "backend": format!("{:?}", args.backend).to_lowercase(),
                "skipped_images": skipped,
                "seconds": seconds,
                "confusion_png": png_written,
                "metrics": metrics,
                "baseline": comparison,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => print_text(
            &metrics,
            &model_name,
            &args,
            tta,
            skipped,
            seconds,
            png_written.as_ref(),
        ),
    }
    if let (Format::Text, Some(c)) = (args.format, &comparison) {
        print_comparison(c);
    }
    Ok(if skipped > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}

/// ` (ten-crop TTA)` after a title, or nothing without TTA.
fn in_parens(tta: Tta) -> String {
    match tta {
        Tta::None => String::new(),
        t => format!(" ({})", t.describe()),
    }
}

fn print_text(
    m: &Metrics,
    model: &str,
    args: &Args,
    tta: Tta,
    skipped: usize,
    seconds: f64,
    png: Option<&PathBuf>,
) {
    println!(
        "model {model}  data {}{}",
        args.data.display(),
        in_parens(tta)
    );
    println!(
        "{} images{} in {seconds:.1} s",
        m.count,
        if skipped > 0 {
            format!(" ({skipped} unreadable skipped)")
        } else {
            String::new()
        }
    );
    println!(
        "accuracy {:.2}%  macro-F1 {:.4}  NLL {:.4}  ECE {:.4}",
        m.accuracy * 100.0,
        m.macro_f1,
        m.nll,
        m.ece
    );
    println!();
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for c in &m.per_class {
        println!(
            "{:<10} {:>9.3} {:>9.3} {:>9.3} {:>8}",
            c.class.name(),
            c.precision,
            c.recall,
            c.f1,
            c.support
        );
    }
    println!();
    println!("confusion (rows: true, columns: predicted)");
    print!("{:<10}", "");
    for c in &m.per_class {
        print!(" {:>8}", c.class.name());
    }
    println!();
    for (c, row) in m.per_class.iter().zip(&m.confusion) {
        print!("{:<10}", c.class.name());
        for v in row {
            print!(" {v:>8}");
        }
        println!();
    }
    if let Some(p) = png {
        println!();
        println!("confusion matrix written to {}", p.display());
    }
}

/// The text report's comparison with `--baseline`.
fn print_comparison(c: &Comparison) {
    println!();
    println!(
        "against {} on the same images: accuracy {:.2}%  macro-F1 {:.4}",
        c.model,
        c.accuracy * 100.0,
        c.macro_f1
    );
    println!(
        "right only by this model {}, only by the baseline {}: McNemar exact p = {:.3}{}",
        c.right_only_by_model,
        c.right_only_by_baseline,
        c.mcnemar_p,
        if c.mcnemar_p < 0.05 {
            " (a real difference)"
        } else {
            " (within chance)"
        }
    );
}
