//! The HTTP/1.1 server under tokenbridge's HTTP-speaking adapters (`tokenbridge http`, the Fn
//! socket of `tokenbridge oci`): hyper on tokio, over TCP or a Unix socket.
//!
//! - Connections are cheap tasks, so a connection that says nothing holds no worker; past
//!   [`Limits::max_connections`], a new connection is answered at once with the adapter's
//!   [`Refusal::Overloaded`] (a 503 with `Retry-After` for `tokenbridge http`) and closed.
//! - Every request's framing is read strictly before hyper sees it ([`framing`]); a request a
//!   lenient reader could frame a second way is refused with the adapter's answer and the
//!   connection closed.
//! - Decisions run on tokio's blocking pool, at most [`Limits::workers`] at once: the core stays
//!   synchronous.
//! - SIGTERM or SIGINT: stop accepting, let requests in flight finish within [`Limits::grace`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use tokenbridge_serve::{Handler, Limits, Listener, Refusal, Response};
//!
//! struct Hello;
//! impl Handler for Hello {
//!     fn handle(&self, _head: &http::request::Parts, _body: &[u8]) -> Response {
//!         http::Response::new(b"hello".to_vec())
//!     }
//!     fn refuse(&self, _why: &Refusal) -> Response {
//!         let mut answer = http::Response::new(Vec::new());
//!         *answer.status_mut() = http::StatusCode::BAD_REQUEST;
//!         answer
//!     }
//! }
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080").unwrap();
//! tokenbridge_serve::serve(Listener::Tcp(listener), Arc::new(Hello), Limits::default()).unwrap();
//! ```

#![forbid(unsafe_code)]

/// Connections the kernel queues before they are accepted (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

mod conn;
pub mod framing;
mod guard;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

/// An answer: status, headers and a complete body.
pub type Response = http::Response<Vec<u8>>;

/// Why a request got no answer from [`Handler::handle`]; the adapter words the answer. After
/// all of these the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The framing has more than one reading, or none.
    Malformed(&'static str),
    /// The head is over [`Limits::max_head`] bytes or [`Limits::max_headers`] fields.
    HeadTooLarge,
    /// The body is over [`Limits::max_body`] bytes.
    BodyTooLarge,
    /// [`Limits::max_connections`] connections are open already.
    Overloaded,
    /// The answer took longer than [`Limits::deadline`].
    Deadline,
    /// The handler failed (a panic, or the blocking pool is gone).
    Failed,
}

/// What an adapter serves. `handle` runs on the blocking pool; `refuse` on the connection's
/// task, even when the pool is busy: keep it cheap and free of blocking I/O.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request whose framing was found sound. Runs on the blocking pool: it may wait.
    fn handle(&self, head: &http::request::Parts, body: &[u8]) -> Response;
    /// Answers at once, if it can without waiting for anything (a decision from the caches):
    /// on the connection's own task, before [`Handler::handle`] would be handed the request on
    /// the blocking pool. `None` (the default): hand it over.
    fn answer_now(&self, _head: &http::request::Parts, _body: &[u8]) -> Option<Response> {
        None
    }
    /// Answers a request that [`Handler::handle`] will not see.
    fn refuse(&self, why: &Refusal) -> Response;
}

/// Limits of the server; see the defaults for their values.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; the ones past it are refused ([`Refusal::Overloaded`]).
    pub max_connections: usize,
    /// Decisions running at once (the blocking pool's size).
    pub workers: usize,
    /// A connection with no request under way is closed after this (hyper's header read
    /// timeout: it runs from the end of the previous answer, or from the connection's start).
    /// `None` for peers that keep connections idle and do not retry a call on a closed one.
    pub idle_timeout: Option<Duration>,
    /// A request must arrive whole within this of its first byte, however slowly it trickles.
    pub request_timeout: Duration,
    /// An answer must be ready within this of the request's arrival ([`Refusal::Deadline`]).
    pub deadline: Duration,
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
    /// An oversized body up to this size is read and dropped before the refusal, so that the
    /// peer, still writing, reads the answer rather than a reset connection.
    pub drain_limit: u64,
    /// After SIGTERM, how long requests in flight may take.
    pub grace: Duration,
    /// Threads that wait on connections and answer cached decisions; `None`: one per core, at
    /// most 4. One suits a single peer connection (the Fn agent's): its request never crosses
    /// to another thread and back.
    pub io_threads: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            workers: 32,
            idle_timeout: Some(Duration::from_secs(15)),
            request_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            max_head: 64 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
            drain_limit: 16 * 1024 * 1024,
            grace: Duration::from_secs(10),
            io_threads: None,
        }
    }
}

impl Limits {
    fn frame_limits(&self) -> framing::FrameLimits {
        framing::FrameLimits {
            max_head: self.max_head,
            max_headers: self.max_headers,
            max_body: self.max_body,
            drain_limit: self.drain_limit,
        }
    }
}

