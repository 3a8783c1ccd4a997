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

use std::io::{self, BufRead, Write};

use serde_json::Value;
use tokenbridge_core::Engine;
use tokenbridge_oci::gateway;

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
pub fn run(engine: &Engine, input: impl BufRead, mut output: impl Write) -> io::Result<Summary> {
    // With a broken configuration every decision is Unavailable; these defaults are then unused.
    let (realm, token_argument) = engine
        .config()
        .map_or_else(|_| (String::new(), "token".to_string()), |c| (c.realm.clone(), c.token_argument.clone()));
    let mut summary = Summary::default();
    let mut answer = |doc: Result<Value, String>, out: &mut dyn Write| -> io::Result<()> {
        let reply = match doc.and_then(|d| gateway::parse_value(&d, &token_argument).map_err(|e| e.to_string())) {
            Ok(request) => {
                let a = gateway::render(&engine.decide(&request), &realm);
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

    let mut pending: Vec<u8> = Vec::new();
    for line in input.split(b'\n') {
        let line = line?;
        if pending.is_empty() && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        pending.extend_from_slice(&line);
        pending.push(b'\n');
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
            read_document(&pending).map_err(|e| e.unwrap_or_else(|| "unexpected end of input".into())),
            &mut output,
        )?;
    }
    Ok(summary)
}

/// One JSON document, or why not: `Err(None)` when it is merely incomplete so far. Error
/// messages give the position only, never the input (which may hold a token).
fn read_document(bytes: &[u8]) -> Result<Value, Option<String>> {
    serde_json::from_slice(bytes).map_err(|e| {
        (!e.is_eof()).then(|| format!("the input is not JSON: syntax error at line {} column {}", e.line(), e.column()))
    })
}
