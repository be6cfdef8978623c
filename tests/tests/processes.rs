//! process/* over stdio: notifications, seq, reads, writes, signals, groups, PTY, URIs.

use executor_tests::RpcClient as _;
use std::time::Duration;

use executor_tests::{b64, pid_alive, sh, unb64, uri, wait_pid_gone, Executor, RunOutput};
use serde_json::{json, Value};

#[test]
fn echo_notifications_share_one_seq_counter_and_read_matches() {
    let mut server = Executor::ready(&[]);
    let result = server.call(
        "process/start",
        json!({"processId":"p1","argv":["echo","hello"],"cwd":"file:///tmp","env":{"PATH":"/usr/bin:/bin"},"tty":false}),
    );
    assert_eq!(result, json!({"processId": "p1", "sandboxType": "none"}));
    let out = RunOutput::from_events(&server.events_until_closed("p1"));
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.sandbox_denied, Some(false));
    let mut seqs = out.seqs.clone();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3]);
    let read = server.call("process/read", json!({"processId":"p1","afterSeq":0}));
    assert_eq!(
        read,
        json!({"chunks":[{"seq":1,"stream":"stdout","chunk":"aGVsbG8K"}],"nextSeq":4,"exited":true,
               "exitCode":0,"closed":true,"failure":null,"sandboxDenied":false})
    );
    let read = server.call("process/read", json!({"processId":"p1","afterSeq":3}));
    assert_eq!((read["chunks"].clone(), read["nextSeq"].clone()), (json!([]), json!(4)));
}

#[test]
fn read_after_close_points_past_the_close_unless_max_bytes_cut_it() {
    let mut server = Executor::ready(&[]);
    server.run("two", sh("printf aaaa; sleep 0.2; printf bbbb"));
    // Two chunks, exited and closed take seqs 1..=4 in some order; nextSeq is 5 once all is read.
    let read = server.call("process/read", json!({"processId":"two","afterSeq":0}));
    assert_eq!(read["closed"], true);
    assert_eq!(read["nextSeq"], 5, "{read}");
    let read = server.call("process/read", json!({"processId":"two","afterSeq":0,"maxBytes":1}));
    let first = read["chunks"][0]["seq"].as_u64().expect("a chunk");
    assert_eq!(read["nextSeq"].as_u64(), Some(first + 1), "a cut read resumes after its last chunk: {read}");
}

