//! `ws-service-bench [RUNS]`: the budgets of the websocket service (issue 16,
//! docs/benchmarks-ws.md), measured against the executor of `$EXECUTOR_BIN` (or the
//! workspace's target directory):
//!
//! 1. wss handshake + `initialize`: TCP connect, TLS handshake, upgrade, `initialize`
//!    answered; RUNS (default 200) fresh connections, p50/p90, beside the same over ws://;
//! 2. streaming over wss: one process writing 256 MiB to stdout, MiB/s of the data that
//!    arrives in `process/output` notifications, beside the same over ws://;
//! 3. the audit log's cost: sandboxed `true` (`--default-sandbox workspace-write`),
//!    `process/start` to `process/closed`, RUNS alternating between a server without and
//!    one with `--audit-log`, medians compared.
//!
//! Loopback only; every loop is bounded by RUNS. Needs `openssl` for the test CA.

use executor_tests::RpcClient as _;
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest as _;
use tungstenite::Message;

use executor_tests::pki::Ca;
use executor_tests::ws::{tls_client_config, WsClient, WsServer};
use serde_json::{json, Value};

const STREAM_BYTES: u64 = 256 * 1024 * 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{label}: p50 {:.3} ms, p90 {:.3} ms, min {:.3} ms ({} runs)",
        ms(p50),
        ms(percentile(&samples, 0.9)),
        ms(samples[0]),
        samples.len()
    );
    p50
}

fn handshake_initialize(connect: &dyn Fn() -> WsClient, runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut client = connect();
            client.call("initialize", json!({"clientName": "ws-service-bench"}));
            started.elapsed()
        })
        .collect()
}

/// MiB/s of a process's stdout through notifications. The client reads raw frames and
/// counts their length (base64, so 3/4 of it is data) without parsing the JSON: it is
/// there to measure the server, and on a 2-core machine a parsing client would be the
/// bottleneck.
fn stream(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> f64 {
    let request = url.into_client_request().expect("request");
    let addr = url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/').to_owned();
    let tcp = TcpStream::connect(&addr).expect("connect");
    let _ = tcp.set_nodelay(true);
    let connector = tls.map(tungstenite::Connector::Rustls).unwrap_or(tungstenite::Connector::Plain);
    let (mut ws, _) = match tungstenite::client_tls_with_config(request, tcp, None, Some(connector)) {
        Ok(pair) => pair,
        Err(e) => panic!("handshake: {e}"),
    };
    let mut send = |message: Value| ws.send(Message::text(message.to_string())).expect("send");
    send(json!({"id": 1, "method": "initialize", "params": {"clientName": "ws-service-bench"}}));
    send(json!({"method": "initialized", "params": {}}));
    let started = Instant::now();
    send(json!({"id": 2, "method": "process/start", "params": {"processId": "stream",
        "argv": ["head", "-c", STREAM_BYTES.to_string(), "/dev/zero"], "cwd": "file:///tmp",
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false}}));
    let mut frame_bytes = 0u64;
    loop {
        match ws.read().expect("read") {
            Message::Text(text) => {
                if text.len() < 512 && text.as_str().contains("\"process/closed\"") {
                    break;
                }
                frame_bytes += text.len() as u64;
            }
            Message::Close(_) => panic!("the server closed the stream connection"),
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let data = frame_bytes / 4 * 3;
    if data < STREAM_BYTES {
        eprintln!("only about {data} of {STREAM_BYTES} bytes arrived");
    }
    (STREAM_BYTES as f64 / (1024.0 * 1024.0)) / seconds
}

fn sandboxed_true(client: &mut WsClient, i: usize) -> Duration {
    let id = format!("t{i}");
    let started = Instant::now();
    client.call(
        "process/start",
        json!({"processId": id, "argv": ["true"], "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    client.next_matching(|m: &Value| m["method"] == "process/closed" && m["params"]["processId"] == json!(id));
    started.elapsed()
}

fn main() -> ExitCode {
    let runs = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: ws-service-bench [RUNS]");
            return ExitCode::from(2);
        }
    };
    println!("executor: {}", executor_tests::executor_bin().display());
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot make a scratch directory: {e}");
            return ExitCode::from(1);
        }
    };
    let ca = Ca::new(dir.path(), "bench");
    let leaf = ca.server("server");
    let tls = tls_client_config(&ca.cert, None);

    let wss = WsServer::start_tls(&leaf.cert, &leaf.key, &[]);
    let ws = WsServer::start(&[]);
    let wss_url = wss.url.clone();
    let tls_for = tls.clone();
    let p50_wss = summary(
        "wss handshake + initialize",
        handshake_initialize(&|| WsClient::connect_tls(&wss_url, &[], tls_for.clone()).expect("wss connect"), runs),
    );
    summary("ws handshake + initialize", handshake_initialize(&|| ws.connect(), runs));

    let wss_rate = stream(&wss.url, Some(tls.clone()));
    println!("stream over wss: {wss_rate:.0} MiB/s (256 MiB of stdout)");
    let ws_rate = stream(&ws.url, None);
    println!("stream over ws: {ws_rate:.0} MiB/s (256 MiB of stdout)");
    drop((wss, ws));

    let log = dir.path().join("audit.jsonl");
    let plain = WsServer::start(&["--default-sandbox", "workspace-write"]);
    let audited = WsServer::start(&["--default-sandbox", "workspace-write", "--audit-log", log.to_str().unwrap_or_default()]);
    let (mut off, mut on) = (plain.ready(), audited.ready());
    // Warm-up: the launcher probe and the first bwrap start are not what is measured.
    sandboxed_true(&mut off, usize::MAX);
    sandboxed_true(&mut on, usize::MAX);
    let (mut off_samples, mut on_samples) = (Vec::new(), Vec::new());
    for i in 0..runs {
        off_samples.push(sandboxed_true(&mut off, i));
        on_samples.push(sandboxed_true(&mut on, i));
    }
    let off_p50 = summary("sandboxed true, audit off", off_samples);
    let on_p50 = summary("sandboxed true, audit on ", on_samples);
    println!("audit on / off (p50): {:.3}", on_p50.as_secs_f64() / off_p50.as_secs_f64());

    println!(
        "budgets: wss handshake+initialize p50 <= 3 ms: {}; wss stream >= 300 MiB/s: {}; audit within 5%: {}",
        if ms(p50_wss) <= 3.0 { "met" } else { "MISSED" },
        if wss_rate >= 300.0 { "met" } else { "MISSED" },
        if on_p50.as_secs_f64() <= off_p50.as_secs_f64() * 1.05 { "met" } else { "MISSED" },
    );
    ExitCode::SUCCESS
}
