//! Just enough HTTP/1.1 for the Fn agent's socket (and the HTTP adapter): requests with
//! Content-Length or chunked bodies over a kept-alive connection, and responses whose status we
//! fully control (a library server would answer some malformed requests with a 400 of its own,
//! which makes the Fn agent kill the container).
//!
//! Requests are read strictly: wherever RFC 9112 lets a recipient be lenient (bare LF line ends,
//! obs-fold, whitespace before a colon, `+` in a length, repeated framing headers), a peer in front
//! of us may have read the same bytes the other way, and the difference is where a second request
//! hides inside the first. Such requests are refused, never guessed at.

use std::io::{self, BufRead, Read, Write};

/// Largest request head accepted (any one line, or all of them together).
pub const MAX_HEAD: usize = 64 * 1024;

/// Most header fields accepted in a head; more is an oversized head too.
pub const MAX_HEADERS: usize = 64;

/// An oversized body up to this size is read and dropped, so the connection stays usable and
/// the peer, still writing, gets an answer rather than a broken pipe.
pub const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Longest chunk-size or trailer line.
const MAX_LINE: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names lower-cased, values without the spaces and tabs around them.
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

/// Why no request could be read. After any of these but `Closed` and a drained `TooLarge`, the
/// connection's framing is lost: answer once and close it.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    Malformed(&'static str),
    /// The head exceeds [`MAX_HEAD`] or holds more than [`MAX_HEADERS`] fields (a 431 where the
    /// status is ours to choose).
    HeadTooLarge,
    /// The body exceeds its limit. `drained`: the body was read to its end, so the connection
    /// can carry the next request.
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

/// How the body of a request is delimited (RFC 9112 §6.3).
enum Body {
    Empty,
    Length(u64),
    Chunked,
}

/// Reads one request; its body at most `max_body` bytes.
pub fn read_request(input: &mut impl BufRead, max_body: usize) -> Result<Request, ReadError> {
    let (head, ends) = read_head(input)?;
    // Each line without its CRLF (read_head saw to it that every line ends in one, with no other
    // CR or LF in it); the last line is the empty one.
    let mut lines = ends.iter().scan(0, |start, &end| {
        let line = head.get(*start..end.saturating_sub(2));
        *start = end;
        line
    });
    let (method, path, http10) = request_line(lines.next().unwrap_or_default())?;
    let mut fields = Vec::with_capacity(16);
    for line in lines.take_while(|l| !l.is_empty()) {
        if fields.len() == MAX_HEADERS {
            return Err(ReadError::HeadTooLarge);
        }
        fields.push(field(line).map_err(ReadError::Malformed)?);
    }
    let body = match framing(&fields, http10)? {
        Body::Empty => Vec::new(),
        Body::Length(n) => read_sized(input, n, max_body)?,
        Body::Chunked => read_chunked(input, max_body)?,
    };
    let headers: Vec<(String, String)> =
        fields.into_iter().map(|(name, value)| (name, String::from_utf8_lossy(trim_ows(value)).into_owned())).collect();
    let connection = headers
        .iter()
        .filter(|(k, _)| k == "connection")
        .flat_map(|(_, v)| v.split(','))
        .map(|option| option.trim_matches([' ', '\t']).to_ascii_lowercase())
        .collect::<Vec<_>>();
    let asked = |option: &str| connection.iter().any(|o| o == option);
    let close = asked("close") || (http10 && !asked("keep-alive"));
    Ok(Request { method, path, headers, body, close })
}

/// Bytes up to and including the blank line that ends the head, every line ending in CRLF, and
/// where each line ends (after its LF).
fn read_head(input: &mut impl BufRead) -> Result<(Vec<u8>, Vec<usize>), ReadError> {
    let mut head = Vec::new();
    let mut ends = Vec::with_capacity(16);
    // Blank lines before a request are allowed (RFC 9112 §2.2), within the head's limit.
    let mut skipped = 0;
    loop {
        let start = head.len();
        let room = (MAX_HEAD + 1).saturating_sub(skipped + start);
        let n = input.by_ref().take(room as u64).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Malformed("connection closed mid-head"))
            };
        }
        if skipped + head.len() > MAX_HEAD {
            return Err(ReadError::HeadTooLarge);
        }
        if !head.ends_with(b"\n") {
            // The connection closed mid-line: the next read says so.
            continue;
        }
        crlf_line(&head[start..]).map_err(ReadError::Malformed)?;
        if head.len() - start == 2 && start == 0 {
            skipped += 2;
            head.clear();
            continue;
        }
        ends.push(head.len());
        if head.len() - start == 2 {
            return Ok((head, ends));
        }
    }
}

