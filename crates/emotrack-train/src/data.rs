//! FER-2013 in folder layout (`<split>/<emotion>/*.jpg`), decoded once into memory.
//!
//! 28,709 training images of 48x48 gray pixels take 66 MB, so the whole split lives in one
//! `Vec<u8>` and augmentation reads from it without touching the disk again.

use std::path::{Path, PathBuf};

use emotrack::Emotion;
use emotrack::imgproc::DecodeLimits;
use rayon::prelude::*;

use crate::error::DataError;

/// Side of FER-2013 images in pixels.
pub const IMAGE_SIDE: usize = 48;
/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// File extensions read as images (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

/// An image that could not be used, with the reason.
#[derive(Debug, Clone)]
pub struct SkippedImage {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// One split of FER-2013, fully decoded: `len()` gray 48x48 images with their labels.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Row-major pixels, `IMAGE_PIXELS` per image, images back to back.
    pixels: Vec<u8>,
    /// Class index of each image (position in [`Emotion::ALL`]).
    labels: Vec<u8>,
    /// The file of each image, when it was read from one (empty for [`Dataset::from_parts`]).
    paths: Vec<PathBuf>,
    /// Files that could not be decoded (they are not in the dataset).
    pub skipped: Vec<SkippedImage>,
}

impl Dataset {
    /// Builds a dataset from decoded pixels and labels (`pixels.len() == labels.len() * IMAGE_PIXELS`).
    pub fn from_parts(pixels: Vec<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * IMAGE_PIXELS,
            "one 48x48 image per label"
        );
        Self {
            pixels,
            labels,
            paths: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// The class index of image `i`.
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    /// The file image `i` was read from, when it came from one.
    pub fn path(&self, i: usize) -> Option<&Path> {
        self.paths.get(i).map(PathBuf::as_path)
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Images per class, in [`Emotion::ALL`] order.
    pub fn class_counts(&self) -> [usize; Emotion::COUNT] {
        let mut counts = [0; Emotion::COUNT];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// A stratified subset: about `n` images keeping the class proportions (at least one image
    /// per non-empty class), taken deterministically (every k-th image of each class).
    pub fn stratified_subset(&self, n: usize) -> Dataset {
        if n >= self.len() {
            return self.clone();
        }
        let mut pixels = Vec::with_capacity(n * IMAGE_PIXELS);
        let mut labels = Vec::with_capacity(n);
        let mut paths = Vec::new();
        for class in 0..Emotion::COUNT {
            let idx: Vec<usize> = (0..self.len())
                .filter(|&i| self.label(i) == class)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let take = ((idx.len() * n) / self.len()).max(1);
            let step = idx.len() as f64 / take as f64;
            for k in 0..take {
                let i = idx[(k as f64 * step) as usize];
                pixels.extend_from_slice(self.image(i));
                labels.push(self.labels[i]);
                paths.extend(self.path(i).map(Path::to_path_buf));
            }
        }
        Dataset {
            pixels,
            labels,
            paths,
            skipped: Vec::new(),
        }
    }
}

/// Loads one split folder (`.../fer2013/train`): exactly the seven emotion sub-folders, each
/// holding images. Images that are not 48x48 are resized (area-averaged) to 48x48, colour
/// images are converted to gray; files that cannot be decoded are skipped and listed in
/// [`Dataset::skipped`]. Decoding runs in parallel.
pub fn load_split(dir: &Path) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingFolder(dir.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let mut class_dirs: Vec<Option<PathBuf>> = vec![None; Emotion::COUNT];
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let path = entry.path();
        if !path.is_dir() {
            continue; // stray files (README, .DS_Store) are not classes
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match Emotion::from_name(&name) {
            Some(e) => class_dirs[e.index()] = Some(path),
            None => {
                return Err(DataError::UnknownClass {
                    dir: dir.to_path_buf(),
                    name,
                });
            }
        }
    }
    let mut files: Vec<(PathBuf, u8)> = Vec::new();
    for (class, class_dir) in class_dirs.iter().enumerate() {
        let Some(class_dir) = class_dir else {
            return Err(DataError::MissingClass {
                dir: dir.to_path_buf(),
                class: Emotion::ALL[class].name().to_string(),
            });
        };
        let mut class_files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map_err(io(class_dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(class_dir))?
            .into_iter()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
            })
            .collect();
        // Sorted so that image order (and hence shuffling with a seed) is reproducible.
        class_files.sort();
        let label = u8::try_from(class).unwrap_or(u8::MAX);
        files.extend(class_files.into_iter().map(|p| (p, label)));
    }
    let decoded: Vec<Result<Vec<u8>, String>> = files
        .par_iter()
        .map(|(path, _)| decode_gray48(path))
        .collect();
    let mut data = Dataset::default();
    data.pixels.reserve(files.len() * IMAGE_PIXELS);
    for ((path, label), result) in files.into_iter().zip(decoded) {
        match result {
            Ok(px) => {
                data.pixels.extend_from_slice(&px);
                data.labels.push(label);
                data.paths.push(path);
            }
            Err(reason) => data.skipped.push(SkippedImage { path, reason }),
        }
    }
    if data.is_empty() {
        return Err(DataError::EmptySplit(dir.to_path_buf()));
    }
    Ok(data)
}

/// Decodes one file to 48x48 gray pixels, upright and within the library's decode limits, as
/// `emotrack analyze` reads it.
fn decode_gray48(path: &Path) -> Result<Vec<u8>, String> {
    let rgb =
        emotrack::imgproc::load_image(path, DecodeLimits::default()).map_err(|e| e.detail())?;
    let img = image::DynamicImage::ImageRgb8(rgb).into_luma8();
    Ok(emotrack::imgproc::crop_as_input(img, IMAGE_SIDE as u32).into_raw())
}
