//! The simulated terminals: sign-on, purchases, authorizations and advices, repeats, and
//! the reversals of what got no answer.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// The terminal (acquirer).
#[derive(Default)]
pub(crate) struct Terminal {
    pub(crate) next: u32,
    pub(crate) corr: u64,
    /// Purchases sent and not answered: correlation → (number, sent at).
    pub(crate) purchases: BTreeMap<u64, (u32, Duration)>,
    /// Repeats sent and not answered: correlation → (number, sent at).
    pub(crate) repeats: BTreeMap<u64, (u32, Duration)>,
    /// Requests whose repeat got no answer in time: on a classic wire the switch may still
    /// answer that repeat under its STAN, so the terminal never repeats them again (it could
    /// not tell the two answers apart).
    pub(crate) repeat_unanswered: BTreeSet<u32>,
    /// Reversals sent and not acknowledged: correlation → number.
    pub(crate) reversals_out: BTreeMap<u64, u32>,
    pub(crate) to_reverse: VecDeque<u32>,
    pub(crate) reversal_tries: BTreeMap<u32, u32>,
    pub(crate) reversal_last: BTreeMap<u32, Duration>,
    pub(crate) answers: BTreeMap<u32, (String, String)>,
    pub(crate) approvals: BTreeSet<(u32, String)>,
    pub(crate) reversed_acked: BTreeSet<u32>,
    pub(crate) answered: Vec<u32>,
    pub(crate) answers_per_corr: BTreeMap<u64, u32>,
    /// The RRN number each correlation was sent with.
    pub(crate) numbers: BTreeMap<u64, u32>,
    /// On a classic wire (no correlation in the frame): the correlation last sent with
    /// each STAN.
    pub(crate) by_stan: BTreeMap<String, u64>,
    /// Whether it forgets what it got no answer to (never reverses).
    pub(crate) forgets: bool,
    /// Requests sent as authorizations (0100); the rest are purchases (0200).
    pub(crate) authorizations: BTreeSet<u32>,
    /// Advices the switch acknowledged.
    pub(crate) advised_acked: BTreeSet<u32>,
    /// Its connection.
    pub(crate) side: Option<Side>,
    /// Whether it is signed on (always, on links that need no sign-on).
    pub(crate) signed_on: bool,
    /// Its network messages' STANs.
    pub(crate) network_stan: u32,
}

/// Takes the requests of `sent` (correlation → number, sent at) unanswered longer than
/// [`GIVE_UP`] at `now`; their numbers, in correlation order.
pub(crate) fn overdue(sent: &mut BTreeMap<u64, (u32, Duration)>, now: Duration) -> Vec<u32> {
    let late: Vec<u64> =
        sent.iter().filter(|(_, (_, at))| now.saturating_sub(*at) > GIVE_UP).map(|(c, _)| *c).collect();
    late.iter().filter_map(|c| sent.remove(c)).map(|(n, _)| n).collect()
}

impl Sim {
    /// A terminal's own event: its next send, its look at what to reverse, a sign-on or off.
    pub(crate) fn terminal_event(&mut self, ev: Ev) {
        match ev {
            Ev::Send(side) => {
                self.activate(side);
                self.terminal_send();
            }
            Ev::TerminalTick(side) => {
                self.activate(side);
                self.terminal_tick();
            }
            Ev::SignOn(side) => {
                self.activate(side);
                if self.net.links.contains_key(&side) && !self.terminal.signed_on {
                    self.terminal_network("001");
                }
            }
            Ev::SignOff(side) => {
                self.activate(side);
                if self.faults && self.net.links.contains_key(&side) && self.terminal.signed_on {
                    self.world(format!("{side:?} signs off"));
                    self.terminal_network("002");
                }
            }
            _ => unreachable!("`step` hands this handler its own events only"),
        }
    }

    /// The terminal sends a network request with `code` (001 sign-on, 002 sign-off).
    pub(crate) fn terminal_network(&mut self, code: &str) {
        let mut m = OwnedMessage::new(Mti::NETWORK_REQUEST);
        self.terminal.network_stan = (self.terminal.network_stan + 1) % 1_000;
        let _ = m.set(de::TRANSMISSION_TIME, "1201103000");
        let _ = m.set(de::STAN, format!("{:06}", 900_000 + self.terminal.network_stan));
        let _ = m.set(de::NETWORK_CODE, code);
        self.terminal.corr += 1;
        let bytes = frame_on(self.topology.acq, self.terminal.corr, &m);
        self.send_to_switch(self.acq(), bytes);
    }

