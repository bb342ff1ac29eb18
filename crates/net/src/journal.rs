//! The journal's files: a directory of segments, read whole for recovery, a torn tail cut,
//! batches appended and synced. The record format and every decision about it are
//! `corridor-journal`'s; this module only moves bytes between it and the disk.
//!
//! Blocking `std::fs` calls: recovery runs before the switch serves, and the operator's
//! `corridor journal` commands are one-shot.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use corridor_journal::{scan_log, segment::SegmentHeader, Corrupt, LogScan, SyncBatch};

/// What can go wrong with the journal's files.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// A file or the directory could not be read or written.
    Io {
        /// What was being done, to which path.
        what: String,
        /// The error.
        error: io::Error,
    },
    /// The log is damaged inside (not a torn tail): the switch refuses to start on it.
    Corrupt(Corrupt),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { what, error } => write!(f, "{what}: {error}"),
            Self::Corrupt(c) => write!(f, "{c} (inspect it with `corridor journal verify`; cutting the log there is a deliberate `corridor journal truncate`)"),
        }
    }
}

impl std::error::Error for JournalError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> JournalError {
    let what = what.into();
    move |error| JournalError::Io { what, error }
}

/// A journal directory's segments, read whole.
#[derive(Debug)]
pub struct Segments {
    /// The directory.
    pub dir: PathBuf,
    /// Each segment's first sequence number and bytes, in order.
    pub files: Vec<(u64, Vec<u8>)>,
}

impl Segments {
    /// Reads every segment of `dir` (files named as segments; anything else is left alone).
    /// A directory that does not exist yet is an empty log.
    ///
    /// # Errors
    ///
    /// The directory or a segment cannot be read.
    pub fn read(dir: &Path) -> Result<Self, JournalError> {
        let mut files = Vec::new();
        for seq in segment_seqs(dir)? {
            let path = segment_path(dir, seq);
            let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
            files.push((seq, bytes));
        }
        Ok(Self { dir: dir.to_owned(), files })
    }

    /// The scan of the log.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] for damage inside the log.
    pub fn scan(&self) -> Result<LogScan<'_>, JournalError> {
        let view: Vec<(u64, &[u8])> = self.files.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        scan_log(&view).map_err(JournalError::Corrupt)
    }

    /// The path of segment `seq`.
    #[must_use]
    pub fn path(&self, seq: u64) -> PathBuf {
        segment_path(&self.dir, seq)
    }
}

/// The first sequence numbers of the segments in `dir`, in order (files named as segments;
/// anything else is left alone). A directory that does not exist yet holds none.
fn segment_seqs(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
    };
    let mut seqs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
        if let Some(seq) = entry.file_name().to_str().and_then(SegmentHeader::seq_of_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(SegmentHeader { first_seq: seq, created_unix_ms: 0 }.file_name())
}

/// Where a switch's journal lives, for the network layer to append to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalFiles {
    /// The journal directory.
    pub dir: PathBuf,
    /// The segment to append to (the last one, after recovery), if any.
    pub last_segment: Option<u64>,
    /// Fault injection, for tests: the sync of every batch after this many fails with EIO.
    #[doc(hidden)]
    pub fail_sync_after: Option<u64>,
}

/// What recovery found in a journal directory.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// Records kept.
    pub records: usize,
    /// The sequence number of the next record.
    pub next_seq: u64,
    /// The last segment and its length after recovery, if there is one.
    pub last: Option<(u64, u64)>,
    /// Where a torn tail was cut (segment and offset), if it was.
    pub cut: Option<(u64, usize)>,
    /// What the log says is still owed.
    pub owed: corridor_journal::recovery::Recovery,
}

/// Recovers the journal in `dir` (creating it if missing): reads and scans every segment,
/// cuts a torn tail at its start, and says where appending goes on.
///
/// # Errors
///
/// The directory cannot be read or written, or the log is corrupt inside: the switch must
/// not start on it.
pub fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let segs = Segments::read(dir)?;
    let (records, next_seq, cut, owed) = {
        let scan = segs.scan()?;
        let owed = corridor_journal::recovery::Recovery::of(&scan).map_err(|e| JournalError::Io {
            what: "reading the journal's entries".into(),
            error: io::Error::other(e.to_string()),
        })?;
        (scan.records(), scan.next_seq, scan.cut(), owed)
    };
    if let Some((seq, at)) = cut {
        truncate(dir, seq, at)?;
    }
    let last = match (segs.files.last(), cut) {
        (None, _) => None,
        // A segment cut inside its header is gone.
        (Some(_), Some((_, at))) if at < corridor_journal::limits::SEGMENT_HEADER_BYTES => None,
        (Some((seq, _)), Some((_, at))) => Some((*seq, at as u64)),
        (Some((seq, bytes)), None) => Some((*seq, bytes.len() as u64)),
    };
    Ok(Recovered { records, next_seq, last, cut, owed })
}

/// Cuts segment `seq` of `dir` at `offset` (a torn tail, or an operator's deliberate cut),
/// and removes every later segment; a segment cut to less than its header is removed. The
/// directory is synced after.
///
/// # Errors
///
/// A file that cannot be truncated or removed.
pub fn truncate(dir: &Path, seq: u64, offset: usize) -> Result<(), JournalError> {
    for s in segment_seqs(dir)?.into_iter().filter(|&s| s > seq) {
        let p = segment_path(dir, s);
        std::fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
    }
    let path = segment_path(dir, seq);
    if offset < corridor_journal::limits::SEGMENT_HEADER_BYTES {
        std::fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
    } else {
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        f.set_len(offset as u64).map_err(io_err(format!("truncating {}", path.display())))?;
        f.sync_all().map_err(io_err(format!("syncing {}", path.display())))?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing the directory {}", dir.display())))
}

/// Appends batches to the log in `dir`: creates segments, appends records, and syncs once
/// per batch (`fdatasync`; the directory too when a segment was created).
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    current: Option<File>,
    /// Batches written.
    batches: u64,
    /// The current segment's length as of its last good sync.
    durable_len: u64,
    /// See [`JournalFiles::fail_sync_after`].
    fail_sync_after: Option<u64>,
}

