//! A local development IdP pair for `scripts/demo` and manual testing: IdP A (introspection)
//! and IdP B (backend tokens) on loopback, plus one active caller token.
//!
//! `tokenbridge-devidp [ENV_FILE]` writes the `TOKENBRIDGE_*` settings that point at the pair,
//! and `DEMO_CALLER_TOKEN`, as shell assignments to ENV_FILE (default: stdout), then serves
//! until killed.

use std::io::Write;

use anyhow::Context;
use tokenbridge_tests::IdpPair;

fn main() -> anyhow::Result<()> {
    let pair = IdpPair::start();
    let caller = pair.a.issue("alice@example.com", "orders.read orders.write", 3600);
    let mut lines: Vec<String> = pair.env().iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    lines.push(format!("DEMO_CALLER_TOKEN='{caller}'"));
    lines.push(format!("DEMO_IDP_A='{}'", pair.a.url()));
    lines.push(format!("DEMO_IDP_B='{}'", pair.b.url()));
    let text = lines.join("\n") + "\n";
    match std::env::args().nth(1) {
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
    loop {
        std::thread::park();
    }
}
