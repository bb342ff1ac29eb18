//! The seed's one source of choices.

#[allow(clippy::wildcard_imports)] // the simulator's own parts
use crate::*;

/// A seeded generator (xorshift64*): every draw of a run comes from it.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p` percent.
    pub(crate) fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Uniform in `lo..=hi` microseconds.
    pub(crate) fn micros(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_micros(lo + self.below(hi - lo + 1))
    }
}
