//! A fake OCI Secrets service on loopback: `GET /20190301/secretbundles/{ocid}`, answering only
//! requests signed (OCI HTTP signature) by the expected key with the expected session token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tiny_http::{Response, Server};

/// The test key and session token of `adapters/oci/tests/vectors`.
pub fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/oci/tests/vectors")
}

#[derive(Clone)]
pub struct FakeSecrets {
    url: String,
    secrets: Arc<Mutex<HashMap<String, String>>>,
    fetches: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl FakeSecrets {
    /// Accepts signatures by the vectors' key with keyId `ST$<vectors' rpst>`.
    pub fn start() -> Self {
        let pem = std::fs::read(vectors_dir().join("key-pkcs8.pem")).expect("test key");
        let public_key = tokenbridge_oci::signing::Signer::from_pem(&pem).expect("test key parses").public_key_der();
        let rpst = std::fs::read_to_string(vectors_dir().join("rpst")).expect("test rpst").trim().to_string();
        let server = Server::http("127.0.0.1:0").expect("bind fake Secrets service");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("port");
        let fake = FakeSecrets {
            url: format!("http://127.0.0.1:{port}"),
            secrets: Arc::default(),
            fetches: Arc::default(),
            refused: Arc::default(),
        };
        let handler = fake.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                handler.handle(request, &public_key, &format!("ST${rpst}"));
            }
        });
        fake
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn put(&self, ocid: &str, value: &str) {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner()).insert(ocid.to_string(), value.to_string());
    }

    /// Signed requests answered.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Requests whose signature did not verify.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    fn handle(&self, request: tiny_http::Request, public_key: &[u8], key_id: &str) {
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
                .unwrap_or_default()
        };
        let path = request.url().to_string();
        let signing_string =
            format!("date: {}\n(request-target): get {path}\nhost: {}", header("date"), header("host"));
        let authorization = header("authorization");
        let field = |name: &str| {
            authorization
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let signature = STANDARD.decode(field("signature")).unwrap_or_default();
        let verified = request.method() == &tiny_http::Method::Get
            && field("keyId") == key_id
            && field("headers") == "date (request-target) host"
            && UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
                .verify(signing_string.as_bytes(), &signature)
                .is_ok();
        if !verified {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let _ = request
                .respond(Response::from_string(json!({"code":"NotAuthenticated"}).to_string()).with_status_code(401));
            return;
        }
        let ocid = path.strip_prefix("/20190301/secretbundles/").unwrap_or("").to_string();
        let value = self.secrets.lock().unwrap_or_else(|p| p.into_inner()).get(&ocid).cloned();
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let response = match value {
            Some(v) => Response::from_string(
                json!({"secretId": ocid, "versionNumber": 1,
                       "secretBundleContent": {"contentType": "BASE64", "content": STANDARD.encode(v)}})
                .to_string(),
            ),
            None => Response::from_string(json!({"code":"NotAuthorizedOrNotFound"}).to_string()).with_status_code(404),
        };
        let _ = request.respond(response);
    }
}
