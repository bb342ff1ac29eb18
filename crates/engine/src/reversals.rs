//! Store-and-forward: reversals the switch makes (an approval its originator never learned
//! of, a request that timed out after it was forwarded) and the advices and reversals
//! participants send (0120, 0220, 0420) are stored, then sent toward their destination — the
//! first transmission as xxx0, repeats as xxx1 — until it acknowledges them. An entry past
//! its repeat or age limit moves to the exception queue, where it stays until an operator
//! retries or drops it; nothing is dropped on its own. A response that comes after its
//! request timed out is never relayed.
//!
//! Order: entries leave in the order they were stored, per destination; a participant's
//! reversal of a request still in flight waits for that request's answer or timeout, so it
//! never overtakes it, and when the switch reverses that request itself (its timeout) the
//! participant's reversal is the one that goes — never two.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::Bytes;
use corridor_wire::{de, Dialect, FieldSet, Message, Mti, NativeHeader, ResponseCode};
use tracing::{debug, info, warn};

use corridor_journal::Entry;

use crate::{
    compose,
    duplicates::DupKey,
    engine::{Engine, Msg},
    inflight::{Kind, Pending},
    limits::EXCEPTIONS_MAX,
    link::{Link, LinkId, Undelivered},
    saf::Reversal,
    timers::Timer,
};

/// An entry of the exception queue, as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Its id (its journal record's sequence number when the switch journals).
    pub id: u64,
    /// The destination participant's id.
    pub destination: String,
    /// Its MTI (first form).
    pub mti: Mti,
    /// Transmissions made.
    pub attempts: u32,
    /// Whether a participant sent it.
    pub from_participant: bool,
}

