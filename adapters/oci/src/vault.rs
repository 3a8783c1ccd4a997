//! OCI Vault secrets through the resource principal (v2.2, docs/oci.md): a secret value that
//! is an `ocid1.vaultsecret.…` OCID is fetched from the Secrets service with a signed request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use tokenbridge_core::{Secret, SecretError, SecretResolver, StoreClient};

use crate::signing::{Signer, http_date};

/// Re-read the session token and its key this long before the token expires.
const RPST_REFRESH_MARGIN: i64 = 300;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ANSWER: u64 = 256 * 1024;

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Resolves `ocid1.vaultsecret.…` references. Reads the resource principal lazily, at the first
/// secret, so a function without one still starts (and says why when a secret is needed).
pub struct VaultResolver {
    env: Lookup,
    session: Mutex<Option<Session>>,
    store: StoreClient,
}

/// The resource principal session token, its `exp`, and the private key it goes with. The
/// platform may rotate the key with the token, so both are read again together.
struct Session {
    token: String,
    exp: i64,
    signer: Arc<Signer>,
}

impl VaultResolver {
    /// Reads the `OCI_RESOURCE_PRINCIPAL_*` variables, and `TOKENBRIDGE_OCI_SECRETS_ENDPOINT` to
    /// override the Secrets endpoint (tests, private endpoints).
    pub fn from_env() -> Self {
        Self::with_lookup(Box::new(|k| std::env::var(k).ok()))
    }

    pub fn with_lookup(env: Lookup) -> Self {
        let store = StoreClient::with_lookup("the Secrets service", CALL_TIMEOUT, MAX_ANSWER, &*env);
        Self { env, session: Mutex::new(None), store }
    }

    fn var(&self, name: &str) -> Result<String, SecretError> {
        (self.env)(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            SecretError::Unresolvable(format!(
                "{name} is not set: OCI Vault secrets need the function's resource principal"
            ))
        })
    }

    /// A variable's value is a file path (absolute) or the content itself.
    fn file_or_value(&self, name: &str) -> Result<String, SecretError> {
        let value = self.var(name)?;
        if value.starts_with('/') {
            std::fs::read_to_string(&value)
                .map_err(|e| SecretError::Unresolvable(format!("cannot read {name} file {value}: {}", e.kind())))
        } else {
            Ok(value)
        }
    }

    /// The session token and its key, read again from their sources when the token nears its
    /// expiry (and after a failed read, so a file that appears later is picked up).
    fn session(&self, now: i64) -> Result<(String, Arc<Signer>), SecretError> {
        let mut cached = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.as_ref().filter(|s| now < s.exp - RPST_REFRESH_MARGIN) {
            return Ok((s.token.clone(), s.signer.clone()));
        }
        let token = self.file_or_value("OCI_RESOURCE_PRINCIPAL_RPST")?.trim().to_string();
        let exp = jwt_exp(&token).ok_or_else(|| {
            SecretError::Unresolvable("OCI_RESOURCE_PRINCIPAL_RPST is not a session token (no readable exp)".into())
        })?;
        let pem = self.file_or_value("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM")?;
        let signer = Signer::from_pem(pem.as_bytes())
            .map_err(|e| SecretError::Unresolvable(format!("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM: {e}")))?;
        let session = Session { token, exp, signer: Arc::new(signer) };
        let current = (session.token.clone(), session.signer.clone());
        *cached = Some(session);
        Ok(current)
    }

    /// `https://secrets.vaults.{region}.oci.{realm domain}`, unless overridden.
    fn endpoint(&self) -> Result<String, SecretError> {
        if let Some(endpoint) = (self.env)("TOKENBRIDGE_OCI_SECRETS_ENDPOINT").filter(|e| !e.is_empty()) {
            tokenbridge_core::check_url(&endpoint)
                .map_err(|why| SecretError::Unresolvable(format!("TOKENBRIDGE_OCI_SECRETS_ENDPOINT: {why}")))?;
            return Ok(endpoint.trim_end_matches('/').to_string());
        }
        let metadata: Option<Value> = (self.env)("OCI_REGION_METADATA").and_then(|m| serde_json::from_str(&m).ok());
        let field = |k: &str| metadata.as_ref().and_then(|m| m.get(k)).and_then(Value::as_str).map(str::to_string);
        let region = field("regionIdentifier").map_or_else(|| self.var("OCI_RESOURCE_PRINCIPAL_REGION"), Ok)?;
        let domain = field("realmDomainComponent").unwrap_or_else(|| "oraclecloud.com".into());
        Ok(format!("https://secrets.vaults.{region}.oci.{domain}"))
    }

    fn fetch(&self, ocid: &str, deadline: Option<Instant>) -> Result<Secret, SecretError> {
        let now = time::OffsetDateTime::now_utc();
        let (token, signer) = self.session(now.unix_timestamp())?;
        let endpoint = self.endpoint()?;
        let path = format!("/20190301/secretbundles/{ocid}");
        let url = format!("{endpoint}{path}");
        let uri: http::Uri =
            url.parse().map_err(|_| SecretError::Unresolvable(format!("bad Secrets endpoint {endpoint:?}")))?;
        let host = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let date = http_date(now);
        let authorization = signer
            .authorization(&format!("ST${token}"), &host, &path, &date)
            .map_err(|e| SecretError::Unresolvable(e.to_string()))?;
        let headers =
            [("date", date.as_str()), ("authorization", authorization.as_str()), ("accept", "application/json")];
        let (status, body) = self.store.get(&url, &headers, deadline)?;
        if status == 401 {
            // The token and key in hand may be a pair the platform has rotated half-way through
            // reading: read both again next time rather than keep using them until expiry.
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        match status {
            200 => secret_from_bundle(&body),
            401 | 403 | 404 => Err(SecretError::Unresolvable(format!(
                "the Secrets service answered {status} for {ocid}: check that the secret exists and a policy lets the function's dynamic group read it"
            ))),
            _ => Err(SecretError::Unavailable(format!("the Secrets service answered {status}"))),
        }
    }
}

