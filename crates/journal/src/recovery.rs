//! What a journal says is still owed, folded from its entries in order (sans-IO):
//!
//! - **open requests**: accepted and forwarded, never answered — the destination may have
//!   approved them; a restart reverses each toward its destination;
//! - **unanswered requests**: accepted, never forwarded nor answered (the switch stopped
//!   between the two records) — nothing reached a destination; nothing to reverse;
//! - **store-and-forward**: reversals and advices queued and neither acknowledged nor moved
//!   to the exception queue — they resume;
//! - **exceptions**: entries given up after their repeat or age limit, until an operator
//!   retries or drops them;
//! - **outcomes**: answered requests by duplicate key, the window a repeat is answered from,
//!   bounded by [`OUTCOMES_MAX`] (the oldest forgotten first).
//!
//! A **checkpoint** is this state written as records ([`Recovery::checkpoint`]): the
//! requests and entries still open with their own sequence numbers, and the outcomes. Read
//! back ([`Recovery::from_checkpoint`]) and followed by the log after it, it gives the same
//! state as the whole log, so recovery reads a bounded amount whatever the log's length.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;

use crate::{
    entry::{Accepted, Entry, Forwarded, Key, KeyRef, ReversalQueued},
    limits::OUTCOMES_MAX,
    positions::{PositionIndex, HELD_MASK},
    record::{decode, encode, encode_with, Decoded, Kind, RecordRef},
};

/// A request the journal saw accepted, with what happened to it since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestState {
    /// The `Accepted` entry.
    pub accepted: Accepted,
    /// Its `Forwarded` entry, if it was forwarded.
    pub forwarded: Option<Forwarded>,
}

/// The duplicate key of an accepted request: participant, MTI class, DE 11, DE 7, DE 41.
pub type DupKey = Key;

/// A completed request's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// DE 39.
    pub code: [u8; 2],
    /// DE 38.
    pub auth: Option<[u8; 6]>,
    /// Whether it was reversed (by the switch, or a participant's reversal of it is stored).
    pub reversed: bool,
    /// When it was answered, Unix milliseconds (an upper bound: the time its segment ended).
    pub at_unix_ms: u64,
    /// The STAN its destination saw (for a reversal of it that names it in DE 90).
    pub sent_stan: Option<[u8; 6]>,
}

/// How a checkpoint writes its outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutcomesFormat {
    /// Many to an `Outcomes` record (about 0.4× the bytes; [`crate::entry::OutcomesWriter`]).
    #[default]
    Compact,
    /// An `Outcome` record each, as checkpoints were written before `Outcomes` records: what
    /// a build before them reads (a node of one that may still take a shard over, a
    /// switch one may go back to).
    Records,
}

impl OutcomesFormat {
    /// Bytes a checkpoint's outcome takes in this format with a participant's id of up to
    /// 16 bytes, its fields at the lengths a switch's traffic gives them (a checkpoint's
    /// buffer is made with room for a window of them, and grows if it needs more).
    #[must_use]
    pub const fn room(self) -> usize {
        match self {
            // Its fields with their longest varints, and each record's frame a share.
            Self::Compact => 48,
            // The key's 37 bytes and the id, the outcome's 32, the record's 17.
            Self::Records => 108,
        }
    }
}

/// A participant's id as [`Outcomes`] hold it: its number among the ids they have seen.
type Name = u32;

/// An outcome's key as [`Outcomes`] hold it: a [`DupKey`] with its participant's id numbered
/// ([`Names`]).
type HeldKey = Key<Name>;

/// The participants' ids [`Outcomes`] have seen, numbered in the order seen: a key holds its
/// id's number, not a copy of the id — which was an allocation a transaction (freed a
/// million transactions later, out of the cache) and a second cache line to compare a key
/// (`benches/README.md`, the thirteenth pass). As many as the participants the journal
/// names: the directory's ids over the journal's life (renumbered when the window is
/// rebuilt, [`Outcomes::expire`], dropping those no outcome holds).
#[derive(Clone, Debug, Default)]
struct Names {
    numbers: FxHashMap<Box<str>, Name>,
    ids: Vec<Box<str>>,
}

impl Names {
    /// The number of participant `id`, numbered now if it was not yet.
    fn number(&mut self, id: &str) -> Name {
        if let Some(&n) = self.numbers.get(id) {
            return n;
        }
        // A number for each id the journal names: far fewer than 2^32.
        let n = Name::try_from(self.ids.len()).unwrap_or(Name::MAX);
        self.ids.push(id.into());
        self.numbers.insert(id.into(), n);
        n
    }

    /// The number of participant `id`, if it has one.
    fn find(&self, id: &str) -> Option<Name> {
        self.numbers.get(id).copied()
    }

    /// The id numbered `n`.
    fn id(&self, n: Name) -> &str {
        self.ids.get(n as usize).map_or("", |id| id)
    }
}

/// Outcomes by key, in the order they were recorded, bounded by [`OUTCOMES_MAX`]: a queue
/// of entries, oldest first, and a hash index of their positions (each key kept once — a
/// million of them are what a checkpoint holds — and one probe of one cache line to find
/// one, [`PositionIndex`]).
#[derive(Clone, Debug)]
pub struct Outcomes {
    /// Most entries: [`OUTCOMES_MAX`] (fewer in tests).
    cap: usize,
    /// The participants' ids the keys hold numbers of.
    names: Names,
    entries: VecDeque<(HeldKey, Outcome)>,
    /// Each entry's hash, in the same order: the oldest leaves the index without its key
    /// read again (long out of the cache).
    hashes: VecDeque<u64>,
    /// The position of `entries[0]` since the first entry: positions outlive the entries
    /// before them leaving, so the index needs no update when the oldest goes. The index
    /// holds them modulo 2^31 ([`held`]).
    first: usize,
    index: PositionIndex,
}

/// Pushes ahead of its eviction that a full window asks for an entry's index line.
const EVICT_AHEAD: usize = 16;

/// Records ahead that a segment's fold asks for the index line of an answer's key
/// ([`Recovery::apply_segment`]): some four answers, a microsecond or so of work, the time a
/// line takes to come from memory.
const ANSWER_AHEAD: usize = 8;

// The position a held one stands for is the one of its bits at or after `first`.
const _: () = assert!((OUTCOMES_MAX as u64) < HELD_MASK);

/// Position `at` as the index holds it.
fn held(at: usize) -> u32 {
    crate::positions::held(at as u64)
}

impl Default for Outcomes {
    fn default() -> Self {
        Self::with_bound(OUTCOMES_MAX)
    }
}

