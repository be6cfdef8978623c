//! stdout streaming: one process writes `stream_bytes` zeros
//! (`head -c N /dev/zero`); every `process/output` chunk is base64-decoded and
//! counted until `process/closed`. Throughput = decoded stdout bytes / wall time
//! from the start request to `closed`. A byte count that differs from N, or any
//! non-zero byte, fails the workload. After the runs the server tree's peak RSS
//! (VmHWM) is sampled.

use serde_json::{json, Value};

use crate::cli::Config;
use crate::error::Result;
use crate::fail;
use crate::memory;
use crate::process::{self, start_params, ProcessRun};
use crate::procfs::cpu_seconds;
use crate::stats::{percentile, round3};

const MIB: f64 = 1048576.0;

pub fn run(cfg: &Config) -> Result<Value> {
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    let size = cfg.stream_bytes.to_string();
    let server_pid = memory::sample(server.pid())?.server.pid.to_string();
    let mut runs = Vec::new();
    for i in 0..cfg.stream_runs {
        let params = start_params(&format!("stream-{i}"), &["head", "-c", &size, "/dev/zero"]);
        let before = Cpu::now(&server_pid);
        let run = process::run(&mut server, params)?;
        let cpu = Cpu::now(&server_pid).since(&before);
        check(cfg.stream_bytes, i, &run)?;
        runs.push((run, cpu));
    }
    let peak = memory::sample(server.pid())?;
    server.shutdown();
    let mut rates: Vec<f64> = runs.iter().map(|(r, _)| mib_per_s(r.output.stdout_bytes, r)).collect();
    rates.sort_by(f64::total_cmp);
    Ok(json!({
        "bytes_per_run": cfg.stream_bytes,
        "mib_per_s_median": round3(percentile(&rates, 50.0)),
        "mib_per_s_min": round3(rates.first().copied().unwrap_or(f64::NAN)),
        "mib_per_s_max": round3(rates.last().copied().unwrap_or(f64::NAN)),
        "runs": runs.iter().map(|(r, cpu)| run_json(r, cpu)).collect::<Vec<_>>(),
        "peak_after_stream": peak.to_json(),
    }))
}

fn check(expected: u64, i: usize, run: &ProcessRun) -> Result<()> {
    let out = &run.output;
    if run.exit_code != Some(0) {
        fail!("stream run {i}: process exited with {:?}", run.exit_code)
    }
    if out.stdout_bytes != expected {
        fail!("stream run {i}: received {} stdout bytes, the process wrote {expected}", out.stdout_bytes)
    }
    if out.nonzero_chunks != 0 || out.stderr_bytes != 0 {
        fail!("stream run {i}: {} chunks with non-zero bytes, {} stderr bytes (expected none)", out.nonzero_chunks, out.stderr_bytes)
    }
    Ok(())
}

fn mib_per_s(bytes: u64, run: &ProcessRun) -> f64 {
    bytes as f64 / MIB / run.start_to_closed.as_secs_f64()
}

/// CPU seconds of the bench itself and of the server process, so a reader can
/// tell whether the client could have been the bottleneck.
struct Cpu {
    client: Option<f64>,
    server: Option<f64>,
}

impl Cpu {
    fn now(server_pid: &str) -> Self {
        Self { client: cpu_seconds("self"), server: cpu_seconds(server_pid) }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| round3(a - b));
        Cpu { client: diff(self.client, before.client), server: diff(self.server, before.server) }
    }
}

fn run_json(run: &ProcessRun, cpu: &Cpu) -> Value {
    json!({
        "bench_cpu_s": cpu.client,
        "server_cpu_s": cpu.server,
        "seconds": round3(run.start_to_closed.as_secs_f64()),
        "mib_per_s": round3(mib_per_s(run.output.stdout_bytes, run)),
        "decoded_bytes": run.output.stdout_bytes,
        "chunks": run.output.chunks,
        "max_chunk_bytes": run.output.max_chunk,
    })
}
