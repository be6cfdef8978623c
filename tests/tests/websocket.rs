//! The websocket listener (protocol.md §1.1–1.2, §13): URL on stdout, HTTP routes on the
//! same port, framing, size limit, capability-token auth, startup errors, many connections.

use executor_tests::RpcClient as _;
use std::process::{Command, Stdio};
use std::thread;

use executor_tests::ws::{http_get, http_request, WsClient, WsServer, UPGRADE_HEADERS};
use executor_tests::{executor_bin, sh};
use serde_json::json;
use tungstenite::Message;

// sha256("driver-token-123"), as in protocol-transcripts.md §13.
const TOKEN: &str = "driver-token-123";
const TOKEN_SHA256: &str = "1ad7841e6c92c99fa7689513fea063ad0006a8d67ba1f68c7d54e4ffee59e784";

#[test]
fn prints_only_the_bound_url_and_serves_http_routes() {
    let server = WsServer::start(&[]);
    let port = server.url.strip_prefix("ws://127.0.0.1:").expect("ws://127.0.0.1:PORT");
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "bound URL {:?}", server.url);

    assert_eq!(http_get(server.addr(), "/readyz", &[]).0, 200);
    assert_eq!(http_get(server.addr(), "/healthz", &[]).0, 404);
    assert_eq!(http_get(server.addr(), "/nope", &[]).0, 404);
    assert_eq!(http_get(server.addr(), "/", &[]).0, 400);
    let mut with_origin = UPGRADE_HEADERS.to_vec();
    with_origin.push(("Origin", "http://example.test"));
    assert_eq!(http_get(server.addr(), "/", &with_origin).0, 403);

    // A whole session over the socket; stdin is at EOF the whole time (the server ignores it).
    let mut client = server.ready();
    let out = client.run("echo", sh("echo hello; echo err >&2; exit 3"));
    assert_eq!(out.stdout_str(), "hello\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit_code, Some(3));
    drop(client);
    assert_eq!(server.extra_stdout(), Vec::<String>::new(), "nothing but the URL on stdout");
}

#[test]
fn binary_frames_parse_errors_and_close() {
    let server = WsServer::start(&[]);
    let mut client = server.connect();
    let request = json!({"id": 7, "method": "initialize", "params": {"clientName": "bin"}});
    client.send_frame(Message::binary(request.to_string().into_bytes()));
    let response = client.response(7);
    assert!(response["result"]["sessionId"].is_string(), "{response}");
    client.notify("initialized", json!({}));

    client.send_frame(Message::text("{not json"));
    let error = client.next_matching(|m| m["id"] == json!(-1));
    assert_eq!(error["error"]["code"], json!(-32600));
    let message = error["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("failed to parse JSON-RPC message from exec-server websocket: "), "{message}");
    // The connection goes on after a malformed message.
    assert_eq!(client.call("environment/status", json!({})), json!({"status": "ready"}));

    // A notification other than `initialized` closes the connection without an answer.
    client.notify("bogus", json!({}));
    assert!(client.wait_closed(), "server kept the connection open");
}

/// The reader cannot skip a frame it refused at its header, so the connection ends; the
/// client is told why, both as a -32600 answer and in the Close frame (1009).
#[test]
fn a_message_over_64_mib_is_answered_and_closes_the_connection() {
    let server = WsServer::start(&[]);
    let mut client = server.ready();
    // A large message below the limit is fine.
    let padding = "x".repeat(1 << 20);
    let big = json!({"id": 1, "method": "environment/status", "params": null, "pad": padding});
    client.send(&big);
    assert!(client.response(1)["result"].is_object());

    let over = vec![b' '; 64 * 1024 * 1024 + 1];
    client.send_frame(Message::binary(over));
    let error = client.next_matching(|m| m["id"] == json!(-1));
    assert_eq!(error["error"]["code"], json!(-32600), "{error}");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("message from exec-server websocket is larger than the 67108864-byte limit; the connection is closed"),
        "{message}"
    );
    assert!(client.wait_closed(), "an oversized message must end the connection");
    assert_eq!(client.close_frame, Some((1009, "message larger than the 67108864-byte limit".to_owned())));
    // The server itself is still there, for this client's next connection too.
    assert_eq!(http_get(server.addr(), "/readyz", &[]).0, 200);
    let mut again = server.ready();
    assert_eq!(again.call("environment/status", json!({})), json!({"status": "ready"}));
}

