//! SVG charts of the benchmark tables in docs/benchmarks.md.
//!
//! The charts are drawn from the markdown tables themselves (not from a run's memory),
//! so `lb-bench plot` can redraw them at any time and a test can check that the charts
//! in `docs/benchmarks/` match the tables they illustrate. Every benchmark run redraws
//! them after writing its section.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// A markdown table: header cells and rows of cells, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The text between a benchmark's markers, if the document has that section.
pub fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let s = doc.find(&start)? + start.len();
    let e = s + doc[s..].find(&end)?;
    Some(&doc[s..e])
}

/// The markdown tables of `text`, in order.
pub fn tables(text: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let is_rule =
            |l: &str| l.starts_with('|') && l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
        if !line.starts_with('|') || !lines.peek().is_some_and(|l| is_rule(l)) {
            continue;
        }
        lines.next();
        let mut table = Table {
            header: cells(line),
            rows: Vec::new(),
        };
        while let Some(row) = lines.peek().filter(|l| l.starts_with('|')) {
            table.rows.push(cells(row));
            lines.next();
        }
        out.push(table);
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// The first number in `text` ("1.73x live MAC swap (156.0 ns)" -> 1.73).
fn first_number(text: &str) -> Option<f64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(rest.len());
    rest[..end].replace(',', "").parse().ok()
}

/// The number inside the last parentheses ("1.73x live MAC swap (156.0 ns)" -> 156).
fn parenthesised_number(text: &str) -> Option<f64> {
    let open = text.rfind('(')?;
    first_number(&text[open..])
}

/// One bar: its label, its value, how it is coloured, and an optional target mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub kind: Kind,
    /// The value the target allows (drawn as a tick across the bar's row).
    pub limit: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A baseline or reference measurement.
    Baseline,
    /// Ours, target met or no target.
    Met,
    /// Ours, target not met.
    NotMet,
    /// The other implementation (keepalived).
    Other,
}

impl Kind {
    fn colour(self) -> &'static str {
        match self {
            Kind::Baseline => "#9e9e9e",
            Kind::Met => "#2e7d32",
            Kind::NotMet => "#c62828",
            Kind::Other => "#1565c0",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Met => "lb (target met or none)",
            Kind::NotMet => "lb (target not met)",
            Kind::Other => "keepalived 2.2.7",
        }
    }
}

fn met_kind(cell: Option<&String>) -> Kind {
    match cell.map(|c| c.trim_matches('*').to_ascii_lowercase()) {
        Some(c) if c.starts_with("no") => Kind::NotMet,
        _ => Kind::Met,
    }
}

/// The value a target allows, from the target cell ("<= 1.75x", "<= +16 ns") and the
/// reference cell ("1.73x live MAC swap (156.0 ns)").
fn limit(target: &str, reference: &str) -> Option<f64> {
    let bound = first_number(target)?;
    let base = parenthesised_number(reference)?;
    if target.contains('+') {
        Some(base + bound)
    } else if target.contains('x') {
        Some(base * bound)
    } else {
        None
    }
}

/// The data-path table as two bar sets: live-frames rows and repeat=1 rows.
pub fn datapath_bars(table: &Table) -> (Vec<Bar>, Vec<Bar>) {
    let (case, ns) = (table.column("case"), table.column("ns/packet"));
    let (reference, target, met) = (
        table.column("reference"),
        table.column("target"),
        table.column("met"),
    );
    let (Some(case), Some(ns)) = (case, ns) else {
        return (Vec::new(), Vec::new());
    };
    let (mut live, mut repeat1) = (Vec::new(), Vec::new());
    for row in &table.rows {
        let Some(value) = row.get(ns).and_then(|v| first_number(v)) else {
            continue;
        };
        let label = row[case].clone();
        let kind = if label.contains("baseline") {
            Kind::Baseline
        } else {
            met_kind(met.and_then(|m| row.get(m)))
        };
        let limit = match (
            target.and_then(|t| row.get(t)),
            reference.and_then(|r| row.get(r)),
        ) {
            (Some(t), Some(r)) if !t.is_empty() => limit(t, r),
            _ => None,
        };
        let bar = Bar {
            // "(3.7 Mpps)" stays: it is the throughput the bar's ns correspond to.
            label: label
                .trim_start_matches("live")
                .trim_start_matches(':')
                .trim()
                .to_string(),
            value,
            kind,
            limit,
        };
        if label.starts_with("live") {
            live.push(bar);
        } else {
            repeat1.push(bar);
        }
    }
    (live, repeat1)
}