/// A line's content without its CRLF: a line ending in a bare LF, or with a CR elsewhere, is
/// refused (RFC 9112 §2.2 allows reading bare LF as a line end; a peer that does not, sees a
/// header where we would see two).
fn crlf_line(line: &[u8]) -> Result<&[u8], &'static str> {
    let content = line.strip_suffix(b"\r\n").ok_or("a line ends in a bare LF")?;
    if content.contains(&b'\r') {
        return Err("a bare CR in a line");
    }
    Ok(content)
}

/// Method, request target and whether the version is HTTP/1.0.
fn request_line(line: &[u8]) -> Result<(String, String, bool), ReadError> {
    let mut head = Vec::with_capacity(line.len() + 4);
    head.extend_from_slice(line);
    head.extend_from_slice(b"\r\n\r\n");
    let mut no_fields: [httparse::Header<'_>; 0] = [];
    let mut parsed = httparse::Request::new(&mut no_fields);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ReadError::Malformed("invalid request line")),
    }
    let method = parsed.method.unwrap_or_default().to_string();
    let path = parsed.path.unwrap_or_default().to_string();
    Ok((method, path, parsed.version == Some(0)))
}

/// One field line (RFC 9112 §5): a token, the colon at once, then a value without control
/// characters (visible characters, obs-text, spaces and tabs). The name comes lower-cased, the value without the spaces and tabs before it.
fn field(line: &[u8]) -> Result<(String, &[u8]), &'static str> {
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return Err("obsolete line folding in the head");
    }
    let colon = line.iter().position(|b| *b == b':').ok_or("a header line without a colon")?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        return Err(if name.is_empty() {
            "an empty header name"
        } else if name.iter().any(|b| *b == b' ' || *b == b'\t') {
            "whitespace in a header name or before its colon"
        } else {
            "an invalid character in a header name"
        });
    }
    if has_control(value) {
        return Err("a control character in a header value");
    }
    let start = value.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(value.len());
    // Token characters only: ASCII, so the conversion cannot fail.
    Ok((String::from_utf8(name.to_ascii_lowercase()).unwrap_or_default(), &value[start..]))
}

/// A control character other than HTAB (what a field value may not hold, RFC 9110 §5.5). No early
/// exit, so that long values (a 16 KiB token) can be scanned a vector at a time.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, b| found | ((*b < 0x20) & (*b != b'\t')) | (*b == 0x7f))
}

/// A character of a token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let end = value.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(0, |i| i + 1);
    let start = value[..end].iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(end);
    &value[start..end]
}

/// The body's framing, when exactly one reading of it exists. Anything a peer might frame
/// differently is refused: two Content-Lengths (even equal ones, which RFC 9110 §8.6 would let us
/// merge), a length that is not `1*DIGIT`, two Transfer-Encodings, a coding other than exactly
/// `chunked` (not even with trailing whitespace, which a peer comparing the raw value would not
/// take for chunked), Transfer-Encoding beside Content-Length or in HTTP/1.0 (RFC 9112 §6.1).
fn framing(fields: &[(String, &[u8])], http10: bool) -> Result<Body, ReadError> {
    let values = |name: &str| fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| *v).collect::<Vec<_>>();
    let (codings, lengths) = (values("transfer-encoding"), values("content-length"));
    let malformed = |why| Err(ReadError::Malformed(why));
    match (codings.as_slice(), lengths.as_slice()) {
        ([], []) => Ok(Body::Empty),
        ([], [length]) => content_length(trim_ows(length)).map(Body::Length),
        ([], _) => malformed("more than one Content-Length"),
        ([_], [_, ..]) => malformed("both Transfer-Encoding and Content-Length"),
        ([_], []) if http10 => malformed("Transfer-Encoding in an HTTP/1.0 request"),
        ([coding], []) if coding.eq_ignore_ascii_case(b"chunked") => Ok(Body::Chunked),
        ([_], []) => malformed("a Transfer-Encoding other than chunked"),
        (_, _) => malformed("more than one Transfer-Encoding"),
    }
}

/// `1*DIGIT` (RFC 9110 §8.6); a length too big to count is as good as infinite.
fn content_length(value: &[u8]) -> Result<u64, ReadError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(ReadError::Malformed("Content-Length is not a decimal number"));
    }
    Ok(std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX))
}

