//! For this crate's tests and micro-benchmarks, behind the `testing` feature (which the binary
//! never enables): a clock that moves only when told to, to test expiry and refresh without
//! sleeping ([`crate::EngineBuilder::clock`]), and the hot path's pieces the benchmarks time.

use std::sync::atomic::{AtomicI64, Ordering};

pub use crate::bearer::{Credential, extract as extract_bearer};
pub use crate::clock::Clock;
use crate::clock::UnixTime;
pub use crate::log::fingerprint;
pub use crate::metrics::count_cached_allow;

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(now: UnixTime) -> Self {
        Self(AtomicI64::new(now))
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}
