//! Charts drawn on the server as SVG text, for the back office's report pages.
//!
//! Pure functions from data to markup: no script, no web fonts, no client library, so a
//! page with charts works with scripts off and under a strict content security policy.
//! Every chart is an image with a name and a description for assistive technology
//! (`role="img"`, `aria-labelledby` pointing at its `<title>` and `<desc>`), its series
//! told apart by more than colour (hatched bars, marker shapes on lines, a legend in
//! words), its colours of at least 4.5:1 contrast on white (WCAG 2.1 AA for text, above
//! the 3:1 asked of graphics), and [`data_table`] renders the same data as an HTML table,
//! the alternative to put next to it. Every text given is escaped.

use std::fmt::Write;

/// How numbers are written (axes, tooltips, tables): `12.5` or, for Italian pages, `12,5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumberStyle {
    /// Decimal point.
    #[default]
    Point,
    /// Decimal comma.
    Comma,
}

/// One series: a name for the legend and one value per category (`None` where there is
/// nothing to show: no bar, a gap in the line).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name shown in the legend, tooltips and table header.
    pub name: String,
    /// Values, aligned with [`ChartData::categories`].
    pub values: Vec<Option<f64>>,
}

/// What a chart shows and how it is named.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartData {
    /// Prefix of the element ids (`{id}-title`, `{id}-desc`…): unique on the page. Only
    /// ASCII letters, digits, `-` and `_` are kept.
    pub id: String,
    /// The chart's name (`<title>`, the table's `<caption>`).
    pub title: String,
    /// What it shows, in a sentence or two (`<desc>`), e.g. the trend in words.
    pub description: String,
    /// Name of the horizontal axis (the categories).
    pub x_label: String,
    /// Name of the vertical axis (the values, with their unit).
    pub y_label: String,
    /// The categories along the horizontal axis (weeks, months, case types…).
    pub categories: Vec<String>,
    /// The series drawn.
    pub series: Vec<Series>,
    /// How numbers are written.
    pub numbers: NumberStyle,
}

/// Series colours, each at least 4.5:1 against white (checked by a test): blue, orange,
/// green, purple, then again.
pub const PALETTE: [&str; 4] = ["#1f4e99", "#a8460d", "#1b6b3a", "#6e3596"];

const TEXT: &str = "#1a1a1a";
const AXIS: &str = "#595959";
const GRID: &str = "#d9d9d9";
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 60.0;

/// Escapes text for XML and HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn clean_id(id: &str) -> String {
    let kept: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if kept.is_empty() {
        "chart".into()
    } else {
        kept
    }
}

/// A number as people read it: whole numbers without decimals, others with at most two.
pub fn format_number(x: f64, style: NumberStyle) -> String {
    let text = if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    match style {
        NumberStyle::Point => text,
        NumberStyle::Comma => text.replace('.', ","),
    }
}

/// Round tick values covering `min..=max`, about `count` of them (steps of 1, 2, 2.5 or
/// 5 times a power of ten).
pub fn nice_ticks(min: f64, max: f64, count: usize) -> Vec<f64> {
    let (min, max) = if max > min {
        (min, max)
    } else {
        (min, min + 1.0)
    };
    let raw = (max - min) / count.max(1) as f64;
    let power = 10_f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let first = (min / step).floor() as i64;
    let tick = |i: i64| ((i as f64 * step) * 1e9).round() / 1e9;
    let mut ticks = vec![tick(first)];
    let mut i = first;
    while ticks.last().is_some_and(|t| *t < max - step * 1e-9) || ticks.len() < 2 {
        i += 1;
        ticks.push(tick(i));
    }
    ticks
}

/// Geometry shared by both kinds of chart.
struct Frame {
    id: String,
    width: f64,
    plot_w: f64,
    plot_h: f64,
    ticks: Vec<f64>,
}

impl Frame {
    fn new(data: &ChartData, min_band: f64) -> Frame {
        let n = data.categories.len().max(1) as f64;
        let width = (LEFT + RIGHT + n * min_band).clamp(480.0, 1400.0);
        let values = data.series.iter().flat_map(|s| s.values.iter().flatten());
        let (lo, hi) = values.fold((0.0_f64, 0.0_f64), |(lo, hi), v| {
            if v.is_finite() {
                (lo.min(*v), hi.max(*v))
            } else {
                (lo, hi)
            }
        });
        Frame {
            id: clean_id(&data.id),
            width,
            plot_w: width - LEFT - RIGHT,
            plot_h: HEIGHT - TOP - BOTTOM,
            ticks: nice_ticks(lo, hi, 5),
        }
    }

