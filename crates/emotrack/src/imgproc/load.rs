//! Decoding image files safely: size limits checked from the header before any pixel is
//! decoded, and every failure named with its file.

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::tiff_palette;
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
/// [`load_image`], turned upright as its EXIF orientation says; `name` names it in errors. Sizes are checked from the header before any
/// pixel is decoded: [`Error::TooLarge`] when it claims more than `limits` allow,
/// [`Error::Image`] when it is empty, not an image or corrupt.
pub fn decode_image(bytes: &[u8], name: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let bad = |message: String| Error::image(name.to_path_buf(), message);
    if bytes.is_empty() {
        return Err(bad("the file is empty (0 bytes)".into()));
    }
    // The format is guessed once, from the content; every reader below is told it.
    let format = image::guess_format(bytes).map_err(|_| unreadable(bytes, name))?;
    let reader = || ImageReader::with_format(Cursor::new(bytes), format);
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(bad(
            "the JPEG is cut off (its data ends before the end-of-image marker)".into(),
        )
        .with_hint("send or save the whole file"));
    }
    // The pixel count, from the header, before anything is decoded. A header the decoder
    // cannot read on its own (a PNG cut before its first data chunk) is left to the decode
    // below, which reports it.
    let check_size = |(w, h): (u32, u32)| {
        if w > limits.max_side
            || h > limits.max_side
            || u64::from(w) * u64::from(h) > limits.max_pixels
        {
            return Err(too_large(name, &limits));
        }
        Ok(())
    };
    if let Ok(size) = reader().into_dimensions() {
        check_size(size)?;
    }
    if format == ImageFormat::Tiff
        && let Some(size) = tiff_palette::palette_size(bytes)
    {
        check_size(size)?;
        let (pixels, orientation) = tiff_palette::decode(bytes, limits.max_alloc).map_err(bad)?;
        let mut upright = DynamicImage::ImageRgb8(pixels);
        upright.apply_orientation(orientation);
        return Ok(upright.into_rgb8());
    }
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    let failed = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => too_large(name, &limits),
        image::ImageError::Unsupported(_) if unreadable_kind(bytes).is_some() => {
            unreadable(bytes, name)
        }
        other => bad(format!("could not decode: {other}")),
    };
    let mut reader = reader();
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(failed)?;
    // Phones store portrait photos sideways with an EXIF orientation; faces and boxes must refer
    // to the picture as it is shown. An unreadable orientation leaves the pixels as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut decoded = DynamicImage::from_decoder(decoder).map_err(failed)?;
    decoded.apply_orientation(orientation);
    Ok(decoded.to_rgb8())
}

/// What a file the decoders do not read is, from its magic bytes (`infer`), when it is
/// something people commonly send for a photo; `None` for the formats read here (whose decoder
/// errors say more) and for unknown bytes.
fn unreadable_kind(bytes: &[u8]) -> Option<infer::Type> {
    const READ: [&str; 6] = [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
    ];
    infer::get(bytes).filter(|kind| {
        !READ.contains(&kind.mime_type())
            && matches!(
                kind.matcher_type(),
                infer::MatcherType::Image | infer::MatcherType::Video | infer::MatcherType::Doc
            )
            || kind.mime_type() == "application/pdf"
    })
}

/// The error for a file no decoder here reads: which format it is and how to convert it, when
/// its magic bytes say; the formats that are read, otherwise.
fn unreadable(bytes: &[u8], name: &Path) -> Error {
    let error = |what: String, hint: &str| Error::image(name.to_path_buf(), what).with_hint(hint);
    let Some(kind) = unreadable_kind(bytes) else {
        return error(
            "not a supported image (expected JPEG, PNG, BMP, WebP, GIF or TIFF)".into(),
            "convert it to JPEG or PNG first",
        );
    };
    let cannot = |format: &str| format!("this is {format}, which emotrack cannot decode");
    match kind.mime_type() {
        "image/heif" | "image/heic" | "image/heif-sequence" | "image/heic-sequence" => error(
            cannot("a HEIC/HEIF photo (the iPhone camera's default format)"),
            "convert it to JPEG first: `heif-convert photo.heic photo.jpg` (libheif-examples), \
             or File > Export in Preview or Photos on a Mac; to have the iPhone save JPEGs, set \
             Settings > Camera > Formats to Most Compatible",
        ),
        "image/avif" => error(
            cannot("an AVIF image"),
            "convert it to PNG or JPEG first, e.g. `ffmpeg -i photo.avif photo.png`",
        ),
        "image/jxl" => error(
            cannot("a JPEG XL image"),
            "convert it to PNG or JPEG first, e.g. `djxl photo.jxl photo.png` (libjxl-tools)",
        ),
        mime if kind.matcher_type() == infer::MatcherType::Video => error(
            format!("this is a video ({mime}), not a photo"),
            "analyse videos with `emotrack video`, or POST them to the server's /v1/videos",
        ),
        mime if kind.matcher_type() == infer::MatcherType::Image => error(
            cannot(&format!(
                "a {} image ({mime})",
                kind.extension().to_uppercase()
            )),
            "convert it to PNG or JPEG first, e.g. `ffmpeg -i <file> photo.png`",
        ),
        mime => error(
            format!(
                "this is a {} document ({mime}), not an image",
                kind.extension().to_uppercase()
            ),
            "export the picture from it as JPEG or PNG",
        ),
    }
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

/// Whether a JPEG's main image runs to its end-of-image marker. JPEG decoders fill a cut-off
/// file's missing rows with gray and report no error, which would analyse a partial picture
/// as if it were whole. Walks the marker segments (skipping each by its length, so an EXIF
/// thumbnail's markers are not mistaken for the image's), then the entropy-coded scans (where
/// `FF` is followed by `00` or a restart marker) until `EOI`. Data after `EOI` (a motion photo's
/// video, a camera's trailer) is allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    let mut i = 2; // after SOI
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        match marker {
            0xFF => i += 1, // fill byte
            EOI => return true,
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            _ => {
                let Some(len) = bytes
                    .get(i + 2..i + 4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return false;
                };
                i += 2 + len;
                if marker == SOS {
                    // Entropy-coded data up to the next marker that is not a stuffed byte or a
                    // restart marker.
                    while i + 1 < bytes.len()
                        && !(bytes[i] == 0xFF && !matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7))
                    {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 3) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .expect("encodes");
        out
    }

    #[test]
    fn a_whole_jpeg_is_complete_and_a_cut_one_is_not() {
        let whole = jpeg(64, 48);
        assert!(jpeg_is_complete(&whole));
        for cut in [whole.len() - 2, whole.len() / 2, 20] {
            assert!(!jpeg_is_complete(&whole[..cut]), "cut at {cut}");
        }
        let mut trailer = whole.clone();
        trailer.extend_from_slice(b"\xFF\xD8 appended video data");
        assert!(jpeg_is_complete(&trailer), "data after EOI is allowed");
    }

    #[test]
    fn a_cut_jpeg_is_an_error_not_a_gray_picture() {
        let whole = jpeg(64, 48);
        let name = Path::new("cut.jpg");
        assert!(decode_image(&whole, name, DecodeLimits::default()).is_ok());
        let e = decode_image(&whole[..whole.len() / 2], name, DecodeLimits::default())
            .expect_err("cut off");
        assert!(e.to_string().contains("cut off"), "{e}");
    }
}
