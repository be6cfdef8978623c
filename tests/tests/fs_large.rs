//! Large files over stdio: fs/readFile responses larger than the 64 MiB inbound message
//! limit, the server's memory while it sends one (the answer is streamed: a few blocks
//! in memory whatever the file's size), an answer cut short when the file fails
//! mid-read, the readFile size cap and fs/readBlock as the way past it, and a large
//! fs/writeFile. Direct and under a restricted profile (fs-helper inside bwrap).

use executor_tests::RpcClient as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use executor_tests::{b64, memory_kib, unb64, uri, Executor};
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;
/// fs-helper's READ_FILE_MAX_BYTES, as documented in the README.
const READ_FILE_CAP: u64 = 512 * MIB;

fn workspace_write(dir: &Path) -> Value {
    json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
        {"path": {"type": "path", "path": uri(dir)}, "access": "write"}]},
        "network": "restricted"}, "windowsSandboxLevel": "disabled", "cwd": uri(dir)})
}

fn params(path: &Path, sandbox: &Option<Value>) -> Value {
    let mut p = json!({"path": uri(path)});
    if let Some(sb) = sandbox {
        p["sandbox"] = sb.clone();
    }
    p
}

/// A sparse file of `size` bytes with `marker` written at its start and its end.
fn sparse_file(path: &Path, size: u64, marker: &[u8]) {
    let f = File::create(path).expect("create");
    f.set_len(size).expect("set_len");
    f.write_all_at(marker, 0).expect("write start");
    f.write_all_at(marker, size - marker.len() as u64).expect("write end");
}

/// Reads an 80 MiB file (a ~107 MB response line, over the 64 MiB inbound limit) on a
/// fresh server and checks the data and the growth of the server's peak RSS: at most
/// 16 MiB (issue 19), where building the line first would need all ~102 MiB of it.
fn read_large_file(sandboxed: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let file = root.join("large.bin");
    let size = 80 * MIB;
    sparse_file(&file, size, b"edge-marker");
    let sandbox = sandboxed.then(|| workspace_write(&root));
    let mut s = Executor::ready(&[]);
    let pid = s.child.id();
    if sandboxed {
        // Starts the helper, so its start-up is not in the measured growth.
        std::fs::write(root.join("small"), b"small").expect("write");
        let small = s.call("fs/readFile", params(&root.join("small"), &sandbox));
        assert_eq!(unb64(small["dataBase64"].as_str().expect("data")), b"small");
    }
    let (rss_before, _) = memory_kib(pid);
    let result = s.call("fs/readFile", params(&file, &sandbox));
    let (_, hwm_after) = memory_kib(pid);
    let encoded = result["dataBase64"].as_str().expect("dataBase64");
    assert_eq!(encoded.len() as u64, size.div_ceil(3) * 4);
    let data = unb64(encoded);
    assert_eq!(data.len() as u64, size);
    assert!(data.starts_with(b"edge-marker") && data.ends_with(b"edge-marker"));
    assert!(data[11..data.len() - 11].iter().all(|&b| b == 0), "the hole must read as zeros");
    let growth = hwm_after.saturating_sub(rss_before);
    let allowed = 16 * 1024;
    assert!(growth <= allowed, "peak RSS grew by {growth} KiB for a {} KiB response; allowed {allowed} KiB", encoded.len() / 1024);
}

#[test]
fn read_file_larger_than_a_message_streams_in_bounded_memory_direct() {
    read_large_file(false);
}

#[test]
fn read_file_larger_than_a_message_streams_in_bounded_memory_sandboxed() {
    read_large_file(true);
}

#[test]
fn read_file_over_the_cap_is_refused_and_read_block_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let file = root.join("huge.bin");
    let size = READ_FILE_CAP + 1;
    sparse_file(&file, size, b"end");
    let mut s = Executor::ready(&[]);
    let expected = format!("fs/readFile: file `{}` is {size} bytes, larger than the {READ_FILE_CAP}-byte limit", file.display());
    for sandbox in [None, Some(workspace_write(&root))] {
        let (code, message) = s.call_err("fs/readFile", params(&file, &sandbox));
        assert_eq!((code, message.as_str()), (-32600, expected.as_str()));
    }
    s.call("fs/open", json!({"handleId": "big", "path": uri(&file)}));
    let block = s.call("fs/readBlock", json!({"handleId": "big", "offset": size - 3, "len": 16}));
    assert_eq!(block, json!({"chunk": b64(b"end"), "eof": true}));
    let block = s.call("fs/readBlock", json!({"handleId": "big", "offset": 0, "len": 4}));
    assert_eq!(block, json!({"chunk": b64(b"end\0"), "eof": false}));
}

