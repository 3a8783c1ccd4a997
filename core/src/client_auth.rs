//! How tokenbridge authenticates as a client at IdP A and IdP B: `client_secret_basic` and
//! `client_secret_post` (RFC 6749 §2.3.1), `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9),
//! a JWT signed with our private key, freshly for every call, and `tls_client_auth` /
//! `self_signed_tls_client_auth` (RFC 8705 §2), a client certificate on the TLS connection.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::clock::UnixTime;
use crate::secret::Secret;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid. Short: it is a bearer credential while it lives, and each
/// is used for one call only.
pub(crate) const ASSERTION_LIFETIME: i64 = 60;

/// The configured client authentication method, with what `private_key_jwt` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    SecretBasic,
    SecretPost,
    PrivateKeyJwt(AssertionSettings),
    /// RFC 8705 §2.1: a certificate the IdP checks against a PKI (subject or SAN registered).
    TlsClientAuth,
    /// RFC 8705 §2.2: a self-signed certificate the IdP matches against the registered one.
    SelfSignedTlsClientAuth,
}

impl Method {
    /// The method's name as RFC 7591 and the discovery documents spell it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Method::SecretBasic => "client_secret_basic",
            Method::SecretPost => "client_secret_post",
            Method::PrivateKeyJwt(_) => "private_key_jwt",
            Method::TlsClientAuth => "tls_client_auth",
            Method::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether a private key authenticates us, rather than a client secret.
    pub(crate) fn uses_key(&self) -> bool {
        matches!(self, Method::PrivateKeyJwt(_)) || self.uses_certificate()
    }

    /// Whether a client certificate (with that key) authenticates us on the TLS connection.
    pub(crate) fn uses_certificate(&self) -> bool {
        matches!(self, Method::TlsClientAuth | Method::SelfSignedTlsClientAuth)
    }
}

/// What a client assertion carries besides the client id, from the settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AssertionSettings {
    /// `aud`; the endpoint's URL when unset.
    pub audience: Option<String>,
    /// The header's `kid`.
    pub key_id: Option<String>,
    /// The signing algorithm; from the key's type when unset.
    pub alg: Option<Alg>,
    /// The header's `x5t#S256`: base64url of the certificate's SHA-256 (Entra certificate
    /// credentials).
    pub cert_sha256: Option<String>,
}

/// The JWS algorithms tokenbridge signs assertions with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    RS256,
    PS256,
    ES256,
}

impl Alg {
    /// The JOSE name, exactly (JWA names are case-sensitive).
    pub(crate) fn parse(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::RS256),
            "PS256" => Some(Alg::PS256),
            "ES256" => Some(Alg::ES256),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
            Alg::ES256 => "ES256",
        }
    }
}

/// Whether `value` is a certificate's SHA-256 as `x5t#S256` carries it: base64url without
/// padding of 32 bytes. Anything else would be sent as is and refused by the IdP, far from the
/// setting that caused it.
pub(crate) fn is_sha256_thumbprint(value: &str) -> bool {
    URL_SAFE_NO_PAD.decode(value).is_ok_and(|bytes| bytes.len() == 32)
}

/// Why a private key cannot sign assertions. Never holds any part of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("not an unencrypted PEM private key (PKCS#8 `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)")]
    NotPem,
    #[error("the PEM private key is neither an RSA key (2048 to 8192 bits) nor an EC P-256 key")]
    Unsupported,
    #[error("this {key} key cannot sign {alg}")]
    AlgMismatch { key: &'static str, alg: &'static str },
    #[error("signing the client assertion failed")]
    Signing,
}

/// A private key ready to sign with one algorithm. Its `Debug` shows the algorithm only.
pub(crate) struct SigningKey {
    alg: Alg,
    key: KeyPair,
}

enum KeyPair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.alg.as_str())
    }
}

