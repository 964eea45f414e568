//! Confusion-matrix picture (PNG) with plotters: rows are the true class, columns the
//! prediction; each cell shows the count and the row percentage (recall on the diagonal),
//! shaded by that percentage. Font and colours come from [`emotrack::chart`].

use std::path::Path;

use emotrack::Emotion;
use emotrack::chart::{self, Canvas, ChartError};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::TrainError;
use crate::metrics::Metrics;

/// Picture size in pixels.
const SIZE: (u32, u32) = (760, 740);
/// Left and top margins holding the labels.
const MARGIN: (i32, i32) = (120, 90);
/// Side of one cell.
const CELL: i32 = 84;

/// Draws `metrics.confusion` into a PNG at `path`, with `title` above it.
pub fn confusion_png(metrics: &Metrics, title: &str, path: &Path) -> Result<(), TrainError> {
    chart::render(SIZE, |canvas| draw(canvas, metrics, title))
        .and_then(|image| chart::save_png(&image, path))
        .map_err(|e| TrainError::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn draw(root: &Canvas<'_>, metrics: &Metrics, title: &str) -> Result<(), ChartError> {
    let center = Pos::new(HPos::Center, VPos::Center);
    let right = Pos::new(HPos::Right, VPos::Center);
    let font = chart::font;
    root.draw(&Text::new(
        title.to_string(),
        (SIZE.0 as i32 / 2, 22),
        font(20.0).pos(center),
    ))?;
    root.draw(&Text::new(
        "predicted",
        (MARGIN.0 + CELL * 7 / 2, 48),
        font(16.0).pos(center),
    ))?;
    let n = Emotion::COUNT as i32;
    for (i, e) in Emotion::ALL.iter().enumerate() {
        let i = i as i32;
        root.draw(&Text::new(
            e.name(),
            (MARGIN.0 + i * CELL + CELL / 2, MARGIN.1 - 16),
            font(chart::LABEL_SIZE).pos(center),
        ))?;
        root.draw(&Text::new(
            e.name(),
            (MARGIN.0 - 8, MARGIN.1 + i * CELL + CELL / 2),
            font(chart::LABEL_SIZE).pos(right),
        ))?;
    }
    root.draw(&Text::new(
        "true \u{2193}",
        (MARGIN.0 - 8, MARGIN.1 - 16),
        font(16.0).pos(right),
    ))?;
    for (t, row) in metrics.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let frac = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            // White → dark blue with the row fraction.
            let shade = |c: f64| (255.0 - (255.0 - c) * frac) as u8;
            let fill = RGBColor(shade(33.0), shade(84.0), shade(160.0));
            let (x0, y0) = (MARGIN.0 + p as i32 * CELL, MARGIN.1 + t as i32 * CELL);
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + CELL, y0 + CELL)],
                fill.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + CELL, y0 + CELL)],
                chart::INK.mix(0.3),
            ))?;
            let ink = if frac > 0.5 {
                chart::BACKGROUND
            } else {
                chart::INK
            };
            root.draw(&Text::new(
                format!("{count}"),
                (x0 + CELL / 2, y0 + CELL / 2 - 10),
                font(17.0).color(&ink).pos(center),
            ))?;
            root.draw(&Text::new(
                format!("{:.0}%", frac * 100.0),
                (x0 + CELL / 2, y0 + CELL / 2 + 12),
                font(13.0).color(&ink).pos(center),
            ))?;
        }
    }
    root.draw(&Text::new(
        format!(
            "accuracy {:.2}%   macro-F1 {:.3}   ECE {:.3}   n = {}",
            metrics.accuracy * 100.0,
            metrics.macro_f1,
            metrics.ece,
            metrics.count
        ),
        (SIZE.0 as i32 / 2, MARGIN.1 + n * CELL + 30),
        font(16.0).pos(center),
    ))?;
    Ok(())
}
