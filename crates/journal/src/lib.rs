//! Corridor's journal: an append-only, segmented log of what the switch decided, so that
//! what it acknowledged survives a crash. This crate is the product's own record format and
//! the logic around it, sans-IO: it never opens a file, reads a clock or syncs a disk. The
//! I/O layer hands it bytes and times and writes what it gives back.
//!
//! # Layout
//!
//! - [`limits`]: every bound, in one place.
//! - [`record`]: one record's framing — length, CRC32C, sequence number, kind — and its
//!   encoder and zero-copy decoder.
//! - [`recovery`]: what the log says is still owed: requests to reverse, reversals to
//!   resume, outcomes to answer repeats from.
//! - [`request`]: a request as the journal keeps it: no track, CVV, PIN block or ICC data,
//!   the PAN sealed with AES-256-GCM under a key id, first six and last four in clear.
//! - [`segment`]: a segment file's header and name, and the scan of one segment's bytes,
//!   which tells a torn tail (a crash mid-write, cut at its start) from a corrupt record
//!   inside the log (never skipped: the scan stops with the segment and offset named).
//! - [`entry`]: what each kind of record says, and its payload codec.
//! - [`log`]: the scan of a whole log, segment after segment, with the sequence checked
//!   across them.
//! - [`positions`]: the hash index of positions a window of outcomes is found by (the
//!   engine's duplicate window and a checkpoint's outcomes).
//! - [`append`]: the writer's side: records encoded into batches, group commit (one sync per
//!   batch, bounded by a record count and a wait), segments rotated by size, and which
//!   sequence numbers are durable.
//!
//! # On disk
//!
//! A log is a directory of segments named by the sequence number of their first record
//! (`00000000000000000001.seg`, twenty digits, so names sort as numbers). A segment is a
//! 32-byte header, then records back to back:
//!
//! ```text
//! segment header (32 bytes, little-endian)
//!  0       4       6       8               16              24      28      32
//! +-------+-------+-------+---------------+---------------+-------+-------+
//! | "CRDJ"|version| 0     | first_seq u64 | created ms u64| crc32c| 0     |
//! +-------+-------+-------+---------------+---------------+-------+-------+
//!                                     crc32c covers bytes 0..24
//!
//! record (8-byte frame, then the body the frame describes)
//!  0               4               8                               16      17
//! +---------------+---------------+-------------------------------+-------+-----------+
//! | body_len u32  | crc32c u32    | seq u64                       | kind  | payload   |
//! +---------------+---------------+-------------------------------+-------+-----------+
//!                                 |<----------- body_len bytes, covered by crc32c ---->|
//! ```

#![forbid(unsafe_code)]

pub mod append;
pub mod entry;
pub mod limits;
pub mod log;
pub mod positions;
pub mod record;
pub mod recovery;
pub mod request;
pub mod segment;

pub use append::{Appender, GroupCommit, SyncBatch};
pub use entry::Entry;
pub use log::{scan_log, LogScan};
pub use record::{decode, encode, Decoded, Invalid, Kind, RecordRef};
pub use recovery::Recovery;
pub use segment::{
    records_since, scan_segment, scan_segment_into, scan_segment_pausing, Corrupt, CorruptReason, Found,
    SegmentHeader, SegmentScan, Torn,
};

/// A long scan, fold or write that has done `done` of its records calls `pause` after every
/// [`limits::PAUSE_RECORDS`] of them (its caller gives the core back there).
pub(crate) fn pause_after(done: usize, pause: &mut dyn FnMut()) {
    if done > 0 && done.is_multiple_of(limits::PAUSE_RECORDS) {
        pause();
    }
}
