//! When each open-loop request is meant to leave, and how the pacing thread waits for it.
//!
//! Send times are fixed before the run starts: request `i` of a constant-rate run is due at
//! `start + i / rate`; a Poisson run draws exponential gaps from a seeded generator, so the
//! same seed gives the same schedule. Nothing the target does moves a send time — which is
//! what keeps the corrected latency honest.

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use rand::{rngs::SmallRng, SeedableRng};
use rand_distr::{Distribution, Exp};

/// The arrival process of an open-loop run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced: request `i` at `i / rate`.
    Constant,
    /// Exponential gaps with mean `1 / rate`.
    Poisson,
}

impl FromStr for Arrivals {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "constant" => Ok(Self::Constant),
            "poisson" => Ok(Self::Poisson),
            _ => Err(format!("unknown arrival process `{s}`: expected constant or poisson")),
        }
    }
}

/// The intended send times of a run, as offsets from its start.
#[derive(Debug)]
pub struct Schedule {
    rate: f64,
    arrivals: Arrivals,
    gaps: Option<(Exp<f64>, SmallRng)>,
    index: u64,
    poisson_at_s: f64,
}

impl Schedule {
    /// A schedule of `rate` requests per second (positive and finite; the caller checks the
    /// bound).
    #[must_use]
    pub fn new(rate: f64, arrivals: Arrivals, seed: u64) -> Self {
        let gaps = match arrivals {
            Arrivals::Constant => None,
            // rate > 0 and finite, so the distribution exists.
            Arrivals::Poisson => Exp::new(rate).ok().map(|e| (e, SmallRng::seed_from_u64(seed))),
        };
        Self { rate, arrivals, gaps, index: 0, poisson_at_s: 0.0 }
    }

    /// The arrival process.
    #[must_use]
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals
    }

    /// The next intended send time, as an offset from the start.
    pub fn next_offset(&mut self) -> Duration {
        let i = self.index;
        self.index += 1;
        match &mut self.gaps {
            // Computed from the index, not accumulated, so rounding never drifts.
            None => Duration::from_secs_f64(i as f64 / self.rate),
            Some((exp, rng)) => {
                let at = self.poisson_at_s;
                self.poisson_at_s += exp.sample(rng);
                Duration::from_secs_f64(at)
            }
        }
    }
}

/// How the pacing thread waits for a send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Sleep until the send time (cheapest; wakes late by the timer's resolution).
    Sleep,
    /// Spin until the send time (most exact; burns the CPU the target may need).
    Spin,
    /// Sleep until `spin` before the send time, then spin.
    Hybrid {
        /// How long before the send time sleeping stops.
        spin: Duration,
    },
}

impl FromStr for Pacing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sleep" => Ok(Self::Sleep),
            "spin" => Ok(Self::Spin),
            "hybrid" => Ok(Self::Hybrid { spin: Duration::from_micros(20) }),
            _ => match s.strip_prefix("hybrid:").and_then(|us| us.strip_suffix("us")) {
                Some(us) => us
                    .parse()
                    .ok()
                    .filter(|us| *us <= 10_000)
                    .map(|us| Self::Hybrid { spin: Duration::from_micros(us) })
                    .ok_or_else(|| format!("pacing `{s}`: hybrid:Nus takes N up to 10000")),
                None => Err(format!("unknown pacing `{s}`: expected sleep, spin, hybrid or hybrid:Nus")),
            },
        }
    }
}

impl Pacing {
    /// Waits until `at` (returns at once if it has passed). Runs on the pacing thread only.
    #[allow(clippy::disallowed_methods)] // The dedicated pacing thread, not a runtime task: sleeping is its job.
    pub fn wait_until(self, at: Instant) {
        let spin = match self {
            Self::Sleep => Duration::ZERO,
            Self::Spin => Duration::MAX,
            Self::Hybrid { spin } => spin,
        };
        loop {
            let now = Instant::now();
            let Some(left) = at.checked_duration_since(now).filter(|d| !d.is_zero()) else { return };
            if left > spin {
                std::thread::sleep(left - spin);
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// A non-blocking monotonic timerfd: a send time an event loop can wait for with
/// nanosecond resolution (epoll's own timeout, and tokio's timer, are whole milliseconds).
///
/// # Errors
///
/// The kernel refused one.
pub fn timerfd() -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
    Ok(timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?)
}

/// Arms `fd` to fire once, `after` from now (at least 1 ns: a zero time disarms a timerfd).
///
/// # Errors
///
/// The kernel refused.
pub fn arm_timerfd(fd: impl std::os::fd::AsFd, after: Duration) -> std::io::Result<()> {
    use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
    let d = after.max(Duration::from_nanos(1));
    let spec = Itimerspec {
        it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) },
    };
    timerfd_settime(fd, TimerfdTimerFlags::empty(), &spec)?;
    Ok(())
}

/// Reads a fired timerfd's count, so it stops reading ready.
pub fn clear_timerfd(fd: impl std::os::fd::AsFd) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(fd, &mut buf);
}

/// Makes the pacing thread's sleeps wake on time: Linux lets a sleep overshoot by the
/// thread's timer slack (50 µs by default), which at high rates is the whole gap between
/// sends. Best effort: elsewhere this does nothing.
pub fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_schedules_are_fixed_in_advance_and_never_drift() {
        let mut s = Schedule::new(50_000.0, Arrivals::Constant, 0);
        let offsets: Vec<_> = (0..5).map(|_| s.next_offset()).collect();
        assert_eq!(offsets, [0, 20, 40, 60, 80].map(Duration::from_micros));
        // Far out, the offset is still i / rate (no accumulated rounding).
        for _ in 5..1_000_000 {
            s.next_offset();
        }
        assert_eq!(s.next_offset(), Duration::from_secs(20));
    }

    #[test]
    fn poisson_schedules_repeat_with_their_seed_and_keep_the_rate() {
        let take = |seed| {
            let mut s = Schedule::new(1000.0, Arrivals::Poisson, seed);
            (0..20_000).map(|_| s.next_offset()).collect::<Vec<_>>()
        };
        let a = take(7);
        assert_eq!(a, take(7));
        assert_ne!(a, take(8));
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "send times never go back");
        // 20 000 arrivals at 1000/s take about 20 s (the mean of 20 000 exponential gaps is
        // within 3% of 1 ms with overwhelming probability).
        let span = a[a.len() - 1].as_secs_f64();
        assert!((19.4..20.6).contains(&span), "{span}");
        // And the gaps vary (a constant schedule would not).
        let gaps: Vec<_> = a.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().any(|g| *g < Duration::from_micros(100)));
        assert!(gaps.iter().any(|g| *g > Duration::from_millis(3)));
    }

    #[test]
    fn pacing_parses_and_waits_at_least_until_the_send_time() {
        assert_eq!("spin".parse(), Ok(Pacing::Spin));
        assert_eq!("hybrid:5us".parse(), Ok(Pacing::Hybrid { spin: Duration::from_micros(5) }));
        assert!("hybrid:x".parse::<Pacing>().is_err());
        assert!("fast".parse::<Pacing>().is_err());
        for p in [Pacing::Sleep, Pacing::Spin, Pacing::Hybrid { spin: Duration::from_micros(50) }] {
            let at = Instant::now() + Duration::from_millis(2);
            p.wait_until(at);
            assert!(Instant::now() >= at, "{p:?} returned early");
        }
        // A time in the past returns at once.
        Pacing::Sleep.wait_until(Instant::now() - Duration::from_secs(1));
    }
}