impl PartialEq for Outcomes {
    fn eq(&self, other: &Self) -> bool {
        // The index is made of the entries; two may number the same ids differently.
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Outcomes {}

fn hash(key: &HeldKey) -> u64 {
    use std::hash::BuildHasher as _;
    rustc_hash::FxBuildHasher.hash_one(key)
}

impl Outcomes {
    /// None yet, at most `cap` (at most [`OUTCOMES_MAX`]).
    fn with_bound(cap: usize) -> Self {
        Self {
            cap: cap.clamp(1, OUTCOMES_MAX),
            names: Names::default(),
            entries: VecDeque::new(),
            hashes: VecDeque::new(),
            first: 0,
            index: PositionIndex::default(),
        }
    }

    /// Room for the bound's entries, made now: a process that keeps its state from one
    /// checkpoint to the next (`corridor-net`'s checkpointer) fills the window once, and a
    /// queue and index doubled on the way there copied what they held each time into pages
    /// the kernel zeroed — a third of the checkpointer's first minute under load
    /// (`benches/README.md`, the eleventh pass). Address space only until entries come.
    pub fn reserve_bound(&mut self) {
        let more = self.cap.saturating_sub(self.entries.len());
        self.entries.reserve(more);
        self.hashes.reserve(more);
        self.index.reserve(self.cap);
    }

    /// The position a position the index holds stands for.
    fn unheld(&self, p: u32) -> usize {
        self.first + ((p as usize).wrapping_sub(self.first) & HELD_MASK as usize)
    }

    /// `key` as held, its participant's id numbered (now, if it was not yet).
    fn held(&mut self, key: KeyRef<'_>) -> HeldKey {
        key.with_participant(self.names.number(key.participant))
    }

    /// The entry at position `at`.
    fn at(&self, at: usize) -> &(HeldKey, Outcome) {
        &self.entries[at - self.first]
    }

    /// See [`Outcomes::at`].
    fn at_mut(&mut self, at: usize) -> &mut (HeldKey, Outcome) {
        &mut self.entries[at - self.first]
    }

    /// The position of `key`'s entry.
    fn position(&self, key: &HeldKey) -> Option<usize> {
        self.position_hashed(hash(key), key)
    }

    /// [`Outcomes::position`], its hash `h`.
    fn position_hashed(&self, h: u64, key: &HeldKey) -> Option<usize> {
        self.index.find(h, |p| self.at(self.unheld(p)).0 == *key).map(|p| self.unheld(p))
    }

    /// Records `key`'s outcome, forgetting the oldest at the bound.
    pub fn insert(&mut self, key: KeyRef<'_>, outcome: Outcome) {
        let key = self.held(key);
        self.insert_held(key, outcome);
    }

    /// [`Outcomes::insert`] of a key as held.
    fn insert_held(&mut self, key: HeldKey, outcome: Outcome) {
        let h = hash(&key);
        if let Some(at) = self.position_hashed(h, &key) {
            self.at_mut(at).1 = outcome;
            return;
        }
        self.push(h, key, outcome);
    }

    /// Records the outcome `key`'s answer gives — unless `key` was reversed before it was
    /// answered (the switch journals a reversal before the answer it makes): then it stays
    /// reversed, and a repeat is told 68. One probe, where a look for the reversal and then
    /// an insert were two (every answer of a fold comes here). `h` is `key`'s hash, its
    /// line asked for a few records before ([`Outcomes::prefetch`]).
    fn answer(&mut self, h: u64, key: HeldKey, outcome: Outcome) {
        debug_assert_eq!(h, hash(&key));
        if let Some(at) = self.position_hashed(h, &key) {
            let o = &mut self.at_mut(at).1;
            *o = if o.reversed {
                Outcome { code: *b"68", auth: None, reversed: true, ..outcome }
            } else {
                outcome
            };
            return;
        }
        self.push(h, key, outcome);
    }

    /// Asks for the line a search for the key hashed `h` begins in
    /// ([`PositionIndex::prefetch`]).
    fn prefetch(&self, h: u64) {
        self.index.prefetch(h);
    }

    /// Records `key` (hashed `h`, not held yet) last, forgetting the oldest at the bound.
    fn push(&mut self, h: u64, key: HeldKey, outcome: Outcome) {
        debug_assert!(self.position_hashed(h, &key).is_none(), "a key is held once");
        if self.entries.len() >= self.cap {
            // The one forgotten `EVICT_AHEAD` pushes from now: its removal's line is asked
            // for now, and in the cache by then.
            if let Some(&ahead) = self.hashes.get(EVICT_AHEAD) {
                self.index.prefetch(ahead);
            }
        }
        while self.entries.len() >= self.cap {
            let (Some(_), Some(old)) = (self.entries.pop_front(), self.hashes.pop_front()) else { break };
            let removed = self.index.remove(old, held(self.first));
            debug_assert!(removed, "every entry is in the index");
            self.first += 1;
        }
        let at = self.first + self.entries.len();
        self.index.insert(h, held(at));
        self.entries.push_back((key, outcome));
        self.hashes.push_back(h);
    }

    /// Marks `key` reversed (a repeat of it is then told 68): the outcome a reversal's
    /// record refers to, or a new one when it was already forgotten.
    fn mark_reversed(&mut self, key: KeyRef<'_>, at_unix_ms: u64) {
        let key = self.held(key);
        match self.position(&key) {
            Some(at) => self.at_mut(at).1.reversed = true,
            None => {
                let o = Outcome { code: *b"68", auth: None, reversed: true, at_unix_ms, sent_stan: None };
                self.insert_held(key, o);
            }
        }
    }

    /// Forgets what was answered before `oldest_unix_ms` (the index made again, and the ids
    /// numbered again: once a checkpoint).
    pub fn expire(&mut self, oldest_unix_ms: u64) {
        let before = self.entries.len();
        self.entries.retain(|(_, o)| o.at_unix_ms >= oldest_unix_ms);
        if self.entries.len() == before {
            return;
        }
        let old = std::mem::take(&mut self.names);
        for (key, _) in &mut self.entries {
            key.participant = self.names.number(old.id(key.participant));
        }
        self.first = 0;
        self.index.clear();
        self.hashes.clear();
        for (at, (key, _)) in self.entries.iter().enumerate() {
            let h = hash(key);
            self.index.insert(h, held(at));
            self.hashes.push_back(h);
        }
    }

    /// The outcome of `key`.
    #[must_use]
    pub fn get(&self, key: KeyRef<'_>) -> Option<&Outcome> {
        let key = key.with_participant(self.names.find(key.participant)?);
        self.position(&key).map(|at| &self.at(at).1)
    }

    /// Outcomes kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every outcome, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (KeyRef<'_>, &Outcome)> {
        self.entries.iter().map(|(k, o)| (k.with_participant(self.names.id(k.participant)), o))
    }
}

/// A request a segment being folded accepted (see [`Recovery::apply_segment`]): its
/// duplicate key as the outcomes hold it, its `Accepted` record's index, its last `Forwarded`
/// record's with the STAN it says, and the key's hash (its index line asked for a few
/// records before its answer, [`ANSWER_AHEAD`]).
type Pending = (HeldKey, usize, Option<(usize, [u8; 6])>, u64);

/// A store-and-forward entry and the transmissions made of it.
pub type SafState = (ReversalQueued, u32);

/// What the log says is owed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Requests not answered, by the sequence number of their `Accepted` record.
    pub requests: BTreeMap<u64, RequestState>,
    /// Store-and-forward entries not finished, by id (their `ReversalQueued` record's
    /// sequence number), with the transmissions made.
    pub reversals: BTreeMap<u64, SafState>,
    /// The exception queue: entries given up, by id, with the transmissions made.
    pub exceptions: BTreeMap<u64, SafState>,
    /// Answered requests' outcomes, by duplicate key.
    pub outcomes: Outcomes,
    /// Entries that refer to a record the log does not hold (before a checkpoint or a
    /// retention cut): counted, not acted on.
    pub orphans: u64,
    /// The last sequence number folded in (0: none).
    pub last_seq: u64,
    /// In a cluster, the last record whose gated frames the shard's last owner released
    /// (`None`: not known, and every answer counts as given). An approval recorded after it
    /// may never have reached its originator — its batch reached the stream as its node
    /// died, before the acknowledgement came back — so it is left open, and reversed.
    pub released: Option<u64>,
    /// Approvals recorded after [`Recovery::released`], left open.
    pub unreleased: u64,
}

/// A checkpoint that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadCheckpoint {
    /// Where (byte offset).
    pub offset: usize,
    /// What.
    pub reason: &'static str,
}

impl std::fmt::Display for BadCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkpoint damaged at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for BadCheckpoint {}

