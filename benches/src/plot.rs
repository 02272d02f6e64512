//! A dependency-free SVG bar chart of ratios (variant / baseline), one bar
//! per measurement, with the 1.0 line marked: below it the variant wins for
//! times, above it for throughput.

/// `rows`: (label, ratio). Returns an SVG document.
pub fn ratio_chart(title: &str, rows: &[(String, f64)]) -> String {
    let (bar_h, gap, left, width) = (18.0, 6.0, 330.0, 420.0);
    let max = rows
        .iter()
        .map(|r| r.1)
        .filter(|r| r.is_finite())
        .fold(1.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let x = |v: f64| left + v / max * width;
    let height = 50.0 + rows.len() as f64 * (bar_h + gap) + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n",
        w = left + width + 70.0
    );
    for (i, (label, ratio)) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar_h + gap);
        let r = if ratio.is_finite() { *ratio } else { 0.0 };
        let color = if r <= 1.0 { "#4c9a2a" } else { "#c0392b" };
        svg += &format!(
            "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\n\
             <rect x=\"{left}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{bar_h}\" fill=\"{color}\"/>\n\
             <text x=\"{vx:.1}\" y=\"{ty}\">{r:.2}</text>\n",
            tx = left - 8.0,
            ty = y + 13.0,
            bw = (x(r) - left).max(1.0),
            vx = x(r) + 4.0,
        );
    }
    let one = x(1.0);
    let bottom = 40.0 + rows.len() as f64 * (bar_h + gap);
    svg += &format!(
        "<line x1=\"{one:.1}\" y1=\"34\" x2=\"{one:.1}\" y2=\"{bottom}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{one:.1}\" y=\"{ly}\" text-anchor=\"middle\">1.0 = same as btree</text>\n</svg>\n",
        ly = bottom + 16.0
    );
    svg
}

#[cfg(test)]
mod tests {
    #[test]
    fn chart_has_a_bar_per_row_and_the_unit_line() {
        let svg = super::ratio_chart("t", &[("a".into(), 0.5), ("b".into(), 2.0)]);
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("0.50") && svg.contains("2.00") && svg.contains("1.0 = same"));
    }
}
