//! One connection: hyper over the [`Guard`], the decisions on the blocking pool, and the answer
//! to a refused request written once hyper is done with the connection.

use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::guard::Guard;
use crate::{Refusal, Response, Shared};

/// After a refusal, how long the peer's remaining bytes are read and dropped before closing:
/// closing with bytes unread resets the connection, and the peer may lose the answer with it.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// How long writing a refusal may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve<S>(stream: S, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let guard = Guard::new(stream, limits.frame_limits(), limits.request_timeout, shared.stopping.clone());
    let handler = shared.handler.clone();
    let deadline = limits.deadline;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let handler = handler.clone();
        // Boxed: hyper wants an `Unpin` future to hand the connection back afterwards.
        Box::pin(async move {
            Ok::<_, Infallible>(answer(handler, request, deadline).await.map(|b| Full::new(Bytes::from(b))))
        })
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        // The guard ends the reading side to stop a connection; what was asked before is still
        // answered.
        .half_close(true)
        .title_case_headers(true)
        .max_headers(limits.max_headers + 1)
        .max_buf_size((limits.max_head + limits.max_body).max(8192) + 1024);
    let mut connection = builder.serve_connection(TokioIo::new(guard), service);
    let mut stop = shared.stop.clone();
    let mut stopped = std::pin::pin!(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    });
    let mut stopping = false;
    let _ = poll_fn(|cx| {
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            // Answers still to come say `Connection: close`.
            Pin::new(&mut connection).graceful_shutdown();
        }
        connection.poll_without_shutdown(cx)
    })
    .await;
    let (refusal, stream) = connection.into_parts().io.into_inner().into_parts();
    match refusal {
        Some(refusal) => refuse(stream, shared.handler.refuse(&refusal)).await,
        None => close(stream).await,
    }
}

async fn answer(handler: Arc<dyn crate::Handler>, request: hyper::Request<Incoming>, deadline: Duration) -> Response {
    let _in_flight = crate::Counted::request();
    let decided = tokio::time::timeout(deadline, async {
        let (head, body) = request.into_parts();
        // The guard let through only a body within the limit.
        let body = body.collect().await.map_err(|_| Refusal::Failed)?.to_bytes();
        // A cached decision costs microseconds: handing it to the pool and back would cost more.
        if let Some(answer) = handler.answer_now(&head, &body) {
            return Ok(answer);
        }
        let decider = handler.clone();
        tokio::task::spawn_blocking(move || decider.handle(&head, &body)).await.map_err(|_| Refusal::Failed)
    })
    .await;
    let refusal = match decided {
        Ok(Ok(answer)) => return answer,
        Ok(Err(refusal)) => refusal,
        Err(_) => Refusal::Deadline,
    };
    // Not on the blocking pool: it may be what is too busy to answer in time.
    let mut answer = handler.refuse(&refusal);
    answer.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    answer
}

/// Writes `answer` with `Connection: close`, then closes.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: Response) {
    let bytes = encode(&answer);
    if tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    })
    .await
    .is_ok_and(|written| written.is_ok())
    {
        close(stream).await;
    }
}

/// Ends the writing side, then drops what the peer still sends until it closes too.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut scratch = vec![0u8; 16 * 1024];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

/// An HTTP/1.1 answer that closes its connection, framed by its length.
fn encode(answer: &Response) -> Vec<u8> {
    let status = answer.status();
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("Status"));
    let mut bytes = Vec::with_capacity(256 + answer.body().len());
    for (name, value) in answer.headers() {
        if name == http::header::CONNECTION || name == http::header::CONTENT_LENGTH {
            continue;
        }
        head.push_str(&title_case(name.as_str()));
        head.push_str(": ");
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        head.clear();
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", answer.body().len()));
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(answer.body());
    bytes
}

fn title_case(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let c = if upper { c.to_ascii_uppercase() } else { c };
            upper = c == '-';
            c
        })
        .collect()
}
