//! Decoding image files safely: size limits checked from the header before any pixel is
//! decoded, and every failure named with its file.

use std::io::Cursor;
use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Upper bounds on what an image file may make us allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width or height accepted, in pixels.
    pub max_side: u32,
    /// Largest number of pixels (width x height) accepted.
    pub max_pixels: u64,
    /// Largest decoder allocation accepted, in bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// 16384 px a side, 100 megapixels and 1 GiB: above any camera's output, far below what a
    /// forged header (e.g. a PNG claiming 100000x100000) would make us allocate.
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_pixels: 100_000_000,
            max_alloc: 1 << 30,
        }
    }
}

/// Reads and decodes an image file into RGB, refusing files whose header claims more than
/// `limits` allow. The format is guessed from the content, not the extension.
pub fn load_image(path: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limits.max_alloc {
        return Err(too_large(path, &limits));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_image(&bytes, path, limits)
}

/// Decodes an image held in memory (an upload, a stream's frame) into RGB, with the checks of
/// [`load_image`]; `name` names it in errors. Sizes are checked from the header before any
/// pixel is decoded: [`Error::TooLarge`] when it claims more than `limits` allow,
/// [`Error::Image`] when it is empty, not an image or corrupt.
pub fn decode_image(bytes: &[u8], name: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let bad = |message: String| Error::image(name.to_path_buf(), message);
    if bytes.is_empty() {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| bad(format!("could not read the file: {e}")))
    };
    if reader()?.format().is_none() {
        return Err(bad(
            "not a supported image (expected JPEG, PNG, BMP, WebP, GIF or TIFF)".into(),
        ));
    }
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| bad(format!("could not decode: {e}")))?;
    if w > limits.max_side || h > limits.max_side || u64::from(w) * u64::from(h) > limits.max_pixels
    {
        return Err(too_large(name, &limits));
    }
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    let mut reader = reader()?;
    reader.limits(l);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(name, &limits),
        other => bad(format!("could not decode: {other}")),
    })?;
    Ok(decoded.to_rgb8())
}

fn too_large(name: &Path, limits: &DecodeLimits) -> Error {
    Error::too_large(
        name.to_path_buf(),
        format!(
            "the image is larger than the limit of {0}x{0} pixels, {1} megapixels, or {2} MiB to \
             decode",
            limits.max_side,
            limits.max_pixels / 1_000_000,
            limits.max_alloc >> 20
        ),
    )
    .with_hint("resize it to a few megapixels first; faces need no more")
}
