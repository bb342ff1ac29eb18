//! Segments: a header, then records. The scan of one segment's bytes decides, record by
//! record, what recovery may use:
//!
//! - every whole record with a good checksum and the next sequence number is kept;
//! - in the **last** segment, an incomplete record at the end, a record whose checksum fails
//!   and that reaches the end of the file, or zeros to the end (what a crash mid-write
//!   leaves) are a **torn tail**: the scan ends there and recovery cuts the file at its start;
//! - anything else — a bad checksum with bytes after it, a sequence gap, a torn record in a
//!   segment that is not the last, a bad header — is **corruption inside the log**: the scan
//!   refuses, naming the segment and the offset. It is never skipped.

use std::fmt;

use crate::{
    limits::SEGMENT_HEADER_BYTES,
    record::{decode, Decoded, Invalid, RecordRef},
};

/// The magic number a segment starts with.
pub const MAGIC: [u8; 4] = *b"CRDJ";

/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;

/// A segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The sequence number of its first record.
    pub first_seq: u64,
    /// When it was created, Unix milliseconds (for operators; never for ordering).
    pub created_unix_ms: u64,
}

impl SegmentHeader {
    /// The 32 header bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        let crc = crc32c::crc32c(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a header.
    ///
    /// # Errors
    ///
    /// The reason the bytes are not a version-1 header.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptReason> {
        if b.len() < SEGMENT_HEADER_BYTES {
            return Err(CorruptReason::ShortHeader { len: b.len() });
        }
        if b[..4] != MAGIC {
            return Err(CorruptReason::BadMagic);
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(CorruptReason::UnsupportedVersion { version });
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&b[24..28]);
        if u32::from_le_bytes(crc) != crc32c::crc32c(&b[..24]) {
            return Err(CorruptReason::HeaderChecksum);
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[8..16]);
        let first_seq = u64::from_le_bytes(w);
        w.copy_from_slice(&b[16..24]);
        Ok(Self { first_seq, created_unix_ms: u64::from_le_bytes(w) })
    }

    /// The segment's file name: its first sequence number in twenty digits, so that names
    /// sort as numbers.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("{:020}.seg", self.first_seq)
    }

    /// The first sequence number a segment file name says, if it is one.
    #[must_use]
    pub fn seq_of_name(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(".seg")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Why the log cannot be trusted at a place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptReason {
    /// A segment shorter than its header (and not the last one).
    ShortHeader {
        /// Bytes there are.
        len: usize,
    },
    /// A segment that does not start with the magic number.
    BadMagic,
    /// A segment of a format version this build does not read.
    UnsupportedVersion {
        /// Its version.
        version: u16,
    },
    /// A header whose checksum fails.
    HeaderChecksum,
    /// A header whose first sequence number is not the one its name or its predecessor says.
    HeaderSequence {
        /// What was expected.
        expected: u64,
        /// What it says.
        found: u64,
    },
    /// A record that is not one, with more bytes after it.
    Record(Invalid),
    /// A record incomplete at the end of a segment that is not the last.
    Truncated {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// A record whose sequence number is not the next one.
    Sequence {
        /// What was expected.
        expected: u64,
        /// What it says.
        found: u64,
    },
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortHeader { len } => write!(f, "segment of {len} bytes, shorter than its header"),
            Self::BadMagic => f.write_str("not a journal segment (bad magic)"),
            Self::UnsupportedVersion { version } => {
                write!(f, "segment format version {version}, this build reads {VERSION}")
            }
            Self::HeaderChecksum => f.write_str("segment header checksum fails"),
            Self::HeaderSequence { expected, found } => {
                write!(f, "segment starts at sequence {found}, expected {expected}")
            }
            Self::Record(e) => write!(f, "{e}, with more bytes after it"),
            Self::Truncated { needed, available } => {
                write!(f, "record of {needed} bytes cut at {available} in a segment that is not the last")
            }
            Self::Sequence { expected, found } => write!(f, "record sequence {found}, expected {expected}"),
        }
    }
}

/// Corruption inside the log: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// The segment's first sequence number (its name).
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: usize,
    /// What is wrong there.
    pub reason: CorruptReason,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "journal segment {:020}.seg, offset {}: {}", self.segment, self.offset, self.reason)
    }
}

impl std::error::Error for Corrupt {}

