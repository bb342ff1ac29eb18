//! Journal before answer: with a journal, the engine records what it decides — a request
//! accepted and forwarded, an answer, a reversal queued, sent, acknowledged or abandoned —
//! and every frame that acts on a record waits in its link's outbox until that record is
//! durable. Sans-IO like the rest: records leave through [`Engine::poll_journal`] as batches
//! to append and sync; durability comes back through [`Engine::handle_journal_synced`],
//! which releases the frames waiting for it.
//!
//! Requests and reversals are journaled sealed (`corridor_journal::request`): no card
//! secret, the PAN encrypted under the configured key.

use std::time::Instant;

use corridor_journal::{
    entry::{Answered, Entry, ForwardRef, ReversalQueued},
    recovery::Recovery,
    SyncBatch,
};
use corridor_wire::{Message, MessageIndex};

pub use crate::gate::Journal;
use crate::{engine::Engine, link::LinkId};

/// What [`Engine::resume`] did with what the last run left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Requests forwarded and never answered, now being reversed toward their destination.
    pub reversed: usize,
    /// Requests another shard sent, forwarded and never answered here: closed 68 and left to
    /// that shard, whose own record of each reverses it (see [`Engine::resume`]).
    pub crossing: usize,
    /// Store-and-forward entries of the last run, resumed.
    pub reversals: usize,
    /// Entries of the exception queue, restored.
    pub exceptions: usize,
    /// Outcomes of the last run restored to the duplicate window.
    pub outcomes: usize,
    /// Entries that could not be acted on (a participant no longer configured, a request
    /// journaled without a PAN, a key that does not open it), each logged.
    pub unresolved: usize,
}

impl Engine {
    /// Acts on what the last run's journal left, before traffic: every store-and-forward
    /// entry resumes under its id (as a repeat when it was sent before), the exception
    /// queue is restored, the duplicate window is refilled (each outcome aged from when it
    /// was answered), and every request forwarded and never answered is closed in the
    /// journal as answered 68 (which is what a repeat of it will be told) and reversed
    /// toward its destination (reason 68) — unless its originator's own reversal of it is
    /// stored, which then is the reversal, or another shard sent it (that shard reverses
    /// it). They go out as links to their destinations sign
    /// on. `now_unix_ms` is the wall-clock time at `now`.
    pub fn resume(&mut self, owed: &Recovery, now: Instant, now_unix_ms: u64) -> Resumed {
        let mut done = Resumed::default();
        if !self.journal.on() {
            return done;
        }
        let window = self.config.settings.duplicate_window;
        let at = |ms: u64| now.checked_sub(std::time::Duration::from_millis(now_unix_ms.saturating_sub(ms)));
        // The duplicate window: a repeat of a request answered in the last run gets that answer.
        for (key, o) in owed.outcomes.iter() {
            let Some(k) = self.dup_key(key) else { continue };
            let when = at(o.at_unix_ms).unwrap_or(now);
            if now.saturating_duration_since(when) > window {
                continue;
            }
            let outcome = crate::duplicates::Outcome {
                code: corridor_wire::ResponseCode(o.code),
                auth: o.auth,
                reversed: o.reversed,
                seq: 0,
                sent_stan: o.sent_stan,
            };
            self.outcomes.insert(k, outcome, when, window);
            done.outcomes += 1;
        }
        for (set, excepted) in [(&owed.reversals, false), (&owed.exceptions, true)] {
            for (&id, (q, attempts)) in set {
                let body = self.journal.open(&q.reversal);
                let body = body.and_then(|m| m.to_bytes(corridor_wire::Dialect::Native).ok());
                let dest = self.config.participants.iter().position(|p| p.id == q.destination);
                let (Some(dest), Some(body)) = (dest, body) else {
                    tracing::warn!(reversal = id, destination = %q.destination, "journal: cannot resume a stored entry of the last run");
                    done.unresolved += 1;
                    continue;
                };
                let queued = at(q.queued_unix_ms).unwrap_or(now);
                let original = q.original.as_ref().and_then(|k| self.dup_key(k.as_key_ref()));
                let from_participant = q.advice.is_some();
                self.resume_entry(
                    id,
                    dest,
                    body,
                    *attempts,
                    queued,
                    original,
                    from_participant,
                    excepted,
                    now,
                );
                if excepted {
                    done.exceptions += 1;
                } else {
                    done.reversals += 1;
                }
            }
        }
        for (&seq, r) in &owed.requests {
            let Some(f) = &r.forwarded else { continue };
            let request = self.journal.open(&r.accepted.request);
            let dest = self.config.participants.iter().position(|p| p.id == f.destination);
            let (Some(dest), Some(request)) = (dest, request) else {
                tracing::warn!(request = seq, destination = %f.destination, "journal: cannot reverse a request of the last run");
                done.unresolved += 1;
                continue;
            };
            let Ok(body) = request.to_bytes(corridor_wire::Dialect::Native) else {
                done.unresolved += 1;
                continue;
            };
            let Ok(msg) = Message::parse(corridor_wire::Dialect::Native, body) else {
                done.unresolved += 1;
                continue;
            };
            let Some(dup) = self.dup_key(r.accepted.key.as_key_ref()) else {
                done.unresolved += 1;
                continue;
            };
            // A request another shard sent is that shard's to reverse: its record of it was
            // durable before it left there (this shard's is not waited for), and its recovery
            // — or, should only this shard have gone, its timeout — reverses it toward here.
            // Reversed here as well, it would be reversed twice. It is closed 68 and
            // remembered unreversed, so that shard's reversal is forwarded when it comes.
            if self.config.is_hop(dup.participant()) {
                let answered =
                    self.record_answer(seq, corridor_wire::ResponseCode::TIMEOUT.0, None, true, now);
                self.remember(
                    dup,
                    (corridor_wire::ResponseCode::TIMEOUT, None),
                    Some(f.sent_stan),
                    answered,
                    now,
                );
                done.crossing += 1;
                continue;
            }
            // The reversal's record goes before the answer's: a batch torn between them
            // leaves a queued reversal and an open request (which is then not reversed a
            // second time: its queued reversal marked it), never an answer without one.
            let queued = owed.outcomes.get(r.accepted.key.as_key_ref()).is_some_and(|o| o.reversed);
            if queued {
                done.reversed += 1;
            } else {
                match crate::compose::reversal(&msg, &f.sent_stan, b"68") {
                    Ok(rev) => {
                        self.stats.approvals_reversed += 1;
                        self.reverse_request(dest, rev, dup, None, now);
                        done.reversed += 1;
                    }
                    Err(_) => done.unresolved += 1,
                }
            }
            let answered = self.record_answer(seq, corridor_wire::ResponseCode::TIMEOUT.0, None, true, now);
            self.remember_reversed(dup, Some(f.sent_stan), answered, now);
        }
        done
    }

