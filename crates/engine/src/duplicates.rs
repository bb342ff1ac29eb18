//! Duplicate detection: the key that makes two transmissions the same request, and the
//! outcomes of completed requests, which answer their repeats (never forwarded again).

use std::time::{Duration, Instant};

use corridor_journal::{
    entry::NO_TERMINAL,
    positions::{held, Placed, PositionIndex, HELD_MASK, SPLIT_SLOTS_MAX},
};
use corridor_wire::{ResponseCode, Stan};

use crate::{
    engine::Msg,
    limits::{ORIGINAL_CANDIDATES_MAX, OUTCOMES_MAX, OUTCOMES_SWEEP_SLOTS},
};

/// How a completed request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) code: ResponseCode,
    pub(crate) auth: Option<[u8; 6]>,
    /// Whether the request was reversed (by the switch, or its originator's reversal of it
    /// is stored): a participant's reversal of it is then acknowledged, not forwarded again.
    pub(crate) reversed: bool,
    /// The journal record the answer waited for (0: none): an answer made from this outcome
    /// waits for it too.
    pub(crate) seq: u64,
    /// The STAN its destination saw (a participant's reversal of it names it in DE 90).
    pub(crate) sent_stan: Option<[u8; 6]>,
}

/// Completed requests' outcomes for the duplicate window, bounded by [`OUTCOMES_MAX`].
///
/// A ring of entries in the order they were remembered (so the oldest, the next to expire
/// or be evicted, is always at its head, and what is written is written in sequence), and a
/// hash index of their positions to find a key's (`corridor_journal::positions`: a probe is
/// one cache line). A key's place in the index is its hash without the terminal — where a
/// reversal that leaves DE 41 out finds its original — and its tag there tells terminals
/// apart ([`placed`]): terminals that number their own requests send the same STAN and
/// DE 7, and each of those keys met in a search would otherwise be an entry of the ring
/// read to be compared (a cache miss each; `benches/README.md`, the fifteenth pass).
/// Every request looks its key up and every answer remembers one (and, the
/// window full, forgets the oldest), so this is on the hot path: at a million entries each
/// of those is a cache miss in the index, and a hit one more in the ring. Forgetting is not
/// one: the oldest leaves the ring only, its index slot is known for a forgotten position by
/// the position alone, passed over by searches, taken by an insert that comes to it, and
/// freed by a sweep of the index in order ([`OUTCOMES_SWEEP_SLOTS`] an insert) — where a
/// removal was a random line of the index's 16 MiB each time (11% of the switch's CPU
/// with the journal off, `benches/README.md`, the ninth pass).
#[derive(Debug)]
pub(crate) struct Outcomes {
    /// Most entries ([`OUTCOMES_MAX`]; smaller in tests).
    cap: usize,
    /// Entry `n` (the `n`th remembered, from 0) at `n % cap`.
    ring: Vec<Slot>,
    /// Entries ever remembered: the next one's position.
    next: u64,
    /// Entries in the ring: positions `next - len .. next`.
    len: usize,
    /// Positions modulo 2^31 ([`held`]), forgotten ones among them until swept.
    index: PositionIndex,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    at: Instant,
    key: DupKey,
    outcome: Outcome,
}

// Entries remembered, and the forgotten ones a sweep frees within a turn of the index, are
// far fewer than the numbers the index tells apart.
const _: () = assert!((OUTCOMES_MAX as u64) * 4 < HELD_MASK);

/// Where the window's index places `key`: its home by everything but the terminal (its
/// [`hash`]), the rest of its tag by all of it — by the terminal too, not the terminal
/// alone (one terminal's keys that share a home would share their whole tag).
fn placed(key: &DupKey) -> Placed {
    let h = hash(key);
    Placed::split(h, h.rotate_left(32) ^ u64::from_le_bytes(key.terminal))
}

// The index of a full window has room for it without growing past what a split hash places.
const _: () = assert!(OUTCOMES_MAX * 2 <= SPLIT_SLOTS_MAX);

