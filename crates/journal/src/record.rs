//! One record: an 8-byte frame (body length, CRC32C of the body), then the body — sequence
//! number, kind, payload. See the crate docs for the diagram.
//!
//! The decoder has the tokio-util contract: it reads the declared length, checks it against
//! [`RECORD_BODY_MAX`] before anything else, says how much more it needs while the record is
//! incomplete, and checks the CRC before it hands out a view of the payload (no copy).

use std::fmt;

use crate::limits::{PAYLOAD_BYTES_MAX, RECORD_BODY_MAX, RECORD_BODY_MIN, RECORD_FRAME_BYTES};

/// What a record says happened. The byte values are the format: never renumber them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A request was accepted (with its duplicate key).
    RequestAccepted,
    /// It was forwarded (link, outbound correlation).
    Forwarded,
    /// Its destination's response came.
    ResponseReceived,
    /// Its originator was answered (code, whether switch-made).
    AnswerSent,
    /// A reversal or advice was queued for a destination.
    ReversalQueued,
    /// It was sent (first time or repeat).
    ReversalSent,
    /// Its destination acknowledged it.
    ReversalAcked,
    /// It was given up on (moved to the exception queue).
    ReversalAbandoned,
    /// A response came after its request had timed out.
    LateResponse,
    /// A link came up or went down.
    LinkEvent,
    /// The configuration was loaded or reloaded.
    ConfigEvent,
    /// A snapshot of derived state, so recovery need not read what came before.
    Checkpoint,
    /// An operator moved an entry of the exception queue back to store-and-forward.
    SafRetried,
    /// An operator dropped an entry of the exception queue.
    SafDropped,
    /// A completed request's outcome, as a checkpoint keeps it.
    Outcome,
    /// An operator's change to the running switch.
    Audit,
    /// A request accepted and forwarded, in one record: what the switch writes for the two
    /// (one frame, sequence number and checksum, not two; `RequestAccepted` and `Forwarded`
    /// are read still, from journals written before).
    RequestForwarded,
    /// Completed requests' outcomes, many to a record, as a checkpoint keeps them
    /// ([`crate::entry::OutcomesWriter`]): about 0.4× the bytes of as many `Outcome`
    /// records (read still, from checkpoints written before).
    Outcomes,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 18] = [
        Self::RequestAccepted,
        Self::Forwarded,
        Self::ResponseReceived,
        Self::AnswerSent,
        Self::ReversalQueued,
        Self::ReversalSent,
        Self::ReversalAcked,
        Self::ReversalAbandoned,
        Self::LateResponse,
        Self::LinkEvent,
        Self::ConfigEvent,
        Self::Checkpoint,
        Self::SafRetried,
        Self::SafDropped,
        Self::Outcome,
        Self::Audit,
        Self::RequestForwarded,
        Self::Outcomes,
    ];

    /// Its byte in the format.
    #[must_use]
    pub const fn byte(self) -> u8 {
        match self {
            Self::RequestAccepted => 1,
            Self::Forwarded => 2,
            Self::ResponseReceived => 3,
            Self::AnswerSent => 4,
            Self::ReversalQueued => 5,
            Self::ReversalSent => 6,
            Self::ReversalAcked => 7,
            Self::ReversalAbandoned => 8,
            Self::LateResponse => 9,
            Self::LinkEvent => 10,
            Self::ConfigEvent => 11,
            Self::Checkpoint => 12,
            Self::SafRetried => 13,
            Self::SafDropped => 14,
            Self::Outcome => 15,
            Self::Audit => 16,
            Self::RequestForwarded => 17,
            Self::Outcomes => 18,
        }
    }

    /// The kind of a format byte.
    #[must_use]
    pub fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.byte() == b)
    }
}

/// A decoded record: a view into the bytes it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Its kind.
    pub kind: Kind,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// The frame declares a body over [`RECORD_BODY_MAX`].
    TooLarge {
        /// Declared body length.
        declared: usize,
    },
    /// The frame declares a body too short for a sequence number and a kind.
    TooSmall {
        /// Declared body length.
        declared: usize,
    },
    /// The body's CRC32C is not the frame's.
    Checksum {
        /// The frame's.
        expected: u32,
        /// The body's.
        found: u32,
    },
    /// A kind this version does not know.
    UnknownKind {
        /// The byte.
        kind: u8,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { declared } => {
                write!(f, "record body of {declared} bytes, over {RECORD_BODY_MAX}")
            }
            Self::TooSmall { declared } => {
                write!(f, "record body of {declared} bytes, under {RECORD_BODY_MIN}")
            }
            Self::Checksum { expected, found } => {
                write!(f, "checksum {found:08x}, the frame says {expected:08x}")
            }
            Self::UnknownKind { kind } => write!(f, "unknown record kind {kind}"),
        }
    }
}

