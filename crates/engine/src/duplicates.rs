//! Duplicate detection: the key that makes two transmissions the same request, and the
//! outcomes of completed requests, which answer their repeats (never forwarded again).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use corridor_wire::{ResponseCode, Stan};
use rustc_hash::FxHashMap;

use crate::{engine::Msg, limits::OUTCOMES_MAX};

/// How a completed request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) code: ResponseCode,
    pub(crate) auth: Option<[u8; 6]>,
    /// Whether the request was reversed (by the switch, or its originator's reversal of it
    /// is stored): a participant's reversal of it is then acknowledged, not forwarded again.
    pub(crate) reversed: bool,
    /// The journal record the answer waited for (0: none): an answer made from this outcome
    /// waits for it too.
    pub(crate) seq: u64,
    /// The STAN its destination saw (a participant's reversal of it names it in DE 90).
    pub(crate) sent_stan: Option<[u8; 6]>,
}

/// Completed requests' outcomes for the duplicate window, bounded by [`OUTCOMES_MAX`].
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    map: FxHashMap<DupKey, Outcome>,
    order: VecDeque<(Instant, DupKey)>,
}

impl Outcomes {
    /// Remembers `key`'s outcome at `now`, forgetting what is older than `window`.
    pub(crate) fn insert(&mut self, key: DupKey, outcome: Outcome, now: Instant, window: Duration) {
        self.expire(now, window);
        while self.map.len() >= OUTCOMES_MAX {
            let Some((_, old)) = self.order.pop_front() else { break };
            self.map.remove(&old);
        }
        if self.map.insert(key, outcome).is_none() {
            self.order.push_back((now, key));
        }
    }

    /// The outcome a repeat of `key` is answered with, within `window` of `now`.
    pub(crate) fn get(&mut self, key: &DupKey, now: Instant, window: Duration) -> Option<Outcome> {
        self.expire(now, window);
        self.map.get(key).copied()
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while self.order.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > window) {
            if let Some((_, k)) = self.order.pop_front() {
                self.map.remove(&k);
            }
        }
    }

    /// Marks `key` reversed, its code set to `code` when given (the switch's reversal: a
    /// repeat is told 68); remembered anew when it was not.
    pub(crate) fn mark_reversed(
        &mut self,
        key: DupKey,
        code: Option<ResponseCode>,
        now: Instant,
        window: Duration,
    ) {
        match self.map.get_mut(&key) {
            Some(o) => {
                o.reversed = true;
                if let Some(c) = code {
                    o.code = c;
                    o.auth = None;
                }
            }
            None => {
                let code = code.unwrap_or(ResponseCode::TIMEOUT);
                self.insert(
                    key,
                    Outcome { code, auth: None, reversed: true, seq: 0, sent_stan: None },
                    now,
                    window,
                );
            }
        }
    }

    /// Outcomes remembered.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Originator, MTI class, STAN, transmission time, terminal, acquiring and forwarding
/// institution: two requests with the same key are one request sent twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DupKey {
    participant: usize,
    class: u8,
    stan: u32,
    time: u64,
    terminal: [u8; 8],
    /// DE 32 and DE 33 as `corridor_journal::entry::institution_code`s (0: absent).
    acquirer: u64,
    forwarder: u64,
}

impl DupKey {
    /// The engine's key for a journaled one, whose participant is `participant`.
    pub(crate) fn from_journal(participant: usize, k: &corridor_journal::entry::Key) -> Self {
        Self {
            participant,
            class: k.class,
            stan: k.stan,
            time: k.time,
            terminal: k.terminal,
            acquirer: k.acquirer,
            forwarder: k.forwarder,
        }
    }

    /// The journal's key for this one, whose participant's configured id is `id`.
    pub(crate) fn to_journal(self, id: String) -> corridor_journal::entry::Key {
        corridor_journal::entry::Key {
            participant: id,
            class: self.class,
            stan: self.stan,
            time: self.time,
            terminal: self.terminal,
            acquirer: self.acquirer,
            forwarder: self.forwarder,
        }
    }

    /// The key of the request a participant's reversal `msg` reverses: DE 90's original MTI
    /// class, STAN and DE 7 (else the reversal's own DE 11 and DE 7, class 2), its DE 41.
    pub(crate) fn original_of(participant: usize, stan: Stan, msg: &Msg<'_>) -> Self {
        let mut k = Self::of(participant, stan, msg);
        k.class = 2;
        // DE 90 is numeric: BCD on native links, so decoded, not borrowed.
        let mut scratch = [0u8; corridor_wire::limits::FIELD_UNITS_MAX];
        let data = msg.field(corridor_wire::de::ORIGINAL_DATA).map(|f| f.value_into(&mut scratch));
        if let Some(d) = data.filter(|d| d.len() >= 20 && d[..20].iter().all(u8::is_ascii_digit)) {
            let num = |b: &[u8]| b.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
            k.class = d[1] - b'0';
            // Six digits: below 10^6.
            k.stan = num(&d[4..10]) as u32;
            k.time = num(&d[10..20]);
        }
        k
    }

    /// The participant.
    pub(crate) fn participant(&self) -> usize {
        self.participant
    }

    /// The key of `msg`, from participant `participant`, whose DE 11 is `stan`.
    pub(crate) fn of(participant: usize, stan: Stan, msg: &Msg<'_>) -> Self {
        let mut terminal = [b' '; 8];
        if let Some(t) = msg.terminal_id() {
            let n = t.len().min(8);
            terminal[..n].copy_from_slice(&t[..n]);
        }
        let code = |id: Option<corridor_wire::InstitutionId>| {
            id.map_or(0, |i| corridor_journal::entry::institution_code(i.as_bytes()))
        };
        Self {
            participant,
            class: msg.mti().class(),
            stan: stan.value(),
            time: msg.transmission_time().map_or(0, |t| t.value()),
            terminal,
            acquirer: code(msg.acquirer_id()),
            forwarder: code(msg.forwarder_id()),
        }
    }
}
