//! Locking shared by every module.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data if a panic poisoned it: every mutex here guards plain
/// tables and logs that stay consistent, and the server must keep serving.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
