//! `fs/getMetadata` latency under the workspace-write sandbox (the per-policy
//! fs-helper is warmed by `meta_warmup` calls first), plus the same direct for
//! comparison. Sequential requests on one server; request → response.

use std::time::Instant;

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
        Ok(json!({"warmup": cfg.meta_warmup, "latency": summarize(&samples).to_json()}))
    })?;
    Ok(Value::Object(out))
}
