//! Every default and every bound of a configured value, in one place. Each duration and
//! count a configuration can set is bounded here, so that no arithmetic on configured values
//! can overflow (an echo window is `echo_interval × (echo_missed_max + 1)`, at most
//! 101 hours with these bounds).

use std::ops::RangeInclusive;

/// A bounded setting in milliseconds: its name, default and allowed range.
#[derive(Clone, Copy, Debug)]
pub struct Millis {
    /// The key, as written in the file.
    pub key: &'static str,
    /// Used when the key is absent.
    pub default: u64,
    /// Smallest value allowed.
    pub min: u64,
    /// Largest value allowed.
    pub max: u64,
}

impl Millis {
    /// The allowed range.
    #[must_use]
    pub const fn range(&self) -> RangeInclusive<u64> {
        self.min..=self.max
    }
}

const SECOND: u64 = 1_000;
const HOUR: u64 = 3_600 * SECOND;

/// `[switch] drain_timeout_ms`.
pub const DRAIN_TIMEOUT: Millis =
    Millis { key: "drain_timeout_ms", default: 5 * SECOND, min: 1, max: 600 * SECOND };
/// `[switch] reversal_retry_ms`.
pub const REVERSAL_RETRY: Millis =
    Millis { key: "reversal_retry_ms", default: 10 * SECOND, min: 10, max: HOUR };
/// `[switch] saf_age_max_ms`: a reversal or advice still unacknowledged this long after it
/// was stored moves to the exception queue.
pub const SAF_AGE_MAX: Millis =
    Millis { key: "saf_age_max_ms", default: 24 * HOUR, min: 1, max: 7 * 24 * HOUR };
/// `[switch] late_window_ms`.
pub const LATE_WINDOW: Millis =
    Millis { key: "late_window_ms", default: 120 * SECOND, min: 1, max: 24 * HOUR };
/// `[switch] duplicate_window_ms`: how long a completed request's outcome answers its
/// repeats (a business day by default).
pub const DUPLICATE_WINDOW: Millis =
    Millis { key: "duplicate_window_ms", default: 24 * HOUR, min: 1, max: 7 * 24 * HOUR };
/// A route's `timeout_ms`.
pub const ROUTE_TIMEOUT: Millis =
    Millis { key: "timeout_ms", default: 5 * SECOND, min: 1, max: 600 * SECOND };
/// A link's `echo_interval_ms`.
pub const ECHO_INTERVAL: Millis =
    Millis { key: "echo_interval_ms", default: 30 * SECOND, min: 100, max: HOUR };
/// A link's `sign_on_timeout_ms`: a listening link that requires a sign-on closes a
/// connection that has not signed on within it.
pub const SIGN_ON_TIMEOUT: Millis =
    Millis { key: "sign_on_timeout_ms", default: 10 * SECOND, min: 100, max: HOUR };
/// A link's `frame_timeout_ms`: a frame begun must be whole within it.
pub const FRAME_TIMEOUT: Millis =
    Millis { key: "frame_timeout_ms", default: 5 * SECOND, min: 100, max: 600 * SECOND };
/// A dialed link's `connect_timeout_ms`.
pub const CONNECT_TIMEOUT: Millis =
    Millis { key: "connect_timeout_ms", default: 3 * SECOND, min: 1, max: 600 * SECOND };
/// A dialed link's `reconnect_min_ms`.
pub const RECONNECT_MIN: Millis = Millis { key: "reconnect_min_ms", default: 100, min: 1, max: HOUR };
/// A dialed link's `reconnect_max_ms`.
pub const RECONNECT_MAX: Millis = Millis { key: "reconnect_max_ms", default: 30 * SECOND, min: 1, max: HOUR };
/// A QUIC link's `idle_timeout_ms`.
pub const IDLE_TIMEOUT: Millis = Millis { key: "idle_timeout_ms", default: 30 * SECOND, min: 100, max: HOUR };
/// A QUIC link's `keep_alive_ms` (below the idle timeout).
pub const KEEP_ALIVE: Millis = Millis { key: "keep_alive_ms", default: 5 * SECOND, min: 10, max: HOUR };

