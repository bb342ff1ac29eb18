//! Requests in flight: what the switch waits for on each outbound link, how a response is
//! matched and relayed, and what a timeout does.

use std::time::Instant;

use bytes::Bytes;
use corridor_wire::{
    de, Dialect, FieldId, FieldSet, Message, MessageIndex, Mti, NativeHeader, NetworkCode, ResponseCode,
};
use tracing::warn;

use crate::{
    compose,
    duplicates::DupKey,
    engine::{Engine, Msg},
    link::{CloseReason, LinkId, Undelivered},
    metrics::{Answered, Source},
    pending::Match,
    saf::Late,
    throttle::Warn,
    timers::Timer,
};

/// DE 39 (blank when absent) and DE 38 (when it is six characters) of an answer.
pub(crate) fn answer_of(m: &Msg<'_>) -> ([u8; 2], Option<[u8; 6]>) {
    let code = m.response_code().map_or(*b"  ", |c| c.0);
    let auth =
        m.field(de::AUTH_ID).and_then(|f| f.value_borrowed()).and_then(|v| <[u8; 6]>::try_from(v).ok());
    (code, auth)
}

/// A request forwarded and not yet answered.
pub(crate) struct Request {
    /// The link it came on, its correlation there, and that link's dialect.
    pub(crate) origin: LinkId,
    pub(crate) origin_correlation: u64,
    pub(crate) origin_dialect: Dialect,
    /// The request as the originator sent it (its own copy, see `forward`).
    pub(crate) request: Bytes,
    pub(crate) request_mti: Mti,
    /// The STAN the originator used, and the one the destination saw.
    pub(crate) origin_stan: [u8; 6],
    pub(crate) sent_stan: [u8; 6],
    /// Its DE 37, when it had one: the response must echo it.
    pub(crate) rrn: Option<[u8; 12]>,
    pub(crate) dup: DupKey,
    /// The participant the request was routed to, which a reversal goes to.
    pub(crate) destination: usize,
    /// The sequence number of its `Accepted` journal record (0 without a journal).
    pub(crate) journal_seq: u64,
    /// The originating participant (for the corridor's latency).
    pub(crate) origin_participant: usize,
    /// When the request was taken in, and when it was forwarded.
    pub(crate) received: Instant,
    pub(crate) forwarded: Instant,
}

/// What the metrics need of a request, kept when the request itself is taken apart.
#[derive(Clone, Copy)]
struct Timing {
    origin_participant: usize,
    destination: usize,
    received: Instant,
    forwarded: Instant,
}

impl Request {
    fn timing(&self) -> Timing {
        Timing {
            origin_participant: self.origin_participant,
            destination: self.destination,
            received: self.received,
            forwarded: self.forwarded,
        }
    }
}

/// What a pending entry waits for.
pub(crate) enum Kind {
    Request(Request),
    Reversal(u64),
    Network(NetworkCode),
}

/// An entry keyed by `(outbound link, correlation)`.
pub(crate) struct Pending {
    pub(crate) kind: Kind,
    pub(crate) deadline: Instant,
}

impl Pending {
    pub(crate) fn is_request(&self) -> bool {
        matches!(self.kind, Kind::Request(_))
    }
}

/// Whether `resp` echoes what identifies request `r`: the STAN its destination saw and its
/// RRN, where the response carries them. A response on the wrong link, or one for another
/// request that happens to share the correlation there, does not: it is no answer to `r`.
fn echoes(r: &Request, resp: &Msg<'_>) -> bool {
    // The STAN as a number (no text decoding); the RRN is text in every dialect, borrowed.
    let stan = match resp.stan() {
        Some(s) => s.to_ascii() == r.sent_stan,
        None => !resp.has(de::STAN),
    };
    let rrn = match (resp.rrn(), &r.rrn) {
        (Some(got), Some(want)) => got == want,
        _ => true,
    };
    stan && rrn
}

