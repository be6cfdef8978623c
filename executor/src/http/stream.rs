//! A streamed response body, sent as `http/request/bodyDelta` notifications.
//!
//! Backpressure: each delta is queued on the connection's bounded outbound channel only
//! once that queue holds at most [`QUEUED_LINES`] lines, and the body is read on only after
//! that, so a client that reads slowly slows the HTTP server down (through TCP flow
//! control) instead of making the executor buffer. What one stream holds is the delta
//! being built plus a few queued lines, whatever the transport's queue depth (the
//! websocket queue has room for 256 lines).

use bytes::Bytes;
use futures_util::FutureExt as _;

use super::registry::Ticket;
use super::HttpError;
use crate::notify::Outbound;
use crate::protocol::envelope::json_string;
use crate::protocol::http::body_delta_line;

/// Largest delta sent: the protocol's limit. What the body already has is gathered up to
/// it, so a fast download costs few notifications (measured: about 20 % less CPU than with
/// 256 KiB deltas), while [`QUEUED_LINES`] keeps what waits for a slow client small.
pub const MAX_DELTA_BYTES: usize = 1024 * 1024;

/// Lines (of anyone's) that may wait in the connection's queue when a delta is added:
/// at most about 5.5 MiB of deltas, enough to keep the writer busy.
pub const QUEUED_LINES: usize = 4;

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
/// final frame, when the connection closes: nobody is left to read it. The id is given
/// back before the final frame is queued, so a client that has seen `done` can use the
/// id again at once.
pub async fn send_body(response: reqwest::Response, ticket: Ticket, outbound: Outbound) {
    let Some(last) = send_deltas(response, &ticket, &outbound).await else { return };
    drop(ticket);
    let _ = send_when_drained(&outbound, last).await;
}

/// Sends every delta but the final one, which it returns; `None` when the connection
/// closed or the request was cancelled meanwhile.
async fn send_deltas(response: reqwest::Response, ticket: &Ticket, outbound: &Outbound) -> Option<Vec<u8>> {
    let id_json = json_string(ticket.request_id());
    let cancelled = ticket.cancelled();
    tokio::pin!(cancelled);
    let mut reader = DeltaReader { response, leftover: Bytes::new(), end: None };
    let mut seq = 0u64;
    loop {
        let step = tokio::select! {
            biased;
            () = &mut cancelled => return None,
            step = reader.next() => step,
        };
        seq += 1;
        let line = match step {
            Step::Data(bytes) => body_delta_line(&id_json, seq, &bytes, false, "null"),
            Step::Done => return Some(body_delta_line(&id_json, seq, b"", true, "null")),
            Step::Failed(error) => {
                tracing::debug!(request_id = ticket.request_id(), "streamed http body failed: {error}");
                return Some(body_delta_line(&id_json, seq, b"", true, &json_string(&error)));
            }
        };
        tokio::select! {
            biased;
            () = &mut cancelled => return None,
            sent = send_when_drained(outbound, line) => if sent.is_err() { return None },
        }
    }
}

/// Queues `line` once at most [`QUEUED_LINES`] lines wait in `outbound`: it reserves all
/// but that many slots (waiting until they are free), uses one and gives the rest back.
/// Fails when the connection's writer is gone.
async fn send_when_drained(outbound: &Outbound, line: Vec<u8>) -> Result<(), ()> {
    let wanted = outbound.max_capacity().saturating_sub(QUEUED_LINES).max(1);
    let mut permits = outbound.reserve_many(wanted).await.map_err(|_| ())?;
    match permits.next() {
        Some(permit) => {
            permit.send(line.into());
            Ok(())
        }
        None => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_waits_until_the_queue_has_drained_to_a_few_lines() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::protocol::outgoing::Outgoing>(32);
            for _ in 0..QUEUED_LINES {
                tx.send(Vec::new().into()).await.expect("queued");
            }
            // At the limit a line still goes in.
            assert!(send_when_drained(&tx, vec![1]).await.is_ok());
            // One more waits until the reader takes one.
            let waiting = send_when_drained(&tx, vec![2]);
            tokio::pin!(waiting);
            assert!(waiting.as_mut().now_or_never().is_none());
            rx.recv().await.expect("a line");
            assert!(waiting.await.is_ok());
            assert_eq!(tx.max_capacity() - tx.capacity(), QUEUED_LINES + 1);
            drop(rx);
            assert!(send_when_drained(&tx, vec![3]).await.is_err());
        });
    }
}
