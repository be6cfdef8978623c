//! The headline figures, where each lives in a JSON report, how it is shown, which
//! direction is better, and the budget from DESIGN.md §6 where there is one.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    MibPerS,
    /// Stored as KiB, shown as MiB.
    Kib,
    /// A plain ratio (sandboxed / bare), shown with ×.
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub path: &'static [&'static str],
    pub unit: Unit,
    pub better: Better,
    /// Budget for executor, in the shown unit (ms, MiB/s, MiB).
    pub budget: Option<f64>,
    /// True for figures that do not depend on the server (bare bwrap).
    pub serverless: bool,
}

const fn m(name: &'static str, path: &'static [&'static str], unit: Unit, better: Better, budget: Option<f64>) -> Metric {
    Metric { name, path, unit, better, budget, serverless: false }
}

use Better::{Higher, Lower};
use Unit::{Kib, MibPerS, Ms, Ratio};

pub const METRICS: &[Metric] = &[
    m("initialize after spawn, p50", &["init", "spawn_to_initialize", "p50_ms"], Ms, Lower, Some(1.5)),
    m("initialize after spawn, p90", &["init", "spawn_to_initialize", "p90_ms"], Ms, Lower, None),
    m("`true` start→closed, p50", &["true", "start_to_closed", "p50_ms"], Ms, Lower, Some(1.0)),
    m("`true` start→closed, p90", &["true", "start_to_closed", "p90_ms"], Ms, Lower, None),
    m("stdout streaming, median", &["stream", "mib_per_s_median"], MibPerS, Higher, Some(400.0)),
    m("idle RSS, server process", &["rss", "idle", "server", "rss_kib"], Kib, Lower, Some(8.0)),
    m("idle RSS, whole tree (sum)", &["rss", "idle", "tree_rss_sum_kib"], Kib, Lower, None),
    m("peak RSS after stream, server", &["stream", "peak_after_stream", "server", "hwm_kib"], Kib, Lower, None),
    m("peak RSS after stream, tree max", &["stream", "peak_after_stream", "tree_hwm_max_kib"], Kib, Lower, None),
    m("exit after stdin EOF, p50", &["init", "exit_after_stdin_eof", "p50_ms"], Ms, Lower, None),
    m("sandboxed `true` start→closed, p50", &["sandbox-true", "start_to_closed", "p50_ms"], Ms, Lower, None),
    m("sandboxed `true` start→closed, p90", &["sandbox-true", "start_to_closed", "p90_ms"], Ms, Lower, None),
    m("bare bwrap-ws `true` (same run), p50", &["sandbox-true", "bare_bwrap_ws", "p50_ms"], Ms, Lower, None),
    m("bare bwrap-ws `true` (same run), p90", &["sandbox-true", "bare_bwrap_ws", "p90_ms"], Ms, Lower, None),
    m("sandboxed / bare-ws, p50", &["sandbox-true", "ratio_p50"], Ratio, Lower, Some(1.3)),
    m("sandboxed / bare-ws, p90", &["sandbox-true", "ratio_p90"], Ratio, Lower, None),
    m("sandboxed `true`, 1 writable root, p50", &["sandbox-roots", "roots_1", "start_to_closed", "p50_ms"], Ms, Lower, None),
    m("sandboxed `true`, 10 writable roots, p50", &["sandbox-roots", "roots_10", "start_to_closed", "p50_ms"], Ms, Lower, None),
    m("sandboxed `true`, 50 writable roots, p50", &["sandbox-roots", "roots_50", "start_to_closed", "p50_ms"], Ms, Lower, None),
    m("sandboxed `true`, 100 writable roots, p50", &["sandbox-roots", "roots_100", "start_to_closed", "p50_ms"], Ms, Lower, None),
    m("100 roots / 1 root, p50", &["sandbox-roots", "roots_100", "ratio_p50_to_1"], Ratio, Lower, Some(1.5)),
    m("fs/readFile 64 MiB direct, median", &["fs-read", "direct", "mib_per_s_median"], MibPerS, Higher, Some(800.0)),
    m("fs/readFile 64 MiB sandboxed, median", &["fs-read", "sandboxed", "mib_per_s_median"], MibPerS, Higher, Some(700.0)),
    m("fs/readFile first byte, direct, median", &["fs-read", "direct", "first_byte_ms_median"], Ms, Lower, Some(2.0)),
    m("fs/readFile first byte, sandboxed, median", &["fs-read", "sandboxed", "first_byte_ms_median"], Ms, Lower, Some(2.0)),
    m("fs/readFile peak RSS growth, direct", &["fs-read", "direct", "memory", "server_peak_growth_kib"], Kib, Lower, Some(16.0)),
    m("fs/readFile peak RSS growth, sandboxed", &["fs-read", "sandboxed", "memory", "server_peak_growth_kib"], Kib, Lower, Some(16.0)),
    m("fs/getMetadata sandboxed, p50", &["fs-meta", "sandboxed", "latency", "p50_ms"], Ms, Lower, Some(2.0)),
    m("fs/getMetadata sandboxed, p90", &["fs-meta", "sandboxed", "latency", "p90_ms"], Ms, Lower, None),
    m(
        "fs/getMetadata sandboxed, first after a host change, p50",
        &["fs-meta", "sandboxed", "after_change", "latency", "p50_ms"],
        Ms,
        Lower,
        None,
    ),
    m("fs/getMetadata direct, p50", &["fs-meta", "direct", "latency", "p50_ms"], Ms, Lower, None),
    m("http/request streamed body, median", &["http", "streamed", "mib_per_s_median"], MibPerS, Higher, Some(300.0)),
    m("http/request stream peak RSS growth", &["http", "streamed", "memory", "server_peak_growth_kib"], Kib, Lower, Some(32.0)),
    m("http/request small GET, p50", &["http", "small_get", "p50_ms"], Ms, Lower, Some(1.0)),
    m("http/request small GET, p90", &["http", "small_get", "p90_ms"], Ms, Lower, None),
    Metric { serverless: true, ..m("bare bwrap `true`, p50", &["bare-bwrap", "spawn_to_exit", "p50_ms"], Ms, Lower, None) },
    Metric { serverless: true, ..m("bare bwrap `true`, p90", &["bare-bwrap", "spawn_to_exit", "p90_ms"], Ms, Lower, None) },
];

impl Metric {
    /// The figure in its shown unit, if the report has it.
    /// The error recorded for this figure: the workload's, or one of a mode inside it
    /// (`{"sandboxed": {"error": ...}}`).
    pub fn error<'a>(&self, report: &'a Value) -> Option<&'a str> {
        if let Some(e) = report.get("errors").and_then(|e| e.get(self.path[0])) {
            return e.as_str();
        }
        let mut v = report.get("workloads")?;
        for key in self.path {
            v = v.get(key)?;
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Some(e);
            }
        }
        None
    }

    pub fn value(&self, report: &Value) -> Option<f64> {
        let mut v = report.get("workloads")?;
        for key in self.path {
            v = v.get(key)?;
        }
        let x = v.as_f64()?;
        Some(if self.unit == Unit::Kib { x / 1024.0 } else { x })
    }

    pub fn unit_name(&self) -> &'static str {
        match self.unit {
            Unit::Ms => "ms",
            Unit::MibPerS => "MiB/s",
            Unit::Kib => "MiB",
            Unit::Ratio => "×",
        }
    }

    /// How many times better `candidate` is than `baseline`: baseline/candidate
    /// for times and memory, candidate/baseline for throughput.
    pub fn advantage(&self, baseline: f64, candidate: f64) -> Option<f64> {
        let ratio = match self.better {
            Better::Lower => baseline / candidate,
            Better::Higher => candidate / baseline,
        };
        ratio.is_finite().then_some(ratio)
    }

    pub fn meets_budget(&self, value: f64) -> Option<bool> {
        let budget = self.budget?;
        Some(match self.better {
            Better::Lower => value <= budget,
            Better::Higher => value >= budget,
        })
    }

    pub fn budget_text(&self) -> String {
        match (self.budget, self.better) {
            (None, _) => String::new(),
            (Some(b), Better::Lower) => format!("≤ {} {}", fmt_num(b), self.unit_name()),
            (Some(b), Better::Higher) => format!("≥ {} {}", fmt_num(b), self.unit_name()),
        }
    }
}

