//! Reading a helper's reply line. An ok `fs/readFile` reply is the whole file in
//! base64; it is not parsed but spliced into the response line, so the server holds one
//! copy of the data and never runs a JSON scanner over it.

use fs_helper::helper::OK_TAIL;
use fs_helper::ops::{READ_FILE_RESULT_HEAD, READ_FILE_RESULT_TAIL};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdout;

use crate::fs::error::helper_failed;
use crate::fs::FsServiceError;
use crate::protocol::envelope::finish_response;

/// The first `n` bytes of a reply line, fewer if the line (with its newline) is
/// shorter; empty at EOF. Never reads past the newline, so a short reply cannot leave
/// this waiting for a next line that will not come.
pub async fn read_start(reader: &mut BufReader<ChildStdout>, n: usize) -> Result<Vec<u8>, FsServiceError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n && out.last() != Some(&b'\n') {
        let available = reader.fill_buf().await.map_err(helper_failed)?;
        if available.is_empty() {
            break;
        }
        let window = &available[..available.len().min(n - out.len())];
        let take = window.iter().position(|&b| b == b'\n').map_or(window.len(), |i| i + 1);
        out.extend_from_slice(&window[..take]);
        reader.consume(take);
    }
    Ok(out)
}

/// Appends the rest of a reply line begun by [`read_start`] to `line`, without the newline.
pub async fn read_rest(reader: &mut BufReader<ChildStdout>, line: &mut Vec<u8>) -> Result<(), FsServiceError> {
    if line.last() != Some(&b'\n') {
        reader.read_until(b'\n', line).await.map_err(helper_failed)?;
    }
    if line.pop() != Some(b'\n') {
        return Err(helper_failed("its reply was cut short"));
    }
    Ok(())
}

/// `line` is the response head followed by the rest of the helper's ok reply
/// (`{"dataBase64":"..."}}}`): drop the reply's closing braces and close the response
/// instead. The data must not contain a quote or backslash, so that the helper's text
/// cannot end the string early and change the line's structure.
pub fn splice_read_file(mut line: Vec<u8>, head_len: usize) -> Result<Vec<u8>, FsServiceError> {
    if !line.ends_with(OK_TAIL) || line.len() < head_len + OK_TAIL.len() {
        return Err(helper_failed("malformed fs/readFile reply"));
    }
    line.truncate(line.len() - OK_TAIL.len());
    let data = line[head_len..].strip_prefix(READ_FILE_RESULT_HEAD).and_then(|r| r.strip_suffix(READ_FILE_RESULT_TAIL));
    let plain = matches!(data, Some(d) if memchr::memchr2(b'"', b'\\', d).is_none());
    if !plain {
        return Err(helper_failed("malformed fs/readFile reply"));
    }
    finish_response(&mut line);
    Ok(line)
}

/// A reply line other than an ok readFile, parsed.
pub fn parse_reply(reply: &[u8]) -> Result<Result<Value, FsServiceError>, FsServiceError> {
    let mut reply: Value = serde_json::from_slice(reply).map_err(|e| helper_failed(format_args!("unreadable reply: {e}")))?;
    let mut payload = reply.get_mut("payload").map(Value::take).unwrap_or(Value::Null);
    match reply.get("status").and_then(Value::as_str) {
        Some("ok") => Ok(Ok(payload.get_mut("response").map(Value::take).unwrap_or(Value::Null))),
        Some("error") => {
            let code = payload.get("code").and_then(Value::as_i64).unwrap_or(fs_helper::codes::INTERNAL_ERROR);
            let message = payload.get("message").and_then(Value::as_str).unwrap_or("fs sandbox helper error");
            Ok(Err(FsServiceError::Helper { code, message: message.to_owned() }))
        }
        _ => Err(helper_failed("reply without a status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::envelope::response_head;
    use crate::protocol::RequestId;

    fn spliced(rest: &str) -> Result<Vec<u8>, FsServiceError> {
        let mut line = response_head(&RequestId::Integer(3));
        let head_len = line.len();
        line.extend_from_slice(rest.as_bytes());
        splice_read_file(line, head_len)
    }

    #[test]
    fn ok_read_file_reply_becomes_the_response_line() {
        let line = spliced(r#"{"dataBase64":"aGk="}}}"#).map_err(|e| e.to_string());
        assert_eq!(line, Ok(br#"{"id":3,"result":{"dataBase64":"aGk="}}"#.to_vec()));
    }

    #[test]
    fn malformed_read_file_replies_are_refused() {
        for rest in [
            r#"{"dataBase64":"aGk="}}"#,
            r#"{"dataBase64":"aGk="}"#,
            r#"{"dataBase64":"aG","x":"k="}}}"#,
            r#"{"dataBase64":"aG\"k="}}}"#,
            r#"{"dataBase64":"aGk=\"}}}"#,
            r#"{"other":"aGk="}}}"#,
            "}}",
        ] {
            let e = spliced(rest).err().map(|e| e.to_string());
            assert_eq!(e.as_deref(), Some("fs sandbox helper failed: malformed fs/readFile reply"), "{rest}");
        }
    }
}
