//! Just enough HTTP/1.1 for the Fn agent's socket (and the HTTP adapter): requests with
//! Content-Length or chunked bodies over a kept-alive connection, and responses whose status we
//! fully control (a library server would answer some malformed requests with a 400 of its own,
//! which makes the Fn agent kill the container).

use std::io::{self, BufRead, Read, Write};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// An oversized body up to this size is read and dropped, so the connection stays usable and
/// the peer, still writing, gets an answer rather than a broken pipe.
pub const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `Connection: close` was asked for.
    pub close: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read. After any of these but `Closed`, the connection's framing is
/// lost: answer once and close it.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    Malformed(&'static str),
    /// The head or body exceeds its limit. `drained`: the body was read to its end, so the
    /// connection can carry the next request.
    TooLarge {
        drained: bool,
    },
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one request; its body at most `max_body` bytes.
pub fn read_request(input: &mut impl BufRead, max_body: usize) -> Result<Request, ReadError> {
    let head = read_head(input)?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ReadError::Malformed("incomplete request head")),
        Err(_) => return Err(ReadError::Malformed("invalid request head")),
    }
    let method = parsed.method.unwrap_or_default().to_string();
    let path = parsed.path.unwrap_or_default().to_string();
    let http10 = parsed.version == Some(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let all = |name: &'static str| headers.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str());
    // Framing must be unambiguous (RFC 9112 §6.3): a message that could be read two ways is
    // refused rather than guessed at, so nothing can be smuggled past it.
    let lengths: Vec<&str> = all("content-length").collect();
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err(ReadError::Malformed("conflicting Content-Length headers"));
    }
    let codings: Vec<String> =
        all("transfer-encoding").flat_map(|v| v.split(',')).map(|c| c.trim().to_ascii_lowercase()).collect();
    let chunked = match codings.as_slice() {
        [] => false,
        [only] if only == "chunked" => true,
        _ => return Err(ReadError::Malformed("unsupported Transfer-Encoding")),
    };
    if chunked && !lengths.is_empty() {
        return Err(ReadError::Malformed("both Transfer-Encoding and Content-Length"));
    }
    let body = if chunked {
        read_chunked(input, max_body)?
    } else {
        match get("content-length").map(str::parse::<usize>) {
            None => Vec::new(),
            Some(Ok(n)) if n <= max_body => {
                let mut body = vec![0; n];
                input.read_exact(&mut body)?;
                body
            }
            Some(Ok(n)) if n as u64 <= DRAIN_LIMIT => {
                io::copy(&mut input.by_ref().take(n as u64), &mut io::sink())?;
                return Err(ReadError::TooLarge { drained: true });
            }
            Some(Ok(_)) => return Err(ReadError::TooLarge { drained: false }),
            Some(Err(_)) => return Err(ReadError::Malformed("invalid Content-Length")),
        }
    };
    let connection = get("connection").map(str::to_ascii_lowercase);
    let close = connection.as_deref() == Some("close") || (http10 && connection.as_deref() != Some("keep-alive"));
    Ok(Request { method, path, headers, body, close })
}

/// Bytes up to and including the blank line that ends the head.
fn read_head(input: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = input.by_ref().take((MAX_HEAD + 1 - head.len()) as u64).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if before == 0 {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Malformed("connection closed mid-head"))
            };
        }
        if head.len() > MAX_HEAD {
            return Err(ReadError::TooLarge { drained: false });
        }
        // Blank lines before a request are allowed (RFC 9112 §2.2).
        if head == b"\r\n" || head == b"\n" {
            head.clear();
            continue;
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(head);
        }
    }
}

fn read_chunked(input: &mut impl BufRead, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut total: u64 = 0;
    loop {
        let line = read_line(input)?;
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((_, size))) => size,
            _ => return Err(ReadError::Malformed("invalid chunk size")),
        };
        if size == 0 {
            // Trailers, up to the blank line.
            while !read_line(input)?.iter().all(|b| *b == b'\r' || *b == b'\n') {}
            return if total > max_body as u64 { Err(ReadError::TooLarge { drained: true }) } else { Ok(body) };
        }
        total = total.saturating_add(size);
        if total > DRAIN_LIMIT {
            return Err(ReadError::TooLarge { drained: false });
        }
        if total > max_body as u64 {
            // Over the limit: keep reading to the end of the body, keep nothing.
            body = Vec::new();
            io::copy(&mut input.by_ref().take(size), &mut io::sink())?;
        } else {
            let start = body.len();
            body.resize(start + size as usize, 0);
            input.read_exact(&mut body[start..])?;
        }
        if !matches!(read_line(input)?.as_slice(), b"\r\n" | b"\n") {
            return Err(ReadError::Malformed("chunk not followed by CRLF"));
        }
    }
}

