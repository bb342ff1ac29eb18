//! The journal's files: a directory of segments, read whole for recovery, a torn tail cut,
//! batches appended and synced. The record format and every decision about it are
//! `corridor-journal`'s; this module only moves bytes between it and the disk.
//!
//! Blocking `std::fs` calls: recovery runs before the switch serves, and the operator's
//! `corridor journal` commands are one-shot.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io,
    path::{Path, PathBuf},
};

use corridor_journal::{scan_log, segment::SegmentHeader, Corrupt, LogScan, SyncBatch};

use crate::limits::{JOURNAL_BACKGROUND_NICE, SYNC_STEP_BYTES};

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
    /// The disk is full (ENOSPC, EDQUOT): the batch was not written, and what was begun of
    /// it was cut back; it may be written again once there is room.
    NoSpace {
        /// What was being done.
        what: String,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { what, error } => write!(f, "{what}: {error}"),
            Self::NoSpace { what } => write!(f, "{what}: no space left on the device"),
            Self::Corrupt(c) => write!(f, "{c} (inspect it with `corridor journal verify`; cutting the log there is a deliberate `corridor journal truncate`)"),
        }
    }
}

impl std::error::Error for JournalError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> JournalError {
    let what = what.into();
    move |error| {
        if is_no_space(&error) {
            JournalError::NoSpace { what }
        } else {
            JournalError::Io { what, error }
        }
    }
}

/// ENOSPC or EDQUOT.
fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122)) || e.kind() == io::ErrorKind::StorageFull
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
        Self::read_after(dir, 0)
    }

    /// Reads the segments of `dir` that may hold records after `seq`: the one that holds
    /// `seq + 1` and every later one (all of them for 0).
    ///
    /// # Errors
    ///
    /// The directory or a segment cannot be read.
    pub fn read_after(dir: &Path, seq: u64) -> Result<Self, JournalError> {
        let seqs = segment_seqs(dir)?;
        let from = seqs.iter().rposition(|&s| s <= seq.saturating_add(1)).unwrap_or(0);
        let mut files = Vec::new();
        for seq in seqs.into_iter().skip(from) {
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

/// Shard `k`'s journal directory under the journal directory `dir`: shard 0 journals in
/// `dir` itself, shard `k` in its `shard-k` subdirectory (as [`shard_dirs`] finds them).
#[must_use]
pub fn shard_dir(dir: &Path, k: usize) -> PathBuf {
    if k == 0 {
        dir.to_path_buf()
    } else {
        dir.join(format!("shard-{k}"))
    }
}

/// The journal directories of a switch whose journal is `dir`, with their shards: `dir`
/// itself (shard 0's), then each `shard-k` subdirectory in shard order.
#[must_use]
pub fn shard_dirs(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut shards: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let k = e.file_name().to_str()?.strip_prefix("shard-")?.parse::<usize>().ok()?;
            e.path().is_dir().then(|| (k, e.path()))
        })
        .collect();
    shards.sort();
    std::iter::once((0, dir.to_path_buf())).chain(shards).collect()
}

/// The segments of `dir` that may hold records written at or after `from_unix_ms` (by their
/// headers' creation times): the last one created before it and the ones after, at most
/// `max`, each as its first sequence number and path, oldest first. The second value says
/// whether later segments were left out.
///
/// # Errors
///
/// The directory cannot be read.
pub fn segments_since(
    dir: &Path,
    from_unix_ms: u64,
    max: usize,
) -> Result<(Vec<(u64, PathBuf)>, bool), JournalError> {
    let seqs = segment_seqs(dir)?;
    let created: Vec<u64> = seqs
        .iter()
        .map(|&seq| {
            let mut head = [0u8; corridor_journal::limits::SEGMENT_HEADER_BYTES];
            let read = std::fs::File::open(segment_path(dir, seq)).and_then(|mut f| {
                use std::io::Read as _;
                f.read_exact(&mut head)
            });
            // A segment torn inside its header is the newest: it counts as created now.
            read.ok().and_then(|()| SegmentHeader::parse(&head).ok()).map_or(u64::MAX, |h| h.created_unix_ms)
        })
        .collect();
    let start = created.iter().rposition(|&c| c <= from_unix_ms).unwrap_or(0);
    let more = seqs.len().saturating_sub(start) > max;
    let out = seqs.into_iter().skip(start).take(max).map(|seq| (seq, segment_path(dir, seq))).collect();
    Ok((out, more))
}

/// Calls `each` with every record (its sequence number and entry) of the segments holding
/// records from `from_unix_ms` on ([`segments_since`], at most `max` segments), for the views
/// that are not the switch's own (transactions, clearing): one segment in memory at a time,
/// the newest read as possibly torn at its tail, a segment removed by retention meanwhile
/// skipped, a record of a kind this version does not read passed over. Whether later
/// segments were left unread.
///
/// # Errors
///
/// The directory cannot be read, a segment is corrupt inside ([`JournalError`], into the
/// caller's error), or `each` fails.
pub fn for_each_since<E: From<JournalError>>(
    dir: &Path,
    from_unix_ms: u64,
    max: usize,
    mut each: impl FnMut(u64, corridor_journal::Entry) -> Result<(), E>,
) -> Result<(usize, bool), E> {
    let (segments, more) = segments_since(dir, from_unix_ms, max)?;
    let last = segments.last().map(|(seq, _)| *seq);
    for (seq, path) in &segments {
        // A segment removed by retention meanwhile is simply not there any more.
        let Ok(bytes) = std::fs::read(path) else { continue };
        let seg = corridor_journal::segment::scan_segment(&bytes, *seq, Some(*seq) == last)
            .map_err(JournalError::Corrupt)?;
        for f in &seg.records {
            if let Ok(entry) = corridor_journal::Entry::decode(f.record.kind, f.record.payload) {
                each(f.record.seq, entry)?;
            }
        }
    }
    Ok((segments.len(), more))
}

/// The first sequence numbers of the segments in `dir`, in order (files named as segments;
/// anything else is left alone). A directory that does not exist yet holds none.
/// The first record of the journal in `dir`'s first segment (`None`: no segment): what
/// came before it is in its checkpoint.
///
/// # Errors
///
/// The directory cannot be read.
pub fn first_segment(dir: &Path) -> Result<Option<u64>, JournalError> {
    Ok(segment_seqs(dir)?.first().copied())
}

fn segment_seqs(dir: &Path) -> Result<Vec<u64>, JournalError> {
    numbered_files(dir, SegmentHeader::seq_of_name)
}

/// The numbers of the files of `dir` whose names `parse` reads, in order (a directory that
/// does not exist yet holds none).
fn numbered_files(dir: &Path, parse: impl Fn(&str) -> Option<u64>) -> Result<Vec<u64>, JournalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
        if let Some(n) = entry.file_name().to_str().and_then(&parse) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The records of the journal in `dir` from sequence number `from` on, as they are on disk,
/// in chunks of at most `chunk_bytes` (a record larger than that is a chunk of its own):
/// `(first_seq, last_seq, bytes)`.
///
/// # Errors
///
/// A segment cannot be read, or is damaged inside.
pub fn records_from(
    dir: &Path,
    from: u64,
    chunk_bytes: usize,
) -> Result<Vec<(u64, u64, Vec<u8>)>, JournalError> {
    records_from_within(dir, from, chunk_bytes, usize::MAX)
}

/// [`records_from`], up to the end of the segment in which they reach `bytes_max` (at least
/// one segment's, when it holds any): what the stream lacks is refilled from these a round
/// at a time, so a long journal is never read into memory whole. The next round goes on
/// from the last record's successor.
///
/// # Errors
///
/// As [`records_from`].
pub fn records_from_within(
    dir: &Path,
    from: u64,
    chunk_bytes: usize,
    bytes_max: usize,
) -> Result<Vec<(u64, u64, Vec<u8>)>, JournalError> {
    let seqs = segment_seqs(dir)?;
    let last = seqs.last().copied();
    let mut out: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    let mut held = 0usize;
    for (i, &seq) in seqs.iter().enumerate() {
        // A segment whose successor begins at or before `from` holds nothing wanted.
        if seqs.get(i + 1).is_some_and(|&next| next <= from) {
            continue;
        }
        if held >= bytes_max {
            break;
        }
        let path = segment_path(dir, seq);
        let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let scan = corridor_journal::segment::scan_segment(&bytes, seq, Some(seq) == last)
            .map_err(JournalError::Corrupt)?;
        let ends: Vec<usize> = scan.records.iter().skip(1).map(|f| f.offset).chain([scan.end]).collect();
        for (found, end) in scan.records.iter().zip(ends) {
            if found.record.seq < from {
                continue;
            }
            let raw = &bytes[found.offset..end];
            held += raw.len();
            match out.last_mut() {
                Some((_, last_seq, chunk)) if chunk.len() + raw.len() <= chunk_bytes => {
                    chunk.extend_from_slice(raw);
                    *last_seq = found.record.seq;
                }
                _ => out.push((found.record.seq, found.record.seq, raw.to_vec())),
            }
        }
    }
    Ok(out)
}

