//! The JSON-RPC side of a test client, written once for every transport: [`Executor`]
//! (stdio) and [`WsClient`](crate::ws::WsClient) (websocket) only say how a message is
//! sent and received; requests, responses, waiting for a message and collecting a
//! process's events come from [`RpcClient`]'s provided methods.
//!
//! [`Executor`]: crate::Executor

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{error_of, RunOutput, TIMEOUT};

/// Messages received but not yet consumed by a test, and the last request id used.
#[derive(Debug, Default)]
pub struct ClientState {
    pub pending: Vec<Value>,
    pub next_id: i64,
}

impl ClientState {
    pub fn starting_ids_at(next_id: i64) -> Self {
        Self { pending: Vec::new(), next_id }
    }
}

pub trait RpcClient: Sized {
    /// Sends one message.
    fn send(&mut self, message: &Value);
    /// The next message, or `None` at `deadline` or once the connection is gone.
    fn recv_until(&mut self, deadline: Instant) -> Option<Value>;
    fn state(&mut self) -> &mut ClientState;

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"method": method, "params": params}));
    }

    /// Sends a request with a fresh integer id and returns that id.
    fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let state = self.state();
        state.next_id += 1;
        let id = state.next_id;
        self.send(&json!({"id": id, "method": method, "params": params}));
        id
    }

    /// Sends a request and waits for its response (result or error object).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(id)
    }

    /// The `result` of a request that must succeed.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params.clone());
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} {params} failed: {response}"),
        }
    }

    /// The `error` of a request that must fail: (code, message).
    fn call_err(&mut self, method: &str, params: Value) -> (i64, String) {
        let response = self.request(method, params.clone());
        error_of(&response).unwrap_or_else(|| panic!("{method} {params} unexpectedly succeeded: {response}"))
    }

    fn response(&mut self, id: i64) -> Value {
        self.next_matching(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
    }

    /// The next message (in arrival order) that satisfies `pred`; others stay pending.
    fn next_matching(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        match self.try_next_matching(&pred, TIMEOUT) {
            Some(message) => message,
            None => panic!("no matching message within {TIMEOUT:?}; pending: {:?}", self.state().pending),
        }
    }

    fn try_next_matching(&mut self, pred: &dyn Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let pending = &mut self.state().pending;
        if let Some(pos) = pending.iter().position(pred) {
            return Some(pending.remove(pos));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.recv_until(deadline)?;
            if pred(&message) {
                return Some(message);
            }
            self.state().pending.push(message);
        }
    }

    /// Every notification of `process_id` up to and including `process/closed`.
    fn events_until_closed(&mut self, process_id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next_matching(|m| {
                m.get("method").and_then(Value::as_str).is_some_and(|n| n.starts_with("process/"))
                    && m["params"]["processId"] == json!(process_id)
            });
            let closed = event["method"] == "process/closed";
            events.push(event);
            if closed {
                return events;
            }
        }
    }

    /// Starts a process and returns its collected output and exit code.
    fn run(&mut self, process_id: &str, mut params: Value) -> RunOutput {
        params["processId"] = json!(process_id);
        self.call("process/start", params);
        RunOutput::from_events(&self.events_until_closed(process_id))
    }
}