fn hash(key: &DupKey) -> u64 {
    use std::hash::BuildHasher as _;
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// The ring index of the entry at held position `p`, while it is remembered — when it is
/// one of the `len` before `next` — or `None` (forgotten, its ring slot perhaps reused).
fn live(p: u32, next: u64, len: usize, cap: usize) -> Option<usize> {
    // 1 for the newest, `len` for the oldest.
    let age = (next.wrapping_sub(u64::from(p)) & HELD_MASK) as usize;
    if age == 0 || age > len {
        return None;
    }
    // Within `len` of `next`: `next - age` is the position itself.
    Some(((next - age as u64) % cap as u64) as usize)
}

impl Outcomes {
    /// At most `cap` outcomes (at most [`OUTCOMES_MAX`]), their room reserved at once: the
    /// ring's whole (address space; its pages are touched as it fills, one at a time) and an
    /// index that holds them all at most half full (16 MiB at a million; a little more with
    /// forgotten ones a sweep has not come to). Growing either by
    /// doubling would copy or rehash everything in one step on the hot path — tens of
    /// milliseconds at a million entries, straight into the latency tail.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        let cap = cap.clamp(1, OUTCOMES_MAX);
        Self { cap, ring: Vec::with_capacity(cap), next: 0, len: 0, index: PositionIndex::with_capacity(cap) }
    }

    /// Remembers `key`'s outcome at `now`, forgetting what is older than `window`.
    pub(crate) fn insert(&mut self, key: DupKey, outcome: Outcome, now: Instant, window: Duration) {
        self.expire(now, window);
        let h = placed(&key);
        if let Some(pos) = self.find_placed(h, &key) {
            // Remembered already: the outcome changes, its place in the order does not.
            self.ring[pos].outcome = outcome;
            return;
        }
        // Full, an entry goes out for every one in.
        if self.len >= self.cap {
            self.evict_oldest();
        }
        let pos = (self.next % self.cap as u64) as usize;
        let slot = Slot { at: now, key, outcome };
        // The ring fills in order up to its bound, then wraps onto the slots evicted.
        if pos == self.ring.len() {
            self.ring.push(slot);
        } else {
            self.ring[pos] = slot;
        }
        let at = self.next;
        (self.next, self.len) = (at + 1, self.len + 1);
        // What is gone once `at` is remembered (the index does not hold `at` yet).
        let (next, len, cap) = (self.next, self.len, self.cap);
        let gone = |p| live(p, next, len, cap).is_none();
        self.index.insert_over(h, held(at), gone);
        self.index.sweep(OUTCOMES_SWEEP_SLOTS, gone);
    }

    /// The outcome a repeat of `key` is answered with, within `window` of `now`.
    pub(crate) fn get(&mut self, key: &DupKey, now: Instant, window: Duration) -> Option<Outcome> {
        self.expire(now, window);
        self.find(key).map(|pos| self.ring[pos].outcome)
    }

    /// Whether `key`'s outcome is remembered (expired or not).
    pub(crate) fn contains(&self, key: &DupKey) -> bool {
        self.find(key).is_some()
    }

    /// A remembered key that names the same original as `key` ([`DupKey::same_original`]):
    /// `key` itself or, when `key` has a terminal, the key without one; when it has none,
    /// the first remembered one of any terminal among [`ORIGINAL_CANDIDATES_MAX`] that
    /// share its place in the index.
    pub(crate) fn same_original(&self, key: &DupKey) -> Option<DupKey> {
        if self.contains(key) {
            return Some(*key);
        }
        if key.terminal != NO_TERMINAL {
            let none = DupKey { terminal: NO_TERMINAL, ..*key };
            return self.contains(&none).then_some(none);
        }
        let (ring, next, len, cap) = (&self.ring, self.next, self.len, self.cap);
        let at = |p| live(p, next, len, cap);
        self.index
            .find_sharing_home(placed(key), ORIGINAL_CANDIDATES_MAX, |p| {
                at(p).is_some_and(|i| ring[i].key.same_original(key))
            })
            .and_then(at)
            .map(|i| ring[i].key)
    }

    /// Asks for the index line a search for `key` begins in: its search, a while later,
    /// finds it in the cache (`Engine::look_ahead`).
    pub(crate) fn prefetch(&self, key: &DupKey) {
        self.index.prefetch(placed(key));
    }

    fn find(&self, key: &DupKey) -> Option<usize> {
        self.find_placed(placed(key), key)
    }

    /// [`Outcomes::find`], placed at `h`.
    fn find_placed(&self, h: Placed, key: &DupKey) -> Option<usize> {
        let (ring, next, len, cap) = (&self.ring, self.next, self.len, self.cap);
        let at = |p| live(p, next, len, cap);
        self.index.find(h, |p| at(p).is_some_and(|i| ring[i].key == *key)).and_then(at)
    }

    /// The ring index of the oldest entry (there is one).
    fn head(&self) -> usize {
        ((self.next - self.len as u64) % self.cap as u64) as usize
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while self.len > 0 && now.saturating_duration_since(self.ring[self.head()].at) > window {
            self.evict_oldest();
        }
    }

    /// Forgets the oldest: its index slot is swept later.
    fn evict_oldest(&mut self) {
        if self.len == 0 {
            return;
        }
        take_one!(self.len, "the remembered outcomes' count");
    }

    /// Marks `key` reversed, its code set to `code` when given (the switch's reversal: a
    /// repeat is told 68); remembered anew when it was not.
    pub(crate) fn mark_reversed(
        &mut self,
        key: DupKey,
        code: Option<ResponseCode>,
        now: Instant,
        window: Duration,
    ) {
        match self.find(&key) {
            Some(pos) => {
                let o = &mut self.ring[pos].outcome;
                o.reversed = true;
                if let Some(c) = code {
                    o.code = c;
                    o.auth = None;
                }
            }
            None => {
                let code = code.unwrap_or(ResponseCode::TIMEOUT);
                self.insert(
                    key,
                    Outcome { code, auth: None, reversed: true, seq: 0, sent_stan: None },
                    now,
                    window,
                );
            }
        }
    }

    /// Outcomes remembered.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The keys of the requests in flight: a repeat of one is declined 94, and a participant's
/// reversal of one waits for its answer.
#[derive(Debug, Default)]
pub(crate) struct InFlightKeys {
    table: hashbrown::HashTable<DupKey>,
}

impl InFlightKeys {
    /// Whether `key` is in flight.
    pub(crate) fn contains(&self, key: &DupKey) -> bool {
        self.table.find(hash(key), |k| k == key).is_some()
    }

    /// A key in flight that names the same original as `key` ([`DupKey::same_original`]).
    pub(crate) fn same_original(&self, key: &DupKey) -> Option<DupKey> {
        self.table.find(hash(key), |k| k.same_original(key)).copied()
    }

    /// `key` is in flight now. (Admission declines a key already in flight.)
    pub(crate) fn insert(&mut self, key: DupKey) {
        debug_assert!(!self.contains(&key), "a request in flight is not admitted twice");
        self.table.insert_unique(hash(&key), key, hash);
    }

    /// `key` is answered.
    pub(crate) fn remove(&mut self, key: &DupKey) {
        if let Ok(e) = self.table.find_entry(hash(key), |k| k == key) {
            e.remove();
        }
    }
}

/// Originator, MTI class, STAN, transmission time, terminal, acquiring and forwarding
/// institution: two requests with the same key are one request sent twice.
///
/// Its hash leaves the terminal out: a reversal names its original in DE 90 (MTI, STAN,
/// DE 7) beside its own DE 32 and DE 33, and may leave DE 41 out (SPEC §9), so the original
/// is found by everything but the terminal ([`DupKey::same_original`]) in the same probe
/// (the window tells terminals apart by its index's tags: [`placed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DupKey {
    participant: usize,
    class: u8,
    stan: u32,
    time: u64,
    terminal: [u8; 8],
    /// DE 32 and DE 33 as `corridor_journal::entry::institution_code`s (0: absent).
    acquirer: u64,
    forwarder: u64,
}