impl Engine {
    /// The correlation a response on `link` is matched by.
    pub(crate) fn response_key<B: AsRef<[u8]>>(
        &self,
        link: LinkId,
        correlation: u64,
        msg: &Message<B, &MessageIndex>,
    ) -> Option<u64> {
        let l = self.links.get(&link)?;
        match l.framing {
            crate::config::Framing::Native => Some(correlation),
            crate::config::Framing::Length(_) => msg.stan().map(|s| u64::from(s.value())),
        }
    }

    /// One debug line per answered request, for the transaction log (target
    /// `corridor::transaction`): the originating link and participant, MTI, STAN, RRN, the
    /// PAN masked (the wire crate's `Pan` prints only its first six and last four digits),
    /// the answer and its latency. Nothing is parsed unless that target is on.
    fn log_answer(&self, r: &Request, code: [u8; 2], source: Source, now: Instant) {
        if !tracing::enabled!(target: "corridor::transaction", tracing::Level::DEBUG) {
            return;
        }
        let Ok(req) = Message::parse(r.origin_dialect, r.request.clone()) else { return };
        let link = self.links.get(&r.origin).map_or("", |l| self.config.links[l.spec].name.as_str());
        let participant = self.config.participants.get(r.origin_participant).map_or("", |p| p.id.as_str());
        let destination = self.config.participants.get(r.destination).map_or("", |p| p.id.as_str());
        let pan = req.pan().map(|p| p.to_string()).unwrap_or_default();
        let rrn = r.rrn.map(|x| String::from_utf8_lossy(&x).into_owned()).unwrap_or_default();
        tracing::debug!(
            target: "corridor::transaction",
            link,
            participant,
            destination,
            mti = %r.request_mti,
            stan = %String::from_utf8_lossy(&r.origin_stan),
            rrn = %rrn,
            pan = %pan,
            code = %String::from_utf8_lossy(&code),
            by = source.name(),
            latency_us = u64::try_from(now.saturating_duration_since(r.received).as_micros()).unwrap_or(u64::MAX),
            "answered"
        );
    }

    /// Records the answer to routed request `r`, made by `source` at `now`.
    fn measure(
        &mut self,
        r: Timing,
        code: [u8; 2],
        source: Source,
        destination_answered: bool,
        now: Instant,
    ) {
        // Another shard's request is measured there, where its originator is.
        if !self.config.settings.metrics || self.config.is_hop(r.origin_participant) {
            return;
        }
        self.metrics.answered(Answered {
            origin: r.origin_participant,
            destination: r.destination,
            code,
            source,
            total: now.saturating_duration_since(r.received),
            destination_time: destination_answered.then(|| now.saturating_duration_since(r.forwarded)),
        });
    }

