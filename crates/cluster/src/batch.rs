//! What one append to a shard's subject carries: a batch of the shard's journal records, as
//! the local journal wrote them (each record keeps its own CRC), under a header of our own
//! and a CRC32C over the whole message — the stream's copy is checked by us, not trusted
//! (Jepsen found a minority's corrupted files losing acknowledged writes).
//!
//! ```text
//! magic "CRB1" | shard u16 | first_seq u64 | last_seq u64 | len u32 | records (len) | crc32c u32
//! ```
//!
//! Integers are big-endian. `first_seq..=last_seq` are the local journal's sequence numbers
//! of the records: a subject read in order must see them without a gap ([`Tail`]).
//!
//! # Checkpoints
//!
//! A subject also carries the shard's checkpoints, so that a node taking the shard over
//! reads from the last one instead of the whole history, and the messages before it can be
//! purged. A checkpoint is the local journal's checkpoint file (the state of records
//! `1..=covers`, `corridor_journal::recovery`), cut into parts that are appended one after
//! another, each under the same header:
//!
//! ```text
//! magic "CRK1" | shard u16 | covers u64 | through u64 | part u16 | parts u16 | len u32 | bytes (len) | crc32c u32
//! ```
//!
//! `through` is the last record the subject held when the checkpoint was appended
//! (`through >= covers`): the batches before it hold records `covers + 1..=through`, and the
//! next batch after it begins at `through + 1` ([`Tail::checkpoint`]).

use crate::limits::BATCH_BYTES_MAX;

const MAGIC: [u8; 4] = *b"CRB1";
const HEADER: usize = 4 + 2 + 8 + 8 + 4;
const TRAILER: usize = 4;
const CHECKPOINT_MAGIC: [u8; 4] = *b"CRK1";
const CHECKPOINT_HEADER: usize = 4 + 2 + 8 + 8 + 2 + 2 + 4;

/// The most bytes of a checkpoint one part carries: half the largest message, as the
/// journal cuts its batches (a message is sent with headers, under NATS's largest payload).
pub const CHECKPOINT_PART_BYTES: usize = BATCH_BYTES_MAX / 2;

/// A batch of one shard's journal records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The shard whose journal it is.
    pub shard: u16,
    /// The sequence number of its first record.
    pub first_seq: u64,
    /// The sequence number of its last record.
    pub last_seq: u64,
    /// The records, as the journal wrote them.
    pub records: &'a [u8],
}

/// Why a message read from a subject is not a batch we wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// Shorter than a header and a trailer, or longer than [`BATCH_BYTES_MAX`].
    Size(usize),
    /// Not our magic.
    Magic,
    /// The records' length disagrees with the message's.
    Length {
        /// What the header says.
        said: usize,
        /// What there is.
        found: usize,
    },
    /// The CRC over the message does not match: the stream's copy is damaged.
    Crc,
    /// Its records are not whole journal records.
    Records(String),
    /// A checkpoint part whose numbers do not hold together (`through` before `covers`,
    /// a part past the count).
    Checkpoint,
    /// `last_seq` before `first_seq`.
    Range {
        /// The header's first sequence number.
        first: u64,
        /// Its last.
        last: u64,
    },
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Size(n) => write!(f, "a batch of {n} bytes"),
            Self::Magic => f.write_str("not a Corridor batch"),
            Self::Length { said, found } => write!(f, "records of {said} bytes said, {found} found"),
            Self::Crc => f.write_str("its CRC does not match: the stream's copy is damaged"),
            Self::Records(e) => write!(f, "its records: {e}"),
            Self::Range { first, last } => write!(f, "records {first}..={last}"),
            Self::Checkpoint => f.write_str("a checkpoint part that does not hold together"),
        }
    }
}

impl std::error::Error for Invalid {}

impl Batch<'_> {
    /// The message for this batch, appended to `out`.
    ///
    /// # Panics
    ///
    /// When the batch is larger than [`BATCH_BYTES_MAX`] or its range is empty: the caller
    /// cuts batches to the bound (a programmer error otherwise).
    pub fn encode(&self, out: &mut Vec<u8>) {
        assert!(self.first_seq <= self.last_seq, "a batch holds at least one record");
        let len = HEADER + self.records.len() + TRAILER;
        assert!(len <= BATCH_BYTES_MAX, "a batch of {len} bytes is past BATCH_BYTES_MAX");
        let start = out.len();
        out.reserve(len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.shard.to_be_bytes());
        out.extend_from_slice(&self.first_seq.to_be_bytes());
        out.extend_from_slice(&self.last_seq.to_be_bytes());
        out.extend_from_slice(&(self.records.len() as u32).to_be_bytes());
        out.extend_from_slice(self.records);
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
}

/// The batch in `message`, checked: magic, length, CRC, range.
///
/// # Errors
///
/// What makes it not a batch we wrote.
pub fn decode(message: &[u8]) -> Result<Batch<'_>, Invalid> {
    match decode_message(message)? {
        Message::Batch(b) => Ok(b),
        Message::Checkpoint(_) => Err(Invalid::Magic),
    }
}

