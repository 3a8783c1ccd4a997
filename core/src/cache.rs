//! One small cache for everything the engine remembers: bounded, time-limited, with one load at
//! a time per key (single-flight) and an optional stale-but-usable window for outages.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::clock::UnixTime;
use crate::sync::lock;

/// A cached value with its two deadlines: until `fresh_until` it is served as is; until
/// `usable_until` it is served only when reloading fails; after that it is gone.
#[derive(Debug, Clone)]
pub(crate) struct Entry<V> {
    pub value: V,
    pub fresh_until: UnixTime,
    pub usable_until: UnixTime,
}

impl<V> Entry<V> {
    /// An entry with no stale window.
    pub(crate) fn until(value: V, until: UnixTime) -> Self {
        Self { value, fresh_until: until, usable_until: until }
    }
}

/// How long a caller waits for a load in flight: an instant, or a function that says it, read
/// only when there is something to wait for (a cache hit reads no clock).
pub(crate) trait WaitUntil {
    fn instant(self) -> Instant;
}

impl WaitUntil for Instant {
    fn instant(self) -> Instant {
        self
    }
}

impl<F: FnOnce() -> Instant> WaitUntil for F {
    fn instant(self) -> Instant {
        self()
    }
}

/// After a failed reload, the stale value is served without trying again for this long, so an
/// outage costs one timeout per interval rather than one per lookup.
pub(crate) const STALE_RETRY_SECONDS: i64 = 5;

struct Slot<V, E> {
    entry: Entry<V>,
    /// Why the last reload failed, while lookups are served the stale value.
    failed: Option<E>,
}

/// How a lookup was served, for the decision log; `E` is the cache's load failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<E> {
    /// Served from the cache.
    Hit,
    /// Loaded by this call.
    Miss,
    /// Loaded by a concurrent call this one waited for.
    Shared,
    /// Reload failed (this call's, the one it waited for, or the last one, during the back-off)
    /// with this failure; served the older, still usable value. Never served while a reload is
    /// still in flight. The failure tells a caller that needed news the value cannot have.
    Stale(E),
}

impl<E> Lookup<E> {
    pub fn as_str(&self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Shared => "shared",
            Lookup::Stale(_) => "stale",
        }
    }
}

pub(crate) struct Cache<K, V, E> {
    capacity: usize,
    state: Mutex<State<K, V, E>>,
}

struct State<K, V, E> {
    entries: HashMap<K, Slot<V, E>>,
    flights: HashMap<K, Arc<Flight<V, E>>>,
}

/// A load in progress that other callers for the same key wait on.
struct Flight<V, E> {
    result: Mutex<Option<Option<Result<V, E>>>>,
    done: Condvar,
}

/// Finishes a flight even if the loader panics, so waiters are never stuck.
struct Landing<'a, K: Eq + Hash + Clone, V: Clone, E: Clone> {
    cache: &'a Cache<K, V, E>,
    key: K,
    flight: Arc<Flight<V, E>>,
    result: Option<Result<V, E>>,
}

impl<K: Eq + Hash + Clone, V: Clone, E: Clone> Drop for Landing<'_, K, V, E> {
    fn drop(&mut self) {
        lock(&self.cache.state).flights.remove(&self.key);
        *lock(&self.flight.result) = Some(self.result.take());
        self.flight.done.notify_all();
    }
}

