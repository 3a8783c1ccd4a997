//! The latency chart: one box per decision path on a logarithmic time axis (box p25–p75,
//! whiskers p1–p99, a bar at the median), as plain SVG text.

use std::fmt::Write as _;

use crate::report::Results;

const LEFT: f64 = 430.0;
const PLOT: f64 = 520.0;
const ROW: f64 = 26.0;
const TOP: f64 = 46.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('`', "")
}

pub fn latency_chart(r: &Results) -> String {
    let rows: Vec<_> = r.warm.iter().filter(|row| row.summary.n > 0 && row.summary.p1 > 0.0).collect();
    let lo = rows.iter().map(|row| row.summary.p1).fold(f64::INFINITY, f64::min).max(0.1).log10().floor();
    let hi = rows.iter().map(|row| row.summary.p99).fold(1.0, f64::max).log10().ceil().max(lo + 1.0);
    let x = |us: f64| LEFT + (us.max(1e-3).log10() - lo) / (hi - lo) * PLOT;
    let height = TOP + ROW * rows.len() as f64 + 44.0;
    let width = LEFT + PLOT + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">tokenbridge: latency per decision path (µs, log scale)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="36" fill="#555">box p25–p75, whiskers p1–p99, bar median · {} · {}</text>"##,
        escape(&r.machine.date),
        escape(&format!("{} × {}", r.machine.cores, r.machine.cpu))
    );
    let bottom = TOP + ROW * rows.len() as f64;
    let mut decade = lo;
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(decade) * m;
            if v.log10() > hi + 1e-9 {
                break;
            }
            let px = x(v);
            let color = if m == 1.0 { "#bbb" } else { "#eee" };
            let _ = writeln!(s, r#"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{bottom}" stroke="{color}"/>"#);
            let label = if v >= 1000.0 { format!("{} ms", v / 1000.0) } else { format!("{v}") };
            let _ = writeln!(
                s,
                r##"<text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
                bottom + 16.0
            );
        }
        decade += 1.0;
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let mid = y + ROW / 2.0;
        let q = &row.summary;
        let color = match row.key {
            k if k.contains("nocache") => "#d9822b",
            "floor_idp" | "floor_seed" => "#888888",
            k if k.contains("seed") => "#c92a2a",
            k if k.starts_with("http") => "#2b8a3e",
            k if k.starts_with("lambda") => "#7048e8",
            _ => "#1c7ed6",
        };
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{y}" width="{width}" height="{ROW}" fill="#f7f7f7" fill-opacity="0.6"/>"##
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            mid + 4.0,
            escape(&row.label)
        );
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{mid}" x2="{:.1}" y2="{mid}" stroke="{color}" stroke-width="1.5"/>"#,
            x(q.p1),
            x(q.p99)
        );
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="0.35" stroke="{color}"/>"#,
            x(q.p25),
            y + 6.0,
            (x(q.p75) - x(q.p25)).max(1.0),
            ROW - 12.0
        );
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"/>"#,
            y + 4.0,
            y + ROW - 4.0,
            px = x(q.p50)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#333" font-size="10">{}</text>"##,
            x(q.p99) + 4.0,
            mid + 3.0,
            if q.p50 >= 100.0 { format!("{:.0}", q.p50) } else { format!("{:.1}", q.p50) }
        );
    }
    s.push_str("</svg>\n");
    s
}