    fn y(&self, v: f64) -> f64 {
        let (lo, hi) = (
            self.ticks.first().copied().unwrap_or(0.0),
            self.ticks.last().copied().unwrap_or(1.0),
        );
        TOP + self.plot_h * (1.0 - (v - lo) / (hi - lo).max(f64::MIN_POSITIVE))
    }

    fn band(&self, n: usize) -> f64 {
        self.plot_w / n.max(1) as f64
    }

    /// Opening tag, title, description, axes, grid, tick and axis labels, legend.
    fn open(&self, data: &ChartData, kind: &str, defs: &str) -> String {
        let id = &self.id;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart chart-{kind}\" role=\"img\" \
             aria-labelledby=\"{id}-title {id}-desc\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"sans-serif\" font-size=\"12\">\
             <title id=\"{id}-title\">{title}</title><desc id=\"{id}-desc\">{desc}</desc>{defs}\
             <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>",
            w = fmt(self.width),
            h = fmt(HEIGHT),
            title = escape(&data.title),
            desc = escape(&data.description),
        );
        // Horizontal grid and the value axis.
        s.push_str("<g class=\"grid\" aria-hidden=\"true\">");
        for t in &self.ticks {
            let y = fmt(self.y(*t));
            let _ = write!(
                s,
                "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{GRID}\"/>\
                 <text x=\"{tx}\" y=\"{y}\" dy=\"0.32em\" text-anchor=\"end\" fill=\"{TEXT}\">{label}</text>",
                x1 = fmt(LEFT),
                x2 = fmt(LEFT + self.plot_w),
                tx = fmt(LEFT - 6.0),
                label = escape(&format_number(*t, data.numbers)),
            );
        }
        let base = fmt(self.y(0.0_f64.clamp(
            self.ticks.first().copied().unwrap_or(0.0),
            self.ticks.last().copied().unwrap_or(1.0),
        )));
        let _ = write!(
            s,
            "</g><line class=\"axis\" x1=\"{l}\" y1=\"{top}\" x2=\"{l}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>\
             <line class=\"axis\" x1=\"{l}\" y1=\"{base}\" x2=\"{r}\" y2=\"{base}\" stroke=\"{AXIS}\"/>",
            l = fmt(LEFT),
            r = fmt(LEFT + self.plot_w),
            top = fmt(TOP),
            bottom = fmt(TOP + self.plot_h),
        );
        // Category labels, thinned so that they do not overlap.
        let n = data.categories.len();
        let longest = data
            .categories
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(1) as f64;
        let per_label = longest * 7.0 + 10.0;
        let every = ((n as f64 * per_label) / self.plot_w).ceil().max(1.0) as usize;
        s.push_str("<g class=\"x-labels\">");
        for (i, c) in data.categories.iter().enumerate() {
            if i % every != 0 {
                continue;
            }
            let x = LEFT + self.band(n) * (i as f64 + 0.5);
            let _ = write!(
                s,
                "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" fill=\"{TEXT}\">{c}</text>",
                x = fmt(x),
                y = fmt(TOP + self.plot_h + 16.0),
                c = escape(c),
            );
        }
        let _ = write!(
            s,
            "</g><text class=\"x-title\" x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" fill=\"{TEXT}\">{label}</text>\
             <text class=\"y-title\" x=\"14\" y=\"{ym}\" text-anchor=\"middle\" fill=\"{TEXT}\" transform=\"rotate(-90 14 {ym})\">{ylabel}</text>",
            x = fmt(LEFT + self.plot_w / 2.0),
            y = fmt(HEIGHT - 12.0),
            label = escape(&data.x_label),
            ym = fmt(TOP + self.plot_h / 2.0),
            ylabel = escape(&data.y_label),
        );
        s
    }

    fn legend(&self, data: &ChartData, swatch: impl Fn(usize, f64, f64) -> String) -> String {
        let mut s = String::from("<g class=\"legend\">");
        let mut x = LEFT;
        for (k, series) in data.series.iter().enumerate() {
            s.push_str(&swatch(k, x, 16.0));
            let _ = write!(
                s,
                "<text x=\"{tx}\" y=\"22\" dy=\"0.1em\" fill=\"{TEXT}\">{name}</text>",
                tx = fmt(x + 18.0),
                name = escape(&series.name),
            );
            x += 18.0 + series.name.chars().count() as f64 * 7.0 + 20.0;
        }
        s.push_str("</g>");
        s
    }
}

fn fmt(x: f64) -> String {
    format_number(x, NumberStyle::Point)
}

fn colour(k: usize) -> &'static str {
    PALETTE[k % PALETTE.len()]
}

