//! Charts: one font and one look for every plot emotrack draws (the video [`Timeline`], and
//! `emotrack-train`'s confusion matrix).
//!
//! Charts are drawn with [plotters] on an in-memory [`Canvas`]: [`render`] runs a drawing
//! function and returns the pixels as an [`RgbImage`], [`save_png`] writes them. Text is set in
//! the font embedded for [`crate::annotate`] (DejaVu Sans Mono Bold), registered with plotters'
//! `ab_glyph` backend the first time a chart is drawn, so a chart looks the same on every machine
//! and needs no system fonts (plotters' `ttf` feature would need fontconfig and FreeType). The
//! font answers to every generic family name (`"sans-serif"`, `"serif"`, `"monospace"`), so
//! plotters' default label styles render in it too; prefer [`font`], which also sets the ink.
//!
//! ```
//! use emotrack::chart::{self, ChartError};
//! use plotters::prelude::*;
//!
//! let image = chart::render((240, 60), |canvas| {
//!     canvas.draw(&Text::new("hello", (10, 20), chart::font(chart::LABEL_SIZE)))?;
//!     Ok(())
//! })?;
//! assert_eq!(image.dimensions(), (240, 60));
//! # Ok::<(), ChartError>(())
//! ```
//!
//! [`Timeline`]: crate::video::Timeline

use std::path::{Path, PathBuf};
use std::sync::Once;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontFamily, FontStyle, register_font};

use crate::annotate::{EMOTION_COLORS, FONT_BYTES};
use crate::types::Emotion;

/// The surface charts draw on: a plotters drawing area over an RGB pixel buffer, in pixels
/// from the top-left corner.
pub type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The background of every chart.
pub const BACKGROUND: RGBColor = WHITE;
/// Text, axes and outlines.
pub const INK: RGBColor = RGBColor(30, 30, 30);
/// Grid lines, light enough for data drawn over them to stand out.
pub const GRID: RGBColor = RGBColor(220, 220, 220);
/// Data that is not an emotion (bars, points, shading).
pub const ACCENT: RGBColor = RGBColor(33, 84, 160);
/// Text size of a chart's title, in pixels.
pub const TITLE_SIZE: f64 = 18.0;
/// Text size of axis labels, tick labels and legends, in pixels.
pub const LABEL_SIZE: f64 = 14.0;

/// A chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChartError {
    /// plotters failed to draw. With the font embedded and the canvas in memory this points at a
    /// bug (e.g. a layout that does not fit the canvas) rather than at the machine.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    /// The PNG file could not be written; the message says why (missing folder, permissions…).
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        Self::Draw(e.to_string())
    }
}

/// A text style in the embedded font at `size` pixels, in [`INK`]. Registers the font with
/// plotters on first use.
pub fn font(size: f64) -> TextStyle<'static> {
    register_embedded_font();
    (FontFamily::SansSerif, size).into_font().color(&INK)
}

/// The colour of an emotion in charts: the one annotated images use
/// ([`EMOTION_COLORS`]).
pub fn emotion_color(e: Emotion) -> RGBColor {
    let [r, g, b] = EMOTION_COLORS[e.index()];
    RGBColor(r, g, b)
}

/// Draws a chart of `size` (width, height) pixels: fills a canvas with [`BACKGROUND`], runs
/// `draw` on it and returns the pixels. Registers the font with plotters on first use, so
/// `draw` may use [`font`] or plotters' default text styles alike.
pub fn render<F>(size: (u32, u32), draw: F) -> Result<RgbImage, ChartError>
where
    F: FnOnce(&Canvas<'_>) -> Result<(), ChartError>,
{
    register_embedded_font();
    let (width, height) = size;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let canvas = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        canvas.fill(&BACKGROUND)?;
        draw(&canvas)?;
        canvas.present()?;
    }
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| ChartError::Draw("the pixel buffer does not match the size".into()))
}

/// Writes a rendered chart to `path` as PNG.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), ChartError> {
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| ChartError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Draws a one-line legend: for each entry a colour swatch and its name, left to right from
/// `origin` (the top-left corner of the first swatch). Returns the x just past the last entry.
pub fn legend<'e>(
    canvas: &Canvas<'_>,
    origin: (i32, i32),
    entries: impl IntoIterator<Item = (&'e str, RGBColor)>,
) -> Result<i32, ChartError> {
    /// Side of a swatch, gap between a swatch and its name, and between entries.
    const SWATCH: i32 = 14;
    const NAME_GAP: i32 = 4;
    const ENTRY_GAP: i32 = 24;
    let style = font(LABEL_SIZE);
    let (mut x, y) = origin;
    for (name, color) in entries {
        canvas.draw(&Rectangle::new(
            [(x, y), (x + SWATCH, y + SWATCH)],
            color.filled(),
        ))?;
        let text_x = x + SWATCH + NAME_GAP;
        canvas.draw(&Text::new(name, (text_x, y), style.clone()))?;
        let (name_width, _) = canvas.estimate_text_size(name, &style)?;
        x = text_x + name_width as i32 + ENTRY_GAP;
    }
    Ok(x)
}

/// Registers the embedded font with plotters under every generic family name, once.
fn register_embedded_font() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for family in [
            FontFamily::SansSerif,
            FontFamily::Serif,
            FontFamily::Monospace,
        ] {
            // Cannot fail: the annotator parses the same bytes. Were it to, drawing text would
            // report the font as unavailable through `ChartError::Draw`.
            let _ = register_font(family.as_str(), FontStyle::Normal, FONT_BYTES);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_renders_in_the_embedded_font_without_system_fonts() {
        let image = render((120, 40), |canvas| {
            canvas.draw(&Text::new("Happy 42%", (4, 12), font(LABEL_SIZE)))?;
            Ok(())
        })
        .expect("the embedded font is registered");
        let inked = image.pixels().filter(|p| p.0 == [30, 30, 30]).count();
        assert!(inked > 20, "only {inked} pixels of ink");
    }

    #[test]
    fn plotters_default_families_use_the_embedded_font() {
        for family in ["sans-serif", "serif", "monospace"] {
            let image = render((80, 30), |canvas| {
                canvas.draw(&Text::new("x", (4, 8), (family, 16.0).into_font()))?;
                Ok(())
            })
            .expect(family);
            assert!(image.pixels().any(|p| p.0 != [255, 255, 255]), "{family}");
        }
    }

    #[test]
    fn legend_entries_are_laid_out_left_to_right() {
        let mut end = 0;
        let image = render((400, 30), |canvas| {
            end = legend(
                canvas,
                (10, 8),
                [
                    ("happy", emotion_color(Emotion::Happy)),
                    ("sad", emotion_color(Emotion::Sad)),
                ],
            )?;
            Ok(())
        })
        .expect("drawn");
        let at = |x: u32| image.get_pixel(x, 12).0;
        assert_eq!(at(12), EMOTION_COLORS[Emotion::Happy.index()]);
        assert!(end > 100 && end < 400, "{end}");
        assert!((60..end as u32).any(|x| at(x) == EMOTION_COLORS[Emotion::Sad.index()]));
    }

    #[test]
    fn saving_into_a_missing_folder_names_the_file() {
        let image = RgbImage::new(2, 2);
        let path = Path::new("/nonexistent-folder/chart.png");
        let err = save_png(&image, path).expect_err("no such folder");
        assert!(err.to_string().contains("chart.png"), "{err}");
    }
}
