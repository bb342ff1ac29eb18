//! The bounds of the network layer.

use std::time::Duration;

/// Most bytes a link's reader asks the socket for at a time. Its buffer starts at
/// [`READ_MIN_BYTES`], doubles while reads fill it, and goes back down when the link is
/// idle (its buffer then holds at most one partial frame more than this).
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The read buffer of a link that is quiet: what an idle connection costs in user space.
pub const READ_MIN_BYTES: usize = 2 * 1024;

/// How long a stopping switch waits for written batches to reach their sockets.
pub const FLUSH_WAIT_MAX: Duration = Duration::from_secs(2);

/// How often a draining switch checks whether requests are still in flight.
pub const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_MAX: Duration = Duration::from_secs(10);

/// At most one log line per listening link in this interval for connections refused at its
/// limit (with the count of those left out).
pub const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Commands a [`Handle`](crate::Handle) may have queued for the switch.
pub const HANDLE_QUEUE_MAX: usize = 64;

const _: () = assert!(READ_MIN_BYTES < READ_CHUNK_BYTES);
