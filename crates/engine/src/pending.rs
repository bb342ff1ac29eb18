//! What is in flight, as a type: every entry awaiting its answer keyed by `(outbound link,
//! correlation)` — requests, store-and-forward transmissions, the switch's own 0800s — with
//! the count of requests among them and the duplicate keys of those requests.
//!
//! Invariants, held by construction (the fields are private):
//!
//! - `requests` is the number of entries that are requests;
//! - `keys` holds exactly the duplicate keys of those requests (a repeat of one is told
//!   94, and a participant's reversal of one waits for its answer);
//! - at most [`PENDING_MAX`] entries.
//!
//! What an answer or a timeout does is the engine's (`inflight`); this type keeps the books.

use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::{
    duplicates::{DupKey, InFlightKeys},
    inflight::{Kind, Pending},
    limits::PENDING_MAX,
    link::LinkId,
};

/// The entries awaiting an answer. See the module docs.
#[derive(Default)]
pub(crate) struct InFlight {
    entries: FxHashMap<(LinkId, u64), Pending>,
    /// Entries that are requests.
    requests: usize,
    /// Those requests' duplicate keys.
    keys: InFlightKeys,
}

/// What [`InFlight::take_answered`] found for a response.
pub(crate) enum Match {
    /// Nothing is in flight with its correlation.
    Nothing,
    /// Something is, and the response does not answer it: it stays.
    Mismatch,
    /// The entry it answers, taken out.
    Taken(Pending),
}

