//! Saved inputs through a target's checks, on stable and without libFuzzer: the committed seeds of
//! `corpus/<target>/` and whatever a fuzzing run kept in `artifacts/<target>/`. `cargo test` replays
//! them all, so a target whose checks no longer hold fails the tests, not only the next fuzzing run.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::targets::Check;

/// The committed seeds of `target`.
pub fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// What libFuzzer kept of `target` when a check failed (crashes, leaks, timeouts; not committed).
pub fn artifacts_dir(target: &str) -> PathBuf {
    fuzz_dir().join("artifacts").join(target)
}

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why a replay did not pass.
#[derive(Debug)]
pub enum ReplayError {
    /// The target has no committed seeds: replaying nothing would pass whatever the checks are.
    NoSeeds(PathBuf),
    Unreadable(PathBuf, std::io::Error),
    /// The inputs whose checks failed, each with its panic message, out of `of` inputs.
    Failed {
        target: String,
        failures: Vec<(PathBuf, String)>,
        of: usize,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::NoSeeds(dir) => write!(f, "no seeds in {}: a replay of nothing proves nothing", dir.display()),
            ReplayError::Unreadable(path, e) => write!(f, "{}: {e}", path.display()),
            ReplayError::Failed { target, failures, of } => {
                writeln!(f, "{target}: {} of {of} inputs break its checks:", failures.len())?;
                for (path, message) in failures {
                    writeln!(f, "  {}: {}", path.display(), message.replace('\n', "\n    "))?;
                }
                write!(f, "replay one: cargo run -p tokenbridge-fuzz --bin {target} -- <file>")
            }
        }
    }
}

/// The files of `dir`, sorted; none if `dir` does not exist. Hidden files (`.gitkeep`) are not
/// inputs.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReplayError::Unreadable(dir.to_path_buf(), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ReplayError::Unreadable(dir.to_path_buf(), e))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let is_file = entry.file_type().map_err(|e| ReplayError::Unreadable(entry.path(), e))?.is_file();
        if is_file && !hidden {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Every saved input of `target`: its seeds, which must exist, then its artifacts, if any.
pub fn saved_inputs(target: &str) -> Result<Vec<PathBuf>, ReplayError> {
    let mut inputs = files_in(&corpus_dir(target))?;
    if inputs.is_empty() {
        return Err(ReplayError::NoSeeds(corpus_dir(target)));
    }
    inputs.extend(files_in(&artifacts_dir(target))?);
    Ok(inputs)
}

/// Runs `check` on each of `files`, all of them even after a failure; the number of inputs that
/// held, or every one that did not.
pub fn replay(target: &str, check: Check, files: &[PathBuf]) -> Result<usize, ReplayError> {
    let mut failures = Vec::new();
    for path in files {
        let data = std::fs::read(path).map_err(|e| ReplayError::Unreadable(path.clone(), e))?;
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            failures.push((path.clone(), panic_message(payload.as_ref())));
        }
    }
    if failures.is_empty() {
        Ok(files.len())
    } else {
        Err(ReplayError::Failed { target: target.into(), failures, of: files.len() })
    }
}

/// Replays every saved input of `target`.
pub fn replay_saved(target: &str, check: Check) -> Result<usize, ReplayError> {
    replay(target, check, &saved_inputs(target)?)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".into(),
    }
}

/// The `main` of a target binary built on stable: replays the files (or the files of the
/// directories) named as arguments, by default every saved input of the target.
pub fn main(target: &str, check: Check) -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let files = if args.is_empty() {
        saved_inputs(target)
    } else {
        args.iter().try_fold(Vec::new(), |mut files, arg| {
            if arg.is_dir() {
                files.extend(files_in(arg)?);
            } else {
                files.push(arg.clone());
            }
            Ok(files)
        })
    };
    match files.and_then(|files| replay(target, check, &files)) {
        Ok(n) => {
            println!("{target}: {n} inputs hold its checks");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::ALL;

    /// What the fuzzer enforces, the tests enforce: every target's checks hold on its committed
    /// seeds and on every input a fuzzing run kept.
    #[test]
    fn every_target_holds_its_checks_on_its_seeds_and_artifacts() {
        let failed: Vec<String> = ALL
            .iter()
            .filter_map(|(target, check)| replay_saved(target, *check).err())
            .map(|e| e.to_string())
            .collect();
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    /// A target is a `[[bin]]`, a file in `fuzz_targets/` that runs its checks, an entry of
    /// [`ALL`] (which the replay runs) and a corpus: none is added or dropped without the others.
    #[test]
    fn every_fuzz_target_is_a_binary_running_its_checks_with_a_corpus() {
        let names = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let listed = names(ALL.iter().map(|(name, _)| name.to_string()).collect());
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("Cargo.toml");
        let bins = manifest.split("[[bin]]").skip(1).map(|bin| {
            let name = bin.lines().find_map(|l| l.strip_prefix("name = ")).expect("a [[bin]] has a name");
            name.trim_matches('"').to_string()
        });
        assert_eq!(names(bins.collect()), listed, "[[bin]] targets of tests/fuzz/Cargo.toml");
        let dir_names = |dir: &str| {
            let entries = std::fs::read_dir(fuzz_dir().join(dir)).expect(dir);
            names(entries.map(|e| e.expect(dir).path().file_stem().expect("a name").to_string_lossy().into()).collect())
        };
        assert_eq!(dir_names("fuzz_targets"), listed, "files in tests/fuzz/fuzz_targets");
        assert_eq!(dir_names("corpus"), listed, "directories in tests/fuzz/corpus");
        for name in &listed {
            let source = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).expect(name);
            assert!(source.contains(&format!("tokenbridge_fuzz::fuzz_main!({name});")), "fuzz_targets/{name}.rs");
        }
    }

    #[test]
    fn a_target_without_seeds_fails_its_replay() {
        let error = replay_saved("no-such-target", |_| {}).unwrap_err();
        assert!(matches!(error, ReplayError::NoSeeds(_)), "{error}");
    }

    #[test]
    fn every_failing_input_is_named_with_its_panic() {
        let seeds = saved_inputs("bearer").expect("bearer seeds");
        let no_basic_nor_bare_scheme = |data: &[u8]| {
            assert!(!data.starts_with(b"Basic "), "a Basic credential");
            assert_ne!(data, b"BEARER", "a scheme alone");
        };
        let error = replay("bearer", no_basic_nor_bare_scheme, &seeds).unwrap_err().to_string();
        assert!(error.starts_with(&format!("bearer: 2 of {} inputs break its checks:", seeds.len())), "{error}");
        let named = |file: &str, message: &str| format!("  {}: {message}", corpus_dir("bearer").join(file).display());
        assert!(error.contains(&named("basic", "a Basic credential\n")), "{error}");
        assert!(error.contains(&named("scheme-only", "assertion `left != right` failed: a scheme alone")), "{error}");
    }
}
