//! The store-and-forward queue as a type: its entries, the order they were stored in, the
//! exception queue, and the indexes that point into them (a participant's reversal by the
//! request it reverses, earlier transmissions by their correlation, late requests by theirs).
//!
//! Its fields are private so its invariants hold by construction, whatever the engine does:
//!
//! - every live entry's id is in `order` (finished ones are swept from it, so it stays
//!   within twice the live entries plus a constant);
//! - `by_original` holds exactly the live entries a participant sent that name an original
//!   (an entry moved to the exception queue leaves it, and comes back into it on a retry);
//! - `attempts` holds exactly the earlier transmissions of live entries;
//! - an id is live in at most one of the queue and the exception queue.
//!
//! What is sent, when, and what a transmission's acknowledgement does is the engine's
//! (`reversals`); this type keeps the books.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Instant,
};

use bytes::Bytes;
use corridor_wire::Mti;
use rustc_hash::FxHashMap;

use crate::{
    duplicates::DupKey,
    limits::{LATE_MAX, REVERSALS_MAX},
    link::LinkId,
};

/// A store-and-forward entry waiting for its acknowledgement.
pub(crate) struct Reversal {
    pub(crate) destination: usize,
    /// The message in the native dialect, in its first transmission's form.
    pub(crate) body: Bytes,
    /// That form's MTI (0420, 0120, 0220): repeats go as its repeat, and its response is
    /// what acknowledges it.
    pub(crate) mti: Mti,
    pub(crate) attempts: u32,
    pub(crate) outstanding: Option<(LinkId, u64)>,
    /// Keys of earlier transmissions (indexed in [`Saf`]).
    earlier: Vec<(LinkId, u64)>,
    /// Its id in the journal: the sequence number of its `ReversalQueued` record (0
    /// without a journal). Its transmissions wait for that record.
    pub(crate) journal_id: u64,
    /// When it was stored: its age limit counts from this.
    pub(crate) queued: Instant,
    /// For a reversal: the key of the request it reverses.
    pub(crate) original: Option<DupKey>,
    /// Whether a participant sent it (else the switch made it).
    pub(crate) from_participant: bool,
    /// The link its original was forwarded on, when the switch reverses a request it
    /// forwarded: while that connection is open the reversal goes on it, behind the
    /// original, never on another link of the destination where it could arrive first.
    pub(crate) follows: Option<LinkId>,
}

impl Reversal {
    /// A new entry, never sent: `attempts` transmissions already made (an entry resumed
    /// from the journal).
    #[allow(clippy::too_many_arguments)] // an entry's fields
    pub(crate) fn new(
        destination: usize,
        body: Bytes,
        mti: Mti,
        attempts: u32,
        journal_id: u64,
        queued: Instant,
        original: Option<DupKey>,
        from_participant: bool,
        follows: Option<LinkId>,
    ) -> Self {
        Self {
            destination,
            body,
            mti,
            attempts,
            outstanding: None,
            earlier: Vec::new(),
            journal_id,
            queued,
            original,
            from_participant,
            follows,
        }
    }

    /// The request a participant's own reversal reverses (the key it is indexed by).
    fn indexed_original(&self) -> Option<DupKey> {
        self.original.filter(|_| self.from_participant)
    }
}

/// A request that timed out, remembered for its late response.
pub(crate) struct Late {
    pub(crate) reversal: Option<u64>,
    pub(crate) destination: usize,
    pub(crate) body: Bytes,
    pub(crate) dup: DupKey,
}

/// The store-and-forward queue. See the module docs.
#[derive(Default)]
pub(crate) struct Saf {
    entries: FxHashMap<u64, Reversal>,
    /// Entry ids in the order they were stored (finished ones swept now and then).
    order: VecDeque<u64>,
    /// The last id given without a journal (with one, an entry's id is its record's).
    last_id: u64,
    /// Entries past their limits, until an operator acts.
    exceptions: BTreeMap<u64, Reversal>,
    /// A participant's stored reversal by the key of the request it reverses.
    by_original: FxHashMap<DupKey, u64>,
    /// Earlier transmissions of entries still open, by correlation: an acknowledgement of
    /// any of them completes the entry.
    attempts: FxHashMap<(LinkId, u64), u64>,
    /// Requests that timed out, by the correlation they went with.
    late: FxHashMap<(LinkId, u64), Late>,
}

