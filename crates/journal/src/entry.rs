//! What the records say: one typed entry per [`Kind`], each with its payload codec
//! (little-endian integers; names as a length byte and UTF-8; blobs as a `u16` length and
//! bytes). Requests and reversals travel as [`crate::request`] payloads: no card secret in
//! the clear, ever.

use std::fmt;

use crate::record::Kind;

/// A request was accepted: who sent it, its duplicate key, where its answer goes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Its duplicate key (the authenticated participant's configured id among it).
    pub key: Key,
    /// The configured link it came on.
    pub link: String,
    /// Its correlation there (native header id, or 0 on classic links).
    pub correlation: u64,
    /// The request, sealed ([`crate::request::seal`]).
    pub request: Vec<u8>,
    /// When it was taken in (Unix milliseconds; 0 in records written before this field).
    pub at_unix_ms: u64,
}

/// The payload of an [`Entry::Outcome`] of `key` and `o`, appended to `out` (without
/// building the entry: a checkpoint writes up to a million of them).
pub fn encode_outcome(key: KeyRef<'_>, o: &crate::recovery::Outcome, out: &mut Vec<u8>) {
    let mut w = W(out);
    w.key(key).bytes(&o.code).u8(u8::from(o.reversed)).u64(o.at_unix_ms);
    for v in [o.auth, o.sent_stan] {
        match v {
            Some(b) => w.u8(1).bytes(&b),
            None => w.u8(0),
        };
    }
}

/// An `Outcomes` record's flags of one outcome.
mod outcome_flags {
    /// The switch reversed it.
    pub(super) const REVERSED: u8 = 1 << 0;
    /// DE 38 follows.
    pub(super) const AUTH: u8 = 1 << 1;
    /// The STAN its destination saw follows.
    pub(super) const SENT_STAN: u8 = 1 << 2;
    /// Its DE 32 is the one before it in the record (the first: 0), and is not written.
    pub(super) const SAME_ACQUIRER: u8 = 1 << 3;
    /// It has no DE 33 (0), and none is written.
    pub(super) const NO_FORWARDER: u8 = 1 << 4;
    /// Every flag there is.
    pub(super) const ALL: u8 = REVERSED | AUTH | SENT_STAN | SAME_ACQUIRER | NO_FORWARDER;
}

/// Writes completed requests' outcomes as `Outcomes` records' payloads, many to a record —
/// what a checkpoint holds most of (a million outcomes, written whole every checkpoint and
/// carried by a cluster's stream), so each is about 0.4× the bytes of an `Outcome` record:
///
/// ```text
/// payload: count (u16) | outcome × count
/// outcome: flags (u8) | participant (varint: its number in this record; the next number
///          is followed by its id, a name) | class (u8) | DE 11 (varint) | DE 7 (zigzag
///          varint, from the one before) | DE 41 ([8]) | DE 32 (varint, unless the one
///          before's) | DE 33 (varint, unless none) | DE 39 ([2]) | answered at (zigzag
///          varint ms, from the one before) | DE 38 ([6], if) | STAN sent ([6], if)
/// ```
///
/// Each record stands alone (its participants' ids, and what the first outcome's fields
/// are told from, are its own), so a reader needs no other. A record is closed once its
/// payload reaches [`crate::limits::OUTCOMES_RECORD_BYTES`] (its last outcome at most
/// [`crate::limits::OUTCOME_BYTES_MAX`] more).
#[derive(Debug)]
pub struct OutcomesWriter<'k> {
    /// Where the record's payload begins in the output: its count is written there.
    start: usize,
    count: u16,
    /// The participants' ids the record numbers, with their numbers (in the order first
    /// written).
    numbers: rustc_hash::FxHashMap<&'k str, usize>,
    /// The last participant written, and its number: outcomes come in runs of one.
    last: Option<(&'k str, usize)>,
    time: u64,
    acquirer: u64,
    at_unix_ms: u64,
}

impl<'k> OutcomesWriter<'k> {
    /// A record's payload begun at the end of `out`.
    pub fn begin(out: &mut Vec<u8>) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; 2]);
        Self {
            start,
            count: 0,
            numbers: rustc_hash::FxHashMap::default(),
            last: None,
            time: 0,
            acquirer: 0,
            at_unix_ms: 0,
        }
    }

    /// Appends outcome `o` of `key`; whether the record is full now (to be closed with
    /// [`OutcomesWriter::end`], the next outcome in a record of its own).
    pub fn push(&mut self, key: KeyRef<'k>, o: &crate::recovery::Outcome, out: &mut Vec<u8>) -> bool {
        use outcome_flags::*;
        let same_acquirer = key.acquirer == self.acquirer;
        let flags = [
            (o.reversed, REVERSED),
            (o.auth.is_some(), AUTH),
            (o.sent_stan.is_some(), SENT_STAN),
            (same_acquirer, SAME_ACQUIRER),
            (key.forwarder == 0, NO_FORWARDER),
        ]
        .into_iter()
        .fold(0, |flags, (set, flag)| if set { flags | flag } else { flags });
        out.push(flags);
        let (number, new) = match self.last {
            Some((last, n)) if last == key.participant => (n, false),
            _ => match self.numbers.get(key.participant) {
                Some(&n) => (n, false),
                None => {
                    let n = self.numbers.len();
                    self.numbers.insert(key.participant, n);
                    (n, true)
                }
            },
        };
        self.last = Some((key.participant, number));
        varint(number as u64, out);
        if new {
            W(out).name(key.participant);
        }
        self.rest(key, o, same_acquirer, out)
    }

    /// The fields after the participant.
    fn rest(
        &mut self,
        key: KeyRef<'k>,
        o: &crate::recovery::Outcome,
        same_acquirer: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        out.push(key.class);
        varint(u64::from(key.stan), out);
        varint(zigzag(key.time.wrapping_sub(self.time)), out);
        out.extend_from_slice(&key.terminal);
        if !same_acquirer {
            varint(key.acquirer, out);
        }
        if key.forwarder != 0 {
            varint(key.forwarder, out);
        }
        out.extend_from_slice(&o.code);
        varint(zigzag(o.at_unix_ms.wrapping_sub(self.at_unix_ms)), out);
        for b in [o.auth, o.sent_stan].into_iter().flatten() {
            out.extend_from_slice(&b);
        }
        (self.time, self.acquirer, self.at_unix_ms) = (key.time, key.acquirer, o.at_unix_ms);
        self.count += 1;
        out.len() - self.start >= crate::limits::OUTCOMES_RECORD_BYTES || self.count == u16::MAX
    }

    /// Closes the record: writes its count; how many outcomes it holds.
    pub fn end(self, out: &mut [u8]) -> u16 {
        out[self.start..self.start + 2].copy_from_slice(&self.count.to_le_bytes());
        self.count
    }
}