#[test]
fn start_errors() {
    let mut server = Executor::ready(&[]);
    server.run("dup", sh("true"));
    let (code, message) =
        server.call_err("process/start", json!({"processId":"dup","argv":["true"],"cwd":"file:///tmp","env":{},"tty":false}));
    assert_eq!((code, message.as_str()), (-32600, "process dup already exists"));
    let (code, message) = server.call_err("process/start", json!({"processId":"p2","argv":[],"cwd":"file:///tmp","env":{},"tty":false}));
    assert_eq!((code, message.as_str()), (-32602, "argv must not be empty"));
    let (code, message) = server.call_err("process/start", json!({"processId":"p3","argv":["true"],"cwd":"/tmp","env":{},"tty":false}));
    assert_eq!((code, message.as_str()), (-32602, "invalid URI: relative URL without a base"));
    let (code, message) =
        server.call_err("process/start", json!({"processId":"p4","argv":["/nonexistent/prog"],"cwd":"file:///tmp","env":{},"tty":false}));
    assert_eq!((code, message.as_str()), (-32603, "No such file or directory (os error 2)"));
    // A failed spawn leaves the id free.
    server.run("p4", sh("true"));
    let (code, _) =
        server.call_err("process/start", json!({"processId":"p5","argv":["true"],"cwd":"file:///nonexistent-dir","env":{},"tty":false}));
    assert_eq!(code, -32603);
    let (code, message) = server.call_err("process/start", json!({"processId":"p6","argv":["true"],"cwd":"file:///tmp","tty":false}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `env`"));
    let (code, message) = server.call_err("process/start", json!({"processId":"p7","argv":["true"],"cwd":"file:///tmp","env":{}}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `tty`"));
    let (code, message) = server.call_err("process/read", json!({"processId":"nope"}));
    assert_eq!((code, message.as_str()), (-32600, "unknown process id nope"));
}

#[test]
fn a_bare_program_name_resolves_without_path() {
    let mut server = Executor::ready(&[]);
    let out = server.run("bare", json!({"argv":["echo","x"],"cwd":"file:///tmp","env":{},"tty":false}));
    assert_eq!(out.stdout, b"x\n");
}

#[test]
fn pipe_stdin_write_dedup_and_statuses() {
    let mut server = Executor::ready(&[]);
    let mut params = sh("cat");
    params["processId"] = json!("cat1");
    params["pipeStdin"] = json!(true);
    server.call("process/start", params);
    for (chunk, id) in [("a", "w1"), ("b", "w2"), ("c", "w2"), ("d", "w3")] {
        let result = server.call("process/write", json!({"processId":"cat1","chunk":b64(chunk.as_bytes()),"writeId":id}));
        assert_eq!(result, json!({"status": "accepted"}));
    }
    let (code, message) = server.call_err("process/write", json!({"processId":"cat1","chunk":"eA=="}));
    assert_eq!((code, message.as_str()), (-32602, "missing field `writeId`"));
    let (code, message) = server.call_err("process/write", json!({"processId":"cat1","chunk":"eA==","writeId":""}));
    assert_eq!((code, message.as_str()), (-32602, "writeId must not be empty"));
    let ghost = server.call("process/write", json!({"processId":"ghost","chunk":"","writeId":"w"}));
    assert_eq!(ghost, json!({"status": "unknownProcess"}));
    // The same write id on another process is independent.
    let mut other = sh("cat");
    other["processId"] = json!("cat2");
    other["pipeStdin"] = json!(true);
    server.call("process/start", other);
    server.call("process/write", json!({"processId":"cat2","chunk":b64(b"z"),"writeId":"w1"}));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = server.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "cat1");
        seen.extend(unb64(event["params"]["chunk"].as_str().expect("chunk")));
    }
    assert_eq!(seen, b"abd", "the duplicate write id was not written twice");
    let event = server.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "cat2");
    assert_eq!(unb64(event["params"]["chunk"].as_str().expect("chunk")), b"z");
    assert_eq!(server.call("process/terminate", json!({"processId":"cat1"})), json!({"running": true}));
    let out = RunOutput::from_events(&server.events_until_closed("cat1"));
    assert_eq!(out.exit_code, Some(137));
    assert_eq!(server.call("process/terminate", json!({"processId":"cat1"})), json!({"running": false}));
    let (code, message) = server.call_err("process/write", json!({"processId":"cat1","chunk":"eA==","writeId":"late"}));
    assert_eq!((code, message.as_str()), (-32603, "failed to write to process stdin"));
}

#[test]
fn without_pipe_stdin_the_child_reads_eof_and_writes_are_refused() {
    let mut server = Executor::ready(&[]);
    let out = server.run("nostdin", sh("cat; echo cat-rc=$?"));
    assert_eq!(out.stdout, b"cat-rc=0\n");
    let status = server.call("process/write", json!({"processId":"nostdin","chunk":"eA==","writeId":"w5"}));
    assert_eq!(status, json!({"status": "stdinClosed"}));
}

#[test]
fn interrupt_delivers_sigint_and_unknown_signal_is_rejected() {
    let mut server = Executor::ready(&[]);
    let mut params = sh("trap 'echo got-int; exit 4' INT; echo ready; while :; do sleep 0.05; done");
    params["processId"] = json!("sig");
    server.call("process/start", params);
    server.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "sig");
    assert_eq!(server.call("process/signal", json!({"processId":"sig","signal":"interrupt"})), json!({}));
    let out = RunOutput::from_events(&server.events_until_closed("sig"));
    assert_eq!(out.stdout, b"got-int\n");
    assert_eq!(out.exit_code, Some(4));
    assert_eq!(server.call("process/signal", json!({"processId":"ghost","signal":"interrupt"})), json!({}));
    let (code, message) = server.call_err("process/signal", json!({"processId":"sig","signal":"kill"}));
    assert_eq!((code, message.as_str()), (-32602, "unknown variant `kill`, expected `interrupt`"));
}

