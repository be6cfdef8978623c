//! `--audit-log FILE`: one hash-chained JSON line per decision, checked by
//! `executor audit verify FILE`, which names the first line that was edited, removed or
//! moved; under 200 concurrent sessions no event is lost and memory stays bounded.

use executor_tests::RpcClient as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use executor_tests::ws::{http_get, WsClient, WsServer, UPGRADE_HEADERS};
use executor_tests::{b64, executor_bin, sh, uri, ws_load};
use serde_json::{json, Value};

const TOKEN: &str = "driver-token-123";
const TOKEN_SHA256: &str = "1ad7841e6c92c99fa7689513fea063ad0006a8d67ba1f68c7d54e4ffee59e784";
const SECRET_VALUE: &str = "s3cr3t-value-never-logged";

fn verify(path: &Path) -> Output {
    Command::new(executor_bin())
        .args(["audit", "verify"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run executor audit verify: {e}"))
}

fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read audit log");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}"))).collect()
}

fn stop(mut server: WsServer) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(143), "{status:?}");
}

fn events<'a>(records: &'a [Value], name: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["event"] == name).collect()
}

#[test]
fn decisions_are_recorded_and_the_chain_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let log_arg = log.to_str().expect("utf8");
    let server = WsServer::start(&["--ws-auth", "capability-token", "--ws-token-sha256", TOKEN_SHA256, "--audit-log", log_arg]);
    let mut wrong = UPGRADE_HEADERS.to_vec();
    wrong.push(("Authorization", "Bearer wrong"));
    assert_eq!(http_get(server.addr(), "/", &wrong).0, 401);
    let bearer = format!("Bearer {TOKEN}");
    let mut client = WsClient::connect(&server.url, &[("Authorization", &bearer)]).expect("authorized");
    client.handshake();
    let mut params = sh("echo audited; exit 7");
    params["env"] = json!({"PATH": "/usr/bin:/bin", "API_TOKEN": SECRET_VALUE, "GREETING": "hello"});
    let out = client.run("p1", params);
    assert_eq!(out.exit_code, Some(7));
    let file = dir.path().join("written.txt");
    client.call("fs/writeFile", json!({"path": uri(&file), "dataBase64": b64(b"twelve bytes")}));
    client.call("fs/remove", json!({"path": uri(&file)}));
    drop(client);
    stop(server);

    let verified = verify(&log);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("chain intact"));
    let text = std::fs::read_to_string(&log).expect("read");
    assert!(!text.contains(SECRET_VALUE), "a secret-looking variable's value was logged");
    assert!(!text.contains(TOKEN), "the bearer token was logged");
    let all = records(&log);
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record["seq"], json!(i + 1), "{record}");
    }
    let refused = events(&all, "connection.refused");
    assert_eq!(refused.len(), 1, "{all:#?}");
    assert_eq!(refused[0]["reason"], "invalid websocket bearer token");
    assert!(refused[0]["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")));
    let accepted = events(&all, "connection.accepted");
    assert_eq!(accepted.len(), 1, "{all:#?}");
    assert_eq!(accepted[0]["auth"], "capability-token");
    assert_eq!(accepted[0]["subject"]["tokenSha256Prefix"], json!(&TOKEN_SHA256[..8]));
    let started = events(&all, "session.started");
    assert_eq!(started.len(), 1);
    let session = started[0]["session"].clone();
    let process = events(&all, "process.started");
    assert_eq!(process.len(), 1, "{all:#?}");
    assert_eq!(process[0]["session"], session);
    assert_eq!(process[0]["argv"], json!(["sh", "-c", "echo audited; exit 7"]));
    assert_eq!(process[0]["env"]["API_TOKEN"], "[redacted]");
    assert_eq!(process[0]["env"]["GREETING"], "hello");
    assert_eq!(process[0]["ok"], true);
    let exited = events(&all, "process.exited");
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["exitCode"], 7);
    assert_eq!(exited[0]["pid"], process[0]["pid"], "start and exit lines name the same pid");
    let write = events(&all, "fs/writeFile");
    assert_eq!(write.len(), 1);
    assert_eq!((write[0]["path"].clone(), write[0]["size"].clone(), write[0]["ok"].clone()), (json!(uri(&file)), json!(12), json!(true)));
    assert_eq!(events(&all, "fs/remove").len(), 1);

    // A restarted executor continues the chain of the same file.
    let again = WsServer::start(&["--audit-log", log_arg]);
    again.ready();
    stop(again);
    let verified = verify(&log);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    assert!(records(&log).len() > all.len());
}

#[test]
fn verify_names_the_first_edited_removed_or_moved_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let server = WsServer::start(&["--audit-log", log.to_str().expect("utf8")]);
    for i in 0..3 {
        let mut client = server.ready();
        client.run(&format!("p{i}"), sh("true"));
    }
    stop(server);
    let text = std::fs::read_to_string(&log).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 9, "{text}");
    assert!(verify(&log).status.success());

    let check = |name: &str, tampered: Vec<String>, broken_line: usize| {
        let path = dir.path().join(name);
        std::fs::write(&path, tampered.join("\n") + "\n").expect("write");
        let out = verify(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(&format!("line {broken_line}:")), "{name}: {stderr}");
    };
    let owned = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    // Edit line 3 (its event name): line 4's prev no longer matches.
    let mut edited = owned(&lines);
    let record: Value = serde_json::from_str(lines[2]).expect("json");
    let mut changed = record.clone();
    changed["event"] = json!("forged.event");
    edited[2] = changed.to_string();
    check("edited", edited, 4);
    // Delete line 3.
    let mut removed = owned(&lines);
    removed.remove(2);
    check("removed", removed, 3);
    // Swap lines 3 and 4.
    let mut swapped = owned(&lines);
    swapped.swap(2, 3);
    check("reordered", swapped, 3);
    // Delete the first line.
    check("first removed", owned(&lines[1..]), 1);
    // A line that is not a record at all.
    let mut garbage = owned(&lines);
    garbage.insert(1, "not json".into());
    check("garbage", garbage, 2);
}