/// Reads an `Outcomes` record's payload ([`OutcomesWriter`]), giving `each` every outcome in
/// order with its key borrowed from `payload`; `None` when it is not the layout (a field
/// cut short, a participant numbered out of order or not UTF-8, an unknown flag, a varint
/// too long, bytes after the last outcome).
pub fn read_outcomes<'a>(
    payload: &'a [u8],
    mut each: impl FnMut(KeyRef<'a>, crate::recovery::Outcome),
) -> Option<()> {
    use outcome_flags::*;
    let mut r = R(payload);
    let count = u16::from_le_bytes(r.array()?);
    let mut names: Vec<&'a str> = Vec::new();
    let (mut time, mut acquirer, mut at_unix_ms) = (0u64, 0u64, 0u64);
    for _ in 0..count {
        let flags = r.u8()?;
        if flags & !ALL != 0 {
            return None;
        }
        let number = usize::try_from(r.varint()?).ok()?;
        let participant = match names.get(number) {
            Some(&p) => p,
            None if number == names.len() => {
                names.push(r.name_ref()?);
                names[number]
            }
            None => return None,
        };
        let class = r.u8()?;
        let stan = u32::try_from(r.varint()?).ok()?;
        time = time.wrapping_add(unzigzag(r.varint()?));
        let terminal = r.array()?;
        if flags & SAME_ACQUIRER == 0 {
            acquirer = r.varint()?;
        }
        let forwarder = if flags & NO_FORWARDER == 0 { r.varint()? } else { 0 };
        let code = r.array()?;
        at_unix_ms = at_unix_ms.wrapping_add(unzigzag(r.varint()?));
        let auth = if flags & AUTH != 0 { Some(r.array()?) } else { None };
        let sent_stan = if flags & SENT_STAN != 0 { Some(r.array()?) } else { None };
        let key = Key { participant, class, stan, time, terminal, acquirer, forwarder };
        let reversed = flags & REVERSED != 0;
        each(key, crate::recovery::Outcome { code, auth, reversed, at_unix_ms, sent_stan });
    }
    r.end()
}

/// `v` as LEB128: seven bits a byte, lowest first, the high bit set on all but the last.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A difference as an unsigned number small when it is small either way.
const fn zigzag(d: u64) -> u64 {
    let d = d as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

/// The inverse of [`zigzag`].
const fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

impl Accepted {
    /// The layout.
    fn read(r: &mut R<'_>) -> Option<Self> {
        let head = Self::read_head(r)?;
        Some(Self { at_unix_ms: r.trailing_u64()?, ..head })
    }

    /// The layout up to its time (which a [`Sent`] record has after the forward's fields);
    /// the time 0.
    fn read_head(r: &mut R<'_>) -> Option<Self> {
        let (key, link, correlation, request) = (r.key()?, r.name()?, r.u64()?, r.blob()?);
        Some(Self { key, link, correlation, request, at_unix_ms: 0 })
    }
}

/// A request's record (`RequestAccepted` or `RequestForwarded`) as a fold reads it
/// ([`request_key`]): its duplicate key, borrowed from the payload, and the STAN its
/// destination saw if the record says it was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKey<'a> {
    /// Its duplicate key.
    pub key: KeyRef<'a>,
    /// A `RequestForwarded` record's STAN the destination saw (`None`: only accepted).
    pub sent_stan: Option<[u8; 6]>,
}

/// A request's record of `kind` (`RequestAccepted` or `RequestForwarded`) read for a fold
/// that will drop most requests unread — nearly every request is answered a few records
/// after it was accepted: its key (the participant's id borrowed, its UTF-8 checked) and the
/// STAN its destination saw, with every other field's length checked and its bytes not read
/// (no name's UTF-8, no copy, no allocation). [`Entry::decode`] reads the record whole when
/// the request turns out to be still open, and refuses it then if a name is not UTF-8.
///
/// # Errors
///
/// A payload that is not the layout of `kind` (or a `kind` that is neither).
pub fn request_key(kind: Kind, payload: &[u8]) -> Result<RequestKey<'_>, BadEntry> {
    read_whole(kind, payload, |r| {
        let key = r.key_ref()?;
        r.skip_name()?.u64()?;
        r.skip_blob()?;
        match kind {
            Kind::RequestAccepted => {
                r.trailing_u64()?;
                Some(RequestKey { key, sent_stan: None })
            }
            Kind::RequestForwarded => {
                r.skip_name()?.skip_name()?.u64()?;
                let sent_stan = r.array()?;
                r.u64()?;
                Some(RequestKey { key, sent_stan: Some(sent_stan) })
            }
            _ => None,
        }
    })
}

impl Forwarded {
    /// A `Forwarded` record's payload read for a fold (see [`request_key`]): the request it
    /// forwards and the STAN its destination saw, the names' lengths checked and left empty
    /// (their bytes not read) and the outbound correlation 0.
    ///
    /// # Errors
    ///
    /// As [`Entry::decode`].
    pub fn decode_deferred(payload: &[u8]) -> Result<Self, BadEntry> {
        read_whole(Kind::Forwarded, payload, |r| Self::read(r, false))
    }

    /// The layout; `whole`: the names and the outbound correlation kept, or left empty.
    fn read(r: &mut R<'_>, whole: bool) -> Option<Self> {
        let (request, destination, link, key) = (r.u64()?, r.name_if(whole)?, r.name_if(whole)?, r.u64()?);
        Some(Self { request, destination, link, key: if whole { key } else { 0 }, sent_stan: r.array()? })
    }
}

/// `payload` read by `read`, which must take all of it: a record of `kind`'s entry.
fn read_whole<'a, T>(
    kind: Kind,
    payload: &'a [u8],
    read: impl FnOnce(&mut R<'a>) -> Option<T>,
) -> Result<T, BadEntry> {
    let mut r = R(payload);
    read(&mut r).filter(|_| r.end().is_some()).ok_or(BadEntry { kind })
}

/// It was forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The sequence number of its [`Accepted`] record.
    pub request: u64,
    /// The destination participant's id.
    pub destination: String,
    /// The configured link it left on.
    pub link: String,
    /// Its outbound correlation.
    pub key: u64,
    /// The STAN the destination saw.
    pub sent_stan: [u8; 6],
}

/// A request accepted and forwarded, in one [`Kind::RequestForwarded`] record (what the
/// switch writes: an [`Accepted`] and a [`Forwarded`] record each is what it wrote before,
/// and what [`Sent::into_parts`] gives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The request, as an [`Accepted`] record holds it.
    pub accepted: Accepted,
    /// The destination participant's id.
    pub destination: String,
    /// The configured link it left on.
    pub out_link: String,
    /// Its outbound correlation.
    pub out_key: u64,
    /// The STAN the destination saw.
    pub sent_stan: [u8; 6],
}

