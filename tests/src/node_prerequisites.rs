//! Whether the interop suite's Node.js project can run here. Shared by the library and the build
//! script, which must agree on it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `node` (20.12 or later) on PATH and the packages of the project in `dir` installed, or why not.
pub fn check(dir: &Path) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let node = std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
        .ok_or("`node` is not on PATH (install Node.js 20.12 or later)")?;
    let version = Command::new(&node).arg("--version").output().map_err(|e| format!("{}: {e}", node.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    if !is_recent(&version) {
        return Err(format!("{} is Node.js {version}; oidc-provider 9 needs 20.12 or later", node.display()));
    }
    let installed = dir.join("node_modules/oidc-provider/package.json");
    if !installed.is_file() {
        return Err(format!(
            "{} is missing (run `npm ci` in {}; scripts/test does)",
            installed.display(),
            dir.display()
        ));
    }
    Ok(node)
}

/// oidc-provider 9 uses `crypto.hash` (Node.js 20.12, 21.7) and prefers 22 LTS: 20.12 and
/// later run it, with a warning on 20.
fn is_recent(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (20, 12)
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_from_20_12_on_is_recent_enough() {
        use super::is_recent;
        assert!(is_recent("v20.20.2") && is_recent("v22.1.0") && is_recent("v20.12.0"));
        assert!(!is_recent("v18.20.4") && !is_recent("v20.11.1") && !is_recent("garbage"));
    }
}
