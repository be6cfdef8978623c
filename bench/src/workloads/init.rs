//! `initialize` latency: spawn a fresh server, send `initialize` at once (the pipe
//! holds it until the server reads), and time spawn → response. Each run also
//! times how long the server takes to exit after its stdin closes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::Config;
use crate::client::Server;
use crate::error::Result;
use crate::fail;
use crate::stats::summarize;

pub fn run(cfg: &Config) -> Result<Value> {
    let (mut answered, mut exited) = (Vec::new(), Vec::new());
    for i in 0..cfg.init_warmup + cfg.init_runs {
        let (a, e) = once(cfg)?;
        if i >= cfg.init_warmup {
            answered.push(a);
            exited.push(e);
        }
    }
    Ok(json!({
        "warmup": cfg.init_warmup,
        "spawn_to_initialize": summarize(&answered).to_json(),
        "exit_after_stdin_eof": summarize(&exited).to_json(),
    }))
}

fn once(cfg: &Config) -> Result<(Duration, Duration)> {
    let mut server = Server::spawn(&cfg.server)?;
    server.set_deadline(cfg.timeout);
    let id = server.request("initialize", json!({"clientName": "exec-bench"}))?;
    let result = server.wait_result(id)?;
    let answered = server.spawned_at.elapsed();
    if result.get("sessionId").and_then(Value::as_str).is_none() {
        fail!("initialize result has no sessionId: {result}")
    }
    Ok((answered, server.shutdown()))
}
