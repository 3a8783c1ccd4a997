//! The decision log: one JSON line per decision, and the token fingerprint that lets a line be
//! matched to a token without ever writing the token.

use aws_lc_rs::digest::{SHA256, digest};
use serde_json::{Map, Value, json};

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
pub fn fingerprint(token: &str) -> String {
    token_hash(token)[..6].iter().map(|b| format!("{b:02x}")).collect()
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
    let mut line = Map::new();
    line.insert("ts".into(), json!(now));
    line.insert("level".into(), json!(level));
    line.insert("event".into(), json!("decision"));
    line.insert("outcome".into(), json!(verdict));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            line.insert(k.into(), v);
        }
    };
    put("call_id", call_id.map(|c| json!(c)));
    put("reason", reason(outcome, trace).map(|r| json!(r.as_str())));
    put("principal", trace.principal.as_ref().map(|p| json!(p)));
    put("client_id", trace.client_id.as_ref().map(|c| json!(c)));
    if let Outcome::Allow(g) = outcome {
        put("expires_at", Some(json!(g.expires_at)));
    }
    if let Outcome::Unavailable(c) = outcome {
        put("cause", Some(json!(c.code())));
        put("message", Some(json!(c.to_string())));
    }
    put("token", trace.token.as_ref().map(|t| json!(t)));
    put("validation", trace.validation.map(|l| json!(l.as_str())));
    put("backend", trace.backend.map(|l| json!(l.as_str())));
    put("idp_ms", (trace.idp_micros > 0).then(|| json!(trace.idp_micros as f64 / 1000.0)));
    put("duration_ms", Some(json!(micros as f64 / 1000.0)));
    put("detail", trace.detail.as_ref().map(|d| json!(d)));
    Value::Object(line).to_string()
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
    }
}
