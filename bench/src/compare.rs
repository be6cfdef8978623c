//! `exec-bench compare BASELINE.json OTHER.json...`: side-by-side table of reports
//! with, for each other report, how many times better it is than the baseline.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::metrics::{fmt_num, METRICS};
use crate::table;

pub fn load(files: &[PathBuf]) -> Result<Vec<Value>> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| Error(format!("cannot read {}: {e}", f.display())))?;
            serde_json::from_str(&text).map_err(|e| Error(format!("{} is not a report: {e}", f.display())))
        })
        .collect()
}

fn label(report: &Value) -> String {
    report.get("label").and_then(Value::as_str).unwrap_or("?").to_string()
}

/// Reports with a server column (a bare-bwrap-only run has none).
fn server_reports(reports: &[Value]) -> Vec<&Value> {
    reports.iter().filter(|r| METRICS.iter().any(|m| !m.serverless && m.value(r).is_some()) || r == &&reports[0]).collect()
}

pub fn render(reports: &[Value], markdown: bool) -> String {
    let cols = server_reports(reports);
    let Some(base) = cols.first() else { return String::new() };
    let mut header = vec!["measure".to_string()];
    header.extend(cols.iter().map(|r| label(r)));
    header.extend(cols[1..].iter().map(|r| format!("{} ×", label(r))));
    header.push("budget".into());
    let rows: Vec<Vec<String>> = METRICS.iter().filter(|m| !m.serverless).map(|m| row(m, base, &cols)).collect();
    let mut out = if markdown { table::render_markdown(&header, &rows) } else { table::render(&header, &rows) };
    if cols.len() > 1 {
        out.push_str(&format!(
            "\n× = how many times better than {} (its time or memory / this one's; this throughput / its)\n",
            label(base)
        ));
    }
    out.push_str(&serverless_lines(reports));
    for r in reports {
        let notes = crate::report::notes(r);
        if !notes.is_empty() {
            out.push_str(&format!("\n{}:\n{notes}", label(r)));
        }
    }
    out
}

fn cell(m: &crate::metrics::Metric, r: &Value) -> String {
    match m.value(r) {
        Some(v) => format!("{} {}", fmt_num(v), m.unit_name()),
        None if m.error(r).is_some() => "error".into(),
        // A placeholder report (ci/bench.sh writes one when the server is not usable yet).
        None if r.get("pending").and_then(Value::as_bool) == Some(true) => "pending".into(),
        None => "not run".into(),
    }
}

fn row(m: &crate::metrics::Metric, base: &Value, cols: &[&Value]) -> Vec<String> {
    let mut row = vec![m.name.to_string()];
    row.extend(cols.iter().map(|r| cell(m, r)));
    for r in &cols[1..] {
        let adv = m.value(base).zip(m.value(r)).and_then(|(b, c)| m.advantage(b, c));
        row.push(adv.map(|a| format!("{}×", fmt_num(a))).unwrap_or_else(|| "–".into()));
    }
    // Budgets are for the candidate: the first report after the baseline.
    let verdict = cols.get(1).and_then(|r| m.value(r)).and_then(|v| m.meets_budget(v));
    let mark = match verdict {
        Some(true) => " (met)",
        Some(false) => " (missed)",
        None => "",
    };
    row.push(format!("{}{mark}", m.budget_text()));
    row
}

fn serverless_lines(reports: &[Value]) -> String {
    let mut out = String::new();
    for m in METRICS.iter().filter(|m| m.serverless) {
        if let Some((r, v)) = reports.iter().find_map(|r| m.value(r).map(|v| (r, v))) {
            out.push_str(&format!("{} (no server, from the `{}` run): {} {}\n", m.name, label(r), fmt_num(v), m.unit_name()));
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\n{out}")
    }
}

/// The same comparison as JSON.
pub fn to_json(reports: &[Value]) -> Value {
    let cols = server_reports(reports);
    let rows: Vec<Value> = METRICS
        .iter()
        .map(|m| {
            let values: Vec<Option<f64>> = reports.iter().map(|r| m.value(r)).collect();
            let base = cols.first().and_then(|b| m.value(b));
            let advantages: Vec<Option<f64>> =
                cols.iter().skip(1).map(|r| base.zip(m.value(r)).and_then(|(b, c)| m.advantage(b, c))).collect();
            json!({"measure": m.name, "unit": m.unit_name(), "values": values, "advantage_vs_first": advantages, "budget": m.budget})
        })
        .collect();
    json!({"labels": reports.iter().map(label).collect::<Vec<_>>(), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(label: &str, init_p50: f64, mib_s: f64) -> Value {
        json!({"label": label, "workloads": {
            "init": {"spawn_to_initialize": {"p50_ms": init_p50}},
            "stream": {"mib_per_s_median": mib_s}}, "errors": {}})
    }

    #[test]
    fn ratios_and_budget_marks() {
        let text = render(&[report("reference", 12.0, 100.0), report("executor", 1.2, 500.0)], false);
        let init = text.lines().find(|l| l.starts_with("initialize after spawn, p50")).expect("init row");
        assert!(init.contains("10.0×") && init.contains("(met)"), "{init}");
        let stream = text.lines().find(|l| l.starts_with("stdout streaming")).expect("stream row");
        assert!(stream.contains("5.00×"), "{stream}");
    }

    #[test]
    fn missing_figures_are_pending_or_error() {
        let mut exe = json!({"label": "executor", "pending": true, "workloads": {}, "errors": {"stream": "boom"}});
        exe["workloads"]["init"] = json!({"spawn_to_initialize": {"p50_ms": 1.0}});
        let text = render(&[report("reference", 12.0, 100.0), exe], true);
        assert!(text.lines().any(|l| l.starts_with("| stdout streaming") && l.contains("error")), "{text}");
        assert!(text.lines().any(|l| l.starts_with("| idle RSS, server") && l.contains("pending")), "{text}");
    }
}
