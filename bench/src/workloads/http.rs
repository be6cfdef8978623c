//! `http/request` against a loopback origin run by the bench itself:
//!
//! - streamed: `stream_bytes` (256 MiB by default) of zeros from `GET /bytes?n=N` with
//!   `streamResponse: true`; every `http/request/bodyDelta` is base64-decoded and counted
//!   until the `done` frame. Throughput = body bytes / wall time from the request to
//!   `done`; the server's peak RSS growth over the runs is reported beside it.
//! - small GET: `GET /small` (2 bytes) answered whole, sequentially, on the server's
//!   reused connection: request → response latency.
//!
//! The origin is a few lines of std HTTP/1.1 (Content-Length responses, keep-alive) so
//! that it is never the bottleneck and the bench needs no server of its own to install.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use serde_json::{json, Value};

use crate::cli::Config;
use crate::client::{Message, Server};
use crate::error::{Error, Result};
use crate::fail;
use crate::output::{find, find_byte};
use crate::procfs::cpu_seconds;
use crate::stats::{percentile, round3, summarize};

const MIB: f64 = 1048576.0;
const SMALL_RUNS: usize = 200;
const SMALL_WARMUP: usize = 10;

pub fn run(cfg: &Config) -> Result<Value> {
    let origin = spawn_origin()?;
    let mut server = super::ready_server(cfg, cfg.timeout)?;
    // Peak RSS reset after the handshake, so the growth is what streaming held at most.
    let before = super::fs_read::reset_peak_rss(server.pid());
    let mut rates = Vec::new();
    let mut runs = Vec::new();
    let server_pid = server.pid().to_string();
    for i in 0..cfg.stream_runs {
        let url = format!("http://{origin}/bytes?n={}", cfg.stream_bytes);
        // CPU of the bench (client and origin) and of the server, so a reader can tell
        // which side was the bottleneck.
        let cpu_before = (cpu_seconds("self"), cpu_seconds(&server_pid));
        let (seconds, deltas, max_delta) = streamed(&mut server, &url, &format!("bench-{i}"), cfg.stream_bytes)?;
        let cpu_after = (cpu_seconds("self"), cpu_seconds(&server_pid));
        let used = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| round3(a - b));
        let rate = cfg.stream_bytes as f64 / MIB / seconds;
        rates.push(rate);
        runs.push(json!({"seconds": round3(seconds), "mib_per_s": round3(rate), "deltas": deltas, "max_delta_bytes": max_delta,
            "bench_cpu_s": used(cpu_after.0, cpu_before.0), "server_cpu_s": used(cpu_after.1, cpu_before.1)}));
    }
    let memory = super::fs_read::peak_rss_report(server.pid(), before);
    let mut small = Vec::new();
    for i in 0..SMALL_WARMUP + SMALL_RUNS {
        let sent = Instant::now();
        let id = server
            .request("http/request", json!({"method":"GET","url":format!("http://{origin}/small"),"requestId":format!("small-{i}")}))?;
        let result = server.wait_result(id)?;
        if result.get("bodyBase64").and_then(Value::as_str) != Some("b2s=") {
            fail!("small GET answered {result}")
        }
        if i >= SMALL_WARMUP {
            small.push(sent.elapsed());
        }
    }
    server.shutdown();
    rates.sort_by(f64::total_cmp);
    Ok(json!({
        "streamed": {
            "bytes_per_run": cfg.stream_bytes,
            "mib_per_s_median": round3(percentile(&rates, 50.0)),
            "runs": runs,
            "memory": memory,
        },
        "small_get": summarize(&small).to_json(),
    }))
}