impl std::hash::Hash for DupKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Not the terminal (see the type's docs); equal keys still hash alike.
        (self.participant, self.class, self.stan, self.time, self.acquirer, self.forwarder).hash(h);
    }
}

impl DupKey {
    /// A key of participant 0 that differs from another only by its STAN.
    #[cfg(test)]
    pub(crate) fn for_test(stan: u32) -> Self {
        let terminal = NO_TERMINAL;
        Self { participant: 0, class: 2, stan, time: 0, terminal, acquirer: 0, forwarder: 0 }
    }

    /// Whether a reversal naming `named` (its DE 90, DE 32, DE 33 and DE 41) reverses the
    /// request keyed `self`: everything but the terminal is the same, and the terminals
    /// may name each other ([`corridor_journal::entry::terminal_may_name`]: never another
    /// terminal's request).
    pub(crate) fn same_original(&self, named: &Self) -> bool {
        corridor_journal::entry::terminal_may_name(&named.terminal, &self.terminal)
            && Self { terminal: named.terminal, ..*self } == *named
    }

    /// The engine's key for a journaled one, whose participant is `participant`.
    pub(crate) fn from_journal<S>(participant: usize, k: &corridor_journal::entry::Key<S>) -> Self {
        Self {
            participant,
            class: k.class,
            stan: k.stan,
            time: k.time,
            terminal: k.terminal,
            acquirer: k.acquirer,
            forwarder: k.forwarder,
        }
    }

