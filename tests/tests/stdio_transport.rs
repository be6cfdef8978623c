//! Framing, the handshake gate and connection-closing conditions, over the real stdio transport.

use executor_tests::RpcClient as _;
use executor_tests::{error_of, memory_kib, uri, Executor};
use serde_json::{json, Value};

#[test]
fn gating_before_initialize_and_before_initialized() {
    let mut server = Executor::start(&[]);
    let (code, message) =
        server.call_err("process/start", json!({"processId":"early","argv":["true"],"cwd":"file:///tmp","env":{},"tty":false}));
    assert_eq!((code, message.as_str()), (-32600, "client must call initialize before using exec methods"));
    let (code, message) = server.call_err("fs/readFile", json!({"path": "file:///tmp"}));
    assert_eq!(code, -32600, "{message}");
    let (code, message) = server.call_err("initialize", json!({}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `clientName`"));
    let init = server.call("initialize", json!({"clientName": "driver"}));
    let session = init["sessionId"].as_str().expect("sessionId");
    assert_eq!(uuid_version(session), Some('4'), "{session}");
    assert_eq!(init["environmentInfo"]["platformOs"], "linux");
    let (code, message) = server.call_err("environment/status", json!({}));
    assert_eq!((code, message.as_str()), (-32600, "client must send initialized before using environment status methods"));
    server.notify("initialized", json!({}));
    let (code, message) = server.call_err("initialize", json!({"clientName": "again"}));
    assert_eq!((code, message.as_str()), (-32600, "initialize may only be sent once per connection"));
    assert_eq!(server.call("environment/status", Value::Null), json!({"status": "ready"}));
}

fn uuid_version(id: &str) -> Option<char> {
    let parts: Vec<&str> = id.split('-').collect();
    (parts.len() == 5 && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])).then(|| parts[2].chars().next())?
}

