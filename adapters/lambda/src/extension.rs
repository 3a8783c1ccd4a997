//! Secrets from AWS Secrets Manager and SSM Parameter Store through the AWS Parameters and
//! Secrets Lambda Extension (docs/lambda.md), which answers on localhost during invocations.
//!
//! A reference is a Secrets Manager ARN or an SSM parameter ARN, in any partition; a JSON secret is narrowed to
//! one key with `#key`: `arn:aws:secretsmanager:eu-west-1:123:secret:idp-a-AbCdEf#client_secret`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenbridge_core::{AwsSecretStore, Secret, SecretError, SecretResolver, StoreClient, aws_secret_store};

const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_ANSWER: u64 = 256 * 1024;

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct ExtensionResolver {
    env: Lookup,
    store: StoreClient,
}

impl ExtensionResolver {
    /// Reads `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` (default 2773) and `AWS_SESSION_TOKEN` at
    /// each fetch: the extension only answers once the function is invoked.
    pub fn from_env() -> Self {
        Self::with_lookup(Box::new(|k| std::env::var(k).ok()))
    }

    pub fn with_lookup(env: Lookup) -> Self {
        let store = StoreClient::with_lookup("the Parameters and Secrets extension", CALL_TIMEOUT, MAX_ANSWER, &*env);
        Self { env, store }
    }

    fn get(&self, path_and_query: &str, deadline: Option<Instant>) -> Result<Value, SecretError> {
        let port = (self.env)("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").unwrap_or_else(|| "2773".into());
        let port: u16 =
            port.trim().parse().map_err(|_| SecretError::Unresolvable(format!("bad extension port {port:?}")))?;
        let token = (self.env)("AWS_SESSION_TOKEN").ok_or_else(|| {
            SecretError::Unresolvable(
                "AWS_SESSION_TOKEN is not set: AWS secrets are read through the Lambda extension".into(),
            )
        })?;
        let url = format!("http://localhost:{port}{path_and_query}");
        let (status, body) =
            self.store.get(&url, &[("X-Aws-Parameters-Secrets-Token", &token)], deadline).map_err(|e| match e {
                SecretError::Unavailable(_) => SecretError::Unavailable(
                    "the Parameters and Secrets extension does not answer (is its layer attached?)".into(),
                ),
                other => other,
            })?;
        match status {
            200 => serde_json::from_slice(&body)
                .map_err(|_| SecretError::Unavailable("the extension's answer is not JSON".into())),
            400 | 401 | 403 | 404 => Err(SecretError::Unresolvable(format!(
                "the extension answered {status}: check the ARN and that the function's role may read it"
            ))),
            _ => Err(SecretError::Unavailable(format!("the extension answered {status}"))),
        }
    }
}

impl SecretResolver for ExtensionResolver {
    fn handles(&self, reference: &str) -> bool {
        aws_secret_store(reference).is_some()
    }

    fn resolve(&self, reference: &str, deadline: Option<Instant>) -> Result<Secret, SecretError> {
        let (arn, key) = match reference.split_once('#') {
            Some((arn, key)) => (arn, Some(key)),
            None => (reference, None),
        };
        let value = if aws_secret_store(arn) == Some(AwsSecretStore::Ssm) {
            let answer = self
                .get(&format!("/systemsmanager/parameters/get?name={}&withDecryption=true", encode(arn)), deadline)?;
            answer.pointer("/Parameter/Value").and_then(Value::as_str).map(str::to_string)
        } else {
            let answer = self.get(&format!("/secretsmanager/get?secretId={}", encode(arn)), deadline)?;
            answer.get("SecretString").and_then(Value::as_str).map(str::to_string)
        }
        .ok_or_else(|| SecretError::Unresolvable(format!("{arn} holds no text value")))?;
        narrow(value, key, arn).map(Secret::new)
    }
}

/// The whole value, or one key of it when it is a JSON object.
fn narrow(value: String, key: Option<&str>, arn: &str) -> Result<String, SecretError> {
    let Some(key) = key else { return Ok(value) };
    let object: Value = serde_json::from_str(&value)
        .map_err(|_| SecretError::Unresolvable(format!("{arn} is not JSON, so it has no key {key:?}")))?;
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SecretError::Unresolvable(format!("{arn} has no text key {key:?}")))
}

/// Percent-encodes a query value (ARNs hold `:` and `/`): all but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(value, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_secret_is_narrowed_to_its_key() {
        let v = r#"{"client_secret":"s3cr3t","other":1}"#.to_string();
        assert_eq!(narrow(v.clone(), Some("client_secret"), "arn").unwrap(), "s3cr3t");
        assert_eq!(narrow(v.clone(), None, "arn").unwrap(), v);
        assert!(narrow(v, Some("missing"), "arn").is_err());
        assert!(narrow("plain".into(), Some("k"), "arn").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("arn:aws:ssm:eu-west-1:1:parameter/a b"),
            "arn%3Aaws%3Assm%3Aeu-west-1%3A1%3Aparameter%2Fa%20b"
        );
    }

    #[test]
    fn arns_of_every_partition_are_handled() {
        let r = ExtensionResolver::with_lookup(Box::new(|_| None));
        for arn in [
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            "arn:aws-cn:secretsmanager:cn-north-1:1:secret:x#k",
            "arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/x",
            "arn:aws-iso:ssm:us-iso-east-1:1:parameter/x",
        ] {
            assert!(r.handles(arn), "{arn}");
        }
        assert!(!r.handles("arn:aws:s3:::bucket"));
        assert!(!r.handles("ocid1.vaultsecret.oc1.x"));
    }

    #[test]
    fn without_a_session_token_the_error_says_why() {
        let r = ExtensionResolver::with_lookup(Box::new(|_| None));
        let e = r.resolve("arn:aws:secretsmanager:eu-west-1:1:secret:x", None).unwrap_err();
        assert!(e.to_string().contains("AWS_SESSION_TOKEN"), "{e}");
    }
}
