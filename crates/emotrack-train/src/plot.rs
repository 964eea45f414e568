//! The picture of an evaluation (PNG) with plotters: on the left the confusion matrix (rows are
//! the true class, columns the prediction; each cell shows the count and the row percentage,
//! recall on the diagonal, shaded by that percentage), on the right the reliability diagram
//! (per confidence bin, the fraction right against the mean confidence: on the diagonal for a
//! calibrated model). Font and colours come from [`emotrack::chart`].
//!
//! [`temperature_png`] draws the ECE against the softmax temperature (`emotrack calibrate
//! --plot`): what one temperature can and cannot do for the calibration.

use std::path::Path;

use emotrack::Emotion;
use emotrack::chart::{self, Canvas, ChartError};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::calibrate::CurvePoint;
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

/// One set of images on the temperature chart: a line of its ECE across temperatures.
#[derive(Debug, Clone, Copy)]
pub struct TemperatureSeries<'a> {
    /// Its name in the legend ("half A").
    pub name: &'a str,
    /// Its ECE (and noise floor) at each temperature, lowest temperature first.
    pub curve: &'a [CurvePoint],
    /// The temperature fitted on other images and the ECE it gives here: a dot on the line.
    pub held_out: CurvePoint,
    /// Its accuracy, the same at every temperature.
    pub accuracy: f64,
    /// How many images it holds.
    pub images: u64,
}

/// Size of the temperature chart in pixels.
const TEMPERATURE_SIZE: (u32, u32) = (760, 560);
/// The lines' colours, one per series in turn: the charts' accent, then an orange that stays
/// apart from it for colour-blind readers.
const SERIES_COLORS: [RGBColor; 2] = [chart::ACCENT, RGBColor(214, 110, 20)];
/// Room under the plot for the legend and the caption's lines.
const TEMPERATURE_FOOTER: u32 = 96;
/// Labelled temperatures on the chart's log axis (those inside its range).
const TEMPERATURE_TICKS: [f64; 10] = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.5];

