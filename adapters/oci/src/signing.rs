//! OCI's HTTP request signature (draft-cavage HTTP Signatures, as the OCI SDKs apply it) for
//! GET requests: RSA PKCS#1 v1.5 with SHA-256 over `date`, `(request-target)` and `host`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// Why a key cannot sign. Never shows any of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the private key is not a PEM private key")]
    NotPem,
    #[error("the private key is not an RSA key")]
    NotRsa,
    #[error("the private key is not a usable RSA key")]
    UnusableRsa,
    #[error("signing failed")]
    Failed,
}

/// An RSA private key that signs requests. Its `Debug` shows nothing of the key.
pub struct Signer {
    key: RsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<private key>)")
    }
}

impl Signer {
    /// Reads a PEM private key, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, SigningError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| SigningError::NotPem)?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(SigningError::NotRsa),
        }
        .map_err(|_| SigningError::UnusableRsa)?;
        Ok(Self { key })
    }

    /// The `Authorization` value for a GET of `path_and_query` at `host` sent with `date`
    /// (RFC 1123), byte for byte as the official SDKs write it.
    pub fn authorization(
        &self,
        key_id: &str,
        host: &str,
        path_and_query: &str,
        date: &str,
    ) -> Result<String, SigningError> {
        let signing_string = signing_string("get", host, path_and_query, date);
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_string.as_bytes(), &mut signature)
            .map_err(|_| SigningError::Failed)?;
        Ok(format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"{key_id}\",signature=\"{}\",version=\"1\"",
            STANDARD.encode(signature)
        ))
    }

    /// The public half, DER `RSAPublicKey`, for verifying in tests.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

/// The lines that are signed, joined by `\n`.
pub fn signing_string(method: &str, host: &str, path_and_query: &str, date: &str) -> String {
    format!("date: {date}\n(request-target): {} {path_and_query}\nhost: {host}", method.to_ascii_lowercase())
}

/// An HTTP date (RFC 7231 IMF-fixdate), e.g. `Thu, 01 Jan 2026 00:00:00 GMT`.
pub fn http_date(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const PKCS8: &[u8] = include_bytes!("../tests/vectors/key-pkcs8.pem");
    const PKCS1: &[u8] = include_bytes!("../tests/vectors/key-pkcs1.pem");
    const RPST: &str = include_str!("../tests/vectors/rpst");
    const VECTORS: &str = include_str!("../tests/vectors/vectors.json");

    fn split(url: &str) -> (String, String) {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        (host.to_string(), path.to_string())
    }

    #[test]
    fn signatures_match_the_official_sdk_byte_for_byte() {
        let vectors: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
        assert_eq!(vectors.len(), 3);
        for key in [PKCS8, PKCS1] {
            let signer = Signer::from_pem(key).unwrap();
            for v in &vectors {
                let (host, path) = split(v["url"].as_str().unwrap());
                assert_eq!(host, v["host"].as_str().unwrap());
                let date = v["date"].as_str().unwrap();
                assert_eq!(signing_string("GET", &host, &path, date), v["signing_string"].as_str().unwrap());
                let key_id = format!("ST${}", RPST.trim());
                assert_eq!(
                    signer.authorization(&key_id, &host, &path, date).unwrap(),
                    v["authorization"].as_str().unwrap(),
                    "{}",
                    v["name"]
                );
            }
        }
    }

    #[test]
    fn http_date_is_imf_fixdate() {
        let t = time::macros::datetime!(2026-01-02 12:34:56 UTC);
        assert_eq!(http_date(t), "Fri, 02 Jan 2026 12:34:56 GMT");
    }

    #[test]
    fn junk_keys_are_errors_that_do_not_echo_the_key() {
        let e = Signer::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err();
        assert_eq!(e, SigningError::UnusableRsa);
        assert!(!e.to_string().contains("AAAA"));
        assert_eq!(Signer::from_pem(b"not pem").unwrap_err(), SigningError::NotPem);
    }
}
