//! Buffers the detectors' parallel tasks share.

use std::sync::Mutex;

/// Buffers shared by the rayon tasks of all calls (workspaces, summed-area tables): a task
/// takes one (or makes one when all are busy) and puts it back, so steady-state detection
/// allocates only its result lists and a few per-call index lists.
#[derive(Debug)]
pub(crate) struct Pool<T>(Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<T: Default> Pool<T> {
    /// Runs `f` on a free item (a new one when all are taken), then gives the item back.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A poisoned lock only means another task panicked while pushing or popping; the
        // vector itself is still valid.
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut item = taken.unwrap_or_default();
        let result = f(&mut item);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(item);
        result
    }
}