/// Draws each series' ECE against the temperature (log axis), its noise floor dashed, the
/// temperature fitted on the other images as a dot, `target` as a grey line and `stored` (the
/// temperature the model ships with) as a faint vertical line, into a PNG at `path`.
pub fn temperature_png(
    series: &[TemperatureSeries<'_>],
    target: f64,
    stored: f32,
    path: &Path,
) -> Result<(), TrainError> {
    chart::render(TEMPERATURE_SIZE, |canvas| {
        draw_temperature(canvas, series, target, stored)
    })
    .and_then(|image| chart::save_png(&image, path))
    .map_err(|e| TrainError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn draw_temperature(
    canvas: &Canvas<'_>,
    series: &[TemperatureSeries<'_>],
    target: f64,
    stored: f32,
) -> Result<(), ChartError> {
    let points = || series.iter().flat_map(|s| s.curve.iter());
    let (t_lo, t_hi) = points().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        let t = f64::from(p.temperature);
        (lo.min(t), hi.max(t))
    });
    if !(t_lo > 0.0 && t_hi > t_lo) {
        return Err(ChartError::Draw(
            "the temperature chart needs curves over more than one temperature".into(),
        ));
    }
    // Far from the fit the ECE climbs to 0.2 and more; the chart shows up to four times the
    // target so the gap between the curves' bottoms and the target stays visible, and the
    // curves leave through the top.
    let y_hi = points()
        .map(|p| p.ece)
        .fold(target * 2.0, f64::max)
        .min(target * 4.0);
    let ticks: Vec<f64> = TEMPERATURE_TICKS
        .iter()
        .copied()
        .filter(|t| (t_lo..=t_hi).contains(t))
        .collect();
    let (plot, footer) = canvas.split_vertically(TEMPERATURE_SIZE.1 - TEMPERATURE_FOOTER);
    let mut c = ChartBuilder::on(&plot)
        .caption(
            "Calibration error against the softmax temperature",
            chart::font(chart::TITLE_SIZE),
        )
        .margin(12)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((t_lo..t_hi).log_scale().with_key_points(ticks), 0.0..y_hi)?;
    c.configure_mesh()
        .x_desc("temperature T (log scale; the logits are divided by T)")
        .y_desc("ECE")
        .x_label_formatter(&|t| format!("{t:.1}"))
        .y_label_formatter(&|e| format!("{e:.2}"))
        .axis_desc_style(chart::font(chart::LABEL_SIZE))
        .label_style(chart::font(chart::LABEL_SIZE))
        .bold_line_style(chart::GRID)
        .light_line_style(chart::BACKGROUND)
        .draw()?;
    // The model's own temperature, faint so the curves stay in front.
    let stored_t = f64::from(stored);
    if (t_lo..=t_hi).contains(&stored_t) {
        c.draw_series(LineSeries::new(
            [(stored_t, 0.0), (stored_t, y_hi)],
            chart::INK.mix(0.25),
        ))?;
        c.draw_series(std::iter::once(
            EmptyElement::at((stored_t, y_hi))
                + Text::new(
                    format!("stored T {stored:.3}"),
                    (4, 4),
                    chart::font(12.0).pos(Pos::new(HPos::Left, VPos::Top)),
                ),
        ))?;
    }
    c.draw_series(LineSeries::new(
        [(t_lo, target), (t_hi, target)],
        chart::INK.mix(0.45).stroke_width(2),
    ))?;
    c.draw_series(std::iter::once(
        EmptyElement::at((t_lo, target))
            + Text::new(
                format!("target {target:.2}"),
                (6, -3),
                chart::font(12.0).pos(Pos::new(HPos::Left, VPos::Bottom)),
            ),
    ))?;
    for (s, &color) in series.iter().zip(SERIES_COLORS.iter().cycle()) {
        let at = |p: &CurvePoint, y: f64| (f64::from(p.temperature), y);
        let floor: Vec<_> = s.curve.iter().map(|p| at(p, p.noise_floor)).collect();
        for part in below(&floor, y_hi) {
            c.draw_series(DashedLineSeries::new(
                part,
                6,
                5,
                color.mix(0.8).stroke_width(2),
            ))?;
        }
        let ece: Vec<_> = s.curve.iter().map(|p| at(p, p.ece)).collect();
        for part in below(&ece, y_hi) {
            c.draw_series(LineSeries::new(part, color.stroke_width(3)))?;
        }
        let dot = at(&s.held_out, s.held_out.ece);
        c.draw_series(std::iter::once(Circle::new(dot, 6, color.filled())))?;
        c.draw_series(std::iter::once(Circle::new(
            dot,
            6,
            chart::INK.stroke_width(1),
        )))?;
    }
    // One legend line per series, with the figures its dot stands for.
    for (i, (s, &color)) in series.iter().zip(SERIES_COLORS.iter().cycle()).enumerate() {
        let name = format!(
            "{} ({} images): ECE {:.3} at T {:.3}, fitted on the other half",
            s.name, s.images, s.held_out.ece, s.held_out.temperature
        );
        chart::legend(&footer, (72, 4 + 20 * i as i32), [(name.as_str(), color)])?;
    }
    let accuracies: Vec<String> = series
        .iter()
        .map(|s| format!("{:.2}% on {}", s.accuracy * 100.0, s.name))
        .collect();
    let notes = [
        "dashed: what a perfectly calibrated model would show (sampling alone)".to_owned(),
        format!("accuracy is the same at every T: {}", accuracies.join(", ")),
    ];
    for (i, note) in notes.iter().enumerate() {
        let y = 4 + 20 * (series.len() + i) as i32;
        footer.draw(&Text::new(note.as_str(), (72, y), chart::font(13.0)))?;
    }
    Ok(())
}

/// The parts of a line at or below `y_max`, each ended where the line crosses it (plotters
/// does not clip a line to the chart). `x` lies on a log axis, so crossings are found there.
fn below(points: &[(f64, f64)], y_max: f64) -> Vec<Vec<(f64, f64)>> {
    let mut parts: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut prev: Option<(f64, f64)> = None;
    for &(x, y) in points {
        let inside = y <= y_max;
        match prev {
            Some((px, py)) if (py <= y_max) != inside => {
                let f = (y_max - py) / (y - py);
                let cross = ((px.ln() + f * (x.ln() - px.ln())).exp(), y_max);
                if inside {
                    parts.push(vec![cross]);
                } else if let Some(part) = parts.last_mut() {
                    part.push(cross);
                }
            }
            None if inside => parts.push(Vec::new()),
            _ => {}
        }
        if inside && let Some(part) = parts.last_mut() {
            part.push((x, y));
        }
        prev = Some((x, y));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(ts: &[f32], ece: impl Fn(f32) -> f64) -> Vec<CurvePoint> {
        ts.iter()
            .map(|&t| CurvePoint {
                temperature: t,
                ece: ece(t),
                noise_floor: 0.025,
            })
            .collect()
    }

    #[test]
    fn the_temperature_chart_draws_both_halves_in_their_colours() {
        let ts = crate::calibrate::log_spaced(0.5..=1.5, 21);
        let a = curve(&ts, |t| 0.04 + f64::from((t - 0.85).abs()) / 4.0);
        let b = curve(&ts, |t| 0.02 + f64::from((t - 0.9).abs()) / 3.0);
        let series = [
            TemperatureSeries {
                name: "half A",
                curve: &a,
                held_out: a[10],
                accuracy: 0.68,
                images: 1797,
            },
            TemperatureSeries {
                name: "half B",
                curve: &b,
                held_out: b[11],
                accuracy: 0.687,
                images: 1792,
            },
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.png");
        temperature_png(&series, 0.03, 0.849, &path).expect("drawn");
        let image = image::open(&path).expect("a PNG").to_rgb8();
        assert_eq!(image.dimensions(), TEMPERATURE_SIZE);
        for color in SERIES_COLORS {
            let inked = image
                .pixels()
                .filter(|p| p.0 == [color.0, color.1, color.2]);
            assert!(inked.count() > 200, "{color:?}");
        }
    }

    #[test]
    fn lines_above_the_chart_are_cut_where_they_cross_its_top() {
        let line = [(0.5, 0.2), (1.0, 0.0), (2.0, 0.2), (4.0, 0.05)];
        let parts = below(&line, 0.1);
        assert_eq!(parts.len(), 2, "{parts:?}");
        // Halfway down in y, halfway in log x: sqrt(0.5 * 1) and sqrt(1 * 2).
        let [first, second] = [&parts[0], &parts[1]];
        assert!((first[0].0 - 0.5f64.sqrt()).abs() < 1e-9, "{parts:?}");
        assert_eq!(first[1], (1.0, 0.0));
        assert!((first[2].0 - 2f64.sqrt()).abs() < 1e-9, "{parts:?}");
        assert!(first.iter().chain(second).all(|p| p.1 <= 0.1), "{parts:?}");
        assert_eq!(second.last(), Some(&(4.0, 0.05)));
        assert_eq!(below(&[(1.0, 0.01), (2.0, 0.02)], 0.1).len(), 1);
        assert!(below(&[(1.0, 0.5)], 0.1).is_empty());
    }

    #[test]
    fn a_temperature_chart_of_one_temperature_is_refused() {
        let one = curve(&[1.0], |_| 0.05);
        let series = [TemperatureSeries {
            name: "all",
            curve: &one,
            held_out: one[0],
            accuracy: 0.7,
            images: 10,
        }];
        let dir = tempfile::tempdir().expect("tempdir");
        let err = temperature_png(&series, 0.03, 1.0, &dir.path().join("t.png"))
            .expect_err("no range to draw");
        assert!(
            err.to_string().contains("more than one temperature"),
            "{err}"
        );
    }
}
