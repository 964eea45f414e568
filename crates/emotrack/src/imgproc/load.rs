//! Decoding image files safely: size limits checked from the header before any pixel is
//! decoded, and every failure named with its file.

use std::io::BufReader;
use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Upper bounds on what an image file may make us allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width or height accepted, in pixels.
    pub max_side: u32,
    /// Largest decoder allocation accepted, in bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// 16384 px a side and 1 GiB: above any camera's output, far below what a forged header
    /// (e.g. a PNG claiming 100000x100000) would make us allocate.
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_alloc: 1 << 30,
        }
    }
}

/// Reads and decodes an image file into RGB, refusing files whose header claims more than
/// `limits` allow. The format is guessed from the content, not the extension.
pub fn load_image(path: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let bad = |message: String| Error::image(path.to_path_buf(), message);
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| bad(format!("could not read the file: {e}")))?;
    if reader.format().is_none() {
        return Err(bad(
            "not a supported image (expected JPEG, PNG, BMP, WebP, GIF or TIFF)".into(),
        ));
    }
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => bad(format!(
            "the image is larger than the {0}x{0} pixel limit (or needs more than {1} MiB to decode)",
            limits.max_side,
            limits.max_alloc >> 20
        )),
        other => bad(format!("could not decode: {other}")),
    })?;
    Ok(decoded.to_rgb8())
}