impl SigningKey {
    /// Reads a PEM private key — PKCS#8, PKCS#1 RSA or SEC1 EC — for `alg`, or for the
    /// algorithm its type implies (RS256 for RSA, ES256 for P-256) when `alg` is `None`.
    pub(crate) fn from_pem(pem: &Secret, alg: Option<Alg>) -> Result<Self, KeyError> {
        // The PEM parser's errors quote the input: none is passed on.
        let der = PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|_| KeyError::NotPem)?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()).map(KeyPair::Rsa),
            PrivateKeyDer::Sec1(k) => {
                EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, k.secret_sec1_der())
                    .map(KeyPair::Ec)
            }
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).map(KeyPair::Rsa).or_else(|_| {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, k.secret_pkcs8_der())
                    .map(KeyPair::Ec)
            }),
            _ => return Err(KeyError::NotPem),
        }
        .map_err(|_| KeyError::Unsupported)?;
        let alg = match (&key, alg) {
            (KeyPair::Rsa(_), None) => Alg::RS256,
            (KeyPair::Ec(_), None) => Alg::ES256,
            (KeyPair::Rsa(_), Some(a @ (Alg::RS256 | Alg::PS256))) | (KeyPair::Ec(_), Some(a @ Alg::ES256)) => a,
            (KeyPair::Rsa(_), Some(a)) => return Err(KeyError::AlgMismatch { key: "RSA", alg: a.as_str() }),
            (KeyPair::Ec(_), Some(a)) => return Err(KeyError::AlgMismatch { key: "EC P-256", alg: a.as_str() }),
        };
        Ok(Self { alg, key })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.key {
            KeyPair::Rsa(key) => {
                let padding: &'static dyn signature::RsaEncoding =
                    if self.alg == Alg::PS256 { &signature::RSA_PSS_SHA256 } else { &signature::RSA_PKCS1_SHA256 };
                let mut out = vec![0; key.public_modulus_len()];
                key.sign(padding, &rng, message, &mut out).map_err(|_| KeyError::Signing)?;
                Ok(out)
            }
            KeyPair::Ec(key) => key.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| KeyError::Signing),
        }
    }
}

/// A client assertion (RFC 7523 §3, OIDC Core §9): `iss` = `sub` = our client id, `aud` the
/// configured audience or else `endpoint`, a random `jti`, valid from `now` for
/// [`ASSERTION_LIFETIME`] seconds, signed with `key`.
pub(crate) fn assertion(
    key: &SigningKey,
    settings: &AssertionSettings,
    client_id: &str,
    endpoint: &str,
    now: UnixTime,
) -> Result<String, KeyError> {
    let mut header = serde_json::json!({"alg": key.alg.as_str(), "typ": "JWT"});
    if let Some(kid) = &settings.key_id {
        header["kid"] = kid.as_str().into();
    }
    if let Some(thumbprint) = &settings.cert_sha256 {
        header["x5t#S256"] = thumbprint.as_str().into();
    }
    // Single-use at many IdPs (they remember each `jti` until `exp`): 128 random bits.
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).map_err(|_| KeyError::Signing)?;
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": settings.audience.as_deref().unwrap_or(endpoint),
        "jti": URL_SAFE_NO_PAD.encode(jti),
        "iat": now,
        // Entra requires `nbf`; it is the same instant as `iat`.
        "nbf": now,
        "exp": now.saturating_add(ASSERTION_LIFETIME),
    });
    let message =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(message.as_bytes())?;
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Why a client certificate and key cannot make a TLS identity. Never holds any part of either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertError {
    #[error("holds no PEM certificate")]
    NoCertificate,
    #[error("the certificate is not a readable X.509 certificate")]
    BadCertificate,
    #[error("the key is not an unencrypted PEM private key (PKCS#8, RSA or EC)")]
    NotPemKey,
    #[error("the key is not of a type TLS can use")]
    UnsupportedKey,
    #[error("the key does not belong to the certificate")]
    KeyMismatch,
}

impl CertError {
    /// Whether the key is at fault (rather than the certificate, or the pair).
    pub(crate) fn is_about_the_key(&self) -> bool {
        matches!(self, CertError::NotPemKey | CertError::UnsupportedKey)
    }
}

/// A client certificate chain and its private key, checked to belong together, ready for a TLS
/// handshake. Its `Debug` shows the certificate's subject and fingerprint only.
pub(crate) struct ClientIdentity {
    pub(crate) cert: ureq::tls::ClientCert,
    /// The end-entity certificate's subject, e.g. `C=DE, O=Example, CN=tokenbridge`.
    pub(crate) subject: String,
    /// Its SHA-256, colon-separated upper-case hex as `openssl x509 -fingerprint` prints it.
    pub(crate) sha256: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientIdentity({}, SHA-256 {})", self.subject, self.sha256)
    }
}

