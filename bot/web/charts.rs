//! Charts as server-side SVG: bars stacked per category, bars side by side
//! per category, and one incident's timeline. No script, no third-party
//! asset; each chart is an `<svg role="img">` with a `<title>` and a
//! `<desc>`, every bar carries its own `<title>` (a tooltip), and the pages
//! print the same numbers in a table under each chart for screen readers.
//!
//! Colours come from the page's palette and always go with a legend naming
//! them, so no figure is told by colour alone.

use std::fmt::Write;

/// One series: its name, its colour (CSS), one value per category.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub values: Vec<f64>,
}

/// How the bars of several series share a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// On top of each other (parts of one total).
    Stacked,
    /// Side by side (different figures of one category).
    Grouped,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 58.0;

fn esc(s: &str) -> String {
    handlebars::html_escape(s)
}

/// A "nice" axis maximum at or above `max`: 1, 2 or 5 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

/// A bar chart of `series` over `categories` (x-axis labels), `unit` after
/// each value in the tooltips ("incidents", "min").
pub fn bars(
    id: &str,
    title: &str,
    description: &str,
    categories: &[String],
    series: &[Series],
    layout: Layout,
    unit: &str,
) -> String {
    let n = categories.len().max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = (0..categories.len())
        .map(|i| {
            let values = series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0));
            match layout {
                Layout::Stacked => values.sum::<f64>(),
                Layout::Grouped => values.fold(0.0, f64::max),
            }
        })
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let slot = plot_w / n;
    // The legend's entries, in rows that fit the width: (row, x, series).
    let mut legend = Vec::new();
    let (mut row, mut lx) = (0usize, LEFT);
    for s in series {
        let w = 28.0 + 7.5 * s.name.chars().count() as f64;
        if lx + w > WIDTH - RIGHT && lx > LEFT {
            row += 1;
            lx = LEFT;
        }
        legend.push((row, lx, s));
        lx += w;
    }
    let height = HEIGHT + row as f64 * 18.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(title),
        esc(description)
    );
    // Grid lines and the y axis's labels: 0, half, top.
    for frac in [0.0, 0.5, 1.0] {
        let v = top * frac;
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#c8ccd2" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#3b4048">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            format_value(v)
        );
    }
    if max <= 0.0 {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" fill="#3b4048">Nothing in these weeks</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    let label_every = (categories.len() / 12).max(1);
    for (i, category) in categories.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot;
        let inner = slot * 0.76;
        let pad = (slot - inner) / 2.0;
        let mut stacked = 0.0;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (x, w, y0, y1) = match layout {
                Layout::Stacked => {
                    let r = (x0 + pad, inner, y(stacked + v), y(stacked));
                    stacked += v;
                    r
                }
                Layout::Grouped => {
                    let w = inner / series.len().max(1) as f64;
                    (x0 + pad + k as f64 * w, w, y(v), y(0.0))
                }
            };
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} {} {}</title></rect>"#,
                (w - 1.0).max(1.0),
                (y1 - y0).max(0.5),
                s.colour,
                esc(category),
                esc(&s.name),
                format_value(v),
                esc(unit)
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#3b4048">{}</text>"##,
                x0 + slot / 2.0,
                HEIGHT - BOTTOM + 16.0,
                esc(category)
            );
        }
    }
    // The legend, under the axis.
    for (row, lx, s) in legend {
        let dy = row as f64 * 18.0;
        let _ = write!(
            svg,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#1f2328">{}</text>"##,
            HEIGHT - 22.0 + dy,
            s.colour,
            lx + 16.0,
            HEIGHT - 12.0 + dy,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A value as the charts print it: whole numbers without decimals.
pub fn format_value(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// A mark on an incident's timeline.
#[derive(Debug, Clone)]
pub struct Mark {
    /// Milliseconds since the incident opened.
    pub offset_ms: i64,
    pub label: String,
}

/// One incident as a bar from opened to resolved (or now): waiting for an
/// acknowledgement, then acknowledged; its events as ticks under it.
pub fn incident_timeline(
    id: &str,
    title: &str,
    acknowledged_after_ms: Option<i64>,
    length_ms: i64,
    resolved: bool,
    marks: &[Mark],
) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let length = length_ms.max(1) as f64;
    let x = |ms: i64| LEFT + (ms.clamp(0, length_ms.max(1)) as f64 / length) * plot_w;
    let ack_x = acknowledged_after_ms.map(x).unwrap_or(WIDTH - RIGHT);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} 120" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title><desc id="{id}-d">From open to {} in {}; {} events.</desc>"#,
        esc(title),
        if resolved { "resolution" } else { "now" },
        crate::time::human_duration(std::time::Duration::from_millis(
            u64::try_from(length_ms).unwrap_or(0)
        )),
        marks.len()
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="20" width="{:.1}" height="24" fill="#b3261e"><title>Waiting for an acknowledgement</title></rect>"##,
        (ack_x - LEFT).max(1.0)
    );
    if acknowledged_after_ms.is_some() {
        let _ = write!(
            svg,
            r##"<rect x="{ack_x:.1}" y="20" width="{:.1}" height="24" fill="{}"><title>{}</title></rect>"##,
            (WIDTH - RIGHT - ack_x).max(1.0),
            if resolved { "#1a7f37" } else { "#9a6700" },
            if resolved {
                "Acknowledged, until resolved"
            } else {
                "Acknowledged, still open"
            }
        );
    }
    for m in marks {
        let mx = x(m.offset_ms);
        let _ = write!(
            svg,
            r##"<line x1="{mx:.1}" x2="{mx:.1}" y1="48" y2="62" stroke="#1f2328" stroke-width="1.5"><title>{}</title></line>"##,
            esc(&m.label)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="84" font-size="12" fill="#1f2328">opened</text><text x="{}" y="84" font-size="12" text-anchor="end" fill="#1f2328">{}</text><rect x="{LEFT}" y="96" width="12" height="12" fill="#b3261e"/><text x="{}" y="106" font-size="12" fill="#1f2328">waiting for an acknowledgement</text><rect x="{}" y="96" width="12" height="12" fill="#1a7f37"/><text x="{}" y="106" font-size="12" fill="#1f2328">acknowledged</text></svg>"##,
        WIDTH - RIGHT,
        if resolved { "resolved" } else { "now" },
        LEFT + 16.0,
        LEFT + 260.0,
        LEFT + 276.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stacked_chart_draws_one_bar_per_nonzero_value_with_its_figure_as_a_tooltip() {
        let svg = bars(
            "c",
            "Incidents per week",
            "Two weeks",
            &["W1".into(), "W2".into()],
            &[
                Series {
                    name: "P0".into(),
                    colour: "#b3261e",
                    values: vec![1.0, 0.0],
                },
                Series {
                    name: "P1 <x>".into(),
                    colour: "#9a6700",
                    values: vec![2.0, 3.0],
                },
            ],
            Layout::Stacked,
            "incidents",
        );
        assert_eq!(svg.matches("<title>W").count(), 3);
        assert!(svg.contains("<title>W2: P1 &lt;x&gt; 3 incidents</title>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(!svg.contains("<x>"));
    }

    #[test]
    fn axes_end_on_a_round_number() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
    }
}
