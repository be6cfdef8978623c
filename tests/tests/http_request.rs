//! `http/request` (protocol.md §11) against real local servers: Python's http.server over
//! HTTP/1.1, and over HTTPS with a private CA given through SSL_CERT_FILE. The egress
//! rules are tried on loopback addresses only.

use executor_tests::RpcClient as _;
use std::process::Command;

use executor_tests::http::{PyServer, TestCa};
use executor_tests::{b64, executor_bin, memory_kib, unb64, Executor};
use serde_json::{json, Value};

const DELTA: &str = "http/request/bodyDelta";

fn get(url: &str) -> Value {
    json!({"method":"GET","url":url,"requestId":"r"})
}

fn header<'a>(result: &'a Value, name: &str) -> Vec<&'a str> {
    result["headers"].as_array().expect("headers").iter().filter(|h| h["name"] == name).filter_map(|h| h["value"].as_str()).collect()
}

fn body(result: &Value) -> Vec<u8> {
    unb64(result["bodyBase64"].as_str().expect("bodyBase64"))
}

fn echoed(result: &Value) -> Value {
    serde_json::from_slice(&body(result)).unwrap_or_else(|e| panic!("not the echo JSON: {e}: {result}"))
}

/// Executor with an environment variable set, stderr kept, logging at debug.
fn executor_with(args: &[&str], env: &[(&str, &str)]) -> Executor {
    let mut command = Command::new(executor_bin());
    command.args(["--listen", "stdio"]).args(args).env("EXECUTOR_LOG", "debug");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut server = Executor::spawn_capturing_stderr(command);
    server.handshake();
    server
}

/// Sends a streamed request; returns (the messages for it in arrival order up to the
/// last delta). The response is asserted to come first.
fn streamed(server: &mut Executor, params: Value) -> (Value, Vec<Value>) {
    let request_id = params["requestId"].clone();
    let id = server.send_request("http/request", params);
    let first = server.next_matching(|m| m["id"] == json!(id) || (m["method"] == DELTA && m["params"]["requestId"] == request_id));
    assert_eq!(first["id"], json!(id), "the result must come before any delta: {first}");
    let result = first.get("result").cloned().unwrap_or_else(|| panic!("streamed request failed: {first}"));
    let mut deltas = Vec::new();
    loop {
        let delta = server.next_matching(|m| m["method"] == DELTA && m["params"]["requestId"] == request_id);
        let done = delta["params"]["done"] == true;
        deltas.push(delta["params"].clone());
        if done {
            return (result, deltas);
        }
    }
}

fn joined(deltas: &[Value]) -> Vec<u8> {
    deltas.iter().flat_map(|d| unb64(d["deltaBase64"].as_str().unwrap_or(""))).collect()
}