impl ClientIdentity {
    /// Reads the chain (end-entity first) and the key, and checks them the way rustls will at
    /// the handshake, so that a mismatch is a configuration problem here rather than a failure
    /// (ureq would panic) at the first connection.
    pub(crate) fn from_pem(chain: &Secret, key: &Secret) -> Result<Self, CertError> {
        let Chain { certs, subject, sha256 } = Chain::from_pem(chain)?;
        // Both read the first private key of the PEM: the one ureq hands rustls is the one checked.
        let der = PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|_| CertError::NotPemKey)?;
        let key_for_ureq =
            ureq::tls::PrivateKey::from_pem(key.expose().as_bytes()).map_err(|_| CertError::NotPemKey)?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::sign::CertifiedKey::from_der(certs.clone(), der, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => CertError::KeyMismatch,
            rustls::Error::General(_) => CertError::UnsupportedKey,
            _ => CertError::BadCertificate,
        })?;
        let chain: Vec<ureq::tls::Certificate<'static>> =
            certs.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect();
        Ok(Self { cert: ureq::tls::ClientCert::new_with_certs(&chain, key_for_ureq), subject, sha256 })
    }
}

/// A PEM certificate chain, read: the certificates, and the end-entity one's subject and
/// SHA-256 (what `check-config` shows of it).
pub(crate) struct Chain {
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub(crate) subject: String,
    pub(crate) sha256: String,
}

impl Chain {
    pub(crate) fn from_pem(chain: &Secret) -> Result<Self, CertError> {
        use rustls::pki_types::CertificateDer;
        // The PEM parser's errors quote the input: none is passed on.
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.expose().as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| CertError::NoCertificate)?;
        let first = certs.first().ok_or(CertError::NoCertificate)?;
        let subject = subject(first).ok_or(CertError::BadCertificate)?;
        let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, first.as_ref())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        Ok(Self { certs, subject, sha256 })
    }
}

/// The subject of a DER certificate in words: the attributes check-config names (C, ST, L, O, OU,
/// CN), in order; others as the OID in hex. `None` when the DER is not a certificate.
fn subject(cert: &[u8]) -> Option<String> {
    let (certificate, _) = der_item(cert, 0x30)?;
    let (mut tbs, _) = der_item(certificate, 0x30)?;
    // version [0] (optional), serialNumber, signature, issuer, validity, then subject.
    if tbs.first() == Some(&0xa0) {
        tbs = der_item(tbs, 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30, 0x30] {
        tbs = der_item(tbs, tag)?.1;
    }
    let (mut rdns, _) = der_item(tbs, 0x30)?;
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (mut set, rest) = der_item(rdns, 0x31)?;
        rdns = rest;
        while !set.is_empty() {
            let (attribute, rest) = der_item(set, 0x30)?;
            set = rest;
            let (oid, value) = der_item(attribute, 0x06)?;
            let (&tag, _) = value.split_first()?;
            let (text, _) = der_item(value, tag)?;
            parts.push(format!("{}={}", attribute_name(oid), String::from_utf8_lossy(text)));
        }
    }
    Some(if parts.is_empty() { "(empty subject)".to_string() } else { parts.join(", ") })
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        _ => oid.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(""),
    }
}