#[test]
fn capability_token_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("  {TOKEN}\n")).expect("write token");
    let by_file = WsServer::start(&["--ws-auth", "capability-token", "--ws-token-file", token_file.to_str().expect("utf8")]);
    let by_digest = WsServer::start(&["--ws-auth", "capability-token", "--ws-token-sha256", TOKEN_SHA256]);
    for server in [&by_file, &by_digest] {
        let addr = server.addr();
        assert_eq!(http_get(addr, "/readyz", &[]), (200, "ready".into()), "readyz needs no token");
        let with = |auth: &str| {
            let mut headers = UPGRADE_HEADERS.to_vec();
            headers.push(("Authorization", auth));
            http_get(addr, "/", &headers)
        };
        assert_eq!(http_get(addr, "/", UPGRADE_HEADERS), (401, "missing websocket bearer token".into()));
        assert_eq!(with("Bearer wrong"), (401, "invalid websocket bearer token".into()));
        assert_eq!(with(TOKEN), (401, "invalid authorization header".into()));
        assert_eq!(with(&format!("Basic {TOKEN}")), (401, "invalid authorization header".into()));

        let challenge = http_request(addr, "/", UPGRADE_HEADERS);
        assert!(challenge.headers.iter().any(|h| h == "WWW-Authenticate: Bearer"), "401 names the scheme: {challenge:?}");

        let refused = WsClient::connect(&server.url, &[]).err().expect("upgrade without a token is refused");
        assert!(matches!(&refused, tungstenite::Error::Http(r) if r.status() == 401), "{refused}");

        let bearer = format!("bearer {TOKEN}");
        let mut client = WsClient::connect(&server.url, &[("Authorization", &bearer)]).expect("authorized");
        client.handshake();
        assert_eq!(client.run("a", sh("echo authed")).stdout_str(), "authed\n");
    }
}

