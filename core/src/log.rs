//! The decision log: one JSON line per decision, and the token fingerprint that lets a line be
//! matched to a token without ever writing the token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use once_cell::sync::Lazy;

use crate::cache::Lookup;
use crate::outcome::{Cause, Denial, Outcome};
use crate::reason::Reason;
use crate::sync::lock;

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
    /// The platform's trace id (W3C, X-Ray or OCI), for following the request across systems.
    pub trace_id: Option<String>,
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
    trace_id: Option<&'a str>,
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
    /// Lines like this one (same outcome and cause) left out by the rate limit since the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<u64>,
}

/// The log line for one decision.
pub(crate) fn decision_line(
    call_id: Option<&str>,
    outcome: &Outcome,
    trace: &Trace,
    micros: u128,
    now: &str,
    suppressed: Option<u64>,
) -> String {
    let verdict = match outcome {
        Outcome::Allow(_) => "allow",
        Outcome::Deny(_) => "deny",
        Outcome::Unavailable(_) => "unavailable",
    };
    let level = line_level(outcome, trace).as_str();
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
        trace_id: trace.trace_id.as_deref(),
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
        suppressed,
    };
    // Room for a typical line and the newline a sink may add, so it is allocated once.
    let mut out = Vec::with_capacity(512);
    // Serialising strings, numbers and options cannot fail, and makes UTF-8.
    let _ = serde_json::to_writer(&mut out, &line);
    String::from_utf8(out).unwrap_or_default()
}

/// A decision line's level: an unavailable is an error, an allow on a stale backend token a
/// warning, the rest information.
fn line_level(outcome: &Outcome, trace: &Trace) -> LogLevel {
    match outcome {
        Outcome::Unavailable(_) => LogLevel::Error,
        _ if matches!(trace.backend, Some(Lookup::Stale(_))) => LogLevel::Warn,
        _ => LogLevel::Info,
    }
}

/// The reason a decision is logged (and counted) with.
pub(crate) fn reason(outcome: &Outcome, trace: &Trace) -> Option<Reason> {
    trace.reason.or(match outcome {
        Outcome::Deny(Denial::MissingToken) => Some(Reason::MissingToken),
        Outcome::Deny(Denial::InsufficientScope { .. }) => Some(Reason::InsufficientScope),
        _ => None,
    })
}

/// `TOKENBRIDGE_LOG_LEVEL`: the least severe line written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// `TOKENBRIDGE_DECISION_LOG`: which decisions get a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DecisionLog {
    /// Every decision, each unavailable and warning too: the log before this setting existed.
    All,
    /// Denials and unavailables; repeated unavailables and warnings rate-limited.
    Denials,
    /// [`DecisionLog::Denials`], and this fraction (0 to 1) of the allows.
    Sample(f64),
}

impl DecisionLog {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "all" => Some(DecisionLog::All),
            "denials" => Some(DecisionLog::Denials),
            _ => {
                let fraction: f64 = value.strip_prefix("sample:")?.trim().parse().ok()?;
                (0.0..=1.0).contains(&fraction).then_some(DecisionLog::Sample(fraction))
            }
        }
    }
}

impl std::fmt::Display for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecisionLog::All => f.write_str("all"),
            DecisionLog::Denials => f.write_str("denials"),
            DecisionLog::Sample(fraction) => write!(f, "sample:{fraction}"),
        }
    }
}

/// The two log settings together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogPolicy {
    pub level: LogLevel,
    pub decisions: DecisionLog,
}

impl Default for LogPolicy {
    /// `info` and `denials`: see docs/observability.md for why allows are not logged by default.
    fn default() -> Self {
        Self { level: LogLevel::Info, decisions: DecisionLog::Denials }
    }
}

/// Lines of one kind (same outcome and cause) written at most once per this interval, unless
/// every decision is logged.
const REPEAT_INTERVAL: Duration = Duration::from_secs(1);