/// The failover table: one bar per case and implementation, the bound as the limit.
pub fn failover_bars(table: &Table) -> Vec<Bar> {
    let cols = ["case", "implementation", "outage", "bound"].map(|c| table.column(c));
    let [Some(case), Some(imp), Some(outage), Some(bound)] = cols else {
        return Vec::new();
    };
    table
        .rows
        .iter()
        .filter_map(|row| {
            let value = first_number(row.get(outage)?)?;
            let ours = row[imp].starts_with("lb");
            Some(Bar {
                label: format!("{} ({})", row[case], row[imp]),
                value,
                kind: if ours {
                    met_kind(table.column("met").and_then(|m| row.get(m)))
                } else {
                    Kind::Other
                },
                limit: first_number(row.get(bound)?),
            })
        })
        .collect()
}

/// Health-check CPU against load: the host table's rows (target 25% of a core) and the
/// VM comparison with keepalived.
pub fn health_bars(host: Option<&Table>, reference: Option<&Table>) -> Vec<Bar> {
    let mut bars = Vec::new();
    if let Some(t) = host {
        if let (Some(checks), Some(cpu)) = (t.column("checks"), t.column("CPU (% of one core)")) {
            for row in &t.rows {
                let Some(value) = row.get(cpu).and_then(|v| first_number(v)) else {
                    continue;
                };
                bars.push(Bar {
                    label: format!("{} (host)", row[checks]),
                    value,
                    kind: met_kind(t.column("met").and_then(|m| row.get(m))),
                    limit: Some(25.0),
                });
            }
        }
    }
    if let Some(t) = reference {
        // Per check performed where the table has it (keepalived may fall behind).
        let per_check = t.column("CPU per 100 checks/s");
        let cpu = per_check.or_else(|| t.column("CPU (% of one core)"));
        let what = if per_check.is_some() {
            "per 100 checks/s"
        } else {
            "at 500 checks/s"
        };
        if let (Some(checker), Some(cpu)) = (t.column("checker"), cpu) {
            let cpu_of = |row: &Vec<String>| row.get(cpu).and_then(|v| first_number(v));
            // The target: lower CPU than keepalived at the same load.
            let keepalived = t
                .rows
                .iter()
                .find(|r| !r[checker].starts_with("lb"))
                .and_then(cpu_of);
            for row in &t.rows {
                let Some(value) = cpu_of(row) else {
                    continue;
                };
                let ours = row[checker].starts_with("lb");
                let kind = match (ours, keepalived) {
                    (false, _) => Kind::Other,
                    (true, Some(k)) if value >= k => Kind::NotMet,
                    (true, _) => Kind::Met,
                };
                bars.push(Bar {
                    label: format!("{} {what} (IPVS VM)", row[checker]),
                    value,
                    kind,
                    limit: if ours { keepalived } else { None },
                });
            }
        }
    }
    bars
}

/// Pixels per label character at 12 px sans-serif (generous, so labels never clip).
const CHAR_WIDTH: f64 = 6.8;
const PLOT_WIDTH: f64 = 420.0;
const ROW: f64 = 22.0;
const TOP: f64 = 48.0;

