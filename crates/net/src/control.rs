//! The journal directory's lock and its operator requests.
//!
//! A running switch holds an exclusive lock on `LOCK` in its journal directory, so no second
//! switch (or offline tool) writes the same log. An operator's change to the exception
//! queue reaches it through the directory too: `corridor saf retry|drop` writes a request
//! file into `control/` (written whole, then renamed into place); the switch takes it within
//! [`CONTROL_POLL`], acts on it (journaled, logged), and answers with a `.done` file beside
//! it. When no switch holds the lock, the tool appends the same records to the journal
//! itself. Either way the change is in the journal, and the next start sees it.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use corridor_journal::{entry::Entry, Appender, GroupCommit};

use crate::journal::{recover, JournalError, Writer};

/// How often a running switch looks for operator requests.
pub const CONTROL_POLL: Duration = Duration::from_millis(250);

/// Most requests a switch takes per look (the rest wait for the next).
pub const CONTROL_REQUESTS_MAX: usize = 256;

/// The exclusive lock on a journal directory, held while a switch runs on it.
#[derive(Clone, Debug)]
pub struct DirLock(#[allow(dead_code)] Arc<File>);

impl PartialEq for DirLock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DirLock {}

/// Takes the lock on `dir` (created if missing).
///
/// # Errors
///
/// Another process holds it (a switch runs on this journal), or the lock file cannot be
/// opened.
pub fn lock(dir: &Path) -> Result<DirLock, JournalError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| JournalError::Io { what: format!("creating {}", dir.display()), error })?;
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| JournalError::Io { what: format!("opening {}", path.display()), error })?;
    match f.try_lock() {
        Ok(()) => Ok(DirLock(Arc::new(f))),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Io {
            what: format!("locking {}", path.display()),
            error: io::Error::new(io::ErrorKind::WouldBlock, "another switch runs on this journal"),
        }),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(JournalError::Io { what: format!("locking {}", path.display()), error })
        }
    }
}

/// What an operator asks of the exception queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Back to store-and-forward, with a fresh budget.
    Retry,
    /// Dropped for good.
    Drop,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Drop => "drop",
        }
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (by the running switch, or appended to the journal of a stopped one).
    Done,
    /// No such entry in the exception queue.
    NotFound,
}

fn control_dir(dir: &Path) -> PathBuf {
    dir.join("control")
}

/// Asks for `op` on exception `id`: of the switch running on `dir` (waiting up to `wait`
/// for its answer), or, when none runs, by appending to the journal directly.
///
/// # Errors
///
/// The directory cannot be written, the switch did not answer within `wait`, or the
/// journal of a stopped switch cannot be recovered or appended to.
pub fn request(dir: &Path, op: Op, id: u64, wait: Duration) -> Result<Outcome, JournalError> {
    match lock(dir) {
        Ok(held) => offline(dir, held, op, id),
        Err(JournalError::Io { error, .. }) if error.kind() == io::ErrorKind::WouldBlock => {
            online(dir, op, id, wait)
        }
        Err(e) => Err(e),
    }
}

// A one-shot command waiting for the switch's answer file, never on a runtime thread.
#[allow(clippy::disallowed_methods)]
fn online(dir: &Path, op: Op, id: u64, wait: Duration) -> Result<Outcome, JournalError> {
    let io = |what: String| move |error| JournalError::Io { what, error };
    let cdir = control_dir(dir);
    std::fs::create_dir_all(&cdir).map_err(io(format!("creating {}", cdir.display())))?;
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("{stamp}-{}.{}-{id}", std::process::id(), op.name());
    let tmp = cdir.join(format!(".{name}.tmp"));
    let path = cdir.join(&name);
    std::fs::write(&tmp, b"").map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
    let done = cdir.join(format!("{name}.done"));
    let until = Instant::now() + wait;
    loop {
        if let Ok(text) = std::fs::read_to_string(&done) {
            let _ = std::fs::remove_file(&done);
            return Ok(if text.trim() == "done" { Outcome::Done } else { Outcome::NotFound });
        }
        if Instant::now() >= until {
            let _ = std::fs::remove_file(&path);
            return Err(JournalError::Io {
                what: format!("asking the switch running on {}", dir.display()),
                error: io::Error::new(io::ErrorKind::TimedOut, "no answer"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Appends the operator's record to the journal of a stopped switch.
fn offline(dir: &Path, _held: DirLock, op: Op, id: u64) -> Result<Outcome, JournalError> {
    let rec = recover(dir)?;
    if !rec.owed.exceptions.contains_key(&id) {
        return Ok(Outcome::NotFound);
    }
    let entry = match op {
        Op::Retry => Entry::SafRetried { id },
        Op::Drop => Entry::SafDropped { id },
    };
    let mut appender = Appender::new(GroupCommit::default(), rec.next_seq, rec.last.map(|(_, len)| len));
    let mut payload = Vec::new();
    entry.encode(&mut payload);
    let now = Instant::now();
    appender.append(entry.kind(), &payload, now);
    let mut writer = Writer::open(dir, rec.last)?;
    while let Some(b) = appender.poll_batch(now, crate::journal::unix_ms()) {
        writer.write(&b)?;
        appender.handle_synced(b.last_seq);
    }
    Ok(Outcome::Done)
}

/// The requests waiting in `dir`'s control directory, oldest first, at most
/// [`CONTROL_REQUESTS_MAX`]: each its path, operation and entry id. Files that are not
/// requests are left alone; an unreadable request is answered as not found.
pub(crate) fn pending(dir: &Path) -> Vec<(PathBuf, Option<(Op, u64)>)> {
    let Ok(entries) = std::fs::read_dir(control_dir(dir)) else { return Vec::new() };
    let mut out: Vec<(PathBuf, Option<(Op, u64)>)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || name.ends_with(".done") {
            continue;
        }
        let parsed = name.rsplit_once('.').and_then(|(_, tail)| {
            let (op, id) = tail.split_once('-')?;
            let op = match op {
                "retry" => Op::Retry,
                "drop" => Op::Drop,
                _ => return None,
            };
            Some((op, id.parse().ok()?))
        });
        out.push((e.path(), parsed));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.truncate(CONTROL_REQUESTS_MAX);
    out
}

/// Answers request `path` and removes it.
pub(crate) fn answer(path: &Path, done: bool) {
    let mut name = path.as_os_str().to_owned();
    name.push(".done");
    if let Ok(mut f) = File::create(PathBuf::from(name)) {
        let _ = f.write_all(if done { b"done\n" } else { b"not found\n" });
    }
    let _ = std::fs::remove_file(path);
}