/// Fill of series `k`'s bars: solid for the first, hatched in three ways for the next, so
/// that bars are told apart without colour.
fn bar_fill(id: &str, k: usize) -> String {
    if k.is_multiple_of(4) {
        colour(k).to_owned()
    } else {
        format!("url(#{id}-fill{k})")
    }
}

fn bar_patterns(id: &str, series: usize) -> String {
    let mut s = String::from("<defs>");
    for k in 1..series {
        let c = colour(k);
        let (rotate, body) = match k % 4 {
            1 => (45, format!("<rect width=\"3\" height=\"6\" fill=\"{c}\"/>")),
            2 => (
                0,
                format!("<circle cx=\"3\" cy=\"3\" r=\"1.8\" fill=\"{c}\"/>"),
            ),
            3 => (
                45,
                format!(
                    "<rect width=\"2\" height=\"6\" fill=\"{c}\"/><rect width=\"6\" height=\"2\" fill=\"{c}\"/>"
                ),
            ),
            _ => (0, format!("<rect width=\"6\" height=\"6\" fill=\"{c}\"/>")),
        };
        let _ = write!(
            s,
            "<pattern id=\"{id}-fill{k}\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
             patternTransform=\"rotate({rotate})\"><rect width=\"6\" height=\"6\" fill=\"#ffffff\"/>{body}</pattern>"
        );
    }
    s.push_str("</defs>");
    s
}

/// Tooltip text of one value: `category — series: value`.
fn point_title(data: &ChartData, i: usize, k: usize, v: f64) -> String {
    escape(&format!(
        "{} — {}: {}",
        data.categories.get(i).map_or("", String::as_str),
        data.series.get(k).map_or("", |s| s.name.as_str()),
        format_number(v, data.numbers)
    ))
}

/// A grouped bar chart: one group of bars per category, one bar per series (e.g. cases
/// opened against closed per week). Each bar carries its value as a tooltip.
pub fn bar_chart(data: &ChartData) -> String {
    let frame = Frame::new(data, 14.0 * data.series.len().max(1) as f64 + 8.0);
    let id = frame.id.clone();
    let mut s = frame.open(data, "bar", &bar_patterns(&id, data.series.len()));
    let n = data.categories.len();
    let band = frame.band(n);
    let inner = band * 0.8;
    let bar_w = inner / data.series.len().max(1) as f64;
    let zero = frame.y(0.0_f64.max(frame.ticks.first().copied().unwrap_or(0.0)));
    s.push_str("<g class=\"bars\">");
    for (k, series) in data.series.iter().enumerate() {
        let fill = bar_fill(&id, k);
        for (i, v) in series.values.iter().enumerate().take(n) {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            let x = LEFT + band * i as f64 + (band - inner) / 2.0 + bar_w * k as f64;
            let y = frame.y(v);
            let (top, height) = if y <= zero {
                (y, zero - y)
            } else {
                (zero, y - zero)
            };
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{x}\" y=\"{top}\" width=\"{w}\" height=\"{h}\" fill=\"{fill}\" \
                 stroke=\"{c}\"><title>{t}</title></rect>",
                x = fmt(x),
                top = fmt(top),
                w = fmt((bar_w - 1.0).max(1.0)),
                h = fmt(height),
                c = colour(k),
                t = point_title(data, i, k, v),
            );
        }
    }
    s.push_str("</g>");
    s.push_str(&frame.legend(data, |k, x, y| {
        format!(
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\" stroke=\"{}\"/>",
            fmt(x),
            fmt(y - 6.0),
            bar_fill(&id, k),
            colour(k)
        )
    }));
    s.push_str("</svg>");
    s
}

/// Marker of series `k` at (x, y): circle, square, triangle, diamond.
fn marker(k: usize, x: f64, y: f64, title: &str) -> String {
    let c = colour(k);
    let shape = match k % 4 {
        0 => format!(
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{c}\">",
            fmt(x),
            fmt(y)
        ),
        1 => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"8\" fill=\"{c}\">",
            fmt(x - 4.0),
            fmt(y - 4.0)
        ),
        2 => format!(
            "<polygon points=\"{},{} {},{} {},{}\" fill=\"{c}\">",
            fmt(x),
            fmt(y - 5.0),
            fmt(x + 5.0),
            fmt(y + 4.0),
            fmt(x - 5.0),
            fmt(y + 4.0)
        ),
        _ => format!(
            "<polygon points=\"{},{} {},{} {},{} {},{}\" fill=\"{c}\">",
            fmt(x),
            fmt(y - 5.0),
            fmt(x + 5.0),
            fmt(y),
            fmt(x),
            fmt(y + 5.0),
            fmt(x - 5.0),
            fmt(y)
        ),
    };
    let close = match k % 4 {
        0 => "</circle>",
        1 => "</rect>",
        _ => "</polygon>",
    };
    format!("{shape}<title>{title}</title>{close}")
}

