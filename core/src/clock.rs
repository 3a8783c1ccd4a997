//! Wall-clock time as whole Unix seconds, behind a seam so that expiry, refresh and leeway
//! logic is tested without sleeping.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, UTC. Token lifetimes (`exp`, `nbf`, `expires_in`) are whole
/// seconds, so nothing finer is needed for the decision.
pub type UnixTime = i64;

/// The last second RFC 3339, and so every gateway's `expiresAt`, can write:
/// 9999-12-31T23:59:59Z. A NumericDate an IdP sends outside 0..=LAST_TIME is malformed.
pub const LAST_TIME: UnixTime = 253_402_300_799;

/// A NumericDate (RFC 7519 §2): seconds, fractions cut, within what RFC 3339 can write.
pub(crate) fn numeric_date(n: &serde_json::Number) -> Option<UnixTime> {
    let t = n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f as i64))?;
    (0..=LAST_TIME).contains(&t).then_some(t)
}

/// Where the engine reads the time of day.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}
