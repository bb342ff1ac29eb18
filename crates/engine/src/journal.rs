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
    entry::{Accepted, Answered, Entry, Forwarded, ReversalQueued},
    recovery::Recovery,
    request::{open, seal, PanKey},
    Appender, GroupCommit, SyncBatch,
};
use corridor_wire::{Message, MessageIndex};

use crate::{engine::Engine, link::LinkId};

/// The engine's side of a journal: the appender (numbering, batching, durability) and the
/// key the PANs are sealed with.
pub struct Journal {
    appender: Appender,
    key: PanKey,
    /// The nonce of each sealed PAN: this random prefix (drawn by the caller at every start)
    /// and a counter, so a nonce is never used twice with a key.
    nonce_prefix: [u8; 8],
    nonces: u32,
    payload: Vec<u8>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("appender", &self.appender)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// A journal whose next record is `next_seq`, whose last segment holds
    /// `segment_bytes` (`None` to begin a new one), sealing PANs with `key`. `nonce_prefix`
    /// must be random and new at every start.
    #[must_use]
    pub fn new(
        policy: GroupCommit,
        next_seq: u64,
        segment_bytes: Option<u64>,
        key: PanKey,
        nonce_prefix: [u8; 8],
    ) -> Self {
        Self {
            appender: Appender::new(policy, next_seq, segment_bytes),
            key,
            nonce_prefix,
            nonces: 0,
            payload: Vec::new(),
        }
    }

    fn nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.nonce_prefix);
        n[8..].copy_from_slice(&self.nonces.to_be_bytes());
        // 2^32 sealed PANs in one run: past that a nonce would repeat. A restart (a new
        // prefix) is then required; the engine asserts rather than reuse one.
        self.nonces =
            self.nonces.checked_add(1).unwrap_or_else(|| panic!("PAN nonces exhausted: restart the switch"));
        n
    }
}

/// What [`Engine::resume`] did with what the last run left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Requests forwarded and never answered, now being reversed toward their destination.
    pub reversed: usize,
    /// Reversals of the last run, resumed.
    pub reversals: usize,
    /// Outcomes of the last run restored to the duplicate window.
    pub outcomes: usize,
    /// Entries that could not be acted on (a participant no longer configured, a request
    /// journaled without a PAN, a key that does not open it), each logged.
    pub unresolved: usize,
}

impl Engine {
    /// Acts on what the last run's journal left, before traffic: every request forwarded
    /// and never answered is closed in the journal as answered 68 (which is what a repeat
    /// of it will be told) and reversed toward its destination (reason 68); every reversal
    /// neither acknowledged nor abandoned resumes under its id (as a repeat, 0421, when it
    /// was sent before). They go out as links to their destinations sign on.
    pub fn resume(&mut self, owed: &Recovery, now: Instant) -> Resumed {
        let mut done = Resumed::default();
        if self.journal.is_none() {
            return done;
        }
        let participant = |e: &Self, id: &str| e.config.participants.iter().position(|p| p.id == id);
        for (&seq, r) in &owed.requests {
            let Some(f) = &r.forwarded else { continue };
            let request = self.journal.as_ref().and_then(|j| open(&r.accepted.request, &j.key).ok());
            let (Some(dest), Some(request)) = (participant(self, &f.destination), request) else {
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
            self.record_answer(seq, corridor_wire::ResponseCode::TIMEOUT.0, None, true, now);
            let a = &r.accepted;
            if let Some(p) = participant(self, &a.participant) {
                let key = crate::duplicates::DupKey::from_parts(p, a.class, a.stan, a.time, a.terminal);
                self.remember(key, corridor_wire::ResponseCode::TIMEOUT, None, now);
            }
            match crate::compose::reversal(&msg, &f.sent_stan, b"68") {
                Ok(rev) => {
                    self.stats.approvals_reversed += 1;
                    self.queue_reversal(dest, rev, now);
                    done.reversed += 1;
                }
                Err(_) => done.unresolved += 1,
            }
        }
        // The duplicate window: a repeat of a request answered in the last run gets that answer.
        for ((pid, class, stan, time, terminal), a) in &owed.outcomes {
            let Some(p) = participant(self, pid) else { continue };
            let key = crate::duplicates::DupKey::from_parts(p, *class, *stan, *time, *terminal);
            self.remember(key, corridor_wire::ResponseCode(a.code), a.auth, now);
            done.outcomes += 1;
        }
        for (&id, (q, attempts)) in &owed.reversals {
            let body = self.journal.as_ref().and_then(|j| open(&q.reversal, &j.key).ok());
            let body = body.and_then(|m| m.to_bytes(corridor_wire::Dialect::Native).ok());
            let (Some(dest), Some(body)) = (participant(self, &q.destination), body) else {
                tracing::warn!(reversal = id, destination = %q.destination, "journal: cannot resume a reversal of the last run");
                done.unresolved += 1;
                continue;
            };
            self.resume_reversal(dest, body, id, *attempts, now);
            done.reversals += 1;
        }
        done
    }

    /// Whether the engine journals.
    #[must_use]
    pub fn journaling(&self) -> bool {
        self.journal.is_some()
    }

    /// The highest durable journal record (0 when none is, `None` without a journal).
    #[must_use]
    pub fn journal_durable(&self) -> Option<u64> {
        self.journal.as_ref().map(|j| j.appender.durable())
    }

    /// Whether records wait to be handed out in a batch.
    #[must_use]
    pub fn journal_waiting(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.appender.buffered() > 0)
    }

