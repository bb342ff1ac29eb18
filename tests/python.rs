//! A Python interpreter with pinned packages, for tests that talk to implementations we did
//! not write.
//!
//! `CORRIDOR_PYTHON` names an interpreter to use as it is (`tests/run`, the README's test command, provisions one).
//! Otherwise the first test that asks creates `target/test-venv` with `python3 -m venv` and
//! installs the pinned requirements from PyPI; later tests and runs reuse it. Concurrent test
//! processes (nextest runs each test in its own) serialize on a lock directory, with a bounded
//! wait.

use std::{
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

/// The PyPI packages the tests use, pinned: `tests/requirements.txt`, which `tests/run` installs
/// from too.
pub const REQUIREMENTS: &str = include_str!("requirements.txt");

/// How long a test waits for another process that is provisioning the environment.
const PROVISION_WAIT_MAX: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The path of a file in the workspace.
#[must_use]
pub fn workspace_file(rel: &str) -> PathBuf {
    workspace().join(rel)
}

/// A Python interpreter with [`REQUIREMENTS`] installed.
///
/// # Panics
///
/// When no interpreter can be provisioned: the message says what failed and how to fix it.
/// A test that needs Python must not pass without it.
#[must_use]
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRIDOR_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace().join("target").join("test-venv");
    let py = venv.join("bin").join("python");
    provisioned(&venv, REQUIREMENTS, || provision(&venv, &py));
    py
}

/// Runs `provision` once for `dir` (whose contents it makes), unless a finished run left
/// `stamp` there. Concurrent test processes serialize on a lock directory beside `dir`, with a
/// bounded wait.
///
/// # Panics
///
/// When `provision` fails, or another process holds the lock for [`PROVISION_WAIT_MAX`].
pub fn provisioned(dir: &Path, stamp: &str, provision: impl FnOnce() -> Result<(), String>) {
    let ready = dir.join(".corridor-ready");
    if std::fs::read_to_string(&ready).is_ok_and(|r| r == stamp) {
        return;
    }
    let lock = dir.with_extension("lock");
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    let start = Instant::now();
    // mkdir is atomic: whoever creates the lock directory provisions, the rest wait.
    while std::fs::create_dir(&lock).is_err() {
        assert!(
            start.elapsed() < PROVISION_WAIT_MAX,
            "waited {PROVISION_WAIT_MAX:?} for {}; remove it if no test is running",
            lock.display()
        );
        if std::fs::read_to_string(&ready).is_ok_and(|r| r == stamp) {
            return;
        }
        #[allow(clippy::disallowed_methods)]
        // a test helper waiting on another process, not a runtime thread
        thread::sleep(Duration::from_millis(200));
    }
    let result = provision();
    if result.is_ok() {
        std::fs::write(&ready, stamp).ok();
    }
    std::fs::remove_dir(&lock).ok();
    if let Err(e) = result {
        panic!("cannot provision {}: {e}", dir.display());
    }
}

fn provision(venv: &Path, py: &Path) -> Result<(), String> {
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    run(Command::new(py)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(workspace_file("tests/requirements.txt")))
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}