    pub(crate) fn terminal_gets(&mut self, corr: u64, m: &OwnedMessage) {
        if m.mti() == Mti::NETWORK_REQUEST {
            let r = answer(m, "00");
            let bytes = frame_on(self.topology.acq, corr, &r);
            self.send_to_switch(self.acq(), bytes);
            return;
        }
        if m.mti() == Mti::NETWORK_RESPONSE && text(m, de::RESPONSE_CODE) == "00" {
            match text(m, de::NETWORK_CODE).as_str() {
                "001" => {
                    self.terminal.signed_on = true;
                    self.out.sign_ons += 1;
                }
                "002" => {
                    self.terminal.signed_on = false;
                    self.out.sign_offs += 1;
                    let d = self.rng.micros(20_000, 300_000);
                    let side = self.acq();
                    self.at(self.now + d, Ev::SignOn(side));
                }
                _ => {}
            }
            return;
        }
        if m.mti().class() == 8 {
            return;
        }
        // A classic wire has no correlation in the frame: the STAN names the request.
        let corr = if self.topology.acq == Wire::NATIVE {
            corr
        } else {
            self.terminal.by_stan.get(&text(m, de::STAN)).copied().unwrap_or(0)
        };
        let k = {
            let k = self.terminal.answers_per_corr.entry(corr).or_default();
            *k += 1;
            *k
        };
        let sent = self.terminal.numbers.get(&corr).copied();
        if k > 1 {
            self.broke(
                sent,
                format!(
                    "correlation {corr} answered {k} times (this time {} {} STAN {})",
                    m.mti(),
                    text(m, de::RESPONSE_CODE),
                    text(m, de::STAN)
                ),
            );
        }
        if sent.is_some() && sent != number(m) {
            self.broke(
                sent,
                format!("correlation {corr} answered with another request's RRN {:?}", text(m, de::RRN)),
            );
        }
        let code = text(m, de::RESPONSE_CODE);
        let auth = text(m, de::AUTH_ID);
        if let Some((n, _)) = self.terminal.purchases.remove(&corr) {
            self.note(n, format!("terminal: answered {code} {auth}"));
            // A switch-made answer (the issuer gives only 00 and 05): what the switch decided
            // itself, on records of its own that must be durable before it is told.
            let switch_made = !matches!(code.as_str(), "00" | "05");
            if self.crash_at_answer
                && switch_made
                && self.faults
                && self.disks.iter().any(|d| d.writing.is_some())
            {
                // The crash comes right after this answer, with a batch torn or lost.
                self.crash_at_answer = false;
                self.out.crashes_at_answer += 1;
                self.note(n, "the switch crashes now, a batch still being written");
                self.at(self.now, Ev::Crash);
            }
            if code == "00" {
                self.terminal.approvals.insert((n, auth.clone()));
                // Now and then the terminal tells the issuer how the sale completed.
                if self.rng.chance(10) && !self.terminal.to_reverse.contains(&(ADVICE + n)) {
                    self.terminal.to_reverse.push_back(ADVICE + n);
                }
            }
            self.terminal.answers.insert(n, (code, auth));
            self.terminal.answered.push(n);
        } else if let Some((n, _)) = self.terminal.repeats.remove(&corr) {
            self.note(n, format!("terminal: repeat answered {code} {auth}"));
            if code == "00" {
                self.terminal.approvals.insert((n, auth));
            }
        } else if let Some(item) = self.terminal.reversals_out.remove(&corr) {
            let n = item % ADVICE;
            let what = if item >= ADVICE { "advice" } else { "reversal" };
            self.note(n, format!("terminal: {what} answered {code}"));
            if code == "00" {
                if item >= ADVICE {
                    self.terminal.advised_acked.insert(n);
                } else {
                    self.terminal.reversed_acked.insert(n);
                }
                self.terminal.to_reverse.retain(|&x| x != item);
            }
        } else if let (Some(&n), true) = (self.terminal.numbers.get(&corr), code == "00") {
            // An approval after the terminal gave up on it: delivered all the same (the
            // terminal reverses it if it had given up by reversing).
            self.note(n, format!("terminal: answered {code} {auth} after giving up"));
            if self.terminal.forgets {
                self.terminal.approvals.insert((n, auth));
            }
        }
    }