/// How a torn tail was recognized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Torn {
    /// A record incomplete at the end of the file.
    Incomplete,
    /// The last record's checksum fails.
    Checksum,
    /// Zeros to the end of the file.
    Zeros,
    /// The file is shorter than a header (a crash as it was created).
    Header,
}

/// One record found by a scan: its place and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// Byte offset in the segment.
    pub offset: usize,
    /// The record.
    pub record: RecordRef<'a>,
}

/// What a segment holds that recovery may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan<'a> {
    /// Its header (`None` for a last segment torn inside its header).
    pub header: Option<SegmentHeader>,
    /// Its records, in order.
    pub records: Vec<Found<'a>>,
    /// Where the good bytes end: a torn tail starts here (recovery truncates to it).
    pub end: usize,
    /// Whether, and how, the tail was torn.
    pub torn: Option<Torn>,
}

impl SegmentScan<'_> {
    /// Its records' vector, emptied and no longer tied to the segment's bytes, for the next
    /// [`scan_segment_into`]. Collected in place: the same allocation, its room kept (the
    /// element is the same type but for its lifetime; `recycling_keeps_the_room` checks it).
    #[must_use]
    #[allow(clippy::unnecessary_filter_map)] // it changes the element's lifetime, as `filter` cannot
    pub fn recycle(self) -> Vec<Found<'static>> {
        self.records.into_iter().filter_map(|_| None).collect()
    }

    /// The sequence number the next record must carry.
    #[must_use]
    pub fn next_seq(&self, first: u64) -> u64 {
        self.records.last().map_or(first, |f| f.record.seq + 1)
    }
}

/// The records of `records` — whole records as a segment holds them after its header, the
/// first numbered `first_seq` — from record `from` on: a suffix of it (empty when they end
/// before `from`), every record checked whole and in sequence on the way. What a batch of
/// records read from elsewhere (a cluster's stream) is cut with.
///
/// # Errors
///
/// [`Corrupt`]: they are not whole records in sequence.
pub fn records_since(records: &[u8], first_seq: u64, from: u64) -> Result<&[u8], Corrupt> {
    let header = SegmentHeader { first_seq, created_unix_ms: 0 }.to_bytes();
    let bytes = [header.as_slice(), records].concat();
    let scan = scan_segment(&bytes, first_seq, false)?;
    let at = scan.records.iter().find(|f| f.record.seq >= from).map_or(bytes.len(), |f| f.offset);
    Ok(&records[at - header.len()..])
}

/// Scans segment `name_seq` (the first sequence number its file name says). `last` says
/// whether it is the log's last segment, the only one that may have a torn tail.
///
/// # Errors
///
/// [`Corrupt`] for anything that is not a torn tail of the last segment.
pub fn scan_segment(bytes: &[u8], name_seq: u64, last: bool) -> Result<SegmentScan<'_>, Corrupt> {
    scan_segment_into(bytes, name_seq, last, Vec::new())
}

/// [`scan_segment`], its records pushed into `records` (emptied first): a caller that scans
/// segment after segment passes the vector the last scan's records were in
/// ([`SegmentScan::recycle`]), so a segment's hundreds of thousands of records do not grow
/// a fresh vector by doubling each time (copies, and pages the kernel zeroes anew).
///
/// # Errors
///
/// As [`scan_segment`].
pub fn scan_segment_into<'a>(
    bytes: &'a [u8],
    name_seq: u64,
    last: bool,
    records: Vec<Found<'a>>,
) -> Result<SegmentScan<'a>, Corrupt> {
    scan_segment_pausing(bytes, name_seq, last, records, &mut || {})
}

