//! `emotrack analyze PATH...`: faces, emotions and vibes for photos, folders and globs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::ValueEnum;
use emotrack::annotate::Annotator;
use emotrack::{AnalyzedFace, Analyzer, Emotion};
use rayon::prelude::*;
use serde::Serialize;

use crate::inputs::{Input, expand, require_some};
use crate::options::AnalyzerArgs;
use crate::outcome::Outcome;
use crate::progress::progress_bar;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// One JSON array of images: `{"path","width","height","faces":[...]}`, each face
    /// `{"box","landmarks","detector_score","probabilities":{"angry",...},"label",
    /// "confidence","vibe"}` (the shape `emotrack video --jsonl` uses too).
    Json,
    /// One JSON object per image per line (as in `json`).
    Jsonl,
    /// One CSV row per face.
    Csv,
}

/// Arguments of `emotrack analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image files, folders (searched recursively) or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write annotated copies (boxes, label, top-three bars, vibe) into this folder as
    /// `<name>.emotrack.jpg`; originals are never overwritten.
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

/// The result for one input path.
#[derive(Debug, Serialize)]
struct ImageReport {
    path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faces: Option<Vec<AnalyzedFace>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Outcome> {
    require_some(&args.paths)?;
    let analyzer =
        Analyzer::new(args.analyzer.to_config()?).context("cannot set up the analyzer")?;
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let inputs = expand(&args.paths);
    let files: Vec<&Path> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::File(p) => Some(p.as_path()),
            Input::Problem(..) => None,
        })
        .collect();
    let bar = progress_bar(Some(files.len() as u64), "images");
    let annotator = Annotator::new();
    let used_names = Mutex::new(std::collections::HashSet::new());
    let mut results: Vec<ImageReport> = files
        .par_iter()
        .map(|path| {
            let report = analyze_one(
                &analyzer,
                path,
                args.annotate.as_deref(),
                &annotator,
                &used_names,
            );
            bar.inc(1);
            report
        })
        .collect();
    bar.finish_and_clear();
    for input in &inputs {
        if let Input::Problem(path, message) = input {
            results.push(ImageReport {
                path: path.clone(),
                width: None,
                height: None,
                faces: None,
                error: Some(message.clone()),
            });
        }
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    for r in &results {
        if let Some(e) = &r.error {
            eprintln!("error: {}: {e}", r.path.display());
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_report(&mut out, args.format, &results).context("cannot write the results")?;
    out.flush().ok();
    if failed > 0 {
        eprintln!(
            "{failed} of {} inputs failed; the others were analysed",
            results.len()
        );
        Ok(Outcome::SomeFailed)
    } else {
        Ok(Outcome::Success)
    }
}

fn analyze_one(
    analyzer: &Analyzer,
    path: &Path,
    annotate: Option<&Path>,
    annotator: &Annotator,
    used_names: &Mutex<std::collections::HashSet<PathBuf>>,
) -> ImageReport {
    let mut report = ImageReport {
        path: path.to_path_buf(),
        width: None,
        height: None,
        faces: None,
        error: None,
    };
    let image = match analyzer.load(path) {
        Ok(image) => image,
        Err(e) => {
            // The report names the file already: the error's own words, without it.
            report.error = Some(e.detail());
            return report;
        }
    };
    report.width = Some(image.width());
    report.height = Some(image.height());
    let faces = analyzer.analyze(&image);
    if let Some(dir) = annotate {
        let mut canvas = image;
        let overlays: Vec<_> = faces.iter().map(AnalyzedFace::overlay).collect();
        annotator.draw(&mut canvas, &overlays);
        let target = annotated_name(dir, path, used_names);
        if let Err(e) = canvas.save(&target) {
            report.error = Some(format!(
                "cannot write the annotated image {}: {e}",
                target.display()
            ));
        }
    }
    report.faces = Some(faces);
    report
}

/// `<dir>/<stem>.emotrack.jpg`, with `-2`, `-3`, ... when two inputs share a stem.
fn annotated_name(
    dir: &Path,
    input: &Path,
    used: &Mutex<std::collections::HashSet<PathBuf>>,
) -> PathBuf {
    let stem = input
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    let mut used = used
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut n = 1;
    loop {
        let name = if n == 1 {
            format!("{stem}.emotrack.jpg")
        } else {
            format!("{stem}-{n}.emotrack.jpg")
        };
        let candidate = dir.join(name);
        if used.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

fn write_report(out: &mut impl Write, format: Format, results: &[ImageReport]) -> Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, results)?;
            writeln!(out)?;
        }
        Format::Jsonl => {
            for r in results {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            let names: Vec<_> = Emotion::ALL.iter().map(|e| e.name()).collect();
            writeln!(
                out,
                "path,face,x,y,w,h,detector_score,emotion,confidence,{},vibe",
                names.join(",")
            )?;
            for r in results {
                for (i, f) in r.faces.iter().flatten().enumerate() {
                    let probs: Vec<_> = f.scores.0.iter().map(|p| format!("{p:.4}")).collect();
                    writeln!(
                        out,
                        "{},{i},{:.1},{:.1},{:.1},{:.1},{:.4},{},{:.4},{},{}",
                        csv_field(&r.path.display().to_string()),
                        f.bbox.x,
                        f.bbox.y,
                        f.bbox.w,
                        f.bbox.h,
                        f.detector_score,
                        f.emotion,
                        f.confidence,
                        probs.join(","),
                        csv_field(&f.vibe)
                    )?;
                }
            }
        }
        Format::Table => {
            for r in results {
                let Some(faces) = &r.faces else { continue };
                let size = r
                    .width
                    .zip(r.height)
                    .map(|(w, h)| format!(" ({w}x{h})"))
                    .unwrap_or_default();
                let n = faces.len();
                writeln!(
                    out,
                    "{}{size}: {n} face{}",
                    r.path.display(),
                    if n == 1 { "" } else { "s" }
                )?;
                if n > 0 {
                    writeln!(
                        out,
                        "  {:>3}  {:<22} {:<9} {:>5}  {:<33}  vibe",
                        "#", "box (x,y,w,h)", "emotion", "prob", "runner-up"
                    )?;
                }
                for (i, f) in faces.iter().enumerate() {
                    let b = f.bbox;
                    let ranked = f.scores.ranked();
                    let others: Vec<_> = ranked[1..3]
                        .iter()
                        .map(|(e, p)| format!("{e} {:.0}%", p * 100.0))
                        .collect();
                    writeln!(
                        out,
                        "  {:>3}  {:<22} {:<9} {:>4.0}%  {:<33}  {}",
                        i + 1,
                        format!("{:.0},{:.0},{:.0},{:.0}", b.x, b.y, b.w, b.h),
                        f.emotion.name(),
                        f.confidence * 100.0,
                        others.join(", "),
                        f.vibe
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
