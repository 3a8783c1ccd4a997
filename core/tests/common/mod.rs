//! The engine against the in-process fake IdPs with a clock the test moves, shared by the
//! integration tests that need nothing more.

// Each test binary includes this module and uses its own part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokenbridge_core::testing::ManualClock;
use tokenbridge_core::{Config, Engine, Request};
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::unix_now;

pub struct Fixture {
    pub idp: IdpPair,
    pub clock: Arc<ManualClock>,
    pub engine: Engine,
    /// Every decision log line.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// tokenbridge at `idp`, with `set` added to (or replacing) the pair's settings and the
/// settings named in `unset` removed.
pub fn fixture_at(idp: IdpPair, set: &[(&str, &str)], unset: &[&str]) -> Fixture {
    let mut env: HashMap<String, String> = idp.env().into_iter().collect();
    env.retain(|k, _| !unset.contains(&k.as_str()));
    env.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let clock = Arc::new(ManualClock::at(unix_now()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let engine = Engine::builder(Config::from_lookup(&|k| env.get(k).cloned()))
        .clock(clock.clone())
        .log_sink(move |line| sink.lock().unwrap().push(line.to_string()))
        .build();
    Fixture { idp, clock, engine, log }
}

pub fn bearer(token: &str) -> Request {
    Request::bearer(format!("Bearer {token}"))
}
