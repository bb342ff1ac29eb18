//! Reconnection backoff, one for every transport: exponential from a minimum to a maximum,
//! with full jitter on the upper half so that links redialing together spread out.

use std::time::Duration;

/// The delays between reconnection attempts of one dialed link.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    /// Delays from `min` doubling to `max`; `salt` (the link's index) seeds the jitter.
    #[must_use]
    pub fn new(min: Duration, max: Duration, salt: u64) -> Self {
        let seed = 0x9E37_79B9_7F4A_7C15u64 ^ salt.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        Self { min, max: max.max(min), current: min, seed: seed | 1 }
    }

    /// The next delay: between half the current backoff and all of it. The backoff then
    /// doubles, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: enough to spread reconnections, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.current / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        let delay = half + Duration::from_nanos(self.seed % span);
        self.current = self.current.saturating_mul(2).min(self.max);
        delay
    }

    /// A connection lasted long enough to count as healthy: start again from the minimum.
    pub fn reset(&mut self) {
        self.current = self.min;
    }

    /// Whether a connection that lasted `up` counts as healthy.
    #[must_use]
    pub fn healthy(&self, up: Duration) -> bool {
        up > self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_maximum_with_jitter_and_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000), 3);
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(b.next_delay());
        }
        let bounds = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, hi) in seen.iter().zip(bounds) {
            assert!(*d >= ms(hi) / 2 && *d <= ms(hi), "{d:?} within [{}, {hi}] ms", hi / 2);
        }
        let distinct: std::collections::HashSet<_> = seen[4..].iter().collect();
        assert!(distinct.len() > 1, "jittered: {seen:?}");
        let mut other = Backoff::new(ms(100), ms(1000), 4);
        let theirs: Vec<_> = (0..8).map(|_| other.next_delay()).collect();
        assert_ne!(seen, theirs, "two links do not redial in step");
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }
}