/// Runs `script` (which prints the pids to watch, one per line, then keeps running) and
/// returns those pids once they have all been printed.
fn start_and_collect_pids(server: &mut Executor, id: &str, script: &str, count: usize) -> Vec<i32> {
    let mut params = sh(script);
    params["processId"] = json!(id);
    server.call("process/start", params);
    let mut text = String::new();
    while text.lines().count() < count {
        let event = server.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == json!(id));
        text.push_str(&String::from_utf8_lossy(&unb64(event["params"]["chunk"].as_str().expect("chunk"))));
    }
    text.lines().map(|l| l.trim().parse().expect("a pid")).collect()
}

#[test]
fn terminate_kills_the_whole_process_group() {
    let mut server = Executor::ready(&[]);
    let pids = start_and_collect_pids(&mut server, "grp", "sleep 213 & echo $!; sleep 214 & echo $!; wait", 2);
    assert!(pids.iter().all(|&p| pid_alive(p)));
    assert_eq!(server.call("process/terminate", json!({"processId":"grp"})), json!({"running": true}));
    let out = RunOutput::from_events(&server.events_until_closed("grp"));
    assert_eq!(out.exit_code, Some(137));
    for pid in pids {
        assert!(wait_pid_gone(pid), "grandchild {pid} survived terminate");
    }
}

#[test]
fn stdin_eof_kills_children_and_exits_zero() {
    let mut server = Executor::ready(&[]);
    let pids = start_and_collect_pids(&mut server, "bg", "sleep 300 & echo $!; echo $$; wait", 2);
    server.close_stdin();
    assert!(server.wait_exit().success());
    for pid in pids {
        assert!(wait_pid_gone(pid), "child {pid} survived stdin EOF");
    }
}

#[test]
fn sigterm_kills_children_too() {
    let mut server = Executor::ready(&[]);
    let pids = start_and_collect_pids(&mut server, "bg", "sleep 300 & echo $!; wait", 1);
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the server");
    server.wait_exit();
    assert!(wait_pid_gone(pids[0]), "child survived SIGTERM of the server");
}

#[test]
fn a_background_child_holding_the_pipe_delays_closed() {
    let mut server = Executor::ready(&[]);
    let mut params = sh("sleep 300 & exit 3");
    params["processId"] = json!("holder");
    server.call("process/start", params);
    let exited = server.next_matching(|m| m["method"] == "process/exited" && m["params"]["processId"] == "holder");
    assert_eq!(exited["params"]["exitCode"], 3);
    let read = server.call("process/read", json!({"processId":"holder","afterSeq":exited["params"]["seq"],"waitMs":300}));
    assert_eq!((read["exited"].clone(), read["closed"].clone()), (json!(true), json!(false)));
    assert_eq!(server.call("process/terminate", json!({"processId":"holder"})), json!({"running": false}));
    let closed = server.next_matching(|m| m["method"] == "process/closed" && m["params"]["processId"] == "holder");
    assert_eq!(closed["params"]["seq"].as_u64(), exited["params"]["seq"].as_u64().map(|s| s + 1));
}