#[test]
fn gated_like_every_method_with_params_decoded_first() {
    let mut server = Executor::start(&[]);
    let (code, message) = server.call_err("http/request", get("http://127.0.0.1:1/"));
    assert_eq!((code, message.as_str()), (-32600, "client must call initialize before using http methods"));
    let (code, message) = server.call_err("http/request", json!({"method":"GET","url":"http://127.0.0.1:1/"}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `requestId`"));
    let init = server.call("initialize", json!({"clientName":"tests"}));
    assert_eq!(init["environmentInfo"]["capabilities"]["httpHeaderEnvVars"], true);
    let (code, message) = server.call_err("http/request", get("http://127.0.0.1:1/"));
    assert_eq!((code, message.as_str()), (-32600, "client must send initialized before using http methods"));
}

#[test]
fn headers_keep_order_and_duplicates_and_env_values_stay_secret() {
    let site = PyServer::http("127.0.0.1");
    let mut server = executor_with(&[], &[("EXECUTOR_TEST_TOKEN", "s3cret-value")]);
    let url = format!("http://127.0.0.1:{}/echo?x=1", site.port);
    let result = server.call(
        "http/request",
        json!({"method":"POST","url":url,"requestId":"h1","bodyBase64":b64(b"payload"),"headers":[
            {"name":"X-First","value":"1"},
            {"name":"Authorization","value":"Bearer ","valueEnvVar":"EXECUTOR_TEST_TOKEN"},
            {"name":"X-Dup","value":"a"},
            {"name":"X-Dup","value":"b"},
            {"name":"X-Last","value":"z"}]}),
    );
    assert_eq!(result["status"], 200);
    let echo = echoed(&result);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo?x=1");
    assert_eq!(unb64(echo["body"].as_str().unwrap_or("")), b"payload");
    let sent: Vec<(String, String)> = echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| (h[0].as_str().unwrap_or("").to_ascii_lowercase(), h[1].as_str().unwrap_or("").to_owned()))
        .filter(|(n, _)| n.starts_with("x-") || n == "authorization")
        .collect();
    let expected = [("x-first", "1"), ("authorization", "Bearer s3cret-value"), ("x-dup", "a"), ("x-dup", "b"), ("x-last", "z")];
    let expected: Vec<(String, String)> = expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    assert_eq!(sent, expected);
    // Response header names are lower-cased; repeated ones are all kept, in order.
    assert_eq!(header(&result, "x-dup"), ["one", "two"]);
    assert_eq!(header(&result, "x-mixed-case"), ["Yes"]);
    assert_eq!(header(&result, "content-type"), ["application/json"]);
    // A missing variable is the client's mistake, named; the value of a set one is never logged.
    let (code, message) = server.call_err(
        "http/request",
        json!({"method":"GET","url":url,"requestId":"h2","headers":[{"name":"Authorization","value":"","valueEnvVar":"EXECUTOR_TEST_UNSET"}]}),
    );
    assert_eq!(
        (code, message.as_str()),
        (-32602, "http/request header Authorization requires executor environment variable EXECUTOR_TEST_UNSET")
    );
    let (code, message) = server.call_err(
        "http/request",
        json!({"method":"GET","url":url,"requestId":"h3","headers":[{"name":"X-Bad","value":"a\nb","valueEnvVar":"EXECUTOR_TEST_TOKEN"}]}),
    );
    assert_eq!(code, -32602);
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!server.stderr_text().contains("s3cret"), "the secret reached the log");
}

#[test]
fn redirects_are_followed_or_returned() {
    let site = PyServer::http("127.0.0.1");
    let mut server = Executor::ready(&[]);
    let target = format!("http://127.0.0.1:{}/echo", site.port);
    let url = format!("http://127.0.0.1:{}/redirect?to={}&code=302", site.port, target);
    let followed = server.call("http/request", get(&url));
    assert_eq!(followed["status"], 200);
    assert_eq!(echoed(&followed)["path"], "/echo");
    let stopped = server.call("http/request", json!({"method":"GET","url":url,"requestId":"r","redirectPolicy":"stop"}));
    assert_eq!(stopped["status"], 302);
    assert_eq!(header(&stopped, "location"), [target.as_str()]);
    // 307 keeps the method and the body.
    let url = format!("http://127.0.0.1:{}/redirect?to={}&code=307", site.port, target);
    let kept = server.call("http/request", json!({"method":"PUT","url":url,"requestId":"r","bodyBase64":b64(b"again")}));
    let echo = echoed(&kept);
    assert_eq!((echo["method"].as_str(), unb64(echo["body"].as_str().unwrap_or(""))), (Some("PUT"), b"again".to_vec()));
}

