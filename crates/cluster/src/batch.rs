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
//! # Compression
//!
//! The stream stores every message three times over, each copy synced, hashed and sent
//! between its servers: its cost is per byte. So a batch is appended compressed, the records
//! one LZ4 block (the same records a third of the bytes at a switch's traffic, whose
//! requests repeat their merchants, terminals and codes), under its own magic and the
//! records' length before compression:
//!
//! ```text
//! magic "CRB2" | shard u16 | first_seq u64 | last_seq u64 | raw_len u32 | len u32 | LZ4 block (len) | crc32c u32
//! ```
//!
//! — unless the block would not be smaller: then it goes as "CRB1". The CRC covers what is
//! stored (checked before anything is decompressed), and the block must give back exactly
//! `raw_len` bytes, at most a batch's largest. Checkpoint parts are compressed alike
//! ("CRK2": `part u16 | parts u16 | raw_len u32 | len u32 | LZ4 block`). Readers take both
//! kinds.
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
const COMPRESSED_MAGIC: [u8; 4] = *b"CRB2";
const COMPRESSED_CHECKPOINT_MAGIC: [u8; 4] = *b"CRK2";
/// Each compressed header holds the uncompressed length besides.
const RAW_LEN: usize = 4;

/// The most bytes a message's records (or a checkpoint part's bytes) give back when
/// decompressed: what a message of them uncompressed could hold.
pub(crate) const RAW_BYTES_MAX: usize = BATCH_BYTES_MAX - HEADER - TRAILER;

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
    /// A compressed message whose block does not give back the length its header says (or
    /// says more than a message holds).
    Compressed,
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
            Self::Compressed => f.write_str("its compressed bytes do not decompress to the length said"),
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

    /// The message for this batch, appended to `out`: with `compress`, its records
    /// compressed ("CRB2") — unless that would not make it smaller; else (or then)
    /// [`Batch::encode`]'s.
    ///
    /// # Panics
    ///
    /// As [`Batch::encode`].
    pub fn encode_as(&self, compress: bool, out: &mut Vec<u8>) {
        if !compress {
            return self.encode(out);
        }
        assert!(self.first_seq <= self.last_seq, "a batch holds at least one record");
        let len = HEADER + self.records.len() + TRAILER;
        assert!(len <= BATCH_BYTES_MAX, "a batch of {len} bytes is past BATCH_BYTES_MAX");
        let start = out.len();
        out.extend_from_slice(&COMPRESSED_MAGIC);
        out.extend_from_slice(&self.shard.to_be_bytes());
        out.extend_from_slice(&self.first_seq.to_be_bytes());
        out.extend_from_slice(&self.last_seq.to_be_bytes());
        if !compress_after_header(out, start, self.records, len) {
            out.truncate(start);
            self.encode(out);
        }
    }
}

/// Appends `raw`'s length, the LZ4 block's length and the block to the header `out` holds
/// from `start`, then the CRC over it all; true if the whole is below `plain` bytes (what the
/// message would be uncompressed), else false with `out` left to be cut by the caller.
fn compress_after_header(out: &mut Vec<u8>, start: usize, raw: &[u8], plain: usize) -> bool {
    out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let block_at = out.len();
    out.resize(block_at + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
    let Ok(n) = lz4_flex::block::compress_into(raw, &mut out[block_at..]) else {
        return false;
    };
    if block_at - start + n + TRAILER >= plain {
        return false;
    }
    out.truncate(block_at + n);
    out[len_at..block_at].copy_from_slice(&(n as u32).to_be_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    true
}

/// `block` decompressed into `scratch`, which must then hold exactly `raw_len` bytes (at
/// most [`RAW_BYTES_MAX`]).
fn decompress<'a>(block: &[u8], raw_len: usize, scratch: &'a mut Vec<u8>) -> Result<&'a [u8], Invalid> {
    if raw_len > RAW_BYTES_MAX {
        return Err(Invalid::Compressed);
    }
    scratch.clear();
    scratch.resize(raw_len, 0);
    match lz4_flex::block::decompress_into(block, scratch) {
        Ok(n) if n == raw_len => Ok(&scratch[..]),
        _ => Err(Invalid::Compressed),
    }
}

