//! Plain-text tables with padded columns (first column left-aligned, the rest right).

pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        for (i, w) in widths.iter().enumerate().take(cols) {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = " ".repeat(w - cell.chars().count());
            let sep = if i + 1 < cols { "  " } else { "" };
            if i == 0 {
                out.push_str(&format!("{cell}{pad}{sep}"));
            } else {
                out.push_str(&format!("{pad}{cell}{sep}"));
            }
        }
        out.push('\n');
    };
    line(header, &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, &mut out);
    for row in rows {
        line(row, &mut out);
    }
    out.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

/// The same table as GitHub-flavoured Markdown.
pub fn render_markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut out = line(header);
    let rule: Vec<String> = header.iter().enumerate().map(|(i, _)| if i == 0 { "---".into() } else { "---:".into() }).collect();
    out.push_str(&line(&rule));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let h = vec!["measure".to_string(), "value".to_string()];
        let rows = vec![vec!["a".to_string(), "1.5".to_string()], vec!["longer".to_string(), "12".to_string()]];
        let text = render(&h, &rows);
        assert_eq!(text, "measure  value\n-------  -----\na          1.5\nlonger      12\n");
    }

    #[test]
    fn markdown_table() {
        let h = vec!["m".to_string(), "v".to_string()];
        let text = render_markdown(&h, &[vec!["a".to_string(), "1".to_string()]]);
        assert_eq!(text, "| m | v |\n| --- | ---: |\n| a | 1 |\n");
    }
}