/// Three significant-ish digits: 0.812, 11.6, 127, 1024.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metric(name: &str) -> Metric {
        *METRICS.iter().find(|m| m.name == name).expect("known metric")
    }

    #[test]
    fn values_are_found_and_converted() {
        let report = json!({"workloads": {"rss": {"idle": {"server": {"rss_kib": 2048}}}}});
        assert_eq!(metric("idle RSS, server process").value(&report), Some(2.0));
        assert_eq!(metric("stdout streaming, median").value(&report), None);
    }

    #[test]
    fn advantage_is_oriented_so_bigger_is_better() {
        let init = metric("initialize after spawn, p50");
        assert_eq!(init.advantage(12.0, 3.0), Some(4.0));
        let stream = metric("stdout streaming, median");
        assert_eq!(stream.advantage(100.0, 400.0), Some(4.0));
        assert_eq!(init.advantage(1.0, 0.0), None);
    }

    #[test]
    fn mode_errors_are_found() {
        let report = json!({"workloads": {"fs-read": {"direct": {"mib_per_s_median": 500.0}, "sandboxed": {"error": "boom"}}}});
        assert_eq!(metric("fs/readFile 64 MiB direct, median").value(&report), Some(500.0));
        assert_eq!(metric("fs/readFile 64 MiB direct, median").error(&report), None);
        assert_eq!(metric("fs/readFile 64 MiB sandboxed, median").error(&report), Some("boom"));
        let failed = json!({"workloads": {}, "errors": {"fs-meta": "no server"}});
        assert_eq!(metric("fs/getMetadata sandboxed, p50").error(&failed), Some("no server"));
    }

    #[test]
    fn budgets() {
        assert_eq!(metric("initialize after spawn, p50").meets_budget(1.4), Some(true));
        assert_eq!(metric("stdout streaming, median").meets_budget(399.0), Some(false));
        assert_eq!(metric("initialize after spawn, p90").meets_budget(1.0), None);
        assert_eq!(metric("stdout streaming, median").budget_text(), "≥ 400 MiB/s");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt_num(11.63), "11.6");
        assert_eq!(fmt_num(0.8123), "0.812");
        assert_eq!(fmt_num(127.4), "127");
        assert_eq!(fmt_num(f64::NAN), "–");
    }
}
