//! The sandboxed helper's stdin/stdout protocol (protocol.md §8.4, transcript 11).
//!
//! Requests are `{"operation":"fs/readFile","params":{...}}`, one JSON object per
//! line; each gets exactly one reply line:
//! `{"status":"ok","payload":{"operation":...,"response":{...}}}` or
//! `{"status":"error","payload":{"code":...,"message":...}}`.
//!
//! Difference from the reference: its helper is one-shot (one request read to EOF,
//! exit 1 on an unparseable request). Ours is long-lived and serves many requests, so
//! an unparseable line is answered with an error line (-32600, `fs sandbox helper
//! failed: <serde error>`) and serving continues; one bad request must not cost the
//! executor its helper.
//!
//! `fs/open` needs a Unix socket shared with the executor (a `SOCK_SEQPACKET` pair; the
//! executor passes its number as `--fd-socket N`): the descriptor is sent on it
//! (payload = the handleId bytes) *before* the ok line is written, so when the
//! executor reads that line the descriptor is already waiting on the socket. The
//! helper closes its own copy right after sending: the executor serves the block reads
//! and writes, and the handle's lifetime is the executor's alone.

use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{FsError, INVALID_REQUEST};
use crate::ops::{self, Decoded, Operation, READ_FILE_RESULT_HEAD, READ_FILE_RESULT_TAIL};
use crate::protocol::{OpenParams, OpenResult};

pub use crate::fd_pass::{recv_fd, send_fd};

/// One request line, decoded as far as the envelope.
#[derive(Debug, Deserialize)]
pub struct Request {
    pub operation: Operation,
    pub params: Value,
}

/// One reply line.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "status", content = "payload", rename_all = "lowercase")]
pub enum Reply {
    Ok { operation: &'static str, response: Value },
    Error { code: i64, message: String },
}

impl Reply {
    fn from_error(e: &FsError) -> Reply {
        Reply::Error { code: e.code(), message: e.to_string() }
    }
}

/// The start of the ok reply to `fs/readFile`, up to its response object. The helper
/// writes that reply by concatenation (base64 needs no escaping), and the executor
/// recognises this prefix to pass the data on without parsing it.
pub const READ_FILE_OK_HEAD: &[u8] = br#"{"status":"ok","payload":{"operation":"fs/readFile","response":"#;
/// What follows the response object in an ok reply.
pub const OK_TAIL: &[u8] = b"}}";

/// Serves requests from `reader` until EOF, one reply line each on `writer`.
/// Returns an error only when reading or writing fails, or when a readFile fails after
/// its reply has begun (see [`serve_read_file`]).
pub fn serve<R: BufRead, W: Write>(mut reader: R, mut writer: W, fd_socket: Option<OwnedFd>) -> io::Result<()> {
    let sock = fd_socket.as_ref().map(|s| s.as_fd());
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_request(line) {
            Err(reply) => write_reply(&mut writer, &reply)?,
            Ok(r) if r.operation == Operation::ReadFile => serve_read_file(r.params, &mut writer)?,
            Ok(r) => write_reply(&mut writer, &handle_request(r.operation, r.params, sock))?,
        }
    }
}

/// Decodes a request line, or the error reply for it. Takes the line by value so its
/// buffer is freed before the operation runs: a large writeFile would otherwise hold the
/// text twice.
pub fn decode_request(line: Vec<u8>) -> Result<Request, Reply> {
    serde_json::from_slice(&line).map_err(|e| {
        let message = format!("fs sandbox helper failed: {e}");
        Reply::Error { code: INVALID_REQUEST, message }
    })
}