impl std::error::Error for Invalid {}

/// What the front of a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record, `len` bytes long (frame included).
    Record {
        /// The record.
        record: RecordRef<'a>,
        /// Bytes it takes.
        len: usize,
    },
    /// Not enough bytes: the record needs `needed` in all (frame included).
    Incomplete {
        /// Bytes the whole record needs (the frame's 8 when not even that is there).
        needed: usize,
    },
    /// Bytes that are not a record.
    Invalid(Invalid),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Decodes the record at the front of `buf`.
#[must_use]
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < RECORD_FRAME_BYTES {
        return Decoded::Incomplete { needed: RECORD_FRAME_BYTES };
    }
    let declared = u32_at(buf, 0) as usize;
    if declared > RECORD_BODY_MAX {
        return Decoded::Invalid(Invalid::TooLarge { declared });
    }
    if declared < RECORD_BODY_MIN {
        return Decoded::Invalid(Invalid::TooSmall { declared });
    }
    let len = RECORD_FRAME_BYTES + declared;
    if buf.len() < len {
        return Decoded::Incomplete { needed: len };
    }
    let body = &buf[RECORD_FRAME_BYTES..len];
    let (expected, found) = (u32_at(buf, 4), crc32c::crc32c(body));
    if expected != found {
        return Decoded::Invalid(Invalid::Checksum { expected, found });
    }
    let Some(kind) = Kind::from_byte(body[8]) else {
        return Decoded::Invalid(Invalid::UnknownKind { kind: body[8] });
    };
    Decoded::Record {
        record: RecordRef { seq: u64_at(body, 0), kind, payload: &body[RECORD_BODY_MIN..] },
        len,
    }
}

/// A run of whole records in a buffer of them ([`pieces`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Where it is in the buffer.
    pub bytes: std::ops::Range<usize>,
    /// Its first record's sequence number.
    pub first_seq: u64,
    /// Its last record's.
    pub last_seq: u64,
}

/// `records` — whole records one after another, as a journal writes them — in runs of at
/// most `bytes_max` bytes each (a record larger than that alone), in order, together the
/// whole buffer. Frames are followed, not checked: these are records the journal made.
///
/// # Errors
///
/// The offset of a frame that does not fit what is left of the buffer (or is too short to
/// hold a sequence number): not a buffer of whole records.
pub fn pieces(records: &[u8], bytes_max: usize) -> Result<Vec<Piece>, usize> {
    let mut out: Vec<Piece> = Vec::new();
    let mut at = 0;
    while at < records.len() {
        if records.len() - at < RECORD_FRAME_BYTES + RECORD_BODY_MIN {
            return Err(at);
        }
        let declared = u32_at(records, at) as usize;
        let len = RECORD_FRAME_BYTES + declared;
        if !(RECORD_BODY_MIN..=RECORD_BODY_MAX).contains(&declared) || records.len() - at < len {
            return Err(at);
        }
        let seq = u64_at(records, at + RECORD_FRAME_BYTES);
        match out.last_mut() {
            Some(p) if at + len - p.bytes.start <= bytes_max => {
                p.bytes.end = at + len;
                p.last_seq = seq;
            }
            _ => out.push(Piece { bytes: at..at + len, first_seq: seq, last_seq: seq }),
        }
        at += len;
    }
    Ok(out)
}

/// Appends the record `(seq, kind, payload)` to `out` and returns its length.
///
/// # Panics
///
/// If `payload` is over [`PAYLOAD_BYTES_MAX`]: the caller bounds what it journals (a
/// programming error, not an operating one).
pub fn encode(seq: u64, kind: Kind, payload: &[u8], out: &mut Vec<u8>) -> usize {
    encode_with(seq, kind, out, |out| out.extend_from_slice(payload))
}

