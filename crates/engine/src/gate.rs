//! The journal gate: the journal the engine appends to, the links whose frames wait for it,
//! and whether its disk is full — one type, so the rule "nothing leaves before its record
//! is durable" has one owner.
//!
//! Without a journal the gate is open: every record is number 0, durable is `u64::MAX`
//! (nothing ever waits), nothing is sealed.

use std::time::Instant;

use corridor_journal::{
    entry::{encode_sent, Entry, ForwardRef, KeyRef},
    record::Kind,
    request::{open, seal, PanKey},
    Appender, GroupCommit, SyncBatch,
};
use corridor_wire::{Message, MessageIndex, OwnedMessage};

use crate::link::LinkId;

/// The engine's side of a journal: the appender (numbering, batching, durability) and the
/// key the PANs are sealed with.
pub struct Journal {
    appender: Appender,
    key: PanKey,
    /// The nonce of each sealed PAN: this random prefix (drawn by the caller at every start)
    /// and a counter, so a nonce is never used twice with a key.
    nonce_prefix: [u8; 8],
    nonces: u32,
    /// Working space of [`seal`] (a sealed request's associated data).
    scratch: Vec<u8>,
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
            scratch: Vec::new(),
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

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    journal: Option<Journal>,
    /// Links with frames waiting for a record to be durable, each once.
    held: Vec<LinkId>,
    /// The list [`Gate::synced`] last handed out, given back empty ([`Gate::recycle_held`]):
    /// the two take turns, so a sync allocates nothing.
    spare: Vec<LinkId>,
    /// The journal's disk is full: new liabilities are declined (96).
    full: bool,
    /// In a cluster: the journal cannot be replicated now, or the shard's lease may have
    /// expired — new liabilities are declined (96) for as long.
    paused: bool,
}

impl Gate {
    pub(crate) fn new(journal: Option<Journal>) -> Self {
        Self { journal, held: Vec::new(), spare: Vec::new(), full: false, paused: false }
    }

    /// Whether the engine journals.
    pub(crate) fn on(&self) -> bool {
        self.journal.is_some()
    }

    /// The highest durable record (`u64::MAX` without a journal: nothing waits).
    pub(crate) fn durable(&self) -> u64 {
        self.journal.as_ref().map_or(u64::MAX, |j| j.appender.durable())
    }