/// [`scan_segment_into`], calling `pause` after every [`crate::limits::PAUSE_RECORDS`]
/// records (a checkpoint's thread gives the core back there).
///
/// # Errors
///
/// As [`scan_segment`].
pub fn scan_segment_pausing<'a>(
    bytes: &'a [u8],
    name_seq: u64,
    last: bool,
    mut records: Vec<Found<'a>>,
    pause: &mut dyn FnMut(),
) -> Result<SegmentScan<'a>, Corrupt> {
    records.clear();
    let corrupt = |offset, reason| Corrupt { segment: name_seq, offset, reason };
    if bytes.len() < SEGMENT_HEADER_BYTES && last {
        return Ok(SegmentScan { header: None, records, end: 0, torn: Some(Torn::Header) });
    }
    let header = SegmentHeader::parse(bytes).map_err(|r| corrupt(0, r))?;
    if header.first_seq != name_seq {
        return Err(corrupt(
            0,
            CorruptReason::HeaderSequence { expected: name_seq, found: header.first_seq },
        ));
    }
    let mut scan = SegmentScan { header: Some(header), records, end: SEGMENT_HEADER_BYTES, torn: None };
    let mut at = SEGMENT_HEADER_BYTES;
    let mut expected = header.first_seq;
    while at < bytes.len() {
        let rest = &bytes[at..];
        match decode(rest) {
            Decoded::Record { record, len } => {
                if record.seq != expected {
                    return Err(corrupt(at, CorruptReason::Sequence { expected, found: record.seq }));
                }
                scan.records.push(Found { offset: at, record });
                crate::pause_after(scan.records.len(), pause);
                expected += 1;
                at += len;
                scan.end = at;
            }
            _ if last && rest.iter().all(|&b| b == 0) => {
                scan.torn = Some(Torn::Zeros);
                return Ok(scan);
            }
            Decoded::Incomplete { needed } => {
                if last {
                    scan.torn = Some(Torn::Incomplete);
                    return Ok(scan);
                }
                return Err(corrupt(at, CorruptReason::Truncated { needed, available: rest.len() }));
            }
            Decoded::Invalid(e) => {
                // A bad checksum on a record that reaches the end of the last segment is the
                // write a crash interrupted; with bytes after it, it is damage in the log.
                let reaches_end = record_len(rest).is_some_and(|n| n >= rest.len());
                if last && matches!(e, Invalid::Checksum { .. }) && reaches_end {
                    scan.torn = Some(Torn::Checksum);
                    return Ok(scan);
                }
                return Err(corrupt(at, CorruptReason::Record(e)));
            }
        }
    }
    Ok(scan)
}