fn write_reply(w: &mut impl Write, reply: &Reply) -> io::Result<()> {
    serde_json::to_writer(&mut *w, reply).map_err(io::Error::from)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// The ok reply is written by concatenation while the file is encoded, block by
/// block, so the executor receives the start of the data while the rest is encoded.
/// Errors known before the first byte (missing file, too large, ...) are ordinary
/// error replies. One after the reply has begun (an I/O error mid-file, a file that
/// grew past the cap) cannot become an error reply any more: the line is ended
/// unfinished, which the executor treats as a broken helper, and the helper stops
/// with the error on stderr.
fn serve_read_file(params: Value, w: &mut impl Write) -> io::Result<()> {
    let file = match ops::open_read_file(params) {
        Ok(file) => file,
        Err(e) => return write_reply(w, &Reply::from_error(&e)),
    };
    w.write_all(READ_FILE_OK_HEAD)?;
    w.write_all(READ_FILE_RESULT_HEAD)?;
    if let Err(e) = file.write_base64(w) {
        let _ = w.write_all(b"\n").and_then(|()| w.flush());
        return Err(io::Error::other(format!("fs/readFile failed after its reply had begun: {e}")));
    }
    w.write_all(READ_FILE_RESULT_TAIL)?;
    w.write_all(OK_TAIL)?;
    w.write_all(b"\n")?;
    w.flush()
}

fn handle_request(op: Operation, params: Value, fd_socket: Option<BorrowedFd<'_>>) -> Reply {
    let result = ops::decode_op(op, params).and_then(|decoded| match (decoded, fd_socket) {
        (Decoded::Open(open), Some(sock)) => open_and_send(open, sock),
        (decoded, _) => decoded.run(),
    });
    match result {
        Ok(response) => Reply::Ok { operation: op.name(), response },
        Err(e) => Reply::from_error(&e),
    }
}

fn open_and_send(p: OpenParams, sock: BorrowedFd<'_>) -> Result<Value, FsError> {
    let file = ops::open_file(&p)?;
    send_fd(sock, file.as_fd(), p.handle_id.as_bytes())?;
    drop(file);
    serde_json::to_value(OpenResult { handle_id: p.handle_id }).map_err(|e| FsError::Io(io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::path_to_uri;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use serde_json::json;
    use std::fs::File;
    use std::io::{Cursor, Read};

    fn run(input: String, sock: Option<OwnedFd>) -> Vec<Value> {
        let mut out = Vec::new();
        serve(Cursor::new(input.into_bytes()), &mut out, sock).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn req(op: &str, params: Value) -> String {
        format!("{}\n", json!({"operation": op, "params": params}))
    }

    #[test]
    fn serves_many_requests_and_survives_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let f = path_to_uri(&d.path().join("helper.txt"));
        let missing = path_to_uri(&d.path().join("missing"));
        let input = [
            req("fs/writeFile", json!({"path": f, "dataBase64": "aGVscGVyIGRhdGEK"})),
            "this is not json\n".to_string(),
            "\n".to_string(),
            req("readFile", json!({"path": f})),
            req("fs/readFile", json!({"path": f, "sandbox": null})),
            req("fs/readFile", json!({"path": missing})),
        ]
        .concat();
        let replies = run(input, None);
        assert_eq!(replies.len(), 5);
        assert_eq!(replies[0], json!({"status": "ok", "payload": {"operation": "fs/writeFile", "response": {}}}));
        assert_eq!(replies[1]["status"], "error");
        assert_eq!(replies[1]["payload"]["code"], -32600);
        let msg = replies[1]["payload"]["message"].as_str().unwrap();
        assert!(msg.starts_with("fs sandbox helper failed: expected ident"), "{msg}");
        let msg = replies[2]["payload"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "fs sandbox helper failed: unknown variant `readFile`, expected one of \
                 `capabilities/loadDiscoveries`, `capabilityRoots/discoverV1`, `fs/open`, `fs/readFile`"
            ),
            "{msg}"
        );
        assert_eq!(
            replies[3],
            json!({"status": "ok", "payload": {"operation": "fs/readFile", "response": {"dataBase64": "aGVscGVyIGRhdGEK"}}})
        );
        assert_eq!(
            replies[4],
            json!({"status": "error", "payload": {"code": -32004, "message": "No such file or directory (os error 2)"}})
        );
    }

    #[test]
    fn reply_line_shape_is_exact() {
        let line = serde_json::to_string(&Reply::Error { code: -32004, message: "m".into() }).unwrap();
        assert_eq!(line, r#"{"status":"error","payload":{"code":-32004,"message":"m"}}"#);
        let line = serde_json::to_string(&Reply::Ok { operation: "fs/remove", response: json!({}) }).unwrap();
        assert_eq!(line, r#"{"status":"ok","payload":{"operation":"fs/remove","response":{}}}"#);
    }

    #[test]
    fn hand_built_read_file_reply_equals_the_serialised_one() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let mut out = Vec::new();
        serve(Cursor::new(req("fs/readFile", json!({"path": path_to_uri(&f)}))), &mut out, None).unwrap();
        let response = json!({"dataBase64": "aGVsbG8="});
        let mut expected = serde_json::to_vec(&Reply::Ok { operation: "fs/readFile", response }).unwrap();
        expected.push(b'\n');
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }

    #[test]
    fn open_without_socket_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let replies = run(req("fs/open", json!({"handleId": "h1", "path": path_to_uri(&f)})), None);
        assert_eq!(
            replies[0],
            json!({"status": "error", "payload": {"code": -32603, "message": "opening a file requires descriptor handoff"}})
        );
    }

    #[test]
    fn open_hands_over_descriptors() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"read me").unwrap();
        let new = d.path().join("new");
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        let input = [
            req("fs/open", json!({"handleId": "h1", "path": path_to_uri(&f)})),
            req("fs/open", json!({"handleId": "h2", "path": path_to_uri(&new), "mode": "replace"})),
            req("fs/open", json!({"handleId": "h3", "path": path_to_uri(&d.path().join("nope"))})),
        ]
        .concat();
        let replies = run(input, Some(theirs));
        assert_eq!(replies[0], json!({"status": "ok", "payload": {"operation": "fs/open", "response": {"handleId": "h1"}}}));
        assert_eq!(replies[1]["payload"]["response"], json!({"handleId": "h2"}));
        assert_eq!(replies[2]["payload"]["code"], -32004);

        let mut buf = [0u8; 16];
        let (n, fd) = recv_fd(ours.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"h1");
        let mut text = String::new();
        File::from(fd.unwrap()).read_to_string(&mut text).unwrap();
        assert_eq!(text, "read me");

        let (n, fd) = recv_fd(ours.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"h2");
        std::io::Write::write_all(&mut File::from(fd.unwrap()), b"written").unwrap();
        assert_eq!(std::fs::read(&new).unwrap(), b"written");
    }
}