/// A link's `inflight_max`: default and range.
pub const INFLIGHT: (u32, RangeInclusive<u32>) = (256, 1..=65_535);
/// A link's `echo_missed_max`.
pub const ECHO_MISSED: (u32, RangeInclusive<u32>) = (3, 1..=100);
/// A link's `timeouts_down_max`: timeouts in a row, with nothing received, that take it out
/// of routing.
pub const TIMEOUTS_DOWN: (u32, RangeInclusive<u32>) = (3, 1..=10_000);
/// `[switch] reversal_repeats_max`.
pub const REVERSAL_REPEATS: (u32, RangeInclusive<u32>) = (5, 0..=1_000);
/// A listening link's `connections_max` (the engine tracks at most
/// [`corridor_engine::limits::LINKS_MAX`] links in all).
pub const CONNECTIONS: (usize, RangeInclusive<usize>) = (16, 1..=corridor_engine::limits::LINKS_MAX);
/// A link's `frame_bytes_max`: at least room for a switch-made decline.
pub const FRAME_BYTES: (usize, RangeInclusive<usize>) =
    (corridor_wire::FRAME_BYTES_MAX, 64..=corridor_wire::FRAME_BYTES_MAX);
/// QUIC lanes a dialed link opens by default, and a listening link accepts.
pub const LANES_DIAL: u16 = 4;
/// See [`LANES_DIAL`].
pub const LANES_LISTEN: u16 = 16;
/// Most routes one configuration may hold, from its file and its route files together.
pub const ROUTES_MAX: usize = 4_000_000;
/// Route lines a check-config summary prints before "... and N more".
pub const SUMMARY_ROUTES_MAX: usize = 50;
/// Duplicate routes named in an error before "... and N more".
pub const DUPLICATES_SHOWN: usize = 10;

const _: () = assert!(ECHO_MISSED.1.end().checked_add(1).is_some());
const _: () = assert!(KEEP_ALIVE.min < IDLE_TIMEOUT.min || KEEP_ALIVE.min < IDLE_TIMEOUT.default);

/// `[journal] checkpoint_segments`: a checkpoint of the recovered state is written after
/// this many new segments (and once at start), which bounds what a restart reads. Under
/// sustained saturation a checkpoint takes longer than its turn (it runs below the switch's
/// priority); the next then runs at the switch's priority, and a restart reads about one
/// checkpoint's duration of journal (`benches/README.md`, the twelfth pass).
pub const CHECKPOINT_SEGMENTS: (u32, std::ops::RangeInclusive<u32>) = (4, 1..=64);
/// `[journal] retain_hours`: segments a checkpoint covers are kept this long after they
/// end (audit, clearing), then removed. 0 removes them as soon as they are covered.
pub const RETAIN_HOURS: (u64, std::ops::RangeInclusive<u64>) = (48, 0..=24 * 400);
/// `[journal] reserve_bytes`: space held back in the journal directory; when the disk
/// fills, it is released so the switch can still journal what is in flight (new requests
/// are then declined 96) until space returns.
pub const RESERVE_BYTES: (u64, std::ops::RangeInclusive<u64>) = (16 << 20, 64 << 10..=1 << 30);

/// Longest participant id and link name, in bytes: each is journaled with every request (a
/// name the journal holds is at most 255 bytes, and a longer one would be cut — a key that
/// no longer matches, or UTF-8 cut inside a character, which makes the record unreadable).
pub const NAME_BYTES_MAX: usize = 64;

/// `[admin] address` when absent: loopback only.
pub const ADMIN_ADDRESS: &str = "127.0.0.1:9180";
/// Shortest admin bearer token accepted (a guessable token is no token).
pub const ADMIN_TOKEN_BYTES_MIN: usize = 16;
/// Longest admin bearer token accepted.
pub const ADMIN_TOKEN_BYTES_MAX: usize = 256;

/// Most quotes in the rate table (inline and rate files together).
pub const RATES_MAX: usize = 100_000;

/// Largest rate file read.
pub const RATE_FILE_BYTES_MAX: u64 = 16 << 20;
/// The largest BIN route file read (`[switch] route_files`): it is read whole, and a cluster
/// carries it between its nodes.
pub const ROUTE_FILE_BYTES_MAX: u64 = 64 << 20;
/// The largest QR network registry read (`[qr] networks`).
pub const QR_NETWORKS_BYTES_MAX: u64 = 1 << 20;