/// Writes `records` (whole records, as a journal has them on disk, the first numbered
/// `first_seq`, following the directory's last record) as a new segment of the journal in
/// `dir`, synced with the directory: a node taking a shard over refills its journal from the
/// stream this way, then recovers it as a restart does.
///
/// # Errors
///
/// The segment cannot be written or synced.
pub fn restore_records(dir: &Path, first_seq: u64, records: &[u8]) -> Result<(), JournalError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    // The segment these follow is no longer the last: a closed segment holds its records
    // only, so a prepared one's zeros after its records are cut (the writer cuts them when it
    // moves on; a node killed on a prepared segment left them).
    if let Some(&prev) = segment_seqs(dir)?.last().filter(|&&s| s < first_seq) {
        let p = segment_path(dir, prev);
        let bytes = std::fs::read(&p).map_err(io_err(format!("reading {}", p.display())))?;
        let end = corridor_journal::scan_segment(&bytes, prev, true).map_err(JournalError::Corrupt)?.end;
        if end < bytes.len() {
            truncate(dir, prev, end)?;
        }
    }
    let path = segment_path(dir, first_seq);
    let header = SegmentHeader { first_seq, created_unix_ms: unix_ms() };
    let mut bytes = Vec::with_capacity(header.to_bytes().len() + records.len());
    bytes.extend_from_slice(&header.to_bytes());
    bytes.extend_from_slice(records);
    let write = || -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(io_err(format!("writing {}", path.display())))
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(SegmentHeader { first_seq: seq, created_unix_ms: 0 }.file_name())
}

/// Where a shard's journal is replicated: the stream's servers and name, and the shard.
#[derive(Clone, Debug)]
pub struct Replicate {
    /// The NATS servers.
    pub servers: Vec<String>,
    /// The stream's name.
    pub stream: String,
    /// Its copies.
    pub replicas: usize,
    /// Whether appends go compressed (`[cluster] compress`).
    pub compress: bool,
    /// The shard whose journal this is (its subject in the stream).
    pub shard: u16,
    /// When the node took the shard at start (see `corridor_ops::startup`): the subject's
    /// last sequence its first append expects, this node's name and the lease it holds, which
    /// the journal loop renews.
    pub taken: Option<Taken>,
}

/// A shard this node took at start: what its first append expects, and who keeps its lease.
#[derive(Clone, Debug)]
pub struct Taken {
    /// The subject's last stream sequence when the node read it.
    pub subject_last: u64,
    /// The shard's release mark when the node read it (see [`recover_released`]).
    pub released: Option<u64>,
    /// The process's lease keeper, which holds and renews the shard's lease.
    pub keeper: std::sync::Arc<corridor_cluster::LeaseKeeper>,
}

/// Where a switch's journal lives, for the network layer to append to.
#[derive(Clone, Debug)]
pub struct JournalFiles {
    /// The journal directory.
    pub dir: PathBuf,
    /// The segment to append to (the last one, after recovery) and where its records end,
    /// if there is one.
    pub last_segment: Option<(u64, u64)>,
    /// Segments are written whole with zeros before they are used (see [`Writer`]), so
    /// appending to one changes no file size: a sync is the data's alone.
    pub preallocate: Option<u64>,
    /// The directory's lock, held while the switch runs (`None` only in tests).
    pub lock: Option<crate::control::DirLock>,
    /// A checkpoint is written after this many new segments (and once at start).
    pub checkpoint_segments: u32,
    /// How checkpoints write their outcomes.
    pub outcomes: corridor_journal::recovery::OutcomesFormat,
    /// How long a completed request's outcome is kept (the duplicate window): older ones
    /// are left out of checkpoints.
    pub outcome_window: std::time::Duration,
    /// Segments a checkpoint covers are kept this long after they end (for audit and
    /// clearing), then removed.
    pub retain: std::time::Duration,
    /// Space held back in the directory for when the disk fills (see [`Writer`]).
    pub reserve_bytes: u64,
    /// The stream this shard's journal is replicated in, when the switch is one node of a
    /// cluster: a batch is durable once it is synced here and acknowledged there.
    pub replicate: Option<Replicate>,
    /// Fault injection, for tests: the storage seam (see [`StorageFault`]).
    #[doc(hidden)]
    pub fault: Option<std::sync::Arc<StorageFault>>,
}

/// The storage seam, for tests: faults a test arms while the switch runs.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct StorageFault {
    /// 0: off; n: the n-th sync from the time it is set fails with EIO, and every one after.
    pub eio_in: std::sync::atomic::AtomicU64,
    /// While set, every write fails with ENOSPC before touching the file.
    pub no_space: std::sync::atomic::AtomicBool,
}

impl StorageFault {
    /// Whether this sync fails.
    fn sync_fails(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        match self.eio_in.load(SeqCst) {
            0 => false,
            1 => true,
            n => {
                self.eio_in.store(n - 1, SeqCst);
                false
            }
        }
    }
}

/// What recovery found in a journal directory.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// Records read from the segments (after the checkpoint, when there is one).
    pub records: usize,
    /// The sequence number of the next record.
    pub next_seq: u64,
    /// The last segment and its length after recovery, if there is one.
    pub last: Option<(u64, u64)>,
    /// Where a torn tail was cut (segment and offset), if it was.
    pub cut: Option<(u64, usize)>,
    /// The checkpoint recovery began from (the last sequence number it covers), if any.
    pub checkpoint: Option<u64>,
    /// What the log says is still owed.
    pub owed: corridor_journal::recovery::Recovery,
}

/// Unix milliseconds now.
#[must_use]
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Recovers the journal in `dir` (creating it if missing): loads the newest checkpoint,
/// reads and scans the segments after it, cuts a torn tail at its start, and says where
/// appending goes on.
///
/// # Errors
///
/// The directory cannot be read or written, a checkpoint or the log is corrupt inside, or
/// the segments after the checkpoint are not all there: the switch must not start on it.
pub fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    recover_released(dir, None)
}

/// [`recover`], in a cluster: `released` is the last record whose gated frames the shard's
/// last owner released, as the stream says ([`corridor_journal::recovery::Recovery::released`]).
///
/// # Errors
///
/// As [`recover`].
pub fn recover_released(dir: &Path, released: Option<u64>) -> Result<Recovered, JournalError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let (owed, recovered) = read_state_released(dir, released)?;
    let Some((segs, cut, next_seq, records, end)) = recovered else {
        return Ok(Recovered {
            records: 0,
            next_seq: owed.last_seq + 1,
            last: None,
            cut: None,
            checkpoint: Some(owed.last_seq).filter(|&s| s > 0),
            owed,
        });
    };
    if let Some((seq, at)) = cut {
        truncate(dir, seq, at)?;
    }
    let last = match (segs.files.last(), cut, end) {
        (None, _, _) => None,
        // A segment cut inside its header is gone.
        (Some(_), Some((_, at)), _) if at < corridor_journal::limits::SEGMENT_HEADER_BYTES => None,
        (Some((seq, _)), Some((_, at)), _) => Some((*seq, at as u64)),
        // Zeros after the last record: a prepared segment's space (or a file extended and
        // never written); the writer goes on over them.
        (Some((seq, _)), None, Some(end)) => Some((*seq, end as u64)),
        (Some((seq, bytes)), None, None) => Some((*seq, bytes.len() as u64)),
    };
    let checkpoint = checkpoints(dir)?.last().copied();
    Ok(Recovered { records, next_seq, last, cut, checkpoint, owed })
}

/// What was read of the segments: them, where a torn tail is to be cut, the next sequence
/// number, the records folded, and where the last segment's records end when only zeros
/// follow them.
type ReadSegments = (Segments, Option<(u64, usize)>, u64, usize, Option<usize>);

/// The state a journal directory holds — its newest readable checkpoint with the records
/// after it folded in — and, when it has segments, what was read of them: the segments,
/// where a torn tail begins, the next sequence number and the records folded. Reads only;
/// nothing is cut.
///
/// # Errors
///
/// As [`recover`].
pub fn read_state(
    dir: &Path,
) -> Result<(corridor_journal::recovery::Recovery, Option<ReadSegments>), JournalError> {
    read_state_released(dir, None)
}

/// [`read_state`], answers after record `released` not taken as given (see
/// [`recover_released`]).
fn read_state_released(
    dir: &Path,
    released: Option<u64>,
) -> Result<(corridor_journal::recovery::Recovery, Option<ReadSegments>), JournalError> {
    let mut owed = load_checkpoint(dir)?;
    owed.released = released;
    let from = owed.last_seq;
    let segs = Segments::read_after(dir, from)?;
    if segs.files.is_empty() {
        return Ok((owed, None));
    }
    let first = segs.files[0].0;
    if first > from + 1 {
        return Err(JournalError::Io {
            what: format!("reading {}", dir.display()),
            error: io::Error::other(format!(
                "the log begins at record {first}, but what came before it is in no checkpoint \
                 (the newest covers records up to {from}): segments are missing"
            )),
        });
    }
    let (records, next_seq, cut, end) = {
        let scan = segs.scan()?;
        owed.fold(&scan, unix_ms()).map_err(|e| JournalError::Io {
            what: "reading the journal's entries".into(),
            error: io::Error::other(e.to_string()),
        })?;
        let zeros = scan.segments.last().is_some_and(|(_, s)| s.torn == Some(corridor_journal::Torn::Zeros));
        let end = scan.segments.last().map(|(_, s)| s.end).filter(|_| zeros);
        (scan.records(), scan.next_seq, scan.cut().filter(|_| !zeros), end)
    };
    Ok((owed, Some((segs, cut, next_seq, records, end))))
}

