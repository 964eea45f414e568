//! The timeline picture: every track's emotions over time in one plot.
//!
//! One horizontal lane per track: the stacked smoothed probabilities (one colour per emotion,
//! the colours of [`crate::annotate::EMOTION_COLORS`]) with a thin strip above showing the label
//! that was displayed; gaps are times when the track was not shown. A time axis and a legend
//! sit below. Drawn with plotters through [`crate::chart`] (embedded font, no system fonts).

use std::collections::BTreeMap;
use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use super::pipeline::FrameReport;
use crate::chart::{self, Canvas, ChartError};
use crate::error::{Error, Result};
use crate::track::TrackId;
use crate::types::Emotion;

const WIDTH: u32 = 1200;
/// Room left of the lanes for the track ids.
const LEFT: u32 = 80;
const RIGHT: u32 = 24;
/// Room above the lanes for the title.
const TOP: u32 = 48;
const LANE: u32 = 56;
const LANE_GAP: u32 = 12;
/// Height of the label strip at the top of a lane.
const STRIP: u32 = 8;
/// Gap between the label strip and the stacked probabilities.
const STRIP_GAP: u32 = 2;
/// Room below the lanes for the tick labels and the axis name.
const AXIS: u32 = 52;
const LEGEND: u32 = 36;
/// Lanes drawn at most; the longest-lived tracks are kept.
pub const MAX_LANES: usize = 30;
/// Assumed seconds between frames when the caller's interval is unusable.
const FALLBACK_INTERVAL: f64 = 0.04;
/// A sample stands for the time up to this many frame intervals around it: farther than that
/// from every sample, the lane shows a gap.
const REACH_INTERVALS: f64 = 1.5;

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
    /// samples may be before the lane shows a gap. Fails only where plotters cannot draw
    /// ([`ChartError::Draw`]).
    pub fn render(&self, frame_interval: f64) -> Result<RgbImage, ChartError> {
        let mut lanes: Vec<(&TrackId, &Vec<Sample>)> = self.series.iter().collect();
        let hidden = lanes.len().saturating_sub(MAX_LANES);
        if hidden > 0 {
            lanes.sort_by_key(|(_, s)| std::cmp::Reverse(s.len()));
            lanes.truncate(MAX_LANES);
            lanes.sort_by_key(|(id, _)| **id);
        }
        let n = lanes.len().max(1) as u32;
        let height = TOP + n * (LANE + LANE_GAP) + AXIS + LEGEND;
        let interval = if frame_interval.is_finite() && frame_interval > 0.0 {
            frame_interval
        } else {
            FALLBACK_INTERVAL
        };
        let mut title = format!(
            "Emotions over time: {} track{}  (stacked smoothed probabilities; strip: label shown)",
            self.series.len(),
            if self.series.len() == 1 { "" } else { "s" }
        );
        if hidden > 0 {
            title.push_str(&format!("; {hidden} short tracks not drawn"));
        }
        chart::render((WIDTH, height), |canvas| {
            canvas.draw(&Text::new(title, (12, 14), chart::font(chart::TITLE_SIZE)))?;
            let (plot, legend) = canvas.split_vertically(height - LEGEND);
            draw_lanes(&plot, &lanes, self.end + interval, interval)?;
            let entries = Emotion::ALL.map(|e| (e.name(), chart::emotion_color(e)));
            chart::legend(&legend, (LEFT as i32, 8), entries)?;
            Ok(())
        })
    }

    /// Draws the plot and saves it as PNG.
    pub fn save(&self, path: &Path, frame_interval: f64) -> Result<()> {
        self.render(frame_interval)
            .and_then(|image| chart::save_png(&image, path))
            .map_err(|e| Error::Image {
                path: path.to_path_buf(),
                message: format!("cannot write the timeline: {e}"),
            })
    }
}