impl<K: Eq + Hash + Clone, V: Clone, E: Clone> Cache<K, V, E> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State { entries: HashMap::new(), flights: HashMap::new() }),
        }
    }

    /// The cached value for `key`, or the result of `load` — run by one caller at a time per
    /// key; concurrent callers wait for it until `wait_until`, then get `timed_out`. A value past
    /// fresh but still usable is served only when the load fails, to its caller and its waiters.
    pub(crate) fn get_or_load(
        &self,
        key: &K,
        now: UnixTime,
        wait_until: impl WaitUntil,
        timed_out: E,
        load: impl FnOnce() -> Result<Entry<V>, E>,
    ) -> Result<(V, Lookup<E>), E> {
        let mut state = lock(&self.state);
        let stale = match state.entries.get(key) {
            Some(s) if now < s.entry.fresh_until => {
                let how = s.failed.clone().map_or(Lookup::Hit, Lookup::Stale);
                return Ok((s.entry.value.clone(), how));
            }
            Some(s) if now < s.entry.usable_until => Some(s.entry.value.clone()),
            _ => None,
        };
        if let Some(flight) = state.flights.get(key).cloned() {
            drop(state);
            // The reload in flight may bring news the stale value hides (a revoked token, a
            // rotated key): wait for it; the stale value serves only if it fails.
            return match Self::wait(&flight, wait_until.instant()) {
                Some(Ok(v)) => Ok((v, Lookup::Shared)),
                Some(Err(e)) => Self::stale_or(stale, e),
                None => Err(timed_out),
            };
        }
        let flight = Arc::new(Flight { result: Mutex::new(None), done: Condvar::new() });
        state.flights.insert(key.clone(), flight.clone());
        drop(state);

        let mut landing = Landing { cache: self, key: key.clone(), flight, result: None };
        let loaded = load();
        match loaded {
            Ok(entry) => {
                let value = entry.value.clone();
                self.insert(key.clone(), entry, now);
                landing.result = Some(Ok(value.clone()));
                Ok((value, Lookup::Miss))
            }
            Err(e) => {
                landing.result = Some(Err(e.clone()));
                if stale.is_some() {
                    self.defer_reload(key, now, e.clone());
                }
                Self::stale_or(stale, e)
            }
        }
    }

    /// After a failed reload: the still usable value if there is one, else the failure.
    fn stale_or(stale: Option<V>, e: E) -> Result<(V, Lookup<E>), E> {
        match stale {
            Some(v) => Ok((v, Lookup::Stale(e))),
            None => Err(e),
        }
    }

    /// The leader's result, or `None` if `until` passed first or the loader panicked.
    fn wait(flight: &Flight<V, E>, until: Instant) -> Option<Result<V, E>> {
        let mut result = lock(&flight.result);
        while result.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            result = flight.done.wait_timeout(result, left).map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        // `Some(None)`: the loader panicked; report it like a timeout.
        result.clone().flatten()
    }

    fn insert(&self, key: K, entry: Entry<V>, now: UnixTime) {
        if entry.usable_until <= now {
            return;
        }
        let mut state = lock(&self.state);
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            Self::evict(&mut state.entries, self.capacity, now);
        }
        state.entries.insert(key, Slot { entry, failed: None });
    }

    /// The value for `key` if it is fresh, without loading anything.
    pub(crate) fn peek(&self, key: &K, now: UnixTime) -> Option<V> {
        lock(&self.state).entries.get(key).filter(|s| now < s.entry.fresh_until).map(|s| s.entry.value.clone())
    }

    /// The value for `key` if it is fresh and no reload of it has failed (a lookup would be
    /// served it as a plain hit), without loading or waiting for anything.
    pub(crate) fn hit(&self, key: &K, now: UnixTime) -> Option<V> {
        let state = lock(&self.state);
        let slot = state.entries.get(key).filter(|s| now < s.entry.fresh_until && s.failed.is_none())?;
        Some(slot.entry.value.clone())
    }

    /// The value for `key` while it is usable (fresh or stale), without loading anything.
    pub(crate) fn peek_usable(&self, key: &K, now: UnixTime) -> Option<V> {
        lock(&self.state).entries.get(key).filter(|s| now < s.entry.usable_until).map(|s| s.entry.value.clone())
    }

    /// Makes `key` due for a reload; its value stays usable if the reload fails. Due for every
    /// caller, including one that read the clock a second before this call.
    pub(crate) fn expire(&self, key: &K) {
        if let Some(slot) = lock(&self.state).entries.get_mut(key) {
            slot.entry.fresh_until = UnixTime::MIN;
            slot.failed = None;
        }
    }

    /// Drops `key`, so the next lookup loads it.
    pub(crate) fn forget(&self, key: &K) {
        lock(&self.state).entries.remove(key);
    }

    /// Forgets every entry whose key `matches`.
    pub(crate) fn forget_where(&self, matches: impl Fn(&K) -> bool) {
        lock(&self.state).entries.retain(|k, _| !matches(k));
    }

    fn defer_reload(&self, key: &K, now: UnixTime, failure: E) {
        if let Some(slot) = lock(&self.state).entries.get_mut(key) {
            slot.entry.fresh_until = now.saturating_add(STALE_RETRY_SECONDS).min(slot.entry.usable_until);
            slot.failed = Some(failure);
        }
    }

    /// Drops what has expired; if that is not enough, the tenth that expires soonest, so the
    /// sort is paid once per many inserts.
    fn evict(entries: &mut HashMap<K, Slot<V, E>>, capacity: usize, now: UnixTime) {
        entries.retain(|_, s| s.entry.usable_until > now);
        if entries.len() < capacity {
            return;
        }
        let full = entries.len();
        let target = capacity - capacity.div_ceil(10);
        let mut by_expiry: Vec<(UnixTime, K)> =
            entries.iter().map(|(k, s)| (s.entry.usable_until, k.clone())).collect();
        by_expiry.sort_unstable_by_key(|(t, _)| *t);
        for (_, k) in by_expiry.into_iter().take(entries.len().saturating_sub(target)) {
            entries.remove(&k);
        }
        crate::metrics::evicted(full - entries.len());
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    type C = Cache<u32, &'static str, &'static str>;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn serves_until_expiry_then_reloads() {
        let c = C::new(10);
        let loads = AtomicUsize::new(0);
        let load = || {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(Entry::until("v", 110))
        };
        assert_eq!(c.get_or_load(&1, 100, later(), "t", load), Ok(("v", Lookup::Miss)));
        assert_eq!(c.get_or_load(&1, 109, later(), "t", load), Ok(("v", Lookup::Hit)));
        assert_eq!(c.get_or_load(&1, 110, later(), "t", load), Ok(("v", Lookup::Miss)));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn failed_load_is_not_cached() {
        let c = C::new(10);
        assert_eq!(c.get_or_load(&1, 100, later(), "t", || Err("down")), Err("down"));
        assert_eq!(c.get_or_load(&1, 100, later(), "t", || Ok(Entry::until("v", 200))), Ok(("v", Lookup::Miss)));
    }

    #[test]
    fn stale_value_is_served_only_when_reload_fails_and_only_until_usable() {
        let c = C::new(10);
        let entry = Entry { value: "old", fresh_until: 150, usable_until: 200 };
        c.get_or_load(&1, 100, later(), "t", || Ok(entry)).unwrap();
        assert_eq!(c.get_or_load(&1, 160, later(), "t", || Err("down")), Ok(("old", Lookup::Stale("down"))));
        assert_eq!(c.get_or_load(&1, 200, later(), "t", || Err("down")), Err("down"));
        assert_eq!(c.get_or_load(&1, 170, later(), "t", || Ok(Entry::until("new", 300))), Ok(("new", Lookup::Miss)));
    }

    #[test]
    fn after_a_failed_reload_the_stale_value_is_served_without_retrying_for_a_while() {
        let c = C::new(10);
        let entry = Entry { value: "old", fresh_until: 150, usable_until: 200 };
        c.get_or_load(&1, 100, later(), "t", || Ok(entry)).unwrap();
        assert_eq!(c.get_or_load(&1, 160, later(), "t", || Err("down")), Ok(("old", Lookup::Stale("down"))));
        let must_not_load = || -> Result<Entry<&str>, &str> { panic!("reloaded during the back-off") };
        assert_eq!(c.get_or_load(&1, 164, later(), "t", must_not_load), Ok(("old", Lookup::Stale("down"))));
        let reloaded = c.get_or_load(&1, 165, later(), "t", || Ok(Entry::until("new", 300)));
        assert_eq!(reloaded, Ok(("new", Lookup::Miss)));
        assert_eq!(c.get_or_load(&1, 166, later(), "t", must_not_load), Ok(("new", Lookup::Hit)));
    }

    #[test]
    fn an_expired_value_is_due_even_for_a_caller_whose_clock_reads_earlier() {
        let c = C::new(10);
        c.get_or_load(&1, 100, later(), "t", || Ok(Entry::until("old", 200))).unwrap();
        c.expire(&1);
        assert_eq!(c.get_or_load(&1, 99, later(), "t", || Ok(Entry::until("new", 200))), Ok(("new", Lookup::Miss)));
    }

    #[test]
    fn entries_already_expired_are_not_stored() {
        let c = C::new(10);
        c.get_or_load(&1, 100, later(), "t", || Ok(Entry::until("v", 100))).unwrap();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn size_stays_bounded() {
        let c = C::new(100);
        for k in 0..10_000u32 {
            c.get_or_load(&k, 0, later(), "t", || Ok(Entry::until("v", 1000 + i64::from(k)))).unwrap();
            assert!(c.len() <= 100);
        }
        // The newest (latest-expiring) survive.
        assert_eq!(c.get_or_load(&9_999, 0, later(), "t", || Err("evicted")), Ok(("v", Lookup::Hit)));
    }

    #[test]
    fn concurrent_misses_for_one_key_load_once() {
        let c = Arc::new(C::new(10));
        let loads = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (c, loads, start) = (c.clone(), loads.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    c.get_or_load(&7, 0, later(), "t", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        Ok(Entry::until("v", 100))
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap().0, "v");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn waiter_gives_up_at_its_deadline() {
        let c = Arc::new(C::new(10));
        let leader = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.get_or_load(&1, 0, later(), "t", || {
                    std::thread::sleep(Duration::from_millis(500));
                    Ok(Entry::until("v", 100))
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let got = c.get_or_load(&1, 0, Instant::now() + Duration::from_millis(100), "timed out", || {
            Ok(Entry::until("x", 100))
        });
        assert_eq!(got, Err("timed out"));
        assert!(started.elapsed() < Duration::from_millis(400));
        leader.join().unwrap().unwrap();
    }

    type Leader = std::thread::JoinHandle<Result<(&'static str, Lookup<&'static str>), &'static str>>;

    /// A cache holding "old", fresh until 150 and usable until 200, and a reload of it at 160 in
    /// another thread that answers `answer` after `hold`; returns once that reload is in flight.
    fn reload_in_flight(answer: Result<&'static str, &'static str>, hold: Duration) -> (Arc<C>, Leader) {
        let c = Arc::new(C::new(10));
        c.get_or_load(&1, 100, later(), "t", || Ok(Entry { value: "old", fresh_until: 150, usable_until: 200 }))
            .unwrap();
        let (started, in_flight) = std::sync::mpsc::channel();
        let leader = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.get_or_load(&1, 160, later(), "t", || {
                    started.send(()).unwrap();
                    std::thread::sleep(hold);
                    answer.map(|v| Entry::until(v, 300))
                })
            })
        };
        in_flight.recv().unwrap();
        (c, leader)
    }

    #[test]
    fn a_stale_value_is_not_served_while_its_reload_is_in_flight() {
        let (c, leader) = reload_in_flight(Ok("new"), Duration::from_millis(300));
        let must_not_load = || -> Result<Entry<&str>, &str> { panic!("loaded twice") };
        assert_eq!(c.get_or_load(&1, 161, later(), "t", must_not_load), Ok(("new", Lookup::Shared)));
        assert_eq!(leader.join().unwrap(), Ok(("new", Lookup::Miss)));
    }

    #[test]
    fn when_the_reload_fails_its_waiters_are_served_the_stale_value_as_stale() {
        let (c, leader) = reload_in_flight(Err("down"), Duration::from_millis(300));
        let must_not_load = || -> Result<Entry<&str>, &str> { panic!("loaded twice") };
        assert_eq!(c.get_or_load(&1, 161, later(), "t", must_not_load), Ok(("old", Lookup::Stale("down"))));
        assert_eq!(leader.join().unwrap(), Ok(("old", Lookup::Stale("down"))));
    }

    #[test]
    fn a_waiter_that_gives_up_before_the_reload_ends_gets_no_stale_value() {
        let (c, leader) = reload_in_flight(Ok("new"), Duration::from_millis(500));
        let soon = Instant::now() + Duration::from_millis(100);
        assert_eq!(c.get_or_load(&1, 161, soon, "timed out", || Ok(Entry::until("x", 300))), Err("timed out"));
        leader.join().unwrap().unwrap();
    }

    #[test]
    fn waiters_share_the_leaders_error() {
        let c = Arc::new(C::new(10));
        let loads = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, loads, start) = (c.clone(), loads.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    c.get_or_load(&1, 0, later(), "t", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        Err("down")
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Err("down"));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}

/// The cache's lifetime and size bounds under random sequences of operations and clock moves.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::time::Duration;

    #[derive(Debug, Clone)]
    enum Op {
        /// Moves the clock forward.
        Advance(i64),
        /// A lookup whose load would give an entry fresh for `fresh` and usable `stale` longer,
        /// or fail.
        Get {
            key: u8,
            load: Option<(i64, i64)>,
        },
        Expire(u8),
        Forget(u8),
        Peek(u8),
        PeekUsable(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0..12u8;
        prop_oneof![
            3 => (0..40i64).prop_map(Op::Advance),
            6 => (key.clone(), proptest::option::weighted(0.8, (-5..60i64, 0..60i64)))
                .prop_map(|(key, load)| Op::Get { key, load }),
            1 => key.clone().prop_map(Op::Expire),
            1 => key.clone().prop_map(Op::Forget),
            1 => key.clone().prop_map(Op::Peek),
            1 => key.prop_map(Op::PeekUsable),
        ]
    }

    /// What the test knows of a loaded value (values are numbered, one per load).
    struct Loaded {
        key: u8,
        fresh_until: UnixTime,
        usable_until: UnixTime,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn entries_are_served_only_within_their_lifetimes_and_the_size_stays_bounded(
            capacity in 1..8usize,
            start in 0..2_000_000_000i64,
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let cache: Cache<u8, u32, &str> = Cache::new(capacity);
            let wait_until = Instant::now() + Duration::from_secs(5);
            let mut now = start;
            let mut loaded: HashMap<u32, Loaded> = HashMap::new();
            // The newest value loaded for each key; the cache never serves an older one.
            let mut newest: HashMap<u8, u32> = HashMap::new();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Advance(seconds) => now += seconds,
                    Op::Get { key, load } => {
                        let mut called = false;
                        let id = next;
                        let result = cache.get_or_load(&key, now, wait_until, "timed out", || {
                            called = true;
                            match load {
                                Some((fresh, stale)) => Ok(Entry {
                                    value: id,
                                    fresh_until: now + fresh,
                                    usable_until: now + fresh + stale,
                                }),
                                None => Err("down"),
                            }
                        });
                        if called && let Some((fresh, stale)) = load {
                            next += 1;
                            loaded.insert(id, Loaded { key, fresh_until: now + fresh, usable_until: now + fresh + stale });
                            if fresh + stale > 0 {
                                newest.insert(key, id);
                            }
                        }
                        match result {
                            Ok((v, how)) => {
                                let l = &loaded[&v];
                                prop_assert_eq!(l.key, key, "another key's value");
                                match how {
                                    Lookup::Miss => prop_assert!(called && v == id),
                                    Lookup::Hit => {
                                        prop_assert!(!called, "loaded and called it a hit");
                                        prop_assert!(now < l.fresh_until, "a hit at {} after fresh_until {}", now, l.fresh_until);
                                    }
                                    Lookup::Stale(_) => prop_assert!(now < l.usable_until, "served at {} after usable_until {}", now, l.usable_until),
                                    Lookup::Shared => prop_assert!(false, "shared without a concurrent caller"),
                                }
                                if how != Lookup::Miss {
                                    prop_assert_eq!(Some(&v), newest.get(&key), "an older value than the newest");
                                }
                            }
                            Err(e) => {
                                prop_assert!(called && load.is_none(), "error {} without a failed load", e);
                            }
                        }
                        // A failed load is never cached.
                        if called && load.is_none() && result.is_err() {
                            prop_assert_eq!(cache.peek_usable(&key, now), None);
                        }
                    }
                    Op::Expire(key) => {
                        cache.expire(&key);
                        prop_assert_eq!(cache.peek(&key, now), None, "fresh right after expire");
                    }
                    Op::Forget(key) => {
                        cache.forget(&key);
                        newest.remove(&key);
                        prop_assert_eq!(cache.peek_usable(&key, now), None);
                    }
                    Op::Peek(key) | Op::PeekUsable(key) => {
                        let got = if matches!(op, Op::Peek(_)) { cache.peek(&key, now) } else { cache.peek_usable(&key, now) };
                        if let Some(v) = got {
                            let l = &loaded[&v];
                            prop_assert_eq!(l.key, key);
                            prop_assert!(now < l.usable_until, "peeked at {} after usable_until {}", now, l.usable_until);
                            prop_assert_eq!(Some(&v), newest.get(&key));
                        }
                    }
                }
                prop_assert!(cache.len() <= capacity, "{} entries in a cache of {}", cache.len(), capacity);
            }
        }
    }
}