/// A line chart: one line per series across the categories (e.g. the median lead time
/// per month), with a marker on each value; a missing value breaks the line.
pub fn line_chart(data: &ChartData) -> String {
    let frame = Frame::new(data, 24.0);
    let mut s = frame.open(data, "line", "");
    let n = data.categories.len();
    let band = frame.band(n);
    s.push_str("<g class=\"lines\">");
    for (k, series) in data.series.iter().enumerate() {
        let mut path = String::new();
        let mut markers = String::new();
        let mut pen_down = false;
        for (i, v) in series.values.iter().enumerate().take(n) {
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    let (x, y) = (LEFT + band * (i as f64 + 0.5), frame.y(v));
                    let _ = write!(
                        path,
                        "{}{},{} ",
                        if pen_down { "L" } else { "M" },
                        fmt(x),
                        fmt(y)
                    );
                    pen_down = true;
                    markers.push_str(&marker(k, x, y, &point_title(data, i, k, v)));
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            s,
            "<g class=\"series\"><path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>{markers}</g>",
            path.trim_end(),
            colour(k)
        );
    }
    s.push_str("</g>");
    s.push_str(&frame.legend(data, |k, x, y| {
        format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>{}",
            fmt(x - 2.0),
            fmt(y),
            fmt(x + 14.0),
            fmt(y),
            colour(k),
            marker(k, x + 6.0, y, "").replace("<title></title>", "")
        )
    }));
    s.push_str("</svg>");
    s
}

