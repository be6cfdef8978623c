//! A streamed response body, sent as `http/request/bodyDelta` notifications.
//!
//! Backpressure: each delta is queued on the connection's bounded outbound channel and the
//! body is read on only once the queue took it, so a client that reads slowly slows the
//! HTTP server down (through TCP flow control) instead of making the executor buffer. What
//! one stream can hold is one delta being built plus the queue's lines.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::FutureExt as _;

use super::registry::Ticket;
use super::HttpError;
use crate::notify::Outbound;
use crate::protocol::envelope::json_string;
use crate::protocol::http::body_delta_line;

/// Largest delta sent. The protocol allows 1 MiB; a quarter of it keeps the bytes queued
/// for a slow client small (the stdio queue holds 32 lines) at no cost in throughput.
pub const MAX_DELTA_BYTES: usize = 256 * 1024;

/// What the next notification carries.
enum Step {
    Data(Vec<u8>),
    Done,
    Failed(String),
}

/// Reads a body in deltas: what the body already has is gathered into one delta (up to
/// [`MAX_DELTA_BYTES`]) without waiting for more, so that an SSE event goes out at once
/// and a fast download does not become a flood of tiny notifications.
struct DeltaReader {
    response: reqwest::Response,
    leftover: Bytes,
    end: Option<Result<(), String>>,
}

impl DeltaReader {
    async fn next(&mut self) -> Step {
        if self.leftover.is_empty() {
            match &self.end {
                Some(Ok(())) => return Step::Done,
                Some(Err(e)) => return Step::Failed(e.clone()),
                None => {
                    let next = self.response.chunk().await;
                    self.pull(next);
                }
            }
        }
        let mut delta = Vec::with_capacity(self.leftover.len().min(MAX_DELTA_BYTES));
        loop {
            let take = self.leftover.len().min(MAX_DELTA_BYTES - delta.len());
            delta.extend_from_slice(&self.leftover.split_to(take));
            if delta.len() >= MAX_DELTA_BYTES || self.end.is_some() {
                break;
            }
            // Only what is ready now: `chunk` is a poll of the body, so dropping it when
            // pending loses nothing.
            match self.response.chunk().now_or_never() {
                Some(next) => self.pull(next),
                None => break,
            }
        }
        if delta.is_empty() {
            // The body ended (or failed) on the read that was to fill this delta.
            return match &self.end {
                Some(Err(e)) => Step::Failed(e.clone()),
                _ => Step::Done,
            };
        }
        Step::Data(delta)
    }

    fn pull(&mut self, next: Result<Option<Bytes>, reqwest::Error>) {
        match next {
            Ok(Some(chunk)) => self.leftover = chunk,
            Ok(None) => self.end = Some(Ok(())),
            Err(e) => {
                let message = HttpError::from_reqwest(&e).to_string();
                self.end = Some(Err(message));
            }
        }
    }
}

/// Sends the body of `response` as deltas of `ticket`'s request id, seq from 1, ending with
/// a `done:true` frame (with `error` set when the body failed). Ends early, without a
/// final frame, when the connection closes: nobody is left to read it.
pub async fn send_body(response: reqwest::Response, ticket: Ticket, outbound: Outbound) {
    let id_json = json_string(ticket.request_id());
    let cancelled = ticket.cancelled();
    tokio::pin!(cancelled);
    let mut reader = DeltaReader { response, leftover: Bytes::new(), end: None };
    let mut seq = 0u64;
    loop {
        let step = tokio::select! {
            biased;
            () = &mut cancelled => return,
            step = reader.next() => step,
        };
        seq += 1;
        let (line, last) = match step {
            Step::Data(bytes) => (body_delta_line(&id_json, seq, &BASE64.encode(&bytes), false, "null"), false),
            Step::Done => (body_delta_line(&id_json, seq, "", true, "null"), true),
            Step::Failed(error) => {
                tracing::debug!(request_id = ticket.request_id(), "streamed http body failed: {error}");
                (body_delta_line(&id_json, seq, "", true, &json_string(&error)), true)
            }
        };
        tokio::select! {
            biased;
            () = &mut cancelled => return,
            sent = outbound.send(line) => if sent.is_err() { return },
        }
        if last {
            return;
        }
    }
}