#[test]
fn params_are_decoded_before_the_gate() {
    let mut server = Executor::start(&[]);
    let (code, message) = server.call_err("process/read", json!({}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `processId`"));
    let (code, _) = server.call_err("environment/status", json!({"x": 1}));
    assert_eq!(code, -32602);
}

#[test]
fn environment_info_is_truthful() {
    let mut server = Executor::ready(&[]);
    let info = server.call("environment/info", json!({}));
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(info["cwd"], json!(format!("file://{}", cwd.display())));
    let shell_path = info["shell"]["path"].as_str().expect("shell path");
    assert!(std::path::Path::new(shell_path).is_file(), "{shell_path}");
    assert!(!shell_path.starts_with("file:"), "shell.path is not a URI");
    assert_eq!(info["executorVersion"], env!("CARGO_PKG_VERSION"));
    assert!(info["tempDir"].as_str().is_some_and(|t| t.starts_with("file:///")));
    // fs handles stream with and without a sandbox (the sandboxed helper hands over descriptors).
    for flag in ["fileWriteStreaming", "sandboxedFileStreaming"] {
        assert_eq!(info["capabilities"][flag], json!(true), "{flag}");
    }
    // Only capabilities the executor implements may be true; none of these are.
    for flag in ["networkProxyLaunch", "credentialMasking", "shellSnapshotV2", "windowsMxc", "environmentConfigRead"] {
        assert_eq!(info["capabilities"][flag], json!(false), "{flag}");
    }
}

#[test]
fn malformed_lines_get_id_minus_one_and_the_connection_continues() {
    let mut server = Executor::ready(&[]);
    let cases: [(&[u8], &str); 4] = [
        (b"this is not json\n", "expected ident at line 1 column 2"),
        (b"{\"id\": 7, \"method\": \"environment/status\", \"params\": {}\n", "EOF while parsing an object"),
        (b"[{\"id\":8,\"method\":\"environment/status\"}]\n", "expected a JSON-RPC object"),
        (b"{\"id\":1.5,\"method\":\"environment/status\"}\n", "untagged enum RequestId"),
    ];
    for (line, text) in cases {
        server.send_raw(line);
        let reply = server.next_matching(|m| m.get("error").is_some());
        assert_eq!(reply["id"], json!(-1));
        let (code, message) = error_of(&reply).expect("error");
        assert_eq!(code, -32600);
        assert!(message.starts_with("failed to parse JSON-RPC message from exec-server stdio: "), "{message}");
        assert!(message.contains(text), "{message}");
    }
    assert_eq!(server.call("environment/status", json!({})), json!({"status": "ready"}));
}

#[test]
fn ids_jsonrpc_member_crlf_and_blank_lines() {
    let mut server = Executor::ready(&[]);
    server.send_raw(b"\n   \n{\"jsonrpc\":\"2.0\",\"id\":\"string-id-ok\",\"method\":\"environment/status\"}\r\n");
    let reply = server.next_matching(|m| m.get("id").is_some());
    assert_eq!(reply, json!({"id": "string-id-ok", "result": {"status": "ready"}}));
    assert!(reply.get("jsonrpc").is_none());
}

#[test]
fn unknown_method_and_initialized_as_request() {
    let mut server = Executor::ready(&[]);
    let (code, message) = server.call_err("no/such/method", json!({}));
    assert_eq!((code, message.as_str()), (-32601, "exec-server stub does not implement `no/such/method` yet"));
    let (code, message) = server.call_err("initialized", json!({}));
    assert_eq!((code, message.as_str()), (-32601, "exec-server stub does not implement `initialized` yet"));
}

#[test]
fn unknown_notification_closes_the_connection() {
    let mut server = Executor::ready(&[]);
    server.notify("some/notification", json!({}));
    server.send_request("environment/status", json!({}));
    assert!(server.stdout_closed());
    assert!(server.wait_exit().success());
}

#[test]
fn client_response_closes_the_connection() {
    let mut server = Executor::ready(&[]);
    server.send(&json!({"id": 5, "result": {}}));
    assert!(server.stdout_closed());
}

#[test]
fn initialized_before_initialize_closes_the_connection() {
    let mut server = Executor::start(&[]);
    server.notify("initialized", json!({}));
    assert!(server.stdout_closed());
}

const LIMIT_TEXT: &str = "is larger than the 67108864-byte limit; it was skipped";

/// A 200 MB `fs/writeFile` line, written in 1 MiB pieces: answered with -32600 to its own
/// id (read from its start), nothing is written, the server keeps serving the lines after
/// it, and it never held the whole line (its peak RSS stays far below 200 MB).
#[test]
fn an_oversized_line_is_answered_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("never-written.bin");
    let mut server = Executor::ready(&[]);
    let head = format!(r#"{{"id":41,"method":"fs/writeFile","params":{{"path":"{}","dataBase64":""#, uri(&target));
    server.send_raw(head.as_bytes());
    let piece = vec![b'A'; 1 << 20];
    for _ in 0..200 {
        server.send_raw(&piece);
    }
    server.send_raw(b"\"}}\n");
    let reply = server.response(41);
    let (code, message) = error_of(&reply).expect("an error answer");
    assert_eq!(code, -32600, "{message}");
    assert_eq!(message, format!("message from exec-server stdio {LIMIT_TEXT} (send large file data with fs/open and fs/writeBlock)"));
    assert!(!target.exists(), "nothing of the oversized request may run");
    assert_eq!(server.call("environment/status", json!({})), json!({"status": "ready"}));

    // A line with no id to read at its start (only spaces) is answered to -1.
    let mut spaces = vec![b' '; 64 * 1024 * 1024 + 16];
    spaces.push(b'\n');
    server.send_raw(&spaces);
    let reply = server.next_matching(|m| m["id"] == json!(-1));
    assert!(error_of(&reply).is_some_and(|(code, m)| code == -32600 && m.contains(LIMIT_TEXT)), "{reply}");
    assert_eq!(server.call("environment/status", json!({})), json!({"status": "ready"}));

    let (_, peak_kib) = memory_kib(server.pid());
    assert!(peak_kib < 150 * 1024, "peak RSS {peak_kib} KiB: the oversized line was buffered");
}

#[test]
fn a_line_just_under_the_cap_is_processed() {
    let mut server = Executor::ready(&[]);
    // A valid request padded with whitespace to just under 64 MiB.
    let request = br#"{"id":77,"method":"environment/status","params":{}}"#;
    let mut line = request.to_vec();
    line.resize(64 * 1024 * 1024 - 1, b' ');
    line.push(b'\n');
    server.send_raw(&line);
    assert_eq!(server.response(77)["result"], json!({"status": "ready"}));
}

/// Requests that arrive together with EOF (`executor < requests.jsonl`) are still answered
/// before the server exits: with the close seen first, the answer to `initialize` used to
/// be dropped about every other run, so a few dozen runs show the difference.
#[test]
fn requests_before_eof_are_answered() {
    let input = concat!(
        r#"{"id":1,"method":"initialize","params":{"clientName":"eof-test"}}"#,
        "\n",
        r#"{"method":"initialized"}"#,
        "\n",
        r#"{"id":2,"method":"process/start","params":{"processId":"p","argv":["true"],"cwd":"file:///tmp","env":{},"tty":false}}"#,
        "\n",
    );
    for run in 0..40 {
        let mut server = Executor::start(&[]);
        server.send_raw(input.as_bytes());
        server.close_stdin();
        assert!(server.stdout_closed(), "run {run}: stdout still open");
        assert!(server.wait_exit().success(), "run {run}");
        let has_id = |id: i64| move |m: &Value| m.get("id") == Some(&json!(id));
        for id in [1, 2] {
            assert!(server.try_next_matching(&has_id(id), std::time::Duration::ZERO).is_some(), "run {run}: no answer to {id}");
        }
        let extra = server.try_next_matching(&|m| m.get("id").is_some(), std::time::Duration::ZERO);
        assert!(extra.is_none(), "run {run}: unexpected {extra:?}");
    }
}
