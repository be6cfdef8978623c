//! The JSON report of one bench run and its human-readable table.

use serde_json::{json, Map, Value};

use crate::cli::Config;
use crate::metrics::{fmt_num, METRICS};
use crate::table;

/// Collects workload results into the report object.
pub struct Report {
    value: Value,
}

impl Report {
    pub fn new(cfg: &Config) -> Self {
        let unix_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let value = json!({
            "tool": "exec-bench",
            "version": env!("CARGO_PKG_VERSION"),
            "label": cfg.label,
            "command": cfg.server.argv,
            "unix_time": unix_time,
            "host": host_facts(),
            "workloads": {},
            "errors": {},
        });
        Self { value }
    }

    pub fn add(&mut self, name: &str, outcome: crate::error::Result<Value>) {
        let (section, v) = match outcome {
            Ok(v) => ("workloads", v),
            Err(e) => ("errors", Value::String(e.0)),
        };
        if let Some(Value::Object(map)) = self.value.get_mut(section) {
            map.insert(name.to_string(), v);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.value.get("errors").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
    }

    pub fn json(&self) -> &Value {
        &self.value
    }
}

fn host_facts() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpus": cpus, "kernel": kernel.trim()})
}

/// The human table for one report.
pub fn render(report: &Value) -> String {
    let label = report.get("label").and_then(Value::as_str).unwrap_or("?");
    let command: Vec<&str> =
        report.get("command").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let command = if command.is_empty() { "no server".to_string() } else { command.join(" ") };
    let mut out = format!("exec-bench: {label} ({command})\n\n");
    let header = ["measure", "value", "budget"].map(String::from);
    let rows: Vec<Vec<String>> = METRICS
        .iter()
        .filter_map(|m| {
            let v = m.value(report)?;
            Some(vec![m.name.to_string(), format!("{} {}", fmt_num(v), m.unit_name()), m.budget_text()])
        })
        .collect();
    if rows.is_empty() {
        out.push_str("(no figures)\n");
    } else {
        out.push_str(&table::render(&header, &rows));
    }
    out.push_str(&notes(report));
    out
}

/// Which process was measured, run details, and errors.
pub fn notes(report: &Value) -> String {
    let mut out = String::new();
    let w = report.get("workloads").cloned().unwrap_or(Value::Null);
    for (what, tree) in [("idle", &w["rss"]["idle"]), ("peak", &w["stream"]["peak_after_stream"])] {
        if let Some(s) = tree_note(tree) {
            out.push_str(&format!("  {what} RSS measured on {s}\n"));
        }
    }
    if let Some(runs) = w["stream"]["runs"].as_array() {
        let runs: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{} MiB/s ({} chunks, max {} B, CPU s: server {} bench {})",
                    r["mib_per_s"], r["chunks"], r["max_chunk_bytes"], r["server_cpu_s"], r["bench_cpu_s"]
                )
            })
            .collect();
        out.push_str(&format!("  stream runs: {}\n", runs.join("; ")));
    }
    let sbx = &w["sandbox-true"];
    if sbx.is_object() {
        let bwrap = &sbx["server_info"]["facts"]["sandbox"];
        let launcher = match (bwrap.get("bwrap"), sbx["server_info"].get("error")) {
            (Some(mode), _) => format!("executor bwrap mode {mode}, bwrapPath {}", bwrap["bwrapPath"]),
            (None, Some(e)) => format!("environment/info failed: {e}"),
            (None, None) => "launcher not reported".into(),
        };
        out.push_str(&format!(
            "  sandbox-true: sandboxType {}, {launcher}
",
            sbx["sandbox_type"]
        ));
        if let Some(argv) = sbx["bare_bwrap_ws_argv"].as_array() {
            let argv: Vec<&str> = argv.iter().filter_map(Value::as_str).collect();
            out.push_str(&format!(
                "  bare-bwrap-ws argv: {}
",
                argv.join(" ")
            ));
        }
    }
    if let Some(r) = w["fs-read"]["sandboxed"]["helper_warmup_small_read_ms"].as_f64() {
        out.push_str(&format!(
            "  fs-read: first sandboxed call (helper start, 4-byte file) {r} ms
"
        ));
    }
    for (name, v) in w.as_object().into_iter().flatten() {
        for (mode, m) in v.as_object().into_iter().flatten() {
            if let Some(e) = m.get("error").and_then(Value::as_str) {
                out.push_str(&format!(
                    "  ERROR in {name} ({mode}): {e}
"
                ));
            }
        }
    }
    if let Some(errors) = report.get("errors").and_then(Value::as_object) {
        out.push_str(&errors_text(errors));
    }
    out
}

fn tree_note(tree: &Value) -> Option<String> {
    let server = tree.get("server")?;
    let members = tree.get("tree")?.as_array()?;
    let names: Vec<String> = members.iter().map(|m| format!("{}[{}]", m["comm"].as_str().unwrap_or("?"), m["pid"])).collect();
    Some(format!(
        "pid {} `{}` (deepest of {} process(es) in the server tree: {})",
        server["pid"],
        server["comm"].as_str().unwrap_or("?"),
        members.len(),
        names.join(" → ")
    ))
}

fn errors_text(errors: &Map<String, Value>) -> String {
    errors.iter().map(|(k, v)| format!("  ERROR in {k}: {}\n", v.as_str().unwrap_or("?"))).collect()
}
