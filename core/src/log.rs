//! The decision log: one JSON line per decision, and the token fingerprint that lets a line be
//! matched to a token without ever writing the token.

use aws_lc_rs::digest::{SHA256, digest};

use crate::cache::Lookup;
use crate::outcome::{Cause, Denial, Outcome};
use crate::reason::Reason;

/// SHA-256 of a token: the validation cache's key, so the raw token is never stored.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// The first 12 hex digits of the token's SHA-256: enough to correlate, useless to an attacker.
#[cfg(any(test, feature = "testing"))]
pub fn fingerprint(token: &str) -> String {
    fingerprint_of(&token_hash(token))
}

/// [`fingerprint`] from the token's SHA-256, so a decision hashes its token once.
pub(crate) fn fingerprint_of(hash: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    hash[..6].iter().flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]).map(char::from).collect()
}

/// What happened on the way to a decision, filled in as the engine goes.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub reason: Option<Reason>,
    pub token: Option<String>,
    /// Who the token belongs to, once validation has said.
    pub principal: Option<String>,
    pub client_id: Option<String>,
    pub validation: Option<Lookup<Cause>>,
    pub backend: Option<Lookup<Cause>>,
    pub idp_micros: u128,
    /// Extra words for an operator (a configuration problem, a secret reference that failed);
    /// never a token or a secret value.
    pub detail: Option<String>,
}

/// One decision's log line, its fields in the order a reader wants them.
#[derive(serde::Serialize)]
struct Line<'a> {
    ts: &'a str,
    level: &'static str,
    event: &'static str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp_ms: Option<f64>,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// The log line for one decision.
pub(crate) fn decision_line(
    call_id: Option<&str>,
    outcome: &Outcome,
    trace: &Trace,
    micros: u128,
    now: &str,
) -> String {
    let (level, verdict) = match outcome {
        Outcome::Allow(_) => ("info", "allow"),
        Outcome::Deny(_) => ("info", "deny"),
        Outcome::Unavailable(_) => ("error", "unavailable"),
    };
    let level = if matches!(trace.backend, Some(Lookup::Stale(_))) { "warn" } else { level };
    let cause = match outcome {
        Outcome::Unavailable(c) => Some(c),
        _ => None,
    };
    let line = Line {
        ts: now,
        level,
        event: "decision",
        outcome: verdict,
        call_id,
        reason: reason(outcome, trace).map(Reason::as_str),
        principal: trace.principal.as_deref(),
        client_id: trace.client_id.as_deref(),
        expires_at: match outcome {
            Outcome::Allow(g) => Some(g.expires_at),
            _ => None,
        },
        cause: cause.map(Cause::code),
        message: cause.map(Cause::to_string),
        token: trace.token.as_deref(),
        validation: trace.validation.map(|l| l.as_str()),
        backend: trace.backend.map(|l| l.as_str()),
        idp_ms: (trace.idp_micros > 0).then(|| trace.idp_micros as f64 / 1000.0),
        duration_ms: micros as f64 / 1000.0,
        detail: trace.detail.as_deref(),
    };
    // Room for a typical line and the newline a sink may add, so it is allocated once.
    let mut out = Vec::with_capacity(512);
    // Serialising strings, numbers and options cannot fail, and makes UTF-8.
    let _ = serde_json::to_writer(&mut out, &line);
    String::from_utf8(out).unwrap_or_default()
}

fn reason(outcome: &Outcome, trace: &Trace) -> Option<Reason> {
    trace.reason.or(match outcome {
        Outcome::Deny(Denial::MissingToken) => Some(Reason::MissingToken),
        Outcome::Deny(Denial::InsufficientScope { .. }) => Some(Reason::InsufficientScope),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn fingerprint_is_short_stable_and_not_the_token() {
        let fp = fingerprint("abc");
        assert_eq!(fp, "ba7816bf8f01");
        assert_ne!(fingerprint("abd"), fp);
    }

    #[test]
    fn line_is_one_json_object() {
        let trace = Trace { token: Some(fingerprint("t")), reason: Some(Reason::Inactive), ..Trace::default() };
        let line =
            decision_line(Some("c1"), &Outcome::Deny(Denial::InvalidToken), &trace, 1234, "2026-01-01T00:00:00Z");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["outcome"], "deny");
        assert_eq!(v["reason"], "inactive");
        assert_eq!(v["call_id"], "c1");
        assert_eq!(v["duration_ms"], 1.234);
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"ts":"2026-01-01T00:00:00Z","level":"info","event":"decision","outcome":"deny""#));
    }

    #[test]
    fn the_fingerprint_of_a_hash_is_the_fingerprint_of_its_token() {
        assert_eq!(fingerprint_of(&token_hash("abc")), fingerprint("abc"));
        assert_eq!(fingerprint_of(&[0xff; 32]), "ffffffffffff");
    }
}
