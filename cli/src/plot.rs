//! The training plot, drawn with plotters into a PNG beside the metrics:
//! the loss (every step's smoothed training loss, and each epoch's training
//! and evaluation loss), the accuracy per epoch, and the learning rate per
//! step. The font is embedded (DejaVu Sans), so plotting needs nothing
//! installed.

use crate::metrics::Records;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded font is invalid".to_string())
        })
        .clone()
}

/// A line with a legend entry.
struct Series {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    /// Dots on the points (per-epoch values), or a bare line (per step).
    dots: bool,
}

/// One panel: `series` over epochs on the x axis.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    caption: &str,
    y: std::ops::Range<f64>,
    epochs: f64,
    series: &[Series],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw the {caption} panel: {e}");
    let x = 0.0..epochs.max(1.0);
    // Plotters' pixel arithmetic overflows for a point far off the axes:
    // each is kept within one axis length of them, still off the chart.
    let near = |v: f64, r: &std::ops::Range<f64>| {
        let span = r.end - r.start;
        v.clamp(r.start - span, r.end + span)
    };
    let (xr, yr) = (x.clone(), y.clone());
    let on_chart = move |&(px, py): &(f64, f64)| (near(px, &xr), near(py, &yr));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(10)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().map(&on_chart), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        if s.dots {
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(on_chart(p), 4, color.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))
}

/// The points a chart can take: finite, and small enough that the axis
/// ranges computed from them stay finite (an infinite range made plotters
/// loop without end). Records read back on resume may hold anything.
fn drawable(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    const LIMIT: f64 = 1e300;
    points.filter(|(x, y)| x.abs() <= LIMIT && y.abs() <= LIMIT).collect()
}

/// The plot's size in pixels.
const WIDTH: u32 = 1500;
const HEIGHT: u32 = 440;

/// Draws the run's records to a PNG at `path`.
pub fn plot(records: &Records, title: &str, path: &Path) -> Result<(), String> {
    let pixels = render(records, title)?;
    image::save_buffer(path, &pixels, WIDTH, HEIGHT, image::ColorType::Rgb8)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// Draws the run's records as RGB pixels, row by row.
pub fn render(records: &Records, title: &str) -> Result<Vec<u8>, String> {
    font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(records, title, BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)))?;
    Ok(pixels)
}

fn draw(records: &Records, title: &str, backend: BitMapBackend<'_>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw the plot: {e}");
    let root = backend.into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 3));
    let epochs = records.epochs.last().map_or(1.0, |e| e.epoch as f64);
    let per_epoch = |f: fn(&crate::metrics::Epoch) -> f64| -> Vec<(f64, f64)> {
        drawable(records.epochs.iter().map(|e| (e.epoch as f64, f(e))))
    };
    let smoothed = drawable(records.steps.iter().map(|s| (s.progress, s.smoothed)));
    let losses = [
        Series {
            label: "step (smoothed)",
            color: RGBColor(230, 150, 150),
            points: smoothed,
            dots: false,
        },
        Series { label: "train", color: RED, points: per_epoch(|e| e.train_loss), dots: true },
        Series { label: "evaluation", color: BLUE, points: per_epoch(|e| e.val_loss), dots: true },
    ];
    let top = losses.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1e-3f64, f64::max);
    panel(&panels[0], "loss", 0.0..top * 1.1, epochs, &losses)?;
    let accuracy = [
        Series {
            label: "train",
            color: RED,
            points: per_epoch(|e| 100.0 * e.train_accuracy),
            dots: true,
        },
        Series {
            label: "evaluation",
            color: BLUE,
            points: per_epoch(|e| 100.0 * e.val_accuracy),
            dots: true,
        },
    ];
    let low = accuracy.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(100.0f64, f64::min);
    panel(
        &panels[1],
        "accuracy (%)",
        (low - 5.0).floor().clamp(0.0, 95.0)..100.0,
        epochs,
        &accuracy,
    )?;
    let lr = drawable(records.steps.iter().map(|s| (s.progress, s.lr)));
    let top = lr.iter().map(|p| p.1).fold(1e-12f64, f64::max);
    let rate = [Series { label: "per step", color: GREEN, points: lr, dots: false }];
    panel(&panels[2], "learning rate", 0.0..top * 1.1, epochs, &rate)?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Epoch;

    #[test]
    fn draws_a_png_of_every_panel() {
        let mut records = Records::default();
        for s in 0..40u64 {
            records.step(
                s + 1,
                (s + 1) as f64 / 20.0,
                2.0 / (1.0 + s as f64),
                0.1 * 0.95f64.powi(s as i32),
            );
        }
        for epoch in 1..=2 {
            records.epochs.push(Epoch {
                epoch,
                train_loss: 0.5 / epoch as f64,
                train_accuracy: 0.8,
                val_loss: 0.4,
                val_accuracy: 0.9,
                lr: 0.05,
                samples_per_second: 1.0,
                seconds: 1.0,
                data_seconds: 0.0,
            });
        }
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let path = tmp.path().join("plot.png");
        plot(&records, "test", &path).expect("plot");
        let bytes = std::fs::read(&path).expect("png written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 10_000, "a real image, not an empty one");
    }

    /// Records with infinite, NaN and huge values (a resumed run reads
    /// whatever its CSV files hold) draw without those points: an
    /// infinite loss made the axis range infinite and plotters loop, and
    /// a point far off the axes overflowed its pixel arithmetic.
    #[test]
    fn extreme_records_draw() {
        let cases = [
            (1, f64::INFINITY, 0.1, 0.5),
            (1, f64::NAN, 0.1, 0.5),
            (1, 1e308, 1e308, 1e308),
            (usize::MAX, 1.0, f64::INFINITY, f64::NAN),
            (0, -1e308, -1.0, f64::NEG_INFINITY),
            // Far off the axes, but within the limit: plotters' pixel
            // arithmetic overflowed (found by the `metrics` fuzz target).
            (1, -1e154, 0.1, 0.5),
            (2, 1e200, -1e250, 1e200),
        ];
        for (epoch, loss, lr, progress) in cases {
            let mut records = Records::default();
            records.step(1, progress, loss, lr);
            records.epochs.push(Epoch {
                epoch,
                train_loss: loss,
                train_accuracy: loss,
                val_loss: 0.4,
                val_accuracy: 0.9,
                lr,
                samples_per_second: 1.0,
                seconds: 1.0,
                data_seconds: 0.0,
            });
            render(&records, "extreme").expect("drawn");
        }
    }
}
