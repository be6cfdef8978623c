//! Sessions over websocket (protocol.md §10): detach on disconnect, resume without losing
//! output, refusal while attached, unknown ids, TTL expiry killing the session's processes.

use executor_tests::RpcClient as _;
use std::thread;
use std::time::Duration;

use executor_tests::ws::{WsClient, WsServer};
use executor_tests::{pid_alive, sh, unb64, wait_pid_gone};
use serde_json::{json, Value};

fn session_id(initialize_result: &Value) -> String {
    initialize_result["sessionId"].as_str().expect("sessionId").to_owned()
}

/// The pid a process printed as its first output line, from its notifications.
fn first_line_pid(client: &mut WsClient, process_id: &str) -> i32 {
    let event = client.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!(process_id));
    let text = String::from_utf8(unb64(event["params"]["chunk"].as_str().expect("chunk"))).expect("utf8");
    let line = text.lines().next().unwrap_or_default();
    line.trim().parse().unwrap_or_else(|e| panic!("pid line {line:?}: {e}"))
}

#[test]
fn dropped_connection_resumes_and_reads_every_byte() {
    let server = WsServer::start(&[]);
    let mut ws1 = server.connect();
    let id = session_id(&ws1.handshake());
    let script = "for i in $(seq 1 200); do echo line$i; sleep 0.01; done";
    ws1.call(
        "process/start",
        json!({"processId": "stream", "argv": ["sh", "-c", script],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    // Some output arrives as notifications, then the client vanishes mid-stream.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = ws1.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!("stream"));
        let params = &event["params"];
        seen.push((params["seq"].as_u64().expect("seq"), unb64(params["chunk"].as_str().expect("chunk"))));
    }
    ws1.drop_tcp();

    let mut ws2 = server.resume_when_detached(&id);
    let (chunks, exit_code) = ws2.read_all("stream");
    assert_eq!(exit_code, Some(0));
    let seqs: Vec<u64> = chunks.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs.first(), Some(&1), "the stream is read from its first chunk");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase: {seqs:?}");
    // One seq counter is shared with process/exited and process/closed: the only seqs that
    // may be missing from the output chunks are the exit record's (closed comes last).
    let last = *seqs.last().expect("chunks");
    let missing = (1..=last).filter(|s| !seqs.contains(s)).count();
    assert!(missing <= 1, "output seqs have gaps: {seqs:?}");
    // Exactly the bytes the process wrote, nothing lost or duplicated.
    let text: Vec<u8> = chunks.iter().flat_map(|(_, data)| data.clone()).collect();
    let expected: String = (1..=200).map(|i| format!("line{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&text), expected);
    // What ws1 saw as notifications is what process/read returns for the same seqs.
    for (seq, data) in &seen {
        let read = chunks.iter().find(|(s, _)| s == seq).map(|(_, d)| d);
        assert_eq!(read, Some(data), "seq {seq} differs between notification and process/read");
    }
    // The resumed connection now gets the notifications.
    ws2.next_matching(|m| m["method"] == "process/closed" && m["params"]["processId"] == json!("stream"));
}

#[test]
fn resume_is_refused_while_attached_and_for_unknown_ids() {
    let server = WsServer::start(&[]);
    let mut ws1 = server.connect();
    let id = session_id(&ws1.handshake());

    let mut ws3 = server.connect();
    let refused = ws3.resume(&id);
    assert_eq!(refused["error"]["code"], json!(-32010), "{refused}");
    assert_eq!(refused["error"]["message"], json!(format!("session {id} is already attached to another connection")));
    // A failed initialize leaves the connection un-initialized; initialize may be retried.
    let (code, message) = ws3.call_err("environment/status", json!({}));
    assert_eq!((code, message.as_str()), (-32600, "client must call initialize before using environment status methods"));
    let unknown = ws3.resume("no-such-session");
    assert_eq!(unknown["error"]["code"], json!(-32600));
    assert_eq!(unknown["error"]["message"], json!("unknown session id no-such-session"));

    // ws1 is unaffected and keeps its session.
    assert_eq!(ws1.run("p", sh("echo still-mine")).stdout_str(), "still-mine\n");
    // Once ws1 has closed cleanly (a websocket Close), ws3 may take the session.
    drop(ws1);
    let mut ws4 = server.resume_when_detached(&id);
    assert_eq!(ws4.run("q", sh("echo resumed")).stdout_str(), "resumed\n");
}

#[test]
fn a_drop_is_noticed_while_the_connection_waits_for_a_request_slot() {
    // With one request at a time, a long-poll holds the only slot and the next request
    // waits for it; the dropped connection must still detach at once, not after the poll.
    let server = WsServer::start(&["--concurrent-requests", "1"]);
    let mut ws1 = server.connect();
    let id = session_id(&ws1.handshake());
    ws1.call(
        "process/start",
        json!({"processId": "quiet", "argv": ["sleep", "1000"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    ws1.send_request("process/read", json!({"processId": "quiet", "afterSeq": 0, "waitMs": 600_000}));
    ws1.send_request("environment/status", json!({}));
    ws1.drop_tcp();
    let mut ws2 = server.resume_when_detached(&id);
    let result = ws2.call("process/terminate", json!({"processId": "quiet"}));
    assert_eq!(result, json!({"running": true}));
}

#[test]
fn detached_sessions_expire_and_their_processes_are_killed() {
    let server = WsServer::start(&["--session-ttl", "2"]);
    let mut ws1 = server.connect();
    let id = session_id(&ws1.handshake());
    ws1.call(
        "process/start",
        json!({"processId": "sleeper", "argv": ["sh", "-c", "echo $$; exec sleep 1000"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let pid = first_line_pid(&mut ws1, "sleeper");
    ws1.drop_tcp();
    assert!(wait_pid_gone(pid), "process {pid} of the expired session is still alive");
    let mut ws2 = server.connect();
    let response = ws2.resume(&id);
    assert_eq!(response["error"]["code"], json!(-32600), "{response}");
    assert_eq!(response["error"]["message"], json!(format!("unknown session id {id}")));
}

#[test]
fn reattaching_resets_the_ttl() {
    let server = WsServer::start(&["--session-ttl", "3"]);
    let mut ws1 = server.connect();
    let id = session_id(&ws1.handshake());
    ws1.call(
        "process/start",
        json!({"processId": "sleeper", "argv": ["sh", "-c", "echo $$; exec sleep 1000"],
        "cwd": "file:///tmp", "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
    );
    let pid = first_line_pid(&mut ws1, "sleeper");
    ws1.drop_tcp();
    let mut ws2 = server.resume_when_detached(&id);
    // Attached for longer than the TTL: the timer of the first detach must not fire.
    thread::sleep(Duration::from_secs(4));
    assert!(pid_alive(pid), "an attached session's process was killed");
    assert_eq!(ws2.call("environment/status", json!({})), json!({"status": "ready"}));
    // Detached again: now it expires.
    ws2.drop_tcp();
    assert!(wait_pid_gone(pid), "process {pid} survived the second detach's TTL");
}
