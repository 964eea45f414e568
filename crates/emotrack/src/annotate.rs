//! Drawing results onto images: a box per face, its label (and track id), the top-three
//! probability bars and the vibe, in the embedded DejaVu Sans Mono Bold font.

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use crate::types::{BBox, Emotion, EmotionScores, Landmarks};

/// The embedded font file (one copy in the binary: [`crate::chart`] registers these bytes).
pub(crate) static FONT_BYTES: &[u8] =
    include_bytes!("../../../assets/fonts/DejaVuSansMono-Bold.ttf");

/// A colour per emotion, indexed like [`Emotion::ALL`] (also used by plots).
pub const EMOTION_COLORS: [[u8; 3]; 7] = [
    [220, 50, 47],   // angry: red
    [133, 153, 0],   // disgust: olive
    [108, 113, 196], // fear: violet
    [250, 190, 20],  // happy: yellow
    [147, 161, 161], // neutral: grey
    [38, 139, 210],  // sad: blue
    [211, 54, 130],  // surprise: magenta
];

/// The colour of an emotion.
pub fn emotion_color(e: Emotion) -> Rgb<u8> {
    Rgb(EMOTION_COLORS[e.index()])
}

/// What to draw for one face.
#[derive(Debug, Clone, Copy)]
pub struct FaceOverlay<'a> {
    /// The face box.
    pub bbox: BBox,
    /// Landmarks to mark, if any.
    pub landmarks: Option<&'a Landmarks>,
    /// Track id shown before the label (video), if any.
    pub id: Option<u64>,
    /// The label shown (may differ from the top score when smoothed with hysteresis).
    pub label: Emotion,
    /// Probabilities for the bars.
    pub scores: &'a EmotionScores,
    /// The vibe message (empty: none).
    pub vibe: &'a str,
}

/// Draws overlays; holds the parsed font.
#[derive(Debug, Clone)]
pub struct Annotator {
    font: FontRef<'static>,
}

impl Default for Annotator {
    fn default() -> Self {
        Self::new()
    }
}

impl Annotator {
    /// An annotator with the embedded font.
    pub fn new() -> Self {
        // The embedded font is a valid TrueType file (checked by a unit test).
        let font = FontRef::try_from_slice(FONT_BYTES)
            .unwrap_or_else(|_| unreachable!("embedded font parses"));
        Self { font }
    }

    /// The embedded font, parsed (for callers drawing their own text; plots use
    /// [`crate::chart`], which registers the same bytes with plotters).
    pub fn font(&self) -> &FontRef<'static> {
        &self.font
    }

    /// Draws every face onto `image`.
    pub fn draw(&self, image: &mut RgbImage, faces: &[FaceOverlay<'_>]) {
        for face in faces {
            self.draw_face(image, face);
        }
    }

    fn draw_face(&self, image: &mut RgbImage, f: &FaceOverlay<'_>) {
        let (iw, ih) = image.dimensions();
        if iw == 0 || ih == 0 {
            return;
        }
        let color = emotion_color(f.label);
        // Text and line sizes follow the face size, within readable bounds.
        let px = (f.bbox.w.max(f.bbox.h) * 0.16).clamp(11.0, 28.0);
        let scale = PxScale::from(px);
        let thick = ((px / 8.0).round() as i32).max(1);
        let x = f.bbox.x.round() as i32;
        let y = f.bbox.y.round() as i32;
        let w = (f.bbox.w.round() as u32).max(1);
        let h = (f.bbox.h.round() as u32).max(1);
        for t in 0..thick {
            let r = Rect::at(x - t, y - t).of_size(w + 2 * t as u32, h + 2 * t as u32);
            draw_hollow_rect_mut(image, r, color);
        }
        if let Some(lm) = f.landmarks {
            for [lx, ly] in lm.0 {
                let r = Rect::at(lx.round() as i32 - 1, ly.round() as i32 - 1).of_size(3, 3);
                draw_filled_rect_mut(image, r, Rgb([0, 255, 0]));
            }
        }
        // Label above the box: "#id label 87%".
        let p = f.scores.get(f.label);
        let label = match f.id {
            Some(id) => format!("#{id} {} {:.0}%", f.label, p * 100.0),
            None => format!("{} {:.0}%", f.label, p * 100.0),
        };
        let (tw, th) = text_size(scale, &self.font, &label);
        let ly = (y - th as i32 - 2 * thick - 2).max(0);
        draw_filled_rect_mut(
            image,
            Rect::at(x - thick, ly).of_size(tw + 6, th + 4),
            color,
        );
        draw_text_mut(
            image,
            Rgb([0, 0, 0]),
            x - thick + 3,
            ly + 2,
            scale,
            &self.font,
            &label,
        );
        // Top-three bars below the box.
        let small = PxScale::from((px * 0.8).max(10.0));
        let bar_max = w.max(60);
        let mut by = y + h as i32 + thick + 2;
        for (e, prob) in f.scores.ranked().into_iter().take(3) {
            let text = format!("{:<8}{:>4.0}%", e.name(), prob * 100.0);
            let (_, bh) = text_size(small, &self.font, &text);
            let bar_w = ((prob * bar_max as f32).round() as u32).max(1);
            draw_filled_rect_mut(
                image,
                Rect::at(x, by).of_size(bar_max, bh + 2),
                Rgb([30, 30, 30]),
            );
            draw_filled_rect_mut(
                image,
                Rect::at(x, by).of_size(bar_w, bh + 2),
                emotion_color(e),
            );
            draw_text_mut(
                image,
                Rgb([255, 255, 255]),
                x + 2,
                by + 1,
                small,
                &self.font,
                &text,
            );
            by += bh as i32 + 4;
        }
        if !f.vibe.is_empty() {
            let (vw, vh) = text_size(small, &self.font, f.vibe);
            draw_filled_rect_mut(
                image,
                Rect::at(x, by).of_size(vw + 4, vh + 4),
                Rgb([255, 255, 255]),
            );
            draw_text_mut(
                image,
                Rgb([0, 0, 0]),
                x + 2,
                by + 2,
                small,
                &self.font,
                f.vibe,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_parses_and_drawing_changes_pixels_without_panicking_at_edges() {
        assert!(FontRef::try_from_slice(FONT_BYTES).is_ok());
        let a = Annotator::new();
        let mut img = RgbImage::new(64, 64);
        let scores = EmotionScores([0.1, 0.0, 0.0, 0.7, 0.2, 0.0, 0.0]);
        // A box hanging off the bottom-right corner.
        let face = FaceOverlay {
            bbox: BBox {
                x: 40.0,
                y: 40.0,
                w: 50.0,
                h: 50.0,
            },
            landmarks: None,
            id: Some(3),
            label: Emotion::Happy,
            scores: &scores,
            vibe: "Big smile - good vibes!",
        };
        a.draw(&mut img, &[face]);
        assert!(img.pixels().any(|p| p.0 != [0, 0, 0]));
    }
}
