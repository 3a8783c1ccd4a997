//! A local development IdP pair for `scripts/demo` and manual testing: IdP A (introspection)
//! and IdP B (backend tokens) on loopback, plus one active caller token.
//!
//! `tokenbridge-devidp [ENV_FILE] [--caller-tokens opaque|jwt N OUT]` writes the
//! `TOKENBRIDGE_*` settings that point at the pair, and `DEMO_CALLER_TOKEN`, as shell
//! assignments to ENV_FILE (default: stdout), then serves until killed.
//!
//! With `--caller-tokens`, it then writes N distinct active caller tokens to OUT, one a line
//! (`scripts/memory` passes a FIFO, so they are made as fast as they are read): opaque tokens
//! IdP A introspects as active, or ES256 JWTs of an issuer it also serves, whose settings
//! it adds to ENV_FILE as `DEMO_JWT_ISSUER`, `DEMO_JWT_AUDIENCE` and `DEMO_JWKS_URL`.

use std::io::{BufWriter, Write};

use anyhow::{Context, bail};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};

const AUDIENCE: &str = "api";

/// What `--caller-tokens` asks for.
struct CallerTokens {
    jwt: bool,
    count: u64,
    out: String,
}

fn arguments() -> anyhow::Result<(Option<String>, Option<CallerTokens>)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok((None, None)),
        [env] => Ok((Some(env.clone()), None)),
        [env, flag, kind, count, out] if flag == "--caller-tokens" => {
            let jwt = match kind.as_str() {
                "jwt" => true,
                "opaque" => false,
                _ => bail!("--caller-tokens takes opaque or jwt"),
            };
            let count = count.parse().context("--caller-tokens N")?;
            Ok((Some(env.clone()), Some(CallerTokens { jwt, count, out: out.clone() })))
        }
        _ => bail!("usage: tokenbridge-devidp [ENV_FILE] [--caller-tokens opaque|jwt N OUT]"),
    }
}

fn main() -> anyhow::Result<()> {
    let (env_file, tokens) = arguments()?;
    let pair = IdpPair::start();
    let key = SigningKey::ec("devidp-es256", Algorithm::ES256);
    let issuer = tokens.as_ref().filter(|t| t.jwt).map(|_| FakeIssuer::start(&[&key]));
    let caller = pair.a.issue("alice@example.com", "orders.read orders.write", 3600);
    let mut lines: Vec<String> = pair.env().iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    lines.push(format!("DEMO_CALLER_TOKEN='{caller}'"));
    lines.push(format!("DEMO_IDP_A='{}'", pair.a.url()));
    lines.push(format!("DEMO_IDP_B='{}'", pair.b.url()));
    if let Some(issuer) = &issuer {
        lines.push(format!("DEMO_JWT_ISSUER='{}'", issuer.url));
        lines.push(format!("DEMO_JWT_AUDIENCE='{AUDIENCE}'"));
        lines.push(format!("DEMO_JWKS_URL='{}'", issuer.jwks_url()));
    }
    let text = lines.join("\n") + "\n";
    match env_file {
        Some(path) => {
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, text).context("write env file")?;
            std::fs::rename(&tmp, &path).context("publish env file")?;
        }
        None => {
            std::io::stdout().write_all(text.as_bytes())?;
            std::io::stdout().flush()?;
        }
    }
    if let Some(tokens) = tokens {
        write_caller_tokens(&pair, issuer.as_ref().map(|i| (i, &key)), &tokens)?;
    }
    loop {
        std::thread::park();
    }
}

/// Each token is registered (or signed) just before it is written, so a reader that lags
/// behind never sees one the IdP does not know yet.
fn write_caller_tokens(
    pair: &IdpPair,
    issuer: Option<(&FakeIssuer, &SigningKey)>,
    tokens: &CallerTokens,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::OpenOptions::new().write(true).open(&tokens.out).context("open OUT")?);
    for n in 0..tokens.count {
        let sub = format!("user-{n}");
        let token = match issuer {
            Some((issuer, key)) => {
                let mut claims = issuer.claims(AUDIENCE, &sub, "orders.read", unix_now());
                claims["exp"] = json!(unix_now() + 3600);
                key.sign(&claims)
            }
            None => pair.a.issue(&sub, "orders.read", 3600),
        };
        writeln!(out, "{token}").context("write a caller token")?;
    }
    out.flush().context("flush the caller tokens")?;
    Ok(())
}