impl Recovery {
    /// Folds one record in, recorded at most at `at_unix_ms`. Records must come in sequence
    /// order.
    ///
    /// # Errors
    ///
    /// A payload that is not its kind's layout ([`crate::entry::BadEntry`]).
    pub fn apply(
        &mut self,
        seq: u64,
        record: &RecordRef<'_>,
        at_unix_ms: u64,
    ) -> Result<(), crate::entry::BadEntry> {
        match record.kind {
            Kind::Checkpoint => return Ok(()),
            Kind::Outcomes => {
                // Read in place: a checkpoint holds a million of them.
                self.last_seq = self.last_seq.max(seq);
                let outcomes = &mut self.outcomes;
                return crate::entry::read_outcomes(record.payload, |k, o| outcomes.insert(k, o))
                    .ok_or(crate::entry::BadEntry { kind: Kind::Outcomes });
            }
            _ => {}
        }
        let entry = Entry::decode(record.kind, record.payload)?;
        self.apply_entry(seq, entry, at_unix_ms);
        Ok(())
    }

    /// Reads one record of a checkpoint in: as [`Recovery::apply`], but a queued reversal
    /// marks no outcome. A checkpoint states every outcome as it is, in the window's order,
    /// after the entries; marked again as they were read, the outcomes a queued reversal
    /// names went to the front of the window (the oldest, forgotten first once it is full)
    /// wherever they stood — a repeat of such a request could then meet no outcome after a
    /// restart, within its duplicate window.
    fn apply_checkpoint_record(&mut self, record: &RecordRef<'_>) -> Result<(), crate::entry::BadEntry> {
        if record.kind != Kind::ReversalQueued {
            return self.apply(record.seq, record, 0);
        }
        let Entry::ReversalQueued(q) = Entry::decode(record.kind, record.payload)? else {
            return Err(crate::entry::BadEntry { kind: record.kind });
        };
        self.last_seq = self.last_seq.max(record.seq);
        self.reversals.insert(q.id, (q, 0));
        Ok(())
    }

