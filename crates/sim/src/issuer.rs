//! The simulated issuer: approves, declines, never answers, answers late or twice or on
//! its other link, acknowledges reversals.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// The issuer.
#[derive(Default)]
pub(crate) struct Issuer {
    pub(crate) auth: u32,
    /// Purchases seen: number → (times, approval code given).
    pub(crate) purchases: BTreeMap<u32, (u32, String)>,
    /// Reversals' first transmissions and repeats per purchase number.
    pub(crate) reversals: BTreeMap<u32, (u32, u32)>,
    /// An approval sent on the connection its purchase came on, per purchase number: that
    /// connection's generation and when the approval reaches the switch on it. (An approval
    /// on the other link, or on a connection gone before it arrives, reaches nobody: it
    /// counts from time zero.)
    pub(crate) approved_on: BTreeMap<u32, (u64, Duration)>,
    /// When the issuer last applied a reversal of a purchase: as it acknowledges it (or as it
    /// receives it, when it sends no acknowledgement). A reversal applied before the approval
    /// went out reverses nothing: the issuer answered after acknowledging the reversal, as
    /// SPEC allows (answers may come after the timeout), and that approval stands until
    /// another reversal comes.
    pub(crate) reversed_at: BTreeMap<u32, Duration>,
    /// Advices received, per request number.
    pub(crate) advices: BTreeMap<u32, u32>,
}

impl Sim {
    /// The issuer sends `r` on `side` after `delay`.
    pub(crate) fn issuer_sends(&mut self, side: Side, delay: Duration, corr: u64, r: &OwnedMessage) {
        let Some(&(_, generation)) = self.net.links.get(&side) else { return };
        let bytes = frame_on(self.topology.iss, corr, r);
        self.send_at(side, generation, self.now + delay, bytes);
    }

    pub(crate) fn issuer_gets(&mut self, side: Side, corr: u64, m: &OwnedMessage) {
        match m.mti().value() {
            800 => {
                let r = answer(m, "00");
                self.issuer_sends(side, Duration::ZERO, corr, &r);
            }
            100 | 200 => {
                let Some(n) = number(m) else { return };
                self.issuer.auth += 1;
                let code = format!("A{:05}", self.issuer.auth % 100_000);
                let e = self.issuer.purchases.entry(n).or_insert((0, code));
                e.0 += 1;
                let (times, auth) = (e.0, e.1.clone());
                if times > 1 {
                    self.broke(Some(n), format!("purchase {n} forwarded {times} times"));
                }
                if self.issuer.reversals.contains_key(&n) {
                    self.broke(Some(n), format!("purchase {n}: a reversal reached the issuer before it"));
                }
                let roll = self.rng.below(100);
                let (delay, reply) = match roll {
                    0..=74 => (self.rng.micros(1_000, 800_000), Some("00")),
                    75..=84 => (self.rng.micros(1_000, 200_000), Some("05")),
                    85..=89 => (Duration::ZERO, None),
                    _ => (self.rng.micros(2_100_000, 3_000_000), Some("00")),
                };
                let Some(code) = reply else {
                    self.note(n, format!("issuer ({side:?}): got the purchase, never answers"));
                    return;
                };
                let mut r = answer(m, code);
                if code == "00" {
                    let _ = r.set(de::AUTH_ID, auth.clone());
                }
                // Now and then on its other link (where it answers nothing), or twice.
                let on = match (side, self.rng.chance(3)) {
                    (Side::Iss, true) => Side::Iss2,
                    (Side::Iss2, true) => Side::Iss,
                    _ => side,
                };
                let twice = self.rng.chance(5);
                self.note(
                    n,
                    format!(
                        "issuer ({side:?}): got the purchase, answers {code} {auth} in {delay:?} on {on:?}{}",
                        if twice { ", twice" } else { "" }
                    ),
                );
                if code == "00" {
                    // (Given on the wrong link, it reaches nobody: the switch times the
                    // purchase out and reverses it.)
                    self.issuer.purchases.entry(n).and_modify(|e| e.1.clone_from(&auth));
                } else {
                    // A decline is no approval: nothing to reverse.
                    self.issuer.purchases.entry(n).and_modify(|e| e.1 = String::new());
                }
                if let (true, "00", Some(&(_, generation))) = (on == side, code, self.net.links.get(&on)) {
                    self.issuer.approved_on.insert(n, (generation, self.now + delay));
                }
                self.issuer_sends(on, delay, corr, &r);
                if twice {
                    let d = delay + self.rng.micros(10, 50_000);
                    self.issuer_sends(on, d, corr, &r);
                }
            }
            220 | 221 => {
                let Some(n) = number(m) else { return };
                *self.issuer.advices.entry(n).or_default() += 1;
                self.note(n, format!("issuer ({side:?}): got {}", m.mti()));
                if self.rng.chance(90) {
                    let r = answer(m, "00");
                    let d = self.rng.micros(500, 50_000);
                    self.issuer_sends(side, d, corr, &r);
                }
            }
            420 | 421 => {
                let Some(n) = number(m) else { return };
                let e = self.issuer.reversals.entry(n).or_default();
                if m.mti().value() == 420 {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
                self.note(n, format!("issuer ({side:?}): got {}", m.mti()));
                let applied = if self.rng.chance(90) {
                    let r = answer(m, "00");
                    let d = self.rng.micros(500, 50_000);
                    self.issuer_sends(side, d, corr, &r);
                    self.now + d
                } else {
                    self.now
                };
                let last = self.issuer.reversed_at.entry(n).or_default();
                if *last == Duration::ZERO
                    && self.issuer.approved_on.get(&n).is_some_and(|&(_, at)| at > applied)
                {
                    self.out.approved_after_reversal += 1;
                }
                *last = (*last).max(applied);
            }
            _ => {}
        }
    }
}