#[test]
fn chunked_bodies_whole_and_streamed_in_order() {
    let site = PyServer::http("127.0.0.1");
    let mut server = Executor::ready(&[]);
    let url = format!("http://127.0.0.1:{}/chunked?n=40&size=3000", site.port);
    let whole = server.call("http/request", get(&url));
    assert_eq!(body(&whole).len(), 120_000);
    assert_eq!(header(&whole, "transfer-encoding"), ["chunked"]);
    let (head, deltas) = streamed(&mut server, json!({"method":"GET","url":url,"requestId":"s1","streamResponse":true}));
    assert_eq!((head["status"].clone(), head["bodyBase64"].clone()), (json!(200), json!("")));
    assert_eq!(joined(&deltas), body(&whole));
    let seqs: Vec<u64> = deltas.iter().filter_map(|d| d["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=deltas.len() as u64).collect::<Vec<_>>());
    assert!(deltas.iter().all(|d| d["error"].is_null()));
    // An SSE stream that arrives slowly comes as it arrives, each event without waiting
    // for the rest.
    let url = format!("http://127.0.0.1:{}/drip?n=3&delay_ms=300", site.port);
    let (_, deltas) = streamed(&mut server, json!({"method":"GET","url":url,"requestId":"s2","streamResponse":true}));
    assert_eq!(joined(&deltas), b"data: event 0\n\ndata: event 1\n\ndata: event 2\n\n");
    assert!(deltas.len() >= 4, "three events and the end, not one delta: {deltas:?}");
    assert_eq!(deltas.last().map(|d| d["deltaBase64"].clone()), Some(json!("")));
}

#[test]
fn a_64_mib_streamed_body_keeps_memory_bounded_and_large_whole_bodies_are_refused() {
    let site = PyServer::http("127.0.0.1");
    let mut server = Executor::ready(&[]);
    let before = memory_kib(server.pid());
    let size = 64 * 1024 * 1024;
    let url = format!("http://127.0.0.1:{}/bytes?n={size}", site.port);
    let (_, deltas) = streamed(&mut server, json!({"method":"GET","url":url,"requestId":"big","streamResponse":true}));
    let mut total = 0usize;
    for delta in &deltas {
        let len = unb64(delta["deltaBase64"].as_str().unwrap_or("")).len();
        assert!(len <= 1024 * 1024, "a delta of {len} bytes");
        total += len;
    }
    assert_eq!(total, size);
    let after = memory_kib(server.pid());
    let growth_mib = after.1.saturating_sub(before.1) / 1024;
    assert!(growth_mib < 48, "peak RSS grew by {growth_mib} MiB while streaming 64 MiB");
    // Non-streamed bodies are capped at 16 MiB (MAX_BUFFERED_BODY_BYTES).
    let url = format!("http://127.0.0.1:{}/bytes?n={}", site.port, 16 * 1024 * 1024 + 1);
    let (code, message) = server.call_err("http/request", get(&url));
    assert_eq!(code, -32603);
    assert!(message.contains("16777216-byte limit") && message.contains("streamResponse"), "{message}");
    let url = format!("http://127.0.0.1:{}/bytes?n={}", site.port, 16 * 1024 * 1024);
    assert_eq!(body(&server.call("http/request", get(&url))).len(), 16 * 1024 * 1024);
}

#[test]
fn timeouts_connection_failures_and_bad_params() {
    let site = PyServer::http("127.0.0.1");
    let mut server = Executor::ready(&[]);
    let url = format!("http://127.0.0.1:{}/slow?delay_ms=3000", site.port);
    let (code, message) = server.call_err("http/request", json!({"method":"GET","url":url,"requestId":"t","timeoutMs":200}));
    assert_eq!(code, -32603);
    assert!(message.starts_with("http/request failed: ") && message.contains("timed out"), "{message}");
    // A timeout also ends a stream that was already answered.
    let url = format!("http://127.0.0.1:{}/hang", site.port);
    let (_, deltas) = streamed(&mut server, json!({"method":"GET","url":url,"requestId":"t2","timeoutMs":500,"streamResponse":true}));
    let last = deltas.last().cloned().unwrap_or_default();
    assert_eq!(last["done"], true);
    assert!(last["error"].as_str().is_some_and(|e| e.contains("timed out")), "{last}");
    let (code, message) = server.call_err("http/request", get("http://127.0.0.1:1/"));
    assert_eq!(code, -32603);
    assert!(message.starts_with("http/request failed: ") && message.contains("onnection refused"), "{message}");
    for url in ["/relative", "ftp://127.0.0.1/x", "file:///etc/passwd"] {
        let (code, message) = server.call_err("http/request", get(url));
        assert_eq!(code, -32602, "{url}: {message}");
    }
    let (code, _) = server.call_err("http/request", json!({"method":"GET","url":"http://x/","requestId":"r","bodyBase64":"!!"}));
    assert_eq!(code, -32602);
}

#[test]
fn an_active_stream_id_cannot_be_reused_until_it_ends() {
    let site = PyServer::http("127.0.0.1");
    let mut server = Executor::ready(&[]);
    let hang = format!("http://127.0.0.1:{}/hang", site.port);
    let id = server.send_request("http/request", json!({"method":"GET","url":hang,"requestId":"same","streamResponse":true}));
    assert_eq!(server.response(id)["result"]["status"], 200);
    let (code, message) = server.call_err("http/request", json!({"method":"GET","url":hang,"requestId":"same","streamResponse":true}));
    assert_eq!((code, message.as_str()), (-32602, "http/request streamResponse requestId `same` is already active"));
    // Another id streams meanwhile, and a finished id is free again.
    let url = format!("http://127.0.0.1:{}/chunked?n=2&size=10", site.port);
    streamed(&mut server, json!({"method":"GET","url":url,"requestId":"other","streamResponse":true}));
    streamed(&mut server, json!({"method":"GET","url":url,"requestId":"other","streamResponse":true}));
}

#[test]
fn https_with_a_private_ca_from_ssl_cert_file() {
    let ca = TestCa::new();
    let site = PyServer::https(&ca);
    let ca_file = ca.ca_file();
    let mut trusting = executor_with(&[], &[("SSL_CERT_FILE", &ca_file.to_string_lossy())]);
    for host in ["localhost", "127.0.0.1"] {
        let result = trusting.call("http/request", get(&format!("https://{host}:{}/echo", site.port)));
        assert_eq!(result["status"], 200, "{host}");
        assert_eq!(echoed(&result)["method"], "GET");
    }
    let url = format!("https://127.0.0.1:{}/chunked?n=5&size=100", site.port);
    let (_, deltas) = streamed(&mut trusting, json!({"method":"GET","url":url,"requestId":"tls","streamResponse":true}));
    assert_eq!(joined(&deltas).len(), 500);
    let mut untrusting = Executor::ready(&[]);
    let (code, message) = untrusting.call_err("http/request", get(&format!("https://localhost:{}/echo", site.port)));
    assert_eq!(code, -32603);
    assert!(message.contains("certificate") || message.contains("UnknownIssuer"), "{message}");
}

#[test]
fn egress_rules_apply_to_literals_resolved_names_and_redirect_hops() {
    let near = PyServer::http("127.0.0.1");
    let far = PyServer::http("127.0.0.2");
    let far_url = format!("http://127.0.0.2:{}/echo", far.port);
    // Without rules both are reached.
    let mut open = Executor::ready(&[]);
    assert_eq!(open.call("http/request", get(&far_url))["status"], 200);

    let mut server = Executor::ready(&["--http-deny", "127.0.0.2"]);
    let (code, message) = server.call_err("http/request", get(&far_url));
    assert_eq!(code, -32603);
    assert_eq!(message, "http/request failed: refused by the egress policy: address 127.0.0.2 is denied by `--http-deny 127.0.0.2`");
    assert_eq!(server.call("http/request", get(&format!("http://127.0.0.1:{}/echo", near.port)))["status"], 200);
    // A redirect hop to a denied address is refused, also when redirects are followed.
    let hop = format!("http://127.0.0.1:{}/redirect?to={far_url}", near.port);
    let (code, message) = server.call_err("http/request", get(&hop));
    assert_eq!(code, -32603);
    assert!(message.contains("refused by the egress policy") && message.contains("`--http-deny 127.0.0.2`"), "{message}");
    // A name is judged by what it resolves to: localhost is 127.0.0.1 (and maybe ::1).
    let mut by_address = Executor::ready(&["--http-deny", "127.0.0.1", "--http-deny", "::1"]);
    let (code, message) = by_address.call_err("http/request", get(&format!("http://localhost:{}/echo", near.port)));
    assert_eq!(code, -32603);
    assert!(message.contains("resolved from `localhost`") && message.contains("--http-deny"), "{message}");
    // 0.0.0.0 reaches the loopback too, and is judged as it.
    let (_, message) = by_address.call_err("http/request", get(&format!("http://0.0.0.0:{}/echo", near.port)));
    assert!(message.ends_with("address 0.0.0.0 is denied by `--http-deny 127.0.0.1`"), "{message}");
    // Host rules match names; allow wins over deny.
    let mut by_name = Executor::ready(&["--http-deny", "localhost"]);
    let (_, message) = by_name.call_err("http/request", get(&format!("http://localhost:{}/echo", near.port)));
    assert!(message.contains("host `localhost` is denied by `--http-deny localhost`"), "{message}");
    let mut allowed = Executor::ready(&["--http-deny", "127.0.0.0/8", "--http-allow", "127.0.0.1"]);
    assert_eq!(allowed.call("http/request", get(&format!("http://127.0.0.1:{}/echo", near.port)))["status"], 200);
    let (_, message) = allowed.call_err("http/request", get(&far_url));
    assert!(message.contains("`--http-deny 127.0.0.0/8`"), "{message}");
}

#[test]
fn bad_egress_flags_are_usage_errors() {
    let out = Command::new(executor_bin()).args(["--listen", "stdio", "--http-deny", "not a host"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--http-deny") && stderr.contains("not a host"), "{stderr}");
    let help = Command::new(executor_bin()).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--http-allow <HOST|CIDR>") && help.contains("--http-deny <HOST|CIDR>"), "{help}");
}

#[test]
fn closing_the_connection_cancels_its_requests_and_a_resume_does_not_get_them() {
    let site = PyServer::http("127.0.0.1");
    let ws = executor_tests::ws::WsServer::start(&[]);
    let stats_url = format!("http://127.0.0.1:{}/stats", site.port);
    let mut watcher = ws.ready();
    let hanging = |client: &mut executor_tests::ws::WsClient| -> u64 {
        let result = client.call("http/request", get(&stats_url));
        echoed(&result)["hanging"].as_u64().expect("hanging")
    };
    let session_id = {
        let mut other = ws.connect();
        let init = other.call("initialize", json!({"clientName":"ws-tests"}));
        other.notify("initialized", json!({}));
        let hang = format!("http://127.0.0.1:{}/hang", site.port);
        let id = other.send_request("http/request", json!({"method":"GET","url":hang,"requestId":"hang","streamResponse":true}));
        assert_eq!(other.response(id)["result"]["status"], 200);
        let first = other.next_matching(|m| m["method"] == DELTA);
        assert_eq!(unb64(first["params"]["deltaBase64"].as_str().unwrap_or("")), b"data: first\n\n");
        assert_eq!(hanging(&mut watcher), 1);
        // The connection goes away without a word, as a dropped network link would.
        drop(other);
        init["sessionId"].as_str().expect("sessionId").to_owned()
    };
    let deadline = std::time::Instant::now() + executor_tests::TIMEOUT;
    while hanging(&mut watcher) != 0 {
        assert!(std::time::Instant::now() < deadline, "the stream was not cancelled when its connection closed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut resumed = ws.resume_when_detached(&session_id);
    let stray = resumed.try_next_matching(&|m| m["method"] == DELTA, std::time::Duration::from_millis(500));
    assert!(stray.is_none(), "a resumed session got the old connection's stream: {stray:?}");
}

#[test]
fn proxies_from_the_environment_are_used_and_no_proxy_is_honoured() {
    // The fixture answers a proxy's absolute-form request like any other, so it shows
    // whether a request went through it: its path is then the whole URL.
    let proxy = PyServer::http("127.0.0.1");
    let site = PyServer::http("127.0.0.1");
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let mut server = executor_with(&[], &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "localhost")]);
    // A name that does not resolve anywhere: only the proxy can answer for it.
    let via_proxy = server.call("http/request", get("http://executor-test.invalid/echo"));
    assert_eq!(echoed(&via_proxy)["path"], "http://executor-test.invalid/echo");
    let direct = server.call("http/request", get(&format!("http://localhost:{}/echo", site.port)));
    assert_eq!(echoed(&direct)["path"], "/echo", "NO_PROXY=localhost goes direct");
}

#[test]
fn a_client_that_stops_reading_does_not_make_the_executor_buffer_the_body() {
    use std::io::{BufRead, BufReader, Write};
    let site = PyServer::http("127.0.0.1");
    let mut child = Command::new(executor_bin())
        .args(["--listen", "stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("executor starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let size: usize = 256 * 1024 * 1024;
    let url = format!("http://127.0.0.1:{}/bytes?n={size}", site.port);
    let request = json!({"id":2,"method":"http/request","params":{"method":"GET","url":url,"requestId":"slow","streamResponse":true}});
    for line in [json!({"id":1,"method":"initialize","params":{"clientName":"tests"}}), json!({"method":"initialized"}), request] {
        writeln!(stdin, "{line}").expect("write");
    }
    stdin.flush().expect("flush");
    // Nothing is read for a while: the pipe fills, then the executor's queue, and then the
    // body must wait in the HTTP server, not in the executor.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, peak_kib) = memory_kib(child.id());
    eprintln!("executor peak RSS while its client read nothing: {} KiB", peak_kib);
    assert!(peak_kib < 64 * 1024, "the executor's peak RSS reached {} MiB while its client read nothing", peak_kib / 1024);
    let mut total = 0usize;
    let mut done = false;
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let message: Value = serde_json::from_str(&line.expect("line")).expect("json");
        if message["method"] == DELTA {
            total += unb64(message["params"]["deltaBase64"].as_str().unwrap_or("")).len();
            if message["params"]["done"] == true {
                assert!(message["params"]["error"].is_null(), "{message}");
                done = true;
                break;
            }
        }
    }
    assert!(done, "the stream did not end");
    assert_eq!(total, size, "the whole body arrived once the client read again");
    let (_, peak_kib) = memory_kib(child.id());
    assert!(peak_kib < 64 * 1024, "peak RSS {} MiB for a 256 MiB stream", peak_kib / 1024);
    drop(stdin);
    let _ = child.wait();
}

#[test]
fn connections_are_reused_and_https_negotiates_http2() {
    let site = PyServer::http("127.0.0.1");
    let mut server = executor_with(&[], &[]);
    let url = format!("http://127.0.0.1:{}/echo", site.port);
    // hyper puts a connection back in its pool from the connection's own task, just after
    // the body ended (and so just after the answer): a request sent at once can find the
    // pool empty on a loaded machine. A short pause between requests is not a timing
    // assertion; without reuse every request still gets a new port.
    let ports: Vec<Value> = (0..3)
        .map(|_| {
            let port = echoed(&server.call("http/request", get(&url)))["clientPort"].clone();
            std::thread::sleep(std::time::Duration::from_millis(100));
            port
        })
        .collect();
    assert!(ports.iter().all(|p| *p == ports[0]), "HTTP/1.1 keep-alive: one connection for sequential requests: {ports:?}");

    let ca = TestCa::new();
    let h2 = PyServer::h2(&ca);
    let mut server = executor_with(&[], &[("SSL_CERT_FILE", &ca.ca_file().to_string_lossy())]);
    let url = format!("https://localhost:{}/h2", h2.port);
    let first = echoed(&server.call("http/request", get(&url)));
    assert_eq!(first["httpVersion"], "2", "ALPN chose HTTP/2: {first}");
    let (_, deltas) = streamed(&mut server, json!({"method":"GET","url":url,"requestId":"h2","streamResponse":true}));
    let second: Value = serde_json::from_slice(&joined(&deltas)).expect("json");
    assert_eq!(
        (second["httpVersion"].clone(), second["clientPort"].clone()),
        (json!("2"), first["clientPort"].clone()),
        "one HTTP/2 connection"
    );
}

#[test]
fn requests_in_flight_per_connection_are_bounded() {
    let site = PyServer::http("127.0.0.1");
    let mut server = Executor::ready(&[]);
    let hang = format!("http://127.0.0.1:{}/hang", site.port);
    // 64 streams that never end hold every slot of the connection (registry.rs).
    let ids: Vec<i64> = (0..64)
        .map(|i| server.send_request("http/request", json!({"method":"GET","url":hang,"requestId":format!("s{i}"),"streamResponse":true})))
        .collect();
    for id in ids {
        assert_eq!(server.response(id)["result"]["status"], 200);
    }
    let (code, message) = server.call_err("http/request", get(&format!("http://127.0.0.1:{}/echo", site.port)));
    assert_eq!((code, message.as_str()), (-32603, "too many http/request calls in flight on this connection (limit 64)"));
    // Another connection has its own slots.
    let mut other = Executor::ready(&[]);
    assert_eq!(other.call("http/request", get(&format!("http://127.0.0.1:{}/echo", site.port)))["status"], 200);
}