    /// The engine's duplicate key for a journaled one (`None` for a participant no longer
    /// configured).
    fn dup_key(&self, k: corridor_journal::entry::KeyRef<'_>) -> Option<crate::duplicates::DupKey> {
        let p = self.config.participants.iter().position(|p| p.id == k.participant)?;
        Some(crate::duplicates::DupKey::from_journal(p, &k))
    }

    /// The journal's duplicate key for one of the engine's.
    fn journal_key(&self, k: &crate::duplicates::DupKey) -> corridor_journal::entry::Key {
        k.journal_ref(&self.config.participants[k.participant()].id).to_owned_key()
    }

    /// Journals the configuration the switch starts on (its file's SHA-256), for the audit
    /// trail.
    pub fn record_config(&mut self, digest: [u8; 32]) {
        let (participants, links) = (self.config.participants.len(), self.config.links.len());
        let entry = Entry::ConfigEvent {
            digest,
            participants: u32::try_from(participants).unwrap_or(u32::MAX),
            links: u32::try_from(links).unwrap_or(u32::MAX),
        };
        let now = self.last_now;
        self.record(&entry, now);
    }

    /// Journals a connection of configured link `spec` coming up or going down.
    pub(crate) fn record_link(&mut self, spec: usize, up: bool, now: Instant) {
        if self.journal.on() {
            let link = self.config.links[spec].name.clone();
            self.record(&Entry::LinkEvent { link, up }, now);
        }
    }

    /// Whether the engine journals.
    #[must_use]
    pub fn journaling(&self) -> bool {
        self.journal.on()
    }

    /// The highest durable journal record (0 when none is, `None` without a journal).
    #[must_use]
    pub fn journal_durable(&self) -> Option<u64> {
        self.journal.on().then(|| self.journal.durable())
    }

    /// Whether every record made so far is durable (true without a journal).
    #[must_use]
    pub fn journal_settled(&self) -> bool {
        self.journal.settled()
    }

    /// Whether records wait to be handed out in a batch.
    #[must_use]
    pub fn journal_waiting(&self) -> bool {
        self.journal.waiting()
    }

    /// The next batch of records to append and sync, when one is due.
    pub fn poll_journal(&mut self, now: Instant, unix_ms: u64) -> Option<SyncBatch> {
        let batch = self.journal.poll_batch(now, unix_ms)?;
        self.stats.journal_batches += 1;
        self.stats.journal_records += batch.last_seq - batch.first_seq + 1;
        Some(batch)
    }

    /// The batch ending at `last_seq` is durable: the frames waiting for it may leave.
    pub fn handle_journal_synced(&mut self, last_seq: u64) {
        let Some((durable, waiting)) = self.journal.synced(last_seq) else { return };
        for &link in &waiting {
            let Some(l) = self.links.get_mut(&link) else { continue };
            l.durable = durable;
            l.out.release(durable);
            // A link that still holds a frame goes back on the list (`note_held`).
            self.after_write(link);
        }
        self.journal.recycle_held(waiting);
    }

    /// The journal's next batch begins a new segment, however full the current one is:
    /// the I/O layer has a prepared one ready while the current one grows as it is written.
    pub fn rotate_journal_segment(&mut self) {
        self.journal.rotate_early();
    }

    /// A written batch's bytes, given back for the next batch to fill.
    pub fn recycle_journal_buffer(&mut self, bytes: Vec<u8>) {
        self.journal.recycle(bytes);
    }