impl SecretResolver for VaultResolver {
    fn handles(&self, reference: &str) -> bool {
        reference.starts_with("ocid1.vaultsecret.")
    }

    fn resolve(&self, reference: &str, deadline: Option<Instant>) -> Result<Secret, SecretError> {
        let valid = reference.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(SecretError::Unresolvable(format!("{reference:?} is not a valid secret OCID")));
        }
        self.fetch(reference, deadline)
    }
}

/// `{"secretBundleContent":{"contentType":"BASE64","content":"<b64>"}}` → the secret text.
fn secret_from_bundle(body: &[u8]) -> Result<Secret, SecretError> {
    let malformed = || SecretError::Unavailable("the Secrets service's answer is not a secret bundle".into());
    let bundle: Value = serde_json::from_slice(body).map_err(|_| malformed())?;
    let content = bundle.get("secretBundleContent").ok_or_else(malformed)?;
    if content.get("contentType").and_then(Value::as_str) != Some("BASE64") {
        return Err(malformed());
    }
    let encoded = content.get("content").and_then(Value::as_str).ok_or_else(malformed)?;
    let bytes = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text =
        String::from_utf8(bytes).map_err(|_| SecretError::Unresolvable("the secret is not UTF-8 text".into()))?;
    Ok(Secret::new(text))
}

/// The `exp` claim of a JWT, without verifying it (the Secrets service does that).
fn jwt_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?).ok()?;
    claims.get("exp")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_the_session_token() {
        assert_eq!(jwt_exp(include_str!("../tests/vectors/rpst").trim()), Some(1_893_456_000));
        assert_eq!(jwt_exp("not-a-jwt"), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
    }

    #[test]
    fn decodes_a_secret_bundle() {
        let body = br#"{"secretBundleContent":{"contentType":"BASE64","content":"czNjcjN0"},"versionNumber":3}"#;
        assert_eq!(secret_from_bundle(body).unwrap().expose(), "s3cr3t");
        assert!(secret_from_bundle(br#"{"secretBundleContent":{"contentType":"TEXT","content":"x"}}"#).is_err());
        assert!(secret_from_bundle(b"<html>").is_err());
    }

    #[test]
    fn endpoint_follows_region_and_realm() {
        let r = VaultResolver::with_lookup(Box::new(|k| match k {
            "OCI_RESOURCE_PRINCIPAL_REGION" => Some("eu-frankfurt-1".into()),
            "OCI_REGION_METADATA" => Some(r#"{"realmKey":"oc1","realmDomainComponent":"oraclecloud.com"}"#.into()),
            _ => None,
        }));
        assert_eq!(r.endpoint().unwrap(), "https://secrets.vaults.eu-frankfurt-1.oci.oraclecloud.com");
    }

    #[test]
    fn without_a_resource_principal_the_error_says_so() {
        let r = VaultResolver::with_lookup(Box::new(|_| None));
        let e = r.resolve("ocid1.vaultsecret.oc1.iad.x", None).unwrap_err();
        assert!(e.to_string().contains("OCI_RESOURCE_PRINCIPAL_RPST is not set"), "{e}");
    }

    #[test]
    fn the_key_is_read_again_with_the_session_token() {
        let dir = std::env::temp_dir().join(format!("tb-rpst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (rpst, pem) = (dir.join("rpst"), dir.join("key.pem"));
        std::fs::write(&rpst, include_str!("../tests/vectors/rpst")).unwrap();
        std::fs::write(&pem, include_str!("../tests/vectors/key-pkcs8.pem")).unwrap();
        let paths = [rpst.display().to_string(), pem.display().to_string()];
        let r = VaultResolver::with_lookup(Box::new(move |k| match k {
            "OCI_RESOURCE_PRINCIPAL_RPST" => Some(paths[0].clone()),
            "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM" => Some(paths[1].clone()),
            _ => None,
        }));
        let exp = 1_893_456_000;
        assert!(r.session(exp - 3600).is_ok());
        // The platform rotates the key: until the token nears its expiry the session stands...
        std::fs::write(&pem, "not a key").unwrap();
        assert!(r.session(exp - 3600).is_ok());
        // ...then token and key are read again, together.
        let Err(e) = r.session(exp - 60) else { panic!("the new key is read") };
        assert!(e.to_string().contains("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM"), "{e}");
        std::fs::write(&pem, include_str!("../tests/vectors/key-pkcs8.pem")).unwrap();
        assert!(r.session(exp - 60).is_ok(), "a failed read is not remembered");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn odd_references_are_refused_before_any_request() {
        let r = VaultResolver::with_lookup(Box::new(|_| None));
        assert!(
            r.resolve("ocid1.vaultsecret.oc1/../../x", None)
                .unwrap_err()
                .to_string()
                .contains("not a valid secret OCID")
        );
    }
}
