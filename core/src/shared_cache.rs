//! The shared cache tier on Redis (docs/shared-cache.md): IdP answers one instance got, kept
//! where every instance can read them, behind each instance's own cache.
//!
//! What is kept is the IdP's answer as it came (its status and body, and when it came), never a
//! verdict: a reader judges it again with its own parser, settings and clock, so an instance
//! with other settings or policy cannot be answered for. Each value is sealed (AES-256-GCM under
//! a key that is a secret like the client secrets, never in Redis) with its Redis key as
//! associated data, and each key is a keyed hash of the token, namespaced by the endpoint, the
//! client and the request asked: whoever can read or write Redis can neither learn a token, nor
//! forge or move an answer, nor lift a backend token.
//!
//! Every Redis problem (down, slow, full, evicting, garbage, another key) is a miss: the decision
//! goes on with the IdPs, within its deadline. It never becomes an allow or a deny.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use once_cell::sync::OnceCell;

use crate::budget::Budget;
use crate::clock::UnixTime;
use crate::metrics::{Call, CallResult};
use crate::secret::{SecretCell, SecretRef, Secrets};
use crate::sync::lock;

/// The settings of the tier, as configured.
#[derive(Clone)]
pub(crate) struct SharedSettings {
    /// `redis://host:port[/db]` or `rediss://…`, with an optional user name and no password.
    pub url: String,
    pub password: Option<SecretRef>,
    /// At least 32 characters; the sealing and key-hashing keys are derived from it.
    pub key: SecretRef,
    /// Longest one Redis call may take (and a connection be made in).
    pub timeout: Duration,
    /// The first part of every key, so several deployments can share one Redis.
    pub prefix: String,
}

/// What kind of answer a key holds.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Introspection,
    /// tokenbridge's own backend token (client_credentials).
    Backend,
    /// A token IdP B issued for a caller's token.
    Exchange,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Introspection => "introspection",
            Kind::Backend => "backend",
            Kind::Exchange => "exchange",
        }
    }
}

/// An IdP answer as it came: when, its status, its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub at: UnixTime,
    pub status: u16,
    pub body: Vec<u8>,
}

const FORMAT: u8 = 1;

impl Stored {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + self.body.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.at.to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&format, rest) = bytes.split_first()?;
        if format != FORMAT || rest.len() < 10 {
            return None;
        }
        let at = i64::from_be_bytes(rest[..8].try_into().ok()?);
        let status = u16::from_be_bytes(rest[8..10].try_into().ok()?);
        Some(Self { at, status, body: rest[10..].to_vec() })
    }
}

/// The keys derived from the configured secret.
struct Keys {
    naming: hmac::Key,
    sealing: LessSafeKey,
}

/// The shortest configured key, in bytes.
pub(crate) const MIN_KEY_LEN: usize = 32;

impl Keys {
    fn derive(secret: &str) -> Option<Self> {
        if secret.len() < MIN_KEY_LEN {
            return None;
        }
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let naming = hmac::sign(&master, b"tokenbridge shared cache: key names v1");
        let sealing = hmac::sign(&master, b"tokenbridge shared cache: sealing v1");
        let sealing = UnboundKey::new(&AES_256_GCM, sealing.as_ref()).ok()?;
        Some(Self { naming: hmac::Key::new(hmac::HMAC_SHA256, naming.as_ref()), sealing: LessSafeKey::new(sealing) })
    }

