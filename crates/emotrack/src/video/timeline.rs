//! The timeline picture: every track's emotions over time in one plot.
//!
//! One horizontal lane per track: the stacked smoothed probabilities (one colour per emotion,
//! the colours of [`crate::annotate::EMOTION_COLORS`]) with a thin strip above showing the label
//! that was displayed; gaps are frames where the track was not shown. A time axis and a legend
//! sit below.
//!
//! Drawn with imageproc and the embedded font rather than plotters: in this workspace plotters
//! is built with its `ttf` feature, which renders text with system fonts, and the picture must
//! not depend on the fonts of the machine it runs on.

use std::collections::BTreeMap;
use std::path::Path;

use ab_glyph::PxScale;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_line_segment_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use super::pipeline::FrameReport;
use crate::annotate::{Annotator, emotion_color};
use crate::error::{Error, Result};
use crate::track::TrackId;
use crate::types::Emotion;

const WIDTH: u32 = 1200;
const LEFT: u32 = 80;
const RIGHT: u32 = 24;
const TOP: u32 = 48;
const LANE: u32 = 56;
const LANE_GAP: u32 = 12;
const STRIP: u32 = 8;
const AXIS: u32 = 36;
const LEGEND: u32 = 36;
/// Lanes drawn at most; the longest-lived tracks are kept.
pub const MAX_LANES: usize = 30;

const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([30, 30, 30]);
const GRID: Rgb<u8> = Rgb([220, 220, 220]);

#[derive(Debug, Clone, Copy)]
struct Sample {
    time: f64,
    scores: [f32; 7],
    label: Emotion,
}

/// Collects each track's smoothed probabilities and labels over time, then draws them.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    series: BTreeMap<TrackId, Vec<Sample>>,
    end: f64,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a frame's faces.
    pub fn push(&mut self, report: &FrameReport) {
        self.end = self.end.max(report.time);
        for f in &report.faces {
            self.series.entry(f.id).or_default().push(Sample {
                time: report.time,
                scores: f.smoothed.0,
                label: f.label,
            });
        }
    }

    /// Number of tracks recorded.
    pub fn tracks(&self) -> usize {
        self.series.len()
    }

    /// Draws the plot; `frame_interval` (seconds between frames) sets how far apart two
    /// samples may be before the lane shows a gap.
    pub fn render(&self, frame_interval: f64) -> RgbImage {
        let annotator = Annotator::new();
        let font = annotator.font();
        let mut lanes: Vec<(&TrackId, &Vec<Sample>)> = self.series.iter().collect();
        let hidden = lanes.len().saturating_sub(MAX_LANES);
        if hidden > 0 {
            lanes.sort_by_key(|(_, s)| std::cmp::Reverse(s.len()));
            lanes.truncate(MAX_LANES);
            lanes.sort_by_key(|(id, _)| **id);
        }
        let n = lanes.len().max(1) as u32;
        let height = TOP + n * (LANE + LANE_GAP) + AXIS + LEGEND;
        let mut img = RgbImage::from_pixel(WIDTH, height, BACKGROUND);
        let title_scale = PxScale::from(18.0);
        let scale = PxScale::from(14.0);
        let mut title = format!(
            "Emotions over time: {} track{}  (stacked smoothed probabilities; strip: label shown)",
            self.series.len(),
            if self.series.len() == 1 { "" } else { "s" }
        );
        if hidden > 0 {
            title.push_str(&format!("; {hidden} short tracks not drawn"));
        }
        draw_text_mut(&mut img, INK, 12, 14, title_scale, font, &title);

        let plot_w = WIDTH - LEFT - RIGHT;
        let interval = if frame_interval.is_finite() && frame_interval > 0.0 {
            frame_interval
        } else {
            0.04
        };
        let t0 = 0.0;
        let t1 = (self.end + interval).max(t0 + interval);
        let span = t1 - t0;
        let axis_y = TOP + n * (LANE + LANE_GAP);
        let step = tick_step(span);
        // Grid lines and tick labels.
        let mut k = 0u32;
        loop {
            let t = t0 + f64::from(k) * step;
            if t > t1 + 1e-9 {
                break;
            }
            let x = LEFT as f32 + ((t - t0) / span * f64::from(plot_w)) as f32;
            draw_line_segment_mut(&mut img, (x, TOP as f32), (x, axis_y as f32), GRID);
            draw_line_segment_mut(&mut img, (x, axis_y as f32), (x, axis_y as f32 + 5.0), INK);
            let label = format_time(t, step);
            let (tw, _) = text_size(scale, font, &label);
            draw_text_mut(
                &mut img,
                INK,
                x as i32 - tw as i32 / 2,
                axis_y as i32 + 8,
                scale,
                font,
                &label,
            );
            k += 1;
        }
        draw_line_segment_mut(
            &mut img,
            (LEFT as f32, axis_y as f32),
            ((LEFT + plot_w) as f32, axis_y as f32),
            INK,
        );
        if lanes.is_empty() {
            draw_text_mut(
                &mut img,
                INK,
                LEFT as i32 + 10,
                (TOP + LANE / 2) as i32 - 8,
                scale,
                font,
                "no face was tracked",
            );
        }
        for (row, (id, samples)) in lanes.iter().enumerate() {
            let y = TOP + row as u32 * (LANE + LANE_GAP);
            let label = format!("#{id}");
            let (tw, th) = text_size(scale, font, &label);
            draw_text_mut(
                &mut img,
                INK,
                (LEFT as i32 - 10 - tw as i32).max(2),
                (y + LANE / 2) as i32 - th as i32 / 2,
                scale,
                font,
                &label,
            );
            let pixel_time = span / f64::from(plot_w);
            let tolerance = (interval * 1.5).max(pixel_time);
            let area_h = LANE - STRIP - 2;
            for px in 0..plot_w {
                let t = t0 + (f64::from(px) + 0.5) * pixel_time;
                let Some(s) = nearest(samples, t).filter(|s| (s.time - t).abs() <= tolerance)
                else {
                    continue;
                };
                let x = (LEFT + px) as i32;
                draw_filled_rect_mut(
                    &mut img,
                    Rect::at(x, y as i32).of_size(1, STRIP),
                    emotion_color(s.label),
                );
                // Stack from the bottom in class order; cumulative rounding keeps the total.
                let bottom = (y + LANE) as f32;
                let mut acc = 0.0f32;
                for e in Emotion::ALL {
                    let p = s.scores[e.index()].clamp(0.0, 1.0);
                    let y0 = (bottom - acc * area_h as f32).round() as i32;
                    acc += p;
                    let y1 = (bottom - acc.min(1.0) * area_h as f32).round() as i32;
                    if y0 > y1 {
                        draw_filled_rect_mut(
                            &mut img,
                            Rect::at(x, y1).of_size(1, (y0 - y1) as u32),
                            emotion_color(e),
                        );
                    }
                }
            }
        }
        // Legend.
        let ly = (axis_y + AXIS + 8) as i32;
        let mut lx = LEFT as i32;
        for e in Emotion::ALL {
            draw_filled_rect_mut(&mut img, Rect::at(lx, ly).of_size(14, 14), emotion_color(e));
            draw_text_mut(&mut img, INK, lx + 18, ly, scale, font, e.name());
            let (tw, _) = text_size(scale, font, e.name());
            lx += 18 + tw as i32 + 24;
        }
        draw_text_mut(&mut img, INK, lx, ly, scale, font, "time (s)");
        img
    }

    /// Draws the plot and saves it as PNG.
    pub fn save(&self, path: &Path, frame_interval: f64) -> Result<()> {
        self.render(frame_interval)
            .save_with_format(path, image::ImageFormat::Png)
            .map_err(|e| {
                Error::image(
                    path.to_path_buf(),
                    format!("cannot write the timeline: {e}"),
                )
            })
    }
}

