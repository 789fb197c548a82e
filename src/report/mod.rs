//! Rendering of reports for people and machines: human text, JSON, SARIF 2.1.0.
//!
//! Renderers take a report and return a `String`; `cli` writes it. Invariant: a renderer
//! shows only what a report holds, and reports hold masked previews, never values.

pub mod scan;
pub mod verify;

/// Rows as left-aligned columns two spaces apart, each line prefixed by `indent`, trailing
/// spaces trimmed: the one table layout of every human report.
pub fn columns<R: AsRef<[String]>>(rows: &[R], indent: &str) -> String {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(indent);
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_trim() {
        let rows = vec![
            vec!["ID".to_string(), "SIZE".to_string(), "X".to_string()],
            vec!["abc".to_string(), "1 B".to_string(), String::new()],
        ];
        assert_eq!(super::columns(&rows, "  "), "  ID   SIZE  X\n  abc  1 B\n");
    }
}