    /// The journal's key for this one, whose participant's configured id is `id`.
    pub(crate) fn journal_ref(self, id: &str) -> corridor_journal::entry::KeyRef<'_> {
        corridor_journal::entry::KeyRef {
            participant: id,
            class: self.class,
            stan: self.stan,
            time: self.time,
            terminal: self.terminal,
            acquirer: self.acquirer,
            forwarder: self.forwarder,
        }
    }

    /// The key of the request a participant's reversal `msg` (keyed `own`) reverses: DE 90's
    /// original MTI class, STAN and DE 7 (else the reversal's own DE 11 and DE 7, class 2),
    /// its DE 41.
    pub(crate) fn original_of(own: Self, msg: &Msg<'_>) -> Self {
        let mut k = own;
        k.class = 2;
        // DE 90 is numeric: BCD on native links, so decoded, not borrowed.
        let mut scratch = [0u8; corridor_wire::limits::FIELD_UNITS_MAX];
        let data = msg.field(corridor_wire::de::ORIGINAL_DATA).map(|f| f.value_into(&mut scratch));
        if let Some(d) = data.filter(|d| d.len() >= 20 && d[..20].iter().all(u8::is_ascii_digit)) {
            let num = |b: &[u8]| b.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
            k.class = d[1] - b'0';
            // Six digits: below 10^6.
            k.stan = num(&d[4..10]) as u32;
            k.time = num(&d[10..20]);
        }
        k
    }

    /// The participant.
    pub(crate) fn participant(&self) -> usize {
        self.participant
    }

    /// The key of `msg`, from participant `participant`, whose DE 11, DE 32 and DE 33 are
    /// `stan`, `acquirer` and `forwarder` (read by the caller, which checked them).
    pub(crate) fn of<B: AsRef<[u8]>>(
        participant: usize,
        stan: Stan,
        acquirer: Option<corridor_wire::InstitutionId>,
        forwarder: Option<corridor_wire::InstitutionId>,
        msg: &corridor_wire::Message<B, &corridor_wire::MessageIndex>,
    ) -> Self {
        debug_assert_eq!(Some(stan), msg.stan());
        debug_assert_eq!((acquirer, forwarder), (msg.acquirer_id(), msg.forwarder_id()));
        let mut terminal = NO_TERMINAL;
        if let Some(t) = msg.terminal_id() {
            let n = t.len().min(8);
            terminal[..n].copy_from_slice(&t[..n]);
        }
        let code = |id: Option<corridor_wire::InstitutionId>| {
            id.map_or(0, |i| corridor_journal::entry::institution_code(i.as_bytes()))
        };
        Self {
            participant,
            class: msg.mti().class(),
            stan: stan.value(),
            time: msg.transmission_time().map_or(0, |t| t.value()),
            terminal,
            acquirer: code(acquirer),
            forwarder: code(forwarder),
        }
    }

    /// The request's DE 11 (`None` only for a key read from a journal that holds no STAN).
    pub(crate) fn stan(&self) -> Option<Stan> {
        Stan::new(self.stan)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_reversal_names_its_own_terminals_request_or_one_without_a_terminal() {
        let with = |t: &[u8; 8]| DupKey { terminal: *t, ..DupKey::for_test(7) };
        let (none, one, two) = (with(b"        "), with(b"TERM0001"), with(b"TERM0002"));
        assert!(one.same_original(&none), "a reversal without DE 41");
        assert!(none.same_original(&one), "a reversal carrying the DE 41 the switch added");
        assert!(!one.same_original(&two) && !two.same_original(&one), "another terminal's request");
        assert!(!DupKey::for_test(8).same_original(&none), "another STAN");
    }

    /// The entries of the ring a search for `key` compares it with (cache misses each).
    fn compared(o: &Outcomes, key: &DupKey) -> usize {
        let mut n = 0;
        o.index.find(placed(key), |_| {
            n += 1;
            false
        });
        n
    }

    #[test]
    fn a_search_compares_almost_no_other_key_whatever_the_terminals() {
        let now = Instant::now();
        let window = Duration::from_secs(3600);
        let with = |t: u8, stan: u32| DupKey { terminal: [b'A' + t; 8], ..DupKey::for_test(stan) };
        // Eight terminals that number their own requests: each STAN from each of them.
        let mut o = Outcomes::with_capacity(1 << 16);
        for stan in 0..4_000 {
            for t in 0..8 {
                o.insert(with(t, stan), outcome(0), now, window);
            }
        }
        let ninth: usize = (0..4_000).map(|stan| compared(&o, &with(8, stan))).sum();
        assert!(ninth < 200, "a ninth terminal's 4,000 keys compared with {ninth} entries");
        assert_eq!(compared(&o, &with(3, 17)), 1, "its own");
        // One terminal, a full window of the largest size (its index half full, every bit
        // of the home hash a home): keys that share a home still differ in their tags.
        let mut o = Outcomes::with_capacity(OUTCOMES_MAX);
        let full = u32::try_from(OUTCOMES_MAX).unwrap_or(u32::MAX);
        for stan in 0..full {
            o.insert(with(0, stan), outcome(0), now, window);
        }
        let absent: usize = (full..full + 50_000).map(|stan| compared(&o, &with(0, stan))).sum();
        assert!(absent < 500, "50,000 absent keys compared with {absent} entries");
    }

    #[test]
    fn keys_that_differ_only_by_their_terminals_are_found_and_name_their_originals() {
        // One STAN and DE 7 from 3,000 terminals.
        let now = Instant::now();
        let window = Duration::from_secs(3600);
        let terminal = |i: u32| {
            let mut t = *b"T0000000";
            t[1..].copy_from_slice(format!("{i:07}").as_bytes());
            t
        };
        let with = |i: u32| DupKey { terminal: terminal(i), ..DupKey::for_test(7) };
        let mut o = Outcomes::with_capacity(1 << 16);
        for i in 0..3_000 {
            o.insert(with(i), outcome(0), now, window);
        }
        for i in [0, 1, 64, 2_999] {
            assert_eq!(o.get(&with(i), now, window), Some(outcome(0)));
            assert_eq!(o.same_original(&with(i)), Some(with(i)), "a reversal with its terminal");
        }
        assert_eq!(o.get(&with(3_000), now, window), None);
        let none = DupKey::for_test(7);
        // Without DE 41: one of the first ORIGINAL_CANDIDATES_MAX it is compared with.
        let found = o.same_original(&none).expect("an original among the candidates");
        assert!(found.same_original(&none));
        // A request without a terminal: named by its reversal with or without one.
        o.insert(DupKey::for_test(8), outcome(0), now, window);
        let added = DupKey { terminal: terminal(5), ..DupKey::for_test(8) };
        assert_eq!(o.same_original(&added), Some(DupKey::for_test(8)), "the terminal the switch added");
        assert_eq!(o.same_original(&DupKey::for_test(8)), Some(DupKey::for_test(8)));
        assert_eq!(o.same_original(&DupKey::for_test(9)), None, "another STAN");
        // Past the candidates, none: a terminal's request 3,000 entries into the run.
        let mut crowded = Outcomes::with_capacity(1 << 16);
        for i in 0..3_000 {
            crowded.insert(DupKey { stan: 1, ..with(i) }, outcome(0), now, window);
        }
        let mut compared = 0;
        let named = DupKey { stan: 1, ..none };
        let _ = crowded.index.find_sharing_home(placed(&named), ORIGINAL_CANDIDATES_MAX, |_| {
            compared += 1;
            false
        });
        assert_eq!(compared, ORIGINAL_CANDIDATES_MAX, "at most the bound of them read");
        // A request without a terminal behind them all is named by a reversal with one.
        crowded.insert(named, outcome(0), now, window);
        let reversal = DupKey { stan: 1, ..with(5_000) };
        assert_eq!(crowded.same_original(&reversal), Some(named), "found by its key, not among candidates");
    }

    #[test]
    fn the_index_is_at_most_half_full_and_no_larger() {
        let slots = |o: &Outcomes| o.index.bytes() / 8;
        for cap in [1, 7, 1000, 1 << 16, 1_500_000, OUTCOMES_MAX] {
            let o = Outcomes::with_capacity(cap);
            let n = slots(&o);
            assert!(n >= 2 * o.cap, "{cap}: {n} slots");
            assert!(n <= (4 * o.cap).max(16), "{cap}: {n} slots");
        }
        assert_eq!(slots(&Outcomes::with_capacity(OUTCOMES_MAX)), 2 * OUTCOMES_MAX);
    }

    #[test]
    fn a_full_window_keeps_its_index_to_its_ring_through_a_million_evictions() {
        // Keys whose hashes share their home slots' neighbourhoods come and go as a full
        // window turns over: each eviction moves back what probed past the entry it removes.
        let (cap, window) = (1_000, Duration::from_secs(3600));
        let mut o = Outcomes::with_capacity(cap);
        let now = Instant::now();
        let reserved = o.index.bytes();
        for n in 0..1_000_000u32 {
            o.insert(key(n), outcome(0), now, window);
        }
        assert_eq!(o.len(), cap);
        // What it holds besides: forgotten ones a sweep has not come to yet.
        let (taken, slots) = (o.index.len(), o.index.bytes() / 8);
        assert!(taken >= cap && taken <= cap + slots / OUTCOMES_SWEEP_SLOTS, "{taken} slots taken");
        assert_eq!(o.index.bytes(), reserved, "the index never grew");
        for n in 999_000..1_000_000 {
            assert!(o.contains(&key(n)), "{n} is in the window");
        }
        for n in (0..999_000).step_by(997) {
            assert!(!o.contains(&key(n)), "{n} was evicted");
        }
    }

    #[test]
    fn positions_past_what_the_index_holds_wrap_and_are_still_found() {
        // Entries numbered across 2^31, where the index's positions wrap to 0 (from a
        // multiple of the bound: the ring fills from its first slot).
        let (cap, window, now) = (1_000, Duration::from_secs(3600), Instant::now());
        let mut o = Outcomes::with_capacity(cap);
        o.next = (HELD_MASK + 1 - 1_500) / cap as u64 * cap as u64;
        assert!(o.next + 3_000 > HELD_MASK + 1);
        for n in 0..3_000u32 {
            o.insert(key(n), outcome(1), now, window);
        }
        for n in 2_000..3_000 {
            assert_eq!(o.get(&key(n), now, window), Some(outcome(1)), "{n} is in the window");
        }
        for n in 0..2_000 {
            assert!(!o.contains(&key(n)), "{n} was evicted");
        }
        assert_eq!(o.len(), cap);
    }

    fn key(n: u32) -> DupKey {
        DupKey {
            participant: (n % 3) as usize,
            class: 2,
            stan: n,
            time: 1_201_103_000,
            terminal: *b"TERM0001",
            acquirer: 12_345_678,
            forwarder: 0,
        }
    }

    fn outcome(code: u8) -> Outcome {
        Outcome {
            code: ResponseCode([b'0', b'0' + code % 10]),
            auth: None,
            reversed: false,
            seq: 0,
            sent_stan: None,
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u8),
        Get(u32),
        Reverse(u32),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..40u32, any::<u8>()).prop_map(|(k, c)| Op::Insert(k, c)),
            (0..40u32).prop_map(Op::Get),
            (0..40u32).prop_map(Op::Reverse),
            (0..300u64).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// The ring and its index answer as a plain map with a queue of insertion times
        /// does: the same outcomes, the same forgetting (by age and at the bound).
        #[test]
        fn the_ring_answers_as_a_map_with_an_expiry_queue(cap in 1usize..12, ops in proptest::collection::vec(op(), 1..200)) {
            let window = Duration::from_millis(500);
            let t0 = Instant::now();
            let mut now = t0;
            let mut ring = Outcomes::with_capacity(cap);
            let mut map: BTreeMap<u32, Outcome> = BTreeMap::new();
            let mut order: VecDeque<(Instant, u32)> = VecDeque::new();
            let expire = |map: &mut BTreeMap<u32, Outcome>, order: &mut VecDeque<(Instant, u32)>, now: Instant| {
                while order.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > window) {
                    if let Some((_, k)) = order.pop_front() {
                        map.remove(&k);
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Insert(k, c) => {
                        ring.insert(key(k), outcome(c), now, window);
                        expire(&mut map, &mut order, now);
                        if let Some(o) = map.get_mut(&k) {
                            *o = outcome(c);
                        } else {
                            if map.len() >= cap {
                                if let Some((_, old)) = order.pop_front() {
                                    map.remove(&old);
                                }
                            }
                            map.insert(k, outcome(c));
                            order.push_back((now, k));
                        }
                    }
                    Op::Get(k) => {
                        expire(&mut map, &mut order, now);
                        prop_assert_eq!(ring.get(&key(k), now, window), map.get(&k).copied());
                    }
                    Op::Reverse(k) => {
                        // Found, it is marked (nothing expires); else remembered anew.
                        ring.mark_reversed(key(k), Some(ResponseCode::TIMEOUT), now, window);
                        if !map.contains_key(&k) {
                            expire(&mut map, &mut order, now);
                        }
                        if let Some(o) = map.get_mut(&k) {
                            o.reversed = true;
                            o.code = ResponseCode::TIMEOUT;
                            o.auth = None;
                        } else {
                            if map.len() >= cap {
                                if let Some((_, old)) = order.pop_front() {
                                    map.remove(&old);
                                }
                            }
                            map.insert(k, Outcome { code: ResponseCode::TIMEOUT, auth: None, reversed: true, seq: 0, sent_stan: None });
                            order.push_back((now, k));
                        }
                    }
                    Op::Wait(ms) => now += Duration::from_millis(ms),
                }
                prop_assert_eq!(ring.len(), map.len());
                prop_assert!(ring.len() <= cap);
            }
        }
    }
}