/// [`encode`], the payload written straight into `out` by `payload` (no copy of it made
/// first).
///
/// # Panics
///
/// As [`encode`]: a payload over [`PAYLOAD_BYTES_MAX`] is a bug in the caller.
pub fn encode_with(seq: u64, kind: Kind, out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind.byte());
    payload(out);
    let body_len = out.len() - start - RECORD_FRAME_BYTES;
    let payload_len = body_len - RECORD_BODY_MIN;
    assert!(payload_len <= PAYLOAD_BYTES_MAX, "a journal payload of {payload_len} bytes");
    // body_len ≤ RECORD_BODY_MAX, which fits u32 (limits.rs).
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    let crc = crc32c::crc32c(&out[start + RECORD_FRAME_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    RECORD_FRAME_BYTES + body_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_round_trips_and_every_damage_is_named() {
        let mut out = Vec::new();
        let n = encode(7, Kind::AnswerSent, b"00 approved", &mut out);
        assert_eq!(n, out.len());
        let Decoded::Record { record, len } = decode(&out) else { panic!("{:?}", decode(&out)) };
        assert_eq!(
            (record.seq, record.kind, record.payload, len),
            (7, Kind::AnswerSent, &b"00 approved"[..], n)
        );
        for cut in 0..n {
            assert!(matches!(decode(&out[..cut]), Decoded::Incomplete { .. }), "cut at {cut}");
        }
        let mut flipped = out.clone();
        flipped[n - 1] ^= 1;
        assert!(matches!(decode(&flipped), Decoded::Invalid(Invalid::Checksum { .. })));
        let mut huge = out.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Decoded::Invalid(Invalid::TooLarge { declared: u32::MAX as usize }));
        let mut tiny = out.clone();
        tiny[..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(decode(&tiny), Decoded::Invalid(Invalid::TooSmall { declared: 3 }));
        let mut unknown = Vec::new();
        encode(1, Kind::Checkpoint, b"", &mut unknown);
        unknown[16] = 200;
        let crc = crc32c::crc32c(&unknown[8..]);
        unknown[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&unknown), Decoded::Invalid(Invalid::UnknownKind { kind: 200 }));
    }

    #[test]
    fn kinds_keep_their_bytes() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(k.byte()), i + 1);
            assert_eq!(Kind::from_byte(k.byte()), Some(k));
        }
        assert_eq!(Kind::from_byte(0), None);
    }

    proptest! {
        #[test]
        fn any_record_round_trips(seq: u64, kind in 0usize..Kind::ALL.len(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let kind = Kind::ALL[kind];
            let mut out = vec![0xAA; 3];
            let n = encode(seq, kind, &payload, &mut out);
            match decode(&out[3..]) {
                Decoded::Record { record, len } => {
                    prop_assert_eq!(len, n);
                    prop_assert_eq!(record, RecordRef { seq, kind, payload: &payload });
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        /// Cut at record boundaries, in order, the whole buffer, each piece within the bound
        /// unless it is one record larger than it, and no two neighbours that would have fit
        /// together.
        #[test]
        fn records_are_cut_whole_in_order_within_the_bound(
            sizes in proptest::collection::vec(0usize..3_000, 1..60),
            first in 1u64..1_000_000,
            bytes_max in 1usize..8_000,
        ) {
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                encode(first + i as u64, Kind::LinkEvent, &vec![7u8; n], &mut buf);
                ends.push(buf.len());
            }
            let pieces = pieces(&buf, bytes_max).unwrap();
            prop_assert_eq!(pieces[0].bytes.start, 0);
            prop_assert_eq!(pieces.last().unwrap().bytes.end, buf.len());
            prop_assert_eq!(pieces[0].first_seq, first);
            prop_assert_eq!(pieces.last().unwrap().last_seq, first + sizes.len() as u64 - 1);
            for (i, p) in pieces.iter().enumerate() {
                prop_assert!(ends.contains(&p.bytes.end), "{:?} ends within a record", p);
                let records = p.last_seq - p.first_seq + 1;
                prop_assert!(p.bytes.len() <= bytes_max || records == 1, "{:?} past {}", p, bytes_max);
                match decode(&buf[p.bytes.clone()]) {
                    Decoded::Record { record, .. } => prop_assert_eq!(record.seq, p.first_seq),
                    other => prop_assert!(false, "{:?}", other),
                }
                if let Some(next) = pieces.get(i + 1) {
                    prop_assert_eq!(next.bytes.start, p.bytes.end);
                    prop_assert_eq!(next.first_seq, p.last_seq + 1);
                    let next_first_len = ends[usize::try_from(next.first_seq - first).unwrap()] - next.bytes.start;
                    prop_assert!(p.bytes.len() + next_first_len > bytes_max, "{:?} could have taken the next record", p);
                }
            }
        }
    }

    #[test]
    fn a_buffer_of_broken_records_is_refused_where_it_breaks() {
        let mut buf = Vec::new();
        encode(1, Kind::LinkEvent, b"one", &mut buf);
        let whole = buf.len();
        encode(2, Kind::LinkEvent, b"two", &mut buf);
        assert_eq!(pieces(&buf[..buf.len() - 1], 1 << 20), Err(whole), "the second record cut short");
        assert_eq!(pieces(&buf[..whole + 3], 1 << 20), Err(whole), "not even a frame");
        let mut huge = buf.clone();
        huge[whole..whole + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pieces(&huge, 1 << 20), Err(whole), "a frame past the record bound");
        assert_eq!(pieces(&[], 10), Ok(Vec::new()));
    }
}
