//! `fs/getMetadata` latency under the workspace-write sandbox (the per-policy
//! fs-helper is warmed by `meta_warmup` calls first), plus the same direct for
//! comparison. Sequential requests on one server; request → response.

use std::time::Instant;

use serde_json::{json, Value};

use super::sandbox::{uri, workspace_write, Scratch};
use crate::cli::Config;
use crate::error::{Error, Result};
use crate::fail;
use crate::stats::summarize;

pub fn run(cfg: &Config) -> Result<Value> {
    let scratch = Scratch::new("meta")?;
    let file = scratch.dir.join("file.txt");
    std::fs::write(&file, b"metadata").map_err(|e| Error(format!("cannot write {}: {e}", file.display())))?;
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    let mut out = serde_json::Map::new();
    for (mode, sandbox) in [("sandboxed", Some(workspace_write(&scratch.dir))), ("direct", None)] {
        let outcome = (|| -> Result<Value> {
            let mut samples = Vec::new();
            let mut last = Value::Null;
            for i in 0..cfg.meta_warmup + cfg.meta_runs {
                let mut params = json!({"path": uri(&file)});
                if let Some(sb) = &sandbox {
                    params["sandbox"] = sb.clone();
                }
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
            Ok(json!({"warmup": cfg.meta_warmup, "latency": summarize(&samples).to_json()}))
        })();
        match outcome {
            Ok(v) => out.insert(mode.into(), v),
            Err(e) => out.insert(mode.into(), json!({"error": e.0})),
        };
    }
    server.shutdown();
    let errors: Vec<String> =
        out.iter().filter_map(|(k, v)| v.get("error").and_then(Value::as_str).map(|e| format!("{k}: {e}"))).collect();
    if errors.len() == out.len() {
        fail!("{}", errors.join("; "))
    }
    Ok(Value::Object(out))
}
