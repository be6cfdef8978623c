//! Websocket load: many clients at once on one executor, each with its own session running
//! a short process whose whole output it reads. Used by the `ws-load` benchmark binary and
//! by the `ws_load` test (which checks completeness, never speed).

use crate::RpcClient as _;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ws::WsClient;

/// Lines each client's process prints (`seq 1 LINES` after a header line).
pub const LINES: usize = 200;

#[derive(Debug)]
pub struct LoadReport {
    pub clients: usize,
    /// Clients whose process output arrived complete (notifications and process/read).
    pub completed: usize,
    /// What went wrong, per failed client.
    pub failures: Vec<String>,
    /// From the moment all clients are released until the last one has finished.
    pub wall: Duration,
}

/// The output client `i`'s process must produce.
fn expected_output(i: usize) -> String {
    let mut text = format!("client-{i}\n");
    for n in 1..=LINES {
        text.push_str(&format!("{n}\n"));
    }
    text
}

/// Runs `clients` concurrent clients against the ws server at `url`.
pub fn run(url: &str, clients: usize) -> LoadReport {
    // Every client connects first; then all start their process together.
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (url, barrier) = (url.to_owned(), barrier.clone());
            thread::Builder::new()
                .name(format!("ws-client-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || one_client(&url, i, &barrier))
                .expect("spawn a client thread")
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut failures = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("client {i}: {e}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("client {i} panicked: {message}"));
            }
        }
    }
    LoadReport { clients, completed: clients - failures.len(), failures, wall: started.elapsed() }
}

fn one_client(url: &str, i: usize, barrier: &Barrier) -> Result<(), String> {
    let connected = WsClient::connect(url, &[]);
    barrier.wait();
    let mut client = connected.map_err(|e| format!("connect: {e}"))?;
    client.handshake();
    let id = format!("load-{i}");
    let script = format!("echo client-{i}; seq 1 {LINES}");
    let out = client.run(
        &id,
        json!({"argv": ["sh", "-c", script], "cwd": "file:///tmp",
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let expected = expected_output(i);
    if out.stdout_str() != expected || out.exit_code != Some(0) {
        return Err(format!("notifications: exit {:?}, {} of {} bytes", out.exit_code, out.stdout.len(), expected.len()));
    }
    // The same bytes through process/read, from the start of the stream.
    let (chunks, code) = client.read_all(&id);
    let read: Vec<u8> = chunks.into_iter().flat_map(|(_, data)| data).collect();
    if read != expected.as_bytes() || code != Some(0) {
        return Err(format!("process/read: exit {code:?}, {} of {} bytes", read.len(), expected.len()));
    }
    Ok(())
}

/// Peak resident set (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok())
}
