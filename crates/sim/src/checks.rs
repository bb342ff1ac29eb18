//! The checkers: the bounds on every step, whether the run settled, and the invariants at
//! the end of a seed.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

impl Sim {
    /// The bounds the switch keeps, checked on every step.
    pub(crate) fn check_bounds(&mut self) {
        let Some(e) = self.engine.as_ref() else { return };
        let inflight = e.inflight_bound();
        let mut why = None;
        if e.requests_pending() > inflight {
            why = Some(format!(
                "{} requests pending, past the links' in-flight limits ({inflight})",
                e.requests_pending()
            ));
        } else if e.reversals_pending() > corridor_engine::limits::REVERSALS_MAX {
            why = Some(format!("{} reversals stored, past REVERSALS_MAX", e.reversals_pending()));
        } else if e.exceptions_len() > corridor_engine::limits::EXCEPTIONS_MAX {
            why = Some(format!("{} exceptions, past EXCEPTIONS_MAX", e.exceptions_len()));
        } else if e.outcomes_remembered() > corridor_engine::limits::OUTCOMES_MAX {
            why = Some(format!("{} outcomes remembered, past OUTCOMES_MAX", e.outcomes_remembered()));
        } else if let Some((side, u)) = self
            .net
            .unwritten
            .iter()
            .find(|(_, u)| u.len() > corridor_engine::limits::LINK_OUT_BYTES_MAX + FRAME_BYTES_MAX)
        {
            why = Some(format!(
                "{} bytes written for {side:?} and not delivered, past LINK_OUT_BYTES_MAX",
                u.len()
            ));
        } else if let Some((link, b)) = self
            .net
            .inbuf
            .iter()
            .find(|(_, b)| b.len() > corridor_engine::limits::HELD_BYTES_MAX + 2 * FRAME_BYTES_MAX)
        {
            why = Some(format!("{} bytes read on {link:?} and not taken", b.len()));
        }
        if why.is_none() {
            for (side, (link, _)) in &self.net.links {
                let Some((st, max)) = e.link_status(*link) else { continue };
                if st.inflight_in > max {
                    why = Some(format!(
                        "{side:?}: {} requests in flight from it, past its limit {max}",
                        st.inflight_in
                    ));
                } else if st.held > corridor_engine::limits::HELD_BYTES_MAX + FRAME_BYTES_MAX {
                    why = Some(format!("{side:?}: {} bytes of requests held, past HELD_BYTES_MAX", st.held));
                }
            }
        }
        if let Some(why) = why {
            self.broke(None, why);
        }
    }

    pub(crate) fn settled(&self) -> bool {
        self.load_over
            && self.engine.as_ref().is_some_and(|e| e.requests_pending() == 0 && e.reversals_pending() == 0)
            && self.disks.iter().all(|d| d.writing.is_none())
            && self.cluster.as_ref().is_none_or(|c| c.appending.iter().all(VecDeque::is_empty))
            && self
                .terminals()
                .iter()
                .all(|t| t.purchases.is_empty() && t.repeats.is_empty() && t.to_reverse.is_empty())
    }

    pub(crate) fn fail(&self, n: Option<u32>, what: String) -> Violation {
        let mut history = n.and_then(|n| self.history.get(&n).cloned()).unwrap_or_default();
        // On a native wire its twin (one STAN and DE 7, the other terminal: `twinned`).
        let twin = n.filter(|_| self.topology.acq == Wire::NATIVE).map(twin_of);
        if let Some(lines) = twin.and_then(|t| self.history.get(&t)) {
            history.push("-- its twin (the same STAN and DE 7 from the other terminal):".into());
            history.extend(lines.iter().cloned());
        }
        history.push("-- the switch and its links:".into());
        history.extend(self.world.iter().cloned());
        Violation { seed: self.seed, step: self.out.steps, what, history, without: self.without.clone() }
    }