#[test]
fn two_hundred_concurrent_sessions_lose_no_audit_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let server = WsServer::start(&["--audit-log", log.to_str().expect("utf8")]);
    let report = ws_load::run(&server.url, 200);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    let peak_kib = ws_load::peak_rss_kib(server.pid()).expect("VmHWM");
    stop(server);
    assert!(verify(&log).status.success());
    let all = records(&log);
    assert!(events(&all, "audit.dropped").is_empty(), "events were dropped");
    assert_eq!(events(&all, "connection.accepted").len(), 200);
    assert_eq!(events(&all, "session.started").len(), 200);
    assert_eq!(events(&all, "process.started").len(), 200);
    assert_eq!(events(&all, "process.exited").len(), 200);
    // Bounded: the queue holds at most 8192 events, whatever the load; a generous ceiling
    // catches an unbounded buffer, not a few MiB of growth.
    assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn audit_log_startup_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_tail = dir.path().join("bad.jsonl");
    std::fs::write(&bad_tail, "{\"seq\":1}\nhalf a li").expect("write");
    for (path, expected) in [(bad_tail.clone(), "ends with a line"), (dir.path().join("no/such/dir/log"), "cannot open the audit log")] {
        let output = Command::new(executor_bin())
            .args(["--listen", "ws://127.0.0.1:0", "--audit-log"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run executor");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn session_resume_and_expiry_are_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let server = WsServer::start(&["--session-ttl", "1", "--audit-log", log.to_str().expect("utf8")]);
    let mut first = server.connect();
    let id = first.handshake()["sessionId"].as_str().expect("sessionId").to_owned();
    first.drop_tcp();
    let resumed = server.resume_when_detached(&id);
    drop(resumed);
    // Detached again; after the 1 s TTL the session expires.
    let deadline = std::time::Instant::now() + executor_tests::TIMEOUT;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("session.expired") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no session.expired line: {text}");
    }
    stop(server);
    assert!(verify(&log).status.success());
    let all = records(&log);
    let of = |name: &str| events(&all, name).iter().map(|r| r["session"].clone()).collect::<Vec<_>>();
    assert_eq!(of("session.started"), vec![json!(id)]);
    assert_eq!(of("session.resumed"), vec![json!(id)]);
    assert_eq!(of("session.expired"), vec![json!(id)]);
}

/// `http/request` lines name the method, origin and status (or the failure's kind) and
/// never the path, query or header values, which may carry credentials.
#[test]
fn http_requests_are_recorded_without_path_query_or_headers() {
    use executor_tests::http::PyServer;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.jsonl");
    let server = WsServer::start(&["--audit-log", log.to_str().expect("utf8"), "--http-deny", "127.0.0.2"]);
    let site = PyServer::http("127.0.0.1");
    let mut client = server.ready();
    let url = format!("http://127.0.0.1:{}/echo?access_token=query-secret", site.port);
    let headers = json!([{"name": "Authorization", "value": "Bearer header-secret"}]);
    let ok = client.call("http/request", json!({"method": "GET", "url": url, "requestId": "a1", "headers": headers}));
    assert_eq!(ok["status"], 200);
    let streamed = client.call("http/request", json!({"method": "GET", "url": url, "requestId": "a2", "streamResponse": true}));
    assert_eq!(streamed["status"], 200);
    let refused = client.call_err("http/request", json!({"method": "GET", "url": "http://127.0.0.2:9/x", "requestId": "a3"}));
    assert!(refused.1.contains("egress policy"), "{refused:?}");
    drop(client);
    stop(server);

    let text = std::fs::read_to_string(&log).expect("read");
    for secret in ["query-secret", "header-secret", "/echo"] {
        assert!(!text.contains(secret), "`{secret}` reached the audit log");
    }
    let all = records(&log);
    let http = events(&all, "http.request");
    assert_eq!(http.len(), 3, "{all:#?}");
    let port = json!(site.port);
    assert_eq!(
        (&http[0]["method"], &http[0]["host"], &http[0]["port"], &http[0]["status"]),
        (&json!("GET"), &json!("127.0.0.1"), &port, &json!(200))
    );
    assert_eq!((&http[1]["streamed"], &http[1]["status"]), (&json!(true), &json!(200)));
    assert_eq!((&http[2]["host"], &http[2]["error"]), (&json!("127.0.0.2"), &json!("egress-refused")));
    assert!(http[2].get("status").is_none(), "{}", http[2]);
    assert_eq!(http[0]["session"], events(&all, "session.started")[0]["session"]);
    assert!(verify(&log).status.success());
}