/// A 40 MiB writeFile (a ~53 MB request line, under the 64 MiB limit) lands intact,
/// directly and through the helper.
#[test]
fn large_write_file_direct_and_sandboxed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let data: Vec<u8> = (0..40 * MIB as usize).map(|i| (i % 251) as u8).collect();
    let encoded = b64(&data);
    let mut s = Executor::ready(&[]);
    for (name, sandbox) in [("direct.bin", None), ("sandboxed.bin", Some(workspace_write(&root)))] {
        let target = root.join(name);
        let mut p = params(&target, &sandbox);
        p["dataBase64"] = json!(encoded);
        assert_eq!(s.call("fs/writeFile", p), json!({}));
        assert!(std::fs::read(&target).expect("written") == data, "{name} differs");
    }
}

/// A file that passes the size check when opened and then grows past the cap while its
/// answer is being sent: the part already sent cannot be taken back, so the line ends
/// unfinished (no newline, never valid JSON) and the connection closes, rather than a
/// shortened answer that looks whole. The test holds the server back by not reading
/// until the answer has begun, then grows the file.
#[test]
fn read_file_failing_mid_answer_cuts_the_line_and_closes_the_connection() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let file = root.join("growing.bin");
    sparse_file(&file, 64 * MIB, b"start");
    let mut child = Command::new(executor_tests::executor_bin())
        .args(["--listen", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start executor");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_text = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    writeln!(stdin, r#"{{"id":1,"method":"initialize","params":{{"clientName":"tests"}}}}"#).expect("write");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("initialize answer");
    assert!(line.contains(r#""result""#), "{line}");
    writeln!(stdin, r#"{{"method":"initialized","params":{{}}}}"#).expect("write");
    let request = json!({"id": 2, "method": "fs/readFile", "params": {"path": uri(&file)}});
    writeln!(stdin, "{request}").expect("write");

    let head = br#"{"id":2,"result":{"dataBase64":""#;
    let mut start = vec![0u8; head.len() + 4096];
    stdout.read_exact(&mut start).expect("the answer's start");
    assert!(start.starts_with(head), "{}", String::from_utf8_lossy(&start));
    // Past the cap while the server waits for the client: the read that crosses it fails.
    File::options().write(true).open(&file).expect("open").set_len(READ_FILE_CAP + 64 * MIB).expect("grow");

    // Read to EOF in chunks, keeping only the count, whether a newline came, and the end.
    let (mut total, mut newline, mut last) = (start.len(), false, Vec::new());
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = stdout.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        total += n;
        newline |= chunk[..n].contains(&b'\n');
        last = chunk[n.saturating_sub(64)..n].to_vec();
    }
    assert!(!newline, "the cut-short line must not end like a whole one, nor be followed by another");
    assert!(last.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'), "base64 up to the cut: {last:?}");
    // It got at most to the cap: the rest of the file was never sent.
    assert!((total as u64) < head.len() as u64 + READ_FILE_CAP.div_ceil(3) * 4 + 1, "{total} bytes");
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success(), "the server ends like a closed connection: {status}");
    let text = stderr_text.join().expect("stderr");
    assert!(text.contains("fs/readFile failed after part of its answer was sent"), "{text}");
    assert!(text.contains("closing the connection"), "{text}");
}

/// A directory of 50,000 entries: every name is listed, and the server's peak RSS grows
/// by at most three times the answer's size (the listing and the line; a JSON value in
/// between would take several times more: about 17 times before it was dropped).
#[test]
fn read_directory_of_many_entries_holds_the_listing_and_its_line_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let count = 50_000;
    for i in 0..count {
        File::create(root.join(format!("entry-with-a-longer-name-{i:06}"))).expect("create");
    }
    let mut s = Executor::ready(&[]);
    let pid = s.child.id();
    let (rss_before, _) = memory_kib(pid);
    let result = s.call("fs/readDirectory", json!({"path": uri(&root)}));
    let (_, hwm_after) = memory_kib(pid);
    let entries = result["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), count);
    assert!(entries.iter().all(|e| e["isFile"] == true && e["isDirectory"] == false));
    let line_kib = result.to_string().len() as u64 / 1024;
    let growth = hwm_after.saturating_sub(rss_before);
    assert!(growth <= 3 * line_kib + 2048, "peak RSS grew by {growth} KiB for a {line_kib} KiB answer");
}