impl Engine {
    /// A response matching nothing in flight: a late one (its request timed out) is never
    /// relayed, and a late approval is reversed unless its reversal is already under way.
    pub(crate) fn unmatched(&mut self, link: LinkId, key: u64, msg: &Msg<'_>, now: Instant) {
        if msg.mti().function() == 3 {
            // An acknowledgement of an earlier transmission of an entry still repeating.
            if let Some(id) = self.saf.take_attempt(link, key) {
                // Another shard's refusal of an earlier try (96, its disk full: the answer
                // came late, held behind records waiting for that disk) acknowledges
                // nothing: the entry goes on repeating.
                if self.is_hop(link) && msg.response_code() != Some(corridor_wire::ResponseCode::APPROVED) {
                    debug!(reversal = id, "an earlier try refused by the other shard");
                    return;
                }
                let counted = self.counted_entry(id);
                if self.finish(id) {
                    self.stats.reversals_acked += u64::from(counted);
                    debug!(reversal = id, "acknowledged (earlier transmission)");
                }
                return;
            }
        }
        let Some(late) = self.saf.late(link, key) else {
            self.stats.unmatched_responses += 1;
            debug!(%link, mti = %msg.mti(), "unmatched response");
            return;
        };
        self.stats.late_responses += 1;
        let approved = msg.response_code().is_some_and(ResponseCode::is_approval);
        let under_way = late.reversal.is_some_and(|id| self.saf.contains(id));
        debug!(%link, approved, under_way, "late response dropped");
        let mut reversal = late.reversal.filter(|_| under_way);
        if approved && !under_way {
            let (destination, body, dup) = (late.destination, late.body.clone(), late.dup);
            self.stats.approvals_reversed += 1;
            let id = self.reverse_request(destination, body, dup, Some(link), now);
            self.saf.late_reversed(link, key, id);
            reversal = id;
        }
        if self.journal.on() {
            let name =
                self.links.get(&link).map(|l| self.config.links[l.spec].name.clone()).unwrap_or_default();
            let (code, auth) = crate::inflight::answer_of(msg);
            let entry = Entry::LateResponse { link: name, key, code, auth, reversal: reversal.unwrap_or(0) };
            self.record(&entry, now);
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
                // The destination answered: it has the original, nothing can overtake it.
                self.reverse_request(u.destination, body, u.dup, None, now);
            }
            Err(e) => unreachable!("a reversal of a parsed request encodes: {e}"),
        }
    }

    /// The switch reverses request `dup` toward `destination` with reversal `body`: a repeat
    /// of the request is told 68 from now on. When its originator's own reversal of it is
    /// stored, that one is the reversal (never two); its id is returned either way. `follows`
    /// is the link the request went on, if it may still be on its way there.
    pub(crate) fn reverse_request(
        &mut self,
        destination: usize,
        body: Bytes,
        dup: DupKey,
        follows: Option<LinkId>,
        now: Instant,
    ) -> Option<u64> {
        let window = self.config.settings.duplicate_window;
        self.outcomes.mark_reversed(dup, Some(ResponseCode::TIMEOUT), now, window);
        if let Some(id) = self.saf.by_original(&dup) {
            self.saf.set_follows(id, follows);
            self.send_reversal(id, now);
            return Some(id);
        }
        let id = self.store(destination, body, Mti::REVERSAL_ADVICE, Some(dup), None, follows, now);
        Some(id)
    }

    /// Removes entry `id` and everything that points at it, journaled as acknowledged.
    fn finish(&mut self, id: u64) -> bool {
        let Some(r) = self.take_entry(id) else { return false };
        if r.journal_id != 0 {
            let now = self.last_now;
            self.record(&Entry::ReversalAcked { id: r.journal_id }, now);
        }
        true
    }

    /// Takes entry `id` out of the queue, ending its outstanding transmission.
    fn take_entry(&mut self, id: u64) -> Option<Reversal> {
        let r = self.saf.remove(id)?;
        if let Some(key) = r.outstanding {
            if self.in_flight.remove(key.0, key.1).is_some() {
                if let Some(l) = self.links.get_mut(&key.0) {
                    take_one!(l.inflight_out, "a destination's in-flight count");
                }
            }
        }
        Some(r)
    }

    /// Stores an entry (journaled before anything can acknowledge it) and sends it; its id.
    /// `advice` is a participant's own advice's key: its repeats are acknowledged from it.
    /// `follows`: the link its original went on, which it follows while that is open.
    #[allow(clippy::too_many_arguments)] // an entry's fields
    pub(crate) fn store(
        &mut self,
        destination: usize,
        body: Bytes,
        mti: Mti,
        original: Option<DupKey>,
        advice: Option<DupKey>,
        follows: Option<LinkId>,
        now: Instant,
    ) -> u64 {
        let journal_id = self.record_stored(destination, &body, original.as_ref(), advice.as_ref(), now);
        let id = if journal_id == 0 { self.saf.next_id() } else { journal_id };
        let from_participant = advice.is_some();
        let r =
            Reversal::new(destination, body, mti, 0, journal_id, now, original, from_participant, follows);
        self.insert_entry(id, r, now);
        id
    }

    fn insert_entry(&mut self, id: u64, r: Reversal, now: Instant) {
        self.stats.saf_queued += 1;
        self.saf.insert(id, r);
        self.send_reversal(id, now);
    }

    /// Resumes an entry of an earlier run under its journal id, `attempts` transmissions
    /// made (so the next is a repeat when there were any), `age` old.
    #[allow(clippy::too_many_arguments)] // the fields of a journaled entry
    pub(crate) fn resume_entry(
        &mut self,
        id: u64,
        destination: usize,
        body: Bytes,
        attempts: u32,
        queued: Instant,
        original: Option<DupKey>,
        from_participant: bool,
        excepted: bool,
        now: Instant,
    ) {
        let mti = Message::parse(Dialect::Native, body.clone()).map_or(Mti::REVERSAL_ADVICE, |m| m.mti());
        let r = Reversal::new(
            destination,
            body,
            mti.as_original(),
            attempts,
            id,
            queued,
            original,
            from_participant,
            None,
        );
        if excepted {
            self.saf.except(id, r);
        } else {
            self.insert_entry(id, r, now);
        }
    }

    /// Sends the entries waiting for a link to `destination`, which now has one, in the
    /// order they were stored.
    pub(crate) fn kick_reversals(&mut self, destination: usize, now: Instant) {
        for id in self.saf.waiting_for(destination) {
            self.send_reversal(id, now);
        }
    }

    /// Moves entry `id` to the exception queue (journaled), or keeps it repeating when the
    /// queue is full.
    fn except(&mut self, id: u64, now: Instant) {
        if self.saf.exceptions_len() >= EXCEPTIONS_MAX {
            if let Some(r) = self.saf.get(id) {
                let participant = self.config.participants[r.destination].via.unwrap_or(r.destination);
                let first = self.links.of_participant(participant).first();
                let spec = first.and_then(|l| self.links.get(l)).map_or(0, |l| l.spec);
                if let Some(left_out) = self.may_warn(spec, crate::throttle::Warn::Exceptions, now) {
                    warn!(reversal = id, left_out, "exception queue full: the entry keeps repeating");
                }
            }
            let retry = self.config.settings.reversal_retry;
            self.timer(now, retry, Timer::Reversal(id));
            return;
        }
        let Some(r) = self.take_entry(id) else { return };
        if r.journal_id != 0 {
            self.record(&Entry::ReversalAbandoned { id: r.journal_id, attempts: r.attempts }, now);
        }
        self.stats.reversals_abandoned += 1;
        let destination = &self.config.participants[r.destination].id;
        warn!(reversal = id, mti = %r.mti, %destination, attempts = r.attempts, "moved to the exception queue");
        self.saf.except(id, r);
    }

    /// Sends entry `id` (its first form the first time, its repeat after) on a routable
    /// link of its destination, or schedules another try when none is up. Past its repeat
    /// or age limit it moves to the exception queue.
    pub(crate) fn send_reversal(&mut self, id: u64, now: Instant) {
        let retry = self.config.settings.reversal_retry;
        let Some(r) = self.saf.get(id) else { return };
        if r.outstanding.is_some() {
            return;
        }
        let (destination, body, attempts, mti) = (r.destination, r.body.clone(), r.attempts, r.mti);
        let age = now.saturating_duration_since(r.queued);
        if attempts > self.config.settings.reversal_repeats_max || age > self.config.settings.saf_age_max {
            return self.except(id, now);
        }
        if r.from_participant && r.original.is_some_and(|k| self.in_flight.has_request(&k)) {
            // Its request is still in flight: it goes after that request's answer or
            // timeout (which sends it), never before.
            self.timer(now, retry, Timer::Reversal(id));
            return;
        }
        // Behind its original while the original's connection is open (it waits while that
        // link is not routable); on any routable link of the destination once it is gone.
        let link = match r.follows.filter(|l| self.links.contains_key(l)) {
            Some(l) => self.links.get(&l).is_some_and(Link::routable).then_some(l),
            None => {
                self.links.first_routable(self.config.participants[destination].via.unwrap_or(destination))
            }
        };
        let Some(link) = link else {
            self.timer(now, retry, Timer::Reversal(id));
            return;
        };
        let Ok(rev) = Message::parse(Dialect::Native, body) else {
            unreachable!("entries are stored in the native dialect")
        };
        let journal_id = r.journal_id;
        // The transmission waits for its own record: after a crash the journal says whether
        // it may have left, so a resumed entry is sent as a repeat exactly when it may have.
        let sent_seq = if journal_id == 0 {
            0
        } else {
            self.record(&Entry::ReversalSent { id: journal_id, attempt: attempts }, now)
        };
        // A participant's reversal names its original by the STAN the originator used; its
        // destination saw the switch's (on a classic link): DE 90 gets that one.
        let original = self.saf.get(id).and_then(|r| r.original.filter(|_| r.from_participant));
        let window = self.config.settings.duplicate_window;
        let seen = original.and_then(|k| self.outcomes.get(&k, now, window)).and_then(|o| o.sent_stan);
        let de90 = seen.and_then(|s| {
            let mut scratch = [0u8; corridor_wire::limits::FIELD_UNITS_MAX];
            let d = rev.field(de::ORIGINAL_DATA)?.value_into(&mut scratch);
            (d.len() >= 10).then(|| {
                let mut v = d.to_vec();
                v[4..10].copy_from_slice(&s);
                v
            })
        });
        let Some(l) = self.links.get_mut(&link) else { unreachable!("found among the open links") };
        let (key, stan) = l.next_key();
        // On a hop the correlation names the destination the other shard stores it for, and
        // every attempt keeps one STAN (the entry's): the other shard knows a repeat by it
        // and acknowledges it again rather than storing it twice.
        let (key, stan) = if self.config.is_hop(l.participant) {
            let own = corridor_wire::Stan::new((id % 999_999) as u32 + 1).unwrap_or(stan);
            (crate::shards::hop_key(key, Some(destination), Duration::ZERO), own)
        } else {
            (key, stan)
        };
        let stan = stan.to_ascii();
        let dialect = l.dialect;
        let sent_mti = if attempts == 0 { mti } else { mti.as_repeat() };
        let with_de90;
        let set: &[(corridor_wire::FieldId, &[u8])] = match &de90 {
            Some(d) => {
                with_de90 = [(de::STAN, &stan[..]), (de::ORIGINAL_DATA, d.as_slice())];
                &with_de90
            }
            None => &[(de::STAN, &stan)],
        };
        let written = l.frame_after(sent_seq, NativeHeader::FLAG_SWITCH_ORIGIN, key, |out| {
            rev.derive(sent_mti, FieldSet::VALUES, set, dialect, out)
        });
        if let Err(e) = written {
            // The destination's link cannot carry it (its frame limit): try again later,
            // perhaps on another link; the repeat limit bounds the tries.
            warn!(reversal = id, error = %e, "cannot send a stored reversal or advice");
            self.saf.failed(id);
            self.timer(now, retry, Timer::Reversal(id));
            return;
        }
        l.inflight_out += 1;
        self.saf.sent(id, link, key);
        // Backoff: the wait for an acknowledgement doubles with each transmission, up to
        // SAF_BACKOFF_MAX times the retry interval.
        let wait = retry.saturating_mul(1 << attempts.min(crate::limits::SAF_BACKOFF_DOUBLINGS));
        self.in_flight.insert(link, key, Pending { kind: Kind::Reversal(id), deadline: now + wait });
        self.timer(now, wait, Timer::Pending(link, key));
        if self.counted_entry(id) {
            self.stats.reversals_sent += 1;
        }
        debug!(reversal = id, %link, attempts, "stored entry sent");
        self.after_write(link);
    }

    /// Entry `id`'s transmission was refused by the shard it went to (not stored there): it
    /// goes again after the retry interval.
    pub(crate) fn entry_refused(&mut self, id: u64, now: Instant) {
        self.saf.unanswered(id, None);
        debug!(reversal = id, "refused by the other shard: sent again later");
        let retry = self.config.settings.reversal_retry;
        self.timer(now, retry, Timer::Reversal(id));
    }

    /// Entry `id`'s transmission was acknowledged.
    pub(crate) fn entry_acked(&mut self, id: u64) {
        self.saf.unanswered(id, None);
        let counted = self.counted_entry(id);
        if self.finish(id) {
            self.stats.reversals_acked += u64::from(counted);
            debug!(reversal = id, "acknowledged");
        }
    }

    /// Whether entry `id`'s transmissions count in the switch's figures: not when it goes
    /// to another shard, which sends it on (and counts it) there.
    fn counted_entry(&self, id: u64) -> bool {
        self.saf.get(id).is_none_or(|r| self.config.participants[r.destination].via.is_none())
    }

    // ----- the exception queue, for operators -----

    /// The exception queue, oldest first.
    #[must_use]
    pub fn exceptions(&self) -> Vec<Exception> {
        self.saf
            .exceptions()
            .map(|(id, r)| Exception {
                id,
                destination: self.config.participants[r.destination].id.clone(),
                mti: r.mti,
                attempts: r.attempts,
                from_participant: r.from_participant,
            })
            .collect()
    }

    /// Moves exception `id` back to store-and-forward with a fresh budget (journaled and
    /// logged); whether there was one.
    pub fn saf_retry(&mut self, id: u64, now: Instant) -> bool {
        let Some(mut r) = self.saf.take_exception(id) else { return false };
        if r.journal_id != 0 {
            self.record(&Entry::SafRetried { id: r.journal_id }, now);
        }
        info!(reversal = id, "operator: exception retried");
        r.attempts = r.attempts.min(1);
        r.queued = now;
        self.insert_entry(id, r, now);
        true
    }

    /// Drops exception `id` for good (journaled and logged); whether there was one.
    pub fn saf_drop(&mut self, id: u64, now: Instant) -> bool {
        let Some(r) = self.saf.take_exception(id) else { return false };
        if r.journal_id != 0 {
            self.record(&Entry::SafDropped { id: r.journal_id }, now);
        }
        let destination = &self.config.participants[r.destination].id;
        warn!(reversal = id, mti = %r.mti, %destination, "operator: exception dropped");
        true
    }

    /// Store-and-forward entries waiting, by destination participant id.
    #[must_use]
    pub fn saf_depth(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.saf.entries() {
            *out.entry(self.config.participants[r.destination].id.clone()).or_default() += 1;
        }
        out
    }
}
