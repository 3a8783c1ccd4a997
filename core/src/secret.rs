//! Client secrets: literal values or references (`file:`, `env:`, and platform references that
//! adapters resolve), fetched lazily, cached, and fetched again after a rotation.

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use crate::budget::Budget;
use crate::cache::{Cache, Entry};
use crate::clock::UnixTime;
use crate::outcome::{Cause, Dependency, Failure};
use crate::sync::lock;

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a configured secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Literal(Secret),
    /// `file:/path` — the file's content, trailing newline removed.
    File(String),
    /// `env:NAME` — another environment variable.
    Env(String),
    /// A platform reference (an OCI Vault secret OCID, an AWS ARN) for an adapter to resolve.
    Platform(String),
}

impl SecretRef {
    /// `literal:` escapes a literal that would otherwise read as a reference.
    pub fn parse(value: &str) -> Self {
        if let Some(literal) = value.strip_prefix("literal:") {
            SecretRef::Literal(Secret::new(literal))
        } else if let Some(path) = value.strip_prefix("file:") {
            SecretRef::File(path.to_string())
        } else if let Some(name) = value.strip_prefix("env:") {
            SecretRef::Env(name.to_string())
        } else if value.starts_with("ocid1.vaultsecret.") || aws_secret_store(value).is_some() {
            SecretRef::Platform(value.to_string())
        } else {
            SecretRef::Literal(Secret::new(value))
        }
    }
}

/// The AWS store an ARN names, for the adapter that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsSecretStore {
    SecretsManager,
    Ssm,
}

/// The store of a Secrets Manager or SSM ARN in any AWS partition (`arn:aws:`, `arn:aws-cn:`,
/// `arn:aws-us-gov:`, `arn:aws-iso-b:` …): an ARN taken for a literal would be sent to the IdP
/// as the secret itself.
pub fn aws_secret_store(reference: &str) -> Option<AwsSecretStore> {
    let mut parts = reference.splitn(4, ':');
    let (Some("arn"), Some(partition), Some(service), Some(_)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let rest = partition.strip_prefix("aws")?;
    if !rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return None;
    }
    match service {
        "secretsmanager" => Some(AwsSecretStore::SecretsManager),
        "ssm" => Some(AwsSecretStore::Ssm),
        _ => None,
    }
}

/// Shows the kind of reference and where it points, never a literal value.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Literal(_) => f.write_str("<redacted literal>"),
            SecretRef::File(p) => write!(f, "file:{p}"),
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::Platform(r) => f.write_str(r),
        }
    }
}

/// Why a secret could not be had. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no resolver in this build handles {0:?}; it is resolved by the OCI or Lambda adapter")]
    NoResolver(String),
    #[error("{0}")]
    Unresolvable(String),
    #[error("the secret store did not answer in time")]
    Timeout,
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
}

impl SecretError {
    /// The decision's cause when a client secret cannot be had.
    pub(crate) fn cause(&self) -> Cause {
        let failure = match self {
            SecretError::Timeout => Failure::Timeout,
            SecretError::Unavailable(_) => Failure::Unreachable,
            SecretError::NoResolver(_) | SecretError::Unresolvable(_) => Failure::Invalid,
        };
        Cause::new(Dependency::Secret, failure)
    }
}

/// A configured client secret that cannot be had, and why; what `check-config` reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {error}")]
pub struct SecretProblem {
    /// The setting that names the secret, e.g. `TOKENBRIDGE_BACKEND_CLIENT_SECRET`.
    pub setting: &'static str,
    pub error: SecretError,
}

/// Resolves platform references; registered by the adapters (OCI Vault, AWS Secrets Manager).
pub trait SecretResolver: Send + Sync {
    /// Whether this resolver understands the reference.
    fn handles(&self, reference: &str) -> bool;
    /// Fetches the current value, finishing before `deadline` when there is one.
    fn resolve(&self, reference: &str, deadline: Option<Instant>) -> Result<Secret, SecretError>;
}

/// Resolves a reference with the built-in sources or the first resolver that handles it.
pub fn resolve(
    reference: &SecretRef,
    resolvers: &[Box<dyn SecretResolver>],
    lookup: &dyn Fn(&str) -> Option<String>,
    deadline: Option<Instant>,
) -> Result<Secret, SecretError> {
    match reference {
        SecretRef::Literal(s) => Ok(s.clone()),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| Secret::new(s.trim_end_matches(['\r', '\n'])))
            .map_err(|e| SecretError::Unresolvable(format!("cannot read secret file {path}: {}", e.kind()))),
        SecretRef::Env(name) => lookup(name)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| SecretError::Unresolvable(format!("environment variable {name} is not set"))),
        SecretRef::Platform(r) => resolvers
            .iter()
            .find(|res| res.handles(r))
            .ok_or_else(|| SecretError::NoResolver(r.clone()))?
            .resolve(r, deadline),
    }
    .and_then(|s| {
        if s.expose().is_empty() { Err(SecretError::Unresolvable("the secret is empty".into())) } else { Ok(s) }
    })
}