/// The chart's data as an HTML table (the accessible alternative to show with the chart
/// or behind a "show the data" disclosure): the title as `<caption>`, a row per category
/// with its header cell, a column per series; a missing value is an empty cell.
pub fn data_table(data: &ChartData) -> String {
    let mut s = format!(
        "<table class=\"chart-data\" id=\"{}-data\"><caption>{}</caption><thead><tr><th scope=\"col\">{}</th>",
        clean_id(&data.id),
        escape(&data.title),
        escape(&data.x_label)
    );
    for series in &data.series {
        let _ = write!(s, "<th scope=\"col\">{}</th>", escape(&series.name));
    }
    s.push_str("</tr></thead><tbody>");
    for (i, c) in data.categories.iter().enumerate() {
        let _ = write!(s, "<tr><th scope=\"row\">{}</th>", escape(c));
        for series in &data.series {
            let cell = series
                .values
                .get(i)
                .copied()
                .flatten()
                .filter(|v| v.is_finite())
                .map(|v| format_number(v, data.numbers))
                .unwrap_or_default();
            let _ = write!(s, "<td>{}</td>", escape(&cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly() -> ChartData {
        ChartData {
            id: "weekly".into(),
            title: "Pratiche aperte e chiuse per settimana".into(),
            description: "Nelle ultime tre settimane le chiusure superano le aperture.".into(),
            x_label: "Settimana".into(),
            y_label: "Pratiche".into(),
            categories: vec!["2026-W46".into(), "2026-W47".into(), "2026-W48".into()],
            series: vec![
                Series {
                    name: "Aperte".into(),
                    values: vec![Some(12.0), Some(9.0), Some(7.0)],
                },
                Series {
                    name: "Chiuse".into(),
                    values: vec![Some(10.0), None, Some(11.5)],
                },
            ],
            numbers: NumberStyle::Comma,
        }
    }

    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast_on_white(hex: &str) -> f64 {
        1.05 / (luminance(hex) + 0.05)
    }

    #[test]
    fn colours_meet_wcag_aa_on_white() {
        for c in PALETTE.iter().chain([TEXT, AXIS].iter()) {
            let ratio = contrast_on_white(c);
            assert!(ratio >= 4.5, "{c}: {ratio:.2}");
        }
        assert!(
            (contrast_on_white("#767676") - 4.54).abs() < 0.01,
            "the formula"
        );
    }

    #[test]
    fn bar_chart_is_an_accessible_image() {
        let svg = bar_chart(&weekly());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"weekly-title weekly-desc\""));
        assert!(
            svg.contains(
                "<title id=\"weekly-title\">Pratiche aperte e chiuse per settimana</title>"
            )
        );
        assert!(svg.contains("<desc id=\"weekly-desc\">Nelle ultime"));
        assert!(!svg.contains("<script") && !svg.contains("style="));
        assert_eq!(
            svg.matches("class=\"bar\"").count(),
            5,
            "the missing value has no bar"
        );
        assert!(svg.contains("<title>2026-W48 — Chiuse: 11,5</title>"));
        assert!(
            svg.contains("fill=\"url(#weekly-fill1)\""),
            "the second series is hatched"
        );
        assert!(svg.contains("<pattern id=\"weekly-fill1\""));
        for label in ["2026-W46", "Settimana", "Pratiche", "Aperte", "Chiuse"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        // The value axis: 0 to 12.5 by 2.5 (written with a comma).
        assert!(svg.contains(">0</text>") && svg.contains(">12,5</text>"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn line_chart_breaks_at_missing_values() {
        let svg = line_chart(&weekly());
        assert!(svg.contains("role=\"img\"") && svg.contains("<desc id=\"weekly-desc\">"));
        assert_eq!(svg.matches("class=\"line\"").count(), 2);
        let paths: Vec<&str> = svg
            .split("class=\"line\" d=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap())
            .collect();
        assert_eq!(paths[0].matches('M').count(), 1);
        assert_eq!(paths[0].matches('L').count(), 2);
        assert_eq!(paths[1].matches('M').count(), 2, "a gap: {}", paths[1]);
        assert_eq!(paths[1].matches('L').count(), 0);
        // Markers: circles for the first series, squares for the second (and legend).
        assert_eq!(svg.matches("<circle").count(), 3 + 1);
        assert!(svg.contains("<title>2026-W47 — Aperte: 9</title>"));
    }

    #[test]
    fn everything_given_is_escaped() {
        let mut data = weekly();
        data.id = "x\" onload=\"alert(1)".into();
        data.title = "<script>alert('t')</script>".into();
        data.description = "a & b".into();
        data.categories[0] = "<b>W46</b>".into();
        data.series[0].name = "\"Aperte\"".into();
        for out in [bar_chart(&data), line_chart(&data), data_table(&data)] {
            assert!(!out.contains("<script"), "{out}");
            assert!(!out.contains("<b>"));
            assert!(!out.contains("onload=\""));
            assert!(out.contains("&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;"));
            assert!(out.contains("&lt;b&gt;W46&lt;/b&gt;"));
            assert!(out.contains("&quot;Aperte&quot;"));
        }
        assert!(bar_chart(&data).contains("aria-labelledby=\"xonloadalert1-title"));
        assert!(bar_chart(&data).contains("<desc id=\"xonloadalert1-desc\">a &amp; b</desc>"));
    }

    #[test]
    fn the_table_is_the_same_data() {
        let html = data_table(&weekly());
        assert!(html.starts_with("<table class=\"chart-data\" id=\"weekly-data\"><caption>Pratiche aperte e chiuse per settimana</caption>"));
        assert!(html.contains(
            "<thead><tr><th scope=\"col\">Settimana</th><th scope=\"col\">Aperte</th><th scope=\"col\">Chiuse</th></tr></thead>"
        ));
        assert!(html.contains("<tr><th scope=\"row\">2026-W47</th><td>9</td><td></td></tr>"));
        assert!(html.contains("<tr><th scope=\"row\">2026-W48</th><td>7</td><td>11,5</td></tr>"));
        assert_eq!(html.matches("<tr>").count(), 4);
    }

    #[test]
    fn numbers_and_ticks() {
        assert_eq!(format_number(12.0, NumberStyle::Point), "12");
        assert_eq!(format_number(2.5, NumberStyle::Comma), "2,5");
        assert_eq!(format_number(0.126, NumberStyle::Point), "0.13");
        assert_eq!(format_number(-3.0, NumberStyle::Point), "-3");
        assert_eq!(nice_ticks(0.0, 11.5, 5), [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]);
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(0.0, 0.0, 5), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let t = nice_ticks(-3.0, 7.0, 5);
        assert!(
            t.first().unwrap() <= &-3.0 && t.last().unwrap() >= &7.0,
            "{t:?}"
        );
    }

    #[test]
    fn empty_data_still_draws_a_named_frame() {
        let data = ChartData {
            id: String::new(),
            title: "Nessun dato".into(),
            ..ChartData::default()
        };
        let svg = bar_chart(&data);
        assert!(svg.contains("aria-labelledby=\"chart-title chart-desc\""));
        assert_eq!(svg.matches("class=\"bar\"").count(), 0);
        assert!(line_chart(&data).contains("<title id=\"chart-title\">Nessun dato</title>"));
        assert!(data_table(&data).contains("<tbody></tbody>"));
    }
}