#[test]
fn output_after_exit_keeps_seq_order_and_closed_is_last() {
    let mut server = Executor::ready(&[]);
    let events = {
        let mut params = sh("(sleep 0.3; echo late) & exit 0");
        params["processId"] = json!("late");
        server.call("process/start", params);
        server.events_until_closed("late")
    };
    let methods: Vec<&str> = events.iter().map(|e| e["method"].as_str().unwrap_or("")).collect();
    assert_eq!(methods, ["process/exited", "process/output", "process/closed"]);
    let seqs: Vec<u64> = events.iter().map(|e| e["params"]["seq"].as_u64().unwrap_or(0)).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let read = server.call("process/read", json!({"processId":"late","afterSeq":0}));
    assert_eq!(read["chunks"][0]["seq"], 2);
    // Closed, and every chunk returned: past the close (protocol.md §5.5, issue 15 item 5).
    assert_eq!(read["nextSeq"], 4);
}

#[test]
fn max_bytes_rules() {
    let mut server = Executor::ready(&[]);
    server.run("multi", sh("printf aaaa; sleep 0.2; printf bbbb; sleep 0.2; printf cccc"));
    let read = server.call("process/read", json!({"processId":"multi","afterSeq":0,"maxBytes":6}));
    assert_eq!(read["chunks"].as_array().map(Vec::len), Some(1));
    assert_eq!(read["nextSeq"], 2);
    let read = server.call("process/read", json!({"processId":"multi","afterSeq":0,"maxBytes":0}));
    assert_eq!(read["chunks"].as_array().map(Vec::len), Some(1), "the first chunk is always returned");
    let read = server.call("process/read", json!({"processId":"multi","afterSeq":1,"maxBytes":100}));
    let data: Vec<u8> = read["chunks"].as_array().expect("chunks").iter().flat_map(|c| unb64(c["chunk"].as_str().unwrap_or(""))).collect();
    assert_eq!(data, b"bbbbcccc");
}

#[test]
fn a_3mb_flood_is_streamed_whole_and_retention_keeps_the_newest_mib() {
    let mut server = Executor::ready(&[]);
    let out = server.run("big", sh("head -c 3000000 /dev/zero | tr '\\0' a"));
    assert_eq!(out.stdout.len(), 3_000_000, "every byte was notified");
    assert!(out.stdout.iter().all(|&b| b == b'a'));
    let mut seqs = out.seqs.clone();
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "seq numbers are contiguous");
    assert_eq!(out.seqs.last(), seqs.last(), "closed carries the last seq");
    let read = server.call("process/read", json!({"processId":"big","afterSeq":0}));
    let chunks = read["chunks"].as_array().expect("chunks");
    let retained: usize = chunks.iter().map(|c| unb64(c["chunk"].as_str().unwrap_or("")).len()).sum();
    assert!(retained <= 1024 * 1024, "{retained}");
    assert!(retained >= 1024 * 1024 - 256 * 1024, "about one MiB is retained: {retained}");
    assert!(chunks[0]["seq"].as_u64() > Some(1), "the oldest chunks were evicted");
    let read_newest = chunks.last().and_then(|c| c["seq"].as_u64());
    let last_output = out.seqs.iter().copied().filter(|s| Some(*s) <= read_newest).max();
    assert_eq!(read_newest, last_output);
}

#[test]
fn pty_echoes_input_and_reports_a_terminal() {
    let mut server = Executor::ready(&[]);
    let params = json!({"processId":"tty1","argv":["sh","-c","tty; read x; echo got:$x; exit 7"],
        "cwd":"file:///tmp","env":{"PATH":"/usr/bin:/bin","TERM":"dumb"},"tty":true});
    server.call("process/start", params);
    // The terminal may hand over `tty`'s line in more than one read, so
    // gather chunks until the line is complete before judging it.
    let mut text = String::new();
    while !text.contains('\n') {
        let next = server.next_matching(|m| m["method"] == "process/output" && m["params"]["processId"] == "tty1");
        assert_eq!(next["params"]["stream"], "pty");
        text.push_str(&String::from_utf8_lossy(&unb64(next["params"]["chunk"].as_str().expect("chunk"))));
    }
    assert!(text.starts_with("/dev/pts/") && text.ends_with("\r\n"), "{text:?}");
    let write = server.call("process/write", json!({"processId":"tty1","chunk":b64(b"abc\n"),"writeId":"t1"}));
    assert_eq!(write, json!({"status": "accepted"}));
    let out = RunOutput::from_events(&server.events_until_closed("tty1"));
    assert_eq!(String::from_utf8_lossy(&out.pty), "abc\r\ngot:abc\r\n");
    assert_eq!(out.exit_code, Some(7));
}