/// One streamed request: (seconds to `done`, deltas, largest delta).
fn streamed(server: &mut Server, url: &str, request_id: &str, expected: u64) -> Result<(f64, usize, usize)> {
    let sent = Instant::now();
    let id = server.request("http/request", json!({"method":"GET","url":url,"requestId":request_id,"streamResponse":true}))?;
    let id_field = format!("\"requestId\":{}", json!(request_id));
    let mut body = Body { answered: false, total: 0, deltas: 0, max_delta: 0, done: false, buf: Vec::new() };
    while !body.done {
        let line = server.read_line()?;
        // Hundreds of MiB of base64 arrive in these lines: the common, compact form is
        // read without building a JSON tree (as `process/output` is, see output.rs).
        if let Some(delta) = fast_delta(line, &id_field) {
            body.add(delta.base64, delta.done)?;
            continue;
        }
        match crate::client::parse_message(line)? {
            Message::Response { id: got, outcome } if got == json!(id) => {
                let result = outcome.map_err(|e| Error(format!("http/request failed: {e}")))?;
                if result.get("status").and_then(Value::as_u64) != Some(200) {
                    fail!("http/request answered {result}")
                }
                body.answered = true;
            }
            Message::Notification { method, params } if method == "http/request/bodyDelta" && params["requestId"] == request_id => {
                if let Some(error) = params.get("error").and_then(Value::as_str) {
                    fail!("the streamed body failed: {error}")
                }
                let base64 = params.get("deltaBase64").and_then(Value::as_str).unwrap_or("");
                body.add(base64.as_bytes(), params.get("done").and_then(Value::as_bool) == Some(true))?;
            }
            _ => {}
        }
    }
    if body.total != expected {
        fail!("received {} body bytes, the origin sent {expected}", body.total)
    }
    Ok((sent.elapsed().as_secs_f64(), body.deltas, body.max_delta))
}

struct Body {
    answered: bool,
    total: u64,
    deltas: usize,
    max_delta: usize,
    done: bool,
    /// Decoded delta, reused.
    buf: Vec<u8>,
}

impl Body {
    fn add(&mut self, base64: &[u8], done: bool) -> Result<()> {
        if !self.answered {
            fail!("a body delta came before the http/request result")
        }
        self.buf.resize(base64.len() / 4 * 3 + 3, 0);
        let n = base64_simd::STANDARD
            .decode(base64, base64_simd::Out::from_slice(&mut self.buf))
            .map_err(|e| Error(format!("a delta is not base64: {e}")))?
            .len();
        if self.buf[..n].iter().any(|&b| b != 0) {
            fail!("the body is not the zeros the origin sent")
        }
        self.total += n as u64;
        self.max_delta = self.max_delta.max(n);
        if !done {
            self.deltas += 1;
        }
        self.done = done;
        Ok(())
    }
}

struct FastDelta<'a> {
    base64: &'a [u8],
    done: bool,
}

/// A compact, error-free `http/request/bodyDelta` line of `id_field`'s request; `None`
/// for anything else (which then gets a full parse). In compact JSON the key patterns
/// cannot occur inside a string value, so this is exact.
fn fast_delta<'a>(line: &'a [u8], id_field: &str) -> Option<FastDelta<'a>> {
    const KEY: &[u8] = b"\"deltaBase64\":\"";
    let key = find(line, KEY)?;
    let start = key + KEY.len();
    let len = find_byte(&line[start..], b'"')?;
    let (head, base64, tail) = (&line[..key], &line[start..start + len], &line[start + len + 1..]);
    let ok = find(head, b"\"method\":\"http/request/bodyDelta\"").is_some()
        && find(head, id_field.as_bytes()).is_some()
        && find(tail, b"\"error\":null").is_some();
    ok.then(|| FastDelta { base64, done: find(tail, b"\"done\":true").is_some() })
}

/// Starts the loopback origin; returns `127.0.0.1:PORT`. Its threads end with the bench.
fn spawn_origin() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error(format!("cannot listen on loopback: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error(e.to_string()))?.to_string();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    Ok(addr)
}

/// Answers GET requests on one connection until the client closes it.
fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let zeros = vec![0u8; 1 << 20];
    loop {
        let mut request_line = String::new();
        if !matches!(reader.read_line(&mut request_line), Ok(1..)) {
            return;
        }
        // Headers up to the blank line; GETs carry no body.
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(1..) if line != "\r\n" && line != "\n" => continue,
                Ok(1..) => break,
                _ => return,
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let size: u64 = path.strip_prefix("/bytes?n=").and_then(|n| n.parse().ok()).unwrap_or(0);
        let ok = if path == "/small" {
            writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok").is_ok()
        } else {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n");
            let mut ok = writer.write_all(head.as_bytes()).is_ok();
            let mut left = size;
            while ok && left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                ok = writer.write_all(&zeros[..n]).is_ok();
                left -= n as u64;
            }
            ok
        };
        if !ok {
            return;
        }
    }
}
