//! Bounded logging of warnings a peer can trigger: at most one line per configured link per
//! kind per [`LOG_INTERVAL`](crate::limits::LOG_INTERVAL), the next one carrying how many
//! were left out. Keyed by configured link (a finite set), not by connection, so a peer that
//! reconnects in a loop cannot grow it.

use std::time::{Duration, Instant};

use crate::limits::LOG_KINDS;

/// A kind of repeated warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Warn {
    /// A body that breaks the dictionary.
    Malformed = 0,
    /// An originator at its in-flight limit (decline mode).
    OriginAtLimit = 1,
    /// A destination at its in-flight limit.
    DestinationAtLimit = 2,
    /// DE 32/33 not owned by the sender.
    Spoofed = 3,
    /// A link closed by the switch.
    Closing = 4,
    /// A response that does not answer the request it correlates with.
    Mismatched = 5,
    /// A message that cannot be encoded for the link.
    Encode = 6,
    /// Store-and-forward at its bound: liabilities refused, or the exception queue full.
    Exceptions = 7,
}

const _: () = assert!(Warn::Exceptions as usize + 1 == LOG_KINDS);

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    since: Option<Instant>,
    suppressed: u64,
}

/// Per configured link and kind: when the last line went out, and what was left out since.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    slots: Vec<[Slot; LOG_KINDS]>,
}

impl Throttle {
    pub(crate) fn new(links: usize, interval: Duration) -> Self {
        Self { interval, slots: vec![[Slot::default(); LOG_KINDS]; links] }
    }

    /// Makes room for configured links a reload added.
    pub(crate) fn grow(&mut self, links: usize) {
        if self.slots.len() < links {
            self.slots.resize(links, [Slot::default(); LOG_KINDS]);
        }
    }

    /// Whether a line of `kind` for configured link `spec` may go out at `now`: `Some` with
    /// how many were left out before it, or `None` (counted as left out).
    pub(crate) fn allow(&mut self, spec: usize, kind: Warn, now: Instant) -> Option<u64> {
        let slot = self.slots.get_mut(spec)?.get_mut(kind as usize)?;
        match slot.since {
            Some(at) if now.saturating_duration_since(at) < self.interval => {
                slot.suppressed += 1;
                None
            }
            _ => {
                slot.since = Some(now);
                Some(std::mem::take(&mut slot.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_of_those_left_out() {
        let t0 = Instant::now();
        let mut t = Throttle::new(2, Duration::from_secs(10));
        assert_eq!(t.allow(0, Warn::Malformed, t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(t.allow(0, Warn::Malformed, t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(t.allow(1, Warn::Malformed, t0), Some(0), "another link has its own budget");
        assert_eq!(t.allow(0, Warn::Spoofed, t0), Some(0), "another kind too");
        assert_eq!(t.allow(0, Warn::Malformed, t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(t.allow(9, Warn::Malformed, t0), None, "an unknown link prints nothing");
    }
}