/// A name → value function: the process environment, or a test's stand-in.
pub(crate) type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where secret values come from: the built-in sources, the environment, and the adapters'
/// resolvers.
pub(crate) struct Secrets {
    resolvers: Vec<Box<dyn SecretResolver>>,
    env: Box<Env>,
}

impl Secrets {
    pub(crate) fn new(resolvers: Vec<Box<dyn SecretResolver>>, env: Box<Env>) -> Self {
        Self { resolvers, env }
    }

    /// The cell's value, fetched on first use.
    pub(crate) fn get(&self, cell: &SecretCell, budget: Budget) -> Result<Secret, SecretError> {
        cell.get(|r| self.fetch(r, budget), budget.now, budget.secret_wait_until())
    }

    /// A new value for the cell after an IdP rejected `rejected`; see [`SecretCell::refresh`].
    pub(crate) fn refresh(
        &self,
        cell: &SecretCell,
        rejected: &Secret,
        min_interval: i64,
        budget: Budget,
    ) -> Option<Secret> {
        cell.refresh(rejected, |r| self.fetch(r, budget), budget.now, min_interval, budget.wait_until())
    }

    /// Why the secret `name` refers to cannot be had (now), if it cannot.
    pub(crate) fn check(&self, setting: &'static str, cell: &SecretCell, now: UnixTime) -> Option<SecretProblem> {
        self.get(cell, Budget::new(now, None, std::time::Duration::ZERO))
            .err()
            .map(|error| SecretProblem { setting, error })
    }

    fn fetch(&self, reference: &SecretRef, budget: Budget) -> Result<Secret, SecretError> {
        resolve(reference, &self.resolvers, &*self.env, budget.deadline())
    }
}

/// One configured secret, resolved at first use and kept; `refresh` fetches it again after the
/// IdP said `invalid_client`, at most once per `min_interval` seconds. One fetch at a time:
/// concurrent callers wait for it, each no longer than its own deadline. A failed fetch is
/// remembered briefly, so a missing secret does not cost every request a call to the store.
pub(crate) struct SecretCell {
    reference: SecretRef,
    cache: Cache<(), Result<Secret, SecretError>, SecretError>,
    last_fetch: Mutex<Option<UnixTime>>,
}

/// How long a failed fetch is remembered.
const FAILURE_TTL: i64 = 5;

impl SecretCell {
    pub(crate) fn new(reference: SecretRef) -> Self {
        Self { reference, cache: Cache::new(1), last_fetch: Mutex::new(None) }
    }

    /// The cached value, resolving it on first use.
    pub(crate) fn get(
        &self,
        fetch: impl FnOnce(&SecretRef) -> Result<Secret, SecretError>,
        now: UnixTime,
        wait_until: Instant,
    ) -> Result<Secret, SecretError> {
        let loaded = self.cache.get_or_load(&(), now, wait_until, SecretError::Timeout, || {
            *lock(&self.last_fetch) = Some(now);
            let result = fetch(&self.reference);
            let until = if result.is_ok() { UnixTime::MAX } else { now.saturating_add(FAILURE_TTL) };
            Ok(Entry::until(result, until))
        });
        loaded.and_then(|(result, _)| result)
    }

