//! The filesystem service. Without a sandbox (or with a profile that asks for none) the
//! executor performs an operation itself, on a blocking thread; under a restricted profile
//! a sandboxed helper does (see `sandboxed`). File handles belong to the session. The
//! `fs/*` handlers that decode and gate requests are in `crate::rpc`.

mod error;
pub mod sandboxed;
pub mod watch;

pub use error::FsServiceError;

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use fs_helper::ops::{self, Base64Blocks, Operation, READ_FILE_RESULT_HEAD, READ_FILE_RESULT_TAIL};
use fs_helper::protocol::OpenResult;
use fs_helper::FsError;
use serde_json::Value;

use crate::limits::LimitError;
use crate::protocol::envelope::{finish_response, response_head, Answer};
use crate::protocol::outgoing::{LineWriter, StreamedLine};
use crate::protocol::RequestId;

/// Open files of a session, by client-chosen handle id; at most `max` of them, counting
/// the opens under way.
pub struct FileHandles {
    table: Mutex<HandleTable>,
    max: usize,
}

#[derive(Default)]
struct HandleTable {
    open: HashMap<String, Arc<File>>,
    /// `fs/open` requests that passed [`FileHandles::reserve`] and have not finished.
    opening: usize,
}

/// A place for one handle, taken before the file is opened (or truncated) so that a
/// refusal comes first; given back when dropped unless the file was registered.
pub struct Reservation<'a> {
    handles: &'a FileHandles,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.handles.lock().opening -= 1;
    }
}

impl FileHandles {
    pub fn new(max: usize) -> Self {
        FileHandles { table: Mutex::default(), max }
    }

    fn lock(&self) -> MutexGuard<'_, HandleTable> {
        crate::sync::lock(&self.table)
    }

    pub fn get(&self, id: &str) -> Result<Arc<File>, FsServiceError> {
        self.lock().open.get(id).cloned().ok_or_else(|| FsServiceError::UnknownHandle(id.to_owned()))
    }

    /// Refuses an id that is live, or a handle beyond the cap, before anything is opened.
    pub fn reserve(&self, id: &str) -> Result<Reservation<'_>, FsServiceError> {
        let mut table = self.lock();
        if table.open.contains_key(id) {
            return Err(FsServiceError::HandleExists(id.to_owned()));
        }
        if table.open.len() + table.opening >= self.max {
            return Err(LimitError::FsHandles { cap: self.max }.into());
        }
        table.opening += 1;
        Ok(Reservation { handles: self })
    }

    /// Registers an opened file; checked again because another request may have taken
    /// the id while the file was being opened.
    pub fn insert(&self, reservation: Reservation<'_>, id: String, file: File) -> Result<Value, FsServiceError> {
        let mut table = self.lock();
        if table.open.contains_key(&id) {
            return Err(FsServiceError::HandleExists(id));
        }
        table.open.insert(id.clone(), Arc::new(file));
        drop(table);
        drop(reservation);
        serde_json::to_value(OpenResult { handle_id: id }).map_err(|e| FsServiceError::Internal(e.to_string()))
    }
}

impl FileHandles {
    /// Forgets handle `id` (the file closes when its last reader is done).
    pub fn remove(&self, id: &str) {
        self.lock().open.remove(id);
    }
}

pub fn is_rpc_method(op: Operation) -> bool {
    !matches!(op, Operation::LoadDiscoveries | Operation::DiscoverV1)
}

/// The answer to an `fs/readFile` of the file `open` yields, encoded straight into the
/// response line. A file that ends within its first block is answered with one line (a
/// failure up to there is an ordinary error answer); a longer one is streamed: the
/// first block leaves at once and the rest follows block by block from a blocking
/// thread, at most [`crate::protocol::outgoing::STREAM_PIECES`] blocks ahead of the
/// client. A read that fails after that cuts the line short (see `protocol::outgoing`).
pub async fn read_file_answer(
    id: RequestId,
    open: impl FnOnce() -> Result<ops::FileToRead, FsError> + Send + 'static,
) -> Result<Answer, FsServiceError> {
    blocking(move || {
        let mut blocks = open()?.blocks();
        let mut line = response_head(&id);
        line.reserve(READ_FILE_RESULT_HEAD.len() + Base64Blocks::ENCODED_BLOCK_LEN + READ_FILE_RESULT_TAIL.len() + 1);
        line.extend_from_slice(READ_FILE_RESULT_HEAD);
        if !blocks.append_next(&mut line)? {
            finish_read_file(&mut line);
            return Ok(Answer::Line(line));
        }
        let (streamed, writer) = StreamedLine::channel();
        // The channel is new and empty: the first piece fits.
        if writer.write_now(line).is_ok() {
            tokio::task::spawn_blocking(move || stream_rest(blocks, writer, id));
        }
        Ok(Answer::Streamed(streamed))
    })
    .await
}

fn finish_read_file(line: &mut Vec<u8>) {
    line.extend_from_slice(READ_FILE_RESULT_TAIL);
    finish_response(line);
}

/// Sends the remaining blocks, then the line's end. Returns early when the connection
/// is gone; a read error drops `writer` unfinished, which cuts the line short.
fn stream_rest(mut blocks: Base64Blocks, writer: LineWriter, id: RequestId) {
    loop {
        let mut piece = Vec::with_capacity(Base64Blocks::ENCODED_BLOCK_LEN + READ_FILE_RESULT_TAIL.len() + 1);
        let more = match blocks.append_next(&mut piece) {
            Ok(more) => more,
            Err(e) => {
                tracing::error!(request = ?id, "fs/readFile failed after part of its answer was sent: {e}");
                return;
            }
        };
        if !more {
            finish_read_file(&mut piece);
        }
        if writer.blocking_write(piece).is_err() {
            return;
        }
        if !more {
            let _ = writer.blocking_finish();
            return;
        }
    }
}

/// The answer to any other direct operation, its result written straight into the
/// response line (see `Decoded::append_result_json`).
pub async fn result_answer(id: RequestId, op: Operation, params: Value) -> Result<Answer, FsServiceError> {
    blocking(move || {
        let decoded = ops::decode_op(op, params)?;
        let mut line = response_head(&id);
        decoded.append_result_json(&mut line)?;
        finish_response(&mut line);
        Ok(Answer::Line(line))
    })
    .await
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, FsError> + Send + 'static) -> Result<T, FsServiceError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(FsServiceError::from),
        // On to the request's guard (rpc::dispatch), which reports it as the bug it is.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(FsServiceError::Internal(format!("filesystem operation failed: {e}"))),
    }
}
