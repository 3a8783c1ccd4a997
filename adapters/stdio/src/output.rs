//! Answers on their way out. They are held together while more are being made, so a pipe full of
//! requests costs one write per batch; written before any read that could wait, so a client that
//! sends one request and waits gets its answer at once; and written by a helper thread once they
//! have waited [`LINGER`], so an answer never waits for the next request's IdP call.

use std::io::{self, BufWriter, Write};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Longest an answer waits in the buffer while the next request is being decided.
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// How many answer bytes are held at most.
const BUFFER_BYTES: usize = 64 * 1024;

pub(crate) struct Output<W: Write> {
    state: Mutex<State<W>>,
    /// A helper runs [`Output::write_lingering`].
    helped: bool,
    /// Wakes the helper when an answer is waiting, and when the output is finished.
    waiting: Condvar,
}

struct State<W: Write> {
    writer: BufWriter<W>,
    /// Answers are in the buffer that no flush has written yet.
    unflushed: bool,
    /// A failed write of the helper's, for the next caller to report.
    failed: Option<io::Error>,
    done: bool,
}

impl<W: Write> Output<W> {
    /// An output for `writer`; `helped` when a helper thread will run [`Output::write_lingering`].
    pub(crate) fn new(writer: W, helped: bool) -> Self {
        let writer = BufWriter::with_capacity(BUFFER_BYTES, writer);
        let state = Mutex::new(State { writer, unflushed: false, failed: None, done: false });
        Self { state, helped, waiting: Condvar::new() }
    }

    fn state(&self) -> MutexGuard<'_, State<W>> {
        // A panic while holding the lock leaves at worst a partial line behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Buffers one answer, written by `write`.
    pub(crate) fn answer(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let mut state = self.state();
        if let Some(e) = state.failed.take() {
            return Err(e);
        }
        write(&mut state.writer)?;
        if !state.unflushed {
            state.unflushed = true;
            if self.helped {
                self.waiting.notify_one();
            }
        }
        Ok(())
    }

    /// Writes every buffered answer now.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut state = self.state();
        if let Some(e) = state.failed.take() {
            return Err(e);
        }
        state.unflushed = false;
        state.writer.flush()
    }

    /// Writes what is left, and lets the helper go.
    pub(crate) fn finish(&self) -> io::Result<()> {
        let result = self.flush();
        self.state().done = true;
        self.waiting.notify_one();
        result
    }

    /// The helper's loop, until [`Output::finish`]: an answer left in the buffer for
    /// [`LINGER`] is written.
    pub(crate) fn write_lingering(&self) {
        let mut state = self.state();
        loop {
            while !state.unflushed && !state.done {
                state = self.waiting.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.done {
                return;
            }
            drop(state);
            std::thread::sleep(LINGER);
            state = self.state();
            if state.unflushed {
                state.unflushed = false;
                if let Err(e) = state.writer.flush() {
                    state.failed = Some(e);
                }
            }
        }
    }
}