/// One part of a checkpoint (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPart<'a> {
    /// The shard whose state it is.
    pub shard: u16,
    /// The last record the checkpoint's state holds.
    pub covers: u64,
    /// The last record the subject held when it was appended (at least `covers`).
    pub through: u64,
    /// This part's index, from 0.
    pub part: u16,
    /// How many parts the checkpoint has.
    pub parts: u16,
    /// This part's bytes of the checkpoint.
    pub bytes: &'a [u8],
}

impl CheckpointPart<'_> {
    /// The message for this part, appended to `out`.
    ///
    /// # Panics
    ///
    /// When the part is larger than [`CHECKPOINT_PART_BYTES`] or its numbers do not hold
    /// together: the caller cuts and numbers the parts (a programmer error otherwise).
    pub fn encode(&self, out: &mut Vec<u8>) {
        assert!(self.bytes.len() <= CHECKPOINT_PART_BYTES, "a checkpoint part past CHECKPOINT_PART_BYTES");
        assert!(self.covers <= self.through && self.part < self.parts, "a checkpoint part's numbers");
        let start = out.len();
        out.reserve(CHECKPOINT_HEADER + self.bytes.len() + TRAILER);
        out.extend_from_slice(&CHECKPOINT_MAGIC);
        out.extend_from_slice(&self.shard.to_be_bytes());
        out.extend_from_slice(&self.covers.to_be_bytes());
        out.extend_from_slice(&self.through.to_be_bytes());
        out.extend_from_slice(&self.part.to_be_bytes());
        out.extend_from_slice(&self.parts.to_be_bytes());
        out.extend_from_slice(&(self.bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(self.bytes);
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
}

/// What one message on a shard's subject is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A batch of journal records.
    Batch(Batch<'a>),
    /// A part of a checkpoint.
    Checkpoint(CheckpointPart<'a>),
}

impl Message<'_> {
    /// The last record the subject held once this message was appended.
    #[must_use]
    pub fn last_record(&self) -> u64 {
        match self {
            Self::Batch(b) => b.last_seq,
            Self::Checkpoint(c) => c.through,
        }
    }
}

/// The message in `message`, checked: size, CRC, magic, then a batch's or a checkpoint
/// part's own checks.
///
/// # Errors
///
/// What makes it not a message we wrote.
pub fn decode_message(message: &[u8]) -> Result<Message<'_>, Invalid> {
    let n = message.len();
    if !(HEADER.min(CHECKPOINT_HEADER) + TRAILER..=BATCH_BYTES_MAX).contains(&n) {
        return Err(Invalid::Size(n));
    }
    let (body, crc) = message.split_at(n - TRAILER);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(Invalid::Crc);
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[i..i + 8]);
        u64::from_be_bytes(b)
    };
    if body[..4] == CHECKPOINT_MAGIC {
        if body.len() < CHECKPOINT_HEADER {
            return Err(Invalid::Size(n));
        }
        let part = CheckpointPart {
            shard: u16::from_be_bytes([body[4], body[5]]),
            covers: u64_at(6),
            through: u64_at(14),
            part: u16::from_be_bytes([body[22], body[23]]),
            parts: u16::from_be_bytes([body[24], body[25]]),
            bytes: &body[CHECKPOINT_HEADER..],
        };
        let said = u32::from_be_bytes([body[26], body[27], body[28], body[29]]) as usize;
        if said != part.bytes.len() {
            return Err(Invalid::Length { said, found: part.bytes.len() });
        }
        if part.covers > part.through || part.part >= part.parts {
            return Err(Invalid::Checkpoint);
        }
        return Ok(Message::Checkpoint(part));
    }
    if body[..4] != MAGIC {
        return Err(Invalid::Magic);
    }
    if body.len() < HEADER {
        return Err(Invalid::Size(n));
    }
    let shard = u16::from_be_bytes([body[4], body[5]]);
    let (first_seq, last_seq) = (u64_at(6), u64_at(14));
    let said = u32::from_be_bytes([body[22], body[23], body[24], body[25]]) as usize;
    let records = &body[HEADER..];
    if said != records.len() {
        return Err(Invalid::Length { said, found: records.len() });
    }
    if last_seq < first_seq {
        return Err(Invalid::Range { first: first_seq, last: last_seq });
    }
    Ok(Message::Batch(Batch { shard, first_seq, last_seq, records }))
}

/// A subject read in order: each batch must begin where the last one ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// The sequence number the next batch must begin with (0: none read yet, any goes).
    next: u64,
}

/// A batch that does not follow the one before it: records are missing (or repeated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The sequence number the next batch had to begin with.
    pub expected: u64,
    /// The one it began with.
    pub found: u64,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the subject skips from record {} to {}", self.expected, self.found)
    }
}

impl std::error::Error for Gap {}

impl Tail {
    /// A reader that expects record `next` first (a checkpoint's successor).
    #[must_use]
    pub fn from(next: u64) -> Self {
        Self { next }
    }

    /// Takes `b` as the next batch.
    ///
    /// # Errors
    ///
    /// It does not begin where the last one ended.
    pub fn accept(&mut self, b: &Batch<'_>) -> Result<(), Gap> {
        if self.next != 0 && b.first_seq != self.next {
            return Err(Gap { expected: self.next, found: b.first_seq });
        }
        self.next = b.last_seq + 1;
        Ok(())
    }

