//! The decision log of `tokenbridge http`: lines go to standard
//! error from a thread of their own, a batch per write, so a slow reader of stderr (a container's
//! log pipe backing up) never stalls the threads that answer requests. A server more than
//! [`QUEUE`] lines ahead of its log drops lines, counts them, and says how many once it catches
//! up: a missing log line is better than a gateway waiting on an authorizer's log pipe.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Lines held for the writer at most.
const QUEUE: usize = 16 * 1024;

/// Bytes written at most per write.
const BATCH: usize = 64 * 1024;

/// A handle on the writer: its sink for the engine, and a way to wait for what is queued.
#[derive(Clone)]
pub struct LogWriter {
    lines: SyncSender<String>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Lines handed over and not yet written.
    queued: AtomicUsize,
    /// Lines dropped since the last report of them.
    dropped: AtomicU64,
}

impl LogWriter {
    /// Starts the writer thread.
    pub fn start() -> std::io::Result<Self> {
        let (lines, received) = sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let writing = counts.clone();
        std::thread::Builder::new().name("log".into()).spawn(move || write_all(&received, &writing))?;
        Ok(Self { lines, counts })
    }

    /// Queues one line; never waits.
    pub fn log(&self, line: &str) {
        self.counts.queued.fetch_add(1, Ordering::SeqCst);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.lines.try_send(line.to_owned()) {
            self.counts.queued.fetch_sub(1, Ordering::SeqCst);
            self.counts.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits until every queued line is written, at most `patience`: before the process exits.
    pub fn drain(&self, patience: Duration) {
        let until = Instant::now() + patience;
        while self.counts.queued.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn write_all(lines: &Receiver<String>, counts: &Counts) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = lines.recv() {
        let mut taken = 1;
        batch.clear();
        push(&mut batch, &first);
        while batch.len() < BATCH
            && let Ok(line) = lines.try_recv()
        {
            push(&mut batch, &line);
            taken += 1;
        }
        let dropped = counts.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let note = serde_json::json!({"level": "warn", "event": "log_lines_dropped", "count": dropped,
                "detail": "the log's reader fell behind; decisions went on"});
            push(&mut batch, &note.to_string());
        }
        // A failed log write must not stop the server.
        let _ = std::io::stderr().lock().write_all(&batch);
        counts.queued.fetch_sub(taken, Ordering::SeqCst);
    }
}

fn push(batch: &mut Vec<u8>, line: &str) {
    batch.extend_from_slice(line.as_bytes());
    batch.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_lines_and_counts_them_instead_of_waiting() {
        // A writer that is never started: nothing is taken from the queue.
        let (lines, _received) = sync_channel(2);
        let log = LogWriter { lines, counts: Arc::new(Counts::default()) };
        let started = Instant::now();
        for _ in 0..5 {
            log.log("{}");
        }
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(log.counts.dropped.load(Ordering::SeqCst), 3);
        assert_eq!(log.counts.queued.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn queued_lines_are_written_and_drained() {
        let log = LogWriter::start().unwrap();
        for _ in 0..3 {
            log.log(r#"{"event":"log_writer_test"}"#);
        }
        log.drain(Duration::from_secs(5));
        assert_eq!(log.counts.queued.load(Ordering::SeqCst), 0);
    }
}
