//! Bare bwrap: spawn `bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all
//! --die-with-parent -- true` directly and wait for it. The floor any sandboxed
//! `process/start` is compared with.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::Config;
use crate::error::{Error, Result};
use crate::fail;
use crate::stats::summarize;

pub const ARGS: [&str; 10] = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all", "--die-with-parent", "--"];

pub fn run(cfg: &Config) -> Result<Value> {
    let mut samples = Vec::new();
    for i in 0..cfg.bwrap_warmup + cfg.bwrap_runs {
        let took = once(cfg)?;
        if i >= cfg.bwrap_warmup {
            samples.push(took);
        }
    }
    let mut argv = vec![cfg.bwrap.display().to_string()];
    argv.extend(ARGS.iter().map(|s| s.to_string()));
    argv.push("true".into());
    Ok(json!({"warmup": cfg.bwrap_warmup, "argv": argv, "spawn_to_exit": summarize(&samples).to_json()}))
}

fn once(cfg: &Config) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new(&cfg.bwrap)
        .args(ARGS)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error(format!("cannot run {}: {e}", cfg.bwrap.display())))?;
    let took = started.elapsed();
    if !out.status.success() {
        fail!("bwrap failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())
    }
    Ok(took)
}
