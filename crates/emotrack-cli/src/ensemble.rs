//! `emotrack ensemble`: combines trained classifiers into one model file whose logits are the
//! mean of theirs, or (`--average`) into one network whose weights are the mean of theirs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use emotrack_train::evaluate::{Backend, from_bytes};
use emotrack_train::metrics::evaluate;
use emotrack_train::tta::Tta;

use crate::outcome::Outcome;

/// Combine trained classifiers into one ensemble model (mean of their logits, float16).
///
/// Each member is `<name>.safetensors` (with `<name>.json` beside it), a training run folder (its
/// best weights) or a checkpoint folder, of a ResNet or a Swin (an ensemble may mix them). The
/// result is one `<name>.safetensors` + `<name>.json` that every command takes as `--model`; it
/// runs every member, so it costs their summed time. With `--average` it is one ResNet instead,
/// whose weights are the members' mean (a "model soup"): it costs one network's time, and it is
/// a good network only when the members were fine-tuned from the same start (measure it with
/// `--data`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member models (two or more).
    #[arg(required = true, num_args = 2..)]
    models: Vec<PathBuf>,
    /// Where to write the ensemble's weights (must end in .safetensors; its config is written
    /// beside it as .json).
    #[arg(long, value_name = "OUT.safetensors")]
    out: PathBuf,
    /// A FER-2013 split folder (e.g. `fer2013/val`): measure the ensemble on it and record its
    /// accuracy and macro-F1 in the config.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Average the members' weights into one network (ResNets of one layout, fine-tuned from
    /// one start; float32) instead of averaging their logits.
    #[arg(long)]
    average: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Outcome> {
    if args.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!(
            "{}: the output name must end in .safetensors (its config is written beside it as .json)",
            args.out.display()
        );
    }
    let (bytes, mut config) = if args.average {
        emotrack_train::ensemble::soup(&args.models)?
    } else {
        emotrack_train::ensemble::ensemble(&args.models)?
    };
    config.provenance.command = Some(std::env::args().collect::<Vec<_>>().join(" "));
    config.provenance.commit = crate::train::build_commit();
    // Loading it checks the file the way every command will read it, before anything is
    // written over OUT.
    let mut model = from_bytes(
        &bytes,
        config.clone(),
        &args.out,
        Backend::Runtime,
        Tta::None,
    )
    .context("loading the combined model")?;
    if let Some(data) = &args.data {
        let split = emotrack_train::load_split(data)?;
        let metrics = evaluate(&mut model, &split, 256);
        config.provenance.val_accuracy = Some(metrics.accuracy as f32);
        config.provenance.val_macro_f1 = Some(metrics.macro_f1 as f32);
        println!(
            "{}: accuracy {:.2}%, macro-F1 {:.2}%",
            data.display(),
            metrics.accuracy * 100.0,
            metrics.macro_f1 * 100.0,
        );
    }
    let json = args.out.with_extension("json");
    emotrack_train::checkpoint::write_atomic(&args.out, &bytes)?;
    emotrack_train::checkpoint::write_json(&json, &config)?;
    println!(
        "wrote {} ({:.2} MB, {} {}) and {}",
        args.out.display(),
        bytes.len() as f64 / 1e6,
        args.models.len(),
        if args.average {
            "models averaged"
        } else {
            "members"
        },
        json.display()
    );
    println!(
        "its softmax temperature is 1 (the members' do not carry over): fit one with \
         `emotrack calibrate --model {} --data VAL --write`",
        args.out.display()
    );
    Ok(Outcome::Success)
}
