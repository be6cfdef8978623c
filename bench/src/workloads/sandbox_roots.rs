//! Sandboxed `true` against the number of writable roots: the workspace-write policy of
//! `sandbox-true` with 1, 10, 50 and 100 `write` entries (sibling directories of a
//! scratch dir), `process/start` to `process/closed`, the runs of each count
//! interleaved so that all see the same machine load. The figure is how the sandbox's
//! set-up grows with the policy (issue 19: 100 roots ≤ 1.5× one root).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::sandbox::{uri, Scratch};
use crate::cli::Config;
use crate::error::{Error, Result};
use crate::fail;
use crate::process;
use crate::stats::{round3, summarize};

pub const ROOT_COUNTS: [usize; 4] = [1, 10, 50, 100];

/// Measured runs per root count (plus one warm-up each).
fn runs(cfg: &Config) -> usize {
    (cfg.sandbox_runs / 4).max(5)
}

pub fn run(cfg: &Config) -> Result<Value> {
    let scratch = Scratch::new("roots")?;
    let roots: Vec<PathBuf> = (0..ROOT_COUNTS[ROOT_COUNTS.len() - 1]).map(|i| scratch.dir.join(format!("root-{i:03}"))).collect();
    for root in &roots {
        std::fs::create_dir(root).map_err(|e| Error(format!("cannot create {}: {e}", root.display())))?;
    }
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    let mut samples = vec![Vec::new(); ROOT_COUNTS.len()];
    for i in 0..=runs(cfg) {
        for (k, &count) in ROOT_COUNTS.iter().enumerate() {
            let params = json!({
                "processId": format!("roots-{count}-{i}"),
                "argv": ["true"],
                "cwd": uri(&roots[0]),
                "env": {"PATH": "/usr/bin:/bin"},
                "tty": false,
                "sandbox": policy(&roots[..count]),
            });
            let run = process::run(&mut server, params)?;
            if run.exit_code != Some(0) {
                fail!("sandboxed `true` with {count} roots, run {i}: exit {:?}", run.exit_code)
            }
            if i > 0 {
                samples[k].push(run.start_to_closed);
            }
        }
    }
    server.shutdown();
    let mut out = Map::new();
    let one = summarize(&samples[0]).p50_ms;
    for (k, count) in ROOT_COUNTS.iter().enumerate() {
        let s = summarize(&samples[k]);
        out.insert(format!("roots_{count}"), json!({"start_to_closed": s.to_json(), "ratio_p50_to_1": round3(s.p50_ms / one)}));
    }
    Ok(Value::Object(out))
}

/// Read-only root, `roots` writable, network restricted.
fn policy(roots: &[PathBuf]) -> Value {
    let mut entries = vec![json!({"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"})];
    entries.extend(roots.iter().map(|r: &PathBuf| write_entry(r)));
    json!({
        "permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": entries}, "network": "restricted"},
        "windowsSandboxLevel": "disabled",
        "cwd": uri(&roots[0]),
    })
}

fn write_entry(root: &Path) -> Value {
    json!({"path": {"type": "path", "path": uri(root)}, "access": "write"})
}
