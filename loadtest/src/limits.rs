//! The bounds of the load generator and the simulator.

use std::time::Duration;

/// Event-loop threads one run may use.
pub const THREADS_MAX: usize = 64;

/// Connections one run may open.
pub const CONNECTIONS_MAX: usize = 1024;

/// Requests one connection may have in flight (closed loop: the window; open loop: sends
/// beyond it are not made and are counted as skipped).
pub const INFLIGHT_MAX: usize = 65_536;

/// The longest run, warm-up included.
pub const DURATION_MAX: Duration = Duration::from_secs(3600);

/// The most requests one run may send.
pub const REQUESTS_MAX: u64 = 1_000_000_000;

/// The highest open-loop rate, requests per second.
pub const RATE_MAX: f64 = 5_000_000.0;

/// The largest latency a histogram records; larger values are clamped to it.
pub const LATENCY_NS_MAX: u64 = 3_600_000_000_000;

/// Significant digits of the run's histograms (0.1% resolution).
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// Significant digits of the per-second histograms of the timeline (1% resolution: they
/// only feed the per-second p50/p99 and are kept for every second of the run).
pub const TIMELINE_SIGFIG: u8 = 2;

/// Largest frame the generator and the simulator accept or write.
pub const FRAME_BYTES_MAX: usize = 16 * 1024;

/// Bytes a reader asks the socket for at a time.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How often a blocked reader wakes to expire requests that timed out.
pub const READ_WAKE: Duration = Duration::from_millis(20);

/// A send later than this after its intended time counts as behind schedule.
pub const SCHEDULE_TOLERANCE_NS: u64 = 50_000;

/// A run is invalid when its schedule lag p99 exceeds this share of its corrected p99.
pub const LAG_SHARE_MAX: f64 = 0.25;

/// Messages the simulator keeps a record of (for tests and `--record`); later ones are only
/// counted.
pub const RECORD_MAX: usize = 1_000_000;

/// Connections the simulator accepts at once.
pub const RESPOND_CONNECTIONS_MAX: usize = 1024;

/// Answers one simulator connection holds back for their latency at once; beyond it a
/// request is answered at once.
pub const DELAYED_MAX: usize = 100_000;

/// How long the harness waits for a started process to be ready.
pub const READY_WAIT_MAX: Duration = Duration::from_secs(20);

/// PANs generated per BIN (drawn round-robin-at-random per request).
pub const PANS_PER_BIN: usize = 1024;

/// Response codes counted one by one; more distinct codes than this are counted as "other".
pub const RESPONSE_CODES_MAX: usize = 64;

/// With other nodes to fail over to: how long a connection that could not be re-made waits
/// before it tries the next node.
pub const FAILOVER_RETRY: Duration = Duration::from_millis(50);

/// With other nodes to fail over to: how long re-making a connection may take (connecting
/// and signing on), so that one unreachable node holds up its driver's other connections
/// only that long.
pub const FAILOVER_CONNECT_MAX: Duration = Duration::from_millis(500);

/// The most other nodes a run fails over to.
pub const FAILOVER_NODES_MAX: usize = 16;

/// A reversing partner's tries of one reversal (the 0420 and its 0421 repeats, each after a
/// request timeout without an answer) before it gives up and counts it unacknowledged.
pub const REVERSAL_TRIES_MAX: u32 = 20;