#[test]
fn arg0_overrides_what_the_child_sees() {
    let mut server = Executor::ready(&[]);
    let mut params = sh("echo $0");
    params["arg0"] = json!("custom-argv0");
    let out = server.run("a0", params);
    assert_eq!(out.stdout, b"custom-argv0\n");
}

#[test]
fn cwd_uris_are_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spaced = dir.path().join("with space");
    std::fs::create_dir(&spaced).expect("mkdir");
    let mut server = Executor::ready(&[]);
    let cases = [
        (format!("file://{}/with%20space", dir.path().display()), spaced.clone()),
        (format!("file://localhost{}/with%20space/../with%20space", dir.path().display()), spaced.clone()),
        (uri(dir.path()), dir.path().to_path_buf()),
    ];
    for (i, (cwd, expected)) in cases.iter().enumerate() {
        let out = server.run(&format!("cwd{i}"), json!({"argv":["pwd"],"cwd":cwd,"env":{},"tty":false}));
        assert_eq!(out.stdout_str().trim_end(), expected.display().to_string());
    }
    let (code, _) = server.call_err("process/start", json!({"processId":"x","argv":["pwd"],"cwd":"http://h/tmp","env":{},"tty":false}));
    assert_eq!(code, -32602);
}

#[test]
fn long_poll_does_not_stall_a_write() {
    let mut server = Executor::ready(&[]);
    let mut params = sh("cat");
    params["processId"] = json!("cat");
    params["pipeStdin"] = json!(true);
    server.call("process/start", params);
    let poll = server.send_request("process/read", json!({"processId":"cat","afterSeq":0,"waitMs":15000}));
    let write = server.send_request("process/write", json!({"processId":"cat","chunk":b64(b"wake\n"),"writeId":"1"}));
    assert_eq!(server.response(write)["result"], json!({"status": "accepted"}));
    let read = server.response(poll);
    let chunks = read["result"]["chunks"].as_array().expect("chunks");
    assert_eq!(unb64(chunks[0]["chunk"].as_str().unwrap_or("")), b"wake\n", "the poll was woken by the write");
}

#[test]
fn concurrent_requests_one_processes_requests_in_order() {
    let mut server = Executor::ready(&["--concurrent-requests", "1"]);
    let mut params = sh("cat");
    params["processId"] = json!("cat");
    params["pipeStdin"] = json!(true);
    server.call("process/start", params);
    let poll = server.send_request("process/read", json!({"processId":"cat","afterSeq":0,"waitMs":500}));
    let status = server.send_request("environment/status", json!({}));
    let first = server.next_matching(|m| m.get("id").is_some());
    assert_eq!(first["id"], json!(poll), "with one slot the long-poll answers first: {first}");
    assert_eq!(first["result"]["chunks"], json!([]));
    assert_eq!(server.response(status)["result"]["status"], "ready");
}

#[test]
fn unsupported_start_fields_are_refused_not_ignored() {
    let mut server = Executor::ready(&[]);
    for (field, value) in [
        ("enforceManagedNetwork", json!(true)),
        ("networkProxy", json!({})),
        ("shellSnapshot", json!({"scopeId":"s","shell":{"name":"bash","path":"/bin/bash"}})),
    ] {
        let mut params = sh("true");
        params["processId"] = json!(format!("u-{field}"));
        params[field] = value;
        let (code, message) = server.call_err("process/start", params);
        assert_eq!(code, -32602, "{field}: {message}");
    }
    let events = server.try_next_matching(&|m: &Value| m["method"] == "process/exited", Duration::from_millis(200));
    assert!(events.is_none(), "nothing was started");
}