/// Where a request went, borrowed: a [`Sent`] record's forward as the engine journals it
/// ([`encode_sent`]).
#[derive(Clone, Copy, Debug)]
pub struct ForwardRef<'a> {
    /// The destination participant's id.
    pub destination: &'a str,
    /// The configured link it leaves on.
    pub link: &'a str,
    /// Its outbound correlation.
    pub key: u64,
    /// The STAN the destination sees.
    pub sent_stan: &'a [u8; 6],
}

impl Sent {
    /// The two entries this record stands for, as record `seq`: its [`Accepted`], and the
    /// [`Forwarded`] of request `seq`.
    #[must_use]
    pub fn into_parts(self, seq: u64) -> (Accepted, Forwarded) {
        let Self { accepted, destination, out_link, out_key, sent_stan } = self;
        (accepted, Forwarded { request: seq, destination, link: out_link, key: out_key, sent_stan })
    }

    /// The layout: the accepted request's, the forward's fields before its time.
    fn read(r: &mut R<'_>) -> Option<Self> {
        let head = Accepted::read_head(r)?;
        let (destination, out_link, out_key, sent_stan) = (r.name()?, r.name()?, r.u64()?, r.array()?);
        Some(Self {
            accepted: Accepted { at_unix_ms: r.u64()?, ..head },
            destination,
            out_link,
            out_key,
            sent_stan,
        })
    }
}

/// Its originator was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The sequence number of its [`Accepted`] record.
    pub request: u64,
    /// DE 39.
    pub code: [u8; 2],
    /// DE 38, when the answer had one.
    pub auth: Option<[u8; 6]>,
    /// Whether the switch made the answer (a decline) rather than relaying one.
    pub switch_made: bool,
    /// When it was answered (Unix milliseconds; 0 in records written before this field).
    pub at_unix_ms: u64,
}

impl Answered {
    /// An `AnswerSent` record's payload (what [`Entry::decode`] gives of it, without the
    /// entry around it: a fold reads one a transaction).
    ///
    /// # Errors
    ///
    /// As [`Entry::decode`].
    pub fn decode(payload: &[u8]) -> Result<Self, BadEntry> {
        read_whole(Kind::AnswerSent, payload, Self::read)
    }

    /// The request an `AnswerSent` record's payload answers (its first field), nothing else
    /// of it read or checked: what a fold looks a few records ahead for.
    #[must_use]
    pub fn request_of(payload: &[u8]) -> Option<u64> {
        R(payload).u64()
    }

    /// The layout.
    fn read(r: &mut R<'_>) -> Option<Self> {
        let (request, code, switch_made) = (r.u64()?, r.array()?, r.u8()? == 1);
        let auth = match r.u8()? {
            0 => None,
            _ => Some(r.array()?),
        };
        Some(Self { request, code, auth, switch_made, at_unix_ms: r.trailing_u64()? })
    }

    /// Whether it relays an issuer's approval (a switch-made answer never approves): the
    /// answer a takeover must not take as given unless its release was marked (see
    /// [`crate::Recovery::released`]).
    #[must_use]
    pub fn relays_approval(&self) -> bool {
        !self.switch_made && corridor_wire::ResponseCode(self.code).is_approval()
    }
}

/// A duplicate key: the participant's configured id, MTI class, DE 11, DE 7, DE 41, and
/// DE 32 and DE 33 (as [`institution_code`]s). The id is owned (`Key`, what recovery keeps)
/// or borrowed ([`KeyRef`], what the engine journals from).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key<S = String> {
    /// The participant's configured id.
    pub participant: S,
    /// The MTI class.
    pub class: u8,
    /// DE 11.
    pub stan: u32,
    /// DE 7 as a number.
    pub time: u64,
    /// DE 41, space-padded ([`NO_TERMINAL`]: absent).
    pub terminal: [u8; 8],
    /// DE 32.
    pub acquirer: u64,
    /// DE 33 (0: absent).
    pub forwarder: u64,
}

/// A [`Key`] with its participant's id borrowed: what the engine has at hand when it
/// journals one (its configured id, not a copy of it).
pub type KeyRef<'a> = Key<&'a str>;

impl<S> Key<S> {
    /// The same key with participant id `participant`.
    pub fn with_participant<T>(&self, participant: T) -> Key<T> {
        Key {
            participant,
            class: self.class,
            stan: self.stan,
            time: self.time,
            terminal: self.terminal,
            acquirer: self.acquirer,
            forwarder: self.forwarder,
        }
    }
}

impl<S: AsRef<str>> Key<S> {
    /// This key, borrowed.
    #[must_use]
    pub fn as_key_ref(&self) -> KeyRef<'_> {
        self.with_participant(self.participant.as_ref())
    }

    /// This key, owned.
    #[must_use]
    pub fn to_owned_key(&self) -> Key {
        self.with_participant(self.participant.as_ref().to_owned())
    }
}

/// An [`Entry::Accepted`]'s payload from borrowed parts, appended to `out` — the entry's own
/// layout (the entry encodes through this) — with the request's sealed bytes written in place
/// by `request`, which appends them to `out` (nothing for an empty one; past `u16::MAX` bytes
/// they are cut, as a blob is). The engine journals every request so: nothing of it copied
/// or allocated first.
pub fn encode_accepted(
    key: KeyRef<'_>,
    link: &str,
    correlation: u64,
    request: impl FnOnce(&mut Vec<u8>),
    at_unix_ms: u64,
    out: &mut Vec<u8>,
) {
    W(out).accepted_head(key, link, correlation, request).u64(at_unix_ms);
}

/// An [`Entry::Sent`]'s payload from borrowed parts, appended to `out` (the entry encodes
/// through this): as [`encode_accepted`], with where the request went (`to`). The engine
/// journals every request it forwards so: one record, nothing copied or allocated first.
pub fn encode_sent(
    key: KeyRef<'_>,
    link: &str,
    correlation: u64,
    request: impl FnOnce(&mut Vec<u8>),
    to: &ForwardRef<'_>,
    at_unix_ms: u64,
    out: &mut Vec<u8>,
) {
    let mut w = W(out);
    w.accepted_head(key, link, correlation, request);
    w.name(to.destination).name(to.link).u64(to.key).bytes(to.sent_stan).u64(at_unix_ms);
}

/// An [`Entry::Forwarded`]'s payload from borrowed parts, appended to `out` (the entry
/// encodes through this).
pub fn encode_forwarded(
    request: u64,
    destination: &str,
    link: &str,
    key: u64,
    sent_stan: &[u8; 6],
    out: &mut Vec<u8>,
) {
    W(out).u64(request).name(destination).name(link).u64(key).bytes(sent_stan);
}

/// A key's terminal when the request had no DE 41.
pub const NO_TERMINAL: [u8; 8] = [b' '; 8];

