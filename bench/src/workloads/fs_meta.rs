//! `fs/getMetadata` latency under the workspace-write sandbox (the per-policy
//! fs-helper is warmed by `meta_warmup` calls first), plus the same direct for
//! comparison. Sequential requests on one server; request → response.
//!
//! Sandboxed, it also measures the first request after the host replaced a directory
//! the policy denies (`rm -r D && mkdir D`): the executor notices the change and pays
//! one helper start (`after_change`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::sandbox::{fs_params, run_fs_modes, write_file, Mode, Scratch};
use crate::cli::Config;
use crate::error::Result;
use crate::fail;
use crate::stats::summarize;

pub fn run(cfg: &Config) -> Result<Value> {
    let scratch = Scratch::new("meta")?;
    let file = scratch.dir.join("file.txt");
    write_file(&file, b"metadata")?;
    let server = super::ready_server(cfg, cfg.timeout)?;
    let out = run_fs_modes(server, &scratch, [Mode::Sandboxed, Mode::Direct], |server, _, sandbox| {
        let mut samples = Vec::new();
        let mut last = Value::Null;
        for i in 0..cfg.meta_warmup + cfg.meta_runs {
            let params = fs_params(&file, sandbox);
            let sent = Instant::now();
            let id = server.request("fs/getMetadata", params)?;
            last = server.wait_result(id)?;
            if i >= cfg.meta_warmup {
                samples.push(sent.elapsed());
            }
        }
        if last.get("isFile").and_then(Value::as_bool) != Some(true) {
            fail!("fs/getMetadata result does not say isFile: {last}")
        }
        let mut out = json!({"warmup": cfg.meta_warmup, "latency": summarize(&samples).to_json()});
        if let Some(sandbox) = sandbox {
            let after = after_change(server, &file, sandbox, &scratch.dir.join("denied"))?;
            out["after_change"] = json!({"latency": summarize(&after).to_json()});
        }
        Ok(out)
    })?;
    Ok(Value::Object(out))
}

/// Runs after a host change of a denied directory, measured one by one.
const AFTER_CHANGE_RUNS: usize = 20;

/// Latency of the first `fs/getMetadata` after the host replaced `denied`, a `none`
/// entry of the policy (the helper's warm view is stale and must be rebuilt).
fn after_change(server: &mut crate::client::Server, file: &Path, sandbox: &Value, denied: &Path) -> Result<Vec<Duration>> {
    let mut sandbox = sandbox.clone();
    let entry = json!({"path": {"type": "path", "path": super::sandbox::uri(denied)}, "access": "none"});
    match sandbox.pointer_mut("/permissions/file_system/entries").and_then(Value::as_array_mut) {
        Some(entries) => entries.push(entry),
        None => fail!("the workspace-write context has no entries"),
    }
    let io = |e: std::io::Error| crate::error::Error(format!("cannot replace {}: {e}", denied.display()));
    std::fs::create_dir_all(denied).map_err(io)?;
    let mut samples = Vec::with_capacity(AFTER_CHANGE_RUNS);
    for i in 0..=AFTER_CHANGE_RUNS {
        if i > 0 {
            std::fs::remove_dir(denied).map_err(io)?;
            std::fs::create_dir(denied).map_err(io)?;
        }
        let sent = Instant::now();
        let id = server.request("fs/getMetadata", fs_params(file, Some(&sandbox)))?;
        server.wait_result(id)?;
        if i > 0 {
            samples.push(sent.elapsed());
        }
    }
    Ok(samples)
}
