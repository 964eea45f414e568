//! `emotrack export`: writes a classifier as ONNX, or as a float16 model file, with its config
//! beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use emotrack::classify::{Classifier, EMBEDDED_ORIGIN, embedded_model};

use crate::outcome::Outcome;

/// Write the emotion classifier as ONNX (for other runtimes: onnxruntime, tract, OpenCV DNN),
/// or as a float16 model file (half the size, for shipping).
///
/// The ONNX graph takes `input` [N, 1, S, S] normalised pixels and gives `logits` [N, 7]; the
/// config written next to it as `<name>.json` holds the class order and normalisation, and
/// makes the file usable as `--model <name>.onnx` with every emotrack command. A float16 file
/// (`--safetensors`) is used as `--model <name>.safetensors` the same way.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["onnx", "safetensors"])))]
pub struct Args {
    /// Where to write the ONNX graph (must end in .onnx).
    #[arg(long, value_name = "OUT.onnx")]
    onnx: Option<PathBuf>,
    /// Where to write the model's weights in float16 (must end in .safetensors): a ResNet or
    /// Swin model file of half the size, for shipping.
    #[arg(long, value_name = "OUT.safetensors")]
    safetensors: Option<PathBuf>,
    /// The model: `<name>.safetensors` (with `<name>.json` beside it), a training run folder or
    /// a checkpoint folder (default: the built-in model).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Outcome> {
    match (&args.onnx, &args.safetensors) {
        (Some(out), _) => onnx(out, args.model.as_deref()),
        (None, Some(out)) => float16(out, args.model.as_deref()),
        (None, None) => {
            bail!("say where to write: --onnx OUT.onnx or --safetensors OUT.safetensors")
        }
    }
}

fn onnx(out: &Path, model: Option<&Path>) -> Result<Outcome> {
    need_extension(out, "onnx")?;
    let classifier = match model {
        Some(path) => {
            let (bytes, config) = emotrack_train::model_file::read(path)
                .with_context(|| format!("loading model {}", path.display()))?;
            Classifier::from_bytes(&bytes, config, path)?
        }
        None => {
            let (bytes, config) = embedded_model()?;
            Classifier::from_bytes(bytes, config, Path::new(EMBEDDED_ORIGIN))?
        }
    };
    let (bytes, config) = classifier.to_onnx()?;
    write(out, &bytes, &serde_json::to_string_pretty(&config)?)
}

fn float16(out: &Path, model: Option<&Path>) -> Result<Outcome> {
    need_extension(out, "safetensors")?;
    let Some(path) = model else {
        bail!(
            "the built-in model is float32 inside the binary; export a model file: --model \
             models/emotion.safetensors"
        );
    };
    let (bytes, mut config) = emotrack_train::model_file::float16(path)
        .with_context(|| format!("loading model {}", path.display()))?;
    // The command that made the weights (training, ensemble) stays; this one goes in the notes.
    let this = std::env::args().collect::<Vec<_>>().join(" ");
    config.provenance.notes = Some(match config.provenance.notes.take() {
        Some(notes) => format!("{notes} (`{this}`)"),
        None => format!("`{this}`"),
    });
    if config.provenance.command.is_none() {
        config.provenance.command = Some(this);
    }
    // Loading it checks the file the way every command will read it, before anything is
    // written over OUT.
    Classifier::from_bytes(&bytes, config.clone(), out)
        .context("loading the float16 model back")?;
    write(out, &bytes, &serde_json::to_string_pretty(&config)?)
}

fn need_extension(out: &Path, ext: &str) -> Result<()> {
    if out.extension().and_then(|e| e.to_str()) != Some(ext) {
        bail!(
            "{}: the output name must end in .{ext} (its config is written beside it as .json)",
            out.display()
        );
    }
    Ok(())
}

fn write(out: &Path, bytes: &[u8], json_text: &str) -> Result<Outcome> {
    let json = out.with_extension("json");
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&json, format!("{json_text}\n"))
        .with_context(|| format!("writing {}", json.display()))?;
    println!(
        "wrote {} ({:.2} MB) and {}",
        out.display(),
        bytes.len() as f64 / 1e6,
        json.display()
    );
    Ok(Outcome::Success)
}