/// Whether a reversal carrying terminal `named` (its DE 41, [`NO_TERMINAL`] when it has
/// none) may name a request of terminal `request` whose key is otherwise the same (SPEC §9):
/// the same terminal, or one of the two has none — a reversal may leave DE 41 out, or carry
/// the one the switch added to a request that had none (a QR payment's, from its code). A
/// reversal carrying one terminal never names another terminal's request: terminals that
/// number their own requests send the same STAN and DE 7, and the other one's reversal
/// taken for this one's would leave this one's approval standing. The engine's duplicate
/// window and clearing both tie reversals to originals by it.
#[must_use]
pub fn terminal_may_name(named: &[u8; 8], request: &[u8; 8]) -> bool {
    named == request || *named == NO_TERMINAL || *request == NO_TERMINAL
}

/// `text` on one line: line breaks and other control characters written as escapes (`\n`,
/// `\u{1b}`), so a record printed or logged is one line whatever text it was given. Text
/// without any (nearly all of it) is returned as it is, not copied.
#[must_use]
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// An institution id (1 to 11 digits) as a number that keeps its length: the digits' value
/// and, above bit 40, how many there are ("012" and "12" differ). 0 for none.
#[must_use]
pub fn institution_code(digits: &[u8]) -> u64 {
    let value = digits.iter().take(11).fold(0u64, |n, &d| n * 10 + u64::from(d.wrapping_sub(b'0') % 10));
    ((digits.len().min(11) as u64) << 40) | value
}

/// A reversal or advice was stored for a destination (store-and-forward): one the switch
/// made, or one a participant sent (acknowledged to it once this record is durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReversalQueued {
    /// The entry's id.
    pub id: u64,
    /// The destination participant's id.
    pub destination: String,
    /// The message (0420, 0120, 0220 — its first transmission's form), sealed
    /// ([`crate::request::seal`]).
    pub reversal: Vec<u8>,
    /// Unix milliseconds when it was stored: its age counts from this, across restarts.
    pub queued_unix_ms: u64,
    /// For a reversal: the key of the request it reverses.
    pub original: Option<Key>,
    /// For a participant's own advice or reversal: its key, so its repeats are acknowledged
    /// again and never stored twice.
    pub advice: Option<Key>,
}

/// A completed request's outcome as a checkpoint keeps it: its key, DE 39, DE 38, whether
/// the switch reversed it, and when it was answered (Unix milliseconds, at most that late).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeEntry {
    /// The request's key.
    pub key: Key,
    /// DE 39.
    pub code: [u8; 2],
    /// DE 38.
    pub auth: Option<[u8; 6]>,
    /// Whether the switch reversed it (or a participant's reversal of it is stored).
    pub reversed: bool,
    /// When it was answered.
    pub at_unix_ms: u64,
    /// The STAN its destination saw.
    pub sent_stan: Option<[u8; 6]>,
}

impl OutcomeEntry {
    /// The entry of `key`'s outcome `o`.
    #[must_use]
    pub fn new(key: Key, o: crate::recovery::Outcome) -> Self {
        let crate::recovery::Outcome { code, auth, reversed, at_unix_ms, sent_stan } = o;
        Self { key, code, auth, reversed, at_unix_ms, sent_stan }
    }

    /// Its outcome.
    #[must_use]
    pub fn outcome(&self) -> crate::recovery::Outcome {
        let Self { code, auth, reversed, at_unix_ms, sent_stan, .. } = *self;
        crate::recovery::Outcome { code, auth, reversed, at_unix_ms, sent_stan }
    }
}

/// One record's content.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// See [`Accepted`].
    Accepted(Accepted),
    /// See [`Forwarded`].
    Forwarded(Forwarded),
    /// See [`Sent`].
    Sent(Sent),
    /// See [`Answered`].
    Answered(Answered),
    /// See [`ReversalQueued`].
    ReversalQueued(ReversalQueued),
    /// Reversal `id` was sent, its `attempt`-th transmission (0 for the 0420).
    ReversalSent {
        /// The reversal.
        id: u64,
        /// Which transmission.
        attempt: u32,
    },
    /// Reversal `id` was acknowledged.
    ReversalAcked {
        /// The reversal.
        id: u64,
    },
    /// Reversal `id` was given up after `attempts` transmissions: it moved to the exception
    /// queue, where an operator retries or drops it.
    ReversalAbandoned {
        /// The reversal.
        id: u64,
        /// Transmissions made.
        attempts: u32,
    },
    /// An operator moved exception `id` back to store-and-forward.
    SafRetried {
        /// The entry.
        id: u64,
    },
    /// An operator dropped exception `id`.
    SafDropped {
        /// The entry.
        id: u64,
    },
    /// See [`OutcomeEntry`] (checkpoints only; written before [`Entry::Outcomes`]).
    Outcome(OutcomeEntry),
    /// Outcomes, many to a record ([`OutcomesWriter`]; checkpoints only).
    Outcomes(Vec<OutcomeEntry>),
    /// A response came after its request had timed out (never relayed): on configured link
    /// `link`, outbound correlation `key`, with DE 39 `code` and DE 38 `auth`; `reversal`
    /// is the reversal it set off or the one already under way (0: none, it declined).
    LateResponse {
        /// The configured link.
        link: String,
        /// The outbound correlation.
        key: u64,
        /// DE 39.
        code: [u8; 2],
        /// DE 38.
        auth: Option<[u8; 6]>,
        /// The reversal's id (0: none).
        reversal: u64,
    },
    /// A connection of configured link `link` came up (`up`) or went down.
    LinkEvent {
        /// The configured link.
        link: String,
        /// Up or down.
        up: bool,
    },
    /// An operator's change to the running switch (PCI DSS 10.2): who, what, when, and how
    /// it ended, each name at most 255 bytes.
    Audit {
        /// When (Unix milliseconds).
        at_unix_ms: u64,
        /// Who: the credential and the peer address.
        who: String,
        /// What: the call (`POST /reload`, `SIGHUP`, ...).
        action: String,
        /// How it ended (`ok`, or the error).
        outcome: String,
    },
    /// The switch started on a configuration: the SHA-256 of its file, and what it holds.
    ConfigEvent {
        /// SHA-256 of the configuration file.
        digest: [u8; 32],
        /// Participants configured.
        participants: u32,
        /// Links configured.
        links: u32,
    },
}

/// A payload that is not its kind's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEntry {
    /// The record's kind.
    pub kind: Kind,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {:?} record whose payload is not its layout", self.kind)
    }
}

