//! A hash index of positions: where a key's entry lies in a window kept in order (the
//! engine's duplicate window, a checkpoint's outcomes), for windows of up to a million
//! entries probed once or twice a transaction.
//!
//! The index holds positions, never keys: its user keeps the entries and says, for a
//! candidate position, whether the entry there is the one it looks for. Every slot is eight
//! bytes — the top 32 bits of the key's (mixed) hash, then the position plus one, 0 for an
//! empty slot — in one array, probed linearly from the slot the hash's top bits name, kept
//! at most half full. So a probe is one cache line (a line holds eight slots; a search that
//! misses looks at 2.5 of them on average at half full), where a table of control bytes
//! beside a table of positions is two lines far apart, each a cache miss once the window
//! outgrows the cache (the engine's profile: the window's probe 11% of the switch at a
//! million entries, most of it on the two loads). The stored 32 bits of the hash also give
//! each slot's home, so a slot can be removed without a tombstone (the entries after it move
//! back, Knuth's algorithm R) and the table doubled without the user's hash of anything.

/// The most positions an index holds: a window's bound is far below it.
pub const POSITIONS_MAX: u32 = u32::MAX - 1;

/// The bits of a window's entry number its index holds ([`held`]): far more than a window
/// keeps (and than the forgotten entries an index of [`PositionIndex::insert_over`] holds
/// besides), so which entry a held number stands for is plain from the window's own count.
pub const HELD_MASK: u64 = (1 << 31) - 1;

/// Entry number `n` of a window as its index holds it.
#[must_use]
pub fn held(n: u64) -> u32 {
    u32::try_from(n & HELD_MASK).unwrap_or(0)
}

/// A cache line's bytes, and the slots it holds.
const LINE_BYTES: usize = 64;
const SLOT_BYTES: usize = std::mem::size_of::<u64>();
const SLOTS_PER_LINE: usize = LINE_BYTES / SLOT_BYTES;

/// The fewest slots an index that holds anything has.
const SLOTS_MIN: usize = 16;

/// Positions of a window's entries by their keys' hashes. See the module's docs.
#[derive(Clone, Debug, Default)]
pub struct PositionIndex {
    /// A power of two of them, or none; 0 is empty, else `tag << 32 | (position + 1)`.
    slots: Vec<u64>,
    /// Taken slots: at most half of `slots` — three quarters where forgotten positions
    /// wait to be swept ([`PositionIndex::insert_over`]).
    len: usize,
    /// `64 - log2(slots.len())`: a hash's top bits, shifted down by it, are its home slot.
    shift: u32,
    /// The slot the next [`PositionIndex::sweep`] begins at.
    swept: usize,
}

/// Asks for the cache line of `slot` (a hint: it has no effect a program can see).
#[cfg(target_arch = "x86_64")]
fn prefetch(slot: &u64) {
    safe_arch::prefetch_t0(slot);
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_: &u64) {}

/// The position a taken slot holds.
fn position(slot: u64) -> u32 {
    #[allow(clippy::cast_possible_truncation)] // the slot's low half
    let at = (slot as u32).wrapping_sub(1);
    at
}

/// The hash as the index uses it: multiplied out and folded, so every bit of the user's hash
/// (`FxHash`'s low bits are its weak ones) moves the top bits that pick the home slot.
fn mix(hash: u64) -> u64 {
    let m = u128::from(hash) * 0x9E37_79B9_7F4A_7C15_u128;
    #[allow(clippy::cast_possible_truncation)] // the two halves, folded
    let folded = (m >> 64) as u64 ^ m as u64;
    folded
}

/// A slot's tag: the mixed hash's top 32 bits (its home is their top bits).
fn tag(mixed: u64) -> u64 {
    mixed & !0xFFFF_FFFF
}

/// The bits of a [`Placed::split`] hash its home is taken from: the homes of an index of up
/// to [`SPLIT_SLOTS_MAX`] slots.
const SPLIT_HOME_BITS: u32 = 21;

/// The most slots an index of [`Placed::split`] hashes may have: one with more would take
/// homes from bits that are not the home hash's.
pub const SPLIT_SLOTS_MAX: usize = 1 << SPLIT_HOME_BITS;

/// A key's hash as the index places it (mixed: see `mix`). A plain hash converts into one
/// ([`Placed::of`]); [`Placed::split`] makes one whose home and tag come from two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed(u64);

