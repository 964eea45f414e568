//! The picture of an evaluation (PNG) with plotters: on the left the confusion matrix (rows are
//! the true class, columns the prediction; each cell shows the count and the row percentage,
//! recall on the diagonal, shaded by that percentage), on the right the reliability diagram
//! (per confidence bin, the fraction right against the mean confidence: on the diagonal for a
//! calibrated model). Font and colours come from [`emotrack::chart`].

use std::path::Path;

use emotrack::Emotion;
use emotrack::chart::{self, Canvas, ChartError};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::TrainError;
use crate::metrics::Metrics;

/// Picture size in pixels, and the width of the confusion matrix's part.
const SIZE: (u32, u32) = (1200, 740);
const MATRIX_WIDTH: u32 = 760;
/// Left and top margins holding the labels.
const MARGIN: (i32, i32) = (120, 90);
/// Side of one cell.
const CELL: i32 = 84;

/// Draws `metrics.confusion` and `metrics.reliability` into a PNG at `path`, with `title`
/// above the matrix.
pub fn metrics_png(metrics: &Metrics, title: &str, path: &Path) -> Result<(), TrainError> {
    chart::render(SIZE, |canvas| {
        let (matrix, reliability) = canvas.split_horizontally(MATRIX_WIDTH);
        draw(&matrix, metrics, title)?;
        draw_reliability(&reliability, metrics)
    })
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
        (MATRIX_WIDTH as i32 / 2, 22),
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
            let RGBColor(r, g, b) = chart::ACCENT;
            let fill = RGBColor(shade(r.into()), shade(g.into()), shade(b.into()));
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
        (MATRIX_WIDTH as i32 / 2, MARGIN.1 + n * CELL + 30),
        font(16.0).pos(center),
    ))?;
    Ok(())
}

/// The reliability diagram: a bar per confidence bin as high as the fraction right, the
/// diagonal of perfect calibration, and the ECE.
fn draw_reliability(area: &Canvas<'_>, metrics: &Metrics) -> Result<(), ChartError> {
    let mut c = ChartBuilder::on(area)
        .caption("reliability", chart::font(20.0))
        .margin_top(MARGIN.1 - 50)
        .margin_right(30)
        .margin_bottom(60)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    c.configure_mesh()
        .x_desc("confidence (top probability)")
        .y_desc("fraction right")
        .axis_desc_style(chart::font(chart::LABEL_SIZE))
        .label_style(chart::font(chart::LABEL_SIZE))
        .bold_line_style(chart::GRID)
        .light_line_style(chart::BACKGROUND)
        .draw()?;
    let bar = chart::ACCENT;
    c.draw_series(metrics.reliability.iter().filter(|b| b.count > 0).map(|b| {
        Rectangle::new(
            [(b.lower, 0.0), (b.upper, b.accuracy)],
            bar.mix(0.8).filled(),
        )
    }))?;
    // Where each bin's predictions sit: a dot at its mean confidence.
    c.draw_series(
        metrics
            .reliability
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| Circle::new((b.confidence, b.accuracy), 3, chart::INK.filled())),
    )?;
    c.draw_series(LineSeries::new(
        [(0.0, 0.0), (1.0, 1.0)],
        chart::INK.mix(0.6),
    ))?;
    area.draw(&Text::new(
        format!("ECE {:.3}   NLL {:.3}", metrics.ece, metrics.nll),
        (80, SIZE.1 as i32 - 40),
        chart::font(16.0),
    ))?;
    Ok(())
}