impl std::error::Error for BadEntry {}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A name: at most 255 bytes (configured ids and link names are bounded below that).
    fn name(&mut self, s: &str) -> &mut Self {
        let b = &s.as_bytes()[..s.len().min(255)];
        // At most 255, so it fits the length byte.
        self.u8(b.len() as u8).bytes(b)
    }
    fn blob(&mut self, b: &[u8]) -> &mut Self {
        self.blob_with(|out| out.extend_from_slice(b))
    }
    /// A blob whose bytes `write` appends, its length written before them once known; more
    /// than `u16::MAX` of them are cut to it.
    fn blob_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 2]);
        write(self.0);
        let len = (self.0.len() - at - 2).min(usize::from(u16::MAX));
        self.0.truncate(at + 2 + len);
        // At most u16::MAX, just above.
        self.0[at..at + 2].copy_from_slice(&(len as u16).to_le_bytes());
        self
    }
    /// An accepted request's layout up to its time ([`encode_accepted`], [`encode_sent`]).
    fn accepted_head(
        &mut self,
        key: KeyRef<'_>,
        link: &str,
        correlation: u64,
        request: impl FnOnce(&mut Vec<u8>),
    ) -> &mut Self {
        self.key(key).name(link).u64(correlation).blob_with(request)
    }
    fn key(&mut self, k: KeyRef<'_>) -> &mut Self {
        self.name(k.participant).u8(k.class).u32(k.stan).u64(k.time).bytes(&k.terminal);
        self.u64(k.acquirer).u64(k.forwarder)
    }
    fn opt_key(&mut self, k: Option<&Key>) -> &mut Self {
        match k {
            Some(k) => self.u8(1).key(k.as_key_ref()),
            None => self.u8(0),
        }
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    /// A LEB128 number ([`varint`]) of at most ten bytes, its bits within a `u64`.
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            // The tenth byte holds the 64th bit alone.
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn name(&mut self) -> Option<String> {
        self.name_ref().map(str::to_owned)
    }
    /// A name read whole (`whole`), or its length checked and its bytes passed over (left
    /// empty: a read for a fold).
    fn name_if(&mut self, whole: bool) -> Option<String> {
        if whole {
            self.name()
        } else {
            self.skip_name().map(|_| String::new())
        }
    }
    fn skip_name(&mut self) -> Option<&mut Self> {
        let n = usize::from(self.u8()?);
        self.take(n)?;
        Some(self)
    }
    fn skip_blob(&mut self) -> Option<&mut Self> {
        self.blob_ref()?;
        Some(self)
    }
    fn name_ref(&mut self) -> Option<&'a str> {
        let n = usize::from(self.u8()?);
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn blob(&mut self) -> Option<Vec<u8>> {
        self.blob_ref().map(<[u8]>::to_vec)
    }
    fn blob_ref(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(u16::from_le_bytes(self.take(2)?.try_into().ok()?));
        self.take(n)
    }
    fn key(&mut self) -> Option<Key> {
        self.key_ref().map(|k| k.to_owned_key())
    }
    fn key_ref(&mut self) -> Option<KeyRef<'a>> {
        Some(Key {
            participant: self.name_ref()?,
            class: self.u8()?,
            stan: self.u32()?,
            time: self.u64()?,
            terminal: self.array()?,
            acquirer: self.u64()?,
            forwarder: self.u64()?,
        })
    }
    fn opt_key(&mut self) -> Option<Option<Key>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.key()?)),
            _ => None,
        }
    }
    /// A field added at the end of a layout: 0 when the record predates it.
    fn trailing_u64(&mut self) -> Option<u64> {
        if self.0.is_empty() {
            Some(0)
        } else {
            self.u64()
        }
    }
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