impl Placed {
    /// Home and tag from `hash`.
    #[must_use]
    pub fn of(hash: u64) -> Self {
        Self(mix(hash))
    }

    /// The home (and the tag's top bits) from `home`, the rest of the tag from `rest`: keys
    /// whose `home` agrees share a run of the index — where
    /// [`PositionIndex::find_sharing_home`] finds them all — and tell each other apart there
    /// by `rest`, each without its user's look at its entry. For an index of at most
    /// [`SPLIT_SLOTS_MAX`] slots.
    #[must_use]
    pub fn split(home: u64, rest: u64) -> Self {
        let home_bits = !0u64 << (64 - SPLIT_HOME_BITS);
        Self((mix(home) & home_bits) | (mix(rest) & !home_bits))
    }
}

impl From<u64> for Placed {
    fn from(hash: u64) -> Self {
        Self::of(hash)
    }
}

impl PositionIndex {
    /// Room for `n` positions without growing (at most half the slots full).
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        let mut index = Self::default();
        if n > 0 {
            index.allocate(n.saturating_mul(2).next_power_of_two().max(SLOTS_MIN));
        }
        index
    }

    fn allocate(&mut self, slots: usize) {
        debug_assert!(slots.is_power_of_two() && slots <= 1 << 32);
        // Zeroed by the allocator (pages the kernel maps as they are first touched).
        self.slots = vec![0; slots];
        (self.len, self.swept) = (0, 0);
        self.shift = 64 - slots.trailing_zeros();
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, mixed: u64) -> usize {
        // `shift` is at least 32: the home fits a usize, and it is the tag's top bits.
        usize::try_from(mixed >> self.shift).unwrap_or(0)
    }

    /// Positions held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds nothing (its slots kept).
    pub fn clear(&mut self) {
        self.slots.fill(0);
        self.len = 0;
    }

    /// Asks the processor for the cache line a search under `hash` begins in, and returns
    /// at once: a search a little later finds it in the cache, where at a million entries
    /// it would wait for memory (a random line of 16 MiB). Work done between the two hides
    /// the wait.
    ///
    /// A search goes on from its home to the first empty slot — some four slots at the
    /// fill a window keeps its index at — so one that begins in the second half of its line
    /// often ends in the next: that line is asked for too.
    pub fn prefetch(&self, hash: impl Into<Placed>) {
        if self.slots.is_empty() {
            return;
        }
        let home = self.home(hash.into().0);
        let slot = &self.slots[home];
        prefetch(slot);
        let in_line = (std::ptr::from_ref(slot).addr() % LINE_BYTES) / SLOT_BYTES;
        if in_line >= SLOTS_PER_LINE / 2 {
            prefetch(&self.slots[(home + SLOTS_PER_LINE - in_line) & self.mask()]);
        }
    }

    /// The first position under `hash` that `is` accepts.
    pub fn find(&self, hash: impl Into<Placed>, is: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        self.search::<false>(hash.into().0, 32, 0, is)
    }

    /// The first position among the first `candidates` whose hashes share `placed`'s home
    /// part ([`Placed::split`]) that `is` accepts: keys that agree in everything their
    /// home hash is made of, whatever the rest. Past `candidates` it answers `None`.
    pub fn find_sharing_home(
        &self,
        placed: Placed,
        candidates: usize,
        is: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        self.search::<true>(placed.0, 64 - SPLIT_HOME_BITS, candidates, is)
    }

    /// From `mixed`'s home to the first empty slot (at most half full: an empty slot ends
    /// every search), the first position `is` accepts among the slots whose bits above `low`
    /// are `mixed`'s (`low` 32: the whole tag) — when `BOUNDED`, among the first `candidates`
    /// of them (unbounded, no count is kept: the search a transaction makes twice).
    #[inline(always)]
    fn search<const BOUNDED: bool>(
        &self,
        mixed: u64,
        low: u32,
        candidates: usize,
        mut is: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        let mask = self.mask();
        let (mut i, mut asked) = (self.home(mixed), 0);
        while !BOUNDED || asked < candidates {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s ^ mixed) >> low == 0 {
                if BOUNDED {
                    asked += 1;
                }
                let at = position(s);
                if is(at) {
                    return Some(at);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Room for `n` positions without growing: the slots grown now (once, while few are
    /// held) rather than doubled again and again as they come.
    pub fn reserve(&mut self, n: usize) {
        let slots = n.saturating_mul(2).next_power_of_two().clamp(SLOTS_MIN, 1 << 32);
        if slots > self.slots.len() {
            self.rehash(slots);
        }
    }

    /// Holds `at` under `hash` (the caller has not: one position, one entry). Doubles the
    /// slots when they would be more than half full.
    pub fn insert(&mut self, hash: impl Into<Placed>, at: u32) {
        assert!(at <= POSITIONS_MAX, "a position the index cannot hold");
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mixed = hash.into().0;
        self.put(tag(mixed) | u64::from(at + 1), self.home(mixed));
        self.len += 1;
    }

    /// Puts a slot's value at the first empty slot from `i`.
    fn put(&mut self, value: u64, mut i: usize) {
        let mask = self.mask();
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = value;
    }

    /// Twice the slots (or the first), every position moved to its home in them.
    fn grow(&mut self) {
        self.rehash((self.slots.len() * 2).max(SLOTS_MIN));
    }

    /// `slots` slots (a power of two, more than now), every position moved to its home in
    /// them.
    fn rehash(&mut self, slots: usize) {
        debug_assert!(slots.is_power_of_two() && slots > self.slots.len());
        let old = std::mem::take(&mut self.slots);
        let (len, shift) = (self.len, self.shift);
        self.allocate(slots);
        for s in old.into_iter().filter(|&s| s != 0) {
            // The tag's top bits are its home in the larger table too.
            self.put(s, self.home(s));
        }
        debug_assert!(shift == 0 || self.shift < shift);
        self.len = len;
    }

    /// No longer holds `at` under `hash`; whether it did.
    pub fn remove(&mut self, hash: impl Into<Placed>, at: u32) -> bool {
        if self.len == 0 {
            return false;
        }
        let mixed = hash.into().0;
        let (value, mask) = (tag(mixed) | u64::from(at.wrapping_add(1)), self.mask());
        let mut i = self.home(mixed);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return false;
            }
            if s == value {
                break;
            }
            i = (i + 1) & mask;
        }
        self.empty(i);
        true
    }

    /// Holds `at` under `hash` (the caller has not) in the first slot from its home that is
    /// empty or holds a position `gone` says its user has forgotten — for a user that
    /// forgets its oldest entries without removing them ([`PositionIndex::sweep`] does,
    /// in order). Such an index holds more than its user's entries, at most three quarters
    /// of its slots: past that, every forgotten position is swept at once, and the slots
    /// are doubled only if that was not enough.
    pub fn insert_over(&mut self, hash: impl Into<Placed>, at: u32, gone: impl Fn(u32) -> bool) {
        assert!(at <= POSITIONS_MAX, "a position the index cannot hold");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.sweep(self.slots.len(), &gone);
            if (self.len + 1) * 2 > self.slots.len() {
                self.grow();
            }
        }
        let mixed = hash.into().0;
        let (mask, mut i) = (self.mask(), self.home(mixed));
        // A forgotten position's slot may be taken: every search that passes it looks for
        // a position its user still holds, and the new one is reached from its home without
        // an empty slot between, as if it had been put at the first empty one.
        loop {
            let s = self.slots[i];
            if s == 0 {
                self.len += 1;
                break;
            }
            if gone(position(s)) {
                break;
            }
            i = (i + 1) & mask;
        }
        self.slots[i] = tag(mixed) | u64::from(at + 1);
    }

    /// Empties the slots among the next `n` (from where the last sweep stopped, round the
    /// table) that hold positions `gone` says are forgotten: at `n` slots an insert, no
    /// slot stays taken by a forgotten position for more than `slots / n` inserts. The
    /// slots read are consecutive — lines the processor fetches ahead — where a removal of
    /// each forgotten position as its user forgets it is a random line each.
    pub fn sweep(&mut self, n: usize, gone: impl Fn(u32) -> bool) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        for _ in 0..n.min(self.slots.len()) {
            let i = self.swept;
            // A slot emptied takes what probed past it: that one is looked at too.
            while self.slots[i] != 0 && gone(position(self.slots[i])) {
                self.empty(i);
            }
            self.swept = (i + 1) & mask;
        }
    }

    /// Empties slot `i` (taken): Algorithm R.
    fn empty(&mut self, i: usize) {
        let mask = self.mask();
        // Algorithm R: each slot after the hole that may sit there (its home is not between
        // the hole and itself) moves back into it, until an empty slot.
        let (mut hole, mut j) = (i, i);
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home(s);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
    }

    /// The slots' memory, bytes.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Every position the model holds is found under its hash, and nothing else is.
    fn agrees(index: &PositionIndex, model: &HashMap<u32, u64>) {
        assert_eq!(index.len(), model.len());
        for (&at, &h) in model {
            assert_eq!(index.find(h, |p| p == at), Some(at), "position {at} under {h:#x}");
        }
        assert!(index.len() * 2 <= index.slots.len().max(1), "more than half full");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(usize),
        Reserve(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Hashes from a few values: many collide whole (the same home, the same tag), and
        // neighbours' probes run into each other and wrap around the table's end.
        let hash = prop_oneof![0u64..8, any::<u64>()];
        prop::collection::vec(
            prop_oneof![
                3 => hash.prop_map(Op::Insert),
                2 => any::<usize>().prop_map(Op::Remove),
                1 => (0usize..64).prop_map(Op::Reserve),
            ],
            0..400,
        )
    }

    proptest! {
        #[test]
        fn an_index_finds_what_it_holds_through_inserts_removals_growth_and_reservations(ops in ops()) {
            let mut index = PositionIndex::default();
            let mut model: HashMap<u32, u64> = HashMap::new();
            let mut next = 0u32;
            // Positions the last reservation made room for.
            let mut room = 0;
            for op in ops {
                match op {
                    Op::Insert(h) => {
                        let slots = index.slots.len();
                        index.insert(h, next);
                        if model.len() < room {
                            prop_assert_eq!(index.slots.len(), slots, "grew inside its reservation");
                        }
                        model.insert(next, h);
                        next += 1;
                    }
                    Op::Remove(pick) if !model.is_empty() => {
                        let mut held: Vec<_> = model.iter().map(|(&a, &h)| (a, h)).collect();
                        held.sort_unstable();
                        let (at, h) = held[pick % held.len()];
                        prop_assert!(index.remove(h, at));
                        prop_assert!(!index.remove(h, at), "removed twice");
                        model.remove(&at);
                        prop_assert_eq!(index.find(h, |p| p == at), None);
                    }
                    Op::Remove(_) => prop_assert!(!index.remove(1, 0)),
                    Op::Reserve(n) => {
                        let slots = index.slots.len();
                        index.reserve(n);
                        prop_assert!(index.slots.len() >= slots, "a reservation shrank the slots");
                        room = n;
                    }
                }
                agrees(&index, &model);
            }
        }
    }

    proptest! {
        /// A user that forgets its oldest positions without removing them: every position
        /// it holds is found, none it forgot is, and the index is never more than three
        /// quarters full — as sweeps free forgotten slots a few at a time, inserts take
        /// them over, and the slots double under a window that outgrows them.
        #[test]
        fn an_index_whose_user_forgets_without_removing_finds_what_it_holds(
            hashes in prop::collection::vec(prop_oneof![0u64..8, any::<u64>()], 0..600),
            window in 1usize..80,
            sweep in 0usize..4,
            reserved in 0usize..40,
        ) {
            let mut index = PositionIndex::with_capacity(reserved);
            let mut held: std::collections::VecDeque<(u32, u64)> = std::collections::VecDeque::new();
            let mut forgot: Vec<(u32, u64)> = Vec::new();
            for (at, &h) in (0u32..).zip(&hashes) {
                if held.len() == window {
                    forgot.extend(held.pop_front());
                }
                let oldest = held.front().map_or(at, |&(a, _)| a);
                let gone = |p: u32| p < oldest;
                index.insert_over(h, at, gone);
                held.push_back((at, h));
                index.sweep(sweep, gone);
                prop_assert!(index.len() * 4 <= index.slots.len() * 3, "{} of {} slots", index.len(), index.slots.len());
                prop_assert!(index.len() >= held.len());
                for &(a, h) in &held {
                    prop_assert_eq!(index.find(h, |p| !gone(p) && p == a), Some(a), "position {} under {:#x}", a, h);
                }
                for &(a, h) in forgot.iter().rev().take(20) {
                    prop_assert_eq!(index.find(h, |p| !gone(p) && p == a), None);
                }
            }
            // A sweep of every slot leaves only what is held.
            let oldest = held.front().map_or(0, |&(a, _)| a);
            index.sweep(usize::MAX, |p| p < oldest);
            prop_assert_eq!(index.len(), held.len());
        }
    }

    #[test]
    fn a_removal_moves_back_what_probed_past_it_even_across_the_tables_end() {
        // Sixteen slots: hashes whose mixed top bits name the last slot, found by search.
        let mut index = PositionIndex::with_capacity(8);
        assert_eq!(index.slots.len(), 16);
        let last: Vec<u64> = (0u64..).filter(|&h| index.home(mix(h)) == 15).take(3).collect();
        let first = (0u64..).find(|&h| index.home(mix(h)) == 0).unwrap_or(0);
        for (at, &h) in (0u32..).zip(&last) {
            index.insert(h, at);
        }
        index.insert(first, 3);
        // Slots 15, 0, 1 hold the three; the one whose home is 0 was pushed to 2.
        assert_eq!(index.slots[15] as u32, 1);
        assert_eq!(index.slots[2] as u32, 4);
        assert!(index.remove(last[0], 0));
        // Each moved back one: the wrapped ones to 15 and 0, the home-0 one to 1.
        assert_eq!(index.slots[15] as u32, 2);
        assert_eq!(index.slots[0] as u32, 3);
        assert_eq!(index.slots[1] as u32, 4);
        assert_eq!(index.slots[2], 0);
        for (at, h) in [(1, last[1]), (2, last[2]), (3, first)] {
            assert_eq!(index.find(h, |p| p == at), Some(at));
        }
    }

    #[test]
    fn split_hashes_are_found_by_their_whole_hash_or_all_by_their_home_through_growth() {
        // Five homes, a hundred keys each, placed as they come into a table that doubles.
        let mut index = PositionIndex::default();
        let placed =
            |at: u32| Placed::split(u64::from(at % 5), u64::from(at).wrapping_mul(0x5851_F42D_4C95_7F2D));
        for at in 0..500 {
            index.insert(placed(at), at);
        }
        assert!(index.slots.len() >= 1024 && index.slots.len() <= SPLIT_SLOTS_MAX);
        // Told apart by the rest: a class's hundred share their home, one in 2^11 a tag.
        let mut matched = 0;
        for at in 0..500 {
            assert_eq!(index.find(placed(at), |p| p == at), Some(at));
            let _ = index.find(placed(at), |_| {
                matched += 1;
                false
            });
        }
        assert!((500..600).contains(&matched), "{matched} tags matched for 500 keys");
        for home in 0..5u32 {
            let mut seen = Vec::new();
            let found = index.find_sharing_home(placed(home), usize::MAX, |p| {
                seen.push(p);
                false
            });
            assert_eq!(found, None);
            seen.sort_unstable();
            assert_eq!(seen, (0..500).filter(|p| p % 5 == home).collect::<Vec<_>>(), "home {home}");
            let mut asked = 0;
            let _ = index.find_sharing_home(placed(home), 7, |_| {
                asked += 1;
                false
            });
            assert_eq!(asked, 7);
        }
    }

    #[test]
    fn a_prefetch_from_any_home_stays_inside_the_table() {
        // From a home in the last line's second half the line after is the table's first.
        for capacity in [8, 9, 100, 1000] {
            let index = PositionIndex::with_capacity(capacity);
            let slots = index.slots.len();
            let mut homes = vec![false; slots];
            for h in (0u64..).take(slots * 64) {
                homes[index.home(mix(h))] = true;
                index.prefetch(h);
            }
            assert!(homes.iter().all(|&b| b), "every home of {slots} asked for");
        }
        PositionIndex::default().prefetch(7);
    }

    #[test]
    fn a_window_of_a_million_is_half_full_at_most_in_sixteen_mib() {
        let n = 1 << 20;
        let mut index = PositionIndex::with_capacity(n);
        let slots = index.slots.len();
        for at in 0..u32::try_from(n).unwrap_or(0) {
            index.insert(u64::from(at).wrapping_mul(0x5851_F42D_4C95_7F2D), at);
        }
        assert_eq!(index.slots.len(), slots, "reserved room is not grown into");
        assert_eq!(index.bytes(), 16 << 20);
        assert_eq!(index.find(7u64.wrapping_mul(0x5851_F42D_4C95_7F2D), |p| p == 7), Some(7));
    }
}
