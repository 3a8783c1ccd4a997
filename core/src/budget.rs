//! One decision's time: when it is (the clock is read once per stage, not once per lookup), and
//! what it may spend on waiting: the platform's deadline, when it gives one, and the configured IdP call
//! timeout. Every stage asks its [`Budget`] how long to wait, rather than doing the arithmetic
//! itself.

use std::time::{Duration, Instant};

use crate::clock::UnixTime;
use crate::outcome::{Cause, Dependency, Failure};

/// Longest wait for a concurrent caller's secret fetch when the request has no deadline.
const SECRET_WAIT: Duration = Duration::from_secs(10);

/// What a caller waits beyond the call timeout for another caller's identical call, which
/// started a little earlier.
const SHARED_CALL_SLACK: Duration = Duration::from_millis(100);

/// One decision's time: when it is, the platform's deadline, if any, and the configured IdP
/// call timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// When the decision is made: what tokens' and cache entries' times are compared with.
    pub now: UnixTime,
    deadline: Option<Instant>,
    call_timeout: Duration,
}

impl Budget {
    pub(crate) fn new(now: UnixTime, deadline: Option<Instant>, call_timeout: Duration) -> Self {
        Self { now, deadline, call_timeout }
    }

    /// The same budget at a later reading of the clock: a stage that follows IdP calls judges
    /// lifetimes by the time it runs, not by the time the decision began.
    pub(crate) fn later(self, now: UnixTime) -> Self {
        Self { now: now.max(self.now), ..self }
    }

    /// The platform's deadline, when it gave one.
    pub(crate) fn deadline(self) -> Option<Instant> {
        self.deadline
    }

    /// How long a caller waits for another caller's identical IdP call.
    pub(crate) fn wait_until(self) -> Instant {
        self.deadline.unwrap_or_else(|| Instant::now() + self.call_timeout + SHARED_CALL_SLACK)
    }

    /// How long a caller waits for another caller's secret fetch.
    pub(crate) fn secret_wait_until(self) -> Instant {
        self.deadline.unwrap_or_else(|| Instant::now() + SECRET_WAIT)
    }

    /// Why a wait for another caller's call to `dependency` ended without its result.
    pub(crate) fn waited_too_long(self, dependency: Dependency) -> Cause {
        let failure = if self.deadline.is_some() { Failure::DeadlineExceeded } else { Failure::Timeout };
        Cause::new(dependency, failure)
    }

    /// The limit of one IdP call that starts now, its retries included.
    pub(crate) fn call_limit(self) -> CallLimit {
        CallLimit::new(Instant::now(), self.call_timeout, self.deadline)
    }
}

/// When one IdP call must be over, its retries included: the configured timeout after it
/// starts, or the platform's deadline when that comes first. Without it a retry would get a full
/// timeout of its own, and a decision without a platform deadline could take twice the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallLimit {
    until: Instant,
    /// The platform's deadline ends the call, rather than the configured timeout.
    platform: bool,
}

impl CallLimit {
    fn new(started: Instant, timeout: Duration, deadline: Option<Instant>) -> Self {
        // The HTTP client keeps a margin back from any deadline it is given, for the platform's
        // answer; the configured timeout itself is not cut by it.
        let own = started + timeout + crate::http::DEADLINE_MARGIN;
        match deadline {
            Some(deadline) if deadline <= own => CallLimit { until: deadline, platform: true },
            _ => CallLimit { until: own, platform: false },
        }
    }

    pub(crate) fn until(self) -> Instant {
        self.until
    }

    pub(crate) fn left(self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// Running out of the call's own time is the configured timeout, not the platform's deadline
    /// (the HTTP client sees both as a deadline).
    pub(crate) fn name(self, failure: Failure) -> Failure {
        match failure {
            Failure::DeadlineExceeded if !self.platform => Failure::Timeout,
            failure => failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idp_call_and_its_retry_end_by_the_configured_timeout_without_a_platform_deadline() {
        let start = Instant::now();
        let limit = CallLimit::new(start, Duration::from_millis(1500), None);
        let until = start + Duration::from_millis(1500) + crate::http::DEADLINE_MARGIN;
        assert_eq!(limit, CallLimit { until, platform: false });
        assert_eq!(limit.name(Failure::DeadlineExceeded), Failure::Timeout);
    }

    #[test]
    fn an_idp_call_ends_by_the_earlier_of_the_timeout_and_the_platform_deadline() {
        let start = Instant::now();
        let (soon, late) = (start + Duration::from_millis(300), start + Duration::from_secs(60));
        let cut = CallLimit::new(start, Duration::from_secs(5), Some(soon));
        assert_eq!(cut, CallLimit { until: soon, platform: true });
        assert_eq!(cut.name(Failure::DeadlineExceeded), Failure::DeadlineExceeded);
        let own = CallLimit::new(start, Duration::from_secs(5), Some(late));
        assert_eq!(
            own,
            CallLimit { until: start + Duration::from_secs(5) + crate::http::DEADLINE_MARGIN, platform: false }
        );
        assert_eq!(own.name(Failure::Status(503)), Failure::Status(503));
    }

    #[test]
    fn a_wait_for_another_call_ends_by_the_deadline_and_says_which_ran_out() {
        let deadline = Instant::now() + Duration::from_millis(300);
        let platform = Budget::new(0, Some(deadline), Duration::from_secs(5));
        assert_eq!(platform.wait_until(), deadline);
        assert_eq!(platform.secret_wait_until(), deadline);
        assert_eq!(platform.waited_too_long(Dependency::Jwks).failure, Failure::DeadlineExceeded);
        let own = Budget::new(0, None, Duration::from_secs(5));
        assert!(own.wait_until() > Instant::now() + Duration::from_secs(4));
        assert_eq!(own.waited_too_long(Dependency::Jwks).failure, Failure::Timeout);
    }
}