/// A horizontal bar chart, one row per bar, value printed at the bar's end; a black
/// tick marks a bar's limit. Plain SVG 1.1, no script, no external fonts.
pub fn bar_chart(title: &str, unit: &str, bars: &[Bar]) -> String {
    let max = bars
        .iter()
        .flat_map(|b| [b.value, b.limit.unwrap_or(0.0)])
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let scale = PLOT_WIDTH / max;
    let kinds: Vec<Kind> = [Kind::Baseline, Kind::Met, Kind::NotMet, Kind::Other]
        .into_iter()
        .filter(|k| bars.iter().any(|b| b.kind == *k))
        .collect();
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_width = (longest as f64 * CHAR_WIDTH + 20.0).max(200.0).round();
    let height = TOP + ROW * bars.len() as f64 + 50.0;
    let width = label_width + PLOT_WIDTH + 90.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let w = (bar.value * scale).max(1.0);
        let _ = writeln!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_width - 8.0,
            y + 14.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            svg,
            r#"<rect class="bar" x="{label_width}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"/>"#,
            y + 3.0,
            ROW - 6.0,
            bar.kind.colour()
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{} {}</text>"#,
            // Past the bar and its target tick, so neither hides the figure.
            label_width + w.max(bar.limit.map_or(0.0, |l| l * scale)) + 5.0,
            y + 14.0,
            number(bar.value),
            escape(unit)
        );
        if let Some(limit) = bar.limit {
            let x = label_width + limit * scale;
            let _ = writeln!(
                svg,
                r#"<line class="limit" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="black" stroke-width="2"/>"#,
                y + 1.0,
                y + ROW - 1.0
            );
        }
    }
    let legend_y = TOP + ROW * bars.len() as f64 + 24.0;
    let mut x = 10.0;
    for kind in kinds {
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.0}" y="{:.0}" width="12" height="12" fill="{}"/><text x="{:.0}" y="{:.0}">{}</text>"#,
            legend_y - 10.0,
            kind.colour(),
            x + 16.0,
            legend_y,
            kind.legend()
        );
        x += 16.0 + 8.0 * kind.legend().len() as f64;
    }
    if bars.iter().any(|b| b.limit.is_some()) {
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.0}" x2="{x:.0}" y1="{:.0}" y2="{:.0}" stroke="black" stroke-width="2"/><text x="{:.0}" y="{legend_y:.0}">target / bound</text>"#,
            legend_y - 11.0,
            legend_y + 1.0,
            x + 6.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('*', "")
}

/// One chart file: where it goes, under which section, with which caption.
pub struct Chart {
    pub file: &'static str,
    pub after_section: &'static str,
    pub caption: &'static str,
    pub svg: String,
}

/// Every chart the document's tables allow.
pub fn charts(doc: &str) -> Vec<Chart> {
    let mut out = Vec::new();
    if let Some(table) = section(doc, "datapath").and_then(|s| tables(s).into_iter().next()) {
        let (live, repeat1) = datapath_bars(&table);
        if !live.is_empty() {
            out.push(Chart {
                file: "datapath-live.svg",
                after_section: "datapath",
                caption:
                    "Data path, live-frames mode: ns per packet per case against the baselines",
                svg: bar_chart(
                    "Data path, live-frames mode (ns per packet; tick = target)",
                    "ns",
                    &live,
                ),
            });
        }
        if !repeat1.is_empty() {
            out.push(Chart {
                file: "datapath-repeat1.svg",
                after_section: "datapath",
                caption: "Data path, repeat=1 calls: ns per packet per case against the baselines",
                svg: bar_chart(
                    "Data path, repeat=1 BPF_PROG_TEST_RUN calls (ns per packet; tick = target)",
                    "ns",
                    &repeat1,
                ),
            });
        }
    }
    if let Some(table) = section(doc, "failover").and_then(|s| tables(s).into_iter().next()) {
        let bars = failover_bars(&table);
        if !bars.is_empty() {
            out.push(Chart {
                file: "failover.svg",
                after_section: "failover",
                caption: "Failover outage per case, lb-daemon against keepalived",
                svg: bar_chart(
                    "Failover outage, lb-daemon and keepalived (ms; tick = bound)",
                    "ms",
                    &bars,
                ),
            });
        }
    }
    let host = section(doc, "health").and_then(|s| tables(s).into_iter().next());
    let reference = section(doc, "health-reference").and_then(|s| tables(s).into_iter().next());
    let bars = health_bars(host.as_ref(), reference.as_ref());
    if !bars.is_empty() {
        out.push(Chart {
            file: "health.svg",
            after_section: if reference.is_some() {
                "health-reference"
            } else {
                "health"
            },
            caption: "Health-check CPU against load",
            svg: bar_chart(
                "Health checks: CPU (% of one core) against load (tick = target)",
                "%",
                &bars,
            ),
        });
    }
    out
}

