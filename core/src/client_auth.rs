//! How tokenbridge authenticates as a client at IdP A and IdP B: `client_secret_basic` and
//! `client_secret_post` (RFC 6749 §2.3.1), and `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9),
//! a JWT signed with our private key, freshly for every call.

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
}

impl Method {
    /// The method's name as RFC 7591 and the discovery documents spell it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Method::SecretBasic => "client_secret_basic",
            Method::SecretPost => "client_secret_post",
            Method::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// Whether a private key authenticates us, rather than a client secret.
    pub(crate) fn uses_key(&self) -> bool {
        matches!(self, Method::PrivateKeyJwt(_))
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
}