impl Saf {
    /// A fresh id for an entry the switch stores without a journal.
    pub(crate) fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Entries waiting for their acknowledgement.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether another entry may be stored ([`REVERSALS_MAX`]).
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < REVERSALS_MAX
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.entries.contains_key(&id)
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Reversal> {
        self.entries.get(&id)
    }

    /// Every entry waiting, in no order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Reversal> {
        self.entries.values()
    }

    /// Every entry waiting, in the order they were stored.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = (u64, &Reversal)> {
        self.order.iter().filter_map(|&id| Some((id, self.entries.get(&id)?)))
    }

    /// The entries for `destination` with no transmission outstanding, in the order they
    /// were stored.
    pub(crate) fn waiting_for(&self, destination: usize) -> Vec<u64> {
        self.in_order()
            .filter(|(_, r)| r.destination == destination && r.outstanding.is_none())
            .map(|(id, _)| id)
            .collect()
    }

    /// A participant's stored reversal of request `original`.
    pub(crate) fn by_original(&self, original: &DupKey) -> Option<u64> {
        self.by_original.get(original).copied()
    }

    /// Stores entry `id` last in the order.
    pub(crate) fn insert(&mut self, id: u64, r: Reversal) {
        assert!(r.outstanding.is_none() && r.earlier.is_empty(), "an entry is stored before it is sent");
        assert!(!self.exceptions.contains_key(&id), "reversal {id}: in the exception queue");
        if let Some(k) = r.indexed_original() {
            self.by_original.insert(k, id);
        }
        let replaced = self.entries.insert(id, r);
        assert!(replaced.is_none(), "reversal {id}: stored twice");
        self.order.push_back(id);
        if self.order.len() > 2 * self.entries.len() + 64 {
            // Finished entries leave their ids behind; sweep them so the order stays bounded.
            let live = &self.entries;
            self.order.retain(|id| live.contains_key(id));
        }
    }

    /// Takes entry `id` out with every index pointing at it. Its outstanding transmission,
    /// if any, is the caller's to end.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Reversal> {
        let r = self.entries.remove(&id)?;
        if let Some(k) = r.indexed_original() {
            if self.by_original.get(&k) == Some(&id) {
                self.by_original.remove(&k);
            }
        }
        for key in &r.earlier {
            self.attempts.remove(key);
        }
        Some(r)
    }

    /// Entry `id`'s transmission went with correlation `key` on `link`.
    pub(crate) fn sent(&mut self, id: u64, link: LinkId, key: u64) {
        if let Some(r) = self.entries.get_mut(&id) {
            r.attempts += 1;
            r.outstanding = Some((link, key));
        }
    }

    /// A transmission of entry `id` could not be written: it counts as an attempt.
    pub(crate) fn failed(&mut self, id: u64) {
        if let Some(r) = self.entries.get_mut(&id) {
            r.attempts += 1;
        }
    }

    /// Entry `id`'s transmission ended without an acknowledgement (refused, or answered by
    /// nothing yet): none is outstanding. With `earlier`, an acknowledgement of it that
    /// still comes completes the entry.
    pub(crate) fn unanswered(&mut self, id: u64, earlier: Option<(LinkId, u64)>) {
        let Some(r) = self.entries.get_mut(&id) else { return };
        r.outstanding = None;
        if let Some(key) = earlier {
            r.earlier.push(key);
            self.attempts.insert(key, id);
        }
    }

    /// Whose earlier transmission `key` on `link` was, forgetting it.
    pub(crate) fn take_attempt(&mut self, link: LinkId, key: u64) -> Option<u64> {
        self.attempts.remove(&(link, key))
    }

    /// Points the switch's reversal `id` at the link its original went on.
    pub(crate) fn set_follows(&mut self, id: u64, follows: Option<LinkId>) {
        if let Some(r) = self.entries.get_mut(&id) {
            r.follows = follows;
        }
    }

    // ----- the exception queue -----

    pub(crate) fn exceptions_len(&self) -> usize {
        self.exceptions.len()
    }

    pub(crate) fn exceptions(&self) -> impl Iterator<Item = (u64, &Reversal)> {
        self.exceptions.iter().map(|(&id, r)| (id, r))
    }

    /// Parks `r` (taken out with [`Saf::remove`]) in the exception queue.
    pub(crate) fn except(&mut self, id: u64, mut r: Reversal) {
        assert!(!self.entries.contains_key(&id), "reversal {id}: still in the queue");
        r.outstanding = None;
        r.earlier.clear();
        self.exceptions.insert(id, r);
    }

    pub(crate) fn take_exception(&mut self, id: u64) -> Option<Reversal> {
        self.exceptions.remove(&id)
    }

    // ----- late responses -----

    /// Requests remembered for their late response.
    pub(crate) fn late_len(&self) -> usize {
        self.late.len()
    }

    pub(crate) fn late(&self, link: LinkId, key: u64) -> Option<&Late> {
        self.late.get(&(link, key))
    }

    /// Remembers a request that timed out, if there is room ([`LATE_MAX`]); whether it is.
    pub(crate) fn remember_late(&mut self, link: LinkId, key: u64, late: Late) -> bool {
        if self.late.len() >= LATE_MAX {
            return false;
        }
        self.late.insert((link, key), late);
        true
    }

    /// The late request's approval is reversed by entry `id`.
    pub(crate) fn late_reversed(&mut self, link: LinkId, key: u64, id: Option<u64>) {
        if let Some(l) = self.late.get_mut(&(link, key)) {
            l.reversal = id;
        }
    }

    pub(crate) fn forget_late(&mut self, link: LinkId, key: u64) {
        self.late.remove(&(link, key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stan: u32) -> DupKey {
        DupKey::for_test(stan)
    }

    fn entry(original: Option<DupKey>, from_participant: bool) -> Reversal {
        let now = Instant::now();
        Reversal::new(0, Bytes::new(), Mti::REVERSAL_ADVICE, 0, 0, now, original, from_participant, None)
    }

    #[test]
    fn a_participants_reversal_is_found_by_its_original_exactly_while_it_is_queued() {
        let mut saf = Saf::default();
        let id = saf.next_id();
        saf.insert(id, entry(Some(key(1)), true));
        assert_eq!(saf.by_original(&key(1)), Some(id));
        let r = saf.remove(id).expect("stored");
        assert_eq!(saf.by_original(&key(1)), None);
        saf.except(id, r);
        assert_eq!(saf.by_original(&key(1)), None, "an exception is not a reversal under way");
        let r = saf.take_exception(id).expect("excepted");
        saf.insert(id, r);
        assert_eq!(saf.by_original(&key(1)), Some(id), "a retried reversal is found again");
        // The switch's own reversal of a request is not indexed: a participant's is.
        let own = saf.next_id();
        saf.insert(own, entry(Some(key(2)), false));
        assert_eq!(saf.by_original(&key(2)), None);
    }

    #[test]
    fn an_earlier_transmission_is_known_until_its_entry_ends() {
        let mut saf = Saf::default();
        let id = saf.next_id();
        saf.insert(id, entry(None, false));
        saf.sent(id, LinkId(1), 7);
        saf.unanswered(id, Some((LinkId(1), 7)));
        saf.sent(id, LinkId(1), 8);
        assert_eq!(saf.get(id).map(|r| r.attempts), Some(2));
        saf.remove(id);
        assert_eq!(saf.take_attempt(LinkId(1), 7), None, "the entry took its attempts with it");
        let again = saf.next_id();
        saf.insert(again, entry(None, false));
        saf.unanswered(again, Some((LinkId(2), 9)));
        assert_eq!(saf.take_attempt(LinkId(2), 9), Some(again));
        assert_eq!(saf.take_attempt(LinkId(2), 9), None);
    }

    #[test]
    fn the_order_stays_bounded_by_the_live_entries() {
        let mut saf = Saf::default();
        for _ in 0..10_000 {
            let id = saf.next_id();
            saf.insert(id, entry(None, false));
            saf.remove(id);
        }
        assert!(saf.order.len() <= 64 + 1, "{} ids kept for no entry", saf.order.len());
        let ids: Vec<u64> = (0..3).map(|_| saf.next_id()).collect();
        for &id in &ids {
            saf.insert(id, entry(None, false));
        }
        assert_eq!(saf.in_order().map(|(id, _)| id).collect::<Vec<_>>(), ids);
    }

    #[test]
    #[should_panic(expected = "stored twice")]
    fn an_id_is_stored_once() {
        let mut saf = Saf::default();
        saf.insert(1, entry(None, false));
        saf.insert(1, entry(None, false));
    }
}
