//! Idle memory: a fresh server past the handshake, left alone for `idle`, then its
//! process tree's VmRSS is read.

use serde_json::{json, Value};

use crate::cli::Config;
use crate::error::Result;
use crate::memory;

pub fn run(cfg: &Config) -> Result<Value> {
    let server = super::ready_server(cfg, cfg.timeout)?;
    std::thread::sleep(cfg.idle);
    let tree = memory::sample(server.pid())?;
    server.shutdown();
    Ok(json!({"idle_ms": cfg.idle.as_millis() as u64, "idle": tree.to_json()}))
}
