//! Palette ("RGB Palette") TIFFs, which classic expression datasets (JAFFE among them) ship.
//!
//! The `tiff` crate reads their tags but refuses their pixels (its `ColorMap` support is a TODO
//! in 0.11), and no other well-kept pure-Rust decoder reads them. So the file's
//! `PhotometricInterpretation` is rewritten, in a copy in memory, from palette to gray: the
//! `tiff` crate then decodes the pixel indices (with any compression it supports), and the
//! `ColorMap` tag it reads maps them to colours. Only that one 2-byte value of the first image
//! directory is touched; everything else is the `tiff` crate's.

use std::io::Cursor;

use image::RgbImage;
use image::metadata::Orientation;
use tiff::TiffError;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

/// `PhotometricInterpretation` values.
const BLACK_IS_ZERO: u16 = 1;
const RGB_PALETTE: u16 = 3;

/// Why a palette TIFF could not be read, as the sentence the user sees.
pub(crate) type Problem = String;

/// The width and height of a TIFF whose first image is palette-coloured, from its header;
/// `None` for any other file.
pub(crate) fn palette_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut decoder = Decoder::new(Cursor::new(bytes)).ok()?;
    let photometric = decoder
        .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
        .ok()??;
    (photometric == RGB_PALETTE)
        .then(|| decoder.dimensions().ok())
        .flatten()
}

/// Decodes a palette TIFF's first image into RGB, with its orientation tag, within
/// `max_alloc` bytes of decoding buffer. The caller checks the pixel count first.
pub(crate) fn decode(bytes: &[u8], max_alloc: u64) -> Result<(RgbImage, Orientation), Problem> {
    let failed = |e: TiffError| format!("could not decode the palette TIFF: {e}");
    let mut original = Decoder::new(Cursor::new(bytes)).map_err(failed)?;
    // The `tiff` crate refuses a palette image's colour type, so its bits are read from the tag.
    let bits = original
        .get_tag_u16_vec(Tag::BitsPerSample)
        .map_err(failed)?;
    if bits != [8] {
        return Err(format!(
            "palette TIFFs with {bits:?} bits per sample are not supported (one 8-bit index is)"
        ));
    }
    let (width, height) = original.dimensions().map_err(failed)?;
    let map = original.get_tag_u16_vec(Tag::ColorMap).map_err(failed)?;
    if map.len() != 3 * 256 {
        return Err(format!(
            "the palette TIFF's colour map has {} entries, where 8-bit pixels need 768",
            map.len()
        ));
    }
    let orientation = original
        .find_tag_unsigned::<u8>(Tag::Orientation)
        .ok()
        .flatten()
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);

    let gray = as_gray(bytes, original.ifd_pointer().map(|p| p.0), original.byte_order())
        .ok_or("the palette TIFF's image directory could not be rewritten (BigTIFF palettes are not supported)")?;
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = usize::try_from(max_alloc).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new(Cursor::new(gray))
        .map_err(failed)?
        .with_limits(limits);
    let DecodingResult::U8(indices) = decoder.read_image().map_err(failed)? else {
        return Err("the palette TIFF's pixels are not 8-bit".into());
    };
    let colour = |channel: usize, index: u8| (map[channel * 256 + usize::from(index)] >> 8) as u8;
    let pixels: Vec<u8> = indices
        .iter()
        .flat_map(|&i| [colour(0, i), colour(1, i), colour(2, i)])
        .collect();
    let image = RgbImage::from_raw(width, height, pixels)
        .ok_or("the palette TIFF holds fewer pixels than its size says")?;
    Ok((image, orientation))
}

/// A copy of a classic (not Big) TIFF with its first image's `PhotometricInterpretation`
/// changed from palette to gray; `None` when the directory at `ifd` is not where it says.
fn as_gray(bytes: &[u8], ifd: Option<u64>, order: tiff::tags::ByteOrder) -> Option<Vec<u8>> {
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(match order {
            tiff::tags::ByteOrder::LittleEndian => u16::from_le_bytes(b),
            tiff::tags::ByteOrder::BigEndian => u16::from_be_bytes(b),
        })
    };
    const CLASSIC: u16 = 42; // BigTIFF (43) has 20-byte entries and is not handled here
    const ENTRY: usize = 12; // tag u16, type u16, count u32, value u32
    if u16_at(2)? != CLASSIC {
        return None;
    }
    let ifd = usize::try_from(ifd?).ok()?;
    let entries = usize::from(u16_at(ifd)?);
    let value_at = (0..entries)
        .map(|i| ifd + 2 + i * ENTRY)
        .find(|&entry| u16_at(entry) == Some(Tag::PhotometricInterpretation.to_u16()))?
        + 8;
    if u16_at(value_at)? != RGB_PALETTE {
        return None;
    }
    let mut copy = bytes.to_vec();
    let value = match order {
        tiff::tags::ByteOrder::LittleEndian => BLACK_IS_ZERO.to_le_bytes(),
        tiff::tags::ByteOrder::BigEndian => BLACK_IS_ZERO.to_be_bytes(),
    };
    copy[value_at..value_at + 2].copy_from_slice(&value);
    Some(copy)
}
