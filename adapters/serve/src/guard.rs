//! The connection's reading side as hyper sees it: bytes are handed on one whole request at a
//! time, and only once [`Scanner`] found that request to have a single reading. A refused
//! request, one that does not arrive whole in time, or the server stopping between requests,
//! reads as the end of the connection, so hyper finishes what it was answering and stops; the
//! refusal is then answered by [`crate::conn`], with a status the adapter chooses.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::Refusal;
use crate::framing::{FrameLimits, Scan, Scanner};

/// Bytes read from the peer at a time.
const READ_SIZE: usize = 16 * 1024;

/// More than this left allocated between requests is given back: thousands of connections sit
/// idle between requests, and each keeps its buffer.
const IDLE_BUFFER: usize = 4 * 1024;

thread_local! {
    /// Where one read lands before the bytes read are appended to the connection's buffer:
    /// zeroed once per thread, not once per read, and not held by idle connections.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_SIZE]);
}

pub struct Guard<S> {
    inner: S,
    /// Bytes read and not yet handed to hyper; the first `ready` of them are a checked request.
    buf: Vec<u8>,
    ready: usize,
    scanner: Scanner,
    /// The request under way must be whole by then.
    deadline: Option<Pin<Box<Sleep>>>,
    /// An answer the peer stopped taking must be taken again by then: a client that never
    /// reads would otherwise hold its connection, past every other limit.
    write_stall: Option<Pin<Box<Sleep>>>,
    request_timeout: Duration,
    stopping: Arc<AtomicBool>,
    /// Why the connection ends, when hyper is told it has; `None` there is a silent end.
    ended: Option<Option<Refusal>>,
}

impl<S> Guard<S> {
    pub fn new(inner: S, limits: FrameLimits, request_timeout: Duration, stopping: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            ready: 0,
            scanner: Scanner::new(limits),
            deadline: None,
            write_stall: None,
            request_timeout,
            stopping,
            ended: None,
        }
    }

    /// The refusal to answer, if the reading side ended on one, and the connection.
    pub fn into_parts(self) -> (Option<Refusal>, S) {
        (self.ended.flatten(), self.inner)
    }
}

impl<S: AsyncRead + Unpin> Guard<S> {
    /// Reads until a checked request is ready or the reading side ends.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if self.ready > 0 || self.ended.is_some() {
                return Poll::Ready(Ok(()));
            }
            match self.scanner.scan(&mut self.buf) {
                Scan::Complete(n) => {
                    self.ready = n;
                    self.scanner.reset();
                    self.deadline = None;
                    continue;
                }
                Scan::Refused(refusal) => {
                    self.ended = Some(Some(refusal));
                    continue;
                }
                Scan::Incomplete => {}
            }
            let started = self.scanner.started(&self.buf);
            if !started && self.stopping.load(Ordering::SeqCst) {
                // Between requests while stopping: nothing is lost by closing now.
                self.ended = Some(None);
                continue;
            }
            if started && self.deadline.is_none() {
                self.deadline = Some(Box::pin(tokio::time::sleep(self.request_timeout)));
            }
            let (inner, buf) = (&mut self.inner, &mut self.buf);
            let (polled, n) = SCRATCH.with_borrow_mut(|scratch| {
                let mut read = ReadBuf::new(&mut scratch[..]);
                let polled = Pin::new(inner).poll_read(cx, &mut read);
                buf.extend_from_slice(read.filled());
                (polled, read.filled().len())
            });
            match polled {
                Poll::Ready(Ok(())) if n == 0 => {
                    // The peer is done sending; part of a request is no request.
                    self.ended = Some(None);
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if let Some(deadline) = self.deadline.as_mut() {
                        ready!(deadline.as_mut().poll(cx));
                        // The request did not arrive whole in time, however slowly it trickled.
                        self.ended = Some(None);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        ready!(this.fill(cx))?;
        let n = this.ready.min(out.remaining());
        out.put_slice(&this.buf[..n]);
        this.buf.drain(..n);
        if this.buf.is_empty() && this.buf.capacity() > IDLE_BUFFER {
            this.buf = Vec::new();
        }
        this.ready -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S> Guard<S> {
    /// A write that made no progress for the request timeout fails, ending the connection.
    fn unless_stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.write_stall = None;
            return polled;
        }
        let timeout = self.request_timeout;
        let stall = self.write_stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stall.as_mut().poll(cx));
        Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped reading")))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, bytes);
        self.unless_stalled(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.unless_stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.unless_stalled(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
