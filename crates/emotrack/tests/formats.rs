//! Image formats and variants people have, read through the library's decoder
//! (`imgproc::load_image`): each fixture in `tests/fixtures/formats` (written by
//! `scripts/make_format_fixtures.py`) is the same picture as `reference.png`; 16-bit files are made
//! here from it. What decodes must match the reference; what cannot must say which format it is
//! and how to convert it.

mod common;

use std::path::Path;

use emotrack::imgproc::{DecodeLimits, decode_image, load_image};
use image::{ImageFormat, RgbImage};

fn formats(name: &str) -> std::path::PathBuf {
    common::fixture("formats").join(name)
}

fn reference() -> RgbImage {
    load_image(&formats("reference.png"), DecodeLimits::default()).expect("reference.png decodes")
}

/// Mean absolute difference per channel value between two pictures of the same size.
fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

fn assert_reads_as_reference(name: &str, tolerance: f64) {
    let decoded = load_image(&formats(name), DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    let diff = mean_abs_diff(&decoded, &reference());
    assert!(
        diff <= tolerance,
        "{name} decodes to a different picture: mean |diff| {diff:.2} > {tolerance}"
    );
}

#[test]
fn a_palette_tiff_is_read_with_its_palette_expanded() {
    // 256 colours chosen by median cut: the quantisation itself costs a few levels.
    assert_reads_as_reference("palette.tif", 3.0);
}

#[test]
fn a_cmyk_jpeg_is_read_in_rgb() {
    assert_reads_as_reference("cmyk.jpg", 2.0);
}

#[test]
fn a_cmyk_tiff_is_read_in_rgb() {
    assert_reads_as_reference("cmyk.tif", 0.5);
}

/// Encodes `img` into memory in `format`.
fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).expect("encodes");
    bytes.into_inner()
}

#[test]
fn sixteen_bit_png_and_tiff_are_read_at_eight_bits() {
    let reference = reference();
    let wide = image::DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(
        reference.width(),
        reference.height(),
        |x, y| image::Rgb(reference.get_pixel(x, y).0.map(|v| u16::from(v) * 257)),
    ));
    for format in [ImageFormat::Png, ImageFormat::Tiff] {
        let bytes = encode(&wide, format);
        let decoded = decode_image(&bytes, Path::new("wide"), DecodeLimits::default())
            .unwrap_or_else(|e| panic!("16-bit {format:?} does not decode: {e}"));
        assert_eq!(decoded, reference, "16-bit {format:?}");
    }
    // Gray at 16 bits (scanners, medical and scientific cameras).
    let gray16 = image::DynamicImage::ImageRgb8(reference.clone()).to_luma16();
    let bytes = encode(&image::DynamicImage::ImageLuma16(gray16), ImageFormat::Png);
    let decoded = decode_image(&bytes, Path::new("gray16"), DecodeLimits::default())
        .expect("16-bit gray PNG decodes");
    assert_eq!(decoded.dimensions(), reference.dimensions());
    assert!(
        decoded
            .pixels()
            .all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2])
    );
}

fn refused_message(name: &str) -> String {
    let err = load_image(&formats(name), DecodeLimits::default())
        .expect_err("a format the decoders do not read is an error");
    format!("{err} {}", err.hint().unwrap_or_default())
}

#[test]
fn an_iphone_heic_photo_is_named_with_how_to_convert_it() {
    let message = refused_message("iphone.heic");
    assert!(message.contains("HEIC"), "{message}");
    assert!(message.contains("convert"), "{message}");
    assert!(message.contains("Most Compatible"), "{message}");
}

#[test]
fn an_avif_photo_is_named_with_how_to_convert_it() {
    let message = refused_message("photo.avif");
    assert!(message.contains("AVIF"), "{message}");
    assert!(message.contains("ffmpeg -i"), "{message}");
}

#[test]
fn a_photo_stored_sideways_is_turned_upright_by_its_exif_orientation() {
    let reference = reference();
    let stored = encode(
        &image::DynamicImage::ImageRgb8(reference.clone()),
        ImageFormat::Jpeg,
    );
    let name = Path::new("phone.jpg");
    let plain = decode_image(&stored, name, DecodeLimits::default()).expect("decodes");
    assert_eq!(plain.dimensions(), reference.dimensions());
    // 6: the stored picture must turn 90° clockwise to be shown upright.
    let turned = decode_image(
        &common::with_exif_orientation(&stored, 6),
        name,
        DecodeLimits::default(),
    )
    .expect("decodes");
    assert_eq!(turned, image::imageops::rotate90(&plain));
    // 1: as stored.
    let same = decode_image(
        &common::with_exif_orientation(&stored, 1),
        name,
        DecodeLimits::default(),
    )
    .expect("decodes");
    assert_eq!(same, plain);
}
