//! Admission: what happens to a request as it arrives, decided in one readable sequence —
//! hold it (its originator is at its limit), decline it with a code, or forward it on a
//! chosen link — and then the forwarding itself.

use std::time::{Duration, Instant};

use corridor_wire::{de, FieldId, FieldSet, InstitutionId, ResponseCode};
use tracing::{debug, warn};

use crate::{
    config::{AtLimit, Framing},
    duplicates::DupKey,
    engine::{Engine, Msg},
    inflight::{Kind, Pending, Request},
    link::LinkId,
    registry::Unavailable,
    routes::{QrTarget, RouteQuery},
    throttle::Warn,
    timers::Timer,
};

/// What the switch does with a request.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Forward it as this says.
    Forward(Forward),
    /// Answer it at once with this code.
    Decline(ResponseCode),
    /// Keep it until its originator has an in-flight slot again.
    Hold,
    /// A repeat of a completed request: answer it with that request's outcome.
    Replay(crate::duplicates::Outcome),
}

/// Where admission sends a request, and what it adds to it: everything the forward needs.
#[derive(Debug)]
pub(crate) struct Forward {
    /// The participant it goes to.
    pub(crate) destination: usize,
    /// How long that participant has to answer.
    pub(crate) timeout: Duration,
    /// The link it goes on (open and routable when admission chose it).
    pub(crate) link: LinkId,
    /// Its duplicate key.
    pub(crate) dup: DupKey,
    /// The fields the switch adds (a QR payment's merchant fields, a conversion's amounts
    /// and rates); empty for most requests, and then nothing is allocated.
    pub(crate) fill: Vec<crate::qr::FillField>,
}

