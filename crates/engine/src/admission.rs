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
    limits::{LINK_OUT_BYTES_MAX, PENDING_MAX},
    link::LinkId,
    routes::RouteQuery,
    throttle::Warn,
    timers::Timer,
};

/// What the switch does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Forward it on `link` toward participant `destination`, which has `timeout` to answer.
    Forward { destination: usize, timeout: Duration, link: LinkId, dup: DupKey },
    /// Answer it at once with this code.
    Decline(ResponseCode),
    /// Keep it until its originator has an in-flight slot again.
    Hold,
    /// A repeat of a completed request: answer it with that request's outcome.
    Replay(crate::duplicates::Outcome),
}

/// Why a request could not be sent to its destination.
enum Unavailable {
    NoLink,
    AtLimit,
}

impl Engine {
    /// The checks, in order: the link may carry traffic; the request has a STAN; it speaks
    /// for its sender only (DE 32, DE 33); the switch is not draining; it is not a duplicate
    /// of one in flight; its originator has a free slot; it has a route; the destination
    /// has a link with room.
    fn admit(&mut self, link: LinkId, msg: &Msg<'_>, now: Instant) -> Decision {
        use Decision::{Decline, Hold};
        let Some(l) = self.links.get(&link) else { unreachable!("requests come from open links") };
        let (spec, participant) = (l.spec, l.participant);
        if !l.routable() {
            debug!(%link, "request before sign-on");
            return Decline(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        let origin_full = l.origin_full();
        let at_limit = l.at_limit;
        let Some(stan) = msg.stan() else { return Decline(ResponseCode::FORMAT_ERROR) };
        // A participant may only speak as itself: DE 32 must be one of its ids, DE 33 too.
        let p = &self.config.participants[participant];
        let acquirer_ok = msg.acquirer_id().is_some_and(|id| p.acquirer_ids.contains(&id));
        let forwarder_ok = msg.forwarder_id().is_none_or(|id| p.forwarder_ids.contains(&id));
        if !acquirer_ok || !forwarder_ok {
            if let Some(left_out) = self.may_warn(spec, Warn::Spoofed, now) {
                warn!(
                    %link,
                    participant = %self.config.participants[participant].id,
                    de32 = ?msg.acquirer_id(),
                    de33 = ?msg.forwarder_id(),
                    pan = ?msg.pan(),
                    left_out,
                    "security violation: institution id not owned by the sender"
                );
            }
            return Decline(ResponseCode::SECURITY_VIOLATION);
        }
        if self.draining {
            return Decline(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        let dup = DupKey::of(participant, stan, msg);
        if self.duplicates.contains(&dup) {
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
        if self.pending.len() >= PENDING_MAX {
            self.stats.inflight_limit_hits += 1;
            return Decline(ResponseCode::DESTINATION_UNAVAILABLE);
        }
        let table = self.routes.load();
        let pan = msg.pan();
        let receiver: Option<InstitutionId> = msg.receiver_id();
        let query =
            RouteQuery { mti: msg.mti(), receiver: receiver.as_ref(), pan: pan.as_ref().map(|p| p.digits()) };
        let Some(route) = table.lookup(&query) else {
            debug!(%link, pan = ?pan, "no route");
            return Decline(ResponseCode::NO_ROUTE);
        };
        let (destination, timeout) = (route.destination, route.timeout);
        drop(table);
        match self.pick_link(destination) {
            Ok(out) => Decision::Forward { destination, timeout, link: out, dup },
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

    pub(crate) fn handle_request(&mut self, link: LinkId, correlation: u64, msg: Msg<'_>, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else { return };
        // Requests behind held ones wait their turn: a link's requests are handled in order.
        let replaying = l.replaying;
        let queued_behind = !l.held.is_empty() && !replaying;
        if !replaying {
            self.stats.requests_in += 1;
        }
        let decision = if queued_behind { Decision::Hold } else { self.admit(link, &msg, now) };
        match decision {
            Decision::Hold => {
                let Some(l) = self.links.get_mut(&link) else { return };
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
            Decision::Replay(outcome) => self.replay_outcome(link, correlation, &msg, outcome),
            Decision::Forward { destination, timeout, link: out_link, dup } => {
                self.forward(link, correlation, msg, destination, timeout, out_link, dup, now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one call site: the fields of a Forward decision
    fn forward(
        &mut self,
        link: LinkId,
        correlation: u64,
        msg: Msg<'_>,
        destination: usize,
        timeout: Duration,
        out_link: LinkId,
        dup: DupKey,
        now: Instant,
    ) {
        let Some(origin) = self.links.get(&link) else { return };
        let origin_dialect = origin.dialect;
        let Some(stan) = msg.stan() else { unreachable!("admission checked DE 11") };
        let Some(out) = self.links.get_mut(&out_link) else { unreachable!("admission picked an open link") };
        let (mut key, mut switch_stan) = out.next_key();
        // A STAN still in flight on this link (after a wrap) is skipped; the in-flight limit
        // is far below the STAN space, so this ends within inflight_max + 1 steps.
        while self.pending.contains_key(&(out_link, key)) {
            (key, switch_stan) = out.next_key();
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
        // Journal before forward: the request leaves once its records are durable.
        let (journal_seq, forwarded_seq) =
            self.record_forward(&msg, link, correlation, destination, out_link, key, sent_stan, &dup, now);
        if let Some(out) = self.links.get_mut(&out_link) {
            out.hold_from(start, forwarded_seq);
        }
        self.duplicates.insert(dup);
        let request_mti = msg.mti();
        // The pending entry keeps its own copy of the request: a slice would pin the whole
        // read buffer it came in for as long as the request is in flight.
        let request = bytes::Bytes::copy_from_slice(msg.as_bytes());
        self.pending.insert(
            (out_link, key),
            Pending {
                kind: Kind::Request(Request {
                    origin: link,
                    origin_correlation: correlation,
                    origin_dialect,
                    request,
                    request_mti,
                    origin_stan: stan.to_ascii(),
                    sent_stan,
                    dup,
                    destination,
                    journal_seq,
                }),
                deadline: now + timeout,
            },
        );
        self.requests_pending += 1;
        self.timer(now, timeout, Timer::Pending(out_link, key));
        self.stats.forwarded += 1;
        self.after_write(out_link);
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
        self.stats.duplicates_replayed += 1;
        let code = outcome.code.0;
        match &outcome.auth {
            Some(auth) => self.switch_answer(
                0,
                link,
                correlation,
                msg,
                &[(de::AUTH_ID, auth), (de::RESPONSE_CODE, &code)],
            ),
            None => self.switch_answer(0, link, correlation, msg, &[(de::RESPONSE_CODE, &code)]),
        }
    }

    /// The least loaded routable link of `participant` under its in-flight limit and with
    /// its batch draining; ties go round-robin.
    fn pick_link(&mut self, participant: usize) -> Result<LinkId, Unavailable> {
        let candidates = &self.by_participant[participant];
        let n = candidates.len();
        let start = self.round_robin[participant];
        let mut best: Option<(u32, LinkId)> = None;
        let mut any = false;
        for i in 0..n {
            let id = candidates[(start + i) % n];
            let Some(l) = self.links.get(&id) else { continue };
            if !l.routable() {
                continue;
            }
            any = true;
            if l.inflight_out >= l.inflight_max || l.out.len() >= LINK_OUT_BYTES_MAX / 2 {
                continue;
            }
            if best.is_none_or(|(b, _)| l.inflight_out < b) {
                best = Some((l.inflight_out, id));
            }
        }
        self.round_robin[participant] = start.wrapping_add(1);
        match best {
            Some((_, id)) => Ok(id),
            None if any => Err(Unavailable::AtLimit),
            None => Err(Unavailable::NoLink),
        }
    }
}
