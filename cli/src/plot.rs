//! The training plot: loss, and train and test accuracy, per epoch, drawn
//! with plotters into a PNG beside the metrics CSV it is read from. The
//! font is embedded (DejaVu Sans), so plotting needs nothing installed.

use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// One line of `metrics.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epoch {
    pub epoch: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
}

/// Parses the metrics CSV written by `netc train` (header, then one line
/// per epoch); lines that do not parse are skipped.
pub fn read_metrics(csv: &str) -> Vec<Epoch> {
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let v: Vec<f64> = l.split(',').map(|f| f.trim().parse().ok()).collect::<Option<_>>()?;
            Some(Epoch {
                epoch: *v.first()?,
                train_loss: *v.get(1)?,
                train_accuracy: *v.get(2)?,
                test_accuracy: *v.get(3)?,
            })
        })
        .collect()
}

fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded font is invalid".to_string())
        })
        .clone()
}

/// Draws `epochs` to a PNG at `path`: loss on the left, accuracy (%) on the right.
pub fn plot(epochs: &[Epoch], title: &str, path: &Path) -> Result<(), String> {
    font()?;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw `{}`: {e}", path.display());
    let root = BitMapBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(500);
    let last = epochs.last().map_or(1.0, |e| e.epoch);
    let xs = 0.5..last + 0.5;

    let max_loss = epochs.iter().map(|e| e.train_loss).fold(0.0f64, f64::max).max(1e-3) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(xs.clone(), 0.0..max_loss)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .x_labels(epochs.len().clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    let loss: Vec<(f64, f64)> = epochs.iter().map(|e| (e.epoch, e.train_loss)).collect();
    chart.draw_series(LineSeries::new(loss.clone(), RED.stroke_width(2))).map_err(|e| err(&e))?;
    chart
        .draw_series(loss.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(|e| err(&e))?;

    let low =
        epochs.iter().flat_map(|e| [e.train_accuracy, e.test_accuracy]).fold(1.0f64, f64::min);
    let floor = ((low * 100.0 - 5.0).floor()).clamp(0.0, 95.0);
    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy (%)", ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(xs, floor..100.0)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy")
        .x_labels(epochs.len().clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    for (label, color, pick) in [("train", BLUE, 0), ("test", GREEN, 1)] {
        let pts: Vec<(f64, f64)> = epochs
            .iter()
            .map(|e| (e.epoch, 100.0 * if pick == 0 { e.train_accuracy } else { e.test_accuracy }))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics_and_draws_a_png() {
        let csv = "epoch,train_loss,train_accuracy,test_accuracy,samples_per_second,seconds\n1,0.5,0.8,0.9,100,1\n2,0.2,0.95,0.97,100,1\nbad\n";
        let rows = read_metrics(csv);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].test_accuracy, 0.97);
        let path = std::env::temp_dir().join(format!("netc-plot-{}.png", std::process::id()));
        plot(&rows, "test", &path).expect("plot");
        let bytes = std::fs::read(&path).expect("png written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5_000, "a real image, not an empty one");
    }
}
