//! Locks that survive a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// A poisoned lock only means another thread panicked mid-update of plain data; the data is
/// still consistent enough to read, and an authorizer must keep answering.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