/// The sample nearest to `t` (samples are in time order).
fn nearest(samples: &[Sample], t: f64) -> Option<&Sample> {
    let i = samples.partition_point(|s| s.time < t);
    let after = samples.get(i);
    let before = i.checked_sub(1).and_then(|j| samples.get(j));
    match (before, after) {
        (Some(b), Some(a)) => Some(if t - b.time <= a.time - t { b } else { a }),
        (b, a) => b.or(a),
    }
}

/// A round tick step giving at most about ten ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 16] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
        3600.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 10.0)
        .unwrap_or_else(|| (span / 10.0 / 3600.0).ceil() * 3600.0)
}

fn format_time(t: f64, step: f64) -> String {
    if step < 1.0 {
        format!("{t:.1}")
    } else if step < 60.0 {
        format!("{t:.0}")
    } else {
        let s = t.round() as u64;
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BBox, EmotionScores};
    use crate::video::TrackedFace;

    fn report(index: u64, ids: &[TrackId]) -> FrameReport {
        let b = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        FrameReport {
            index,
            time: index as f64 / 25.0,
            detected: true,
            faces: ids
                .iter()
                .map(|&id| TrackedFace {
                    id,
                    bbox: b,
                    detected_bbox: b,
                    landmarks: None,
                    detector_score: 1.0,
                    raw: EmotionScores([0.0, 0.0, 0.0, 0.8, 0.2, 0.0, 0.0]),
                    smoothed: EmotionScores([0.0, 0.0, 0.0, 0.8, 0.2, 0.0, 0.0]),
                    label: Emotion::Happy,
                    vibe: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn each_track_gets_a_lane_coloured_by_its_emotions() {
        let mut t = Timeline::new();
        for i in 0..50 {
            t.push(&report(i, if i < 25 { &[1] } else { &[1, 2] }));
        }
        let img = t.render(1.0 / 25.0);
        assert_eq!(img.height(), TOP + 2 * (LANE + LANE_GAP) + AXIS + LEGEND);
        let happy = emotion_color(Emotion::Happy);
        // Lane 1 is happy across the plot; lane 2 only in its second half.
        let y1 = TOP + LANE - 3;
        let y2 = TOP + LANE + LANE_GAP + LANE - 3;
        assert_eq!(*img.get_pixel(LEFT + 5, y1), happy);
        assert_eq!(*img.get_pixel(LEFT + 5, y2), BACKGROUND);
        assert_eq!(*img.get_pixel(WIDTH - RIGHT - 40, y2), happy);
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step(4.6), 0.5);
        assert_eq!(tick_step(9.2), 1.0);
        assert_eq!(tick_step(600.0), 60.0);
        assert!(tick_step(1e6) >= 1e5);
    }
}
