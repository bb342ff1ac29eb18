//! Reversals and late responses: an approval the originator never learned of, or a request
//! that timed out after it was forwarded, is reversed toward its destination (0420, then
//! 0421 until 0430); a response that comes after its request timed out is never relayed.

use std::time::Instant;

use bytes::Bytes;
use corridor_wire::{de, Dialect, FieldSet, Message, Mti, NativeHeader, ResponseCode};
use tracing::{debug, warn};

use corridor_journal::Entry;

use crate::{
    compose,
    engine::{Engine, Msg},
    inflight::{Kind, Pending},
    limits::REVERSALS_MAX,
    link::{Link, LinkId, Undelivered},
    timers::Timer,
};

/// A reversal waiting for its acknowledgement.
pub(crate) struct Reversal {
    pub(crate) destination: usize,
    pub(crate) body: Bytes,
    pub(crate) attempts: u32,
    pub(crate) outstanding: Option<(LinkId, u64)>,
    /// Keys of earlier transmissions, in `reversal_attempts`.
    pub(crate) earlier: Vec<(LinkId, u64)>,
    /// Its id in the journal: the sequence number of its `ReversalQueued` record (0
    /// without a journal). Its transmissions wait for that record.
    pub(crate) journal_id: u64,
}

/// A request that timed out, remembered for its late response.
pub(crate) struct Late {
    pub(crate) reversal: Option<u64>,
    pub(crate) destination: usize,
    pub(crate) body: Bytes,
}

impl Engine {
    /// A response matching nothing in flight: a late one (its request timed out) is never
    /// relayed, and a late approval is reversed unless its reversal is already under way.
    pub(crate) fn unmatched(&mut self, link: LinkId, key: u64, msg: &Msg<'_>, now: Instant) {
        if msg.mti() == Mti::REVERSAL_ADVICE_RESPONSE {
            // An acknowledgement of an earlier transmission of a reversal still repeating.
            if let Some(id) = self.reversal_attempts.remove(&(link, key)) {
                if self.finish_reversal(id, true) {
                    self.stats.reversals_acked += 1;
                    debug!(reversal = id, "reversal acknowledged (earlier transmission)");
                }
                return;
            }
        }
        let Some(late) = self.late.get(&(link, key)) else {
            self.stats.unmatched_responses += 1;
            debug!(%link, mti = %msg.mti(), "unmatched response");
            return;
        };
        self.stats.late_responses += 1;
        let approved = msg.response_code().is_some_and(ResponseCode::is_approval);
        let under_way = late.reversal.is_some_and(|id| self.reversals.contains_key(&id));
        debug!(%link, approved, under_way, "late response dropped");
        if approved && !under_way {
            let (destination, body) = (late.destination, late.body.clone());
            self.stats.approvals_reversed += 1;
            let id = self.queue_reversal(destination, body, now);
            if let Some(l) = self.late.get_mut(&(link, key)) {
                l.reversal = id;
            }
        }
    }

    /// An approval its originator did not receive: reversed toward the participant that
    /// approved it.
    pub(crate) fn reverse_undelivered(&mut self, u: Undelivered, now: Instant) {
        let Ok(req) = Message::parse(u.dialect, u.request) else {
            unreachable!("the request parsed when it arrived")
        };
        match compose::reversal(&req, &u.sent_stan, b"22") {
            Ok(body) => {
                self.stats.approvals_reversed += 1;
                self.queue_reversal(u.destination, body, now);
            }
            Err(e) => unreachable!("a reversal of a parsed request encodes: {e}"),
        }
    }

    /// Removes reversal `id` and everything that points at it; `acked` says whether its
    /// destination acknowledged it (else it was abandoned), for the journal.
    pub(crate) fn finish_reversal(&mut self, id: u64, acked: bool) -> bool {
        let Some(r) = self.reversals.remove(&id) else { return false };
        if r.journal_id != 0 {
            let entry = if acked {
                Entry::ReversalAcked { id: r.journal_id }
            } else {
                Entry::ReversalAbandoned { id: r.journal_id, attempts: r.attempts }
            };
            let now = self.last_now;
            self.record(&entry, now);
        }
        for key in r.earlier {
            self.reversal_attempts.remove(&key);
        }
        if let Some(key) = r.outstanding {
            if self.pending.remove(&key).is_some() {
                if let Some(l) = self.links.get_mut(&key.0) {
                    debug_assert!(l.inflight_out > 0);
                    l.inflight_out -= 1;
                }
            }
        }
        true
    }