impl Entry {
    /// Its record kind.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Accepted(_) => Kind::RequestAccepted,
            Self::Forwarded(_) => Kind::Forwarded,
            Self::Sent(_) => Kind::RequestForwarded,
            Self::Answered(_) => Kind::AnswerSent,
            Self::ReversalQueued(_) => Kind::ReversalQueued,
            Self::ReversalSent { .. } => Kind::ReversalSent,
            Self::ReversalAcked { .. } => Kind::ReversalAcked,
            Self::ReversalAbandoned { .. } => Kind::ReversalAbandoned,
            Self::SafRetried { .. } => Kind::SafRetried,
            Self::SafDropped { .. } => Kind::SafDropped,
            Self::Outcome(_) => Kind::Outcome,
            Self::Outcomes(_) => Kind::Outcomes,
            Self::LateResponse { .. } => Kind::LateResponse,
            Self::LinkEvent { .. } => Kind::LinkEvent,
            Self::ConfigEvent { .. } => Kind::ConfigEvent,
            Self::Audit { .. } => Kind::Audit,
        }
    }

    /// This entry, as record `seq`, as the entries of the records it stands for: a
    /// [`Sent`] as its [`Accepted`] and [`Forwarded`] ([`Sent::into_parts`]), any other as
    /// itself. A reader that acts on a request's acceptance and its forward each (clearing,
    /// a transaction's history) reads journals of either kind alike through it.
    pub fn split(self, seq: u64) -> impl Iterator<Item = Self> {
        let (first, second) = match self {
            Self::Sent(s) => {
                let (a, f) = s.into_parts(seq);
                (Self::Accepted(a), Some(Self::Forwarded(f)))
            }
            e => (e, None),
        };
        std::iter::once(first).chain(second)
    }

    /// Appends its payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        match self {
            Self::Accepted(a) => encode_accepted(
                a.key.as_key_ref(),
                &a.link,
                a.correlation,
                |out| out.extend_from_slice(&a.request),
                a.at_unix_ms,
                w.0,
            ),
            Self::Forwarded(f) => {
                encode_forwarded(f.request, &f.destination, &f.link, f.key, &f.sent_stan, w.0)
            }
            Self::Sent(s) => {
                let a = &s.accepted;
                let to = ForwardRef {
                    destination: &s.destination,
                    link: &s.out_link,
                    key: s.out_key,
                    sent_stan: &s.sent_stan,
                };
                let request = |out: &mut Vec<u8>| out.extend_from_slice(&a.request);
                encode_sent(a.key.as_key_ref(), &a.link, a.correlation, request, &to, a.at_unix_ms, w.0);
            }
            Self::Answered(a) => {
                w.u64(a.request).bytes(&a.code).u8(u8::from(a.switch_made));
                match a.auth {
                    Some(auth) => w.u8(1).bytes(&auth),
                    None => w.u8(0),
                };
                w.u64(a.at_unix_ms);
            }
            Self::ReversalQueued(r) => {
                w.u64(r.id).name(&r.destination).blob(&r.reversal).u64(r.queued_unix_ms);
                w.opt_key(r.original.as_ref()).opt_key(r.advice.as_ref());
            }
            Self::ReversalSent { id, attempt } => {
                w.u64(*id).u32(*attempt);
            }
            Self::ReversalAcked { id } => {
                w.u64(*id);
            }
            Self::ReversalAbandoned { id, attempts } => {
                w.u64(*id).u32(*attempts);
            }
            Self::SafRetried { id } | Self::SafDropped { id } => {
                w.u64(*id);
            }
            Self::Outcome(o) => encode_outcome(o.key.as_key_ref(), &o.outcome(), w.0),
            Self::Outcomes(os) => {
                // As many as one record holds: the rest are cut (a checkpoint writes its
                // outcomes through an `OutcomesWriter` of its own, a record at a time).
                let mut block = OutcomesWriter::begin(w.0);
                for o in os {
                    if block.push(o.key.as_key_ref(), &o.outcome(), w.0) {
                        break;
                    }
                }
                block.end(w.0);
            }
            Self::LateResponse { link, key, code, auth, reversal } => {
                w.name(link).u64(*key).bytes(code).u64(*reversal);
                match auth {
                    Some(auth) => w.u8(1).bytes(auth),
                    None => w.u8(0),
                };
            }
            Self::LinkEvent { link, up } => {
                w.name(link).u8(u8::from(*up));
            }
            Self::ConfigEvent { digest, participants, links } => {
                w.bytes(digest).u32(*participants).u32(*links);
            }
            Self::Audit { at_unix_ms, who, action, outcome } => {
                w.u64(*at_unix_ms).name(who).name(action).name(outcome);
            }
        }
    }

    /// The entry a record of `kind` holds.
    ///
    /// # Errors
    ///
    /// [`BadEntry`]: a payload that is not the kind's layout, or a kind without an entry yet.
    pub fn decode(kind: Kind, payload: &[u8]) -> Result<Self, BadEntry> {
        let mut r = R(payload);
        let e = (|| {
            let e = match kind {
                Kind::RequestAccepted => Self::Accepted(Accepted::read(&mut r)?),
                Kind::Forwarded => Self::Forwarded(Forwarded::read(&mut r, true)?),
                Kind::RequestForwarded => Self::Sent(Sent::read(&mut r)?),
                Kind::AnswerSent => Self::Answered(Answered::read(&mut r)?),
                Kind::ReversalQueued => Self::ReversalQueued(ReversalQueued {
                    id: r.u64()?,
                    destination: r.name()?,
                    reversal: r.blob()?,
                    queued_unix_ms: r.u64()?,
                    original: r.opt_key()?,
                    advice: r.opt_key()?,
                }),
                Kind::ReversalSent => Self::ReversalSent { id: r.u64()?, attempt: r.u32()? },
                Kind::ReversalAcked => Self::ReversalAcked { id: r.u64()? },
                Kind::ReversalAbandoned => Self::ReversalAbandoned { id: r.u64()?, attempts: r.u32()? },
                Kind::SafRetried => Self::SafRetried { id: r.u64()? },
                Kind::SafDropped => Self::SafDropped { id: r.u64()? },
                Kind::LateResponse => {
                    let (link, key, code, reversal) = (r.name()?, r.u64()?, r.array()?, r.u64()?);
                    let auth = match r.u8()? {
                        0 => None,
                        _ => Some(r.array()?),
                    };
                    Self::LateResponse { link, key, code, auth, reversal }
                }
                Kind::LinkEvent => Self::LinkEvent { link: r.name()?, up: r.u8()? == 1 },
                Kind::ConfigEvent => {
                    Self::ConfigEvent { digest: r.array()?, participants: r.u32()?, links: r.u32()? }
                }
                Kind::Audit => Self::Audit {
                    at_unix_ms: r.u64()?,
                    who: r.name()?,
                    action: r.name()?,
                    outcome: r.name()?,
                },
                Kind::Outcome => {
                    let (key, code, reversed, at_unix_ms) = (r.key()?, r.array()?, r.u8()? == 1, r.u64()?);
                    let auth = match r.u8()? {
                        0 => None,
                        _ => Some(r.array()?),
                    };
                    let sent_stan = match r.u8()? {
                        0 => None,
                        _ => Some(r.array()?),
                    };
                    Self::Outcome(OutcomeEntry { key, code, auth, reversed, at_unix_ms, sent_stan })
                }
                Kind::Outcomes => {
                    let mut os = Vec::new();
                    read_outcomes(r.take(r.0.len())?, |k, o| {
                        os.push(OutcomeEntry::new(k.to_owned_key(), o))
                    })?;
                    Self::Outcomes(os)
                }
                _ => return None,
            };
            r.end()?;
            Some(e)
        })();
        e.ok_or(BadEntry { kind })
    }
}

