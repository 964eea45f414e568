//! `emotrack export`: writes a classifier as ONNX, with its config beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use emotrack::classify::{Classifier, EMBEDDED_ORIGIN, embedded_model};

use crate::outcome::Outcome;

/// Write the emotion classifier as ONNX, for other runtimes (onnxruntime, tract, OpenCV DNN).
///
/// The graph takes `input` [N, 1, S, S] normalised pixels and gives `logits` [N, 7]; the config
/// written next to it as `<name>.json` holds the class order and normalisation, and makes the
/// file usable as `--model <name>.onnx` with every emotrack command.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the ONNX graph (must end in .onnx).
    #[arg(long, value_name = "OUT.onnx")]
    onnx: PathBuf,
    /// The model: `<name>.safetensors` (with `<name>.json` beside it), a training run folder or
    /// a checkpoint folder (default: the built-in model).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Outcome> {
    if args.onnx.extension().and_then(|e| e.to_str()) != Some("onnx") {
        bail!(
            "{}: the output name must end in .onnx (its config is written beside it as .json)",
            args.onnx.display()
        );
    }
    let classifier = match &args.model {
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
    let json = args.onnx.with_extension("json");
    std::fs::write(&args.onnx, &bytes)
        .with_context(|| format!("writing {}", args.onnx.display()))?;
    std::fs::write(&json, serde_json::to_string_pretty(&config)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    println!(
        "wrote {} ({:.1} MB) and {}",
        args.onnx.display(),
        bytes.len() as f64 / 1e6,
        json.display()
    );
    Ok(Outcome::Success)
}
