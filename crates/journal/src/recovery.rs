//! What a journal says is still owed, folded from its entries in order (sans-IO):
//!
//! - **open requests**: accepted and forwarded, never answered — the destination may have
//!   approved them; a restart reverses each toward its destination;
//! - **unanswered requests**: accepted, never forwarded nor answered (the switch stopped
//!   between the two records) — nothing reached a destination; nothing to reverse;
//! - **reversals**: queued and neither acknowledged nor abandoned — they resume;
//! - **outcomes**: answered requests by duplicate key, the window a repeat is answered from.

use std::collections::BTreeMap;

use crate::{
    entry::{Accepted, Answered, Entry, Forwarded, ReversalQueued},
    record::RecordRef,
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
pub type DupKey = (String, u8, u32, u64, [u8; 8]);

/// What the log says is owed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Requests not answered, by the sequence number of their `Accepted` record.
    pub requests: BTreeMap<u64, RequestState>,
    /// Reversals not finished, by id (their `ReversalQueued` record's sequence number),
    /// with the transmissions made.
    pub reversals: BTreeMap<u64, (ReversalQueued, u32)>,
    /// Answered requests' outcomes, by duplicate key.
    pub outcomes: BTreeMap<DupKey, Answered>,
    /// Entries that refer to a record the log does not hold (before a checkpoint or a
    /// retention cut): counted, not acted on.
    pub orphans: u64,
}

impl Recovery {
    /// Folds one record in. Records must come in sequence order.
    ///
    /// # Errors
    ///
    /// A payload that is not its kind's layout ([`crate::entry::BadEntry`]).
    pub fn apply(&mut self, seq: u64, record: &RecordRef<'_>) -> Result<(), crate::entry::BadEntry> {
        match Entry::decode(record.kind, record.payload)? {
            Entry::Accepted(a) => {
                self.requests.insert(seq, RequestState { accepted: a, forwarded: None });
            }
            Entry::Forwarded(f) => match self.requests.get_mut(&f.request) {
                Some(r) => r.forwarded = Some(f),
                None => self.orphans += 1,
            },
            Entry::Answered(a) => match self.requests.remove(&a.request) {
                Some(r) => {
                    let x = &r.accepted;
                    self.outcomes.insert((x.participant.clone(), x.class, x.stan, x.time, x.terminal), a);
                }
                None => self.orphans += 1,
            },
            Entry::ReversalQueued(q) => {
                self.reversals.insert(q.id, (q, 0));
            }
            Entry::ReversalSent { id, attempt } => match self.reversals.get_mut(&id) {
                Some((_, n)) => *n = (*n).max(attempt + 1),
                None => self.orphans += 1,
            },
            Entry::ReversalAcked { id } | Entry::ReversalAbandoned { id, .. } => {
                if self.reversals.remove(&id).is_none() {
                    self.orphans += 1;
                }
            }
        }
        Ok(())
    }

    /// Requests forwarded and never answered: to reverse.
    pub fn open(&self) -> impl Iterator<Item = &RequestState> {
        self.requests.values().filter(|r| r.forwarded.is_some())
    }

    /// Folds every record of a scanned log.
    ///
    /// # Errors
    ///
    /// The first payload that is not its kind's layout.
    pub fn of(log: &crate::LogScan<'_>) -> Result<Self, crate::entry::BadEntry> {
        let mut r = Self::default();
        for (_, s) in &log.segments {
            for f in &s.records {
                r.apply(f.record.seq, &f.record)?;
            }
        }
        Ok(r)
    }

    /// Requests accepted and never forwarded nor answered.
    pub fn unforwarded(&self) -> impl Iterator<Item = &RequestState> {
        self.requests.values().filter(|r| r.forwarded.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{record::decode, record::encode, Decoded};

    fn accepted(stan: u32) -> Entry {
        Entry::Accepted(Accepted {
            participant: "acq".into(),
            class: 2,
            stan,
            time: 1_125_221_530,
            terminal: *b"TERM0001",
            link: "acq-1".into(),
            correlation: 0,
            request: vec![stan as u8],
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

    fn answered(request: u64, code: &[u8; 2]) -> Entry {
        Entry::Answered(Answered { request, code: *code, auth: None, switch_made: false })
    }

    fn fold(entries: &[Entry]) -> Recovery {
        let mut r = Recovery::default();
        let mut buf = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            buf.clear();
            let mut payload = Vec::new();
            e.encode(&mut payload);
            encode(i as u64 + 1, e.kind(), &payload, &mut buf);
            let Decoded::Record { record, .. } = decode(&buf) else { panic!() };
            r.apply(i as u64 + 1, &record).unwrap();
        }
        r
    }

    #[test]
    fn what_is_owed_after_a_crash_at_each_step() {
        let r = fold(&[
            accepted(1),        // 1: answered → an outcome
            forwarded(1),       // 2
            answered(1, b"00"), // 3
            accepted(2),        // 4: forwarded, no answer → open (to reverse)
            forwarded(4),       // 5
            accepted(3),        // 6: never forwarded → nothing reached a destination
            Entry::ReversalQueued(ReversalQueued { id: 7, destination: "iss".into(), reversal: vec![1] }), // 7
            Entry::ReversalSent { id: 7, attempt: 0 }, // 8
            Entry::ReversalSent { id: 7, attempt: 1 }, // 9
            Entry::ReversalQueued(ReversalQueued { id: 10, destination: "iss".into(), reversal: vec![2] }), // 10
            Entry::ReversalAcked { id: 10 }, // 11
            Entry::ReversalAcked { id: 99 }, // 12: orphan
        ]);
        let open: Vec<u32> = r.open().map(|s| s.accepted.stan).collect();
        assert_eq!(open, [2]);
        let unforwarded: Vec<u32> = r.unforwarded().map(|s| s.accepted.stan).collect();
        assert_eq!(unforwarded, [3]);
        assert_eq!(r.reversals.keys().copied().collect::<Vec<_>>(), [7]);
        assert_eq!(r.reversals[&7].1, 2, "two transmissions made: the next is a repeat");
        let key = ("acq".to_owned(), 2, 1, 1_125_221_530, *b"TERM0001");
        assert_eq!(r.outcomes.get(&key).map(|a| a.code), Some(*b"00"), "a repeat is answered from this");
        assert_eq!(r.orphans, 1);
    }
}