/// The length a record's frame declares, frame included, when it is a plausible one.
fn record_len(rest: &[u8]) -> Option<usize> {
    let b: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    Some(crate::limits::RECORD_FRAME_BYTES + u32::from_le_bytes(b) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode, Kind};

    fn segment(first: u64, records: u64) -> Vec<u8> {
        let mut b = SegmentHeader { first_seq: first, created_unix_ms: 1 }.to_bytes().to_vec();
        for s in first..first + records {
            encode(s, Kind::Forwarded, format!("record {s}").as_bytes(), &mut b);
        }
        b
    }

    #[test]
    fn names_sort_as_numbers_and_read_back() {
        let h = SegmentHeader { first_seq: 42, created_unix_ms: 0 };
        assert_eq!(h.file_name(), "00000000000000000042.seg");
        assert_eq!(SegmentHeader::seq_of_name(&h.file_name()), Some(42));
        assert_eq!(SegmentHeader::seq_of_name("42.seg"), None);
        assert_eq!(SegmentHeader::seq_of_name("0000000000000000004x.seg"), None);
        assert_eq!(SegmentHeader::parse(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn a_whole_segment_scans_to_its_end() {
        let b = segment(10, 5);
        let s = scan_segment(&b, 10, false).unwrap();
        assert_eq!(s.records.iter().map(|f| f.record.seq).collect::<Vec<_>>(), [10, 11, 12, 13, 14]);
        assert_eq!((s.end, s.torn, s.next_seq(10)), (b.len(), None, 15));
        assert_eq!(s.records[2].record.payload, b"record 12");
    }

    /// A scan's records' vector, recycled into the next scan, is the same allocation with
    /// its room: the next segment's records fill it without growing it.
    #[test]
    fn recycling_keeps_the_room() {
        let first = segment(10, 100);
        let scan = scan_segment(&first, 10, false).unwrap();
        let room = scan.records.capacity();
        let at = scan.records.as_ptr() as usize;
        let recycled = scan.recycle();
        assert_eq!((recycled.len(), recycled.capacity(), recycled.as_ptr() as usize), (0, room, at));
        let second = segment(110, 60);
        let scan = scan_segment_into(&second, 110, false, recycled).unwrap();
        assert_eq!(
            scan.records.iter().map(|f| f.record.seq).collect::<Vec<_>>(),
            (110..170).collect::<Vec<_>>()
        );
        assert_eq!((scan.records.capacity(), scan.records.as_ptr() as usize), (room, at));
        // What was in the vector is not: a scan starts empty whatever it is given.
        let third = segment(170, 2);
        let scan = scan_segment_into(&third, 170, false, scan.records).unwrap();
        assert_eq!(scan.records.iter().map(|f| f.record.seq).collect::<Vec<_>>(), [170, 171]);
    }

    #[test]
    fn records_are_cut_from_a_record_on_and_checked_whole() {
        let b = segment(10, 5);
        let records = &b[SEGMENT_HEADER_BYTES..];
        assert_eq!(records_since(records, 10, 0), Ok(records), "from before the first: all");
        let from_12 = records_since(records, 10, 12).unwrap();
        let seg =
            [SegmentHeader { first_seq: 12, created_unix_ms: 1 }.to_bytes().as_slice(), from_12].concat();
        let scan = scan_segment(&seg, 12, false).unwrap();
        assert_eq!(scan.records.iter().map(|f| f.record.seq).collect::<Vec<_>>(), [12, 13, 14]);
        assert_eq!(records_since(records, 10, 15), Ok(&[][..]), "past the last: none");
        assert!(records_since(&records[..records.len() - 1], 10, 0).is_err(), "a record cut short");
    }

    #[test]
    fn a_torn_tail_of_the_last_segment_is_cut_at_its_start() {
        let whole = segment(1, 3);
        let two = {
            let s = scan_segment(&whole, 1, true).unwrap();
            s.records[2].offset
        };
        // Every cut inside the third record: incomplete, the good part ends before it.
        for cut in two + 1..whole.len() {
            let s = scan_segment(&whole[..cut], 1, true).unwrap();
            assert_eq!((s.records.len(), s.end, s.torn), (2, two, Some(Torn::Incomplete)), "cut at {cut}");
        }
        // A last record garbled in place (its bytes written, not all of them right).
        let mut garbled = whole.clone();
        let n = garbled.len();
        garbled[n - 2] ^= 0xFF;
        let s = scan_segment(&garbled, 1, true).unwrap();
        assert_eq!((s.records.len(), s.end, s.torn), (2, two, Some(Torn::Checksum)));
        // Zeros after the good records (a file extended, the data never written).
        let mut zeros = whole[..two].to_vec();
        zeros.extend_from_slice(&[0; 100]);
        let s = scan_segment(&zeros, 1, true).unwrap();
        assert_eq!((s.records.len(), s.end, s.torn), (2, two, Some(Torn::Zeros)));
        // A crash as the segment was created.
        let s = scan_segment(&whole[..10], 1, true).unwrap();
        assert_eq!((s.header, s.end, s.torn), (None, 0, Some(Torn::Header)));
    }

    #[test]
    fn damage_inside_the_log_is_refused_with_its_place() {
        let whole = segment(1, 3);
        let second = scan_segment(&whole, 1, false).unwrap().records[1].offset;
        let mut bad = whole.clone();
        bad[second + 12] ^= 1;
        for last in [false, true] {
            let e = scan_segment(&bad, 1, last).unwrap_err();
            assert_eq!((e.segment, e.offset), (1, second));
            assert!(matches!(e.reason, CorruptReason::Record(Invalid::Checksum { .. })), "{e}");
            assert!(e.to_string().starts_with("journal segment 00000000000000000001.seg, offset "), "{e}");
        }
        // A torn record is only a torn tail in the last segment.
        let e = scan_segment(&whole[..whole.len() - 3], 1, false).unwrap_err();
        assert!(matches!(e.reason, CorruptReason::Truncated { .. }));
        // A sequence gap.
        let mut gap = SegmentHeader { first_seq: 1, created_unix_ms: 0 }.to_bytes().to_vec();
        encode(1, Kind::Forwarded, b"a", &mut gap);
        encode(3, Kind::Forwarded, b"b", &mut gap);
        let e = scan_segment(&gap, 1, true).unwrap_err();
        assert_eq!(e.reason, CorruptReason::Sequence { expected: 2, found: 3 });
        // A header that is not one, or names another sequence.
        let mut magic = whole.clone();
        magic[0] = b'X';
        assert_eq!(scan_segment(&magic, 1, true).unwrap_err().reason, CorruptReason::BadMagic);
        assert_eq!(
            scan_segment(&whole, 7, true).unwrap_err().reason,
            CorruptReason::HeaderSequence { expected: 7, found: 1 }
        );
        let mut hcrc = whole.clone();
        hcrc[17] ^= 1;
        assert_eq!(scan_segment(&hcrc, 1, true).unwrap_err().reason, CorruptReason::HeaderChecksum);
    }
}