const CHECKPOINT_PREFIX: &str = "checkpoint-";
const CHECKPOINT_SUFFIX: &str = ".ckp";

/// The path of the checkpoint covering records up to `seq`.
fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{CHECKPOINT_PREFIX}{seq:020}{CHECKPOINT_SUFFIX}"))
}

/// The checkpoints of `dir`, by the last sequence number each covers, oldest first.
///
/// # Errors
///
/// The directory cannot be read.
pub fn checkpoints(dir: &Path) -> Result<Vec<u64>, JournalError> {
    numbered_files(dir, |name| {
        name.strip_prefix(CHECKPOINT_PREFIX)
            .and_then(|n| n.strip_suffix(CHECKPOINT_SUFFIX))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
    })
}

/// The bytes of `dir`'s checkpoint covering records up to `seq`, checked (every record
/// whole, and it covers what its name says: [`checked`]): what a node of a cluster appends
/// to its shard's subject.
///
/// # Errors
///
/// It cannot be read, or it is damaged.
pub fn checkpoint_bytes(dir: &Path, seq: u64) -> Result<Vec<u8>, JournalError> {
    let path = checkpoint_path(dir, seq);
    let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
    checked(&bytes, seq).map_err(|why| JournalError::Io {
        what: format!("reading {}", path.display()),
        error: io::Error::other(why),
    })?;
    Ok(bytes)
}

/// `bytes` read as a checkpoint of records up to `seq`: its state, or why it is not one.
fn checkpoint_of(bytes: &[u8], seq: u64) -> Result<corridor_journal::recovery::Recovery, String> {
    let r = corridor_journal::recovery::Recovery::from_checkpoint(bytes).map_err(|e| e.to_string())?;
    covering(r.last_seq, seq)?;
    Ok(r)
}

/// Whether `bytes` is a checkpoint of records up to `seq` — every record whole, as many as
/// its head says (`Recovery::check_checkpoint`) — or why it is not one: what a checkpoint
/// handed on is checked for, its state made only by the reader that folds it
/// ([`load_checkpoint`], which falls back to the older one if an entry is not its layout).
fn checked(bytes: &[u8], seq: u64) -> Result<(), String> {
    covering(corridor_journal::recovery::Recovery::check_checkpoint(bytes).map_err(|e| e.to_string())?, seq)
}

/// Whether a checkpoint that covers records up to `covers` is the one named for `seq`.
fn covering(covers: u64, seq: u64) -> Result<(), String> {
    if covers == seq {
        Ok(())
    } else {
        Err("it covers other records than its name says".into())
    }
}

/// Removes what a checkpoint cut short left (its file before the rename: the process
/// stopped or died while writing it; one checkpoint of a directory is written at a time).
fn remove_unfinished_checkpoints(dir: &Path) -> Result<(), JournalError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(CHECKPOINT_PREFIX) && name.ends_with(".tmp") {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
        }
    }
    Ok(())
}