/// A key for tests: DE 7 1125221530, terminal TERM0001, DE 32 12345678.
#[doc(hidden)]
#[must_use]
pub fn key(participant: &str, class: u8, stan: u32) -> Key {
    Key {
        participant: participant.into(),
        class,
        stan,
        time: 1_125_221_530,
        terminal: *b"TERM0001",
        acquirer: institution_code(b"12345678"),
        forwarder: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_control_characters() {
        let out = one_line("expected `=`\n  |\n3 | oops\r\tend\u{1b}[31m");
        assert_eq!(out, "expected `=`\\n  |\\n3 | oops\\r\\tend\\u{1b}[31m");
        assert_eq!(one_line("plain text, é ü"), "plain text, é ü");
    }

    #[test]
    fn only_an_issuers_approval_relayed_is_one_to_mark() {
        let a = |code: &[u8; 2], switch_made| Answered {
            request: 1,
            code: *code,
            auth: None,
            switch_made,
            at_unix_ms: 0,
        };
        assert!(a(b"00", false).relays_approval());
        assert!(!a(b"05", false).relays_approval());
        assert!(!a(b"00", true).relays_approval(), "the switch never approves");
    }

    #[test]
    fn institution_codes_keep_the_length() {
        assert_ne!(institution_code(b"012"), institution_code(b"12"));
        assert_eq!(institution_code(b""), 0);
        assert_ne!(institution_code(b"12345678"), institution_code(b"12345679"));
    }

    fn all() -> Vec<Entry> {
        vec![
            Entry::Accepted(Accepted {
                key: key("wallet-sg", 2, 42),
                link: "wallet-sg-1".into(),
                correlation: 77,
                request: vec![1, 2, 3],
                at_unix_ms: 1_800_000_000_123,
            }),
            Entry::Forwarded(Forwarded {
                request: 9,
                destination: "napas-vn".into(),
                link: "napas-vn-1".into(),
                key: 5,
                sent_stan: *b"000005",
            }),
            Entry::Sent(Sent {
                accepted: Accepted {
                    key: key("wallet-sg", 2, 44),
                    link: "wallet-sg-2".into(),
                    correlation: 78,
                    request: vec![4; 200],
                    at_unix_ms: 1_800_000_000_124,
                },
                destination: "napas-vn".into(),
                out_link: "napas-vn-2".into(),
                out_key: 6,
                sent_stan: *b"000006",
            }),
            Entry::Answered(Answered {
                request: 9,
                code: *b"00",
                auth: Some(*b"A1B2C3"),
                switch_made: false,
                at_unix_ms: 1_800_000_000_456,
            }),
            Entry::Answered(Answered {
                request: 10,
                code: *b"92",
                auth: None,
                switch_made: true,
                at_unix_ms: 0,
            }),
            Entry::ReversalQueued(ReversalQueued {
                id: 3,
                destination: "napas-vn".into(),
                reversal: vec![9; 300],
                queued_unix_ms: 1_700_000_000_000,
                original: Some(key("wallet-sg", 2, 42)),
                advice: None,
            }),
            Entry::ReversalQueued(ReversalQueued {
                id: 5,
                destination: "napas-vn".into(),
                reversal: vec![9; 30],
                queued_unix_ms: 1,
                original: None,
                advice: Some(key("wallet-sg", 4, 43)),
            }),
            Entry::ReversalSent { id: 3, attempt: 1 },
            Entry::ReversalAcked { id: 3 },
            Entry::ReversalAbandoned { id: 4, attempts: 6 },
            Entry::SafRetried { id: 4 },
            Entry::SafDropped { id: 4 },
            Entry::LateResponse {
                link: "napas-vn-1".into(),
                key: 9,
                code: *b"00",
                auth: Some(*b"A1B2C3"),
                reversal: 12,
            },
            Entry::LateResponse { link: "napas-vn-1".into(), key: 10, code: *b"05", auth: None, reversal: 0 },
            Entry::LinkEvent { link: "napas-vn-1".into(), up: true },
            Entry::ConfigEvent { digest: [7; 32], participants: 3, links: 4 },
            Entry::Audit {
                at_unix_ms: 1_800_000_000_000,
                who: "token admin.token from 127.0.0.1:50000".into(),
                action: "POST /reload".into(),
                outcome: "ok".into(),
            },
            Entry::Outcome(OutcomeEntry {
                key: key("wallet-sg", 2, 42),
                code: *b"00",
                auth: Some(*b"A1B2C3"),
                reversed: true,
                at_unix_ms: 7,
                sent_stan: Some(*b"000123"),
            }),
        ]
    }

    #[test]
    fn a_request_sent_in_one_record_is_the_two_records_it_stands_for() {
        let Some(Entry::Sent(sent)) = all().into_iter().find(|e| matches!(e, Entry::Sent(_))) else {
            panic!("no Sent among the entries");
        };
        let parts: Vec<Entry> = Entry::Sent(sent.clone()).split(12).collect();
        let forwarded = Forwarded {
            request: 12,
            destination: "napas-vn".into(),
            link: "napas-vn-2".into(),
            key: 6,
            sent_stan: *b"000006",
        };
        assert_eq!(parts, [Entry::Accepted(sent.accepted.clone()), Entry::Forwarded(forwarded)]);
        let other = Entry::ReversalAcked { id: 3 };
        assert_eq!(other.clone().split(12).collect::<Vec<_>>(), [other]);
        // Read for a fold: the key and STAN, borrowed; every other length checked.
        let mut p = Vec::new();
        Entry::Sent(sent.clone()).encode(&mut p);
        let read = request_key(Kind::RequestForwarded, &p).unwrap();
        assert_eq!(read, RequestKey { key: sent.accepted.key.as_key_ref(), sent_stan: Some(*b"000006") });
        for cut in 0..p.len() {
            assert!(request_key(Kind::RequestForwarded, &p[..cut]).is_err(), "cut at {cut}");
        }
        assert!(request_key(Kind::RequestForwarded, &[p.as_slice(), &[0]].concat()).is_err());
        assert!(request_key(Kind::RequestAccepted, &p).is_err(), "a forwarded one is not an accepted one");
        assert!(request_key(Kind::Forwarded, &p).is_err());
        // Its layout is the accepted request's with the forward's fields before its time.
        let mut accepted = Vec::new();
        Entry::Accepted(sent.accepted.clone()).encode(&mut accepted);
        assert_eq!(p[..accepted.len() - 8], accepted[..accepted.len() - 8]);
        assert_eq!(p[p.len() - 8..], accepted[accepted.len() - 8..]);
    }

    #[test]
    fn a_fold_reads_a_requests_key_and_only_the_lengths_of_the_rest() {
        let Some(Entry::Accepted(a)) = all().into_iter().find(|e| matches!(e, Entry::Accepted(_))) else {
            panic!("no Accepted among the entries");
        };
        let mut p = Vec::new();
        Entry::Accepted(a.clone()).encode(&mut p);
        let whole = RequestKey { key: a.key.as_key_ref(), sent_stan: None };
        assert_eq!(request_key(Kind::RequestAccepted, &p), Ok(whole));
        for cut in 0..p.len() {
            // A record written before the time field ends where it begins.
            let read = request_key(Kind::RequestAccepted, &p[..cut]);
            assert_eq!(read.is_ok(), cut == p.len() - 8, "cut at {cut}");
        }
        // A link name that is not UTF-8: the fold passes over its bytes; a whole read of
        // the record (the request still open) refuses it.
        // (The key: the id's length and bytes, then 37 bytes; then the link's length.)
        let link = 1 + a.key.participant.len() + 37 + 1;
        assert_eq!(&p[link..link + a.link.len()], a.link.as_bytes());
        p[link] = 0xFF;
        assert_eq!(request_key(Kind::RequestAccepted, &p), Ok(whole));
        assert!(Entry::decode(Kind::RequestAccepted, &p).is_err());
        // The participant's id is read, so checked.
        let mut q = Vec::new();
        Entry::Accepted(a.clone()).encode(&mut q);
        q[1] = 0xFF;
        assert!(request_key(Kind::RequestAccepted, &q).is_err());
    }

    #[test]
    fn every_entry_round_trips_and_a_cut_or_padded_payload_is_refused() {
        for e in all() {
            let mut p = Vec::new();
            e.encode(&mut p);
            assert_eq!(Entry::decode(e.kind(), &p), Ok(e.clone()));
            // Records written before their time field was added end where it begins: they
            // decode, with no time.
            let older = match &e {
                Entry::Accepted(a) => Some(Entry::Accepted(Accepted { at_unix_ms: 0, ..a.clone() })),
                Entry::Answered(a) => Some(Entry::Answered(Answered { at_unix_ms: 0, ..a.clone() })),
                _ => None,
            };
            for cut in 0..p.len() {
                match &older {
                    Some(o) if cut == p.len() - 8 => {
                        assert_eq!(Entry::decode(e.kind(), &p[..cut]).as_ref(), Ok(o), "the older layout");
                    }
                    _ => assert!(Entry::decode(e.kind(), &p[..cut]).is_err(), "{e:?} cut at {cut}"),
                }
            }
            if let Entry::Answered(a) = &e {
                // A fold's look ahead reads the request it answers, and only that.
                assert_eq!(Answered::request_of(&p), Some(a.request));
                assert_eq!(Answered::request_of(&p[..8]), Some(a.request));
                assert_eq!(Answered::request_of(&p[..7]), None);
            }
            p.push(0);
            assert!(Entry::decode(e.kind(), &p).is_err(), "{e:?} with a byte too many");
        }
        assert_eq!(Entry::decode(Kind::Checkpoint, &[]), Err(BadEntry { kind: Kind::Checkpoint }));
    }

    /// Outcomes written as a checkpoint writes them: records begun, filled until one says
    /// it is full, and closed; each record's payload.
    fn outcome_records(all: &[(Key, crate::recovery::Outcome)]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        let mut it = all.iter().peekable();
        while it.peek().is_some() {
            let mut payload = Vec::new();
            let mut w = OutcomesWriter::begin(&mut payload);
            for (k, o) in it.by_ref() {
                if w.push(k.as_key_ref(), o, &mut payload) {
                    break;
                }
            }
            w.end(&mut payload);
            records.push(payload);
        }
        records
    }

    fn read_back(records: &[Vec<u8>]) -> Vec<(Key, crate::recovery::Outcome)> {
        let mut back = Vec::new();
        for p in records {
            read_outcomes(p, |k, o| back.push((k.to_owned_key(), o))).expect("the layout");
        }
        back
    }

    /// Participants' ids: short, long (255 bytes: the most a name holds) and not ASCII.
    fn participant(i: usize) -> String {
        match i % 7 {
            0 => "x".repeat(255),
            1 => format!("réseau-{i}"),
            _ => format!("p{i}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn outcomes_many_to_a_record_read_back_as_written(
            all in proptest::collection::vec(
                (
                    0usize..40,
                    proptest::prelude::any::<(u8, u32, u64, [u8; 8])>(),
                    proptest::prop_oneof![proptest::strategy::Just(12_345_678u64), proptest::prelude::any::<u64>()],
                    proptest::prop_oneof![proptest::strategy::Just(0u64), proptest::prelude::any::<u64>()],
                    proptest::prelude::any::<([u8; 2], Option<[u8; 6]>, bool, u64, Option<[u8; 6]>)>(),
                ),
                0..400,
            )
        ) {
            let all: Vec<(Key, crate::recovery::Outcome)> = all
                .into_iter()
                .map(|(p, (class, stan, time, terminal), acquirer, forwarder, (code, auth, reversed, at_unix_ms, sent_stan))| {
                    let key = Key { participant: participant(p), class, stan, time, terminal, acquirer, forwarder };
                    (key, crate::recovery::Outcome { code, auth, reversed, at_unix_ms, sent_stan })
                })
                .collect();
            let records = outcome_records(&all);
            for p in &records {
                proptest::prop_assert!(p.len() <= crate::limits::OUTCOMES_RECORD_BYTES + crate::limits::OUTCOME_BYTES_MAX);
            }
            proptest::prop_assert_eq!(read_back(&records), all);
        }
    }

    #[test]
    fn a_record_of_outcomes_is_closed_at_its_size_and_is_about_two_fifths_of_outcome_records() {
        // A window's worth, as the switch answers them: a few participants, times close
        // together.
        let all: Vec<(Key, crate::recovery::Outcome)> = (0..20_000u32)
            .map(|i| {
                let mut k = key(["acq", "wallet", "qr-net"][i as usize % 3], 2, i % 1_000_000);
                k.time += u64::from(i / 1_000);
                let o = crate::recovery::Outcome {
                    code: *b"00",
                    auth: Some(*b"A1B2C3"),
                    reversed: i % 100 == 0,
                    at_unix_ms: 1_796_000_000_000 + u64::from(i / 50),
                    sent_stan: Some(*b"000123"),
                };
                (k, o)
            })
            .collect();
        let records = outcome_records(&all);
        assert!(records.len() > 2);
        let (last, full) = records.split_last().unwrap();
        for p in full {
            assert!((crate::limits::OUTCOMES_RECORD_BYTES
                ..crate::limits::OUTCOMES_RECORD_BYTES + crate::limits::OUTCOME_BYTES_MAX)
                .contains(&p.len()));
        }
        assert!(last.len() < crate::limits::OUTCOMES_RECORD_BYTES + crate::limits::OUTCOME_BYTES_MAX);
        assert_eq!(read_back(&records), all);
        // Against one `Outcome` record each (its payload, and a record's 17 bytes around it).
        let (mut one_each, mut many) = (0, 0);
        for (k, o) in &all {
            let mut p = Vec::new();
            encode_outcome(k.as_key_ref(), o, &mut p);
            one_each += p.len() + 17;
        }
        for p in &records {
            many += p.len() + 17;
        }
        assert!(many * 10 < one_each * 5, "{many} bytes against {one_each}");
        // And through the entry: what a reader of any record (a tool) sees.
        let entry = Entry::decode(Kind::Outcomes, &records[0]).unwrap();
        let Entry::Outcomes(os) = &entry else { panic!("{entry:?}") };
        assert_eq!(os.iter().map(|o| (o.key.clone(), o.outcome())).collect::<Vec<_>>(), all[..os.len()]);
        let mut p = Vec::new();
        entry.encode(&mut p);
        assert_eq!(p, records[0]);
    }

    #[test]
    fn a_record_of_outcomes_that_is_not_its_layout_is_refused() {
        let o = |i: u32| crate::recovery::Outcome {
            code: *b"05",
            auth: None,
            reversed: false,
            at_unix_ms: u64::from(i),
            sent_stan: Some(*b"000001"),
        };
        let all = [(key("acq", 2, 1), o(1)), (key("iss", 2, 2), o(2)), (key("acq", 4, 3), o(3))];
        let records = outcome_records(&all);
        let p = &records[0];
        assert_eq!(read_back(&records), all);
        let refused =
            |p: &[u8]| read_outcomes(p, |_, _| {}).is_none() && Entry::decode(Kind::Outcomes, p).is_err();
        for cut in 0..p.len() {
            assert!(refused(&p[..cut]), "cut at {cut}");
        }
        assert!(refused(&[p.as_slice(), &[0]].concat()), "a byte too many");
        // The first outcome: its flags at 2, its participant's number at 3.
        let mut flags = p.clone();
        flags[2] |= 1 << 5;
        assert!(refused(&flags), "an unknown flag");
        let mut ahead = p.clone();
        ahead[3] = 1;
        assert!(refused(&ahead), "a participant numbered before the one before it");
        let mut not_utf8 = p.clone();
        not_utf8[5] = 0xFF;
        assert!(refused(&not_utf8), "a participant's id that is not UTF-8");
        // Varints: at most ten bytes, the tenth only the 64th bit.
        let mut r = R(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert_eq!(r.varint(), Some(u64::MAX));
        assert_eq!(R(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]).varint(), None);
        assert_eq!(R(&[0x80; 11]).varint(), None);
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            varint(v, &mut b);
            assert_eq!(R(&b).varint(), Some(v));
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!([zigzag(0), zigzag(u64::MAX), zigzag(1)], [0, 1, 2], "small either way");
    }
}