impl Writer {
    /// A writer for `dir` (created if missing), appending to segment `last` when given.
    ///
    /// # Errors
    ///
    /// The directory cannot be created or the segment opened.
    pub fn open(dir: &Path, last: Option<u64>) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let current = match last {
            None => None,
            Some(seq) => {
                let p = segment_path(dir, seq);
                Some(
                    OpenOptions::new()
                        .append(true)
                        .open(&p)
                        .map_err(io_err(format!("opening {}", p.display())))?,
                )
            }
        };
        let durable_len = match &current {
            Some(f) => f.metadata().map_err(io_err("reading the last segment's length"))?.len(),
            None => 0,
        };
        Ok(Self { dir: dir.to_owned(), current, batches: 0, durable_len, fail_sync_after: None })
    }

    /// The storage seam for tests: every sync after `batches` batches fails with EIO, as a
    /// disk that lost its data would.
    #[doc(hidden)]
    #[must_use]
    pub fn failing_after(mut self, batches: Option<u64>) -> Self {
        self.fail_sync_after = batches;
        self
    }

    /// Writes `batch` and syncs it. Only after this returns may the appender be told.
    ///
    /// # Errors
    ///
    /// Any write or sync error: the batch is not durable, and (for a failed sync) nothing
    /// written since the last good sync may be trusted — the caller stops.
    pub fn write(&mut self, batch: &SyncBatch) -> Result<(), JournalError> {
        if let Some(h) = &batch.new_segment {
            if let Some(old) = self.current.take() {
                old.sync_data().map_err(io_err("syncing the previous segment"))?;
            }
            let p = self.dir.join(h.file_name());
            let mut f = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&p)
                .map_err(io_err(format!("creating {}", p.display())))?;
            f.write_all(&h.to_bytes()).map_err(io_err(format!("writing {}", p.display())))?;
            self.current = Some(f);
            self.durable_len = corridor_journal::limits::SEGMENT_HEADER_BYTES as u64;
            sync_dir(&self.dir)?;
        }
        let Some(f) = self.current.as_mut() else {
            return Err(JournalError::Io {
                what: "appending a batch".into(),
                error: io::Error::other("no segment is open (the first batch must begin one)"),
            });
        };
        f.write_all(&batch.bytes).map_err(io_err("appending to the journal"))?;
        self.batches += 1;
        let synced = if self.fail_sync_after.is_some_and(|n| self.batches > n) {
            Err(io::Error::from_raw_os_error(5))
        } else {
            f.sync_data()
        };
        match synced {
            Ok(()) => {
                self.durable_len += batch.bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // After a failed sync nothing written since the last good one can be trusted,
                // and it must not be taken for a record at the next start (its answer never
                // left): cut the segment back to its last good sync, if the disk still lets us.
                let _ = f.set_len(self.durable_len).and_then(|()| f.sync_all());
                Err(JournalError::Io { what: "syncing the journal".into(), error })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_journal::{Appender, GroupCommit, Kind, Torn};
    use std::time::Instant;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corridor-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn write_log(dir: &Path, records: u64) {
        let policy = GroupCommit { records_max: 7, ..GroupCommit::default() };
        let mut a = Appender::new(policy, 1, None);
        let mut w = Writer::open(dir, None).unwrap();
        let t = Instant::now();
        for i in 0..records {
            a.append(Kind::AnswerSent, &i.to_le_bytes(), t);
            if let Some(b) = a.poll_batch(t + GroupCommit::default().wait, 0) {
                w.write(&b).unwrap();
                a.handle_synced(b.last_seq);
            }
        }
        assert_eq!(a.durable(), records);
    }

    #[test]
    fn a_log_written_through_files_reads_back_and_a_torn_tail_is_cut() {
        let dir = temp("torn");
        write_log(&dir, 70);
        let segs = Segments::read(&dir).unwrap();
        let scan = segs.scan().unwrap();
        assert_eq!((scan.records(), scan.next_seq, scan.cut()), (70, 71, None));
        // A crash mid-write: the last record half on disk.
        let last = segs.files.last().unwrap().0;
        let path = segs.path(last);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
        let segs = Segments::read(&dir).unwrap();
        let scan = segs.scan().unwrap();
        assert_eq!((scan.records(), scan.segments.last().unwrap().1.torn), (69, Some(Torn::Incomplete)));
        let (seq, at) = scan.cut().unwrap();
        truncate(&dir, seq, at).unwrap();
        let scan_after = Segments::read(&dir).unwrap();
        let clean = scan_after.scan().unwrap();
        assert_eq!((clean.records(), clean.cut(), clean.next_seq), (69, None, 70));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_record_inside_the_log_names_its_segment_and_offset() {
        let dir = temp("corrupt");
        write_log(&dir, 20);
        let segs = Segments::read(&dir).unwrap();
        let (seq, _) = segs.files[0];
        let path = segs.path(seq);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let err = Segments::read(&dir).unwrap().scan().unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("{seq:020}.seg, offset 32")), "{text}");
        assert!(text.contains("corridor journal truncate"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