/// The batch in `message`, checked: magic, length, CRC, range (its records decompressed
/// into `scratch` if they came compressed).
///
/// # Errors
///
/// What makes it not a batch we wrote.
pub fn decode<'a>(message: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Batch<'a>, Invalid> {
    match decode_message(message, scratch)? {
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

    /// The message for this part, appended to `out`: with `compress`, its bytes compressed
    /// ("CRK2") — unless that would not make it smaller; else (or then)
    /// [`CheckpointPart::encode`]'s.
    ///
    /// # Panics
    ///
    /// As [`CheckpointPart::encode`].
    pub fn encode_as(&self, compress: bool, out: &mut Vec<u8>) {
        if !compress {
            return self.encode(out);
        }
        assert!(self.bytes.len() <= CHECKPOINT_PART_BYTES, "a checkpoint part past CHECKPOINT_PART_BYTES");
        assert!(self.covers <= self.through && self.part < self.parts, "a checkpoint part's numbers");
        let start = out.len();
        out.extend_from_slice(&COMPRESSED_CHECKPOINT_MAGIC);
        out.extend_from_slice(&self.shard.to_be_bytes());
        out.extend_from_slice(&self.covers.to_be_bytes());
        out.extend_from_slice(&self.through.to_be_bytes());
        out.extend_from_slice(&self.part.to_be_bytes());
        out.extend_from_slice(&self.parts.to_be_bytes());
        let plain = CHECKPOINT_HEADER + self.bytes.len() + TRAILER;
        if !compress_after_header(out, start, self.bytes, plain) {
            out.truncate(start);
            self.encode(out);
        }
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
/// part's own checks; compressed records or bytes are decompressed into `scratch` (and
/// checked to give back the length said).
///
/// # Errors
///
/// What makes it not a message we wrote.
pub fn decode_message<'a>(message: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Message<'a>, Invalid> {
    let n = message.len();
    if !(HEADER.min(CHECKPOINT_HEADER) + TRAILER..=BATCH_BYTES_MAX).contains(&n) {
        return Err(Invalid::Size(n));
    }
    let (body, crc) = message.split_at(n - TRAILER);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(Invalid::Crc);
    }
    let (checkpoint, compressed) = match <[u8; 4]>::try_from(&body[..4]) {
        Ok(MAGIC) => (false, false),
        Ok(CHECKPOINT_MAGIC) => (true, false),
        Ok(COMPRESSED_MAGIC) => (false, true),
        Ok(COMPRESSED_CHECKPOINT_MAGIC) => (true, true),
        _ => return Err(Invalid::Magic),
    };
    let header = if checkpoint { CHECKPOINT_HEADER } else { HEADER } + if compressed { RAW_LEN } else { 0 };
    if body.len() < header {
        return Err(Invalid::Size(n));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let u32_at = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]) as usize;
    // The length of what follows is the header's last field; before it, when compressed,
    // the length it decompresses to.
    let (said, data) = (u32_at(header - 4), &body[header..]);
    if said != data.len() {
        return Err(Invalid::Length { said, found: data.len() });
    }
    let shard = u16::from_be_bytes([body[4], body[5]]);
    let (a, b) = (u64_at(6), u64_at(14));
    let data = |scratch: &'a mut Vec<u8>| {
        if compressed {
            decompress(data, u32_at(header - 8), scratch)
        } else {
            Ok(data)
        }
    };
    if checkpoint {
        let (part, parts) =
            (u16::from_be_bytes([body[22], body[23]]), u16::from_be_bytes([body[24], body[25]]));
        if a > b || part >= parts {
            return Err(Invalid::Checkpoint);
        }
        let bytes = data(scratch)?;
        return Ok(Message::Checkpoint(CheckpointPart { shard, covers: a, through: b, part, parts, bytes }));
    }
    if b < a {
        return Err(Invalid::Range { first: a, last: b });
    }
    Ok(Message::Batch(Batch { shard, first_seq: a, last_seq: b, records: data(scratch)? }))
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
        assert_eq!(
            decode(&m, &mut Vec::new()),
            Ok(Batch { shard: 3, first_seq: 7, last_seq: 9, records: b"three records" })
        );
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let m = message(1, 1, b"r");
        for i in 0..m.len() {
            for bit in 0..8 {
                let mut bad = m.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad, &mut Vec::new()).is_err(), "byte {i} bit {bit}");
            }
        }
        assert_eq!(decode(&m[..m.len() - 1], &mut Vec::new()), Err(Invalid::Crc), "a cut message");
        assert_eq!(decode(b"short", &mut Vec::new()), Err(Invalid::Size(5)));
    }

    #[test]
    fn a_subject_read_in_order_has_no_gap() {
        let mut t = Tail::default();
        for (first, last) in [(1, 4), (5, 5), (6, 9)] {
            let m = message(first, last, b"x");
            t.accept(&decode(&m, &mut Vec::new()).unwrap()).unwrap();
        }
        assert_eq!(t.next(), 10);
        let skipped = message(11, 12, b"x");
        assert_eq!(
            t.accept(&decode(&skipped, &mut Vec::new()).unwrap()),
            Err(Gap { expected: 10, found: 11 })
        );
        let repeated = message(8, 9, b"x");
        assert_eq!(
            t.accept(&decode(&repeated, &mut Vec::new()).unwrap()),
            Err(Gap { expected: 10, found: 8 })
        );
        let mut from_checkpoint = Tail::from(5);
        assert!(from_checkpoint.accept(&decode(&message(6, 6, b"x"), &mut Vec::new()).unwrap()).is_err());
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
        assert_eq!(decode_message(&m, &mut Vec::new()), Ok(Message::Checkpoint(want)));
        assert_eq!(decode_message(&m, &mut Vec::new()).unwrap().last_record(), 12);
        assert_eq!(decode(&m, &mut Vec::new()), Err(Invalid::Magic), "a checkpoint is not taken for a batch");
        for i in 0..m.len() {
            let mut bad = m.clone();
            bad[i] ^= 0x10;
            assert!(decode_message(&bad, &mut Vec::new()).is_err(), "byte {i}");
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
        assert_eq!(decode_message(&bad, &mut Vec::new()), Err(Invalid::Checkpoint));
    }

    #[test]
    fn a_checkpoint_joins_the_batches_around_it_or_is_a_gap() {
        // Batches to 9, a checkpoint of 1..=7 appended when the subject held 9: next is 10.
        let mut t = Tail::default();
        t.accept(&decode(&message(1, 9, b"x"), &mut Vec::new()).unwrap()).unwrap();
        t.checkpoint(7, 9).unwrap();
        assert_eq!(t.next(), 10);
        // Said to follow record 12 while the batches end at 9: records are missing.
        let mut t = Tail::default();
        t.accept(&decode(&message(1, 9, b"x"), &mut Vec::new()).unwrap()).unwrap();
        assert_eq!(t.checkpoint(7, 12), Err(Gap { expected: 10, found: 13 }));
        // A checkpoint that covers what never reached the stream (10..=12) fills the gap.
        t.checkpoint(12, 12).unwrap();
        assert_eq!(t.accept(&decode(&message(13, 13, b"x"), &mut Vec::new()).unwrap()), Ok(()));
        // First on the subject (what was before it purged): the next batch follows it.
        let mut t = Tail::default();
        t.checkpoint(20, 20).unwrap();
        assert!(t.accept(&decode(&message(22, 22, b"x"), &mut Vec::new()).unwrap()).is_err());
    }

    /// Records as a switch journals them: much alike from one to the next.
    fn alike(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                format!("record {i:08} acquirer 12345678 terminal T0001 amount 000000001000;").into_bytes()
            })
            .collect()
    }

    fn compressed(first: u64, last: u64, records: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Batch { shard: 3, first_seq: first, last_seq: last, records }.encode_as(true, &mut out);
        out
    }

    #[test]
    fn a_compressed_batch_reads_back_as_written_in_fewer_bytes() {
        let records = alike(500);
        let m = compressed(7, 506, &records);
        assert_eq!(m[..4], COMPRESSED_MAGIC);
        assert!(m.len() * 3 < records.len(), "{} bytes of {}", m.len(), records.len());
        let mut scratch = Vec::new();
        assert_eq!(
            decode(&m, &mut scratch),
            Ok(Batch { shard: 3, first_seq: 7, last_seq: 506, records: &records })
        );
        // What an earlier node appended uncompressed reads as before beside it.
        assert_eq!(
            decode(&message(1, 2, &records), &mut scratch).map(|b| b.records.len()),
            Ok(records.len())
        );
    }

    #[test]
    fn records_that_do_not_compress_go_as_they_are() {
        // No byte sequence repeats: LZ4 would only add to it.
        let mut x = 0x9e37_79b9_u32;
        let noise: Vec<u8> = (0..4_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let m = compressed(1, 9, &noise);
        assert_eq!(m, message(1, 9, &noise), "the plain message, byte for byte");
        let tiny = compressed(1, 1, b"r");
        assert_eq!(tiny, message(1, 1, b"r"));
    }

    #[test]
    fn a_damaged_or_lying_compressed_message_is_caught() {
        let records = alike(40);
        let m = compressed(1, 40, &records);
        for i in 0..m.len() {
            let mut bad = m.clone();
            bad[i] ^= 0x04;
            assert!(decode(&bad, &mut Vec::new()).is_err(), "byte {i}");
        }
        // A header that says another length, under a good CRC: the block does not give it.
        let with_raw_len = |raw: u32| {
            let mut bad = m[..m.len() - TRAILER].to_vec();
            bad[HEADER - 4..HEADER].copy_from_slice(&raw.to_be_bytes());
            let crc = crc32c::crc32c(&bad);
            bad.extend_from_slice(&crc.to_be_bytes());
            bad
        };
        let raw = records.len() as u32;
        assert_eq!(decode(&with_raw_len(raw), &mut Vec::new()).map(|b| b.records.len()), Ok(records.len()));
        assert_eq!(decode(&with_raw_len(raw + 1), &mut Vec::new()), Err(Invalid::Compressed));
        assert_eq!(decode(&with_raw_len(raw - 1), &mut Vec::new()), Err(Invalid::Compressed));
        // More than a message may hold: refused before anything is allocated for it.
        assert_eq!(decode(&with_raw_len(u32::MAX), &mut Vec::new()), Err(Invalid::Compressed));
    }

    #[test]
    fn a_compressed_checkpoint_part_reads_back_as_written() {
        let state = alike(300);
        let mut m = Vec::new();
        CheckpointPart { shard: 3, covers: 10, through: 12, part: 1, parts: 2, bytes: &state }
            .encode_as(true, &mut m);
        assert_eq!(m[..4], COMPRESSED_CHECKPOINT_MAGIC);
        assert!(m.len() * 3 < state.len());
        let want = CheckpointPart { shard: 3, covers: 10, through: 12, part: 1, parts: 2, bytes: &state };
        let mut scratch = Vec::new();
        assert_eq!(decode_message(&m, &mut scratch), Ok(Message::Checkpoint(want)));
        assert_eq!(decode(&m, &mut Vec::new()), Err(Invalid::Magic), "a checkpoint is not taken for a batch");
    }
}
