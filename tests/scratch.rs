//! A test's own directory under the system's temporary one, gone when the test is.
//!
//! A switch's state directory is large: its journal preallocates whole segments (tens of
//! MiB each, a reserve beside them). Left behind by every run, they fill the disk the next
//! run builds on. So a [`Scratch`] is removed when dropped — on success and on failure
//! alike (set `CORRIDOR_KEEP_SCRATCH` to keep it, to look at after a failure) — and the
//! first one a test process makes sweeps away those left by processes that are gone (killed
//! by a timeout, say, before they could drop theirs).

use std::path::{Path, PathBuf};

/// The prefix of every scratch directory's name; the process's id follows it.
const PREFIX: &str = "corridor-scratch-";

/// A directory of the test's own, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// `corridor-scratch-<pid>-<name>` in the temporary directory, empty.
    pub fn new(name: &str) -> Self {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep);
        let path = std::env::temp_dir().join(format!("{PREFIX}{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        Self { path }
    }

    /// [`Scratch::new`], with the PAN key a switch's journal needs as `pan.key`.
    pub fn with_pan_key(name: &str) -> Self {
        let s = Self::new(name);
        std::fs::write(s.join("pan.key"), "5a".repeat(32)).expect("a PAN key");
        s
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("CORRIDOR_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the scratch directories of processes that no longer run.
fn sweep() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_is_gone_once_dropped_and_a_dead_process_s_is_swept() {
        // One "left" by a process id no process has (Linux's pid_max is at most 2^22).
        let stale = std::env::temp_dir().join(format!("{PREFIX}4294967295-left"));
        std::fs::create_dir_all(stale.join("journal")).unwrap();
        sweep();
        assert!(!stale.exists(), "a gone process's scratch is swept");
        let s = Scratch::with_pan_key("scratch-self");
        let path = s.to_path_buf();
        assert!(path.join("pan.key").is_file());
        sweep();
        assert!(path.exists(), "a running process's own is kept");
        drop(s);
        assert!(!path.exists(), "dropped, removed");
    }
}