/// One line including its `\n`, at most 4 KiB.
fn read_line(input: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    input.by_ref().take(4096).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(ReadError::Malformed("line too long or connection closed"));
    }
    Ok(line)
}

/// Writes a complete response with a JSON body.
pub fn write_response(out: &mut impl Write, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
    write_head(out, status, headers, body.len())?;
    out.write_all(body)?;
    out.flush()
}

/// The status line and headers of a JSON answer whose body is `length` bytes; on its own, the
/// answer to a HEAD request (RFC 9110 §9.3.2).
pub fn write_head(out: &mut impl Write, status: u16, headers: &[(&str, &str)], length: usize) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    };
    let mut head =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn read(raw: &[u8]) -> Result<Request, ReadError> {
        read_request(&mut BufReader::new(raw), 1024)
    }

    #[test]
    fn reads_a_content_length_body() {
        let r = read(b"POST /call HTTP/1.1\r\nHost: x\r\nFn-Call-Id: 1\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str(), r.body.as_slice()), ("POST", "/call", &b"hello"[..]));
        assert_eq!(r.header("fn-call-id"), Some("1"));
        assert!(!r.close);
    }

    #[test]
    fn reads_a_chunked_body_with_extensions_and_trailers() {
        let raw = b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(read(raw).unwrap().body, b"hello world");
    }

    #[test]
    fn reads_requests_back_to_back_on_one_connection() {
        let raw = b"POST /call HTTP/1.1\r\nContent-Length: 1\r\n\r\naPOST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n";
        let mut input = BufReader::new(&raw[..]);
        assert_eq!(read_request(&mut input, 10).unwrap().body, b"a");
        assert_eq!(read_request(&mut input, 10).unwrap().body, b"b");
        assert!(matches!(read_request(&mut input, 10), Err(ReadError::Closed)));
    }

    #[test]
    fn oversized_bodies_are_drained_so_the_next_request_can_be_read() {
        let mut raw = b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n".to_vec();
        raw.extend([b'x'; 2000]);
        raw.extend(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n");
        raw.extend([b'y'; 0x800]);
        raw.extend(b"\r\n0\r\n\r\nPOST /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
        let mut input = BufReader::new(&raw[..]);
        assert!(matches!(read_request(&mut input, 1024), Err(ReadError::TooLarge { drained: true })));
        assert!(matches!(read_request(&mut input, 1024), Err(ReadError::TooLarge { drained: true })));
        assert_eq!(read_request(&mut input, 1024).unwrap().body, b"ok");
    }

    #[test]
    fn bodies_beyond_the_drain_limit_are_refused_without_reading_them() {
        let raw = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", DRAIN_LIMIT + 1);
        assert!(matches!(read(raw.as_bytes()), Err(ReadError::TooLarge { drained: false })));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for raw in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"POST /call HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
            b"POST /call HTTP/1.1\r\nHost",
        ] {
            assert!(matches!(read(raw), Err(ReadError::Malformed(_) | ReadError::Io(_))), "{raw:?}");
        }
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: notchunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ] {
            assert!(matches!(read(raw), Err(ReadError::Malformed(_))), "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(read(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab").unwrap().body, b"ab");
    }

    #[test]
    fn connection_close_is_noticed() {
        assert!(read(b"POST / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().close);
        assert!(read(b"POST / HTTP/1.0\r\n\r\n").unwrap().close);
    }

    #[test]
    fn response_has_exact_framing() {
        let mut out = Vec::new();
        write_response(&mut out, 502, &[("Fn-Fdk-Version", "x/1")], b"{}").unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: 2\r\nFn-Fdk-Version: x/1\r\n\r\n{}"
        );
    }
}