/// One DER item with tag `tag` at the start of `der`: (its contents, what follows). Lengths up
/// to 4 bytes long; anything else, or running past the end, is `None`.
fn der_item(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = der.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (len <= rest.len()).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    use serde_json::Value;

    const ENDPOINT: &str = "https://idp.example/oauth2/token";

    fn vector(name: &str) -> Secret {
        let path = format!("{}/../adapters/oci/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        Secret::new(std::fs::read_to_string(path).expect("test key"))
    }

    fn pem(label: &str, der: &[u8]) -> Secret {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
        Secret::new(format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n")))
    }

    fn ec_pkcs8() -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn public_key(key: &SigningKey) -> Vec<u8> {
        match &key.key {
            KeyPair::Rsa(k) => k.public_key().as_ref().to_vec(),
            KeyPair::Ec(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// The header and claims of `jwt`, after checking its signature with `key`'s public half.
    fn verified(jwt: &str, key: &SigningKey) -> (Value, Value) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let algorithm: &dyn signature::VerificationAlgorithm = match key.alg {
            Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let message = format!("{}.{}", parts[0], parts[1]);
        signature::UnparsedPublicKey::new(algorithm, public_key(key))
            .verify(message.as_bytes(), &signature)
            .expect("the signature verifies with the public key");
        let json = |p: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        (json(parts[0]), json(parts[1]))
    }

    #[test]
    fn an_assertion_names_the_client_the_endpoint_and_a_short_life() {
        let key = SigningKey::from_pem(&vector("key-pkcs8.pem"), None).unwrap();
        let jwt = assertion(&key, &AssertionSettings::default(), "tb-client", ENDPOINT, 1_800_000_000).unwrap();
        let (header, claims) = verified(&jwt, &key);
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        assert_eq!(claims["iss"], "tb-client");
        assert_eq!(claims["sub"], "tb-client");
        assert_eq!(claims["aud"], ENDPOINT);
        assert_eq!(claims["iat"], 1_800_000_000);
        assert_eq!(claims["nbf"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_000_060);
        assert_eq!(URL_SAFE_NO_PAD.decode(claims["jti"].as_str().unwrap()).unwrap().len(), 16);
    }

    #[test]
    fn the_header_carries_the_key_id_and_certificate_thumbprint_when_configured() {
        let key = SigningKey::from_pem(&vector("key-pkcs1.pem"), Some(Alg::PS256)).unwrap();
        let thumbprint = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let settings = AssertionSettings {
            audience: Some("https://login.example/tenant/v2.0".into()),
            key_id: Some("key-1".into()),
            alg: Some(Alg::PS256),
            cert_sha256: Some(thumbprint.clone()),
        };
        let (header, claims) = verified(&assertion(&key, &settings, "c", ENDPOINT, 0).unwrap(), &key);
        assert_eq!(header, serde_json::json!({"alg": "PS256", "typ": "JWT", "kid": "key-1", "x5t#S256": thumbprint}));
        assert_eq!(claims["aud"], "https://login.example/tenant/v2.0");
    }

    #[test]
    fn every_assertion_has_a_jti_of_its_own() {
        let key = SigningKey::from_pem(&pem("PRIVATE KEY", &ec_pkcs8()), None).unwrap();
        let jtis: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                let (_, claims) =
                    verified(&assertion(&key, &AssertionSettings::default(), "c", ENDPOINT, 0).unwrap(), &key);
                claims["jti"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
    }

    #[test]
    fn an_ec_key_signs_es256_in_the_jws_form() {
        let key = SigningKey::from_pem(&pem("PRIVATE KEY", &ec_pkcs8()), None).unwrap();
        assert_eq!(key.alg, Alg::ES256);
        let jwt = assertion(&key, &AssertionSettings::default(), "c", ENDPOINT, 0).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(jwt.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(signature.len(), 64, "r || s, not DER");
        assert_eq!(verified(&jwt, &key).0["alg"], "ES256");
    }

    #[test]
    fn pkcs1_rsa_and_sec1_ec_keys_are_read_too() {
        assert_eq!(SigningKey::from_pem(&vector("key-pkcs1.pem"), None).unwrap().alg, Alg::RS256);
        let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &ec_pkcs8()).unwrap();
        let sec1 = ec.private_key().as_der().unwrap();
        let key = SigningKey::from_pem(&pem("EC PRIVATE KEY", sec1.as_ref()), None).unwrap();
        verified(&assertion(&key, &AssertionSettings::default(), "c", ENDPOINT, 0).unwrap(), &key);
    }

    #[test]
    fn a_key_without_its_final_newline_is_read() {
        // `file:` secrets lose their trailing newline.
        let pem = vector("key-pkcs8.pem");
        let trimmed = Secret::new(pem.expose().trim_end());
        assert!(SigningKey::from_pem(&trimmed, None).is_ok());
    }

    #[test]
    fn an_algorithm_that_does_not_fit_the_key_is_refused() {
        let rsa = vector("key-pkcs8.pem");
        let e = SigningKey::from_pem(&rsa, Some(Alg::ES256)).unwrap_err();
        assert_eq!(e, KeyError::AlgMismatch { key: "RSA", alg: "ES256" });
        let ec = pem("PRIVATE KEY", &ec_pkcs8());
        assert!(matches!(SigningKey::from_pem(&ec, Some(Alg::RS256)), Err(KeyError::AlgMismatch { .. })));
        assert!(matches!(SigningKey::from_pem(&ec, Some(Alg::PS256)), Err(KeyError::AlgMismatch { .. })));
    }

    #[test]
    fn what_is_not_a_usable_key_is_refused_without_quoting_it() {
        let p384 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let ed = signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        for (secret, expected) in [
            (Secret::new("hunter2"), KeyError::NotPem),
            // The PEM reader decodes what it can; the bytes are then no key.
            (Secret::new("-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n"), KeyError::Unsupported),
            (pem("PRIVATE KEY", b"hunter2 is not DER"), KeyError::Unsupported),
            (pem("ENCRYPTED PRIVATE KEY", b"hunter2"), KeyError::NotPem),
            (pem("CERTIFICATE", b"hunter2"), KeyError::NotPem),
            (pem("PRIVATE KEY", p384.as_ref()), KeyError::Unsupported),
            (pem("PRIVATE KEY", ed.as_ref()), KeyError::Unsupported),
        ] {
            let e = SigningKey::from_pem(&secret, None).unwrap_err();
            assert_eq!(e, expected, "{:?}", secret.expose().get(..40));
            assert!(!e.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::from_pem(&vector("key-pkcs8.pem"), None).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(RS256)");
    }

    #[test]
    fn thumbprints_must_be_base64url_sha256() {
        assert!(is_sha256_thumbprint(&URL_SAFE_NO_PAD.encode([1u8; 32])));
        assert!(!is_sha256_thumbprint(&URL_SAFE_NO_PAD.encode([1u8; 20])), "a SHA-1 thumbprint");
        assert!(!is_sha256_thumbprint(&format!("{}=", URL_SAFE_NO_PAD.encode([1u8; 32]))), "padded");
        assert!(!is_sha256_thumbprint(&"ab".repeat(32)), "hex");
    }

    fn testdata(name: &str) -> Secret {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        Secret::new(std::fs::read_to_string(path).expect("test certificate or key"))
    }

    #[test]
    fn a_certificate_and_its_key_make_a_tls_identity_described_by_subject_and_fingerprint() {
        let identity = ClientIdentity::from_pem(&testdata("client-cert.pem"), &testdata("client-key.pem")).unwrap();
        assert_eq!(identity.subject, "C=DE, O=Example Org, CN=tokenbridge-test");
        // As `openssl x509 -noout -fingerprint -sha256` prints it (testdata/README.md).
        assert_eq!(
            identity.sha256,
            "F2:25:0D:96:05:A2:9D:D7:30:91:2D:08:8A:E0:AC:CA:AE:3B:4C:79:79:98:25:0F:0D:C9:24:8A:97:E2:EA:03"
        );
        assert_eq!(identity.cert.certs().len(), 1);
        let shown = format!("{identity:?}");
        assert!(shown.starts_with("ClientIdentity(C=DE, O=Example Org, CN=tokenbridge-test, SHA-256 F2:25"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let e = ClientIdentity::from_pem(&testdata("client-cert.pem"), &testdata("other-key.pem")).unwrap_err();
        assert_eq!(e, CertError::KeyMismatch);
        assert!(!e.is_about_the_key(), "the pair is at fault: reported at the certificate");
    }

    #[test]
    fn what_is_not_a_certificate_or_a_key_is_refused_without_quoting_it() {
        let (cert, key) = (testdata("client-cert.pem"), testdata("client-key.pem"));
        let garbage = Secret::new("-----BEGIN CERTIFICATE-----\nhunter2\n-----END CERTIFICATE-----\n");
        for (chain, key, expected) in [
            (Secret::new("hunter2"), key.clone(), CertError::NoCertificate),
            // The key where the certificate should be, and the other way round.
            (key.clone(), key.clone(), CertError::NoCertificate),
            (cert.clone(), cert.clone(), CertError::NotPemKey),
            (cert.clone(), Secret::new("hunter2"), CertError::NotPemKey),
            (garbage, key.clone(), CertError::BadCertificate),
            (cert.clone(), pem("PRIVATE KEY", b"hunter2 is no DER"), CertError::UnsupportedKey),
        ] {
            let e = ClientIdentity::from_pem(&chain, &key).unwrap_err();
            assert_eq!(e, expected, "{:?}", chain.expose().get(..30));
            assert!(!e.to_string().contains("hunter2") && !e.to_string().contains("BEGIN"), "{e}");
        }
    }

    #[test]
    fn reading_a_cut_or_corrupted_certificate_never_panics() {
        let chain = Chain::from_pem(&testdata("client-cert.pem")).unwrap();
        let der = chain.certs[0].as_ref().to_vec();
        for cut in 0..der.len() {
            assert_eq!(subject(&der[..cut]), None, "cut at {cut}");
        }
        for i in 0..der.len() {
            let mut bent = der.clone();
            bent[i] ^= 0xff;
            let _ = subject(&bent);
        }
    }

    #[test]
    fn the_tls_methods_use_the_key_and_a_certificate() {
        for method in [Method::TlsClientAuth, Method::SelfSignedTlsClientAuth] {
            assert!(method.uses_key() && method.uses_certificate());
        }
        assert_eq!(Method::TlsClientAuth.name(), "tls_client_auth");
        assert_eq!(Method::SelfSignedTlsClientAuth.name(), "self_signed_tls_client_auth");
        assert!(!Method::PrivateKeyJwt(AssertionSettings::default()).uses_certificate());
        assert!(!Method::SecretBasic.uses_key() && !Method::SecretBasic.uses_certificate());
    }
}