impl InFlight {
    /// Entries in flight (requests and others).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether another entry may be added ([`PENDING_MAX`]).
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < PENDING_MAX
    }

    /// Requests in flight.
    pub(crate) fn requests(&self) -> usize {
        self.requests
    }

    pub(crate) fn contains(&self, link: LinkId, key: u64) -> bool {
        self.entries.contains_key(&(link, key))
    }

    pub(crate) fn get(&self, link: LinkId, key: u64) -> Option<&Pending> {
        self.entries.get(&(link, key))
    }

    /// The duplicate key of the request in flight on `link` under `key`, if a request is.
    pub(crate) fn request_key(&self, link: LinkId, key: u64) -> Option<DupKey> {
        match &self.get(link, key)?.kind {
            Kind::Request(r) => Some(r.dup),
            Kind::Reversal(_) | Kind::Network(_) => None,
        }
    }

    /// Whether a request with duplicate key `dup` is in flight.
    pub(crate) fn has_request(&self, dup: &DupKey) -> bool {
        self.keys.contains(dup)
    }

    /// The key of a request in flight naming the same original as `dup`
    /// ([`DupKey::same_original`]).
    pub(crate) fn same_original(&self, dup: &DupKey) -> Option<DupKey> {
        self.keys.same_original(dup)
    }

    /// Adds an entry. The correlation is free on its link (the caller skips one in use) and
    /// there is room (the caller checked [`InFlight::has_room`] where it may decline).
    pub(crate) fn insert(&mut self, link: LinkId, key: u64, p: Pending) {
        if let Kind::Request(r) = &p.kind {
            self.requests += 1;
            self.keys.insert(r.dup);
        }
        // Inserted by value (a vacant entry's slot would copy a request's whole record once
        // more); a correlation in use is a programmer error, and the books are then moot.
        let replaced = self.entries.insert((link, key), p);
        assert!(replaced.is_none(), "{link}: correlation {key} is in flight once");
    }

    /// Takes the entry out.
    pub(crate) fn remove(&mut self, link: LinkId, key: u64) -> Option<Pending> {
        let p = self.entries.remove(&(link, key))?;
        self.forget(&p);
        Some(p)
    }

    /// Takes out the entry a response with correlation `key` on `link` answers, if
    /// `answers` says it does (one lookup).
    pub(crate) fn take_answered(
        &mut self,
        link: LinkId,
        key: u64,
        answers: impl FnOnce(&Pending) -> bool,
    ) -> Match {
        let std::collections::hash_map::Entry::Occupied(entry) = self.entries.entry((link, key)) else {
            return Match::Nothing;
        };
        if !answers(entry.get()) {
            return Match::Mismatch;
        }
        let p = entry.remove();
        self.forget(&p);
        Match::Taken(p)
    }

    fn forget(&mut self, p: &Pending) {
        if let Kind::Request(r) = &p.kind {
            take_one!(self.requests, "the count of requests in flight");
            self.keys.remove(&r.dup);
        }
    }

    /// Brings every request's deadline to `now`; their keys.
    pub(crate) fn expire_requests(&mut self, now: Instant) -> Vec<(LinkId, u64)> {
        self.entries
            .iter_mut()
            .filter(|(_, p)| p.is_request())
            .map(|(&k, p)| {
                p.deadline = now;
                k
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use corridor_wire::{Dialect, Mti};

    use super::*;
    use crate::inflight::Request;

    fn request(stan: u32, now: Instant) -> Pending {
        let r = Request {
            origin: LinkId(1),
            origin_correlation: u64::from(stan),
            origin_dialect: Dialect::Native,
            request: Bytes::new(),
            request_mti: Mti::FINANCIAL_REQUEST,
            origin_stan: [b'0'; 6],
            sent_stan: [b'0'; 6],
            rrn: None,
            dup: DupKey::for_test(stan),
            destination: 0,
            journal_seq: 0,
            origin_participant: 0,
            received: now,
            forwarded: now,
        };
        Pending { kind: Kind::Request(r), deadline: now }
    }

    #[test]
    fn the_requests_and_their_keys_follow_the_entries_whichever_way_one_ends() {
        let now = Instant::now();
        let mut t = InFlight::default();
        t.insert(LinkId(2), 1, request(1, now));
        t.insert(LinkId(2), 2, request(2, now));
        t.insert(LinkId(2), 3, Pending { kind: Kind::Reversal(9), deadline: now });
        assert_eq!((t.len(), t.requests()), (3, 2));
        assert!(t.has_request(&DupKey::for_test(1)) && t.has_request(&DupKey::for_test(2)));

        // A response that does not answer its entry leaves it; one that does takes it.
        assert!(matches!(t.take_answered(LinkId(2), 1, |_| false), Match::Mismatch));
        assert!(t.has_request(&DupKey::for_test(1)));
        assert!(matches!(t.take_answered(LinkId(2), 1, |_| true), Match::Taken(_)));
        assert!(matches!(t.take_answered(LinkId(2), 1, |_| true), Match::Nothing));
        assert!(!t.has_request(&DupKey::for_test(1)), "an answered request's repeat is no longer in flight");
        assert_eq!(t.requests(), 1);

        // A timeout (remove) and a stored entry's end count alike.
        assert!(t.remove(LinkId(2), 2).is_some());
        assert!(t.remove(LinkId(2), 3).is_some());
        assert_eq!((t.len(), t.requests()), (0, 0));
        assert!(!t.has_request(&DupKey::for_test(2)));
    }

    #[test]
    fn a_drain_brings_only_the_requests_deadlines_forward() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(5);
        let mut t = InFlight::default();
        let mut r = request(1, now);
        r.deadline = later;
        t.insert(LinkId(2), 1, r);
        t.insert(LinkId(2), 2, Pending { kind: Kind::Reversal(9), deadline: later });
        assert_eq!(t.expire_requests(now), vec![(LinkId(2), 1)]);
        assert_eq!(t.get(LinkId(2), 1).map(|p| p.deadline), Some(now));
        assert_eq!(t.get(LinkId(2), 2).map(|p| p.deadline), Some(later));
    }

    #[test]
    #[should_panic(expected = "in flight once")]
    fn a_correlation_is_in_flight_once() {
        let now = Instant::now();
        let mut t = InFlight::default();
        t.insert(LinkId(2), 1, request(1, now));
        t.insert(LinkId(2), 1, Pending { kind: Kind::Reversal(9), deadline: now });
    }
}
