//! A small HTTP client for secret stores (OCI Vault, the AWS Parameters and Secrets extension),
//! shared by the platform resolvers: no redirects, a per-call budget cut to the deadline, a size
//! cap, and errors that say what failed without the answer. Its agent comes from the same builder
//! as the IdP calls' ([`crate::http::agent`]), so `TOKENBRIDGE_CA_BUNDLE` covers the Secrets
//! service as it covers the IdPs.

use std::time::{Duration, Instant};

use crate::http::{self, CA_BUNDLE};
use crate::metrics::CallResult;
use crate::secret::SecretError;

pub struct StoreClient {
    /// `Err`: `TOKENBRIDGE_CA_BUNDLE` names roots that could not be read. Every call then fails
    /// with why: trusting other roots than the ones named would be a quiet downgrade.
    agent: Result<ureq::Agent, String>,
    timeout: Duration,
    max_answer: u64,
    /// What the store is called in error messages ("the Secrets service").
    name: &'static str,
}

impl StoreClient {
    /// A client trusting the roots of `TOKENBRIDGE_CA_BUNDLE` as `lookup` reads it, if set.
    pub fn with_lookup(
        name: &'static str,
        timeout: Duration,
        max_answer: u64,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        // Read as the configuration reads it: trimmed, and empty is unset.
        let bundle = lookup(CA_BUNDLE).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let agent = match bundle.as_deref().map(http::read_ca_bundle) {
            None => Ok(http::agent(None, timeout, timeout)),
            Some(Ok(roots)) => Ok(http::agent(Some(&roots), timeout, timeout)),
            Some(Err(why)) => Err(why),
        };
        Self { agent, timeout, max_answer, name }
    }

    /// GETs `url` with `headers`, finishing before `deadline`: the status and the body.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        deadline: Option<Instant>,
    ) -> Result<(u16, Vec<u8>), SecretError> {
        let budget = deadline.map_or(self.timeout, |d| d.saturating_duration_since(Instant::now()).min(self.timeout));
        if budget.is_zero() {
            return Err(SecretError::Timeout);
        }
        let agent = self.agent.as_ref().map_err(|why| SecretError::Unresolvable(why.clone()))?;
        let mut request = agent.get(url).config().timeout_global(Some(budget)).timeout_connect(Some(budget)).build();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        let counted = |result| crate::metrics::call(crate::metrics::Call::Secrets, result, started);
        let mut response = request.call().map_err(|e| {
            counted(match e {
                ureq::Error::Timeout(_) => CallResult::Timeout,
                _ => CallResult::Refused,
            });
            match e {
                ureq::Error::Timeout(_) => SecretError::Timeout,
                _ => SecretError::Unavailable(format!("{} is unreachable", self.name)),
            }
        })?;
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(self.max_answer).read_to_vec().map_err(|_| {
            counted(CallResult::Malformed);
            SecretError::Unavailable(format!("the answer of {} could not be read", self.name))
        })?;
        counted(CallResult::of_status(status));
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(bundle: &str) -> StoreClient {
        let bundle = bundle.to_string();
        StoreClient::with_lookup("the test store", Duration::from_secs(1), 1024, &move |k| {
            (k == CA_BUNDLE).then(|| bundle.clone())
        })
    }

    #[test]
    fn an_unreadable_ca_bundle_fails_every_call_instead_of_trusting_the_built_in_roots() {
        let missing = std::env::temp_dir().join(format!("tb-no-bundle-{}.pem", std::process::id()));
        let store = client(&missing.display().to_string());
        match store.get("http://127.0.0.1:9/", &[], None) {
            Err(SecretError::Unresolvable(why)) => assert!(why.starts_with("TOKENBRIDGE_CA_BUNDLE "), "{why}"),
            other => panic!("{:?}", other.map(|(status, _)| status)),
        }
        let empty = std::env::temp_dir().join(format!("tb-empty-bundle-{}.pem", std::process::id()));
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let store = client(&empty.display().to_string());
        assert!(
            matches!(store.get("http://127.0.0.1:9/", &[], None), Err(SecretError::Unresolvable(why)) if why.contains("holds no PEM certificate"))
        );
        let _ = std::fs::remove_file(&empty);
    }

    #[test]
    fn a_blank_ca_bundle_setting_is_unset_as_in_the_configuration() {
        assert!(client("  ").agent.is_ok());
        assert!(client("").agent.is_ok());
    }
}
