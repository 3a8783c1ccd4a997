//! Sets `cfg(interop)` where the interop suite can run (Node.js 20.12+ and its packages), or
//! where `CI` is set (there it must run, and fails if it cannot). Elsewhere its tests are
//! ignored, and cargo says so, instead of passing without running.

#[path = "src/node_prerequisites.rs"]
mod node_prerequisites;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(interop)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-changed=interop/node_modules/oidc-provider/package.json");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop");
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    match node_prerequisites::check(&dir) {
        Ok(_) => println!("cargo::rustc-cfg=interop"),
        Err(_) if ci => println!("cargo::rustc-cfg=interop"),
        Err(why) => println!("cargo::warning=the interop tests are ignored: {why}"),
    }
}
