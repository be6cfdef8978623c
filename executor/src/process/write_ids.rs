//! The recent `writeId`s of a process, so that a retried `process/write` is not written twice.

use std::collections::{HashSet, VecDeque};

/// How many recent write ids are remembered per process for deduplication.
const WRITE_ID_WINDOW: usize = 65_536;

#[derive(Default)]
pub(super) struct WriteIds {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl WriteIds {
    /// Records `id`; false when it was already used.
    pub(super) fn insert(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == WRITE_ID_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}
