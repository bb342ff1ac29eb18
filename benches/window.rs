//! The duplicate window's index at a million entries, as a transaction uses it: a new
//! request's key looked up (not there), then remembered, the oldest forgotten to make room.
//!
//! - `window/position_index`: `corridor_journal::positions::PositionIndex` (what the engine's
//!   window and a checkpoint's outcomes use): one array of slots, one cache line a probe.
//! - `window/position_index_forgetting`: the same index as the engine's window uses it: the
//!   oldest forgotten without a removal, its slot swept later in order.
//! - `window/hashbrown`: the index it replaced, kept here as the baseline measured in the
//!   same run: a `hashbrown::HashTable<u32>` of ring positions (control bytes beside slots).
//!
//! Both index a ring of 64-byte entries, a million of them, keys hashed with `FxHash` as
//! the engine's are. Run with `cargo bench -p corridor-benches --bench window`.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // criterion's macros

use std::hash::BuildHasher as _;

use corridor_journal::positions::PositionIndex;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const ENTRIES: usize = 1 << 20;

/// A duplicate key's size and shape: participant, class and STAN, time, terminal, acquirer,
/// forwarder.
type Key = [u64; 6];

fn key(n: u64) -> Key {
    [n % 7, n, 1_201_103_000 + n / 1_000, 0x2020_2020_2020_2020, 12_345_678, 0]
}

fn hash(k: &Key) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(k)
}

/// The ring both indexes point into (a key and what the engine keeps beside it).
struct Ring {
    keys: Vec<(Key, [u64; 2])>,
    head: usize,
    next: u64,
}

impl Ring {
    fn full() -> Self {
        Self { keys: (0..ENTRIES as u64).map(|n| (key(n), [n, 0])).collect(), head: 0, next: ENTRIES as u64 }
    }
}

trait Index {
    fn find(&self, ring: &Ring, k: &Key) -> Option<u32>;
    fn insert(&mut self, ring: &Ring, k: &Key, at: u32);
    fn remove(&mut self, k: &Key, at: u32);
}

impl Index for PositionIndex {
    fn find(&self, ring: &Ring, k: &Key) -> Option<u32> {
        PositionIndex::find(self, hash(k), |p| ring.keys[p as usize].0 == *k)
    }
    fn insert(&mut self, _: &Ring, k: &Key, at: u32) {
        PositionIndex::insert(self, hash(k), at);
    }
    fn remove(&mut self, k: &Key, at: u32) {
        PositionIndex::remove(self, hash(k), at);
    }
}

impl Index for hashbrown::HashTable<u32> {
    fn find(&self, ring: &Ring, k: &Key) -> Option<u32> {
        hashbrown::HashTable::find(self, hash(k), |&p| ring.keys[p as usize].0 == *k).copied()
    }
    fn insert(&mut self, ring: &Ring, k: &Key, at: u32) {
        self.insert_unique(hash(k), at, |&p| hash(&ring.keys[p as usize].0));
    }
    fn remove(&mut self, k: &Key, at: u32) {
        if let Ok(e) = self.find_entry(hash(k), |&p| p == at) {
            e.remove();
        }
    }
}

/// One transaction's use of the window, full: the new key is not found; at its answer it is
/// looked up again and remembered in the oldest's place.
fn transaction<I: Index>(index: &mut I, ring: &mut Ring) {
    let k = key(ring.next);
    ring.next += 1;
    assert!(index.find(ring, &k).is_none());
    assert!(index.find(ring, &k).is_none());
    let head = ring.head;
    let old = ring.keys[head].0;
    index.remove(&old, head as u32);
    ring.keys[head] = (k, [ring.next, 0]);
    index.insert(ring, &k, head as u32);
    ring.head = (head + 1) % ENTRIES;
}

/// [`transaction`] as the engine's window does it now: the oldest forgotten without a
/// removal from the index (its slot passed over as gone, taken over by an insert, freed by a
/// sweep of `OUTCOMES_SWEEP_SLOTS` in order a transaction). Positions are the entries' numbers since the
/// first, `ring.next - ENTRIES ..` held, a number `n` at ring slot `n % ENTRIES`.
fn forgetting_transaction(index: &mut PositionIndex, ring: &mut Ring) {
    let n = ring.next;
    let k = key(n);
    ring.next += 1;
    let oldest = u32::try_from(n - ENTRIES as u64 + 1).unwrap();
    let keys = &ring.keys;
    let at = |p: u32| (p >= oldest).then_some(p as usize % ENTRIES);
    let find = |index: &PositionIndex| index.find(hash(&k), |p| at(p).is_some_and(|i| keys[i].0 == k));
    assert!(find(index).is_none());
    assert!(find(index).is_none());
    let slot = n as usize % ENTRIES;
    ring.keys[slot] = (k, [ring.next, 0]);
    index.insert_over(hash(&k), u32::try_from(n).unwrap(), |p| p < oldest);
    index.sweep(corridor_engine::limits::OUTCOMES_SWEEP_SLOTS, |p| p < oldest);
}

fn filled<I: Index>(mut index: I, ring: &Ring) -> I {
    for (at, (k, _)) in ring.keys.iter().enumerate() {
        index.insert(ring, k, at as u32);
    }
    index
}

fn window(c: &mut Criterion) {
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(1));
    let mut ring = Ring::full();
    let mut index = filled(PositionIndex::with_capacity(ENTRIES), &ring);
    g.bench_function("position_index", |b| b.iter(|| transaction(&mut index, &mut ring)));
    let mut ring = Ring::full();
    let mut index = filled(PositionIndex::with_capacity(ENTRIES), &ring);
    g.bench_function("position_index_forgetting", |b| {
        b.iter(|| forgetting_transaction(&mut index, &mut ring))
    });
    let mut ring = Ring::full();
    // As the engine reserved it: 7/4 of the window, at least two slots an entry.
    let mut table = filled(hashbrown::HashTable::with_capacity(ENTRIES * 7 / 4), &ring);
    g.bench_function("hashbrown", |b| b.iter(|| transaction(&mut table, &mut ring)));
    // Finding a key that is there (a repeat): the index, then its entry in the ring.
    let ring = Ring::full();
    let index = filled(PositionIndex::with_capacity(ENTRIES), &ring);
    let table = filled(hashbrown::HashTable::with_capacity(ENTRIES * 7 / 4), &ring);
    let mut n = 0u64;
    let mut next = || {
        n = (n + 0x9E37_79B9) % ENTRIES as u64;
        key(n)
    };
    g.bench_function("position_index_repeat", |b| {
        b.iter_batched(&mut next, |k| Index::find(&index, &ring, &k).unwrap(), BatchSize::SmallInput)
    });
    g.bench_function("hashbrown_repeat", |b| {
        b.iter_batched(&mut next, |k| Index::find(&table, &ring, &k).unwrap(), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, window);
criterion_main!(benches);
