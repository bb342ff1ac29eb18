//! Network management: sign-on, sign-off and echo, both ways; echo-based down detection.

use std::time::Instant;

use corridor_wire::{de, FieldSet, NativeHeader, NetworkCode, ResponseCode};
use tracing::{debug, warn};

use crate::{
    engine::{Engine, Msg},
    inflight::{Kind, Pending},
    link::{CloseReason, LinkId, Session},
    timers::Timer,
};

impl Engine {
    /// A peer's 0800: sign-on, sign-off and echo are answered 00, anything else 30.
    pub(crate) fn answer_network(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>, now: Instant) {
        let code = msg.network_code();
        let l = self.links.origin_mut(link);
        let ok = match code {
            Some(NetworkCode::SIGN_ON) => {
                l.set_session(Session::SignedOn);
                debug!(%link, "signed on");
                true
            }
            Some(NetworkCode::SIGN_OFF) => {
                l.set_session(Session::SignedOff);
                debug!(%link, "signed off");
                true
            }
            Some(NetworkCode::ECHO) => true,
            _ => false,
        };
        self.stats.network_answered += 1;
        let rc = if ok { ResponseCode::APPROVED } else { ResponseCode::FORMAT_ERROR };
        let Some(mti) = msg.mti().response() else { return };
        let dialect = l.dialect;
        let written = l.frame(NativeHeader::FLAG_SWITCH_ORIGIN, correlation, |out| {
            msg.derive(mti, FieldSet::VALUES, &[(de::RESPONSE_CODE, &rc.0)], dialect, out)
        });
        if let Err(e) = written {
            warn!(%link, error = %e, "cannot answer network management");
        }
        self.after_write(link);
        if code == Some(NetworkCode::SIGN_ON) {
            // Reversals waiting for this participant go now, not at their next retry.
            if let Some(p) = self.links.get(&link).map(|l| l.participant) {
                self.kick_reversals(p, now);
            }
        }
    }

    /// The answer to one of the switch's own 0800s.
    pub(crate) fn network_response(&mut self, link: LinkId, correlation: u64, msg: &Msg<'_>, now: Instant) {
        let Some(key) = self.response_key(link, correlation, msg) else { return };
        let code = match self.in_flight.get(link, key) {
            Some(Pending { kind: Kind::Network(c), .. }) => *c,
            _ => {
                self.stats.unmatched_responses += 1;
                return;
            }
        };
        self.in_flight.remove(link, key);
        let ok = msg.response_code().is_some_and(ResponseCode::is_approval);
        if let Some(l) = self.links.get_mut(&link) {
            if code == NetworkCode::SIGN_ON {
                l.set_session(if ok { Session::SignedOn } else { Session::SignedOff });
                // Once per connection the switch dials (redials are backed off).
                tracing::info!(%link, accepted = ok, "sign-on answered");
                if ok {
                    // Reversals waiting for this destination go now, not at their next retry.
                    let participant = l.participant;
                    self.kick_reversals(participant, now);
                }
            }
        }
    }

    /// Sends an 0800 with `code` on `link`; its answer is awaited for the echo window.
    pub(crate) fn send_network(&mut self, link: LinkId, code: NetworkCode, now: Instant) {
        let de7 = self.clock.transmission_time(now);
        let Some(l) = self.links.get_mut(&link) else { return };
        let (key, stan) = l.next_key();
        let dialect = l.dialect;
        let s = &self.config.links[l.spec];
        // Both factors are bounded by the configuration; saturating keeps this total anyway.
        let window = s.echo_interval.saturating_mul(s.echo_missed_max.saturating_add(1));
        let written = l.frame(NativeHeader::FLAG_SWITCH_ORIGIN, key, |out| {
            corridor_wire::network_request(code, stan, de7, dialect, out)
        });
        if let Err(e) = written {
            warn!(%link, error = %e, "cannot send network management");
            return;
        }
        if self.in_flight.has_room() {
            let deadline = now.checked_add(window).unwrap_or(now);
            self.in_flight.insert(link, key, Pending { kind: Kind::Network(code), deadline });
            self.timer(now, window, Timer::Pending(link, key));
        }
        self.after_write(link);
    }

    /// An echo interval passed on `link`: echo it if it was idle (or sign on again, on a
    /// dialed link whose sign-on was refused), close it after the configured misses.
    pub(crate) fn echo_tick(&mut self, link: LinkId, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else { return };
        if l.closing() {
            return;
        }
        let s = &self.config.links[l.spec];
        let (interval, missed_max) = (s.echo_interval, s.echo_missed_max);
        let idle = now.saturating_duration_since(l.last_rx);
        if idle < interval {
            let due = l.last_rx + interval;
            self.timer_at(due, interval, Timer::Echo(link));
            return;
        }
        if l.echo_missed >= missed_max {
            self.stats.echo_failures += 1;
            self.close(link, CloseReason::EchoMissed, now);
            return;
        }
        l.echo_missed += 1;
        let code = if l.dial && l.sign_on_required && !l.signed_on() {
            NetworkCode::SIGN_ON
        } else {
            NetworkCode::ECHO
        };
        self.send_network(link, code, now);
        self.timer(now, interval, Timer::Echo(link));
    }
}
