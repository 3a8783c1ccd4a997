//! DPoP proofs (RFC 9449 §4.3): a header and claims signed inside the target with the fixed
//! Ed25519 key (its public JWK in the header unless the input gives another), so the fuzzer
//! reaches every check after the signature; and `htu` normalisation. Input: the header bytes, a
//! newline, the claims bytes; without a newline, the whole input is the proof.

use serde_json::{Value, json};
use tokenbridge_core::fuzzing::{dpop_ath, dpop_check, dpop_normalise_uri};

use crate::{LEEWAY, NOW, public_x, sign};

const TOKEN: &str = "access-token";
const HTU: &str = "https://api.example.com/orders/7";
const MAX_AGE: i64 = 60;

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let uris = [HTU.to_string()];
    let proof = match data.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let mut header = data[..i].to_vec();
            // A header object without a `jwk` gets the fixed key's, so signatures verify.
            if let Ok(Value::Object(mut h)) = serde_json::from_slice::<Value>(&header)
                && !h.contains_key("jwk")
            {
                h.insert("jwk".into(), json!({"kty": "OKP", "crv": "Ed25519", "x": public_x()}));
                header = Value::Object(h).to_string().into_bytes();
            }
            sign(&header, &data[i + 1..])
        }
        None => String::from_utf8_lossy(data).into_owned(),
    };
    if let Ok(jkt) = dpop_check(&proof, "GET", &uris, TOKEN, NOW, MAX_AGE, LEEWAY) {
        let part = |i: usize| -> Value {
            let text = proof.split('.').nth(i).expect("three parts");
            let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, text).expect("b64");
            serde_json::from_slice(&bytes).expect("JSON")
        };
        let (header, claims) = (part(0), part(1));
        assert!(header["typ"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")), "typ {}", header["typ"]);
        assert!(header["alg"] != "none" && !header["alg"].as_str().unwrap_or("HS").starts_with("HS"));
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(header["jwk"].get(private).is_none(), "a private jwk member {private}");
        }
        assert_eq!(claims["htm"], "GET");
        let htu = claims["htu"].as_str().expect("htu is text");
        assert_eq!(dpop_normalise_uri(htu).as_deref(), Some(HTU), "htu {htu}");
        assert_eq!(claims["ath"].as_str(), Some(dpop_ath(TOKEN).as_str()));
        let iat = claims["iat"].as_f64().expect("iat is a number") as i64;
        assert!((NOW - MAX_AGE..=NOW + LEEWAY).contains(&iat), "iat {iat}");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        assert!(!jkt.is_empty());
    }
    // Normalising is idempotent, and keeps the URI absolute, without query or fragment.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(once) = dpop_normalise_uri(text)
    {
        assert_eq!(dpop_normalise_uri(&once).as_deref(), Some(once.as_str()), "{text:?}");
        assert!(once.starts_with("https://") || once.starts_with("http://"), "{once}");
        assert!(!once.contains(['?', '#']), "{once}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach past the signature: the checks on an accepted proof do run.
    #[test]
    fn the_valid_seeds_are_accepted_proofs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/dpop_proof");
        for seed in ["valid", "valid-normalised-htu"] {
            let data = std::fs::read(dir.join(seed)).expect("a seed");
            let i = data.iter().position(|b| *b == b'\n').expect("header and claims");
            let mut header: Value = serde_json::from_slice(&data[..i]).expect("a header");
            header["jwk"] = json!({"kty": "OKP", "crv": "Ed25519", "x": public_x()});
            let proof = sign(header.to_string().as_bytes(), &data[i + 1..]);
            assert!(dpop_check(&proof, "GET", &[HTU.to_string()], TOKEN, NOW, MAX_AGE, LEEWAY).is_ok(), "{seed}");
        }
    }
}
