//! Turning the paths a user typed (files, folders, globs) into a list of image files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// File extensions treated as images when walking folders (files named explicitly are always
/// tried, whatever their extension).
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff", "jfif",
];

/// One input: a file to analyse, or a problem with what the user typed.
#[derive(Debug)]
pub enum Input {
    /// A file to analyse.
    File(PathBuf),
    /// A path that names nothing usable (missing, empty folder, glob without matches).
    Problem(PathBuf, String),
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image_name(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands files, folders (recursively, image extensions only, sorted) and glob patterns.
pub fn expand(paths: &[PathBuf]) -> Vec<Input> {
    let mut inputs = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if !path.exists() && text.contains(['*', '?', '[']) {
            match glob::glob(&text) {
                Ok(matches) => {
                    let found: Vec<_> = matches
                        .filter_map(|m| m.ok())
                        .filter(|p| p.is_file())
                        .collect();
                    if found.is_empty() {
                        inputs.push(Input::Problem(
                            path.clone(),
                            "the pattern matches no file".into(),
                        ));
                    }
                    inputs.extend(found.into_iter().map(Input::File));
                }
                Err(e) => inputs.push(Input::Problem(
                    path.clone(),
                    format!("bad glob pattern: {e}"),
                )),
            }
        } else if path.is_dir() {
            let mut found = Vec::new();
            match walk(path, &mut found) {
                Err(e) => inputs.push(Input::Problem(path.clone(), format!("{e:#}"))),
                Ok(()) if found.is_empty() => inputs.push(Input::Problem(
                    path.clone(),
                    format!(
                        "the folder holds no image files ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                )),
                Ok(()) => inputs.extend(found.into_iter().map(Input::File)),
            }
        } else if path.exists() {
            inputs.push(Input::File(path.clone()));
        } else {
            inputs.push(Input::Problem(
                path.clone(),
                "no such file or folder".into(),
            ));
        }
    }
    inputs
}

/// Fails when nothing at all was given.
pub fn require_some(paths: &[PathBuf]) -> Result<()> {
    if paths.is_empty() {
        bail!("give at least one image, folder or glob pattern");
    }
    Ok(())
}
