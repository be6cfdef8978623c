//! `ws-load [CLIENTS]`: the websocket budget benchmark (docs/benchmarks-ws.md).
//!
//! Starts `executor --listen ws://127.0.0.1:0` (the binary from `$EXECUTOR_BIN`, or the
//! workspace's target directory, debug first), runs CLIENTS (default 200) concurrent
//! clients that each initialize a session, run `sh -c 'echo client-N; seq 1 200'`, collect
//! its output from the notifications and again with `process/read`, and prints the wall
//! time and the executor's peak RSS. Exits 1 if any client's output was incomplete.

use std::process::ExitCode;

use executor_tests::ws::WsServer;
use executor_tests::ws_load::{self, LINES};

fn main() -> ExitCode {
    let clients = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: ws-load [CLIENTS]");
            return ExitCode::from(2);
        }
    };
    let server = WsServer::start(&[]);
    let binary = executor_tests::executor_bin();
    let report = ws_load::run(&server.url, clients);
    let rss = ws_load::peak_rss_kib(server.pid());
    println!("executor: {}", binary.display());
    println!("clients: {clients}, each: sh -c 'echo client-N; seq 1 {LINES}', read via notifications and process/read");
    println!("completed: {}/{}", report.completed, report.clients);
    println!("wall: {:.3} s", report.wall.as_secs_f64());
    match rss {
        Some(kib) => println!("executor peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("executor peak RSS: unavailable"),
    }
    for failure in &report.failures {
        eprintln!("FAILED {failure}");
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