    /// The sequence number the next record gets (0 without a journal).
    pub(crate) fn next_seq(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.appender.next_seq())
    }

    /// The sequence number of the last record appended (0 without a journal or before the
    /// first).
    pub(crate) fn end(&self) -> u64 {
        self.next_seq().saturating_sub(1)
    }

    /// Whether every record made so far is durable (true without a journal).
    pub(crate) fn settled(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.appender.durable() >= self.end())
    }

    /// Whether records wait to be handed out in a batch.
    pub(crate) fn waiting(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.appender.buffered() > 0)
    }

    /// When the open batch is due on time.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        self.journal.as_ref()?.appender.poll_timeout_when(!self.held.is_empty())
    }

    /// The next batch to append and sync, when one is due: at once while a link holds a
    /// frame for the journal, else when it has waited
    /// [`corridor_journal::limits::GROUP_WAIT_UNAWAITED`].
    pub(crate) fn poll_batch(&mut self, now: Instant, unix_ms: u64) -> Option<SyncBatch> {
        let awaited = !self.held.is_empty();
        self.journal.as_mut()?.appender.poll_batch_when(now, unix_ms, awaited)
    }

    /// How many batches may be out before the oldest is synced
    /// ([`Appender::set_in_flight_max`]).
    pub(crate) fn set_in_flight_max(&mut self, max: usize) {
        if let Some(j) = self.journal.as_mut() {
            j.appender.set_in_flight_max(max);
        }
    }

    /// The next batch begins a new segment ([`Appender::rotate_early`]).
    pub(crate) fn rotate_early(&mut self) {
        if let Some(j) = self.journal.as_mut() {
            j.appender.rotate_early();
        }
    }

    /// A written batch's buffer, for the next batch ([`Appender::recycle`]).
    pub(crate) fn recycle(&mut self, bytes: Vec<u8>) {
        if let Some(j) = self.journal.as_mut() {
            j.appender.recycle(bytes);
        }
    }

    /// Journals `entry`; its sequence number, or 0 without a journal.
    pub(crate) fn append(&mut self, entry: &Entry, now: Instant) -> u64 {
        let Some(j) = self.journal.as_mut() else { return 0 };
        let seq = j.appender.append_with(entry.kind(), now, |out| entry.encode(out));
        if matches!(entry, Entry::Answered(a) if a.relays_approval()) {
            j.appender.mark_release();
        }
        seq
    }

    /// Journals a request accepted and forwarded, in one record: `msg` sealed straight into
    /// it (an empty blob when its PAN is not readable), the rest borrowed — nothing allocated
    /// or copied first. Its sequence number, or 0 without a journal.
    #[allow(clippy::too_many_arguments)] // the record's fields
    pub(crate) fn append_sent<B: AsRef<[u8]>, I: std::borrow::Borrow<MessageIndex>>(
        &mut self,
        msg: &Message<B, I>,
        key: KeyRef<'_>,
        link: &str,
        correlation: u64,
        to: &ForwardRef<'_>,
        at_unix_ms: u64,
        now: Instant,
    ) -> u64 {
        let Some(j) = self.journal.as_mut() else { return 0 };
        let nonce = j.nonce();
        let Journal { appender, key: pan_key, scratch, .. } = j;
        appender.append_with(Kind::RequestForwarded, now, |out| {
            let sealed = |out: &mut Vec<u8>| {
                let at = out.len();
                if seal(msg, pan_key, nonce, scratch, out).is_err() {
                    out.truncate(at);
                }
            };
            encode_sent(key, link, correlation, sealed, to, at_unix_ms, out);
        })
    }

    /// `msg` sealed for the journal (an empty blob without a journal or a readable PAN).
    pub(crate) fn seal<B: AsRef<[u8]>, I: std::borrow::Borrow<MessageIndex>>(
        &mut self,
        msg: &Message<B, I>,
    ) -> Vec<u8> {
        let Some(j) = self.journal.as_mut() else { return Vec::new() };
        let nonce = j.nonce();
        let mut out = Vec::new();
        if seal(msg, &j.key, nonce, &mut j.scratch, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// A sealed message of the journal opened with its key (`None` without a journal, or
    /// when the key does not open it).
    pub(crate) fn open(&self, sealed: &[u8]) -> Option<OwnedMessage> {
        open(sealed, &self.journal.as_ref()?.key).ok()
    }

    /// The batch ending at `last_seq` is durable: the highest durable record, and the links
    /// that were waiting (taken: those still waiting are held again). `None` without a
    /// journal.
    pub(crate) fn synced(&mut self, last_seq: u64) -> Option<(u64, Vec<LinkId>)> {
        let j = self.journal.as_mut()?;
        j.appender.handle_synced(last_seq);
        let spare = std::mem::take(&mut self.spare);
        Some((j.appender.durable(), std::mem::replace(&mut self.held, spare)))
    }

    /// The list [`Gate::synced`] handed out, done with: kept for the next sync.
    pub(crate) fn recycle_held(&mut self, mut links: Vec<LinkId>) {
        links.clear();
        self.spare = links;
    }

    /// `link` has a frame waiting for a record.
    pub(crate) fn hold(&mut self, link: LinkId) {
        if !self.held.contains(&link) {
            self.held.push(link);
        }
    }

    /// Whether new liabilities are declined: the journal's disk is full, or (in a cluster)
    /// its replication is paused.
    pub(crate) fn full(&self) -> bool {
        self.full || self.paused
    }

    /// Whether the journal's disk is full (whatever the replication).
    pub(crate) fn disk_full(&self) -> bool {
        self.full
    }

    pub(crate) fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub(crate) fn set_full(&mut self, full: bool) {
        self.full = full;
    }
}
