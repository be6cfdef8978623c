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

use super::sandbox::{fs_params, run_fs_modes, write_file, Mode, Scratch};
use crate::cli::Config;
use crate::client::{parse_message, Message, Server};
use crate::error::{Error, Result};
use crate::fail;
use crate::memory;
use crate::procfs::read_mem;
use crate::stats::{percentile, round3};

const MIB: f64 = 1048576.0;

pub fn run(cfg: &Config) -> Result<Value> {
    let scratch = Scratch::new("read")?;
    let size = cfg.read_bytes as usize;
    // Not all zeros, so a wrong offset or a truncated read shows.
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let file = scratch.dir.join("data.bin");
    write_file(&file, &data)?;
    let small = scratch.dir.join("small.txt");
    write_file(&small, b"warm")?;
    let server = super::ready_server(cfg, cfg.timeout)?;
    let modes = [Mode::Direct, Mode::Sandboxed];
    let mut out = run_fs_modes(server, &scratch, modes, |server, mode, sandbox| {
        let mut warm = None;
        if sandbox.is_some() {
            let (_, took, body) = read_once(server, fs_params(&small, sandbox))?;
            if body != b"warm" {
                fail!("warm-up read returned {} bytes, expected 4", body.len())
            }
            warm = Some(round3(took.as_secs_f64() * 1000.0));
        }
        let rss_before = reset_peak_rss(server.pid());
        let (mut rates, mut first_bytes) = (Vec::new(), Vec::new());
        for i in 0..cfg.read_runs {
            let (first_byte, took, body) = read_once(server, fs_params(&file, sandbox))?;
            first_bytes.push(first_byte.as_secs_f64() * 1000.0);
            if body.len() != size {
                fail!("{} run {i}: decoded {} bytes, the file has {size}", mode.name(), body.len())
            }
            if body != data {
                fail!("{} run {i}: decoded bytes differ from the file", mode.name())
            }
            rates.push(size as f64 / MIB / took.as_secs_f64());
        }
        let runs: Vec<f64> = rates.iter().map(|r| round3(*r)).collect();
        rates.sort_by(f64::total_cmp);
        first_bytes.sort_by(f64::total_cmp);
        let mut result = json!({
            "mib_per_s_median": round3(percentile(&rates, 50.0)),
            "runs_mib_per_s": runs,
            "first_byte_ms_median": round3(percentile(&first_bytes, 50.0)),
            "helper_warmup_small_read_ms": warm,
        });
        result["memory"] = peak_rss_report(server.pid(), rss_before);
        Ok(result)
    })?;
    out.insert("bytes".into(), json!(size));
    Ok(Value::Object(out))
}

/// Resets the peak RSS (`VmHWM`) of the process that was spawned (the server proper
/// for a native binary) by writing 5 to its `clear_refs`, so the peak after the runs is
/// theirs; returns its RSS now (KiB) and whether the reset worked.
pub(super) fn reset_peak_rss(pid: u32) -> (u64, bool) {
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok();
    (read_mem(pid).map_or(0, |m| m.rss_kib), reset)
}

/// The spawned process's RSS before the runs and its peak during them (the growth is
/// what reading held at most), plus the whole tree (a sandboxed server's helper is in
/// it; its peak was not reset).
pub(super) fn peak_rss_report(pid: u32, (rss_before, reset): (u64, bool)) -> Value {
    let hwm = read_mem(pid).map_or(0, |m| m.hwm_kib);
    json!({
        "server_rss_before_kib": rss_before,
        "server_peak_kib": hwm,
        "server_peak_growth_kib": hwm.saturating_sub(rss_before),
        "peak_was_reset": reset,
        "tree_after": memory::sample(pid).map(|t| t.to_json()).unwrap_or_else(|e| json!({"error": e.0})),
    })
}

/// One `fs/readFile`: time to the first byte of the answer and to the full response
/// line, then the decoded data.
fn read_once(server: &mut Server, params: Value) -> Result<(Duration, Duration, Vec<u8>)> {
    let sent = Instant::now();
    let id = server.request("fs/readFile", params)?;
    server.wait_readable()?;
    let first_byte = sent.elapsed();
    loop {
        let line = server.read_line()?;
        let took = sent.elapsed();
        if let Message::Response { id: got, outcome } = parse_message(line)? {
            if got == json!(id) {
                let result = outcome.map_err(|e| Error(format!("fs/readFile failed: {e}")))?;
                let Some(b64) = result.get("dataBase64").and_then(Value::as_str) else { fail!("fs/readFile result has no dataBase64") };
                let body = STANDARD.decode(b64).map_err(|e| Error(format!("bad base64 in fs/readFile result: {e}")))?;
                return Ok((first_byte, took, body));
            }
        }
    }
}