    /// Takes a checkpoint (whole) that covers records `..=covers` and was appended when the
    /// subject held records `..=through`: the batches before it must end at `through`, or,
    /// when they end before it, the checkpoint must cover the difference (`through ==
    /// covers`: a journal whose older segments were checkpointed before they reached the
    /// stream); the next batch begins at `through + 1`.
    ///
    /// # Errors
    ///
    /// The batches before it end elsewhere.
    pub fn checkpoint(&mut self, covers: u64, through: u64) -> Result<(), Gap> {
        if self.next != 0 {
            let held = self.next - 1;
            if held != through && !(held < through && through == covers) {
                return Err(Gap { expected: self.next, found: through + 1 });
            }
        }
        self.next = through + 1;
        Ok(())
    }

    /// The sequence number the next batch must begin with (0 before any).
    #[must_use]
    pub fn next(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(first: u64, last: u64, records: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Batch { shard: 3, first_seq: first, last_seq: last, records }.encode(&mut out);
        out
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let m = message(7, 9, b"three records");
        assert_eq!(decode(&m), Ok(Batch { shard: 3, first_seq: 7, last_seq: 9, records: b"three records" }));
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let m = message(1, 1, b"r");
        for i in 0..m.len() {
            for bit in 0..8 {
                let mut bad = m.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "byte {i} bit {bit}");
            }
        }
        assert_eq!(decode(&m[..m.len() - 1]), Err(Invalid::Crc), "a cut message");
        assert_eq!(decode(b"short"), Err(Invalid::Size(5)));
    }

    #[test]
    fn a_subject_read_in_order_has_no_gap() {
        let mut t = Tail::default();
        for (first, last) in [(1, 4), (5, 5), (6, 9)] {
            let m = message(first, last, b"x");
            t.accept(&decode(&m).unwrap()).unwrap();
        }
        assert_eq!(t.next(), 10);
        let skipped = message(11, 12, b"x");
        assert_eq!(t.accept(&decode(&skipped).unwrap()), Err(Gap { expected: 10, found: 11 }));
        let repeated = message(8, 9, b"x");
        assert_eq!(t.accept(&decode(&repeated).unwrap()), Err(Gap { expected: 10, found: 8 }));
        let mut from_checkpoint = Tail::from(5);
        assert!(from_checkpoint.accept(&decode(&message(6, 6, b"x")).unwrap()).is_err());
    }

    fn part(covers: u64, through: u64, part: u16, parts: u16, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        CheckpointPart { shard: 3, covers, through, part, parts, bytes }.encode(&mut out);
        out
    }

    #[test]
    fn a_checkpoint_part_reads_back_as_written_and_is_no_batch() {
        let m = part(10, 12, 1, 2, b"state");
        let want = CheckpointPart { shard: 3, covers: 10, through: 12, part: 1, parts: 2, bytes: b"state" };
        assert_eq!(decode_message(&m), Ok(Message::Checkpoint(want)));
        assert_eq!(decode_message(&m).unwrap().last_record(), 12);
        assert_eq!(decode(&m), Err(Invalid::Magic), "a checkpoint is not taken for a batch");
        for i in 0..m.len() {
            let mut bad = m.clone();
            bad[i] ^= 0x10;
            assert!(decode_message(&bad).is_err(), "byte {i}");
        }
        // Numbers that do not hold together, under a good CRC.
        let mut bad = Vec::new();
        bad.extend_from_slice(&CHECKPOINT_MAGIC);
        bad.extend_from_slice(&3u16.to_be_bytes());
        bad.extend_from_slice(&12u64.to_be_bytes());
        bad.extend_from_slice(&10u64.to_be_bytes());
        bad.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        let crc = crc32c::crc32c(&bad);
        bad.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(decode_message(&bad), Err(Invalid::Checkpoint));
    }

    #[test]
    fn a_checkpoint_joins_the_batches_around_it_or_is_a_gap() {
        // Batches to 9, a checkpoint of 1..=7 appended when the subject held 9: next is 10.
        let mut t = Tail::default();
        t.accept(&decode(&message(1, 9, b"x")).unwrap()).unwrap();
        t.checkpoint(7, 9).unwrap();
        assert_eq!(t.next(), 10);
        // Said to follow record 12 while the batches end at 9: records are missing.
        let mut t = Tail::default();
        t.accept(&decode(&message(1, 9, b"x")).unwrap()).unwrap();
        assert_eq!(t.checkpoint(7, 12), Err(Gap { expected: 10, found: 13 }));
        // A checkpoint that covers what never reached the stream (10..=12) fills the gap.
        t.checkpoint(12, 12).unwrap();
        assert_eq!(t.accept(&decode(&message(13, 13, b"x")).unwrap()), Ok(()));
        // First on the subject (what was before it purged): the next batch follows it.
        let mut t = Tail::default();
        t.checkpoint(20, 20).unwrap();
        assert!(t.accept(&decode(&message(22, 22, b"x")).unwrap()).is_err());
    }
}