/// Where to serve.
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Serves until SIGTERM or SIGINT, then lets the requests in flight finish (within
/// [`Limits::grace`]) and returns.
pub fn serve(listener: Listener, handler: Arc<dyn Handler>, limits: Limits) -> io::Result<()> {
    let runtime = runtime(&limits)?;
    let result = runtime.block_on(async {
        let stop = signals()?;
        run(listener, handler, limits, stop).await
    });
    // A decision still running past the grace period is not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

/// Serves until `stop` completes; otherwise as [`serve`].
pub fn serve_until(
    listener: Listener,
    handler: Arc<dyn Handler>,
    limits: Limits,
    stop: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let runtime = runtime(&limits)?;
    let result = runtime.block_on(run(listener, handler, limits, stop));
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

fn runtime(limits: &Limits) -> io::Result<tokio::runtime::Runtime> {
    // Connections only wait and copy bytes; the decisions have threads of their own.
    let cores = || std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(limits.io_threads.unwrap_or_else(cores).max(1))
        .max_blocking_threads(limits.workers.max(1))
        .enable_io()
        .enable_time()
        .build()
}

fn signals() -> io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// What every connection's task shares.
struct Shared {
    handler: Arc<dyn Handler>,
    limits: Limits,
    /// Set when stopping, for the guards to end idle connections.
    stopping: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
}

/// What the process's servers are doing now, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Connections accepted and not yet closed (those refused at once are not counted).
    pub connections_open: usize,
    /// Requests whose answer is being made.
    pub requests_in_flight: usize,
}

static CONNECTIONS_OPEN: AtomicUsize = AtomicUsize::new(0);
static REQUESTS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The load of every server of this process, now.
pub fn load() -> Load {
    Load {
        connections_open: CONNECTIONS_OPEN.load(Ordering::Relaxed),
        requests_in_flight: REQUESTS_IN_FLIGHT.load(Ordering::Relaxed),
    }
}

/// Counts one of something while it lives: a count that an early return or a panic cannot leave
/// too high.
pub(crate) struct Counted(&'static AtomicUsize);

impl Counted {
    pub(crate) fn connection() -> Self {
        Self::on(&CONNECTIONS_OPEN)
    }

    pub(crate) fn request() -> Self {
        Self::on(&REQUESTS_IN_FLIGHT)
    }

    fn on(count: &'static AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections refused at once may be this many at a time; past it they are just closed.
const MAX_REFUSING: usize = 64;

async fn run(
    listener: Listener,
    handler: Arc<dyn Handler>,
    limits: Limits,
    stop: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let listener = Accept::new(listener)?;
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let open = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let (stopped, stop_seen) = watch::channel(false);
    let shared = Arc::new(Shared { handler, limits, stopping: Arc::new(AtomicBool::new(false)), stop: stop_seen });
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let Ok(stream) = accepted else {
            // Out of file descriptors, typically: give connections in flight time to end
            // rather than spin on accept.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let open = Counted::connection();
                    stream.serve(&shared).await;
                    drop(open);
                    drop(permit);
                });
            }
            Err(_) => {
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    let answer = shared.handler.refuse(&Refusal::Overloaded);
                    tokio::spawn(async move {
                        stream.refuse(answer).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    shared.stopping.store(true, Ordering::SeqCst);
    let _ = stopped.send(true);
    // Every connection holds a permit until it ends.
    let _ = tokio::time::timeout(shared.limits.grace, open.acquire_many(max as u32)).await;
    Ok(())
}

enum Accept {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Accept {
    fn new(listener: Listener) -> io::Result<Self> {
        Ok(match listener {
            Listener::Tcp(l) => {
                // The standard library listens with a backlog of 128: a burst of new connections
                // from a gateway would see SYNs dropped and retried a second later.
                socket2::SockRef::from(&l).listen(LISTEN_BACKLOG)?;
                l.set_nonblocking(true)?;
                Accept::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            Listener::Unix(l) => {
                l.set_nonblocking(true)?;
                Accept::Unix(tokio::net::UnixListener::from_std(l)?)
            }
        })
    }

    async fn accept(&self) -> io::Result<Stream> {
        Ok(match self {
            Accept::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
            Accept::Unix(l) => Stream::Unix(l.accept().await?.0),
        })
    }
}

impl Stream {
    async fn serve(self, shared: &Shared) {
        match self {
            Stream::Tcp(s) => conn::serve(s, shared).await,
            Stream::Unix(s) => conn::serve(s, shared).await,
        }
    }

    async fn refuse(self, answer: Response) {
        match self {
            Stream::Tcp(s) => conn::refuse(s, answer).await,
            Stream::Unix(s) => conn::refuse(s, answer).await,
        }
    }
}