    fn name(&self, parts: &[&[u8]]) -> String {
        let mut context = hmac::Context::with_key(&self.naming);
        for part in parts {
            // Each part length-prefixed: no two lists of parts hash alike.
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        hex(context.sign().as_ref())
    }

    fn seal(&self, key: &str, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        let aad = Aad::from(key.as_bytes());
        self.sealing.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut sealed).ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn open(&self, key: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self.sealing.open_in_place(nonce, Aad::from(key.as_bytes()), &mut rest).ok()?;
        Some(plain.to_vec())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Idle connections kept for reuse.
const POOL: usize = 8;
/// After Redis could not be reached, it is not tried again for this long: an outage costs one
/// connect timeout per interval, not one per decision.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Warnings about the tier are written at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// How long a backend refresh is claimed by one instance.
const LOCK_MILLIS: u64 = 3_000;

/// The tier: a Redis, the keys, and what is known of the Redis's health.
pub(crate) struct SharedCache {
    settings: SharedSettings,
    secrets: Arc<Secrets>,
    key: SecretCell,
    password: Option<SecretCell>,
    keys: OnceCell<Option<Keys>>,
    pool: Mutex<Vec<redis::Connection>>,
    down_until: Mutex<Option<Instant>>,
    warned: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
    /// What the revocation listener heard, for the engine to act on before its next decision.
    heard: Arc<Heard>,
}

/// Revocations heard on the channel and not yet acted on.
#[derive(Default)]
struct Heard {
    any: AtomicBool,
    tokens: Mutex<Vec<[u8; 32]>>,
    /// The listener lost its subscription and may have missed some: forget every token.
    all: AtomicBool,
}

/// What [`SharedCache::take_revocations`] says to forget.
pub(crate) enum Forget {
    Tokens(Vec<[u8; 32]>),
    Everything,
}

/// A key with the name it is known by in Redis.
pub(crate) struct Name(String);

impl SharedCache {
    pub(crate) fn new(settings: &SharedSettings, secrets: Arc<Secrets>) -> Self {
        // redis-rs takes rustls' process default provider: make it the one tokenbridge uses.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Self {
            key: SecretCell::new(settings.key.clone()),
            password: settings.password.clone().map(SecretCell::new),
            settings: settings.clone(),
            secrets,
            keys: OnceCell::new(),
            pool: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
            warned: Mutex::new(None),
            suppressed: AtomicU64::new(0),
            heard: Arc::new(Heard::default()),
        }
    }

    /// The Redis name of `kind`'s answer for `token`, asked with `scope` (the endpoint, the
    /// client and the request, minus the token): `None` when the tier's key cannot be had.
    pub(crate) fn name(&self, budget: Budget, kind: Kind, scope: &[&str], token: &str) -> Option<Name> {
        let keys = self.keys(budget)?;
        let scope: Vec<&[u8]> = scope.iter().map(|s| s.as_bytes()).collect();
        let prefix = &self.settings.prefix;
        let space = &keys.name(&scope)[..32];
        let token = keys.name(&[kind.as_str().as_bytes(), token.as_bytes()]);
        Some(Name(format!("{prefix}:v1:{}:{space}:{token}", kind.as_str())))
    }

    fn keys(&self, budget: Budget) -> Option<&Keys> {
        if let Some(keys) = self.keys.get() {
            return keys.as_ref();
        }
        match self.secrets.get(&self.key, budget) {
            Ok(secret) => {
                let mut started = false;
                let keys = self.keys.get_or_init(|| {
                    started = true;
                    Keys::derive(secret.expose())
                });
                match keys {
                    None => {
                        self.warn("TOKENBRIDGE_SHARED_CACHE_KEY is shorter than 32 characters; the shared cache is off")
                    }
                    Some(_) if started => self.listen(&secret, budget),
                    Some(_) => {}
                }
                keys.as_ref()
            }
            Err(_) => {
                // Tried again later: the store may be back.
                self.warn("TOKENBRIDGE_SHARED_CACHE_KEY cannot be had now; the shared cache is skipped");
                None
            }
        }
    }

    /// The answer under `name`, if Redis has one that opens under the tier's key.
    pub(crate) fn get(&self, budget: Budget, name: &Name) -> Option<Stored> {
        let keys = self.keys.get()?.as_ref()?;
        let sealed = self.run(budget, |c| redis::cmd("GET").arg(&name.0).query::<Option<Vec<u8>>>(c))??;
        let opened = keys.open(&name.0, &sealed).and_then(|plain| Stored::from_bytes(&plain));
        if opened.is_none() {
            crate::metrics::call(Call::SharedCache, CallResult::Malformed, Instant::now());
            self.warn("a shared cache value did not open under the configured key (another key, or tampered)");
        }
        opened
    }

    /// Keeps `stored` under `name` for `ttl` seconds (nothing when `ttl` is not positive).
    pub(crate) fn put(&self, budget: Budget, name: &Name, stored: &Stored, ttl: i64) {
        let Some(keys) = self.keys.get().and_then(Option::as_ref) else { return };
        if ttl <= 0 {
            return;
        }
        let Some(sealed) = keys.seal(&name.0, &stored.to_bytes()) else { return };
        let _ = self.run(budget, |c| redis::cmd("SET").arg(&name.0).arg(sealed).arg("EX").arg(ttl).query::<()>(c));
    }

    /// Claims the refresh of `name` for this instance for a few seconds: whether it got it.
    /// Redis not answering, the claim is this instance's (at worst, one more refresh).
    pub(crate) fn claim(&self, budget: Budget, name: &Name) -> bool {
        let lock = format!("{}:lock", name.0);
        let got: Option<Option<String>> =
            self.run(budget, |c| redis::cmd("SET").arg(&lock).arg(1).arg("NX").arg("PX").arg(LOCK_MILLIS).query(c));
        !matches!(got, Some(None))
    }

    /// Gives up a claim after the refreshed answer is stored.
    pub(crate) fn release(&self, budget: Budget, name: &Name) {
        let lock = format!("{}:lock", name.0);
        let _ = self.run(budget, |c| redis::cmd("DEL").arg(&lock).query::<()>(c));
    }

    fn revocation_name(&self, keys: &Keys, token: &str) -> String {
        format!("{}:v1:revoked:{}", self.settings.prefix, keys.name(&[b"revoked", token.as_bytes()]))
    }

    fn channel(&self) -> String {
        format!("{}:v1:revocations", self.settings.prefix)
    }

    /// Whether `token` was revoked through the tier (`tokenbridge revoke`). A marker that does
    /// not open under the tier's key is not one.
    pub(crate) fn is_revoked(&self, budget: Budget, token: &str) -> bool {
        let Some(keys) = self.keys(budget) else { return false };
        let name = self.revocation_name(keys, token);
        let Some(Some(sealed)) = self.run(budget, |c| redis::cmd("GET").arg(&name).query::<Option<Vec<u8>>>(c)) else {
            return false;
        };
        let revoked = keys.open(&name, &sealed).is_some_and(|plain| plain == REVOKED);
        if !revoked {
            self.warn("a shared cache revocation did not open under the configured key (another key, or tampered)");
        }
        revoked
    }

    /// Revokes `token` on every instance: a marker every instance reads before deciding on it
    /// anew, for `ttl` seconds, and a message on the channel, for the instances that hold it now.
    pub(crate) fn revoke(&self, budget: Budget, token: &str, hash: [u8; 32], ttl: i64) -> Result<(), RevokeError> {
        let keys = self.keys(budget).ok_or(RevokeError::NoKey)?;
        let name = self.revocation_name(keys, token);
        let marker = keys.seal(&name, REVOKED).ok_or(RevokeError::NoKey)?;
        let channel = self.channel();
        let message = keys.seal(&channel, &hash).ok_or(RevokeError::NoKey)?;
        self.run(budget, |c| {
            redis::cmd("SET").arg(&name).arg(marker).arg("EX").arg(ttl.max(1)).query::<()>(c)?;
            redis::cmd("PUBLISH").arg(&channel).arg(message).query::<()>(c)
        })
        .ok_or(RevokeError::Redis)
    }

    /// Records a DPoP proof's use (by its identity, `id`) until `until`: `false` only when
    /// another instance recorded it first, by a marker that opens under the tier's key. Redis
    /// failing or holding garbage, this instance's own replay set is the judge.
    pub(crate) fn first_use(&self, budget: Budget, id: &[u8; 32], until: UnixTime) -> bool {
        let Some(keys) = self.keys(budget) else { return true };
        let ttl = until.saturating_sub(budget.now).max(1);
        let name = format!("{}:v1:dpop:{}", self.settings.prefix, keys.name(&[b"dpop", id]));
        let Some(marker) = keys.seal(&name, USED) else { return true };
        // SET … NX GET (Redis 7): nothing before means this is the first use.
        let earlier = self.run(budget, |c| {
            redis::cmd("SET").arg(&name).arg(marker).arg("NX").arg("GET").arg("EX").arg(ttl).query::<Option<Vec<u8>>>(c)
        });
        let Some(Some(earlier)) = earlier else { return true };
        let used = keys.open(&name, &earlier).is_some_and(|plain| plain == USED);
        if !used {
            self.warn("a shared cache DPoP marker did not open under the configured key (another key, or tampered)");
        }
        !used
    }

    /// The revocations heard since the last call.
    pub(crate) fn take_revocations(&self) -> Option<Forget> {
        if !self.heard.any.swap(false, Ordering::AcqRel) {
            return None;
        }
        let tokens = std::mem::take(&mut *lock(&self.heard.tokens));
        if self.heard.all.swap(false, Ordering::AcqRel) {
            return Some(Forget::Everything);
        }
        Some(Forget::Tokens(tokens))
    }

    /// Listens for revocations on a thread of its own, reconnecting with a back-off. Revocations
    /// before a subscription may have been missed: each subscription forgets every token.
    fn listen(&self, secret: &crate::secret::Secret, budget: Budget) {
        let Some(keys) = Keys::derive(secret.expose()) else { return };
        let password = self.password.as_ref().map(|cell| self.secrets.get(cell, budget));
        let password = match password {
            Some(Err(_)) => {
                self.warn("TOKENBRIDGE_SHARED_CACHE_PASSWORD cannot be had; revocations are not listened for");
                return;
            }
            Some(Ok(p)) => Some(p),
            None => None,
        };
        let url = self.settings.url.clone();
        let channel = self.channel();
        let heard = self.heard.clone();
        let spawned = std::thread::Builder::new().name("tokenbridge-revocations".into()).spawn(move || {
            let mut back_off = Duration::from_secs(1);
            loop {
                if let Some(mut connection) = listener_connection(&url, password.as_ref()) {
                    let mut pubsub = connection.as_pubsub();
                    if pubsub.subscribe(&channel).is_ok() {
                        // Revocations published before this subscription (Redis unreachable at
                        // start, or the last one lost) were missed: forget every token.
                        heard.all.store(true, Ordering::Release);
                        heard.any.store(true, Ordering::Release);
                        back_off = Duration::from_secs(1);
                        while let Ok(message) = pubsub.get_message() {
                            let hash = keys.open(&channel, message.get_payload_bytes());
                            if let Some(hash) = hash.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                                lock(&heard.tokens).push(hash);
                                heard.any.store(true, Ordering::Release);
                            }
                        }
                    }
                }
                std::thread::sleep(back_off);
                back_off = (back_off * 2).min(Duration::from_secs(30));
            }
        });
        if spawned.is_err() {
            self.warn("the revocation listener could not be started");
        }
    }

    /// Runs one command on a pooled connection, within the tier's timeout and the budget.
    fn run<T>(
        &self,
        budget: Budget,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let started = Instant::now();
        if lock(&self.down_until).is_some_and(|until| started < until) {
            return None;
        }
        let left = budget.deadline().map_or(self.settings.timeout, |d| d.saturating_duration_since(started));
        let timeout = left.min(self.settings.timeout);
        if timeout.is_zero() {
            return None;
        }
        let pooled = lock(&self.pool).pop();
        let mut connection = match pooled {
            Some(c) => c,
            None => match self.connect(budget, timeout) {
                Some(c) => c,
                None => {
                    *lock(&self.down_until) = Some(Instant::now() + RETRY_AFTER);
                    crate::metrics::call(Call::SharedCache, CallResult::Refused, started);
                    self.warn("the shared cache's Redis cannot be reached; deciding without it");
                    return None;
                }
            },
        };
        let timeouts = connection.set_read_timeout(Some(timeout)).and(connection.set_write_timeout(Some(timeout)));
        match timeouts.and_then(|()| command(&mut connection)) {
            Ok(value) => {
                crate::metrics::call(Call::SharedCache, CallResult::Ok, started);
                let mut pool = lock(&self.pool);
                if pool.len() < POOL {
                    pool.push(connection);
                }
                Some(value)
            }
            Err(e) => {
                // A Redis that does not answer is left alone for a while, as one that cannot be
                // reached: a decision makes several calls, and each must not wait its timeout.
                if e.is_timeout() || e.is_io_error() {
                    *lock(&self.down_until) = Some(Instant::now() + RETRY_AFTER);
                }
                let result = if e.is_timeout() { CallResult::Timeout } else { CallResult::Malformed };
                crate::metrics::call(Call::SharedCache, result, started);
                self.warn(if e.is_timeout() {
                    "the shared cache's Redis did not answer in time; deciding without it"
                } else {
                    "the shared cache's Redis refused a command or answered garbage; deciding without it"
                });
                None
            }
        }
    }

    fn connect(&self, budget: Budget, timeout: Duration) -> Option<redis::Connection> {
        let password = match &self.password {
            Some(cell) => Some(self.secrets.get(cell, budget).ok()?),
            None => None,
        };
        connect(&self.settings.url, password.as_ref(), timeout)
    }

    /// A warning on stderr, at most once per [`WARN_INTERVAL`], saying how many were left out.
    /// The messages are fixed texts: never a key, a value or a Redis error's words.
    fn warn(&self, message: &'static str) {
        let now = Instant::now();
        let mut warned = lock(&self.warned);
        if warned.is_some_and(|at| now.duration_since(at) < WARN_INTERVAL) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *warned = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        let line = serde_json::json!({"level": "warn", "msg": message, "suppressed": suppressed});
        eprintln!("{line}");
    }
}

const REVOKED: &[u8] = b"revoked";
const USED: &[u8] = b"used";

/// Why a revocation could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    #[error("the shared cache tier is not configured (TOKENBRIDGE_SHARED_CACHE_URL)")]
    NotConfigured,
    #[error("TOKENBRIDGE_SHARED_CACHE_KEY cannot be had, or is shorter than 32 characters")]
    NoKey,
    #[error("the shared cache's Redis did not take the revocation")]
    Redis,
}