    pub(crate) fn queue_reversal(&mut self, destination: usize, body: Bytes, now: Instant) -> Option<u64> {
        if self.reversals.len() >= REVERSALS_MAX {
            if let Some(old) = self.reversal_order.pop_front() {
                if self.finish_reversal(old, false) {
                    self.stats.reversals_abandoned += 1;
                    warn!(reversal = old, "reversal evicted at the bound");
                }
            }
        }
        let id = self.next_reversal;
        self.next_reversal += 1;
        // Stored before it is sent (and so before anything could acknowledge it).
        let journal_id = self.record_reversal(destination, &body, now);
        self.reversals.insert(
            id,
            Reversal { destination, body, attempts: 0, outstanding: None, earlier: Vec::new(), journal_id },
        );
        self.reversal_order.push_back(id);
        if self.reversal_order.len() > 2 * REVERSALS_MAX {
            // Completed reversals leave their ids behind; sweep them so the queue stays bounded.
            let live = &self.reversals;
            self.reversal_order.retain(|id| live.contains_key(id));
        }
        self.send_reversal(id, now);
        Some(id)
    }

    /// Resumes a reversal of an earlier run under its journal id, `attempts` transmissions
    /// made (so the next is a repeat when there were any).
    pub(crate) fn resume_reversal(
        &mut self,
        destination: usize,
        body: Bytes,
        journal_id: u64,
        attempts: u32,
        now: Instant,
    ) {
        let id = self.next_reversal;
        self.next_reversal += 1;
        self.reversals.insert(
            id,
            Reversal { destination, body, attempts, outstanding: None, earlier: Vec::new(), journal_id },
        );
        self.reversal_order.push_back(id);
        self.send_reversal(id, now);
    }

    /// Sends the reversals waiting for a link to `destination`, which now has one.
    pub(crate) fn kick_reversals(&mut self, destination: usize, now: Instant) {
        let waiting: Vec<u64> = self
            .reversals
            .iter()
            .filter(|(_, r)| r.destination == destination && r.outstanding.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            self.send_reversal(id, now);
        }
    }

    /// Sends reversal `id` (0420 the first time, 0421 after) on a routable link of its
    /// destination, or schedules another try when none is up.
    pub(crate) fn send_reversal(&mut self, id: u64, now: Instant) {
        let retry = self.config.settings.reversal_retry;
        let Some(r) = self.reversals.get(&id) else { return };
        let (destination, body, attempts) = (r.destination, r.body.clone(), r.attempts);
        if attempts > self.config.settings.reversal_repeats_max {
            self.finish_reversal(id, false);
            self.stats.reversals_abandoned += 1;
            warn!(reversal = id, attempts, "reversal abandoned after its last repeat");
            return;
        }
        let link = self.by_participant[destination]
            .iter()
            .copied()
            .find(|l| self.links.get(l).is_some_and(Link::routable));
        let Some(link) = link else {
            self.timer(now, retry, Timer::Reversal(id));
            return;
        };
        let Ok(rev) = Message::parse(Dialect::Native, body) else {
            unreachable!("reversals are built in the native dialect")
        };
        let Some(l) = self.links.get_mut(&link) else { unreachable!("found among the open links") };
        let (key, stan) = l.next_key();
        let stan = stan.to_ascii();
        let dialect = l.dialect;
        let mti = if attempts == 0 { Mti::REVERSAL_ADVICE } else { Mti::REVERSAL_ADVICE_REPEAT };
        let journal_id = self.reversals.get(&id).map_or(0, |r| r.journal_id);
        let written = l.frame_after(journal_id, NativeHeader::FLAG_SWITCH_ORIGIN, key, |out| {
            rev.derive(mti, FieldSet::VALUES, &[(de::STAN, &stan)], dialect, out)
        });
        if let Err(e) = written {
            // The destination's link cannot carry it (its frame limit): try again later,
            // perhaps on another link; the repeat limit bounds the tries.
            warn!(reversal = id, error = %e, "cannot send a reversal");
            if let Some(r) = self.reversals.get_mut(&id) {
                r.attempts += 1;
            }
            self.timer(now, retry, Timer::Reversal(id));
            return;
        }
        l.inflight_out += 1;
        if let Some(r) = self.reversals.get_mut(&id) {
            r.attempts += 1;
            r.outstanding = Some((link, key));
        }
        self.pending.insert((link, key), Pending { kind: Kind::Reversal(id), deadline: now + retry });
        self.timer(now, retry, Timer::Pending(link, key));
        self.stats.reversals_sent += 1;
        if journal_id != 0 {
            self.record(&Entry::ReversalSent { id: journal_id, attempt: attempts }, now);
        }
        debug!(reversal = id, %link, attempts, "reversal sent");
        self.after_write(link);
    }
}
