//! The plots, drawn on the server as SVG (plotters' SVG backend, no fonts): a line with
//! one marked point per value. Axis ranges and the newest value are written beside each
//! plot in HTML, where the browser's own fonts show them.

use super::html::esc;
use plotters::prelude::*;

/// One series to draw: (x, y) points, x in seconds since the epoch.
pub struct Plot<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub points: Vec<(f64, f64)>,
    /// How a y value reads (a size, seconds, a ratio).
    pub unit: fn(f64) -> String,
    /// A limit drawn as a horizontal line (a maximum RTO, say).
    pub limit: Option<f64>,
}

const WIDTH: u32 = 560;
const HEIGHT: u32 = 220;

fn range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if (hi - lo).abs() < f64::EPSILON {
        (lo - 1.0)..(hi + 1.0)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad)..(hi + pad)
    }
}

/// The SVG of a plot (the empty string when plotters fails, which only a zero-sized
/// drawing area could make it do).
fn svg(p: &Plot<'_>) -> String {
    let mut out = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let xs = p.points.iter().map(|q| q.0);
        let (x0, x1) = xs.clone().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let ys = p.points.iter().map(|q| q.1).chain(p.limit);
        let y1 = ys.fold(0f64, f64::max);
        let mut chart =
            ChartBuilder::on(&root).margin(12).build_cartesian_2d(range(x0, x1), range(0.0, y1))?;
        let (xr, yr) = (range(x0, x1), range(0.0, y1));
        let frame = [
            (xr.start, yr.start),
            (xr.end, yr.start),
            (xr.end, yr.end),
            (xr.start, yr.end),
            (xr.start, yr.start),
        ];
        chart.draw_series(LineSeries::new(frame, RGBColor(200, 200, 200)))?;
        if let Some(l) = p.limit {
            chart.draw_series(LineSeries::new([(xr.start, l), (xr.end, l)], RED.stroke_width(1)))?;
        }
        let blue = RGBColor(31, 98, 180);
        chart.draw_series(LineSeries::new(p.points.iter().copied(), blue.stroke_width(2)))?;
        chart.draw_series(p.points.iter().map(|&q| Circle::new(q, 3, blue.filled())))?;
        root.present()?;
        Ok(())
    })();
    if drawn.is_err() {
        return String::new();
    }
    out
}

fn day(secs: f64) -> String {
    jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A plot in its figure, with its ranges and newest value as text; a note when there is
/// nothing to draw yet.
pub fn figure(p: &Plot<'_>) -> String {
    let Some(last) = p.points.last() else {
        return format!(
            "<figure id=\"{}\" data-points=\"0\"><figcaption>{}</figcaption><p class=\"note\">Nothing recorded yet.</p></figure>",
            p.id,
            esc(p.title)
        );
    };
    let first = p.points[0];
    let top = p.points.iter().map(|q| q.1).fold(0f64, f64::max);
    let limit = p.limit.map(|l| format!(", limit {} (red line)", (p.unit)(l))).unwrap_or_default();
    format!(
        "<figure id=\"{}\" data-points=\"{}\"><figcaption>{}</figcaption>{}\
         <p class=\"axes\">{} to {}; highest {}, newest {}{}</p></figure>",
        p.id,
        p.points.len(),
        esc(p.title),
        svg(p),
        day(first.0),
        day(last.0),
        esc(&(p.unit)(top)),
        esc(&(p.unit)(last.1)),
        esc(&limit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(points: Vec<(f64, f64)>) -> String {
        figure(&Plot { id: "p", title: "t", points, unit: |v| format!("{v}"), limit: Some(5.0) })
    }

    #[test]
    fn every_value_is_one_marked_point() {
        let out = plot(vec![(1.7e9, 1.0), (1.7e9 + 60.0, 3.0), (1.7e9 + 120.0, 2.0)]);
        assert_eq!(out.matches("<circle").count(), 3, "{out}");
        assert!(out.contains("<svg") && out.contains("data-points=\"3\""));
    }

    #[test]
    fn one_point_and_no_point_are_drawn_too() {
        assert_eq!(plot(vec![(1.7e9, 0.0)]).matches("<circle").count(), 1);
        assert!(!plot(Vec::new()).contains("<svg"));
    }
}