/// A connection to the Redis at `url`, authenticated with `password` when there is one.
fn connect(url: &str, password: Option<&crate::secret::Secret>, timeout: Duration) -> Option<redis::Connection> {
    use redis::IntoConnectionInfo;
    let mut info = url.into_connection_info().ok()?;
    if let Some(password) = password {
        let redis = info.redis_settings().clone().set_password(password.expose());
        info = info.set_redis_settings(redis);
    }
    redis::Client::open(info).ok()?.get_connection_with_timeout(timeout).ok()
}

fn listener_connection(url: &str, password: Option<&crate::secret::Secret>) -> Option<redis::Connection> {
    let connection = connect(url, password, Duration::from_secs(2))?;
    // Blocks until a message comes; a dead connection is found by the keep-alive of the socket.
    connection.set_read_timeout(None).ok()?;
    Some(connection)
}

/// The Redis URL's problem, if it has one: not redis:// or rediss://, unparsable, or carrying a
/// password (which belongs in a secret).
pub(crate) fn url_problem(url: &str) -> Option<String> {
    use redis::IntoConnectionInfo;
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Some("TOKENBRIDGE_SHARED_CACHE_URL must be a redis:// or rediss:// URL".into());
    }
    match url.into_connection_info() {
        Err(_) => Some("TOKENBRIDGE_SHARED_CACHE_URL is not a Redis URL redis-rs can read".into()),
        Ok(info) if info.redis_settings().password().is_some() => Some(
            "TOKENBRIDGE_SHARED_CACHE_URL holds a password: set it in TOKENBRIDGE_SHARED_CACHE_PASSWORD (a secret)"
                .into(),
        ),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Keys {
        Keys::derive(secret).expect("a long enough key")
    }

    #[test]
    fn a_sealed_value_opens_only_under_its_own_name_and_key() {
        let k = keys("0123456789abcdef0123456789abcdef");
        let sealed = k.seal("tb:v1:a", b"answer").expect("sealed");
        assert_eq!(k.open("tb:v1:a", &sealed).as_deref(), Some(&b"answer"[..]));
        assert_eq!(k.open("tb:v1:b", &sealed), None, "moved to another key");
        assert_eq!(keys("another key, also 32 characters long").open("tb:v1:a", &sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("not empty") ^= 1;
        assert_eq!(k.open("tb:v1:a", &tampered), None);
        assert_eq!(k.open("tb:v1:a", &sealed[..5]), None);
    }

    #[test]
    fn keys_shorter_than_32_characters_are_refused() {
        assert!(Keys::derive("short").is_none());
        assert!(Keys::derive(&"x".repeat(31)).is_none());
    }

    #[test]
    fn names_hold_no_token_and_differ_by_scope_and_kind() {
        let k = keys("0123456789abcdef0123456789abcdef");
        let a = k.name(&[b"ab", b"c"]);
        assert_ne!(a, k.name(&[b"a", b"bc"]), "parts are length-prefixed");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn stored_answers_round_trip_and_garbage_is_refused() {
        let s = Stored { at: 1_700_000_000, status: 200, body: b"{\"active\":true}".to_vec() };
        assert_eq!(Stored::from_bytes(&s.to_bytes()), Some(s));
        assert_eq!(Stored::from_bytes(&[]), None);
        assert_eq!(Stored::from_bytes(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]), None, "another format");
        assert_eq!(Stored::from_bytes(&[1, 0, 0]), None);
    }

    #[test]
    fn urls_with_a_password_or_another_scheme_are_refused() {
        assert!(url_problem("redis://127.0.0.1:6379").is_none());
        assert!(url_problem("rediss://user@cache.example:6380/2").is_none());
        assert!(url_problem("redis://user:pw@127.0.0.1:6379").is_some());
        assert!(url_problem("http://127.0.0.1:6379").is_some());
    }
}