/// The image line for a chart, as placed after its section's end marker.
fn image_line(chart: &Chart, dir_name: &str) -> String {
    format!("![{}]({dir_name}/{})", chart.caption, chart.file)
}

/// `doc` with an image line for every chart right after its section (kept if present).
pub fn with_image_links(doc: &str, charts: &[Chart], dir_name: &str) -> String {
    let mut doc = doc.to_string();
    for chart in charts {
        let line = image_line(chart, dir_name);
        if doc.contains(&line) {
            continue;
        }
        let end = format!("<!-- bench:{}:end -->", chart.after_section);
        if let Some(at) = doc.find(&end) {
            // After the marker and the charts already linked there, in chart order.
            let mut at = at + end.len();
            while let Some(next) = doc[at..].strip_prefix("\n\n![") {
                at = doc.len() - next.len() - 1;
                at += doc[at..].find('\n').unwrap_or(doc.len() - at);
            }
            doc.insert_str(at, &format!("\n\n{line}"));
        }
    }
    doc
}

/// The directory the charts of `doc_path` go to: `docs/benchmarks.md` -> `docs/benchmarks/`.
pub fn chart_dir(doc_path: &Path) -> PathBuf {
    doc_path.with_extension("")
}

/// Draws every chart of the document at `doc_path` into its chart directory and links
/// each from the document. Returns the files written.
pub fn render(doc_path: &Path) -> Result<Vec<PathBuf>> {
    let doc =
        fs::read_to_string(doc_path).with_context(|| format!("reading {}", doc_path.display()))?;
    let dir = chart_dir(doc_path);
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let charts = charts(&doc);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for chart in &charts {
        let path = dir.join(chart.file);
        fs::write(&path, &chart.svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    let linked = with_image_links(&doc, &charts, &dir_name);
    if linked != doc {
        fs::write(doc_path, linked).with_context(|| format!("writing {}", doc_path.display()))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\n<!-- bench:datapath:start -->\n## Data path\n\n\
| case | ns/packet | reference | target | met |\n|---|---:|---|---|---|\n\
| live: baseline MAC swap + XDP_TX (6.4 Mpps) | 157.0 |  |  |  |\n\
| live DR: established TCP flow (3.7 Mpps) | 270.0 | 1.73x live MAC swap (156.0 ns) | <= 1.75x | yes |\n\
| live DR: non-VIP packet (pass) | 296.0 | +6.0 ns over live XDP_PASS (290.0 ns) | <= +16 ns | yes |\n\
| DR: new TCP flow | 841.0 | 8.41x MAC swap (100.0 ns) | <= 3x | **no** |\n\
\nMaglev build: 1.2 ms\n<!-- bench:datapath:end -->\n\n<!-- bench:failover:start -->\n\
| case | implementation | outage | bound | met |\n|---|---|---:|---:|---|\n\
| v2 cut | lb-daemon | 3596 ms | 3609 ms | yes |\n\
| v2 cut | keepalived 2.2.7 | 3602 ms | 3609 ms | yes |\n\
<!-- bench:failover:end -->\n";

    #[test]
    fn tables_are_read_with_their_cells() {
        let t = tables(section(DOC, "datapath").unwrap());
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].header,
            ["case", "ns/packet", "reference", "target", "met"]
        );
        assert_eq!(t[0].rows.len(), 4);
        assert_eq!(t[0].rows[3][4], "**no**");
    }

    #[test]
    fn datapath_rows_split_into_live_and_repeat1_with_their_limits() {
        let t = &tables(section(DOC, "datapath").unwrap())[0];
        let (live, repeat1) = datapath_bars(t);
        assert_eq!(live.len(), 3);
        assert_eq!(repeat1.len(), 1);
        assert_eq!(live[0].kind, Kind::Baseline);
        assert_eq!(live[0].limit, None);
        assert_eq!(live[1].kind, Kind::Met);
        assert!((live[1].limit.unwrap() - 1.75 * 156.0).abs() < 1e-9);
        assert!((live[2].limit.unwrap() - 306.0).abs() < 1e-9);
        assert_eq!(repeat1[0].kind, Kind::NotMet);
        assert!((repeat1[0].limit.unwrap() - 300.0).abs() < 1e-9);
        assert_eq!(live[1].label, "DR: established TCP flow (3.7 Mpps)");
    }

    #[test]
    fn failover_bars_pair_the_implementations() {
        let t = &tables(section(DOC, "failover").unwrap())[0];
        let bars = failover_bars(t);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].kind, Kind::Met);
        assert_eq!(bars[1].kind, Kind::Other);
        assert_eq!(bars[1].value, 3602.0);
        assert_eq!(bars[1].limit, Some(3609.0));
    }

    #[test]
    fn health_bars_hold_ours_against_keepalived_in_the_vm() {
        let doc = "<!-- bench:health-reference:start -->\n\
| checker | checks/s seen | CPU (% of one core) |\n|---|---:|---:|\n\
| lb-daemon | 500 | 37.2 |\n| keepalived 2.2.7 | 474 | 29.9 |\n\
<!-- bench:health-reference:end -->\n";
        let reference = tables(section(doc, "health-reference").unwrap());
        let bars = health_bars(None, reference.first());
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].kind, Kind::NotMet);
        assert_eq!(bars[0].limit, Some(29.9));
        assert_eq!(bars[1].kind, Kind::Other);
    }

    #[test]
    fn health_bars_compare_cpu_per_check_where_the_table_has_it() {
        let doc = "<!-- bench:health-reference:start -->\n\
| checker | checks/s seen | CPU (% of one core) | CPU per 100 checks/s |\n|---|---:|---:|---:|\n\
| lb-daemon | 500 | 31.0 | 6.20 |\n| keepalived 2.2.7 | 450 | 30.0 | 6.67 |\n\
<!-- bench:health-reference:end -->\n";
        let reference = tables(section(doc, "health-reference").unwrap());
        let bars = health_bars(None, reference.first());
        assert_eq!(bars[0].kind, Kind::Met);
        assert_eq!(bars[0].value, 6.2);
        assert_eq!(bars[0].limit, Some(6.67));
    }

    #[test]
    fn a_chart_has_one_bar_per_row_and_escapes_its_text() {
        let bars = [
            Bar {
                label: "a <b> & c".into(),
                value: 10.0,
                kind: Kind::Met,
                limit: Some(12.0),
            },
            Bar {
                label: "d".into(),
                value: 5.5,
                kind: Kind::NotMet,
                limit: None,
            },
        ];
        let svg = bar_chart("t", "ns", &bars);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert_eq!(svg.matches(r#"class="limit""#).count(), 1);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("5.5 ns"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn image_links_go_after_their_section_once() {
        let charts = charts(DOC);
        assert_eq!(
            charts.iter().map(|c| c.file).collect::<Vec<_>>(),
            ["datapath-live.svg", "datapath-repeat1.svg", "failover.svg"]
        );
        let linked = with_image_links(DOC, &charts, "benchmarks");
        assert_eq!(with_image_links(&linked, &charts, "benchmarks"), linked);
        let end = linked.find("<!-- bench:datapath:end -->").unwrap();
        let live = linked.find("(benchmarks/datapath-live.svg)").unwrap();
        let repeat1 = linked.find("(benchmarks/datapath-repeat1.svg)").unwrap();
        let failover = linked.find("<!-- bench:failover:start -->").unwrap();
        assert!(end < live && live < repeat1 && repeat1 < failover);
    }
}
