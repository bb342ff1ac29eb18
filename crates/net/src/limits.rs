//! The bounds of the network layer.

use std::time::Duration;

/// Bytes a link's reader asks the socket for at a time (its buffer holds at most one
/// partial frame more than this).
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How long a stopping switch waits for written batches to reach their sockets.
pub const FLUSH_WAIT_MAX: Duration = Duration::from_secs(2);

/// How often a draining switch checks whether requests are still in flight.
pub const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_MAX: Duration = Duration::from_secs(10);