/// What a repeated line is recognised by: its kind and its cause's dependency and failure.
type RepeatKey = (&'static str, &'static str, &'static str);

/// The decision log's memory across decisions: how many allows went by (for sampling) and when
/// each kind of repeated line was last written.
pub(crate) struct Gate {
    allows: AtomicU64,
    repeats: Mutex<HashMap<RepeatKey, Repeat>>,
}

struct Repeat {
    written: Instant,
    suppressed: u64,
}

/// The process's gate: the rate limit is about the volume of the process's log.
pub(crate) static GATE: Lazy<Gate> = Lazy::new(Gate::new);

impl Gate {
    pub(crate) fn new() -> Self {
        Self { allows: AtomicU64::new(0), repeats: Mutex::new(HashMap::new()) }
    }

    /// Whether this decision's line is written under `policy`, at `now`: `None` if not, else the
    /// number of lines like it left out since the last one written (for its `suppressed`).
    pub(crate) fn admit(
        &self,
        policy: LogPolicy,
        outcome: &Outcome,
        trace: &Trace,
        now: Instant,
    ) -> Option<Option<u64>> {
        let level = line_level(outcome, trace);
        if level > policy.level {
            return None;
        }
        let fraction = match policy.decisions {
            DecisionLog::All => return Some(None),
            DecisionLog::Denials => 0.0,
            DecisionLog::Sample(f) => f,
        };
        match (outcome, level) {
            (Outcome::Unavailable(cause), _) => self.unless_repeated(("unavailable", cause), now),
            (_, LogLevel::Warn) => match trace.backend {
                Some(Lookup::Stale(cause)) => self.unless_repeated(("stale", &cause), now),
                _ => Some(None),
            },
            (Outcome::Allow(_), _) => self.sampled(fraction).then_some(None),
            (Outcome::Deny(_), _) => Some(None),
        }
    }

    /// Exactly `fraction` of the allows, spread evenly: the n-th allow is written when
    /// `floor(n × fraction)` steps up. Counting, not chance, so tests and operators can rely on it.
    fn sampled(&self, fraction: f64) -> bool {
        if fraction <= 0.0 {
            return false;
        }
        let n = self.allows.fetch_add(1, Ordering::Relaxed) + 1;
        (n as f64 * fraction).floor() > ((n - 1) as f64 * fraction).floor()
    }

    /// The first line of a kind in each [`REPEAT_INTERVAL`], with the count of those left out
    /// before it; `None` for the others, which the metrics count.
    fn unless_repeated(&self, (kind, cause): (&'static str, &Cause), now: Instant) -> Option<Option<u64>> {
        let key = (kind, cause.dependency.as_str(), cause.failure.as_str());
        let mut repeats = lock(&self.repeats);
        match repeats.get_mut(&key) {
            Some(r) if now.saturating_duration_since(r.written) < REPEAT_INTERVAL => {
                r.suppressed += 1;
                crate::metrics::log_lines_suppressed(1);
                None
            }
            Some(r) => {
                let suppressed = std::mem::take(&mut r.suppressed);
                r.written = now;
                Some((suppressed > 0).then_some(suppressed))
            }
            None => {
                repeats.insert(key, Repeat { written: now, suppressed: 0 });
                Some(None)
            }
        }
    }
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
            decision_line(Some("c1"), &Outcome::Deny(Denial::InvalidToken), &trace, 1234, "2026-01-01T00:00:00Z", None);
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

    fn allow() -> Outcome {
        Outcome::Allow(crate::outcome::Grant {
            principal: "p".into(),
            scopes: vec![],
            client_id: None,
            expires_at: 0,
            context: Default::default(),
        })
    }

    fn policy(decisions: DecisionLog) -> LogPolicy {
        LogPolicy { level: LogLevel::Info, decisions }
    }

    fn outage() -> Outcome {
        Outcome::Unavailable(Cause::new(crate::outcome::Dependency::Introspection, crate::outcome::Failure::Timeout))
    }

    #[test]
    fn the_settings_read_their_documented_values_and_nothing_else() {
        assert_eq!(DecisionLog::parse("all"), Some(DecisionLog::All));
        assert_eq!(DecisionLog::parse("denials"), Some(DecisionLog::Denials));
        assert_eq!(DecisionLog::parse("sample:0.25"), Some(DecisionLog::Sample(0.25)));
        for bad in ["sample:1.5", "sample:-0.1", "sample:NaN", "sample:", "ALL", "some"] {
            assert_eq!(DecisionLog::parse(bad), None, "{bad}");
        }
        assert_eq!(LogLevel::parse("warn"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("trace"), None);
        assert!(LogLevel::Error < LogLevel::Warn && LogLevel::Info < LogLevel::Debug);
        assert_eq!(LogPolicy::default().decisions, DecisionLog::Denials);
    }

    #[test]
    fn all_writes_every_decision_and_every_repeat() {
        let gate = Gate::new();
        let now = Instant::now();
        let t = Trace::default();
        for _ in 0..5 {
            assert_eq!(gate.admit(policy(DecisionLog::All), &allow(), &t, now), Some(None));
            assert_eq!(gate.admit(policy(DecisionLog::All), &outage(), &t, now), Some(None));
        }
    }

    #[test]
    fn denials_writes_no_allow_and_every_deny() {
        let gate = Gate::new();
        let now = Instant::now();
        let t = Trace::default();
        let deny = Outcome::Deny(Denial::InvalidToken);
        for _ in 0..10 {
            assert_eq!(gate.admit(policy(DecisionLog::Denials), &allow(), &t, now), None);
            assert_eq!(gate.admit(policy(DecisionLog::Denials), &deny, &t, now), Some(None));
        }
    }

    #[test]
    fn a_sample_writes_exactly_its_fraction_of_the_allows() {
        let gate = Gate::new();
        let now = Instant::now();
        let written = (0..1000)
            .filter(|_| gate.admit(policy(DecisionLog::Sample(0.01)), &allow(), &Trace::default(), now).is_some())
            .count();
        assert_eq!(written, 10);
        let gate = Gate::new();
        let every_other = (0..10)
            .map(|_| gate.admit(policy(DecisionLog::Sample(0.5)), &allow(), &Trace::default(), now).is_some())
            .collect::<Vec<_>>();
        assert_eq!(every_other, [false, true, false, true, false, true, false, true, false, true]);
        let gate = Gate::new();
        assert!(
            (0..20).all(|_| gate.admit(policy(DecisionLog::Sample(1.0)), &allow(), &Trace::default(), now).is_some())
        );
    }

    #[test]
    fn a_repeated_unavailable_is_written_once_a_second_with_the_count_left_out() {
        let gate = Gate::new();
        let t0 = Instant::now();
        let t = Trace::default();
        let p = policy(DecisionLog::Denials);
        assert_eq!(gate.admit(p, &outage(), &t, t0), Some(None));
        for i in 1..1000 {
            assert_eq!(gate.admit(p, &outage(), &t, t0 + Duration::from_micros(i)), None);
        }
        // Another cause is another kind of line.
        let other =
            Outcome::Unavailable(Cause::new(crate::outcome::Dependency::Jwks, crate::outcome::Failure::Timeout));
        assert_eq!(gate.admit(p, &other, &t, t0), Some(None));
        assert_eq!(gate.admit(p, &outage(), &t, t0 + REPEAT_INTERVAL), Some(Some(999)));
        assert_eq!(gate.admit(p, &outage(), &t, t0 + REPEAT_INTERVAL * 3), Some(None));
    }

    #[test]
    fn a_stale_backend_warning_is_rate_limited_even_on_an_allow() {
        let gate = Gate::new();
        let now = Instant::now();
        let cause = Cause::new(crate::outcome::Dependency::BackendToken, crate::outcome::Failure::Unreachable);
        let t = Trace { backend: Some(Lookup::Stale(cause)), ..Trace::default() };
        let p = policy(DecisionLog::Denials);
        assert_eq!(gate.admit(p, &allow(), &t, now), Some(None), "a warning is written though allows are not");
        assert_eq!(gate.admit(p, &allow(), &t, now), None);
    }

    #[test]
    fn the_level_leaves_out_less_severe_lines() {
        let gate = Gate::new();
        let now = Instant::now();
        let t = Trace::default();
        let p = LogPolicy { level: LogLevel::Error, decisions: DecisionLog::All };
        assert_eq!(gate.admit(p, &Outcome::Deny(Denial::InvalidToken), &t, now), None);
        assert_eq!(gate.admit(p, &outage(), &t, now), Some(None));
        let line = decision_line(None, &outage(), &t, 1, "2026-01-01T00:00:00Z", Some(3));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!((v["level"].as_str(), v["suppressed"].as_u64()), (Some("error"), Some(3)));
    }

    #[test]
    fn a_log_setting_outside_its_values_is_a_configuration_problem() {
        let lookup = |k: &str| match k {
            "TOKENBRIDGE_LOG_LEVEL" => Some("verbose".to_string()),
            "TOKENBRIDGE_DECISION_LOG" => Some("sample:2".to_string()),
            _ => None,
        };
        let problems = crate::Config::from_lookup(&lookup).err().expect("problems").0.join("\n");
        assert!(problems.contains("TOKENBRIDGE_LOG_LEVEL must be error, warn, info or debug, got \"verbose\""));
        assert!(problems.contains("TOKENBRIDGE_DECISION_LOG must be all, denials or sample:"), "{problems}");
    }
}