    pub(crate) fn check(&self) -> Result<(), Violation> {
        if let Some((step, n, what)) = &self.broken {
            let mut v = self.fail(*n, what.clone());
            v.step = *step;
            return Err(v);
        }
        if let Some(why) = &self.stuck {
            return Err(self.fail(None, format!("livelock: {why}")));
        }
        if !self.settled() {
            let stuck = self.terminals().iter().find_map(|t| t.to_reverse.front().copied());
            return Err(self.fail(
                stuck,
                format!(
                    "did not settle within {SETTLE_MAX:?}: {} reversals the terminal still owes, {} owed by the switch",
                    self.terminals().iter().map(|t| t.to_reverse.len()).sum::<usize>(),
                    self.engine.as_ref().map_or(0, Switch::reversals_pending)
                ),
            ));
        }
        // (Forwarded twice, answered twice, a reversal first: caught on their step.)
        for (&n, (_, auth)) in &self.issuer.purchases {
            let delivered = self.terminals().iter().any(|t| t.approvals.contains(&(n, auth.clone())));
            if auth.is_empty() || delivered {
                continue;
            }
            // When the approval reached the switch, if it did: before the run ended, on a
            // connection still carrying messages. (Not one the switch's crash ended: a late
            // approval whose second reversal was not yet durable is lost with the crash, and
            // nothing recovered says it came — a known gap, left to reconciliation. Nor one
            // that came after the issuer's shard's last synced batch before a crash, whatever
            // ended its connection: the same gap, as long as a full disk makes it. In a
            // cluster, durable means in the stream, which an election holds back for seconds:
            // nor one that came after the last append the stream acknowledged before the node
            // died.)
            let approved = match self.issuer.approved_on.get(&n) {
                Some(&(generation, at))
                    if at <= self.now
                        && !self.net.crashed.contains(&generation)
                        && !self.lost_unreplicated(at)
                        && !self.lost_unsynced(at)
                        && self.net.ended.get(&generation).is_none_or(|&end| end > at) =>
                {
                    at
                }
                _ => Duration::ZERO,
            };
            match self.issuer.reversed_at.get(&n) {
                None => {
                    return Err(self.fail(
                        Some(n),
                        format!("purchase {n}: approved {auth}, never delivered, never reversed"),
                    ))
                }
                Some(&last) if last < approved => {
                    return Err(self.fail(
                        Some(n),
                        format!(
                        "purchase {n}: approved {auth} at {approved:?}, after the issuer acknowledged its \
                             last reversal ({last:?}); never delivered, never reversed again"
                    ),
                    ))
                }
                Some(_) => {}
            }
        }
        // An approval the terminal got stands: the switch reverses one only when its
        // originator did not get it. (A terminal that reversed it itself — it gave up on it
        // before the answer came — is the one that reversed it.)
        for (&n, (_, auth)) in &self.issuer.purchases {
            let delivered = self.terminals().iter().any(|t| t.approvals.contains(&(n, auth.clone())));
            let by_terminal = self.terminals().iter().any(|t| {
                t.reversal_last.contains_key(&n) || t.to_reverse.contains(&n) || t.reversed_acked.contains(&n)
            });
            if !auth.is_empty() && delivered && !by_terminal && self.issuer.reversals.contains_key(&n) {
                return Err(self.fail(
                    Some(n),
                    format!("purchase {n}: approved {auth} and delivered, then reversed by the switch"),
                ));
            }
        }
        let mut acked: Vec<u32> =
            self.terminals().iter().flat_map(|t| t.reversed_acked.iter().copied()).collect();
        acked.sort_unstable();
        if let Some(&n) = acked
            .iter()
            .find(|n| !self.issuer.reversals.contains_key(n) && self.issuer.purchases.contains_key(n))
        {
            return Err(self.fail(
                Some(n),
                format!("purchase {n}: its reversal was acknowledged, never reached the issuer"),
            ));
        }
        if let Some(&n) = self
            .terminals()
            .iter()
            .flat_map(|t| t.advised_acked.iter())
            .find(|n| !self.issuer.advices.contains_key(n))
        {
            return Err(self.fail(
                Some(n),
                format!("request {n}: its advice was acknowledged, never reached the issuer"),
            ));
        }
        Ok(())
    }
}