/// Writes `bytes` as `dir`'s checkpoint of records up to `seq`: a file beside it, synced,
/// renamed into place, the directory synced (a crash leaves the old one or the new one).
fn write_checkpoint(dir: &Path, seq: u64, bytes: &[u8]) -> Result<(), JournalError> {
    let path = checkpoint_path(dir, seq);
    let tmp = path.with_extension("tmp");
    let f = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    write_stepped(&f, 0, bytes).map_err(io_err(format!("writing {}", tmp.display())))?;
    f.sync_all().map_err(io_err(format!("syncing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io_err(format!("renaming {}", tmp.display())))?;
    sync_dir(dir)
}

/// Writes `state` — a checkpoint of records up to `seq`, as a cluster's stream holds it —
/// into `dir` as its checkpoint file, synced with the directory: a node taking a shard over
/// from the stream's last checkpoint writes it, then the records after it
/// ([`restore_records`]), and recovers the journal as a restart does.
///
/// # Errors
///
/// `state` is not a checkpoint of records up to `seq`, or the file cannot be written.
pub fn restore_checkpoint(dir: &Path, seq: u64, state: &[u8]) -> Result<(), JournalError> {
    checked(state, seq).map_err(|why| JournalError::Io {
        what: format!("restoring {}", checkpoint_path(dir, seq).display()),
        error: io::Error::other(why),
    })?;
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    write_checkpoint(dir, seq, state)
}

/// The newest checkpoint of `dir` that reads back whole (an empty state when there is
/// none). A damaged newest one falls back to the one before it, which the segments after
/// it still cover (retention keeps them).
///
/// # Errors
///
/// Every checkpoint is damaged (or unreadable), and there is at least one.
pub fn load_checkpoint(dir: &Path) -> Result<corridor_journal::recovery::Recovery, JournalError> {
    let seqs = checkpoints(dir)?;
    let mut last_err = None;
    for &seq in seqs.iter().rev() {
        let path = checkpoint_path(dir, seq);
        let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        match checkpoint_of(&bytes, seq) {
            Ok(r) => return Ok(r),
            Err(why) => last_err = Some(format!("{}: {why}", path.display())),
        }
    }
    match last_err {
        None => Ok(corridor_journal::recovery::Recovery::default()),
        Some(e) => Err(JournalError::Io {
            what: "reading the journal's checkpoints".into(),
            error: io::Error::other(e),
        }),
    }
}

/// What [`checkpoint`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The last sequence number the new checkpoint covers (`None`: nothing new to cover).
    pub seq: Option<u64>,
    /// Its size.
    pub bytes: u64,
    /// Segments removed by retention.
    pub removed: Vec<u64>,
    /// How long it took.
    pub took: std::time::Duration,
    /// The CPU its thread spent on it.
    pub cpu: std::time::Duration,
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// Writes a checkpoint of every closed segment of `dir` (all but the last, which the
/// switch may be appending to — closed ones were synced whole before the next began):
/// the newest checkpoint with the records after it folded in, outcomes older than
/// `window` forgotten. Then retention: segments whose records the older of the two
/// checkpoints kept covers, and that ended more than `retain` ago, are removed.
/// Run it beside a running switch (it only reads what the switch no longer writes) or on
/// a stopped one.
///
/// # Errors
///
/// A file that cannot be read, written or removed, or damage in what it reads.
pub fn checkpoint(
    dir: &Path,
    window: std::time::Duration,
    retain: std::time::Duration,
) -> Result<CheckpointReport, JournalError> {
    Checkpointer::default().run(dir, window, retain)
}

/// What a process that checkpoints again and again keeps from one checkpoint to the next:
/// the state the last one wrote (folded on, not read back) and the memory a checkpoint
/// works in — the buffer a closed segment is read into (a segment's size), its records'
/// index, and the buffer the state is written from (the last checkpoint's size). Kept, not
/// made anew each time: a fresh buffer of tens of MiB, or an index grown by doubling to a
/// segment's hundreds of thousands of records, is copies and pages the kernel zeroes as
/// they are first touched (`benches/README.md`, the sixth pass). What it holds is bounded
/// by the journal's segment size (at most `corridor_journal::limits::SEGMENT_BYTES_MAX`)
/// and its last checkpoint's (outcomes at most `corridor_engine::limits::OUTCOMES_MAX`).
#[derive(Debug, Default)]
pub struct Checkpointer {
    state: Option<corridor_journal::recovery::Recovery>,
    /// Block-aligned: a segment is read into it around the page cache
    /// (`crate::direct::read_paced`).
    read: crate::direct::Aligned,
    records: Vec<corridor_journal::Found<'static>>,
    write: Vec<u8>,
    /// How its checkpoints write their outcomes.
    format: corridor_journal::recovery::OutcomesFormat,
}

/// The room a checkpoint's buffer is made with: a full window's outcomes in `format`
/// (`OutcomesFormat::room` each) and a little for the rest. One that needs more grows once,
/// and keeps what it grew to.
const fn checkpoint_room(format: corridor_journal::recovery::OutcomesFormat) -> usize {
    corridor_journal::limits::OUTCOMES_MAX * format.room() + (1 << 16)
}

impl Checkpointer {
    /// A checkpointer whose checkpoints write their outcomes as `format` says.
    #[must_use]
    pub fn with_format(format: corridor_journal::recovery::OutcomesFormat) -> Self {
        Self { format, ..Self::default() }
    }

    /// Its memory given back, its state kept (tests: a run with new memory).
    #[cfg(test)]
    fn forget_memory(&mut self) {
        (self.read, self.records, self.write) = (crate::direct::Aligned::default(), Vec::new(), Vec::new());
    }

    /// [`checkpoint`], from the state the previous run wrote (read from disk on the first,
    /// or after one that failed), in the memory the previous run used.
    ///
    /// # Errors
    ///
    /// As [`checkpoint`]; the state is read from disk again by the next run.
    pub fn run(
        &mut self,
        dir: &Path,
        window: std::time::Duration,
        retain: std::time::Duration,
    ) -> Result<CheckpointReport, JournalError> {
        let (began, cpu) = (std::time::Instant::now(), thread_cpu());
        let (mut report, state) = checkpoint_with(dir, window, retain, self)?;
        self.state = Some(state);
        (report.took, report.cpu) = (began.elapsed(), thread_cpu().saturating_sub(cpu));
        Ok(report)
    }
}

/// [`checkpoint`], in `memory`: from the state the previous checkpoint of this process wrote
/// (taken out of it; read back from disk when there is none), closed segments read one at a
/// time in its buffers; the state it wrote comes back for the next one.
///
/// # Errors
///
/// As [`checkpoint`].
fn checkpoint_with(
    dir: &Path,
    window: std::time::Duration,
    retain: std::time::Duration,
    memory: &mut Checkpointer,
) -> Result<(CheckpointReport, corridor_journal::recovery::Recovery), JournalError> {
    let mut report = CheckpointReport::default();
    remove_unfinished_checkpoints(dir)?;
    let mut state = match memory.state.take() {
        Some(s) => s,
        None => {
            let mut s = load_checkpoint(dir)?;
            // Kept from one checkpoint to the next: its window made room for once.
            s.outcomes.reserve_bound();
            s
        }
    };
    let all = segment_seqs(dir)?;
    let now = unix_ms();
    if all.len() >= 2 {
        let closed_end = all[all.len() - 1];
        if closed_end > state.last_seq + 1 {
            let from = all.iter().rposition(|&s| s <= state.last_seq + 1).unwrap_or(0);
            let Checkpointer { read: buf, records: recycled, write: bytes, format, .. } = memory;
            let format = *format;
            let mut next = all[from];
            for (i, &seq) in all.iter().enumerate().take(all.len() - 1).skip(from) {
                let path = segment_path(dir, seq);
                let len = crate::direct::read_paced(&path, buf)
                    .map_err(io_err(format!("reading {}", path.display())))?;
                let scan = corridor_journal::scan_segment_pausing(
                    &buf.as_bytes()[..len],
                    seq,
                    false,
                    std::mem::take(recycled),
                    &mut give_way,
                )
                .map_err(JournalError::Corrupt)?;
                if seq != next {
                    return Err(JournalError::Io {
                        what: "checkpointing the journal".into(),
                        error: io::Error::other(format!("segment {seq} begins where record {next} was due")),
                    });
                }
                next = scan.next_seq(seq);
                // Its records were made before the next segment began.
                let until = last_header_ms(dir, all[i + 1]).unwrap_or(now);
                state.apply_segment_pausing(&scan.records, until, &mut give_way).map_err(|e| {
                    JournalError::Io {
                        what: "reading the journal's entries".into(),
                        error: io::Error::other(e.to_string()),
                    }
                })?;
                *recycled = scan.recycle();
            }
            if next != closed_end {
                return Err(JournalError::Io {
                    what: "checkpointing the journal".into(),
                    error: io::Error::other(format!(
                        "a closed segment ends at record {next} but the next begins at {closed_end}"
                    )),
                });
            }
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            state.outcomes.expire(now.saturating_sub(window_ms));
            // Room for a full window, made once (address space until written): a buffer
            // grown as the window fills, or by doubling as it is written, copied what it
            // held into pages the kernel zeroed, each checkpoint. A fresh one, not the
            // emptied one grown: that would copy its old contents.
            bytes.clear();
            let room = checkpoint_room(format);
            if bytes.capacity() < room {
                *bytes = Vec::with_capacity(room);
            }
            state.checkpoint_as(format, bytes, &mut give_way);
            write_checkpoint(dir, state.last_seq, bytes)?;
            report.seq = Some(state.last_seq);
            report.bytes = bytes.len() as u64;
        }
    }
    // Keep the two newest checkpoints; a segment may go once the older covers it whole.
    let cks = checkpoints(dir)?;
    for &old in cks.iter().rev().skip(2) {
        let p = checkpoint_path(dir, old);
        std::fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
    }
    let Some(&covered) = cks.iter().rev().nth(1).or(cks.last()) else { return Ok((report, state)) };
    let retain_ms = u64::try_from(retain.as_millis()).unwrap_or(u64::MAX);
    for w in all.windows(2) {
        let (seg, next) = (w[0], w[1]);
        if next > covered + 1 {
            break;
        }
        let ended = last_header_ms(dir, next).unwrap_or(now);
        if now.saturating_sub(ended) < retain_ms {
            break;
        }
        let p = segment_path(dir, seg);
        std::fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
        report.removed.push(seg);
    }
    if !report.removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok((report, state))
}

/// A checkpoint's pause between two steps of its work
/// (`corridor_journal::limits::PAUSE_RECORDS`): the thread gives its core to whatever else
/// waits to run there — the switch, on a core they share — instead of keeping it for the
/// rest of the scheduler's slice (milliseconds, which every transaction in flight would
/// wait through). A pause with nothing waiting returns at once.
fn give_way() {
    rustix::thread::sched_yield();
}

/// The creation time in segment `seq`'s header.
fn last_header_ms(dir: &Path, seq: u64) -> Option<u64> {
    let mut f = File::open(segment_path(dir, seq)).ok()?;
    let mut b = [0u8; corridor_journal::limits::SEGMENT_HEADER_BYTES];
    std::io::Read::read_exact(&mut f, &mut b).ok()?;
    SegmentHeader::parse(&b).ok().map(|h| h.created_unix_ms)
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
/// per batch (`fdatasync`; the directory too when a segment was created). Segments are
/// written around the page cache where the file system allows it (`crate::direct`): a
/// batch as whole blocks, the segment's last partial block kept between batches.
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    current: Option<File>,
    /// Batches written.
    batches: u64,
    /// The current segment's length as of its last good sync.
    durable_len: u64,
    /// See [`JournalFiles::fault`].
    fault: Option<std::sync::Arc<StorageFault>>,
    /// The reserve file's size (0: none).
    reserve_bytes: u64,
    /// The size segments are prepared with (zeros, synced), when they are.
    preallocate: Option<u64>,
    /// The next segment being prepared in the background: whether it is ready.
    preparing: Option<std::thread::JoinHandle<bool>>,
    /// The prepared segment is ready (its preparation was found finished and whole).
    prepared: bool,
    /// The current segment was begun as it was: it grows as it is appended to, so each
    /// sync also commits its size (see [`Writer::wants_early_rotation`]).
    appending: bool,
    /// Whether segments are written around the page cache where the file system allows it
    /// (`crate::direct`; tests turn it off to compare).
    direct: bool,
    /// How the current segment is written (around the page cache: its last partial block).
    staged: crate::direct::Staged,
}

/// The next segment, prepared ahead (see [`Writer`]).
const PREPARED: &str = "next-segment.tmp";

/// Writes `bytes` to `f` at `at`, syncing after each [`SYNC_STEP_BYTES`]: the journal's own
/// syncs (a batch's, every few hundred microseconds) queue behind whatever else this disk
/// was given to flush, so a file of many MiB flushed at once — a checkpoint, a prepared
/// segment's zeros — would hold the batches behind it for as long as it takes.
fn write_stepped(f: &File, at: u64, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = at;
    for chunk in bytes.chunks(SYNC_STEP_BYTES) {
        f.write_all_at(chunk, at)?;
        f.sync_data()?;
        at += chunk.len() as u64;
    }
    Ok(())
}

/// Writes `bytes` of zeros to `f` from its start ([`write_stepped`]), and syncs it whole.
/// The zeros are a block-aligned step, so a file opened around the page cache takes them as
/// they are (its `bytes` a whole number of blocks).
fn write_zeros(f: &File, bytes: u64) -> io::Result<()> {
    let chunk = crate::direct::Aligned::zeros(SYNC_STEP_BYTES);
    let mut at = 0;
    while at < bytes {
        // At most the chunk's length.
        let n = (bytes - at).min(SYNC_STEP_BYTES as u64) as usize;
        write_stepped(f, at, &chunk.as_bytes()[..n])?;
        at += n as u64;
    }
    f.sync_all()
}

/// Lowers the calling thread's priority by [`JOURNAL_BACKGROUND_NICE`] (a thread of the
/// journal's own: a checkpoint's, a segment preparation's). Best effort: where it cannot,
/// the thread runs at the switch's priority, as it did.
pub(crate) fn background_priority() {
    // On Linux `nice` is the calling thread's.
    let _ = rustix::process::nice(JOURNAL_BACKGROUND_NICE);
}

/// Makes `path` a file of `bytes` zeros, written and synced (its blocks taken), around the
/// page cache when `direct` and its file system allows; whether it is whole (else it is
/// removed).
fn zero_file(path: &Path, bytes: u64, direct: bool) -> bool {
    let direct = direct && bytes.is_multiple_of(crate::limits::DIRECT_BLOCK_BYTES as u64);
    let made = crate::direct::open(path, OpenOptions::new().write(true).create(true).truncate(true), direct)
        .and_then(|(f, _)| write_zeros(&f, bytes));
    if made.is_err() {
        let _ = std::fs::remove_file(path);
        return false;
    }
    true
}

/// Writes `bytes` of zeros to `dir`'s prepared segment and syncs it; whether it is whole.
fn prepare_segment(dir: &Path, bytes: u64, direct: bool) -> bool {
    zero_file(&dir.join(PREPARED), bytes, direct)
}

impl Writer {
    /// A writer for `dir` (created if missing), appending to segment `last` — its first
    /// sequence number, and where its records end — when given.
    ///
    /// # Errors
    ///
    /// The directory cannot be created or the segment opened.
    pub fn open(dir: &Path, last: Option<(u64, u64)>) -> Result<Self, JournalError> {
        Self::open_as(dir, last, true)
    }

    fn open_as(dir: &Path, last: Option<(u64, u64)>, direct: bool) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let _ = std::fs::remove_file(dir.join(PREPARED));
        let mut w = Self {
            dir: dir.to_owned(),
            current: None,
            batches: 0,
            durable_len: last.map_or(0, |(_, len)| len),
            fault: None,
            reserve_bytes: 0,
            preallocate: None,
            preparing: None,
            prepared: false,
            appending: false,
            direct,
            staged: crate::direct::Staged::default(),
        };
        if let Some((seq, len)) = last {
            w.resume(&segment_path(dir, seq), len)?;
        }
        Ok(w)
    }

    /// Appends to segment `p` again, after its first `len` bytes.
    fn resume(&mut self, p: &Path, len: u64) -> Result<(), JournalError> {
        let what = || format!("opening {}", p.display());
        let (f, direct) =
            crate::direct::open(p, OpenOptions::new().write(true), self.direct).map_err(io_err(what()))?;
        self.staged.resume(direct, p, len).map_err(io_err(what()))?;
        // A prepared segment is longer than its records (its zeros; written around the page
        // cache, an appended one ends at the block its records end in).
        let end = len.next_multiple_of(crate::limits::DIRECT_BLOCK_BYTES as u64);
        self.appending = f.metadata().is_ok_and(|m| m.len() <= end);
        (self.current, self.durable_len) = (Some(f), len);
        Ok(())
    }

    /// [`Writer::open`], writing through the page cache as on a file system without direct
    /// I/O (tests: the bytes on disk are the same either way).
    ///
    /// # Errors
    ///
    /// As [`Writer::open`].
    #[doc(hidden)]
    pub fn open_buffered(dir: &Path, last: Option<(u64, u64)>) -> Result<Self, JournalError> {
        Self::open_as(dir, last, false)
    }

    /// Whether the current segment is written around the page cache.
    #[doc(hidden)]
    #[must_use]
    pub fn writes_direct(&self) -> bool {
        self.current.is_some() && self.staged.direct()
    }

    /// Segments of `bytes` prepared ahead: each next segment is written whole with zeros and
    /// synced on a thread of its own while the current one fills, and taken when a batch
    /// begins it (a closed segment is cut to its records). Appending then overwrites blocks
    /// the file already has: a sync writes the data and no file size or extent (measured on
    /// this machine's ext4: a 4 KiB append and sync p50 131–177 µs, an overwrite 78 µs). A
    /// segment not ready in time is begun empty.
    /// The segment appended to first is begun as it is (no start waits for a segment's worth
    /// of zeros to reach the disk: 64 MiB took seconds here); the next is prepared at once.
    #[must_use]
    pub fn preallocating(mut self, bytes: Option<u64>) -> Self {
        self.preallocate = bytes;
        self.start_preparing();
        self
    }

    fn start_preparing(&mut self) {
        let Some(bytes) = self.preallocate else { return };
        if self.preparing.is_some() {
            return;
        }
        let (dir, direct) = (self.dir.clone(), self.direct);
        self.preparing = std::thread::Builder::new()
            .name("corridor-journal-prepare".into())
            .spawn(move || {
                background_priority();
                prepare_segment(&dir, bytes, direct)
            })
            .ok();
    }

    /// Whether the next batch should begin a new segment however full the current one is:
    /// the current one was begun as it was (a fresh journal's first segment, or one whose
    /// preparation was not ready in time) and a prepared one is ready — each sync of an
    /// appended file commits its size too, and two shards' such syncs queue behind each
    /// other's in the file system's journal. The engine is told
    /// ([`corridor_engine::Engine::rotate_journal_segment`]).
    pub fn wants_early_rotation(&mut self) -> bool {
        if !self.appending || self.current.is_none() {
            return false;
        }
        if !self.prepared {
            match self.preparing.take() {
                Some(h) if h.is_finished() => self.prepared = h.join().unwrap_or(false),
                other => self.preparing = other,
            }
        }
        self.prepared
    }

    /// Whether the prepared segment is ready (then it is taken).
    fn take_prepared(&mut self) -> bool {
        if std::mem::take(&mut self.prepared) {
            return true;
        }
        match self.preparing.take() {
            Some(h) if h.is_finished() => h.join().unwrap_or(false),
            other => {
                self.preparing = other;
                false
            }
        }
    }

    /// Holds `bytes` back in the directory (a file of zeros, written and synced, so the
    /// blocks are taken) for when the disk fills: released then, it lets the switch journal
    /// what is already in flight while it declines new requests. Whether it is in place.
    pub fn with_reserve(mut self, bytes: u64) -> (Self, bool) {
        self.reserve_bytes = bytes;
        let ok = self.restore_reserve();
        (self, ok)
    }

    fn reserve_path(&self) -> PathBuf {
        self.dir.join("reserve")
    }

    /// Whether the reserve is in place.
    #[must_use]
    pub fn reserve_held(&self) -> bool {
        self.reserve_bytes > 0
            && std::fs::metadata(self.reserve_path()).is_ok_and(|m| m.len() >= self.reserve_bytes)
    }

    /// Gives the reserve back to the disk; whether there was one.
    pub fn release_reserve(&mut self) -> bool {
        std::fs::remove_file(self.reserve_path()).is_ok()
    }

    /// Takes the reserve again (once the disk has room for it): whether it is in place.
    pub fn restore_reserve(&mut self) -> bool {
        if self.reserve_bytes == 0 || self.reserve_held() {
            return self.reserve_bytes > 0;
        }
        zero_file(&self.reserve_path(), self.reserve_bytes, self.direct)
    }

    /// The storage seam for tests.
    #[doc(hidden)]
    #[must_use]
    pub fn with_fault(mut self, fault: Option<std::sync::Arc<StorageFault>>) -> Self {
        self.fault = fault;
        self
    }

    /// Writes `batch` and syncs it. Only after this returns may the appender be told.
    ///
    /// # Errors
    ///
    /// Any write or sync error: the batch is not durable, and (for a failed sync) nothing
    /// written since the last good sync may be trusted — the caller stops.
    pub fn write(&mut self, batch: &SyncBatch) -> Result<(), JournalError> {
        if self.fault.as_ref().is_some_and(|f| f.no_space.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(JournalError::NoSpace { what: "appending to the journal (injected)".into() });
        }
        let created = batch.new_segment.map(|h| self.dir.join(h.file_name()));
        match self.write_inner(batch) {
            Err(e @ JournalError::NoSpace { .. }) => {
                // Nothing of the batch may stay: cut back to the last good sync (a segment
                // begun by this batch is removed), so the same batch can be written again.
                if let Some(p) = created.filter(|p| p.exists()) {
                    let _ = std::fs::remove_file(p);
                    self.current = None;
                    let _ = sync_dir(&self.dir);
                } else if let Some(f) = self.current.as_mut() {
                    let _ = f.set_len(self.durable_len).and_then(|()| f.sync_all());
                }
                Err(e)
            }
            r => r,
        }
    }

    fn write_inner(&mut self, batch: &SyncBatch) -> Result<(), JournalError> {
        if let Some(h) = &batch.new_segment {
            if let Some(old) = self.current.take() {
                // Closed segments hold their records only (a prepared one's zeros cut).
                old.set_len(self.durable_len).map_err(io_err("closing the previous segment"))?;
                old.sync_all().map_err(io_err("syncing the previous segment"))?;
            }
            let p = self.dir.join(h.file_name());
            let prepared = self.take_prepared();
            self.appending = !prepared;
            let (at, how) = if prepared {
                (self.dir.join(PREPARED), OpenOptions::new().write(true).clone())
            } else {
                (p.clone(), OpenOptions::new().write(true).create_new(true).clone())
            };
            let (f, direct) = crate::direct::open(&at, &how, self.direct)
                .map_err(io_err(format!("opening {}", at.display())))?;
            let header = h.to_bytes();
            self.staged.begin(direct);
            self.staged.write(&f, 0, &header).map_err(io_err(format!("writing {}", at.display())))?;
            self.staged.advance(0, header.len());
            if prepared {
                // The header synced before the name: a segment under its name always has one.
                f.sync_data().map_err(io_err(format!("syncing {}", at.display())))?;
                std::fs::rename(&at, &p).map_err(io_err(format!("renaming {}", at.display())))?;
            }
            self.current = Some(f);
            self.durable_len = header.len() as u64;
            debug_assert_eq!(self.durable_len, corridor_journal::limits::SEGMENT_HEADER_BYTES as u64);
            sync_dir(&self.dir)?;
            self.start_preparing();
        }
        let Some(f) = self.current.as_mut() else {
            return Err(JournalError::Io {
                what: "appending a batch".into(),
                error: io::Error::other("no segment is open (the first batch must begin one)"),
            });
        };
        self.staged.write(f, self.durable_len, &batch.bytes).map_err(io_err("appending to the journal"))?;
        self.batches += 1;
        let synced = if self.fault.as_ref().is_some_and(|f| f.sync_fails()) {
            Err(io::Error::from_raw_os_error(5))
        } else {
            f.sync_data()
        };
        match synced {
            Ok(()) => {
                self.staged.advance(self.durable_len, batch.bytes.len());
                self.durable_len += batch.bytes.len() as u64;
                Ok(())
            }
            Err(error) if is_no_space(&error) => {
                Err(JournalError::NoSpace { what: "syncing the journal".into() })
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

    /// A directory of the test's own, removed when dropped (its segments are preallocated
    /// whole: left behind by every run, they would fill the disk).
    struct Temp(PathBuf);

    impl std::ops::Deref for Temp {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp(name: &str) -> Temp {
        let d = std::env::temp_dir().join(format!("corridor-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Temp(d)
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
        assert_eq!((scan.records(), scan.next_seq), (70, 71));
        // Zeros after the records (the block's rest, written around the page cache) are no tear.
        assert!(matches!(scan.segments.last().unwrap().1.torn, None | Some(Torn::Zeros)));
        // A crash mid-write: the last record half on disk (written around the page cache,
        // the file goes on to its block's end in zeros).
        let last = segs.files.last().unwrap().0;
        let path = segs.path(last);
        let len = scan.segments.last().unwrap().1.end as u64;
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
        let segs = Segments::read(&dir).unwrap();
        let scan = segs.scan().unwrap();
        assert_eq!((scan.records(), scan.segments.last().unwrap().1.torn), (69, Some(Torn::Incomplete)));
        let (seq, at) = scan.cut().unwrap();
        truncate(&dir, seq, at).unwrap();
        let scan_after = Segments::read(&dir).unwrap();
        let clean = scan_after.scan().unwrap();
        assert_eq!((clean.records(), clean.cut(), clean.next_seq), (69, None, 70));
    }

    /// The refill of a stream reads a long journal a round of whole segments at a time:
    /// each round at least its bound (but the last), ending where a segment ends; the rounds
    /// one after another are the journal whole.
    #[test]
    fn a_journal_is_read_in_rounds_of_whole_segments_within_a_bound() {
        let dir = temp("rounds");
        write_transactions(&dir, 20_000);
        let whole: Vec<u8> =
            records_from(&dir, 1, 1 << 16).unwrap().into_iter().flat_map(|(_, _, b)| b).collect();
        let starts = segment_seqs(&dir).unwrap();
        assert!(starts.len() > 6, "{} segments", starts.len());
        let (bound, segment) =
            (2 << 20, usize::try_from(corridor_journal::limits::SEGMENT_BYTES_MIN).unwrap());
        let (mut from, mut read, mut rounds) = (1, Vec::new(), Vec::new());
        loop {
            let round = records_from_within(&dir, from, 1 << 16, bound).unwrap();
            let Some(&(_, last, _)) = round.last() else { break };
            assert_eq!(round[0].0, from, "round {} goes on from the last", rounds.len());
            let bytes: usize = round.iter().map(|(_, _, b)| b.len()).sum();
            rounds.push((bytes, last + 1));
            read.extend(round.into_iter().flat_map(|(_, _, b)| b));
            from = last + 1;
            assert!(rounds.len() < 100);
        }
        assert!(rounds.len() > 1, "{rounds:?}");
        for (i, &(bytes, next)) in rounds.iter().enumerate() {
            assert!(
                bytes <= bound + segment,
                "round {i}: {bytes} bytes, past the bound by more than a segment"
            );
            if i + 1 < rounds.len() {
                assert!(
                    bytes >= bound && starts.contains(&next),
                    "round {i} ({bytes} bytes) ends within the bound or a segment"
                );
            }
        }
        assert!(read == whole, "the rounds are the journal whole");
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
    }

    /// Writes `n` transactions (accepted, forwarded, answered — every tenth left open, every
    /// seventh reversed and acknowledged) through the real appender into segments of the
    /// smallest size; returns the log's own fold.
    fn write_transactions(dir: &Path, n: u64) -> corridor_journal::recovery::Recovery {
        append_transactions(dir, 0..n);
        let segs = Segments::read(dir).unwrap();
        corridor_journal::recovery::Recovery::of(&segs.scan().unwrap()).unwrap()
    }

    /// Transactions `range` (numbered as [`write_transactions`]'s) appended to the journal
    /// in `dir`, begun if there is none.
    fn append_transactions(dir: &Path, range: std::ops::Range<u64>) {
        use corridor_journal::entry::{Accepted, Answered, Entry, Forwarded, ReversalQueued};
        let policy = GroupCommit {
            records_max: 64,
            segment_bytes: corridor_journal::limits::SEGMENT_BYTES_MIN,
            ..GroupCommit::default()
        };
        let (next, last) = if dir.exists() {
            let r = recover(dir).unwrap();
            (r.next_seq, r.last)
        } else {
            (1, None)
        };
        let mut a = Appender::new(policy, next, last.map(|(_, l)| l));
        let mut w = Writer::open(dir, last).unwrap();
        let t = Instant::now();
        let mut p = Vec::new();
        let mut put = |a: &mut Appender, e: Entry| {
            p.clear();
            e.encode(&mut p);
            a.append(e.kind(), &p, t)
        };
        for i in range {
            let stan = u32::try_from(i % 1_000_000).unwrap();
            let acc = Entry::Accepted(Accepted {
                key: corridor_journal::entry::Key {
                    stan,
                    time: 1_125_221_530 + i / 1_000_000,
                    ..corridor_journal::entry::key("acq", 2, 0)
                },
                link: "acq-1".into(),
                correlation: i,
                request: vec![7; 240],
                at_unix_ms: 0,
            });
            let seq = put(&mut a, acc);
            let f = Forwarded {
                request: seq,
                destination: "iss".into(),
                link: "iss-1".into(),
                key: i,
                sent_stan: *b"000001",
            };
            put(&mut a, Entry::Forwarded(f));
            if i % 10 != 9 {
                put(
                    &mut a,
                    Entry::Answered(Answered {
                        request: seq,
                        code: *b"00",
                        auth: Some(*b"AUTH01"),
                        switch_made: false,
                        at_unix_ms: 0,
                    }),
                );
            }
            if i % 7 == 3 {
                let id = a.next_seq();
                let q = ReversalQueued {
                    id,
                    destination: "iss".into(),
                    reversal: vec![8; 100],
                    queued_unix_ms: 1,
                    original: Some(corridor_journal::entry::Key {
                        stan,
                        ..corridor_journal::entry::key("acq", 2, 0)
                    }),
                    advice: None,
                };
                put(&mut a, Entry::ReversalQueued(q));
                put(&mut a, Entry::ReversalSent { id, attempt: 0 });
                if i % 14 == 3 {
                    put(&mut a, Entry::ReversalAcked { id });
                } else {
                    put(&mut a, Entry::ReversalAbandoned { id, attempts: 1 });
                }
            }
            while let Some(b) = a.poll_batch(t, unix_ms()) {
                w.write(&b).unwrap();
                a.handle_synced(b.last_seq);
            }
        }
    }

    /// A checkpointer that keeps its memory from one run to the next writes what one whose
    /// memory is new writes: nothing of the last run's segment, records or state bytes is
    /// left in what it reuses (its second run has fewer records to read than its first, and
    /// a larger state to write). Both keep their state (its bytes are in the order of the
    /// state's maps, which a state read back from disk need not share).
    #[test]
    fn a_checkpointer_that_keeps_its_memory_writes_what_one_with_new_memory_writes() {
        let (a, b) = (temp("checkpointer-kept"), temp("checkpointer-new"));
        let day = std::time::Duration::from_secs(86_400);
        let segments_to = |to: &Path| {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(&*a).unwrap() {
                let e = e.unwrap();
                if e.file_name().to_string_lossy().ends_with(".seg") {
                    std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                }
            }
        };
        append_transactions(&a, 0..6_000);
        segments_to(&b);
        let (mut kept, mut renewed) = (Checkpointer::default(), Checkpointer::default());
        let what = |r: CheckpointReport| (r.seq, r.bytes, r.removed);
        let first = what(kept.run(&a, day, day).unwrap());
        assert!(first.0.is_some(), "a checkpoint of the closed segments");
        assert_eq!(what(renewed.run(&b, day, day).unwrap()), first);
        let room = (kept.read.as_bytes().len(), kept.records.capacity(), kept.write.capacity());
        assert!(room.0 > 0 && room.1 > 0 && room.2 > 0, "{room:?}");
        append_transactions(&a, 6_000..8_000);
        segments_to(&b);
        renewed.forget_memory();
        let second = what(kept.run(&a, day, day).unwrap());
        assert!(second.0 > first.0, "{second:?} after {first:?}");
        assert_eq!(what(renewed.run(&b, day, day).unwrap()), second);
        let seq = second.0.unwrap();
        assert_eq!(checkpoint_bytes(&a, seq).unwrap(), checkpoint_bytes(&b, seq).unwrap());
        assert!(kept.write.capacity() >= room.2, "kept, not made anew");
        same_state(&recover(&a).unwrap().owed, &recover(&b).unwrap().owed);
    }

    /// A checkpoint handed on — read to go to the shard's subject, or restored from it into a
    /// taking-over node's directory — is checked whole and for what it covers, and a
    /// damaged one or one of other records goes nowhere; a restored one recovers the state.
    #[test]
    fn a_checkpoint_handed_on_is_checked_whole_and_for_what_it_covers() {
        let (dir, to) = (temp("checkpoint-handed-on"), temp("checkpoint-restored"));
        let day = std::time::Duration::from_secs(86_400);
        append_transactions(&dir, 0..6_000);
        let seq = checkpoint(&dir, day, day).unwrap().seq.unwrap();
        let bytes = checkpoint_bytes(&dir, seq).unwrap();
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        for (state, covers) in
            [(&bytes, seq + 1), (&bytes, seq - 1), (&flipped, seq), (&bytes[..bytes.len() - 1].to_vec(), seq)]
        {
            assert!(restore_checkpoint(&to, covers, state).is_err(), "covers {covers} of {seq}");
            assert!(checkpoints(&to).unwrap_or_default().is_empty(), "nothing restored");
        }
        std::fs::write(checkpoint_path(&dir, seq), &flipped).unwrap();
        assert!(checkpoint_bytes(&dir, seq).is_err(), "a damaged file is not handed on");
        restore_checkpoint(&to, seq, &bytes).unwrap();
        assert_eq!(checkpoints(&to).unwrap(), [seq]);
        std::fs::write(checkpoint_path(&dir, seq), &bytes).unwrap();
        same_state(&load_checkpoint(&to).unwrap(), &load_checkpoint(&dir).unwrap());
    }

    /// The kinds of a checkpoint's records, in order.
    fn kinds(bytes: &[u8]) -> Vec<Kind> {
        let mut at = 0;
        let mut kinds = Vec::new();
        while let corridor_journal::record::Decoded::Record { record, len } =
            corridor_journal::record::decode(&bytes[at..])
        {
            kinds.push(record.kind);
            at += len;
        }
        assert_eq!(at, bytes.len(), "every record whole");
        kinds
    }

    /// `compact_checkpoints = false` writes checkpoints as builds before `Outcomes` records
    /// read them, an `Outcome` record an outcome; either recovers the same state, and a
    /// journal whose checkpoints change format (the setting turned on) reads the last one
    /// written the old way and goes on.
    #[test]
    fn checkpoints_written_either_way_recover_the_same_state() {
        use corridor_journal::recovery::OutcomesFormat;
        let (records, compact) = (temp("checkpoint-as-records"), temp("checkpoint-compact"));
        let day = std::time::Duration::from_secs(86_400);
        for d in [&records, &compact] {
            append_transactions(d, 0..6_000);
        }
        let seq =
            Checkpointer::with_format(OutcomesFormat::Records).run(&records, day, day).unwrap().seq.unwrap();
        assert_eq!(
            Checkpointer::with_format(OutcomesFormat::Compact).run(&compact, day, day).unwrap().seq,
            Some(seq)
        );
        let (r, c) = (checkpoint_bytes(&records, seq).unwrap(), checkpoint_bytes(&compact, seq).unwrap());
        let (rk, ck) = (kinds(&r), kinds(&c));
        assert!(rk.contains(&Kind::Outcome) && !rk.contains(&Kind::Outcomes), "{rk:?}");
        assert!(ck.contains(&Kind::Outcomes) && !ck.contains(&Kind::Outcome), "{ck:?}");
        // The open requests are the same records either way; the outcomes are not.
        assert!(c.len() < r.len(), "{} bytes against {}", c.len(), r.len());
        same_state(&recover(&records).unwrap().owed, &recover(&compact).unwrap().owed);
        // The setting turned on: the next checkpoint folds on from the last one written the
        // old way (read from disk: a new process), and is written compact.
        for d in [&records, &compact] {
            append_transactions(d, 6_000..8_000);
        }
        let next =
            Checkpointer::with_format(OutcomesFormat::Compact).run(&records, day, day).unwrap().seq.unwrap();
        assert!(next > seq);
        assert!(kinds(&checkpoint_bytes(&records, next).unwrap()).contains(&Kind::Outcomes));
        assert_eq!(
            Checkpointer::with_format(OutcomesFormat::Compact).run(&compact, day, day).unwrap().seq,
            Some(next)
        );
        same_state(&recover(&records).unwrap().owed, &recover(&compact).unwrap().owed);
    }

    fn same_state(a: &corridor_journal::recovery::Recovery, b: &corridor_journal::recovery::Recovery) {
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.reversals.keys().collect::<Vec<_>>(), b.reversals.keys().collect::<Vec<_>>());
        assert_eq!(a.exceptions.keys().collect::<Vec<_>>(), b.exceptions.keys().collect::<Vec<_>>());
        assert_eq!(a.outcomes.len(), b.outcomes.len());
        for (k, o) in a.outcomes.iter() {
            let other = b.outcomes.get(k).unwrap();
            assert_eq!((o.code, o.auth, o.reversed), (other.code, other.auth, other.reversed), "{k:?}");
        }
    }

    #[test]
    fn the_journals_background_threads_run_below_the_switch() {
        // Only the calling thread's priority changes (Linux: nice is per thread).
        let mine = rustix::process::getpriority_process(None).unwrap();
        let theirs = std::thread::spawn(|| {
            background_priority();
            rustix::process::getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(theirs, (mine + JOURNAL_BACKGROUND_NICE).min(19));
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), mine);
    }

    #[test]
    fn recovery_from_a_checkpoint_is_recovery_from_the_whole_log_and_retention_keeps_what_it_needs() {
        let dir = temp("checkpoint");
        let whole = write_transactions(&dir, 6_000);
        let segments = segment_seqs(&dir).unwrap();
        assert!(segments.len() >= 3, "several segments: {segments:?}");
        let day = std::time::Duration::from_secs(86_400);
        // A checkpoint cut short (its thread does not hold the switch's exit) leaves its file
        // before the rename: the next removes it.
        let unfinished = checkpoint_path(&dir, 17).with_extension("tmp");
        std::fs::write(&unfinished, [7u8; 100]).unwrap();

        // A checkpoint of the closed segments; recovery then reads only the last one.
        let r = checkpoint(&dir, day, day).unwrap();
        assert_eq!(r.seq, Some(segments[segments.len() - 1] - 1));
        assert!(r.removed.is_empty(), "kept for a day");
        assert!(!unfinished.exists());
        let rec = recover(&dir).unwrap();
        assert_eq!(rec.checkpoint, r.seq);
        assert!(rec.records < whole.last_seq as usize / 2, "read {} records", rec.records);
        same_state(&rec.owed, &whole);

        // More transactions, another checkpoint, retention at zero: only what the older of
        // the two checkpoints covers goes, and recovery still agrees with the whole log.
        let rec = recover(&dir).unwrap();
        let policy = GroupCommit {
            records_max: 64,
            segment_bytes: corridor_journal::limits::SEGMENT_BYTES_MIN,
            ..GroupCommit::default()
        };
        let mut ap = Appender::new(policy, rec.next_seq, rec.last.map(|(_, l)| l));
        let mut w = Writer::open(&dir, rec.last).unwrap();
        let t = Instant::now();
        // Records that change no state (a checkpoint head is skipped by the fold).
        for _ in 0..9_000u64 {
            ap.append(Kind::Checkpoint, &[0u8; 200], t);
            if let Some(b) = ap.poll_batch(t, unix_ms()) {
                w.write(&b).unwrap();
                ap.handle_synced(b.last_seq);
            }
        }
        let r2 = checkpoint(&dir, day, std::time::Duration::ZERO).unwrap();
        assert!(r2.seq > r.seq);
        assert!(!r2.removed.is_empty(), "covered segments removed");
        assert!(r2.removed.iter().all(|&s| s < r.seq.unwrap()), "only what the older checkpoint covers");
        assert_eq!(checkpoints(&dir).unwrap(), [r.seq.unwrap(), r2.seq.unwrap()]);
        let rec = recover(&dir).unwrap();
        same_state(&rec.owed, &whole);

        // A damaged newest checkpoint: the older one and the segments after it still serve.
        let newest = checkpoint_path(&dir, r2.seq.unwrap());
        let mut bytes = std::fs::read(&newest).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(&newest, &bytes).unwrap();
        let rec = recover(&dir).unwrap();
        same_state(&rec.owed, &whole);

        // A segment missing after the checkpoint that covers least: refused, named.
        std::fs::remove_file(&newest).unwrap();
        let first_after = segment_seqs(&dir).unwrap().into_iter().find(|&s| s > r.seq.unwrap() + 1).unwrap();
        let gone = segment_seqs(&dir).unwrap().into_iter().rev().find(|&s| s < first_after).unwrap();
        std::fs::remove_file(segment_path(&dir, gone)).unwrap();
        let err = recover(&dir).unwrap_err().to_string();
        assert!(err.contains("segments are missing") || err.contains("sequence"), "{err}");
    }

    /// Waits for the segment being prepared, if one is (as a segment's worth of traffic
    /// gives the preparing thread its time).
    /// [`Writer::open`] or [`Writer::open_buffered`].
    type OpenWriter = fn(&Path, Option<(u64, u64)>) -> Result<Writer, JournalError>;

    /// The records of `n` appends of every length (most batches end inside a block, some
    /// span many), written by a writer that `open`s as it is told, prepared segments taken
    /// and closed, and a restart halfway that appends where the records ended; whether any
    /// batch went around the page cache.
    fn write_every_length(dir: &Path, n: u64, open: OpenWriter) -> bool {
        let seg = corridor_journal::limits::SEGMENT_BYTES_MIN;
        let policy = GroupCommit { records_max: 16, segment_bytes: seg, ..GroupCommit::default() };
        let (mut a, mut w) =
            (Appender::new(policy, 1, None), open(dir, None).unwrap().preallocating(Some(seg)));
        let t = Instant::now();
        let mut direct = false;
        for i in 0..n {
            if i == n / 2 {
                if let Some(b) = a.poll_batch(t + policy.wait, unix_ms()) {
                    w.write(&b).unwrap();
                    a.handle_synced(b.last_seq);
                }
                drop(w);
                let rec = recover(dir).unwrap();
                assert_eq!((rec.cut, rec.records as u64), (None, i));
                a = Appender::new(policy, rec.next_seq, rec.last.map(|(_, end)| end));
                w = open(dir, rec.last).unwrap().preallocating(Some(seg));
            }
            let len = usize::try_from(i * 397 % 9_000).unwrap();
            a.append(Kind::Checkpoint, &vec![u8::try_from(i % 251).unwrap(); len], t);
            if let Some(b) = a.poll_batch(t, unix_ms()) {
                if b.new_segment.is_some() {
                    await_preparation(&w);
                }
                w.write(&b).unwrap();
                direct |= w.writes_direct();
                a.handle_synced(b.last_seq);
            }
        }
        if let Some(b) = a.poll_batch(t + policy.wait, unix_ms()) {
            w.write(&b).unwrap();
            a.handle_synced(b.last_seq);
        }
        assert_eq!(a.durable(), n);
        direct
    }

    #[test]
    fn a_journal_written_around_the_page_cache_holds_what_one_written_through_it_does() {
        let (direct_dir, buffered_dir) = (temp("direct"), temp("buffered"));
        let n = 3_000;
        let went_direct = write_every_length(&direct_dir, n, Writer::open);
        assert!(!write_every_length(&buffered_dir, n, Writer::open_buffered));
        // Where this file system takes direct I/O, the writer used it.
        let probe = direct_dir.join("probe");
        let (_, supported) =
            crate::direct::open(&probe, OpenOptions::new().write(true).create(true), true).unwrap();
        assert_eq!(went_direct, supported);
        let records = |dir: &Path| -> Vec<u8> {
            let rec = recover(dir).unwrap();
            assert_eq!((rec.cut, rec.records as u64), (None, n));
            records_from(dir, 1, 1 << 30).unwrap().into_iter().flat_map(|(_, _, b)| b).collect()
        };
        let (d, b) = (records(&direct_dir), records(&buffered_dir));
        assert!(d.len() > 10 << 20, "{} bytes of records", d.len());
        assert!(d == b, "the same records, byte for byte");
        assert!(segment_seqs(&direct_dir).unwrap().len() >= 3);
    }

    fn await_preparation(w: &Writer) {
        while w.preparing.as_ref().is_some_and(|h| !h.is_finished()) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_segment_begun_as_it_was_is_left_once_a_prepared_one_is_ready() {
        let dir = temp("early");
        let seg = corridor_journal::limits::SEGMENT_BYTES_MIN;
        let policy = GroupCommit { records_max: 1, segment_bytes: seg, ..GroupCommit::default() };
        let mut a = Appender::new(policy, 1, None);
        let mut w = Writer::open(&dir, None).unwrap().preallocating(Some(seg));
        let t = Instant::now();
        let write = |a: &mut Appender, w: &mut Writer| {
            a.append(Kind::Checkpoint, &[1; 100], t);
            let b = a.poll_batch(t, unix_ms()).unwrap();
            w.write(&b).unwrap();
            a.handle_synced(b.last_seq);
            b.new_segment.map(|h| h.first_seq)
        };
        assert_eq!(write(&mut a, &mut w), Some(1), "a fresh journal's first segment, begun as it is");
        await_preparation(&w);
        assert!(w.wants_early_rotation(), "appended to, and a prepared one ready");
        a.rotate_early();
        assert_eq!(write(&mut a, &mut w), Some(2), "left after one record");
        assert!(!w.wants_early_rotation(), "the prepared one is kept to its size");
        assert_eq!(write(&mut a, &mut w), None);
        let seqs = segment_seqs(&dir).unwrap();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(std::fs::metadata(segment_path(&dir, 2)).unwrap().len(), seg, "the prepared one");
        drop(w);
        // Opened again: on the prepared segment nothing is wanted; on one that was appended
        // to, the next prepared one is.
        let rec = recover(&dir).unwrap();
        assert_eq!(rec.records, 3);
        let mut w = Writer::open(&dir, rec.last).unwrap();
        assert!(!w.wants_early_rotation());
        drop(w);
        // Records taken from a cluster's stream after it (a node killed on a prepared
        // segment catching up): they begin a segment of their own, and the prepared one's
        // zeros are cut — a closed segment holds its records only.
        let mut more = Vec::new();
        for seq in 4..=6 {
            corridor_journal::encode(seq, Kind::Checkpoint, &[2; 50], &mut more);
        }
        restore_records(&dir, 4, &more).unwrap();
        assert!(std::fs::metadata(segment_path(&dir, 2)).unwrap().len() < seg);
        let rec = recover(&dir).unwrap();
        assert_eq!((rec.records, rec.next_seq, rec.cut), (6, 7, None));
        let dir = temp("early-appended");
        let mut a = Appender::new(policy, 1, None);
        let mut w1 = Writer::open(&dir, None).unwrap();
        write(&mut a, &mut w1);
        drop(w1);
        let rec = recover(&dir).unwrap();
        let mut w = Writer::open(&dir, rec.last).unwrap().preallocating(Some(seg));
        await_preparation(&w);
        assert!(w.wants_early_rotation());
    }

    #[test]
    fn prepared_segments_are_taken_closed_ones_cut_to_their_records_and_a_zero_tail_is_no_tear() {
        let dir = temp("prepared");
        let seg = corridor_journal::limits::SEGMENT_BYTES_MIN;
        let policy = GroupCommit { records_max: 64, segment_bytes: seg, ..GroupCommit::default() };
        let mut a = Appender::new(policy, 1, None);
        let mut w = Writer::open(&dir, None).unwrap().preallocating(Some(seg));
        let t = Instant::now();
        let mut prepared_used = 0;
        for i in 0..9_000u64 {
            // Records that change no state (the fold skips a checkpoint head).
            a.append(Kind::Checkpoint, &[u8::try_from(i % 251).unwrap(); 300], t);
            if let Some(b) = a.poll_batch(t, unix_ms()) {
                if b.new_segment.is_some() {
                    // Give the preparing thread its time, as a segment's worth of traffic does.
                    await_preparation(&w);
                    prepared_used += usize::from(w.preparing.is_some());
                }
                w.write(&b).unwrap();
                a.handle_synced(b.last_seq);
            }
        }
        let seqs = segment_seqs(&dir).unwrap();
        assert!(seqs.len() >= 3 && prepared_used >= 2, "{seqs:?}, {prepared_used} prepared");
        for &s in &seqs[..seqs.len() - 1] {
            let len = std::fs::metadata(segment_path(&dir, s)).unwrap().len();
            assert!(len < seg, "a closed segment holds its records only: {len}");
        }
        let last = *seqs.last().unwrap();
        assert_eq!(
            std::fs::metadata(segment_path(&dir, last)).unwrap().len(),
            seg,
            "the current one is prepared whole"
        );
        drop(w);
        // The zeros after the last record are no torn tail: nothing is cut, and the writer
        // goes on over them.
        let rec = recover(&dir).unwrap();
        assert_eq!((rec.cut, rec.records), (None, 9_000));
        let (seq, end) = rec.last.unwrap();
        assert_eq!(seq, last);
        assert!(end < seg);
        let mut a = Appender::new(policy, rec.next_seq, Some(end));
        let mut w = Writer::open(&dir, rec.last).unwrap();
        a.append(Kind::Checkpoint, b"after", t);
        let b = a.poll_batch(t, unix_ms()).unwrap();
        w.write(&b).unwrap();
        drop(w);
        let rec = recover(&dir).unwrap();
        assert_eq!((rec.cut, rec.records, rec.next_seq), (None, 9_001, 9_002));
    }
}
