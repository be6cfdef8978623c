//! Sandboxed `true`: sequential `process/start` of `["true"]` under a workspace-write
//! sandbox (network restricted) with cwd = a scratch dir, timed from the request to
//! `process/closed`. In the same loop, alternating with it, bare `bwrap` with the same
//! mounts runs `/bin/true` (`bare-bwrap-ws`), so both see the same machine load; the
//! ratio sandboxed / bare is the DESIGN.md §6 budget (≤ 1.5×).

use serde_json::{json, Value};

use super::sandbox::{bare_args, bare_once, environment_info, workspace_write, Scratch};
use crate::cli::Config;
use crate::error::Result;
use crate::fail;
use crate::process;
use crate::stats::{round3, summarize};

pub fn run(cfg: &Config) -> Result<Value> {
    let scratch = Scratch::new("ws")?;
    let bare = bare_args(&scratch.dir);
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    let info = environment_info(&mut server);
    let (mut closed, mut bare_samples) = (Vec::new(), Vec::new());
    let mut sandbox_type = None;
    for i in 0..cfg.sandbox_warmup + cfg.sandbox_runs {
        let params = json!({
            "processId": format!("sbx-true-{i}"),
            "argv": ["true"],
            "cwd": scratch.uri(),
            "env": {"PATH": "/usr/bin:/bin"},
            "tty": false,
            "sandbox": workspace_write(&scratch.dir),
        });
        let run = process::run(&mut server, params)?;
        if run.exit_code != Some(0) {
            fail!("sandboxed `true` run {i} exited with {:?}", run.exit_code)
        }
        sandbox_type = run.sandbox_type;
        let b = bare_once(&cfg.bwrap, &bare)?;
        if i >= cfg.sandbox_warmup {
            closed.push(run.start_to_closed);
            bare_samples.push(b);
        }
    }
    server.shutdown();
    let sbx = summarize(&closed);
    let bare_sum = summarize(&bare_samples);
    let mut argv = vec![cfg.bwrap.display().to_string()];
    argv.extend(bare);
    Ok(json!({
        "warmup": cfg.sandbox_warmup,
        "sandbox_type": sandbox_type,
        "server_info": info,
        "start_to_closed": sbx.to_json(),
        "bare_bwrap_ws": bare_sum.to_json(),
        "bare_bwrap_ws_argv": argv,
        "ratio_p50": round3(sbx.p50_ms / bare_sum.p50_ms),
        "ratio_p90": round3(sbx.p90_ms / bare_sum.p90_ms),
    }))
}
