//! SVG plots of the timeline: latency percentiles and throughput over time, with the phase
//! boundaries marked. SVG only, with no font library: the text is left to the viewer.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::result::TimelinePoint;

type Panel<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// One line: its legend, colour and points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

const ORANGE: RGBColor = RGBColor(230, 120, 0);
const GREY: RGBColor = RGBColor(120, 120, 120);
const SIZE: (u32, u32) = (1100, 760);

/// Produce and end-to-end latency percentiles per second (log scale, milliseconds).
pub(crate) fn write_latency_plot(
    path: &Path,
    title: &str,
    timeline: &[TimelinePoint],
) -> Result<(), String> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let series = |f: fn(&TimelinePoint) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .filter_map(|p| f(p).filter(|v| *v > 0.0).map(|v| (p.t_s, v)))
            .collect()
    };
    let produce: Vec<Line> = vec![
        ("p50", BLUE, series(|p| p.produce_p50_ms)),
        ("p99", ORANGE, series(|p| p.produce_p99_ms)),
        ("p99.9", RED, series(|p| p.produce_p99_9_ms)),
        ("max", GREY, series(|p| p.produce_max_ms)),
    ];
    let e2e: Vec<Line> = vec![
        ("p50", BLUE, series(|p| p.e2e_p50_ms)),
        ("p99", ORANGE, series(|p| p.e2e_p99_ms)),
        ("p99.9", RED, series(|p| p.e2e_p99_9_ms)),
        ("max", GREY, series(|p| p.e2e_max_ms)),
    ];
    let has_e2e = e2e.iter().any(|(_, _, points)| !points.is_empty());
    let panels = if has_e2e {
        root.split_evenly((2, 1))
    } else {
        vec![root.clone()]
    };
    let boundaries = phase_boundaries(timeline);
    let x_max = x_max(timeline);
    draw_panel(
        &panels[0],
        &format!("{title}: produce latency, ms (send → delivery report)"),
        x_max,
        &produce,
        &boundaries,
        true,
    )?;
    if let Some(panel) = panels.get(1) {
        draw_panel(
            panel,
            &format!("{title}: end-to-end latency, ms (record stamp → consumer)"),
            x_max,
            &e2e,
            &boundaries,
            true,
        )?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Throughput per second: MB/s (10^6 bytes) above, records/s below.
pub(crate) fn write_throughput_plot(
    path: &Path,
    title: &str,
    timeline: &[TimelinePoint],
) -> Result<(), String> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let series = |f: fn(&TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        timeline.iter().map(|p| (p.t_s, f(p))).collect()
    };
    let mut bytes: Vec<Line> = vec![
        ("acked", BLUE, series(|p| p.acked_mb_per_s)),
        ("consumed (tailing)", GREEN, series(|p| p.consumed_mb_per_s)),
        ("read (catch-up)", RED, series(|p| p.catch_up_mb_per_s)),
    ];
    let mut records: Vec<Line> = vec![
        ("sent", GREY, series(|p| p.sent_per_s)),
        ("acked", BLUE, series(|p| p.acked_per_s)),
        ("consumed (tailing)", GREEN, series(|p| p.consumed_per_s)),
        ("read (catch-up)", RED, series(|p| p.catch_up_per_s)),
    ];
    // Lines that stay at zero (no consumers, no catch-up) only clutter the legend.
    let nonzero = |line: &Line| line.2.iter().any(|(_, v)| *v > 0.0);
    bytes.retain(nonzero);
    records.retain(nonzero);
    let panels = root.split_evenly((2, 1));
    let boundaries = phase_boundaries(timeline);
    let x_max = x_max(timeline);
    draw_panel(
        &panels[0],
        &format!("{title}: MB/s"),
        x_max,
        &bytes,
        &boundaries,
        false,
    )?;
    draw_panel(
        &panels[1],
        &format!("{title}: records/s"),
        x_max,
        &records,
        &boundaries,
        false,
    )?;
    root.present().map_err(|e| e.to_string())
}

/// Where each phase starts: (time, name). A phase starts where the previous one's last
/// sample ends; the first starts at 0.
fn phase_boundaries(timeline: &[TimelinePoint]) -> Vec<(f64, String)> {
    timeline
        .first()
        .map(|p| (0.0, p.phase.clone()))
        .into_iter()
        .chain(
            timeline
                .windows(2)
                .filter(|w| w[0].phase != w[1].phase)
                .map(|w| (w[0].t_s, w[1].phase.clone())),
        )
        .collect()
}

/// Axis labels with as many decimals as the magnitude needs.
fn axis_label(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".to_string()
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn x_max(timeline: &[TimelinePoint]) -> f64 {
    timeline.last().map_or(1.0, |p| p.t_s.max(1.0))
}

fn draw_panel(
    panel: &Panel<'_>,
    caption: &str,
    x_max: f64,
    lines: &[Line],
    boundaries: &[(f64, String)],
    log: bool,
) -> Result<(), String> {
    let values = lines
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|(_, v)| *v));
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let mut builder = ChartBuilder::on(panel);
    builder
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70);
    if log {
        let (lo, hi) = if hi > 0.0 {
            (lo / 1.5, hi * 1.5)
        } else {
            (0.01, 1.0)
        };
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max, (lo..hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since start of warm-up")
            .y_label_formatter(&|v| axis_label(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, lines, boundaries, (lo, hi))
    } else {
        let hi = if hi > 0.0 { hi * 1.1 } else { 1.0 };
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max, 0f64..hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since start of warm-up")
            .y_label_formatter(&|v| axis_label(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, lines, boundaries, (0.0, hi))
    }
}

fn draw_lines<'a, 'b: 'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    lines: &[Line],
    boundaries: &[(f64, String)],
    (lo, hi): (f64, f64),
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    for (t, name) in boundaries {
        if *t > 0.0 {
            chart
                .draw_series(LineSeries::new(vec![(*t, lo), (*t, hi)], GREY.mix(0.5)))
                .map_err(|e| e.to_string())?;
        }
        // The phase's name just right of where it starts, at the bottom of the plot (the
        // legend takes the top left).
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {name} ▸"),
                (*t, lo),
                ("sans-serif", 12)
                    .into_font()
                    .color(&GREY)
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))
            .map_err(|e| e.to_string())?;
    }
    for (label, color, points) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if !lines.is_empty() {
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
