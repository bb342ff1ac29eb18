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
        // An answer is read only whole: its line and the newline after it (a file read
        // between its creation and its write — as a switch before atomic answers wrote it
        // — is empty, which said "not found" of an entry the switch had just retried).
        if let Ok(text) = std::fs::read_to_string(&done) {
            let outcome = match text.as_str() {
                ANSWER_DONE => Some(Outcome::Done),
                ANSWER_NOT_FOUND => Some(Outcome::NotFound),
                _ => None,
            };
            if let Some(outcome) = outcome {
                let _ = std::fs::remove_file(&done);
                return Ok(outcome);
            }
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

/// A request's answer: it was done.
const ANSWER_DONE: &str = "done\n";

/// A request's answer: no such entry in the exception queue.
const ANSWER_NOT_FOUND: &str = "not found\n";

/// Answers request `path` and removes it. The answer is written whole under a hidden name
/// (which [`pending`] passes over) and renamed into place, so the tool waiting for it
/// never reads it half written.
pub(crate) fn answer(path: &Path, done: bool) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return };
    let mut answer = name.to_owned();
    answer.push(".done");
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(&answer);
    tmp.push(".tmp");
    let (answer, tmp) = (parent.join(answer), parent.join(tmp));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(if done { ANSWER_DONE } else { ANSWER_NOT_FOUND }.as_bytes()));
    if written.and_then(|()| std::fs::rename(&tmp, &answer)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code, on its own threads

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corridor-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Waits (bounded) for the one request in `dir`'s control directory.
    fn the_request(dir: &Path) -> (PathBuf, Option<(Op, u64)>) {
        for _ in 0..500 {
            if let Some(r) = pending(dir).pop() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no request came");
    }

    #[test]
    fn a_running_switchs_answer_is_read_only_once_it_is_whole() {
        let d = dir("torn");
        // The running switch: the directory's lock is held.
        let _held = lock(&d).unwrap();
        for (written, want) in [(ANSWER_DONE, Outcome::Done), (ANSWER_NOT_FOUND, Outcome::NotFound)] {
            let switch = {
                let d = d.clone();
                std::thread::spawn(move || {
                    let (path, req) = the_request(&d);
                    assert_eq!(req, Some((Op::Retry, 7)));
                    // A writer that creates its answer, then writes it: the tool must not
                    // take the empty file for "not found", nor the half line for either.
                    let mut done = path.as_os_str().to_owned();
                    done.push(".done");
                    let mut f = File::create(PathBuf::from(done)).unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    f.write_all(&written.as_bytes()[..2]).unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    f.write_all(&written.as_bytes()[2..]).unwrap();
                    let _ = std::fs::remove_file(&path);
                })
            };
            assert_eq!(request(&d, Op::Retry, 7, Duration::from_secs(10)).unwrap(), want, "{written:?}");
            switch.join().unwrap();
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_answer_appears_whole_and_the_request_is_gone() {
        let d = dir("answer");
        let _held = lock(&d).unwrap();
        let switch = {
            let d = d.clone();
            std::thread::spawn(move || {
                let (path, req) = the_request(&d);
                assert_eq!(req, Some((Op::Drop, 3)));
                answer(&path, true);
                assert!(!path.exists(), "the request is removed once answered");
                // Nothing but the answer left beside it: no temporary file, and nothing
                // `pending` would take for another request.
                let left: Vec<String> = std::fs::read_dir(control_dir(&d))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                assert!(left.iter().all(|n| n.ends_with(".done") && !n.starts_with('.')), "{left:?}");
                assert!(pending(&d).is_empty());
            })
        };
        assert_eq!(request(&d, Op::Drop, 3, Duration::from_secs(10)).unwrap(), Outcome::Done);
        switch.join().unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
}