    /// Folds the records of one segment after `self.last_seq` in, made at most at
    /// `at_unix_ms`: as [`Recovery::apply`] of each, except that what only an open request
    /// needs — its sealed bytes, its link, where it was forwarded — is read only for the
    /// requests still open at the end of the segment (nearly every request is answered a
    /// few records after it was accepted: a checkpoint's fold then copies none of it), and a
    /// request the segment also answers (and whose answer is taken as given) never enters
    /// [`Recovery::requests`]: its outcome is made from its records where they lie.
    ///
    /// # Errors
    ///
    /// The first payload that is not its kind's layout.
    pub fn apply_segment(
        &mut self,
        records: &[crate::segment::Found<'_>],
        at_unix_ms: u64,
    ) -> Result<(), crate::entry::BadEntry> {
        self.apply_segment_pausing(records, at_unix_ms, &mut || {})
    }

    /// [`Recovery::apply_segment`], calling `pause` after every
    /// [`crate::limits::PAUSE_RECORDS`] records
    /// (a checkpoint's thread gives the core back there).
    ///
    /// # Errors
    ///
    /// As [`Recovery::apply_segment`].
    pub fn apply_segment_pausing(
        &mut self,
        records: &[crate::segment::Found<'_>],
        at_unix_ms: u64,
        pause: &mut dyn FnMut(),
    ) -> Result<(), crate::entry::BadEntry> {
        // The requests this segment accepted and has not answered yet: each one's key, its
        // `Accepted` record and its last `Forwarded` one (by index), with the STAN that one
        // says its destination saw. Those it answers never enter `requests`; the rest do at
        // its end.
        let mut pending: FxHashMap<u64, Pending> = FxHashMap::default();
        // A `Forwarded` record, read in part, of a request folded before this segment: the
        // request's sequence number and the record's index.
        let mut deferred: Vec<(u64, usize)> = Vec::new();
        for (i, f) in records.iter().enumerate() {
            crate::pause_after(i, pause);
            // The answer a few records on looks its key up among a million outcomes: its
            // line is asked for now. (Asked for as its request was read — a thousand
            // transactions earlier — the line was gone by then wherever the fold shares its
            // core and caches with a running switch, and waited for: ~30% of the checkpointer's
            // time, `benches/README.md`, the thirteenth pass.)
            if let Some(ahead) = records.get(i + ANSWER_AHEAD).filter(|a| a.record.kind == Kind::AnswerSent) {
                if let Some((.., h)) =
                    crate::entry::Answered::request_of(ahead.record.payload).and_then(|r| pending.get(&r))
                {
                    self.outcomes.prefetch(*h);
                }
            }
            let seq = f.record.seq;
            if seq <= self.last_seq {
                continue;
            }
            match f.record.kind {
                kind @ (Kind::RequestAccepted | Kind::RequestForwarded) => {
                    // Its key read, the rest's layout checked; read whole only if it is
                    // still open at the end. A `RequestForwarded` one is forwarded by itself.
                    let read = crate::entry::request_key(kind, f.record.payload)?;
                    let key = self.outcomes.held(read.key);
                    let forwarded = read.sent_stan.map(|stan| (i, stan));
                    pending.insert(seq, (key, i, forwarded, hash(&key)));
                    self.last_seq = seq;
                }
                Kind::Forwarded => {
                    let fw = Forwarded::decode_deferred(f.record.payload)?;
                    if let Some((_, _, forwarded, _)) = pending.get_mut(&fw.request) {
                        *forwarded = Some((i, fw.sent_stan));
                        self.last_seq = seq;
                    } else {
                        deferred.push((fw.request, i));
                        self.apply_entry(seq, Entry::Forwarded(fw), at_unix_ms);
                    }
                }
                Kind::AnswerSent => {
                    let a = crate::entry::Answered::decode(f.record.payload)?;
                    match pending.remove(&a.request) {
                        // After the release mark an approval may leave its request open:
                        // folded as record by record.
                        Some(p) if self.released.is_some_and(|r| seq > r) => {
                            self.open_request(a.request, p, records)?;
                            self.apply_entry(seq, Entry::Answered(a), at_unix_ms);
                        }
                        Some((key, _, forwarded, h)) => {
                            self.last_seq = seq;
                            self.answered(h, key, &a, forwarded.map(|(_, stan)| stan), at_unix_ms);
                        }
                        None => self.apply_entry(seq, Entry::Answered(a), at_unix_ms),
                    }
                }
                _ => self.apply(seq, &f.record, at_unix_ms)?,
            }
        }
        for (request, p) in pending {
            self.open_request(request, p, records)?;
        }
        for (request, i) in deferred {
            let Some(r) = self.requests.get_mut(&request) else { continue };
            // Still open: read whole (to reverse it, or to write it in a checkpoint).
            if let Entry::Forwarded(fw) = Entry::decode(Kind::Forwarded, records[i].record.payload)? {
                r.forwarded = Some(fw);
            }
        }
        Ok(())
    }

    /// Request `request` of a segment being folded, still open: into
    /// [`Recovery::requests`], its records read whole.
    fn open_request(
        &mut self,
        request: u64,
        (_, at, forwarded, _): Pending,
        records: &[crate::segment::Found<'_>],
    ) -> Result<(), crate::entry::BadEntry> {
        let r = &records[at].record;
        let (accepted, own) = match Entry::decode(r.kind, r.payload)? {
            Entry::Accepted(a) => (a, None),
            Entry::Sent(s) => {
                let (a, f) = s.into_parts(request);
                (a, Some(f))
            }
            _ => return Ok(()),
        };
        // A `Forwarded` record of its own after it (none follows a `RequestForwarded` one as
        // the switch writes them, but the last forward is the one that counts).
        let forwarded = match forwarded {
            Some((i, _)) if i != at => match Entry::decode(Kind::Forwarded, records[i].record.payload)? {
                Entry::Forwarded(fw) => Some(fw),
                _ => None,
            },
            _ => own,
        };
        self.requests.insert(request, RequestState { accepted, forwarded });
        Ok(())
    }

    /// The outcome of the request whose duplicate key is `key` (hashed `h`), answered by `a`
    /// (taken as given), its destination told `sent_stan` if it was forwarded.
    fn answered(
        &mut self,
        h: u64,
        key: HeldKey,
        a: &crate::entry::Answered,
        sent_stan: Option<[u8; 6]>,
        at_unix_ms: u64,
    ) {
        self.outcomes.answer(
            h,
            key,
            Outcome { code: a.code, auth: a.auth, reversed: false, at_unix_ms, sent_stan },
        );
    }

    /// Folds one decoded entry in (see [`Recovery::apply`]).
    fn apply_entry(&mut self, seq: u64, entry: Entry, at_unix_ms: u64) {
        self.last_seq = self.last_seq.max(seq);
        match entry {
            Entry::Accepted(a) => {
                self.requests.insert(seq, RequestState { accepted: a, forwarded: None });
            }
            Entry::Forwarded(f) => match self.requests.get_mut(&f.request) {
                Some(r) => r.forwarded = Some(f),
                None => self.orphans += 1,
            },
            Entry::Sent(s) => {
                let (accepted, forwarded) = s.into_parts(seq);
                self.requests.insert(seq, RequestState { accepted, forwarded: Some(forwarded) });
            }
            Entry::Answered(a) if self.unreleased_approval(seq, &a) => self.unreleased += 1,
            Entry::Answered(a) => match self.requests.remove(&a.request) {
                Some(r) => {
                    let sent_stan = r.forwarded.as_ref().map(|f| f.sent_stan);
                    let key = self.outcomes.held(r.accepted.key.as_key_ref());
                    self.answered(hash(&key), key, &a, sent_stan, at_unix_ms);
                }
                None => self.orphans += 1,
            },
            Entry::ReversalQueued(q) => {
                if let Some(k) = &q.original {
                    self.outcomes.mark_reversed(k.as_key_ref(), at_unix_ms);
                }
                if let Some(k) = &q.advice {
                    let o =
                        Outcome { code: *b"00", auth: None, reversed: false, at_unix_ms, sent_stan: None };
                    self.outcomes.insert(k.as_key_ref(), o);
                }
                self.reversals.insert(q.id, (q, 0));
            }
            Entry::ReversalSent { id, attempt } => match self.reversals.get_mut(&id) {
                Some((_, n)) => *n = (*n).max(attempt + 1),
                None => self.orphans += 1,
            },
            Entry::ReversalAcked { id } => {
                if self.reversals.remove(&id).is_none() {
                    self.orphans += 1;
                }
            }
            Entry::ReversalAbandoned { id, attempts } => match self.reversals.remove(&id) {
                Some((q, n)) => {
                    self.exceptions.insert(id, (q, n.max(attempts)));
                }
                None => self.orphans += 1,
            },
            Entry::SafRetried { id } => match self.exceptions.remove(&id) {
                // Back in the queue with a fresh budget; its next transmission is a repeat.
                Some((q, _)) => {
                    self.reversals.insert(id, (q, 1));
                }
                None => self.orphans += 1,
            },
            Entry::SafDropped { id } => {
                if self.exceptions.remove(&id).is_none() {
                    self.orphans += 1;
                }
            }
            // The audit trail: nothing owed.
            Entry::LateResponse { .. }
            | Entry::LinkEvent { .. }
            | Entry::ConfigEvent { .. }
            | Entry::Audit { .. } => {}
            Entry::Outcome(o) => self.outcomes.insert(o.key.as_key_ref(), o.outcome()),
            Entry::Outcomes(os) => {
                for o in os {
                    self.outcomes.insert(o.key.as_key_ref(), o.outcome());
                }
            }
        }
    }

    /// Whether `a`, recorded as record `seq`, relays an approval to a forwarded request
    /// after the last record its shard's last owner released: its originator may never have
    /// had it, so it is not taken as given (the request stays open, and is reversed).
    fn unreleased_approval(&self, seq: u64, a: &crate::entry::Answered) -> bool {
        self.released.is_some_and(|r| seq > r)
            && a.relays_approval()
            && self.requests.get(&a.request).is_some_and(|r| r.forwarded.is_some())
    }

    /// Requests forwarded and never answered: to reverse.
    pub fn open(&self) -> impl Iterator<Item = &RequestState> {
        self.requests.values().filter(|r| r.forwarded.is_some())
    }

    /// Folds every record of a scanned log after `self.last_seq`; the records of a segment
    /// count as made when the next segment began (`now_unix_ms` for the last).
    ///
    /// # Errors
    ///
    /// The first payload that is not its kind's layout.
    pub fn fold(&mut self, log: &crate::LogScan<'_>, now_unix_ms: u64) -> Result<(), crate::entry::BadEntry> {
        let n = log.segments.len();
        for (i, (_, s)) in log.segments.iter().enumerate() {
            let until = log
                .segments
                .get(i + 1)
                .and_then(|(_, next)| next.header.map(|h| h.created_unix_ms))
                .filter(|_| i + 1 < n)
                .unwrap_or(now_unix_ms);
            self.apply_segment(&s.records, until)?;
        }
        Ok(())
    }

    /// Folds every record of a scanned log.
    ///
    /// # Errors
    ///
    /// The first payload that is not its kind's layout.
    pub fn of(log: &crate::LogScan<'_>) -> Result<Self, crate::entry::BadEntry> {
        let mut r = Self::default();
        r.fold(log, u64::MAX)?;
        Ok(r)
    }

    /// Requests accepted and never forwarded nor answered.
    pub fn unforwarded(&self) -> impl Iterator<Item = &RequestState> {
        self.requests.values().filter(|r| r.forwarded.is_none())
    }

    /// This state as a checkpoint: a `Checkpoint` record (the last sequence number folded
    /// and how many records follow), then the open requests and entries under their own
    /// sequence numbers, then the outcomes; appended to `out`.
    pub fn checkpoint(&self, out: &mut Vec<u8>) {
        self.checkpoint_as(OutcomesFormat::Compact, out, &mut || {});
    }

    /// [`Recovery::checkpoint`], its outcomes written as `format` says, calling `pause`
    /// after every [`crate::limits::PAUSE_RECORDS`] outcomes written (a checkpoint's thread
    /// gives the core back there).
    pub fn checkpoint_as(&self, format: OutcomesFormat, out: &mut Vec<u8>, pause: &mut dyn FnMut()) {
        let seq = self.last_seq;
        // Every record is written once, straight into `out`, and counted as it is (the
        // outcomes' records are closed at a size, not a count): the head is written with
        // the count of the rest, and made whole at the end.
        let head = |count: u64| {
            let mut head = [0u8; 24];
            head[..8].copy_from_slice(&seq.to_le_bytes());
            head[8..16].copy_from_slice(&count.to_le_bytes());
            head[16..].copy_from_slice(&self.orphans.to_le_bytes());
            head
        };
        let head_at = out.len();
        let head_len = encode(seq, Kind::Checkpoint, &head(0), out);
        let mut written = 0u64;
        let mut put = |seq: u64, e: &Entry, out: &mut Vec<u8>| {
            encode_with(seq, e.kind(), out, |out| e.encode(out));
            written += 1;
        };
        for (&s, r) in &self.requests {
            put(s, &Entry::Accepted(r.accepted.clone()), out);
            if let Some(f) = &r.forwarded {
                put(s, &Entry::Forwarded(f.clone()), out);
            }
        }
        for (set, excepted) in [(&self.reversals, false), (&self.exceptions, true)] {
            for (&id, (q, n)) in set {
                // Its keys marked outcomes when it was folded; the outcomes below state them
                // as they are now (a checkpoint's reader marks none).
                put(id, &Entry::ReversalQueued(q.clone()), out);
                if *n > 0 {
                    put(id, &Entry::ReversalSent { id, attempt: n - 1 }, out);
                }
                if excepted {
                    put(id, &Entry::ReversalAbandoned { id, attempts: *n }, out);
                }
            }
        }
        let mut outcomes = self.outcomes.iter().enumerate().peekable();
        if format == OutcomesFormat::Records {
            for (i, (k, o)) in outcomes.by_ref() {
                crate::pause_after(i, pause);
                encode_with(seq, Kind::Outcome, out, |out| crate::entry::encode_outcome(k, o, out));
                written += 1;
            }
        }
        while outcomes.peek().is_some() {
            encode_with(seq, Kind::Outcomes, out, |out| {
                let mut record = crate::entry::OutcomesWriter::begin(out);
                for (i, (k, o)) in outcomes.by_ref() {
                    crate::pause_after(i, pause);
                    if record.push(k, o, out) {
                        break;
                    }
                }
                record.end(out);
            });
            written += 1;
        }
        let mut whole = Vec::with_capacity(head_len);
        encode(seq, Kind::Checkpoint, &head(written), &mut whole);
        out[head_at..head_at + head_len].copy_from_slice(&whole);
    }

    /// The state a checkpoint holds.
    ///
    /// # Errors
    ///
    /// [`BadCheckpoint`]: a record that fails its checksum, a missing head, fewer or more
    /// records than the head says, an entry that is not its layout.
    pub fn from_checkpoint(bytes: &[u8]) -> Result<Self, BadCheckpoint> {
        let mut r = Self::default();
        let (last_seq, orphans) = read_checkpoint(bytes, |record| r.apply_checkpoint_record(record).is_ok())?;
        r.last_seq = last_seq;
        r.orphans += orphans;
        Ok(r)
    }

    /// The last sequence number a checkpoint covers, its bytes checked — every record whole
    /// and its checksum right, as many as its head says — without the state made of them:
    /// what a node checks of a checkpoint it hands on (to its shard's subject, or from it into
    /// its directory), where making the state (a million outcomes indexed) only to drop it
    /// cost as much as the checkpoint's own writing. The reader that folds it later
    /// ([`Recovery::from_checkpoint`]) also checks each entry's layout.
    ///
    /// # Errors
    ///
    /// As [`Recovery::from_checkpoint`], but for an entry's layout.
    pub fn check_checkpoint(bytes: &[u8]) -> Result<u64, BadCheckpoint> {
        read_checkpoint(bytes, |_| true).map(|(last_seq, _)| last_seq)
    }
}

/// Reads checkpoint `bytes` ([`Recovery::checkpoint`]): its head's last sequence number and
/// orphans, each record after it given to `each` in order (`false`: its entry is not its
/// layout).
fn read_checkpoint(
    bytes: &[u8],
    mut each: impl FnMut(&RecordRef<'_>) -> bool,
) -> Result<(u64, u64), BadCheckpoint> {
    let bad = |offset, reason| BadCheckpoint { offset, reason };
    let Decoded::Record { record: head, len } = decode(bytes) else {
        return Err(bad(0, "no checkpoint head"));
    };
    if head.kind != Kind::Checkpoint || head.payload.len() != 24 {
        return Err(bad(0, "no checkpoint head"));
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head.payload[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let (last_seq, count, orphans) = (word(0), word(1), word(2));
    let mut at = len;
    let mut n = 0u64;
    while at < bytes.len() {
        let Decoded::Record { record, len } = decode(&bytes[at..]) else {
            return Err(bad(at, "a record that is not whole or fails its checksum"));
        };
        if !each(&record) {
            return Err(bad(at, "an entry that is not its layout"));
        }
        at += len;
        n += 1;
    }
    if n != count {
        return Err(bad(at, "fewer or more records than its head says"));
    }
    Ok((last_seq, orphans))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Answered;
    use crate::limits::PAUSE_RECORDS;

    fn accepted(stan: u32) -> Entry {
        Entry::Accepted(Accepted {
            key: crate::entry::key("acq", 2, stan),
            link: "acq-1".into(),
            correlation: 0,
            request: vec![stan as u8],
            at_unix_ms: 0,
        })
    }

    fn forwarded(request: u64) -> Entry {
        Entry::Forwarded(Forwarded {
            request,
            destination: "iss".into(),
            link: "iss-1".into(),
            key: request,
            sent_stan: *b"000001",
        })
    }

    /// A request accepted and forwarded in one record; its destination saw STAN `stan`.
    fn sent(stan: u32) -> Entry {
        let Entry::Accepted(accepted) = accepted(stan) else { unreachable!() };
        let sent_stan = format!("{stan:06}").into_bytes().try_into().unwrap();
        Entry::Sent(crate::entry::Sent {
            accepted,
            destination: "iss".into(),
            out_link: "iss-2".into(),
            out_key: u64::from(stan) + 100,
            sent_stan,
        })
    }

    /// A log the switch writes now (requests accepted and forwarded in one record), with
    /// requests of the older two records among them.
    fn sent_entries() -> Vec<Entry> {
        vec![
            sent(1),            // 1: answered
            answered(1, b"00"), // 2
            sent(2),            // 3: open
            accepted(3),        // 4: the older records, open
            forwarded(4),       // 5
            sent(4),            // 6: forwarded again by a record of its own
            forwarded(6),       // 7
            answered(6, b"00"), // 8
            sent(5),            // 9: open
            answered(4, b"05"), // 10
        ]
    }

    fn answered(request: u64, code: &[u8; 2]) -> Entry {
        Entry::Answered(Answered { request, code: *code, auth: None, switch_made: false, at_unix_ms: 0 })
    }

    fn fold(entries: &[Entry]) -> Recovery {
        fold_released(entries, None)
    }

    fn fold_released(entries: &[Entry], released: Option<u64>) -> Recovery {
        let mut r = Recovery { released, ..Recovery::default() };
        let mut buf = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            buf.clear();
            let mut payload = Vec::new();
            e.encode(&mut payload);
            encode(i as u64 + 1, e.kind(), &payload, &mut buf);
            let Decoded::Record { record, .. } = decode(&buf) else { panic!() };
            r.apply(i as u64 + 1, &record, 1).unwrap();
        }
        r
    }

    #[test]
    fn what_is_owed_after_a_crash_at_each_step() {
        let r = fold(&[
            accepted(1),                               // 1: answered → an outcome
            forwarded(1),                              // 2
            answered(1, b"00"),                        // 3
            accepted(2),                               // 4: forwarded, no answer → open (to reverse)
            forwarded(4),                              // 5
            accepted(3),                               // 6: never forwarded → nothing reached a destination
            queued(7, vec![1]),                        // 7
            Entry::ReversalSent { id: 7, attempt: 0 }, // 8
            Entry::ReversalSent { id: 7, attempt: 1 }, // 9
            queued(10, vec![2]),                       // 10
            Entry::ReversalAcked { id: 10 },           // 11
            Entry::ReversalAcked { id: 99 },           // 12: orphan
        ]);
        let open: Vec<u32> = r.open().map(|s| s.accepted.key.stan).collect();
        assert_eq!(open, [2]);
        let unforwarded: Vec<u32> = r.unforwarded().map(|s| s.accepted.key.stan).collect();
        assert_eq!(unforwarded, [3]);
        assert_eq!(r.reversals.keys().copied().collect::<Vec<_>>(), [7]);
        assert_eq!(r.reversals[&7].1, 2, "two transmissions made: the next is a repeat");
        let key = crate::entry::key("acq", 2, 1);
        assert_eq!(
            r.outcomes.get(key.as_key_ref()).map(|a| a.code),
            Some(*b"00"),
            "a repeat is answered from this"
        );
        assert_eq!(r.orphans, 1);
    }

    #[test]
    fn a_request_accepted_and_forwarded_in_one_record_is_owed_as_its_two_records_were() {
        let r = fold(&sent_entries());
        let open: Vec<(u64, u32, Option<&Forwarded>)> =
            r.requests.iter().map(|(&s, q)| (s, q.accepted.key.stan, q.forwarded.as_ref())).collect();
        let fw = |request, key, stan: &[u8; 6], link: &str| Forwarded {
            request,
            destination: "iss".into(),
            link: link.into(),
            key,
            sent_stan: *stan,
        };
        assert_eq!(
            open,
            [(3, 2, Some(&fw(3, 102, b"000002", "iss-2"))), (9, 5, Some(&fw(9, 105, b"000005", "iss-2")))],
            "open, each forwarded as its own record says, under its own sequence number"
        );
        let outcome = |stan| {
            r.outcomes.get(crate::entry::key("acq", 2, stan).as_key_ref()).map(|o| (o.code, o.sent_stan))
        };
        assert_eq!(outcome(1), Some((*b"00", Some(*b"000001"))), "the STAN its one record says");
        assert_eq!(outcome(4), Some((*b"00", Some(*b"000001"))), "the STAN its later forward says");
        assert_eq!(outcome(3), Some((*b"05", Some(*b"000001"))), "an older pair of records beside them");
        assert_eq!(r.orphans, 0);
    }

    fn queued(id: u64, reversal: Vec<u8>) -> Entry {
        Entry::ReversalQueued(ReversalQueued {
            id,
            destination: "iss".into(),
            reversal,
            queued_unix_ms: 5,
            original: None,
            advice: None,
        })
    }

    fn entries() -> Vec<Entry> {
        let mut rev = queued(7, vec![3]);
        if let Entry::ReversalQueued(q) = &mut rev {
            q.original = Some(crate::entry::key("acq", 2, 2));
        }
        let mut advice = queued(10, vec![4]);
        if let Entry::ReversalQueued(q) = &mut advice {
            q.advice = Some(crate::entry::key("acq", 4, 77));
        }
        vec![
            accepted(1),        // 1
            forwarded(1),       // 2
            answered(1, b"00"), // 3
            accepted(2),        // 4: answered 68 and reversed
            forwarded(4),       // 5
            answered(4, b"68"),
            rev, // 7: reversal of request 4, sent twice, abandoned, retried
            Entry::ReversalSent { id: 7, attempt: 0 },
            Entry::ReversalSent { id: 7, attempt: 1 },
            advice, // 10: a participant's advice, open
            Entry::ReversalAbandoned { id: 7, attempts: 2 },
            accepted(3), // 12: open
            forwarded(12),
            queued(14, vec![5]), // 14: excepted, then dropped
            Entry::ReversalAbandoned { id: 14, attempts: 6 },
            Entry::SafDropped { id: 14 },
            queued(17, vec![6]), // 17: excepted
            Entry::ReversalAbandoned { id: 17, attempts: 6 },
        ]
    }

    #[test]
    fn an_approval_after_the_release_mark_is_left_open_and_what_came_before_it_stands() {
        let log = [
            accepted(1),        // 1
            forwarded(1),       // 2
            answered(1, b"00"), // 3: released (the mark)
            accepted(2),        // 4
            forwarded(4),       // 5
            accepted(3),        // 6
            forwarded(6),       // 7
            answered(4, b"00"), // 8: after the mark, an approval: left open
            answered(6, b"05"), // 9: after the mark, a decline: it stands
            accepted(4),        // 10
            Entry::Answered(Answered {
                request: 10,
                code: *b"00",
                auth: None,
                switch_made: true,
                at_unix_ms: 0,
            }),
        ];
        let r = fold_released(&log, Some(3));
        assert_eq!(
            r.open().map(|q| q.accepted.key.stan).collect::<Vec<_>>(),
            [2],
            "the approval after the mark"
        );
        assert_eq!(r.unreleased, 1);
        for (stan, code) in [(1, b"00"), (3, b"05"), (4, b"00")] {
            let key = crate::entry::key("acq", 2, stan);
            assert_eq!(
                r.outcomes.get(key.as_key_ref()).map(|o| o.code),
                Some(*code),
                "request {stan} stands"
            );
        }
        // Without a mark (a single node, a cluster before its first), every answer stands.
        let all = fold(&log);
        assert_eq!((all.open().count(), all.unreleased), (0, 0));
        // A mark at the end leaves nothing open.
        assert_eq!(fold_released(&log, Some(11)).open().count(), 0);
    }

    #[test]
    fn store_and_forward_entries_move_through_the_exception_queue() {
        let mut r = fold(&entries());
        assert_eq!(r.reversals.keys().copied().collect::<Vec<_>>(), [10]);
        assert_eq!(r.exceptions.keys().copied().collect::<Vec<_>>(), [7, 17]);
        assert_eq!(r.exceptions[&7].1, 2);
        let reversed = crate::entry::key("acq", 2, 2);
        assert_eq!(r.outcomes.get(reversed.as_key_ref()).map(|o| (o.code, o.reversed)), Some((*b"68", true)));
        let advice = crate::entry::key("acq", 4, 77);
        assert_eq!(
            r.outcomes.get(advice.as_key_ref()).map(|o| o.code),
            Some(*b"00"),
            "its repeat is acknowledged again"
        );
        let mut buf = Vec::new();
        let mut payload = Vec::new();
        Entry::SafRetried { id: 7 }.encode(&mut payload);
        encode(19, Kind::SafRetried, &payload, &mut buf);
        let Decoded::Record { record, .. } = decode(&buf) else { panic!() };
        r.apply(19, &record, 1).unwrap();
        assert_eq!(r.reversals.keys().copied().collect::<Vec<_>>(), [7, 10]);
        assert_eq!(r.reversals[&7].1, 1, "retried: a fresh budget, its next transmission a repeat");
    }

    #[test]
    fn a_checkpoints_scan_fold_and_write_pause_every_so_many_records_and_do_the_same() {
        // 1,500 transactions: 4,500 records, 1,500 outcomes.
        let all: Vec<Entry> = (0..1_500u32)
            .flat_map(|t| {
                let at = u64::from(t) * 3 + 1;
                [accepted(t), forwarded(at), answered(at, b"00")]
            })
            .collect();
        let mut seg = crate::segment::SegmentHeader { first_seq: 1, created_unix_ms: 0 }.to_bytes().to_vec();
        for (i, e) in all.iter().enumerate() {
            let mut payload = Vec::new();
            e.encode(&mut payload);
            encode(i as u64 + 1, e.kind(), &payload, &mut seg);
        }
        let mut pauses = 0;
        let scan =
            crate::segment::scan_segment_pausing(&seg, 1, false, Vec::new(), &mut || pauses += 1).unwrap();
        assert_eq!(scan.records.len(), 4_500);
        assert_eq!(pauses, 4_500 / PAUSE_RECORDS, "the scan");
        let (mut paused, mut plain) = (Recovery::default(), Recovery::default());
        pauses = 0;
        paused.apply_segment_pausing(&scan.records, 1, &mut || pauses += 1).unwrap();
        assert_eq!(pauses, 4_500 / PAUSE_RECORDS, "the fold");
        plain.apply_segment(&scan.records, 1).unwrap();
        assert_eq!(paused, plain);
        assert_eq!(paused.outcomes.len(), 1_500);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pauses = 0;
        paused.checkpoint_as(OutcomesFormat::Compact, &mut a, &mut || pauses += 1);
        assert_eq!(pauses, 1_500 / PAUSE_RECORDS, "the write");
        plain.checkpoint(&mut b);
        assert_eq!(a, b);
        let mut c = Vec::new();
        pauses = 0;
        paused.checkpoint_as(OutcomesFormat::Records, &mut c, &mut || pauses += 1);
        assert_eq!(pauses, 1_500 / PAUSE_RECORDS, "the write, a record an outcome");
        assert_eq!(Recovery::from_checkpoint(&c).unwrap(), Recovery::from_checkpoint(&a).unwrap());
    }

    /// Where a checkpoint's head record ends.
    fn head_len(ck: &[u8]) -> usize {
        let Decoded::Record { len, .. } = decode(ck) else { panic!("no head") };
        len
    }

    #[test]
    fn a_checkpoint_holds_the_same_state_as_the_log_it_folds() {
        for all in [entries(), sent_entries()] {
            for cut in 0..=all.len() {
                let r = fold(&all[..cut]);
                let mut ck = Vec::new();
                r.checkpoint(&mut ck);
                let back = Recovery::from_checkpoint(&ck).unwrap();
                assert_eq!(back.requests, r.requests, "cut {cut}");
                assert_eq!(
                    back.exceptions.keys().collect::<Vec<_>>(),
                    r.exceptions.keys().collect::<Vec<_>>()
                );
                assert_eq!(back.reversals.len(), r.reversals.len());
                for (id, (_, n)) in &r.reversals {
                    assert_eq!(back.reversals[id].1, *n);
                }
                // The window in its order: what it forgets first after a restart is what it
                // would have forgotten first.
                assert_eq!(
                    back.outcomes.iter().collect::<Vec<_>>(),
                    r.outcomes.iter().collect::<Vec<_>>(),
                    "cut {cut}"
                );
                assert_eq!(back.last_seq, r.last_seq);
                assert_eq!(Recovery::check_checkpoint(&ck), Ok(r.last_seq));
                // Damage anywhere is refused, never read as a smaller state — by the check
                // that makes no state too.
                for at in [0, ck.len() / 2, ck.len() - 1] {
                    let mut bad = ck.clone();
                    bad[at] ^= 0x40;
                    assert!(Recovery::from_checkpoint(&bad).is_err(), "cut {cut}, flipped byte {at}");
                    assert!(Recovery::check_checkpoint(&bad).is_err(), "cut {cut}, flipped byte {at}");
                }
                assert!(Recovery::from_checkpoint(&ck[..ck.len() - 1]).is_err());
                assert!(Recovery::check_checkpoint(&ck[..ck.len() - 1]).is_err());
                // A record of its own more or fewer than its head counts.
                let head = head_len(&ck);
                let mut more = ck.clone();
                more.extend_from_slice(&ck[head..]);
                let fewer = &ck[..head];
                for wrong in [&more[..], fewer] {
                    if wrong.len() != ck.len() {
                        assert!(Recovery::check_checkpoint(wrong).is_err(), "cut {cut}");
                        assert!(Recovery::from_checkpoint(wrong).is_err(), "cut {cut}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_segment_folded_at_once_is_the_same_state_as_its_records_folded_one_by_one() {
        // `apply_segment` copies a request's bytes only if it is still open at the end, and
        // makes the outcome of a request the segment also answers from its records where
        // they lie: the state must be the same as `apply`'s, request bytes included, wherever
        // the segment is cut and whatever was folded before it — with and without a release
        // mark, and for a journal out of order (an answer before its request, a request
        // forwarded twice, answered twice, reversed before its answer).
        let mut rev = queued(9, vec![3]);
        if let Entry::ReversalQueued(q) = &mut rev {
            q.original = Some(crate::entry::key("acq", 2, 8));
        }
        let disorder = vec![
            answered(2, b"00"), // 1: before its request
            accepted(1),        // 2
            forwarded(2),       // 3
            forwarded(2),       // 4: again
            answered(2, b"00"), // 5
            answered(2, b"05"), // 6: again
            accepted(7),        // 7
            accepted(8),        // 8
            rev,                // 9: a reversal of request 8 before its answer
            answered(8, b"00"), // 10: told 68
            forwarded(7),       // 11
            answered(7, b"00"), // 12
            accepted(13),       // 13: open
            forwarded(13),      // 14
        ];
        let told = fold(&disorder).outcomes.get(crate::entry::key("acq", 2, 8).as_key_ref()).copied();
        assert_eq!(
            told.map(|o| (o.code, o.reversed)),
            Some((*b"68", true)),
            "reversed before its answer: it stays reversed, and a repeat is told 68"
        );
        let release_log = vec![
            accepted(1),        // 1
            forwarded(1),       // 2
            answered(1, b"00"), // 3: the mark
            accepted(2),        // 4
            forwarded(4),       // 5
            accepted(3),        // 6
            forwarded(6),       // 7
            answered(4, b"00"), // 8: an approval after the mark: left open
            answered(6, b"05"), // 9: a decline after it: it stands
        ];
        for (name, all, released) in [
            ("entries", entries(), None),
            ("disorder", disorder.clone(), None),
            ("disorder, a mark", disorder, Some(6)),
            ("a mark", release_log.clone(), Some(3)),
            ("no mark", release_log, None),
            ("sent", sent_entries(), None),
            ("sent, a mark", sent_entries(), Some(5)),
        ] {
            let mut seg = Vec::new();
            for (i, e) in all.iter().enumerate() {
                let mut payload = Vec::new();
                e.encode(&mut payload);
                encode(i as u64 + 1, e.kind(), &payload, &mut seg);
            }
            let mut found = Vec::new();
            let mut at = 0;
            while let Decoded::Record { record, len } = decode(&seg[at..]) {
                found.push(crate::segment::Found { offset: at, record });
                at += len;
            }
            assert_eq!(found.len(), all.len());
            for before in 0..all.len() {
                for cut in before..=all.len() {
                    let want = fold_released(&all[..cut], released);
                    let mut got = fold_released(&all[..before], released);
                    got.apply_segment(&found[..cut], 1).unwrap();
                    assert_eq!(
                        got,
                        want,
                        "{name}: records 1..={before} one by one, then {}..={cut} at once",
                        before + 1
                    );
                    assert!(got.requests.values().all(|r| !r.accepted.request.is_empty()));
                }
            }
        }
    }

    proptest::proptest! {
        /// Against a plain list of entries, oldest first, searched one by one: the same
        /// outcomes found, in the same order, the oldest forgotten first at the bound, the
        /// stale ones at expiry — and an index that still finds every key afterwards, with
        /// room made for the bound at once or not. Keys of three participants: the same STAN
        /// of two is two keys, through the ids' numbering and its renumbering at expiry.
        #[test]
        fn outcomes_are_what_a_plain_list_of_them_says(
            ops in proptest::collection::vec((0u8..4, 0u32..48, 0u64..40), 1..300),
            cap in 1usize..16,
            reserved in proptest::bool::ANY,
        ) {
            let mut got = Outcomes::with_bound(cap);
            if reserved {
                // Room made for the bound at once holds and finds what one grown does.
                got.reserve_bound();
            }
            let mut want: Vec<(DupKey, Outcome)> = Vec::new();
            let participants = ["acq", "iss", "wallet-sg"];
            let key_of = |n: u32| crate::entry::key(participants[(n % 3) as usize], 2, n / 3 % 8);
            for (op, n, at) in ops {
                let key = key_of(n);
                let o = Outcome { code: *b"00", auth: None, reversed: false, at_unix_ms: at, sent_stan: Some([1; 6]) };
                match op {
                    0 | 1 => {
                        got.insert(key.as_key_ref(), o);
                        match want.iter_mut().find(|(k, _)| *k == key) {
                            Some(e) => e.1 = o,
                            None => {
                                if want.len() >= cap {
                                    want.remove(0);
                                }
                                want.push((key, o));
                            }
                        }
                    }
                    2 => {
                        got.mark_reversed(key.as_key_ref(), at);
                        match want.iter_mut().find(|(k, _)| *k == key) {
                            Some(e) => e.1.reversed = true,
                            None => {
                                if want.len() >= cap {
                                    want.remove(0);
                                }
                                let o = Outcome { code: *b"68", auth: None, reversed: true, at_unix_ms: at, sent_stan: None };
                                want.push((key, o));
                            }
                        }
                    }
                    _ => {
                        got.expire(at);
                        want.retain(|(_, o)| o.at_unix_ms >= at);
                    }
                }
                proptest::prop_assert_eq!(got.iter().map(|(k, o)| (k.to_owned_key(), *o)).collect::<Vec<_>>(), want.clone());
                for n in 0..24 {
                    let k = key_of(n);
                    proptest::prop_assert_eq!(got.get(k.as_key_ref()), want.iter().find(|(w, _)| *w == k).map(|(_, o)| o));
                }
                proptest::prop_assert_eq!(got.get(crate::entry::key("never", 2, 0).as_key_ref()), None);
            }
        }
    }

    #[test]
    fn outcomes_are_bounded_and_expire_by_time() {
        let mut o = Outcomes::default();
        for i in 0..10u32 {
            let k = crate::entry::key("acq", 2, i);
            let at_unix_ms = u64::from(i);
            o.insert(
                k.as_key_ref(),
                Outcome { code: *b"00", auth: None, reversed: false, at_unix_ms, sent_stan: None },
            );
        }
        o.expire(5);
        assert_eq!(o.len(), 5);
        assert_eq!(o.iter().map(|(k, _)| k.stan).collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
    }

    #[test]
    fn outcomes_are_found_and_forgotten_as_their_positions_pass_what_the_index_holds() {
        // A checkpointer lives as long as its switch: positions pass 2^31, the index holds
        // them modulo it, and an entry on either side of the wrap is found and evicted.
        let mut o = Outcomes::with_bound(16);
        o.first = HELD_MASK as usize - 7;
        let outcome = |i: u32| Outcome {
            code: *b"00",
            auth: None,
            reversed: false,
            at_unix_ms: u64::from(i),
            sent_stan: None,
        };
        for i in 0..64u32 {
            o.insert(crate::entry::key("acq", 2, i).as_key_ref(), outcome(i));
            o.insert(crate::entry::key("acq", 2, i).as_key_ref(), outcome(i + 1_000));
        }
        assert_eq!(o.len(), 16);
        assert_eq!(o.index.len(), 16);
        assert!(o.first > HELD_MASK as usize, "the positions wrapped what the index holds");
        for i in 0..64u32 {
            let got = o.get(crate::entry::key("acq", 2, i).as_key_ref()).map(|x| x.at_unix_ms);
            assert_eq!(got, (i >= 48).then_some(u64::from(i + 1_000)), "stan {i}");
        }
        o.expire(1_056);
        assert_eq!(o.iter().map(|(k, _)| k.stan).collect::<Vec<_>>(), (56..64).collect::<Vec<_>>());
        assert_eq!(o.get(crate::entry::key("acq", 2, 60).as_key_ref()).map(|x| x.at_unix_ms), Some(1_060));
    }

    /// A checkpoint of [`entries`] as it was written before its outcomes went many to a
    /// record: three `Outcome` records (kind 15) after the open requests and entries.
    const CHECKPOINT_OF_OUTCOME_RECORDS: &str = concat!(
        "21000000556643e912000000000000000c12000000000000000c0000000000000000000000000000004b0000",
        "00caf0d6640c00000000000000010361637102030000009a841143000000005445524d303030314e61bc0000",
        "0800000000000000000000056163712d310000000000000000010003000000000000000029000000d66ed419",
        "0c00000000000000020c0000000000000003697373056973732d310c000000000000003030303030314b0000",
        "00e08359760a00000000000000050a0000000000000003697373010004050000000000000000010361637104",
        "4d0000009a841143000000005445524d303030314e61bc000008000000000000000000004b00000049970f89",
        "0700000000000000050700000000000000036973730100030500000000000000010361637102020000009a84",
        "1143000000005445524d303030314e61bc000008000000000000000000000015000000640691040700000000",
        "0000000607000000000000000100000015000000daab22470700000000000000080700000000000000020000",
        "0022000000b5488e931100000000000000051100000000000000036973730100060500000000000000000015",
        "0000009ac5243f110000000000000006110000000000000005000000150000002468977c1100000000000000",
        "0811000000000000000600000045000000710db15b12000000000000000f0361637102010000009a84114300",
        "0000005445524d303030314e61bc000008000000000000000000003030000100000000000000000130303030",
        "303145000000a2034a8d12000000000000000f0361637102020000009a841143000000005445524d30303031",
        "4e61bc00000800000000000000000000363801010000000000000000013030303030313f000000656fe14912",
        "000000000000000f03616371044d0000009a841143000000005445524d303030314e61bc0000080000000000",
        "000000000030300001000000000000000000"
    );

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn a_checkpoint_is_the_same_bytes_it_always_was() {
        // Written straight into its buffer: the open requests and entries are the records
        // checkpoints always held, byte for byte; the outcomes are one `Outcomes` record
        // (kind 18) where they were three `Outcome` records — 94 bytes for 225.
        let mut ck = Vec::new();
        fold(&entries()).checkpoint(&mut ck);
        let hex: String = ck.iter().map(|b| format!("{b:02x}")).collect();
        let before = CHECKPOINT_OF_OUTCOME_RECORDS;
        // The head (41 bytes) counts the records that follow; then 456 bytes of requests and
        // entries.
        let (head, requests_and_entries) = (2 * 41, 2 * (41 + 456));
        assert_eq!(hex[head..requests_and_entries], before[head..requests_and_entries], "the same records");
        // Its head counts ten records after it, not twelve.
        assert_eq!(
            hex[..head],
            *"21000000b3a7b3ce12000000000000000c12000000000000000a000000000000000000000000000000"
        );
        assert_eq!(
            hex[requests_and_entries..],
            *concat!(
                "560000000",
                "9f9b460120000000000000012030014000361637102",
                "01b4928cb1085445524d30303031cec2f1858080023030023030303030311d000202005445524d3030303136",
                "38003030303030311800044d005445524d30303031303000"
            )
        );
    }

    #[test]
    fn a_checkpoint_of_outcome_records_is_read_as_it_always_was() {
        // Checkpoints written before hold `Outcome` records, one an outcome: read, they are
        // the state the fold and the checkpoint written now give.
        let old = unhex(CHECKPOINT_OF_OUTCOME_RECORDS);
        let r = fold(&entries());
        let mut now = Vec::new();
        r.checkpoint(&mut now);
        // And written so still, when asked (for a build before `Outcomes` records).
        let mut records = Vec::new();
        r.checkpoint_as(OutcomesFormat::Records, &mut records, &mut || {});
        assert_eq!(records, old);
        assert!(now.len() < old.len());
        let (from_old, from_now) =
            (Recovery::from_checkpoint(&old).unwrap(), Recovery::from_checkpoint(&now).unwrap());
        assert_eq!(from_old, from_now);
        assert_eq!(from_old.outcomes.len(), 3);
        // In the window's order: the outcomes queued reversals name stay where they stood.
        assert_eq!(from_old.outcomes.iter().collect::<Vec<_>>(), r.outcomes.iter().collect::<Vec<_>>());
        assert_eq!(Recovery::check_checkpoint(&old), Recovery::check_checkpoint(&now));
    }
}
