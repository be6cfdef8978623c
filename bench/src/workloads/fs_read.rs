//! `fs/readFile` of a file of `read_bytes` (default 64 MiB) in a scratch dir, direct
//! (no sandbox) and under the workspace-write sandbox. Per run: from writing the
//! request to having read the whole response line; the JSON parse and base64 decode
//! happen after the clock stops, and the decoded bytes must equal the file. Median of
//! `read_runs`. The sandboxed mode first reads a small file once so the per-policy
//! fs-helper is warm (its start is not in the figure; it is reported separately).

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::sandbox::{uri, workspace_write, Scratch};
use crate::cli::Config;
use crate::client::{parse_message, Message, Server};
use crate::error::{Error, Result};
use crate::fail;
use crate::stats::{percentile, round3};

const MIB: f64 = 1048576.0;

pub fn run(cfg: &Config) -> Result<Value> {
    let scratch = Scratch::new("read")?;
    let size = cfg.read_bytes as usize;
    // Not all zeros, so a wrong offset or a truncated read shows.
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let file = scratch.dir.join("data.bin");
    std::fs::write(&file, &data).map_err(|e| Error(format!("cannot write {}: {e}", file.display())))?;
    let small = scratch.dir.join("small.txt");
    std::fs::write(&small, b"warm").map_err(|e| Error(format!("cannot write {}: {e}", small.display())))?;
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    let mut out = serde_json::Map::new();
    for (mode, sandbox) in [("direct", None), ("sandboxed", Some(workspace_write(&scratch.dir)))] {
        let outcome = (|| -> Result<Value> {
            let mut warm = None;
            if let Some(sb) = &sandbox {
                let params = json!({"path": uri(&small), "sandbox": sb});
                let (took, body) = read_once(&mut server, params)?;
                if body != b"warm" {
                    fail!("warm-up read returned {} bytes, expected 4", body.len())
                }
                warm = Some(round3(took.as_secs_f64() * 1000.0));
            }
            let mut rates = Vec::new();
            for i in 0..cfg.read_runs {
                let mut params = json!({"path": uri(&file)});
                if let Some(sb) = &sandbox {
                    params["sandbox"] = sb.clone();
                }
                let (took, body) = read_once(&mut server, params)?;
                if body.len() != size {
                    fail!("{mode} run {i}: decoded {} bytes, the file has {size}", body.len())
                }
                if body != data {
                    fail!("{mode} run {i}: decoded bytes differ from the file")
                }
                rates.push(size as f64 / MIB / took.as_secs_f64());
            }
            let runs: Vec<f64> = rates.iter().map(|r| round3(*r)).collect();
            rates.sort_by(f64::total_cmp);
            Ok(json!({
                "mib_per_s_median": round3(percentile(&rates, 50.0)),
                "runs_mib_per_s": runs,
                "helper_warmup_small_read_ms": warm,
            }))
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
    out.insert("bytes".into(), json!(size));
    Ok(Value::Object(out))
}

/// One `fs/readFile`: time to the full response line, then the decoded data.
fn read_once(server: &mut Server, params: Value) -> Result<(Duration, Vec<u8>)> {
    let sent = Instant::now();
    let id = server.request("fs/readFile", params)?;
    loop {
        let line = server.read_line()?;
        let took = sent.elapsed();
        if let Message::Response { id: got, outcome } = parse_message(line)? {
            if got == json!(id) {
                let result = outcome.map_err(|e| Error(format!("fs/readFile failed: {e}")))?;
                let Some(b64) = result.get("dataBase64").and_then(Value::as_str) else {
                    fail!("fs/readFile result has no dataBase64")
                };
                let body = STANDARD.decode(b64).map_err(|e| Error(format!("bad base64 in fs/readFile result: {e}")))?;
                return Ok((took, body));
            }
        }
    }
}
