//! Node.js with the tests' pinned npm packages (`tests/interop/js/package-lock.json`), for
//! tests that run generators we did not write.
//!
//! `CORRIDOR_NODE_MODULES` names a `node_modules` directory to use as it is (`tests/run`
//! provisions one). Otherwise the first test that asks runs `npm ci` into `target/test-node`
//! from the lock file; later tests and runs reuse it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::python::{provisioned, run, workspace_file};

/// The npm manifest and its lock: what [`node_modules`] installs, and its stamp.
const PACKAGE: &str = include_str!("interop/js/package.json");
const LOCK: &str = include_str!("interop/js/package-lock.json");

/// A `node_modules` directory with the lock file's packages.
///
/// # Panics
///
/// When it cannot be provisioned (no `npm`, no registry): a test that needs it must not pass
/// without it.
#[must_use]
pub fn node_modules() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRIDOR_NODE_MODULES") {
        return PathBuf::from(p);
    }
    let dir = workspace_file("target/test-node");
    provisioned(&dir, LOCK, || provision(&dir));
    dir.join("node_modules")
}

fn provision(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in [("package.json", PACKAGE), ("package-lock.json", LOCK)] {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(dir))
}

/// Runs the script `rel` (a path in the workspace) under `node`, with [`node_modules`] to
/// require from.
///
/// # Panics
///
/// When `node` cannot be started.
#[must_use]
pub fn run_script(rel: &str) -> Output {
    Command::new("node")
        .arg(workspace_file(rel))
        .env("NODE_PATH", node_modules())
        .output()
        .unwrap_or_else(|e| panic!("node {rel}: {e} (tests/run installs Node.js)"))
}