    /// How many journal batches may be out before the oldest is synced (1 unless set; a
    /// cluster's I/O layer takes several: `driver::JournalCycle`). Batches are reported
    /// synced in the order handed out.
    pub fn set_journal_batches_in_flight(&mut self, max: usize) {
        self.journal.set_in_flight_max(max);
    }

    /// When the journal's open batch is due on time (see [`Engine::poll_journal`]).
    #[must_use]
    pub fn journal_timeout(&self) -> Option<Instant> {
        self.journal.timeout()
    }

    /// The durable sequence number a new link starts from.
    pub(crate) fn durable_now(&self) -> u64 {
        self.journal.durable()
    }

    /// The sequence number of the last record appended (0 without a journal or before the
    /// first): what waits for it waits for everything journaled so far.
    pub(crate) fn journal_end(&self) -> u64 {
        self.journal.end()
    }

    /// Journals `entry`; its sequence number, or 0 without a journal.
    pub(crate) fn record(&mut self, entry: &Entry, now: Instant) -> u64 {
        self.journal.append(entry, now)
    }

    /// `link`'s outbox has a frame waiting for the journal.
    /// A frame held for a record that is durable already goes at once: the link's view of
    /// durability is brought up to the journal's (it is only refreshed by syncs while the
    /// link holds something, so a link idle through syncs has an older one, and a frame
    /// held on it for an older record — an answer replayed from a stored outcome, an
    /// acknowledgement of a redundant reversal — would wait for a sync that an idle
    /// switch never makes).
    pub(crate) fn note_held(&mut self, link: LinkId) {
        let durable = self.durable_now();
        let Some(l) = self.links.get_mut(&link) else { return };
        if l.out.is_held() && durable > l.durable && durable != u64::MAX {
            l.durable = durable;
            l.out.release(durable);
        }
        if l.out.is_held() {
            self.journal.hold(link);
        }
    }

    /// Records a request accepted and forwarded (one record); its sequence number, which its
    /// forward waits for and its answer's record names.
    #[allow(clippy::too_many_arguments)] // the record's fields
    pub(crate) fn record_forward<B: AsRef<[u8]>, I: std::borrow::Borrow<MessageIndex>>(
        &mut self,
        msg: &Message<B, I>,
        origin: LinkId,
        correlation: u64,
        destination: usize,
        out_link: LinkId,
        key_out: u64,
        sent_stan: [u8; 6],
        dup: &crate::duplicates::DupKey,
        now: Instant,
    ) -> u64 {
        if !self.journal.on() {
            return 0;
        }
        let at_unix_ms = self.unix_ms(now);
        // Borrowed from the configuration, not copied: the record is encoded from them.
        let (links, config) = (&self.links, &self.config);
        let name = |l: LinkId| links.get(&l).map_or("", |l| config.links[l.spec].name.as_str());
        let key = dup.journal_ref(&config.participants[dup.participant()].id);
        let to = ForwardRef {
            destination: &config.participants[destination].id,
            link: name(out_link),
            key: key_out,
            sent_stan: &sent_stan,
        };
        self.journal.append_sent(msg, key, name(origin), correlation, &to, at_unix_ms, now)
    }

    /// Records an answer to the request journaled at `request`.
    pub(crate) fn record_answer(
        &mut self,
        request: u64,
        code: [u8; 2],
        auth: Option<[u8; 6]>,
        switch_made: bool,
        now: Instant,
    ) -> u64 {
        if !self.journal.on() || request == 0 {
            return 0;
        }
        let at_unix_ms = self.unix_ms(now);
        self.record(&Entry::Answered(Answered { request, code, auth, switch_made, at_unix_ms }), now)
    }

    /// Unix milliseconds at `now`, by the engine's clock.
    pub(crate) fn unix_ms(&self, now: Instant) -> u64 {
        let since =
            u64::try_from(now.saturating_duration_since(self.clock.at).as_millis()).unwrap_or(u64::MAX);
        self.clock.unix_secs.saturating_mul(1000).saturating_add(since)
    }

    /// Records a store-and-forward entry; its journal id (its record's sequence number).
    pub(crate) fn record_stored(
        &mut self,
        destination: usize,
        body: &bytes::Bytes,
        original: Option<&crate::duplicates::DupKey>,
        advice: Option<&crate::duplicates::DupKey>,
        now: Instant,
    ) -> u64 {
        if !self.journal.on() {
            return 0;
        }
        let reversal = match Message::parse(corridor_wire::Dialect::Native, body.clone()) {
            Ok(m) => self.journal.seal(&m),
            Err(_) => unreachable!("entries are stored in the native dialect"),
        };
        let secs = self.clock.unix_secs + now.saturating_duration_since(self.clock.at).as_secs();
        let queued = ReversalQueued {
            id: self.journal.next_seq(),
            destination: self.config.participants[destination].id.clone(),
            reversal,
            queued_unix_ms: secs * 1000,
            original: original.map(|k| self.journal_key(k)),
            advice: advice.map(|k| self.journal_key(k)),
        };
        self.record(&Entry::ReversalQueued(queued), now)
    }
}