    pub(crate) fn terminal_send(&mut self) {
        if self.now >= LOAD {
            self.load_over = true;
            return;
        }
        let gap = self.rng.micros(500, 9_000);
        self.at(self.now + gap, Ev::Send(self.acq()));
        if !self.net.links.contains_key(&self.acq()) || !self.terminal.signed_on {
            return;
        }
        self.terminal.corr += 1;
        let corr = self.terminal.corr;
        let classic = self.topology.acq != Wire::NATIVE;
        if !self.terminal.answered.is_empty() && self.rng.chance(8) {
            let k = self.rng.below(self.terminal.answered.len() as u64) as usize;
            let n = self.terminal.answered[k];
            // On a classic wire the STAN is the only correlation: a terminal never has two
            // requests with one STAN out at once.
            let out = self.terminal.repeats.values().any(|r| r.0 == n)
                || self.terminal.repeat_unanswered.contains(&n);
            if classic && out {
                return;
            }
            self.terminal.repeats.insert(corr, (n, self.now));
            self.note(n, "terminal: repeats it");
            let m = self.request_of(n);
            self.terminal_sends(corr, n, &m);
            return;
        }
        self.terminal.next += 1;
        let n = self.terminal.next;
        self.out.sent += 1;
        self.terminal.purchases.insert(corr, (n, self.now));
        if self.rng.chance(25) {
            self.terminal.authorizations.insert(n);
        }
        self.note(
            n,
            if self.terminal.authorizations.contains(&n) {
                "terminal: sends it (0100)"
            } else {
                "terminal: sends the purchase"
            },
        );
        let m = self.request_of(n);
        self.terminal_sends(corr, n, &m);
    }

    pub(crate) fn request_of(&self, n: u32) -> OwnedMessage {
        let mti = if self.terminal.authorizations.contains(&n) {
            Mti::AUTHORIZATION_REQUEST
        } else {
            Mti::FINANCIAL_REQUEST
        };
        request(n, mti)
    }

    pub(crate) fn terminal_sends(&mut self, corr: u64, n: u32, m: &OwnedMessage) {
        let twins;
        let m = if self.topology.acq == Wire::NATIVE {
            twins = twinned(n, m.clone());
            &twins
        } else {
            m
        };
        self.terminal.numbers.insert(corr, n);
        self.terminal.by_stan.insert(text(m, de::STAN), corr);
        let side = self.acq();
        let bytes = if side == Side::Net {
            // The network's: the institution it forwards for, and its own id.
            let mut m = m.clone();
            let _ = m.set(de::ACQUIRER_ID, NET_ACQUIRER);
            let _ = m.set(de::FORWARDER_ID, NET_FORWARDER);
            if let Some(d) = m.get(de::ORIGINAL_DATA).map(|d| String::from_utf8_lossy(d).into_owned()) {
                if d.len() == 42 {
                    let _ = m.set(
                        de::ORIGINAL_DATA,
                        format!("{}{:0>11}{:0>11}", &d[..20], NET_ACQUIRER, NET_FORWARDER),
                    );
                }
            }
            frame_on(self.topology.acq, corr, &m)
        } else {
            frame_on(self.topology.acq, corr, m)
        };
        self.send_to_switch(side, bytes);
    }

    /// Makes the terminal on `side` the one `self.terminal` is (a no-op for an issuer side).
    pub(crate) fn activate(&mut self, side: Side) {
        if side.issuer() || self.terminal.side == Some(side) {
            return;
        }
        std::mem::swap(&mut self.terminal, &mut self.parked);
    }

    /// The side of the terminal whose turn it is.
    pub(crate) fn acq(&self) -> Side {
        self.terminal.side.unwrap_or(Side::Acq)
    }

    /// Both terminals.
    pub(crate) fn terminals(&self) -> [&Terminal; 2] {
        [&self.terminal, &self.parked]
    }

