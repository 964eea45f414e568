//! Borrowed RGB pixels: what the detectors and the emotion classifier read.
//!
//! The pipeline only reads a picture, so it takes a view of its pixels rather than an owned
//! [`RgbImage`]: a decoded image and a caller's own buffer (a NumPy array in
//! the Python bindings, read in place) go through the same code. Functions that take any image
//! take `&impl AsRgbView`; [`FaceDetector`](crate::detect::FaceDetector)'s methods, called
//! through `dyn FaceDetector`, take `&dyn AsRgbView`; both accept `&RgbImage` as it is.

use std::ops::Deref;

use image::{ImageBuffer, Rgb, RgbImage};

use super::area::Region;

/// RGB pixels in rows, three bytes each, borrowed from whoever holds them.
pub type RgbView<'a> = ImageBuffer<Rgb<u8>, &'a [u8]>;

/// An RGB image the pipeline can read: an [`RgbImage`], an [`RgbView`], or
/// any `ImageBuffer<Rgb<u8>, _>` whose samples are a byte slice.
pub trait AsRgbView {
    /// The image's pixels, borrowed.
    fn as_rgb_view(&self) -> RgbView<'_>;
}

impl<C: Deref<Target = [u8]>> AsRgbView for ImageBuffer<Rgb<u8>, C> {
    fn as_rgb_view(&self) -> RgbView<'_> {
        let (w, h) = self.dimensions();
        let len = 3 * w as usize * h as usize;
        // An `ImageBuffer` holds at least `3 · w · h` samples (its constructors check it).
        ImageBuffer::from_raw(w, h, &self.as_raw()[..len])
            .expect("an ImageBuffer holds its width x height pixels")
    }
}

/// The rows of `region` of `image`, each `3 · region.w` bytes.
///
/// # Panics
/// If `region` is not inside the image (a caller bug: regions are clipped to the image).
pub fn region_rows<'a>(image: &'a RgbView<'_>, region: Region) -> impl Iterator<Item = &'a [u8]> {
    let Region { x, y, w, h } = region;
    assert!(
        x + w <= image.width() && y + h <= image.height(),
        "region {region:?} outside a {}x{} image",
        image.width(),
        image.height()
    );
    let stride = 3 * image.width() as usize;
    let (left, right) = (3 * x as usize, 3 * (x + w) as usize);
    image
        .as_raw()
        .chunks_exact(stride.max(1))
        .skip(y as usize)
        .take(h as usize)
        .map(move |row| &row[left..right])
}

/// The pixels of `region` (inside `image`), copied a row at a time. (`image`'s own
/// `crop_imm(..).to_image()` wants an image that borrows nothing.)
///
/// # Panics
/// If `region` is not inside the image.
pub fn copy_region(image: &RgbView<'_>, region: Region) -> RgbImage {
    let mut pixels = Vec::with_capacity(3 * region.w as usize * region.h as usize);
    for row in region_rows(image, region) {
        pixels.extend_from_slice(row);
    }
    RgbImage::from_raw(region.w, region.h, pixels)
        .expect("a region inside the image holds its pixels")
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;

    #[test]
    fn a_view_reads_the_pixels_of_the_image_it_borrows() {
        let image = RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8, y as u8, 7]));
        let view = image.as_rgb_view();
        assert_eq!(view.dimensions(), (5, 3));
        assert_eq!(view.get_pixel(4, 2), image.get_pixel(4, 2));
        assert_eq!(view.as_rgb_view().as_raw(), &image.as_raw().as_slice());
    }

    #[test]
    fn a_copied_region_holds_the_pixels_crop_imm_gives() {
        let image = RgbImage::from_fn(9, 7, |x, y| Rgb([x as u8, y as u8, (x * y) as u8]));
        let region = Region {
            x: 2,
            y: 3,
            w: 5,
            h: 4,
        };
        let expected = image::imageops::crop_imm(&image, 2, 3, 5, 4).to_image();
        assert_eq!(copy_region(&image.as_rgb_view(), region), expected);
    }

    #[test]
    fn a_view_of_a_longer_buffer_stops_at_its_pixels() {
        let bytes = [9u8; 3 * 4 + 5];
        let image = ImageBuffer::<Rgb<u8>, &[u8]>::from_raw(2, 2, &bytes[..]).unwrap();
        assert_eq!(image.as_rgb_view().as_raw().len(), 12);
    }
}