impl Engine {
    /// Whether a request or advice from `link` may be taken at all: the link may carry
    /// traffic, the message has a STAN, and it speaks for its sender only (DE 32 must be one
    /// of the participant's ids, DE 33 too). The sender's configured link and participant,
    /// and the message's key in the duplicate window — made of the fields just read, each
    /// read once — or the decline.
    fn check_sender(
        &mut self,
        link: LinkId,
        msg: &Msg<'_>,
        now: Instant,
    ) -> Result<(usize, usize, DupKey), ResponseCode> {
        let l = self.origin(link);
        let (spec, participant) = (l.spec, l.participant);
        if !l.routable() {
            debug!(%link, "request before sign-on");
            return Err(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        // Read with its parse when the frame was read ahead (the same bytes), else now.
        let read = self.sender.take().filter(|s| s.at == crate::engine::Sender::place(msg.as_bytes()));
        let (stan, acquirer, forwarder) = match read {
            Some(s) => (s.stan, s.acquirer, s.forwarder),
            None => match msg.stan() {
                Some(stan) => (stan, msg.acquirer_id(), msg.forwarder_id()),
                None => return Err(ResponseCode::FORMAT_ERROR),
            },
        };
        let p = &self.config.participants[participant];
        // Another shard of this switch (a hop) checked the sender on the link it came in by.
        if p.hop.is_none() {
            let acquirer_ok = acquirer.is_some_and(|id| p.acquirer_ids.contains(&id));
            let forwarder_ok = forwarder.is_none_or(|id| p.forwarder_ids.contains(&id));
            if !acquirer_ok || !forwarder_ok {
                if let Some(left_out) = self.may_warn(spec, Warn::Spoofed, now) {
                    warn!(
                        %link,
                        participant = %self.config.participants[participant].id,
                        de32 = ?acquirer,
                        de33 = ?forwarder,
                        pan = ?msg.pan(),
                        left_out,
                        "security violation: institution id not owned by the sender"
                    );
                }
                return Err(ResponseCode::SECURITY_VIOLATION);
            }
        }
        let key = match read {
            Some(s) => s.key,
            None => DupKey::of(participant, stan, acquirer, forwarder, msg),
        };
        debug_assert_eq!(key, DupKey::of(participant, stan, acquirer, forwarder, msg));
        Ok((spec, participant, key))
    }

    /// Whether store-and-forward is at its bound: the switch then takes no new liability.
    fn saf_full(&mut self, spec: usize, now: Instant) -> bool {
        if self.saf.has_room() {
            return false;
        }
        if let Some(left_out) = self.may_warn(spec, Warn::Exceptions, now) {
            warn!(entries = self.saf.len(), left_out, "store-and-forward full: new requests declined 96");
        }
        true
    }

    /// The checks, in order: the link may carry traffic; the request has a STAN; it speaks
    /// for its sender only (DE 32, DE 33); the switch is not draining; it is not a duplicate
    /// of one in flight; its originator has a free slot; it has a route; the destination
    /// has a link with room.
    fn admit(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>, now: Instant) -> Decision {
        use Decision::{Decline, Hold};
        let (spec, participant, dup) = match self.check_sender(link, msg, now) {
            Ok(v) => v,
            Err(code) => return Decline(code),
        };
        let l = self.origin(link);
        let origin_full = l.origin_full();
        let at_limit = l.at_limit;
        if self.draining || l.retiring().is_some() {
            return Decline(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        if self.in_flight.has_request(&dup) {
            return Decline(ResponseCode::DUPLICATE);
        }
        let window = self.config.settings.duplicate_window;
        if let Some(outcome) = self.outcomes.get(&dup, now, window) {
            return Decision::Replay(outcome);
        }
        if origin_full {
            if at_limit == AtLimit::Backpressure {
                return Hold;
            }
            self.stats.inflight_limit_hits += 1;
            if let Some(left_out) = self.may_warn(spec, Warn::OriginAtLimit, now) {
                warn!(%link, left_out, "originator at its in-flight limit");
            }
            return Decline(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        if !self.in_flight.has_room() {
            self.stats.inflight_limit_hits += 1;
            return Decline(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        if matches!(msg.mti().class(), 1 | 2) && (self.journal.full() || self.saf_full(spec, now)) {
            self.stats.storage_declines += u64::from(self.journal.full());
            return Decline(ResponseCode::SYSTEM_ERROR);
        }
        if let Some(hop) = self.hop_route(participant, correlation) {
            return self.admit_hop(spec, hop, dup, now);
        }
        let table = self.routes.load();
        let pan = msg.pan();
        let receiver: Option<InstitutionId> = msg.receiver_id();
        // A QR payment: its payload checked, its networks in the originator's policy order.
        let qr_text = match crate::qr::payload_text(msg) {
            Ok(t) => t,
            Err(code) => return Decline(code),
        };
        let policy = &self.config.participants[participant].directory.qr_policy;
        let read = qr_text.as_deref().map(|t| crate::qr::read(&self.config.interop.registry, t, policy));
        let (payload, found) = match read.transpose() {
            Ok(Some((p, f))) => (Some(p), f),
            Ok(None) => (None, Vec::new()),
            Err(e) => {
                if let Some(left_out) = self.may_warn(spec, Warn::Malformed, now) {
                    warn!(%link, error = %e, left_out, "invalid QR payload (DE 126): answered 30");
                }
                return Decline(ResponseCode::FORMAT_ERROR);
            }
        };
        let targets: Vec<QrTarget<'_>> = found.iter().map(|(t, _)| *t).collect();
        let query = RouteQuery {
            mti: msg.mti(),
            receiver: receiver.as_ref(),
            pan: pan.as_ref().map(|p| p.digits()),
            qr: payload.is_some().then_some(&targets[..]),
            origin: Some(participant),
        };
        let Some((route, at)) = table.lookup_with_target(&query) else {
            debug!(%link, pan = ?pan, qr = payload.is_some(), "no route");
            return Decline(ResponseCode::NO_ROUTE);
        };
        let (destination, timeout) = (route.destination, route.timeout);
        // The network the payment goes by (not when DE 100 chose the route).
        let chosen = at.map(|at| found[at].1);
        drop(table);
        let mut fill = Vec::new();
        if let Some(p) = &payload {
            if let Err(code) = crate::qr::merchant_fields(msg, p, chosen.as_ref(), &mut fill) {
                return Decline(code);
            }
        }
        if self.interop_active && matches!(msg.mti().class(), 1 | 2) {
            let parties = crate::qr::Parties {
                origin: &self.config.participants[participant].directory,
                destination: &self.config.participants[destination].directory,
                settlement: self.config.interop.settlement,
                rates: &self.config.interop.rates,
            };
            let unix_ms = self.unix_ms(now);
            if let Err(code) = crate::qr::currencies_and_limits(msg, &parties, unix_ms, &mut fill) {
                debug!(%link, code = %code, "declined by the currency or limit step");
                return Decline(code);
            }
        }
        match self.pick_link(destination) {
            Ok(link) => Decision::Forward(Forward { destination, timeout, link, dup, fill }),
            Err(Unavailable::NoLink) => Decline(ResponseCode::DESTINATION_UNAVAILABLE),
            Err(Unavailable::AtLimit) => {
                self.stats.inflight_limit_hits += 1;
                if let Some(left_out) = self.may_warn(spec, Warn::DestinationAtLimit, now) {
                    let id = &self.config.participants[destination].id;
                    warn!(destination = %id, left_out, "destination at its in-flight limit");
                }
                Decline(ResponseCode::DESTINATION_UNAVAILABLE)
            }
        }
    }

    /// What a request from hop participant `participant` says of its route (see
    /// [`crate::shards::hop_key`]); `None` for any other originator.
    fn hop_route(&self, participant: usize, correlation: u64) -> Option<(usize, Duration)> {
        self.config.participants[participant].hop?;
        crate::shards::hop_route(correlation).filter(|(d, _)| *d < self.config.participants.len())
    }

    /// A request another shard admitted and routed: it goes to the destination its hop named,
    /// with the timeout it named; only the link is chosen here.
    fn admit_hop(
        &mut self,
        spec: usize,
        (destination, timeout): (usize, Duration),
        dup: DupKey,
        now: Instant,
    ) -> Decision {
        match self.pick_link(destination) {
            Ok(link) => Decision::Forward(Forward { destination, timeout, link, dup, fill: Vec::new() }),
            Err(Unavailable::NoLink) => Decision::Decline(ResponseCode::DESTINATION_UNAVAILABLE),
            Err(Unavailable::AtLimit) => {
                self.stats.inflight_limit_hits += 1;
                if let Some(left_out) = self.may_warn(spec, Warn::DestinationAtLimit, now) {
                    let id = &self.config.participants[destination].id;
                    warn!(destination = %id, left_out, "destination at its in-flight limit");
                }
                Decision::Decline(ResponseCode::DESTINATION_UNAVAILABLE)
            }
        }
    }

    pub(crate) fn handle_request(&mut self, link: LinkId, correlation: u64, msg: Msg<'_>, now: Instant) {
        let l = self.links.origin_mut(link);
        let spec = l.spec;
        // A request from another shard was counted on its originator's: here it is a hop's.
        let from_hop = self.config.is_hop(l.participant);
        let counter = if from_hop { &mut self.stats.hop_requests_in } else { &mut self.stats.requests_in };
        if msg.mti().function() == 2 {
            *counter += 1;
            if self.config.settings.metrics {
                self.metrics.request_in(spec, msg.mti().class());
            }
            return self.handle_advice(link, correlation, &msg, now);
        }
        // Requests behind held ones wait their turn: a link's requests are handled in order.
        let replaying = l.replaying;
        let queued_behind = !l.held.is_empty() && !replaying;
        if !replaying {
            *counter += 1;
            if self.config.settings.metrics {
                self.metrics.request_in(spec, msg.mti().class());
            }
        }
        let decision = if queued_behind { Decision::Hold } else { self.admit(link, correlation, &msg, now) };
        match decision {
            Decision::Hold => {
                let l = self.links.origin_mut(link);
                let body = msg.into_inner();
                l.held_bytes += body.len();
                if replaying {
                    // Still no room: it stays first in line.
                    l.held.push_front((correlation, body));
                } else {
                    l.held.push_back((correlation, body));
                    self.stats.requests_held += 1;
                }
            }
            Decision::Decline(code) => self.decline(link, correlation, &msg, code),
            Decision::Replay(outcome) => {
                self.stats.duplicates_replayed += 1;
                if self.config.settings.metrics {
                    self.metrics.answer(None, outcome.code.0, crate::metrics::Source::Switch);
                }
                self.replay_outcome(link, correlation, &msg, outcome);
            }
            Decision::Forward(f) if f.fill.is_empty() => self.forward(link, correlation, msg, f, now),
            Decision::Forward(f) => {
                // The request as forwarded (and journaled) carries what the switch added:
                // rebuilt in its own dialect with those fields, then forwarded like any.
                let mut body = bytes::BytesMut::new();
                let index = match with_fields(&msg, &f.fill, &mut body) {
                    Ok(()) => {
                        corridor_wire::MessageIndex::parse(msg.dialect(), &body).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e),
                };
                match index {
                    Ok(index) => {
                        let patched = corridor_wire::Message::from_parts(body.freeze(), &index);
                        self.forward(link, correlation, patched, f, now);
                    }
                    Err(e) => {
                        if let Some(left_out) = self.may_warn(spec, Warn::Encode, now) {
                            warn!(%link, error = %e, left_out, "cannot add the switch's fields: answered 96");
                        }
                        self.decline(link, correlation, &msg, ResponseCode::SYSTEM_ERROR);
                    }
                }
            }
        }
    }

    /// Forwards request `msg` from `link` as admission decided.
    fn forward(&mut self, link: LinkId, correlation: u64, msg: Msg<'_>, f: Forward, now: Instant) {
        let Forward { destination, timeout, link: out_link, dup, fill: _ } = f;
        let origin = self.origin(link);
        let (origin_dialect, origin_participant) = (origin.dialect, origin.participant);
        // DE 11 as admission read it (into the key).
        let Some(stan) = dup.stan() else { unreachable!("admission checked DE 11") };
        let Some(out) = self.links.get_mut(&out_link) else { unreachable!("admission picked an open link") };
        // On a hop the correlation carries the route, and the answer is the destination's
        // owner's to time out: this side waits a margin longer.
        let hop = self.config.is_hop(out.participant);
        let keyed = |k: u64| if hop { crate::shards::hop_key(k, Some(destination), timeout) } else { k };
        let timeout = if hop { timeout + crate::shards::HOP_MARGIN } else { timeout };
        let (key, mut switch_stan) = out.next_key();
        let mut key = keyed(key);
        // A STAN still in flight on this link (after a wrap) is skipped; the in-flight limit
        // is far below the STAN space, so this ends within inflight_max + 1 steps.
        while self.in_flight.contains(out_link, key) {
            let (k, s) = out.next_key();
            (key, switch_stan) = (keyed(k), s);
        }
        let (dest_dialect, dest_classic) = (out.dialect, matches!(out.framing, Framing::Length(_)));
        // Classic links are correlated by the switch's STAN in DE 11; native ones by the
        // header, so the originator's STAN goes through.
        let sent_stan = if dest_classic { switch_stan.to_ascii() } else { stan.to_ascii() };
        let set: &[(FieldId, &[u8])] = if dest_classic { &[(de::STAN, &sent_stan)] } else { &[] };
        let start = out.out.len();
        let written =
            out.frame(0, key, |buf| msg.derive(msg.mti(), FieldSet::VALUES, set, dest_dialect, buf));
        if let Err(e) = written {
            let spec = self.links.get(&link).map_or(0, |l| l.spec);
            if let Some(left_out) = self.may_warn(spec, Warn::Encode, now) {
                warn!(%link, error = %e, left_out, "cannot forward: answered 96");
            }
            return self.decline(link, correlation, &msg, ResponseCode::SYSTEM_ERROR);
        }
        out.inflight_out += 1;
        if let Some(o) = self.links.get_mut(&link) {
            o.inflight_in += 1;
        }
        // Journal before forward: the request leaves once its record is durable — unless
        // another shard sent it (over a hop): that shard's record of it was durable before it
        // left there, and covers it here (its recovery reverses it; this shard's never
        // does). Its record here is written, not waited for: a hop adds no durable step.
        let journal_seq =
            self.record_forward(&msg, link, correlation, destination, out_link, key, sent_stan, &dup, now);
        if !self.config.is_hop(origin_participant) {
            if let Some(out) = self.links.get_mut(&out_link) {
                out.hold_from(start, journal_seq);
            }
        }
        let request_mti = msg.mti();
        // The pending entry keeps its own copy of the request: a slice would pin the whole
        // read buffer it came in for as long as the request is in flight.
        let request = bytes::Bytes::copy_from_slice(msg.as_bytes());
        let rrn = msg.rrn().and_then(|r| r.try_into().ok());
        self.in_flight.insert(
            out_link,
            key,
            Pending {
                kind: Kind::Request(Request {
                    origin: link,
                    origin_correlation: correlation,
                    origin_dialect,
                    request,
                    request_mti,
                    origin_stan: stan.to_ascii(),
                    sent_stan,
                    rrn,
                    dup,
                    destination,
                    journal_seq,
                    origin_participant,
                    received: now,
                    forwarded: now,
                }),
                deadline: now + timeout,
            },
        );
        self.timer(now, timeout, Timer::Pending(out_link, key));
        // Counted once a request: forwarded where it leaves for its destination, measured
        // where its originator is.
        if !hop {
            self.stats.forwarded += 1;
        }
        if self.config.settings.metrics && !self.config.is_hop(origin_participant) {
            self.metrics.forwarded(destination);
        }
        self.after_write(out_link);
    }

    /// An advice or reversal a participant sends (0120, 0220, 0420 and their repeats): stored
    /// for its destination, acknowledged to its sender once durable, then forwarded until
    /// the destination acknowledges it (see `reversals`). A repeat of one stored is
    /// acknowledged again, never stored twice; a reversal of a request the switch already
    /// reversed is acknowledged and not forwarded.
    fn handle_advice(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>, now: Instant) {
        let (spec, participant, dup) = match self.check_sender(link, msg, now) {
            Ok(v) => v,
            Err(code) => return self.decline(link, correlation, msg, code),
        };
        let window = self.config.settings.duplicate_window;
        if let Some(outcome) = self.outcomes.get(&dup, now, window) {
            return self.replay_outcome(link, correlation, msg, outcome);
        }
        // DE 90 names the original (SPEC §9); a reversal that leaves DE 41 out, or carries
        // one its original had not (the switch added it), still reverses it: the key of the
        // request in flight or remembered that it names — its own DE 41's when there is
        // one, else one that differs only by having no DE 41 or by the reversal having none
        // ([`DupKey::same_original`]; never another terminal's request).
        let original = (msg.mti().class() == 4).then(|| {
            let named = DupKey::original_of(dup, msg);
            if self.in_flight.has_request(&named) || self.outcomes.contains(&named) {
                return named;
            }
            self.in_flight
                .same_original(&named)
                .or_else(|| self.outcomes.same_original(&named))
                .unwrap_or(named)
        });
        if let Some(orig) = original {
            let reversed = self.outcomes.get(&orig, now, window).is_some_and(|o| o.reversed);
            if reversed || self.saf.by_original(&orig).is_some() {
                // Already reversed (or its reversal already stored): acknowledged, not
                // forwarded a second time.
                self.stats.reversals_redundant += 1;
                debug!(%link, "reversal of a request already reversed: acknowledged");
                // The acknowledgement waits for the record of the reversal that makes this
                // one redundant (it may not be durable yet: acknowledged before it, a crash
                // would leave a reversal the sender dropped and the switch never stored).
                let seq = self.journal_end();
                return self.acknowledge_advice(link, correlation, msg, dup, seq, now);
            }
        }
        // Another shard's entry (over a hop) is taken while only the replication is paused —
        // after a takeover, until this shard's journal is replicated: its acknowledgement
        // waits for its record, durable and replicated, as always, and that shard has no
        // other node to try (it would send it again only a retry later). A partner's is
        // declined 96: it tries another node.
        let no_room =
            if self.config.is_hop(participant) { self.journal.disk_full() } else { self.journal.full() };
        if no_room || self.saf_full(spec, now) {
            // Not stored: its sender keeps it and repeats it.
            self.stats.storage_declines += u64::from(no_room);
            return self.decline(link, correlation, msg, ResponseCode::SYSTEM_ERROR);
        }
        let destination = match self.hop_route(participant, correlation) {
            Some((d, _)) => d,
            None => match self.advice_destination(participant, msg) {
                Ok(d) => d,
                Err(code) => return self.decline(link, correlation, msg, code),
            },
        };
        let first = msg.mti().as_original();
        let mut body = bytes::BytesMut::with_capacity(msg.as_bytes().len() + 64);
        if let Err(e) = msg.derive(first, FieldSet::VALUES, &[], corridor_wire::Dialect::Native, &mut body) {
            if let Some(left_out) = self.may_warn(spec, Warn::Encode, now) {
                warn!(%link, error = %e, left_out, "cannot store an advice: answered 96");
            }
            return self.decline(link, correlation, msg, ResponseCode::SYSTEM_ERROR);
        }
        // Counted once, on the shard its participant sent it to (not again where it crossed).
        if !self.config.is_hop(participant) {
            self.stats.advices_stored += 1;
        }
        let id = self.store(destination, body.freeze(), first, original, Some(dup), None, now);
        // Its original is reversed from now on (as the journal's recovery reads the record): a
        // repeat of it, or the original arriving after its reversal, is answered 68 and never
        // forwarded. One still in flight keeps its own answer; the reversal goes after it.
        if let Some(orig) = original.filter(|k| !self.in_flight.has_request(k)) {
            self.outcomes.mark_reversed(orig, None, now, window);
        }
        // Acknowledged once its record is durable (and repeats the same way).
        let seq = self.saf.get(id).map_or(0, |r| r.journal_id);
        self.acknowledge_advice(link, correlation, msg, dup, seq, now);
    }

    /// Where a participant's advice or reversal goes: routed as its request was.
    fn advice_destination(&self, participant: usize, msg: &Msg<'_>) -> Result<usize, ResponseCode> {
        let table = self.routes.load();
        let pan = msg.pan();
        let receiver: Option<InstitutionId> = msg.receiver_id();
        // An advice or reversal of a QR payment carries its code: routed by its networks, as
        // the payment was (the switch adds no fields to it).
        let qr_text = crate::qr::payload_text(msg)?;
        let policy = &self.config.participants[participant].directory.qr_policy;
        let read = qr_text.as_deref().map(|t| crate::qr::read(&self.config.interop.registry, t, policy));
        let targets: Option<Vec<QrTarget<'_>>> = match read.transpose() {
            Ok(r) => r.map(|(_, found)| found.into_iter().map(|(t, _)| t).collect()),
            Err(_) => return Err(ResponseCode::FORMAT_ERROR),
        };
        let query = RouteQuery {
            mti: msg.mti(),
            receiver: receiver.as_ref(),
            pan: pan.as_ref().map(|p| p.digits()),
            qr: targets.as_deref(),
            origin: Some(participant),
        };
        table.lookup(&query).map(|r| r.destination).ok_or(ResponseCode::NO_ROUTE)
    }

    /// Acknowledges an advice (`00`) once journal record `seq` is durable, and remembers
    /// that answer for its repeats.
    fn acknowledge_advice(
        &mut self,
        link: LinkId,
        correlation: u64,
        msg: &Msg<'_>,
        dup: DupKey,
        seq: u64,
        now: Instant,
    ) {
        self.remember(dup, (ResponseCode::APPROVED, None), None, seq, now);
        let ok = crate::duplicates::Outcome {
            code: ResponseCode::APPROVED,
            auth: None,
            reversed: false,
            seq,
            sent_stan: None,
        };
        self.replay_outcome(link, correlation, msg, ok);
    }

    /// Answers a repeat of a completed request with its outcome: the same response code and
    /// approval code (DE 38), made by the switch; the destination never sees it again.
    fn replay_outcome(
        &mut self,
        link: LinkId,
        correlation: u64,
        msg: &Msg<'_>,
        outcome: crate::duplicates::Outcome,
    ) {
        let code = outcome.code.0;
        // (A replayed answer is not counted as a decline, written or not.)
        let _written = match &outcome.auth {
            Some(auth) => self.switch_answer(
                outcome.seq,
                link,
                correlation,
                msg,
                &[(de::AUTH_ID, auth), (de::RESPONSE_CODE, &code)],
            ),
            None => self.switch_answer(outcome.seq, link, correlation, msg, &[(de::RESPONSE_CODE, &code)]),
        };
    }

    /// The least loaded routable link of `participant` under its in-flight limit and with
    /// its batch draining; ties go round-robin.
    /// A participant another shard owns is reached through its hop.
    fn pick_link(&mut self, participant: usize) -> Result<LinkId, Unavailable> {
        let participant = self.config.participants[participant].via.unwrap_or(participant);
        self.links.pick(participant)
    }
}

/// `msg` rebuilt in its own dialect with the fields the switch adds, into `body`.
fn with_fields(
    msg: &Msg<'_>,
    fill: &[crate::qr::FillField],
    body: &mut bytes::BytesMut,
) -> Result<(), String> {
    let set: Vec<(FieldId, &[u8])> = fill.iter().map(|(f, v)| (*f, v.as_slice())).collect();
    body.reserve(msg.as_bytes().len() + 160);
    msg.derive(msg.mti(), FieldSet::VALUES, &set, msg.dialect(), body).map_err(|e| e.to_string())
}