#[test]
fn startup_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").expect("write");
    let empty = empty.to_str().expect("utf8");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--listen", "stdio", "--ws-auth", "capability-token", "--ws-token-sha256", TOKEN_SHA256],
            "WebSocket auth requires a WebSocket listener, not stdio",
        ),
        (&["--listen", "ws://127.0.0.1:0", "--ws-token-sha256", TOKEN_SHA256], "require --ws-auth"),
        (
            &["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-sha256", TOKEN_SHA256, "--ws-token-file", empty],
            "exactly one of",
        ),
        (&["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token"], "exactly one of"),
        (&["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-sha256", "abcd"], "64 hexadecimal"),
        (&["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-file", "token.txt"], "absolute path"),
        (&["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-file", empty], "is empty"),
        (&["--listen", "http://127.0.0.1:1"], "`http://127.0.0.1:1` is neither `stdio` nor `ws://IP:PORT`"),
    ];
    for (args, expected) in cases {
        let output =
            Command::new(executor_bin()).args(*args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run executor: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "a usage error: {args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: stderr {stderr:?} lacks {expected:?}");
        assert!(stderr.lines().all(|l| l.starts_with("executor: ")), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

/// The operator hears of refused upgrades (who tried), and not of readiness probes.
#[test]
fn refused_upgrades_are_logged_with_the_peer_address() {
    let mut command = Command::new(executor_bin());
    command.args(["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token", "--ws-token-sha256", TOKEN_SHA256]);
    let server = WsServer::spawn_capturing_stderr(command);
    assert_eq!(http_get(server.addr(), "/readyz", &[]).0, 200);
    let mut wrong = UPGRADE_HEADERS.to_vec();
    wrong.push(("Authorization", "Bearer wrong"));
    assert_eq!(http_get(server.addr(), "/", &wrong).0, 401);
    let mut from_browser = UPGRADE_HEADERS.to_vec();
    from_browser.push(("Origin", "http://example.test"));
    assert_eq!(http_get(server.addr(), "/", &from_browser).0, 403);
    let stderr = server.stderr_containing("Origin");
    let refusals: Vec<&str> = stderr.lines().filter(|l| l.contains("websocket upgrade refused")).collect();
    assert_eq!(refusals.len(), 2, "{stderr}");
    for line in &refusals {
        assert!(line.contains(" WARN ") && line.contains("peer=127.0.0.1:"), "{line}");
    }
    assert!(refusals[0].contains("invalid websocket bearer token"), "{stderr}");
    assert!(!stderr.contains("HTTP request answered"), "a readiness probe is no warning: {stderr}");
}

#[test]
fn many_connections_at_once() {
    let server = WsServer::start(&[]);
    let url = server.url.clone();
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            thread::spawn(move || {
                let mut client = WsClient::connect(&url, &[]).expect("connect");
                client.handshake();
                let out = client.run(&format!("p{i}"), sh(&format!("echo client{i}")));
                (out.stdout_str(), out.exit_code)
            })
        })
        .collect();
    for (i, handle) in clients.into_iter().enumerate() {
        let (stdout, code) = handle.join().expect("client thread");
        assert_eq!(stdout, format!("client{i}\n"));
        assert_eq!(code, Some(0));
    }
}

#[test]
fn sigterm_stops_the_server_and_its_children() {
    let mut server = WsServer::start(&["--shutdown-grace-ms", "500"]);
    let mut client = server.ready();
    // One child exits on SIGTERM, the other ignores it and must be killed after the grace.
    client.call(
        "process/start",
        json!({"processId": "polite", "argv": ["sh", "-c", "echo $$; exec sleep 1000"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    client.call(
        "process/start",
        json!({"processId": "stubborn", "argv": ["sh", "-c", "trap '' TERM; echo $$; while :; do sleep 1; done"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let pid_of = |client: &mut WsClient, id: &str| -> i32 {
        let event = client.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!(id));
        let text = String::from_utf8(executor_tests::unb64(event["params"]["chunk"].as_str().expect("chunk"))).expect("utf8");
        text.trim().parse().unwrap_or_else(|e| panic!("pid {text:?}: {e}"))
    };
    let polite = pid_of(&mut client, "polite");
    let stubborn = pid_of(&mut client, "stubborn");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), nix::sys::signal::Signal::SIGTERM).expect("kill");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    assert!(executor_tests::wait_pid_gone(polite), "child {polite} survived the shutdown");
    assert!(executor_tests::wait_pid_gone(stubborn), "SIGTERM-ignoring child {stubborn} survived the shutdown");
}

/// A large fs/readFile answer is streamed over websocket as one fragmented text message
/// (a frame per block, the server never holding the whole message): the client
/// reassembles it into the exact file, and the connection serves on afterwards.
#[test]
fn a_large_read_file_answer_arrives_whole_as_one_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = std::fs::canonicalize(dir.path()).expect("canonical").join("patterned.bin");
    let data: Vec<u8> = (0..30u32 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).expect("write");
    let server = WsServer::start(&[]);
    let mut client = server.ready();
    let result = client.call("fs/readFile", json!({"path": executor_tests::uri(&file)}));
    let encoded = result["dataBase64"].as_str().expect("dataBase64");
    assert!(executor_tests::unb64(encoded) == data, "the reassembled message is the file");
    let small = client.call("fs/getMetadata", json!({"path": executor_tests::uri(&file)}));
    assert_eq!(small["isFile"], json!(true), "{small}");
}