    /// Fetches again if the last fetch is older than `min_interval`; returns the new value
    /// only when it differs from the one that was rejected (so the caller knows a retry helps).
    pub(crate) fn refresh(
        &self,
        rejected: &Secret,
        fetch: impl FnOnce(&SecretRef) -> Result<Secret, SecretError>,
        now: UnixTime,
        min_interval: i64,
        wait_until: Instant,
    ) -> Option<Secret> {
        if let Some(Ok(current)) = self.cache.peek(&(), now).filter(|c| c.as_ref() != Ok(rejected)) {
            // Someone else already refreshed it.
            return Some(current);
        }
        if lock(&self.last_fetch).is_some_and(|t| now - t < min_interval) {
            return None;
        }
        self.cache.forget(&());
        let fresh = self.get(fetch, now, wait_until).ok()?;
        (fresh != *rejected).then_some(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_reference_kinds() {
        assert_eq!(SecretRef::parse("file:/run/s"), SecretRef::File("/run/s".into()));
        assert_eq!(SecretRef::parse("env:X"), SecretRef::Env("X".into()));
        assert!(matches!(SecretRef::parse("ocid1.vaultsecret.oc1.x"), SecretRef::Platform(_)));
        assert!(matches!(SecretRef::parse("arn:aws:secretsmanager:eu-west-1:1:secret:x"), SecretRef::Platform(_)));
        assert_eq!(SecretRef::parse("hunter2"), SecretRef::Literal(Secret::new("hunter2")));
        assert_eq!(SecretRef::parse("literal:env:not-a-ref"), SecretRef::Literal(Secret::new("env:not-a-ref")));
    }

    #[test]
    fn aws_arns_of_every_partition_are_references() {
        for arn in [
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            "arn:aws-cn:secretsmanager:cn-north-1:1:secret:x",
            "arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/x",
            "arn:aws-iso-b:secretsmanager:us-isob-east-1:1:secret:x",
        ] {
            assert!(matches!(SecretRef::parse(arn), SecretRef::Platform(_)), "{arn}");
        }
        assert_eq!(aws_secret_store("arn:aws-cn:ssm:cn-north-1:1:parameter/x"), Some(AwsSecretStore::Ssm));
        assert_eq!(
            aws_secret_store("arn:aws-us-gov:secretsmanager:r:1:secret:x"),
            Some(AwsSecretStore::SecretsManager)
        );
        for literal in ["arn:aws:s3:::bucket", "arn:azure:ssm:r:1:x", "arn:AWS:ssm:r:1:x", "arn:aws:ssm"] {
            assert_eq!(aws_secret_store(literal), None, "{literal}");
        }
        assert!(matches!(SecretRef::parse("arn:aws:s3:::bucket"), SecretRef::Literal(_)));
    }

    #[test]
    fn debug_never_shows_a_literal() {
        let shown = format!("{:?} {:?}", SecretRef::parse("hunter2"), Secret::new("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn file_secret_drops_the_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("tb-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cr3t\n").unwrap();
        let got = resolve(&SecretRef::File(dir.display().to_string()), &[], &no_env, None).unwrap();
        assert_eq!(got.expose(), "s3cr3t");
        std::fs::remove_file(dir).unwrap();
    }

    #[test]
    fn missing_file_error_names_the_path_not_a_value() {
        let err = resolve(&SecretRef::File("/nonexistent/x".into()), &[], &no_env, None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x"));
    }

    #[test]
    fn platform_reference_without_resolver_says_so() {
        let r = SecretRef::parse("ocid1.vaultsecret.oc1.iad.abc");
        assert!(matches!(resolve(&r, &[], &no_env, None), Err(SecretError::NoResolver(_))));
    }

    #[test]
    fn empty_secret_is_refused() {
        let env = |_: &str| Some(String::new());
        assert!(resolve(&SecretRef::Env("X".into()), &[], &env, None).is_err());
        assert!(resolve(&SecretRef::Literal(Secret::new("")), &[], &no_env, None).is_err());
    }

    #[test]
    fn cell_fetches_once_then_refreshes_at_most_once_per_interval() {
        let cell = SecretCell::new(SecretRef::Env("X".into()));
        let calls = Cell::new(0);
        let fetch = |v: &'static str| {
            let calls = &calls;
            move |_: &SecretRef| {
                calls.set(calls.get() + 1);
                Ok(Secret::new(v))
            }
        };
        let old = cell.get(fetch("old"), 100, soon()).unwrap();
        assert_eq!(cell.get(fetch("unused"), 101, soon()).unwrap().expose(), "old");
        assert_eq!(calls.get(), 1);
        // Too soon after the first fetch: no refetch.
        assert_eq!(cell.refresh(&old, fetch("new"), 110, 30, soon()), None);
        assert_eq!(calls.get(), 1);
        // Later: refetched, and a changed value is reported.
        assert_eq!(cell.refresh(&old, fetch("new"), 131, 30, soon()).unwrap().expose(), "new");
        assert_eq!(calls.get(), 2);
        assert_eq!(cell.get(fetch("unused"), 132, soon()).unwrap().expose(), "new");
    }

    #[test]
    fn cell_refresh_with_unchanged_value_says_retry_will_not_help() {
        let cell = SecretCell::new(SecretRef::Env("X".into()));
        let same = cell.get(|_| Ok(Secret::new("same")), 0, soon()).unwrap();
        assert_eq!(cell.refresh(&same, |_| Ok(Secret::new("same")), 100, 30, soon()), None);
    }

    #[test]
    fn a_failed_fetch_is_remembered_briefly() {
        let cell = SecretCell::new(SecretRef::Env("X".into()));
        let calls = Cell::new(0);
        let failing = |_: &SecretRef| {
            calls.set(calls.get() + 1);
            Err(SecretError::Unavailable("down".into()))
        };
        assert!(cell.get(failing, 100, soon()).is_err());
        assert!(cell.get(failing, 104, soon()).is_err());
        assert_eq!(calls.get(), 1);
        assert_eq!(cell.get(|_| Ok(Secret::new("back")), 105, soon()).unwrap().expose(), "back");
    }

    fn soon() -> Instant {
        Instant::now() + std::time::Duration::from_secs(5)
    }
}
