//! DPoP clients made in the tests (RFC 9449): a key, its RFC 7638 thumbprint computed here
//! (not with tokenbridge's code), and proofs for a request, well-formed or broken at will.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::jwt_keys::SigningKey;

/// A DPoP client: the key it proves possession of.
pub struct DpopClient {
    pub key: SigningKey,
}

/// What a proof says, each part replaceable to break it.
pub struct ProofParts {
    pub header: Value,
    pub claims: Value,
}

impl DpopClient {
    pub fn es256() -> Self {
        DpopClient { key: SigningKey::ec("dpop", Algorithm::ES256) }
    }

    pub fn with(key: SigningKey) -> Self {
        DpopClient { key }
    }

    /// The public JWK as a proof's header carries it (no `kid`, no `alg` needed).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.key.jwk.clone();
        if let Some(members) = jwk.as_object_mut() {
            members.remove("kid");
        }
        jwk
    }

    /// RFC 7638 §3: the required members, sorted, as compact JSON; SHA-256; base64url.
    pub fn jkt(&self) -> String {
        let jwk = self.public_jwk();
        let kty = jwk["kty"].as_str().expect("kty");
        let members: &[&str] = match kty {
            "RSA" => &["e", "kty", "n"],
            "EC" => &["crv", "kty", "x", "y"],
            _ => &["crv", "kty", "x"],
        };
        let body: Vec<String> = members.iter().map(|m| format!("\"{m}\":\"{}\"", jwk[*m].as_str().unwrap())).collect();
        let canonical = format!("{{{}}}", body.join(","));
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The parts of a valid proof for `method` `htu`, presented with `token`, made at `iat`.
    pub fn parts(&self, method: &str, htu: &str, token: &str, iat: i64) -> ProofParts {
        let alg = format!("{:?}", self.key.alg);
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()));
        let jti = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{method} {htu} {iat} {}", unique()).as_bytes(),
        ));
        ProofParts {
            header: json!({"typ": "dpop+jwt", "alg": alg, "jwk": self.public_jwk()}),
            claims: json!({"jti": jti, "htm": method, "htu": htu, "iat": iat, "ath": ath}),
        }
    }

    /// A valid proof.
    pub fn proof(&self, method: &str, htu: &str, token: &str, iat: i64) -> String {
        self.sign(&self.parts(method, htu, token, iat))
    }

    /// The parts signed with this client's key.
    pub fn sign(&self, parts: &ProofParts) -> String {
        self.key.sign_raw(&parts.header.to_string(), &parts.claims.to_string())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
