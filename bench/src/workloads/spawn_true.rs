//! `true` start → closed: sequential `process/start` of `["true"]` on one server,
//! timed from writing the request to reading `process/closed`.

use serde_json::{json, Value};

use crate::cli::Config;
use crate::error::Result;
use crate::fail;
use crate::process::{self, start_params};
use crate::stats::summarize;

pub fn run(cfg: &Config) -> Result<Value> {
    let total = cfg.true_warmup + cfg.true_runs;
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    let (mut closed, mut responded) = (Vec::new(), Vec::new());
    let mut sandbox_type = None;
    for i in 0..total {
        let run = process::run(&mut server, start_params(&format!("true-{i}"), &["true"]))?;
        if run.exit_code != Some(0) {
            fail!("`true` run {i} exited with {:?}", run.exit_code)
        }
        sandbox_type = run.sandbox_type;
        if i >= cfg.true_warmup {
            closed.push(run.start_to_closed);
            responded.push(run.start_to_response);
        }
    }
    server.shutdown();
    Ok(json!({
        "warmup": cfg.true_warmup,
        "sandbox_type": sandbox_type,
        "start_to_closed": summarize(&closed).to_json(),
        "start_to_response": summarize(&responded).to_json(),
    }))
}