/// Draws the lanes, the time axis from 0 to `end` seconds and the track ids into `area`.
///
/// Chart y units are pixels counted up from the bottom of the lanes: lane `row` (0 at the top)
/// with the gap below it spans `(n - row - 1) * UNIT .. (n - row) * UNIT`, and its id is a key
/// point in the middle of its coloured part.
fn draw_lanes(
    area: &Canvas<'_>,
    lanes: &[(&TrackId, &Vec<Sample>)],
    end: f64,
    interval: f64,
) -> Result<(), ChartError> {
    const UNIT: i32 = (LANE + LANE_GAP) as i32;
    let n = lanes.len().max(1) as i32;
    let label_at = (LANE_GAP + LANE / 2) as i32;
    let centres: Vec<i32> = (0..n).map(|k| k * UNIT + label_at).collect();
    let mut chart = ChartBuilder::on(area)
        .margin_top(TOP)
        .margin_right(RIGHT)
        .x_label_area_size(AXIS)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0.0..end, (0..n * UNIT).with_key_points(centres))?;
    let id_of = |y: &i32| {
        let row = usize::try_from(n - 1 - y.div_euclid(UNIT)).unwrap_or(usize::MAX);
        lanes
            .get(row)
            .map_or_else(String::new, |(id, _)| format!("#{id}"))
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_max_light_lines(0)
        .bold_line_style(chart::GRID)
        .axis_style(chart::INK)
        .x_labels(10)
        .x_desc("time (s)")
        .y_label_formatter(&id_of)
        .label_style(chart::font(chart::LABEL_SIZE))
        .axis_desc_style(chart::font(chart::LABEL_SIZE))
        .draw()?;
    if lanes.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no face was tracked",
            (end * 0.01, label_at),
            chart::font(chart::LABEL_SIZE),
        )))?;
    }
    let reach = interval * REACH_INTERVALS;
    for (row, (_, samples)) in (0..).zip(lanes) {
        let top = (n - row) * UNIT;
        chart.draw_series(
            samples
                .iter()
                .enumerate()
                .flat_map(|(i, s)| sample_bars(s, extent(samples, i, reach), top)),
        )?;
    }
    Ok(())
}

/// The time span sample `i` stands for: up to halfway to its neighbours, and at most `reach`
/// seconds either side (samples are in time order).
fn extent(samples: &[Sample], i: usize, reach: f64) -> (f64, f64) {
    let t = samples[i].time;
    let before = i
        .checked_sub(1)
        .map_or(reach, |j| ((t - samples[j].time) / 2.0).min(reach));
    let after = samples
        .get(i + 1)
        .map_or(reach, |next| ((next.time - t) / 2.0).min(reach));
    ((t - before).max(0.0), t + after)
}

/// One sample's bars over `span`: the label strip at the lane's `top` and the probabilities
/// stacked from the lane's bottom in class order (y in the pixel units of [`draw_lanes`]).
fn sample_bars(
    s: &Sample,
    (t0, t1): (f64, f64),
    top: i32,
) -> impl Iterator<Item = Rectangle<(f64, i32)>> {
    let bottom = top - LANE as i32;
    let area = f64::from(LANE - STRIP - STRIP_GAP);
    let strip = Rectangle::new(
        [(t0, top - STRIP as i32), (t1, top)],
        chart::emotion_color(s.label).filled(),
    );
    // Cumulative rounding keeps the stack's total height.
    let mut acc = 0.0f64;
    let stack = Emotion::ALL.into_iter().filter_map(move |e| {
        let y0 = bottom + (acc.min(1.0) * area).round() as i32;
        acc += f64::from(s.scores[e.index()].clamp(0.0, 1.0));
        let y1 = bottom + (acc.min(1.0) * area).round() as i32;
        (y1 > y0).then(|| Rectangle::new([(t0, y0), (t1, y1)], chart::emotion_color(e).filled()))
    });
    std::iter::once(strip).chain(stack)
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
        let img = t.render(1.0 / 25.0).expect("drawn");
        assert_eq!(img.height(), TOP + 2 * (LANE + LANE_GAP) + AXIS + LEGEND);
        let happy = chart::emotion_color(Emotion::Happy);
        let happy = image::Rgb([happy.0, happy.1, happy.2]);
        // Lane 1 is happy across the plot; lane 2 only in its second half.
        let y1 = TOP + LANE - 3;
        let y2 = TOP + LANE + LANE_GAP + LANE - 3;
        assert_eq!(*img.get_pixel(LEFT + 5, y1), happy);
        assert_eq!(*img.get_pixel(LEFT + 5, y2), image::Rgb([255, 255, 255]));
        assert_eq!(*img.get_pixel(WIDTH - RIGHT - 40, y2), happy);
    }

    #[test]
    fn a_sample_reaches_halfway_to_its_neighbours_and_no_farther_than_the_reach() {
        let at = |time| Sample {
            time,
            scores: [0.0; 7],
            label: Emotion::Neutral,
        };
        let samples = [at(0.0), at(1.0), at(1.2), at(5.0)];
        assert_eq!(extent(&samples, 0, 1.5), (0.0, 0.5));
        assert_eq!(extent(&samples, 2, 1.5), (1.1, 2.7));
        assert_eq!(extent(&samples, 3, 1.5), (3.5, 6.5));
    }

    #[test]
    fn an_empty_timeline_still_draws_its_axis_and_legend() {
        let img = Timeline::new().render(f64::NAN).expect("drawn");
        assert_eq!(img.height(), TOP + LANE + LANE_GAP + AXIS + LEGEND);
        let neutral = chart::emotion_color(Emotion::Neutral);
        assert!(
            img.pixels()
                .any(|p| p.0 == [neutral.0, neutral.1, neutral.2]),
            "the legend shows every emotion"
        );
    }
}