    /// The next batch of records to append and sync, when one is due.
    pub fn poll_journal(&mut self, now: Instant, unix_ms: u64) -> Option<SyncBatch> {
        let batch = self.journal.as_mut()?.appender.poll_batch(now, unix_ms)?;
        self.stats.journal_batches += 1;
        self.stats.journal_records += batch.last_seq - batch.first_seq + 1;
        Some(batch)
    }

    /// The batch ending at `last_seq` is durable: the frames waiting for it may leave.
    pub fn handle_journal_synced(&mut self, last_seq: u64) {
        let Some(j) = self.journal.as_mut() else { return };
        j.appender.handle_synced(last_seq);
        let durable = j.appender.durable();
        let waiting = std::mem::take(&mut self.journal_held);
        for link in waiting {
            let Some(l) = self.links.get_mut(&link) else { continue };
            l.durable = durable;
            l.out.release(durable);
            if l.out.is_held() {
                self.journal_held.push(link);
            }
            self.after_write(link);
        }
    }

    /// When the journal's open batch is due on time (see [`Engine::poll_journal`]).
    #[must_use]
    pub fn journal_timeout(&self) -> Option<Instant> {
        self.journal.as_ref()?.appender.poll_timeout()
    }

    /// The durable sequence number a new link starts from.
    pub(crate) fn durable_now(&self) -> u64 {
        self.journal.as_ref().map_or(u64::MAX, |j| j.appender.durable())
    }

    /// Journals `entry`; its sequence number, or 0 without a journal.
    pub(crate) fn record(&mut self, entry: &Entry, now: Instant) -> u64 {
        let Some(j) = self.journal.as_mut() else { return 0 };
        let mut payload = std::mem::take(&mut j.payload);
        payload.clear();
        entry.encode(&mut payload);
        let seq = j.appender.append(entry.kind(), &payload, now);
        j.payload = payload;
        seq
    }

    /// `link`'s outbox has a frame waiting for the journal.
    pub(crate) fn note_held(&mut self, link: LinkId) {
        if self.links.get(&link).is_some_and(|l| l.out.is_held()) && !self.journal_held.contains(&link) {
            self.journal_held.push(link);
        }
    }

    /// `msg` sealed for the journal (an empty blob without a journal or a readable PAN).
    fn sealed<B: AsRef<[u8]>, I: std::borrow::Borrow<MessageIndex>>(
        &mut self,
        msg: &Message<B, I>,
    ) -> Vec<u8> {
        let Some(j) = self.journal.as_mut() else { return Vec::new() };
        let nonce = j.nonce();
        let mut out = Vec::new();
        if seal(msg, &j.key, nonce, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// Records a request accepted and forwarded; the sequence number its forward waits for.
    #[allow(clippy::too_many_arguments)] // the fields of the two records
    pub(crate) fn record_forward<B: AsRef<[u8]>, I: std::borrow::Borrow<MessageIndex>>(
        &mut self,
        msg: &Message<B, I>,
        origin: LinkId,
        correlation: u64,
        destination: usize,
        out_link: LinkId,
        key: u64,
        sent_stan: [u8; 6],
        dup: &crate::duplicates::DupKey,
        now: Instant,
    ) -> (u64, u64) {
        if self.journal.is_none() {
            return (0, 0);
        }
        let request = self.sealed(msg);
        let name = |e: &Self, l: LinkId| {
            e.links.get(&l).map(|l| e.config.links[l.spec].name.clone()).unwrap_or_default()
        };
        let participant = self
            .links
            .get(&origin)
            .map_or(String::new(), |l| self.config.participants[l.participant].id.clone());
        let accepted = Accepted {
            participant,
            class: dup.class(),
            stan: dup.stan(),
            time: dup.time(),
            terminal: dup.terminal(),
            link: name(self, origin),
            correlation,
            request,
        };
        let a = self.record(&Entry::Accepted(accepted), now);
        let forwarded = Forwarded {
            request: a,
            destination: self.config.participants[destination].id.clone(),
            link: name(self, out_link),
            key,
            sent_stan,
        };
        let f = self.record(&Entry::Forwarded(forwarded), now);
        (a, f)
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
        if self.journal.is_none() || request == 0 {
            return 0;
        }
        self.record(&Entry::Answered(Answered { request, code, auth, switch_made }), now)
    }

    /// Records a reversal queued; its journal id (its record's sequence number).
    pub(crate) fn record_reversal(&mut self, destination: usize, body: &bytes::Bytes, now: Instant) -> u64 {
        if self.journal.is_none() {
            return 0;
        }
        let reversal = match Message::parse(corridor_wire::Dialect::Native, body.clone()) {
            Ok(m) => self.sealed(&m),
            Err(_) => unreachable!("reversals are built in the native dialect"),
        };
        let destination = self.config.participants[destination].id.clone();
        let queued = ReversalQueued {
            id: self.journal.as_ref().map_or(0, |j| j.appender.next_seq()),
            destination,
            reversal,
        };
        self.record(&Entry::ReversalQueued(queued), now)
    }
}