    /// An outbound link's pending entry is gone (answered or timed out).
    fn outbound_done(&mut self, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            take_one!(l.inflight_out, "a destination's in-flight count");
        }
    }

    /// A response arrived on `link`. `flags` are its native header's: on a hop (the switch
    /// itself) [`NativeHeader::FLAG_SWITCH_ORIGIN`] says the destination's owner made the
    /// answer (a timeout, a decline), so it is counted, journaled and measured as the switch's
    /// here too; from a participant the flag is advisory and ignored.
    pub(crate) fn handle_response(
        &mut self,
        link: LinkId,
        correlation: u64,
        flags: u8,
        msg: &Msg<'_>,
        now: Instant,
    ) {
        let Some(key) = self.response_key(link, correlation, msg) else {
            self.stats.unmatched_responses += 1;
            return;
        };
        let saf = &self.saf;
        let answered = self.in_flight.take_answered(link, key, |p| match &p.kind {
            Kind::Request(r) => r.request_mti.response() == Some(msg.mti()) && echoes(r, msg),
            Kind::Reversal(id) => saf.get(*id).and_then(|r| r.mti.response()) == Some(msg.mti()),
            Kind::Network(_) => false,
        });
        let p = match answered {
            Match::Taken(p) => p,
            Match::Nothing => return self.unmatched(link, key, msg, now),
            Match::Mismatch => {
                self.stats.unmatched_responses += 1;
                let spec = self.links.get(&link).map_or(0, |l| l.spec);
                if let Some(left_out) = self.may_warn(spec, Warn::Mismatched, now) {
                    warn!(%link, mti = %msg.mti(), left_out, "response does not answer the request it correlates with");
                }
                return;
            }
        };
        self.outbound_done(link);
        match p.kind {
            Kind::Request(r) => {
                let dup = r.dup;
                let source = if flags & NativeHeader::FLAG_SWITCH_ORIGIN != 0 && self.is_hop(link) {
                    Source::Switch
                } else {
                    Source::Destination
                };
                self.relay(r, msg, source, now);
                // A reversal of it its originator sent meanwhile goes now, after it.
                if let Some(id) = self.saf.by_original(&dup) {
                    self.send_reversal(id, now);
                }
            }
            Kind::Reversal(id) => {
                // Another shard answers a stored entry 00 once it stored it; anything else (96:
                // its disk is full) is a refusal, and the entry stays here to go again. A
                // destination's answer, whatever its code, acknowledges it.
                if self.is_hop(link) && msg.response_code() != Some(ResponseCode::APPROVED) {
                    self.entry_refused(id, now);
                } else {
                    self.entry_acked(id);
                }
            }
            Kind::Network(_) => unreachable!("network responses are matched in network_response"),
        }
    }

    /// Relays `resp` to the originator of `r`. Whatever stops it from reaching the
    /// originator — the link is gone or closing, the answer cannot be encoded for it, or
    /// (later) the link goes before the batch is written — an approval is reversed.
    ///
    /// `source` is who made the answer: the destination, or (over a hop) the switch on the
    /// destination's shard — a timeout there is a timeout here, in every figure and record.
    fn relay(&mut self, r: Request, resp: &Msg<'_>, source: Source, now: Instant) {
        let approved = resp.response_code().is_some_and(ResponseCode::is_approval);
        let code = resp.response_code().map_or(*b"  ", |c| c.0);
        let timing = r.timing();
        let by_destination = source == Source::Destination;
        self.log_answer(&r, code, source, now);
        let undelivered = Undelivered {
            destination: r.destination,
            request: r.request,
            dialect: r.origin_dialect,
            sent_stan: r.sent_stan,
            dup: r.dup,
        };
        let open = self.links.get(&r.origin).is_some_and(|o| !o.closing());
        if self.links.contains_key(&r.origin) {
            self.slot_freed(r.origin);
        }
        if !open {
            self.measure(timing, code, source, by_destination, now);
            // The originator is gone: the answer cannot be delivered. It is still the
            // request's outcome — a repeat on a new connection is answered from it, never
            // forwarded again — and an approval is reversed (its repeat is then told 68).
            self.stats.undeliverable += 1;
            // The reversal's record first: no torn batch leaves the approval without it.
            if approved {
                self.reverse_undelivered(undelivered, now);
            }
            let answered = self.relayed_outcome(&r.dup, r.journal_seq, r.sent_stan, resp, source, now);
            if approved {
                self.remember_reversed(r.dup, Some(r.sent_stan), answered, now);
            }
            return;
        }
        let Some(o) = self.links.get_mut(&r.origin) else { unreachable!("checked open above") };
        let dialect = o.dialect;
        // The originator gets its own STAN back (a classic destination saw the switch's). A
        // native destination saw the originator's: its answer goes as it came, one copy.
        // (Matched by `echoes`: a DE 11 it carries is the one the destination saw.)
        let rewrite = resp.has(de::STAN) && r.sent_stan != r.origin_stan;
        let set: &[(FieldId, &[u8])] = if rewrite { &[(de::STAN, &r.origin_stan)] } else { &[] };
        let start = o.out.len();
        let written = o.frame(0, r.origin_correlation, |buf| {
            resp.derive(resp.mti(), FieldSet::VALUES, set, dialect, buf)
        });
        match written {
            Ok(()) => {
                // A switch-made answer from the destination's shard was counted there (as
                // the decline it is), not relayed from a destination.
                if by_destination && !self.config.is_hop(r.origin_participant) {
                    self.stats.relayed += 1;
                }
                if approved {
                    o.out.track(undelivered);
                }
                self.measure(timing, code, source, by_destination, now);
                // Journal before answer: the answer leaves once its record is durable — unless
                // it is the destination's answer going back over a hop: the originator's shard
                // journals it before it answers, and nothing here depends on this record (a
                // recovery here leaves a request another shard sent to that shard). A
                // switch-made answer (a timeout with its reversal, a decline) is this shard's
                // decision and waits for its records.
                let answered = self.relayed_outcome(&r.dup, r.journal_seq, r.sent_stan, resp, source, now);
                let covered = by_destination && self.config.is_hop(r.origin_participant);
                if let Some(o) = self.links.get_mut(&r.origin).filter(|_| !covered) {
                    o.hold_from(start, answered);
                }
            }
            Err(e) => {
                // The answer does not fit the originator's link (its frame limit, a field
                // its dialect cannot carry): it gets a switch-made 96, and an approval is
                // reversed, since the originator will never see it.
                let spec = o.spec;
                if let Some(left_out) = self.may_warn(spec, Warn::Encode, now) {
                    warn!(link = %r.origin, error = %e, approved, left_out, "cannot relay a response: answered 96");
                }
                self.stats.unrelayable += 1;
                self.measure(timing, ResponseCode::SYSTEM_ERROR.0, Source::Switch, true, now);
                let answered =
                    self.record_answer(r.journal_seq, ResponseCode::SYSTEM_ERROR.0, None, true, now);
                match Message::parse(undelivered.dialect, undelivered.request.clone()) {
                    Ok(req) => {
                        self.decline_after(
                            answered,
                            r.origin,
                            r.origin_correlation,
                            &req,
                            ResponseCode::SYSTEM_ERROR,
                        );
                    }
                    Err(_) => unreachable!("the request parsed when it arrived"),
                }
                if approved {
                    self.reverse_undelivered(undelivered, now);
                }
            }
        }
        self.after_write(r.origin);
    }

    /// The answer `resp`, made by `source`, is the outcome of the request journaled at
    /// `seq`: journaled and remembered for its repeats. The sequence number its answer waits
    /// for. A timeout the destination's shard made was reversed there: its repeats are told
    /// 68 and a participant's reversal of it is acknowledged, as for a timeout made here.
    fn relayed_outcome(
        &mut self,
        dup: &DupKey,
        seq: u64,
        sent_stan: [u8; 6],
        resp: &Msg<'_>,
        source: Source,
        now: Instant,
    ) -> u64 {
        let (code, auth) = answer_of(resp);
        let switch_made = source == Source::Switch;
        let answered = self.record_answer(seq, code, auth, switch_made, now);
        // (A response's class is its request's: only authorizations and financial requests
        // are reversed at a timeout.)
        if switch_made && code == ResponseCode::TIMEOUT.0 && matches!(resp.mti().class(), 1 | 2) {
            self.remember_reversed(*dup, Some(sent_stan), answered, now);
        } else {
            self.remember(*dup, (ResponseCode(code), auth), Some(sent_stan), answered, now);
        }
        answered
    }

    /// A request with duplicate key `dup` was answered `code` (its answer waiting for
    /// journal record `seq`): its repeats get the same, once that record is durable.
    pub(crate) fn remember(
        &mut self,
        dup: DupKey,
        (code, auth): (ResponseCode, Option<[u8; 6]>),
        sent_stan: Option<[u8; 6]>,
        seq: u64,
        now: Instant,
    ) {
        let window = self.config.settings.duplicate_window;
        let outcome = crate::duplicates::Outcome { code, auth, reversed: false, seq, sent_stan };
        self.outcomes.insert(dup, outcome, now, window);
    }

    /// [`Self::remember`] for a request the switch reversed (`68`): a repeat of it is told
    /// 68, and a participant's reversal of it is acknowledged, not forwarded again.
    pub(crate) fn remember_reversed(
        &mut self,
        dup: DupKey,
        sent_stan: Option<[u8; 6]>,
        seq: u64,
        now: Instant,
    ) {
        let window = self.config.settings.duplicate_window;
        let outcome = crate::duplicates::Outcome {
            code: ResponseCode::TIMEOUT,
            auth: None,
            reversed: true,
            seq,
            sent_stan,
        };
        self.outcomes.insert(dup, outcome, now, window);
    }

    /// A pending entry's deadline came.
    pub(crate) fn pending_timeout(&mut self, link: LinkId, key: u64, now: Instant) {
        let due = self.in_flight.get(link, key).is_some_and(|p| p.deadline <= now);
        if !due {
            return;
        }
        let Some(p) = self.in_flight.remove(link, key) else { return };
        // Network requests do not count against the link's in-flight limit.
        if !matches!(p.kind, Kind::Network(_)) {
            self.outbound_done(link);
        }
        match p.kind {
            Kind::Request(r) => {
                self.stats.timeouts += 1;
                self.measure(r.timing(), ResponseCode::TIMEOUT.0, Source::Switch, false, now);
                self.log_answer(&r, ResponseCode::TIMEOUT.0, Source::Switch, now);
                self.destination_silent(link, now);
                let Ok(req) = Message::parse(r.origin_dialect, r.request) else {
                    unreachable!("the request parsed when it arrived")
                };
                if self.links.contains_key(&r.origin) {
                    self.slot_freed(r.origin);
                }
                // Authorizations and financial requests may have been approved: reverse them.
                // The reversal's record goes before the answer's, so that no torn batch
                // leaves the answer without it (recovery reverses an open request).
                let reversal = if matches!(r.request_mti.class(), 1 | 2) {
                    let body = match compose::reversal(&req, &r.sent_stan, b"68") {
                        Ok(b) => b,
                        Err(e) => unreachable!("a reversal of a parsed request encodes: {e}"),
                    };
                    let id = self.reverse_request(r.destination, body.clone(), r.dup, Some(link), now);
                    Some((id, body))
                } else {
                    None
                };
                let answered = self.record_answer(r.journal_seq, ResponseCode::TIMEOUT.0, None, true, now);
                if reversal.is_some() {
                    self.remember_reversed(r.dup, Some(r.sent_stan), answered, now);
                } else {
                    self.remember(r.dup, (ResponseCode::TIMEOUT, None), Some(r.sent_stan), answered, now);
                }
                if self.links.get(&r.origin).is_some_and(|o| !o.closing()) {
                    self.decline_after(answered, r.origin, r.origin_correlation, &req, ResponseCode::TIMEOUT);
                }
                if let Some((id, body)) = reversal {
                    let late = Late { reversal: id, destination: r.destination, body, dup: r.dup };
                    if self.saf.remember_late(link, key, late) {
                        self.timer(now, self.config.settings.late_window, Timer::Late(link, key));
                    }
                }
            }
            Kind::Reversal(id) => {
                self.saf.unanswered(id, Some((link, key)));
                self.send_reversal(id, now);
            }
            Kind::Network(_) => {}
        }
    }

    /// A request forwarded on `link` timed out. After the link's limit of timeouts in a row
    /// with nothing received from it, the destination is taken out of routing (the link is
    /// closed; a dialed one is redialed), so traffic fails over in seconds, not echoes.
    fn destination_silent(&mut self, link: LinkId, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else { return };
        l.timeouts_in_row += 1;
        let max = self.config.links[l.spec].timeouts_down_max;
        if l.timeouts_in_row >= max && !l.closing() {
            self.stats.unresponsive_links += 1;
            self.close(link, CloseReason::Unresponsive, now);
        }
    }
}
