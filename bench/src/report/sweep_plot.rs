//! Latency against throughput: one point per rate step of a max-throughput run (the seeds'
//! "TP999 at rising throughput" figures), produce above and end-to-end below, one curve per
//! broker or configuration.

use std::path::Path;

use plotters::prelude::*;

use super::result::RunResult;
use crate::stats::Percentiles;

const SIZE: (u32, u32) = (1100, 760);
const PALETTE: [RGBColor; 6] = [
    BLUE,
    RED,
    RGBColor(0, 150, 0),
    RGBColor(230, 120, 0),
    MAGENTA,
    RGBColor(120, 120, 120),
];

/// One rate step: what was acknowledged per second, and the latencies of the step.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    pub records_per_s: f64,
    pub produce: Option<Percentiles>,
    pub end_to_end: Option<Percentiles>,
}

/// The steps of one run.
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub points: Vec<SweepPoint>,
}

impl Curve {
    /// The run's rate steps, if it was a max-throughput run.
    pub fn of(label: impl Into<String>, result: &RunResult) -> Option<Curve> {
        result.max_throughput.as_ref()?;
        let points: Vec<SweepPoint> = result
            .phases
            .iter()
            .map(|phase| SweepPoint {
                records_per_s: phase.produce.records_per_s,
                produce: phase.produce.latency,
                end_to_end: phase.end_to_end.as_ref().and_then(|c| c.latency),
            })
            .collect();
        (!points.is_empty()).then(|| Curve {
            label: label.into(),
            points,
        })
    }
}

/// Writes p99 (thin) and p99.9 (thick, with markers) against acknowledged records/s.
pub(crate) fn write_sweep_plot(path: &Path, title: &str, curves: &[Curve]) -> Result<(), String> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let has_e2e = curves
        .iter()
        .any(|c| c.points.iter().any(|p| p.end_to_end.is_some()));
    let panels = if has_e2e {
        root.split_evenly((2, 1))
    } else {
        vec![root.clone()]
    };
    draw(
        &panels[0],
        &format!("{title}: produce latency, ms, against acknowledged records/s"),
        curves,
        |p| p.produce.as_ref(),
    )?;
    if let Some(panel) = panels.get(1) {
        draw(
            panel,
            &format!("{title}: end-to-end latency, ms, against acknowledged records/s"),
            curves,
            |p| p.end_to_end.as_ref(),
        )?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw(
    panel: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    curves: &[Curve],
    latency: fn(&SweepPoint) -> Option<&Percentiles>,
) -> Result<(), String> {
    let values = curves.iter().flat_map(|c| {
        c.points
            .iter()
            .filter_map(latency)
            .flat_map(|l| [l.p99_ms, l.p99_9_ms])
    });
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.01, 1.0)
    };
    let x_max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.records_per_s))
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("acknowledged records/s")
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, curve) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let series = |pick: fn(&Percentiles) -> f64| -> Vec<(f64, f64)> {
            curve
                .points
                .iter()
                .filter_map(|p| latency(p).map(|l| (p.records_per_s, pick(l))))
                .filter(|(_, v)| *v > 0.0)
                .collect()
        };
        let p999 = series(|l| l.p99_9_ms);
        chart
            .draw_series(LineSeries::new(p999.clone(), color.stroke_width(3)))
            .map_err(|e| e.to_string())?
            .label(format!("{} p99.9", curve.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .draw_series(
                p999.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                series(|l| l.p99_ms),
                color.mix(0.6).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{} p99", curve.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.6).stroke_width(1))
            });
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