fn read_sized(input: &mut impl BufRead, length: u64, max_body: usize) -> Result<Vec<u8>, ReadError> {
    if length <= max_body as u64 {
        let mut body = vec![0; length as usize];
        input.read_exact(&mut body)?;
        Ok(body)
    } else if length <= DRAIN_LIMIT {
        io::copy(&mut input.by_ref().take(length), &mut io::sink())?;
        Err(ReadError::TooLarge { drained: true })
    } else {
        Err(ReadError::TooLarge { drained: false })
    }
}

fn read_chunked(input: &mut impl BufRead, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut total: u64 = 0;
    loop {
        let size = chunk_size(&read_line(input)?)?;
        if size == 0 {
            read_trailers(input)?;
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
        let mut end = [0u8; 2];
        input.read_exact(&mut end)?;
        if &end != b"\r\n" {
            return Err(ReadError::Malformed("chunk data not followed by CRLF"));
        }
    }
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, then nothing or (after optional
/// whitespace) `;` and extensions, which are ignored. An empty size is not a zero one.
fn chunk_size(line: &[u8]) -> Result<u64, ReadError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let well_formed = match rest.iter().find(|b| **b != b' ' && **b != b'\t') {
        // Whitespace is allowed only before a `;`.
        None => rest.is_empty(),
        Some(first) => *first == b';',
    };
    if digits == 0 || !well_formed {
        return Err(ReadError::Malformed("invalid chunk size"));
    }
    if has_control(rest) {
        return Err(ReadError::Malformed("a control character in a chunk extension"));
    }
    // Only hex digits: the one failure left is a number too big to count, as good as infinite.
    Ok(std::str::from_utf8(&line[..digits]).ok().and_then(|d| u64::from_str_radix(d, 16).ok()).unwrap_or(u64::MAX))
}

/// The trailer section after the last chunk, up to its empty line: well-formed fields, dropped.
fn read_trailers(input: &mut impl BufRead) -> Result<(), ReadError> {
    for _ in 0..=MAX_HEADERS {
        let line = read_line(input)?;
        if line.is_empty() {
            return Ok(());
        }
        field(&line).map_err(ReadError::Malformed)?;
    }
    Err(ReadError::Malformed("too many trailer fields"))
}

/// One CRLF-terminated line of at most [`MAX_LINE`] bytes, without its CRLF.
fn read_line(input: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    input.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(ReadError::Malformed("line too long or connection closed"));
    }
    let length = crlf_line(&line).map_err(ReadError::Malformed)?.len();
    line.truncate(length);
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

    fn refused(raw: &[u8]) -> bool {
        matches!(read(raw), Err(ReadError::Malformed(_)))
    }

    fn show(raw: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(raw))
    }

    #[test]
    fn a_content_length_is_digits_and_nothing_else() {
        for value in ["+2", "-1", "2 2", "0x2", "", "2, 2", "2,", "2;", "\u{0662}", "2\u{a0}"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\nab");
            assert!(refused(raw.as_bytes()), "{}", show(raw.as_bytes()));
        }
        // The spaces and tabs around a value are not part of it (RFC 9110 §5.5).
        for value in ["2", " 2 ", "\t2\t", "002"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length:{value}\r\n\r\nab");
            assert_eq!(read(raw.as_bytes()).unwrap().body, b"ab", "{}", show(raw.as_bytes()));
        }
    }

    #[test]
    fn a_repeated_content_length_is_refused_even_with_the_same_value() {
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"));
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"));
    }

    #[test]
    fn transfer_encoding_is_exactly_one_chunked_or_refused() {
        for value in [
            "chunked, identity",
            "identity",
            "xchunked",
            "chunked ",
            "chunked\t",
            "chunked,",
            "gzip, chunked",
            "chunked, chunked",
            "\"chunked\"",
            "",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {value}\r\n\r\n0\r\n\r\n");
            assert!(refused(raw.as_bytes()), "{}", show(raw.as_bytes()));
        }
        for raw in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(refused(raw), "{}", show(raw));
        }
        for value in ["chunked", "Chunked", "  CHUNKED"] {
            let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding:{value}\r\n\r\n1\r\nx\r\n0\r\n\r\n");
            assert_eq!(read(raw.as_bytes()).unwrap().body, b"x", "{}", show(raw.as_bytes()));
        }
    }

    #[test]
    fn header_lines_a_lenient_parser_would_read_otherwise_are_refused() {
        for raw in [
            // obs-fold
            &b"POST / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nX-A: a\r\n\tContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\n Host: x\r\n\r\n",
            // whitespace before the colon
            b"POST / HTTP/1.1\r\nContent-Length : 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
            // bare CR or LF
            b"POST / HTTP/1.1\r\nX-A: a\rContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nX-A: a\nContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\nContent-Length: 2\n\nab",
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\nab",
            b"POST / HTTP/1.1\r\r\n\r\n",
            // control characters
            b"POST / HTTP/1.1\r\nX-A: a\0b\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-A: a\x0b\r\n\r\n",
            b"POST / HTTP/1.1\r\nX\0A: a\r\n\r\n",
            // names
            b"POST / HTTP/1.1\r\n: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nX(A): a\r\n\r\n",
            b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        ] {
            assert!(refused(raw), "{}", show(raw));
        }
    }

    #[test]
    fn values_lose_spaces_and_tabs_around_them_and_nothing_else() {
        let r = read("GET / HTTP/1.1\r\nX-A: \t v \t\r\nX-B: \u{a0}v\u{a0}\r\nX-C:\r\n\r\n".as_bytes()).unwrap();
        assert_eq!(r.header("x-a"), Some("v"));
        assert_eq!(r.header("x-b"), Some("\u{a0}v\u{a0}"));
        assert_eq!(r.header("x-c"), Some(""));
    }

    #[test]
    fn chunk_framing_a_lenient_parser_would_read_otherwise_is_refused() {
        for body in [
            &b"\r\n\r\n"[..],
            b";x\r\n\r\n",
            b"1 \r\nx\r\n0\r\n\r\n",
            b"0x1\r\nx\r\n0\r\n\r\n",
            b"+1\r\nx\r\n0\r\n\r\n",
            b"1\nx\r\n0\r\n\r\n",
            b"1\r\nx\n0\r\n\r\n",
            b"1\r\nxy\r\n0\r\n\r\n",
            b"1;a\rb\r\nx\r\n0\r\n\r\n",
            b"1;a\0\r\nx\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nT: v\n\r\n",
            b"0\r\n T: v\r\n\r\n",
            b"0\r\nT : v\r\n\r\n",
        ] {
            let raw = [&b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..], body].concat();
            assert!(refused(&raw), "{}", show(&raw));
        }
        for body in [&b"1 ;a=b\r\nx\r\n0\r\n\r\n"[..], b"1;a=\"q;\"\r\nx\r\n00\r\nT: v\r\n\r\n"] {
            let raw = [&b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..], body].concat();
            assert_eq!(read(&raw).unwrap().body, b"x", "{}", show(&raw));
        }
    }

    #[test]
    fn lengths_too_big_to_count_are_too_large_not_malformed() {
        let raw = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", "9".repeat(40));
        assert!(matches!(read(raw.as_bytes()), Err(ReadError::TooLarge { drained: false })));
        let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{}\r\n", "f".repeat(20));
        assert!(matches!(read(raw.as_bytes()), Err(ReadError::TooLarge { drained: false })));
    }

    #[test]
    fn an_oversized_head_is_its_own_error_whether_one_line_or_many() {
        let one_line = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let many: String = (0..2000).map(|i| format!("X-{i}: {}\r\n", "a".repeat(30))).collect();
        let many_lines = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let many_fields: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: a\r\n")).collect();
        let too_many = format!("GET / HTTP/1.1\r\n{many_fields}\r\n");
        let blank_lines = format!("{}GET / HTTP/1.1\r\n\r\n", "\r\n".repeat(MAX_HEAD));
        for raw in [&one_line, &many_lines, &too_many, &blank_lines] {
            assert!(matches!(read(raw.as_bytes()), Err(ReadError::HeadTooLarge)), "{}", &raw[..60]);
        }
        let fields: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: a\r\n")).collect();
        assert_eq!(read(format!("GET / HTTP/1.1\r\n{fields}\r\n").as_bytes()).unwrap().headers.len(), MAX_HEADERS);
        assert_eq!(read(b"\r\n\r\nGET /x HTTP/1.1\r\n\r\n").unwrap().path, "/x");
    }

    #[test]
    fn connection_close_is_noticed() {
        assert!(read(b"POST / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().close);
        assert!(read(b"POST / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").unwrap().close);
        assert!(read(b"POST / HTTP/1.0\r\n\r\n").unwrap().close);
        assert!(!read(b"POST / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().close);
        assert!(!read(b"POST / HTTP/1.1\r\n\r\n").unwrap().close);
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
