//! A small HTTP client for secret stores (OCI Vault, the AWS Parameters and Secrets extension),
//! shared by the platform resolvers: no redirects, a per-call budget cut to the deadline, a size
//! cap, and errors that say what failed without the answer.

use std::time::{Duration, Instant};

use crate::secret::SecretError;

pub struct StoreClient {
    agent: ureq::Agent,
    timeout: Duration,
    max_answer: u64,
    /// What the store is called in error messages ("the Secrets service").
    name: &'static str,
}

impl StoreClient {
    pub fn new(name: &'static str, timeout: Duration, max_answer: u64) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("tokenbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
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
        let mut request = self.agent.get(url).config().timeout_global(Some(budget)).build();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().map_err(|e| match e {
            ureq::Error::Timeout(_) => SecretError::Timeout,
            _ => SecretError::Unavailable(format!("{} is unreachable", self.name)),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_answer)
            .read_to_vec()
            .map_err(|_| SecretError::Unavailable(format!("the answer of {} could not be read", self.name)))?;
        Ok((status, body))
    }
}
