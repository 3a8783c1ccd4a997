//! stdin/stdout adapter: OCI API Gateway authorizer payloads in, one JSON answer line out per
//! payload, flushed at once so it can be piped and scripted.
//!
//! ```no_run
//! use std::io;
//! use tokenbridge_core::Engine;
//!
//! let engine = Engine::from_env();
//! tokenbridge_stdio::run(&engine, io::stdin().lock(), io::stdout().lock()).unwrap();
//! ```
//!
//! Input is one JSON document, or many (one per line, or pretty-printed across lines). Each
//! answer line is exactly the body the OCI adapter returns: an allow or a deny carries
//! `"active"`; a line without `"active"` is no decision — `"error":"unavailable"` (the OCI
//! adapter's 502) or `"error":"invalid_payload"` for input that is not a gateway payload.

#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read, Write};

use serde_json::Value;
use tokenbridge_core::Engine;
use tokenbridge_wire as gateway;

/// Largest document accepted; a longer one is answered with an error and skipped.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How many documents got which kind of answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub decisions: u64,
    pub unavailable: u64,
    pub invalid: u64,
}

/// Answers every document on `input` until it ends.
pub fn run(engine: &Engine, mut input: impl BufRead, mut output: impl Write) -> io::Result<Summary> {
    // With a broken configuration every decision is Unavailable; these defaults are then unused.
    let (realm, token_argument) = engine.config().map_or(("", "token"), |c| (c.realm(), c.token_argument()));
    let mut summary = Summary::default();
    let mut answer = |doc: Result<Value, String>, out: &mut dyn Write| -> io::Result<()> {
        let reply = match doc.and_then(|d| gateway::parse_value(&d, token_argument).map_err(|e| e.to_string())) {
            Ok(request) => {
                let a = gateway::render(&engine.decide(&request), realm);
                if a.status == 200 {
                    summary.decisions += 1
                } else {
                    summary.unavailable += 1
                }
                a.body
            }
            Err(message) => {
                summary.invalid += 1;
                serde_json::json!({ "error": "invalid_payload", "message": message })
            }
        };
        writeln!(out, "{reply}")?;
        out.flush()
    };

    let incomplete = || Err("the document is incomplete".to_string());
    let mut pending: Vec<u8> = Vec::new();
    while let Some(line) = read_line(&mut input)? {
        let Some(line) = line else {
            answer(Err("document exceeds 1 MiB".into()), &mut output)?;
            pending.clear();
            continue;
        };
        if pending.is_empty() && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !pending.is_empty() && line.first() == Some(&b'{') && !continues(&pending, &line) {
            // A line that cannot go on the document before it but is a whole document by itself
            // is a new request: what came before was a truncated one, and must not swallow it.
            if let Ok(doc @ Value::Object(_)) = read_document(&line) {
                answer(incomplete(), &mut output)?;
                answer(Ok(doc), &mut output)?;
                pending.clear();
                continue;
            }
        }
        pending.extend_from_slice(&line);
        if pending.len() > MAX_DOCUMENT_BYTES {
            answer(Err("document exceeds 1 MiB".into()), &mut output)?;
            pending.clear();
            continue;
        }
        match read_document(&pending) {
            // A document spread over several lines: wait for the rest.
            Err(None) => continue,
            doc => {
                answer(doc.map_err(|e| e.unwrap_or_default()), &mut output)?;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        answer(
            read_document(&pending).map_err(|e| e.unwrap_or_else(|| "the document is incomplete".into())),
            &mut output,
        )?;
    }
    Ok(summary)
}

/// The next line with its `\n`: `None` at the end of input, `Some(None)` for a line longer than
/// [`MAX_DOCUMENT_BYTES`] (read to its end and dropped, never held in memory whole).
fn read_line(input: &mut impl BufRead) -> io::Result<Option<Option<Vec<u8>>>> {
    let mut line = Vec::new();
    let n = input.by_ref().take(MAX_DOCUMENT_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_DOCUMENT_BYTES {
        let mut rest = Vec::new();
        while input.by_ref().take(64 * 1024).read_until(b'\n', &mut rest)? > 0 && !rest.ends_with(b"\n") {
            rest.clear();
        }
        return Ok(Some(None));
    }
    Ok(Some(Some(line)))
}

/// Whether `line` can be part of the document begun in `pending` (it completes it or leaves it
/// incomplete, rather than making it invalid).
fn continues(pending: &[u8], line: &[u8]) -> bool {
    let joined = [pending, line].concat();
    !matches!(read_document(&joined), Err(Some(_)))
}

/// One JSON document, or why not: `Err(None)` when it is merely incomplete so far. Error
/// messages give the position only, never the input (which may hold a token).
fn read_document(bytes: &[u8]) -> Result<Value, Option<String>> {
    serde_json::from_slice(bytes).map_err(|e| {
        (!e.is_eof()).then(|| format!("the input is not JSON: syntax error at line {} column {}", e.line(), e.column()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenbridge_core::ConfigErrors;

    /// Answers every input as the stdio adapter would, with an engine whose every decision is
    /// Unavailable (no IdP is needed to test the framing).
    fn answers(input: &str) -> Vec<Value> {
        let engine = Engine::builder(Err(ConfigErrors(vec!["test".into()]))).log_sink(|_| {}).build();
        let mut out = Vec::new();
        run(&engine, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn kinds(input: &str) -> Vec<String> {
        answers(input).iter().map(|a| a["error"].as_str().unwrap_or("decision").to_string()).collect()
    }

    #[test]
    fn one_answer_per_line() {
        assert_eq!(kinds("{\"type\":\"TOKEN\"}\n\n{\"type\":\"TOKEN\"}\n"), ["unavailable", "unavailable"]);
    }

    #[test]
    fn a_pretty_printed_document_is_one_request() {
        assert_eq!(kinds("{\n  \"type\": \"TOKEN\",\n  \"token\": \"Bearer x\"\n}\n"), ["unavailable"]);
    }

    #[test]
    fn a_truncated_line_does_not_swallow_the_next_request() {
        assert_eq!(
            kinds("{\"type\":\"TOKEN\",\n{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n"),
            ["invalid_payload", "unavailable", "unavailable"]
        );
    }

    #[test]
    fn an_indented_object_inside_a_pretty_printed_document_is_not_a_new_request() {
        let input =
            "{\n  \"type\": \"USER_DEFINED\",\n  \"data\": {\"token\": \"Bearer x\", \"extra\": [\n    {}\n  ]}\n}\n";
        assert_eq!(kinds(input), ["unavailable"]);
    }

    #[test]
    fn an_unindented_object_that_continues_the_document_is_part_of_it() {
        let input = "{\"type\":\"USER_DEFINED\",\"data\":\n{\"token\":\"Bearer x\"}\n}\n{\"type\":\"TOKEN\"}\n";
        assert_eq!(kinds(input), ["unavailable", "unavailable"]);
    }

    #[test]
    fn a_truncated_last_document_is_answered() {
        assert_eq!(kinds("{\"type\":\"TOKEN\"}\n{\"type\":"), ["unavailable", "invalid_payload"]);
    }

    #[test]
    fn an_oversized_line_is_refused_and_the_next_answered() {
        let input = format!(
            "{{\"type\":\"TOKEN\",\"token\":\"{}\"}}\n{{\"type\":\"TOKEN\"}}\n",
            "a".repeat(MAX_DOCUMENT_BYTES)
        );
        let got = answers(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["message"], "document exceeds 1 MiB");
        assert_eq!(got[1]["error"], "unavailable");
    }

    #[test]
    fn input_without_a_final_newline_is_answered() {
        assert_eq!(kinds("{\"type\":\"TOKEN\"}"), ["unavailable"]);
    }
}