    /// The terminal got no answer to purchase `n`: it reverses it, or (a terminal that
    /// forgets) drops it, leaving the switch's own reversals to protect it. When the switch
    /// itself died, no switch can know which answers its socket still held: every terminal
    /// reverses then (ISO 8583's rule for a request without an answer) — but a cluster's
    /// node dies as `kill -9` kills it, the kernel sending what it wrote, and its release
    /// mark says what it had not sent: there a terminal that forgets goes on forgetting,
    /// unless the node died holding bytes for it not yet written (a reader that had stopped
    /// reading, a partial write: the mark counts them as sent, and nothing can say they
    /// were not).
    pub(crate) fn give_up(&mut self, n: u32, why: &str) {
        let killed =
            self.cluster.is_some() && self.terminal.side.is_some_and(|s| !self.held_at_crash.contains(&s));
        if self.terminal.forgets && (self.engine.is_some() || killed) {
            if self.engine.is_none() {
                self.out.forgot_at_death += 1;
            }
            self.note(n, format!("terminal: {why}: forgets it"));
        } else {
            self.note(n, format!("terminal: {why}: will reverse"));
            self.terminal.to_reverse.push_back(n);
        }
    }

    /// A repeat got no answer. After a first answer that was an outcome the terminal knows
    /// how it ended; after a decline the switch made before taking it (91 and the like: no
    /// outcome), the repeat was a new try, and like any unanswered purchase it is reversed.
    pub(crate) fn repeat_lost(&mut self, n: u32) {
        self.terminal.repeat_unanswered.insert(n);
        let first = self.terminal.answers.get(&n).map(|(c, _)| c.clone()).unwrap_or_default();
        if ADMISSION_DECLINES.contains(&first.as_str()) && !self.terminal.to_reverse.contains(&n) {
            self.give_up(n, "its repeat got no answer");
        }
    }

    pub(crate) fn terminal_tick(&mut self) {
        self.at(self.now + Duration::from_millis(50), Ev::TerminalTick(self.acq()));
        for n in overdue(&mut self.terminal.repeats, self.now) {
            self.repeat_lost(n);
        }
        for n in overdue(&mut self.terminal.purchases, self.now) {
            self.give_up(n, "no answer in time");
        }
        if !self.net.links.contains_key(&self.acq()) || !self.terminal.signed_on {
            return;
        }
        let out: BTreeSet<u32> = self.terminal.reversals_out.values().copied().collect();
        let due: Vec<u32> = self
            .terminal
            .to_reverse
            .iter()
            .copied()
            .filter(|n| !out.contains(n))
            .filter(|n| {
                self.terminal
                    .reversal_last
                    .get(n)
                    .is_none_or(|t| self.now.saturating_sub(*t) > Duration::from_secs(1))
            })
            .take(16)
            .collect();
        for item in due {
            let tries = self.terminal.reversal_tries.entry(item).or_default();
            *tries += 1;
            let repeat = *tries > 1;
            self.terminal.reversal_last.insert(item, self.now);
            self.terminal.corr += 1;
            let corr = self.terminal.corr;
            self.terminal.reversals_out.insert(corr, item);
            if item >= ADVICE {
                let n = item - ADVICE;
                self.note(
                    n,
                    format!("terminal: sends its advice ({})", if repeat { "0221" } else { "0220" }),
                );
                self.terminal_sends(corr, n, &advice(n, repeat));
            } else {
                let n = item;
                self.note(
                    n,
                    format!("terminal: sends its reversal ({})", if repeat { "0421" } else { "0420" }),
                );
                let original = if self.terminal.authorizations.contains(&n) {
                    Mti::AUTHORIZATION_REQUEST
                } else {
                    Mti::FINANCIAL_REQUEST
                };
                self.terminal_sends(corr, n, &reversal_of(n, repeat, original));
            }
        }
        // A reversal unacknowledged for a second goes again (on a classic wire only once its
        // answer came or its connection went: the STAN is the only correlation there).
        if self.topology.acq != Wire::NATIVE {
            return;
        }
        let stale: Vec<u64> = self
            .terminal
            .reversals_out
            .iter()
            .filter(|(_, n)| {
                self.terminal
                    .reversal_last
                    .get(n)
                    .is_some_and(|t| self.now.saturating_sub(*t) > Duration::from_secs(1))
            })
            .map(|(c, _)| *c)
            .collect();
        for c in stale {
            self.terminal.reversals_out.remove(&c);
        }
    }
}
