//! Running one process through `process/start` and following it to
//! `process/closed`, the building block of every process workload.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Message, Server};
use crate::error::{Error, Result};
use crate::fail;
use crate::output::{OutputCounter, OutputTotals};

/// What happened to one process.
#[derive(Debug, Clone)]
pub struct ProcessRun {
    /// From writing the `process/start` request to reading `process/closed`.
    pub start_to_closed: Duration,
    /// From writing the request to reading its response.
    pub start_to_response: Duration,
    pub exit_code: Option<i64>,
    pub sandbox_type: Option<String>,
    pub output: OutputTotals,
}

/// Params for a plain (unsandboxed, non-tty) `process/start`.
pub fn start_params(process_id: &str, argv: &[&str]) -> Value {
    json!({
        "processId": process_id,
        "argv": argv,
        "cwd": "file:///tmp",
        "env": {"PATH": "/usr/bin:/bin"},
        "tty": false,
    })
}

/// Starts the process described by `params` (which must carry `processId`) and
/// reads until both its `process/closed` notification and the start response have
/// arrived (they may come in either order). Output is decoded and counted.
pub fn run(server: &mut Server, params: Value) -> Result<ProcessRun> {
    let Some(process_id) = params.get("processId").and_then(Value::as_str).map(str::to_string) else {
        fail!("process/start params need a processId")
    };
    let mut follow = Follow::new(&process_id);
    let sent = Instant::now();
    let id = server.request("process/start", params)?;
    while follow.closed_at.is_none() || follow.responded_at.is_none() {
        let line = server.read_line()?;
        if follow.counter.try_fast(line)? {
            continue;
        }
        let message = crate::client::parse_message(line)?;
        follow.handle(id, message)?;
    }
    let (Some(closed_at), Some(responded_at)) = (follow.closed_at, follow.responded_at) else { fail!("internal: loop ended early") };
    Ok(ProcessRun {
        start_to_closed: closed_at - sent,
        start_to_response: responded_at - sent,
        exit_code: follow.exit_code,
        sandbox_type: follow.sandbox_type,
        output: follow.counter.totals,
    })
}

struct Follow {
    process_id: String,
    counter: OutputCounter,
    closed_at: Option<Instant>,
    responded_at: Option<Instant>,
    exit_code: Option<i64>,
    sandbox_type: Option<String>,
}

impl Follow {
    fn new(process_id: &str) -> Self {
        Self {
            process_id: process_id.to_string(),
            counter: OutputCounter::new(process_id),
            closed_at: None,
            responded_at: None,
            exit_code: None,
            sandbox_type: None,
        }
    }

    fn handle(&mut self, request_id: i64, message: Message) -> Result<()> {
        match message {
            Message::Response { id, outcome } if id == json!(request_id) => {
                let result = outcome.map_err(|e| Error(format!("process/start {} failed: {e}", self.process_id)))?;
                self.responded_at = Some(Instant::now());
                self.sandbox_type = result.get("sandboxType").and_then(Value::as_str).map(str::to_string);
            }
            Message::Response { .. } => {}
            Message::Notification { method, params } => self.notification(&method, &params)?,
        }
        Ok(())
    }

    fn notification(&mut self, method: &str, params: &Value) -> Result<()> {
        if params.get("processId").and_then(Value::as_str) != Some(self.process_id.as_str()) {
            return Ok(());
        }
        match method {
            "process/output" => self.counter.add_params(params)?,
            "process/exited" => self.exit_code = params.get("exitCode").and_then(Value::as_i64),
            "process/closed" => self.closed_at = Some(Instant::now()),
            _ => {}
        }
        Ok(())
    }
}
