//! Every bound the engine enforces, in one place.

/// Most links (connections) the engine tracks at once.
pub const LINKS_MAX: usize = 4_096;

/// Most transactions in flight across the whole switch. Each link also has its own limit;
/// this one caps their sum, so a configuration error cannot make memory grow without bound.
pub const PENDING_MAX: usize = 1 << 20;

/// Most reversals awaiting acknowledgement. Past it the oldest is abandoned and logged
/// (a later milestone makes reversals durable and this bound a disk budget).
pub const REVERSALS_MAX: usize = 1 << 16;

/// Most timed-out transactions remembered so that a late approval can be reversed.
pub const LATE_MAX: usize = 1 << 16;

/// Largest write batch buffered for one link. A peer that does not read gets its link
/// closed (it stalls); a destination at this bound gets no new requests (declined 91).
pub const LINK_OUT_BYTES_MAX: usize = 4 << 20;

/// Most timer entries queued for reversals, late-response memory and echoes (live ones are
/// bounded by the maps above; stale ones are dropped when they come due). Request deadlines
/// have their own queues, compacted to follow the requests in flight.
pub const TIMERS_MAX: usize = REVERSALS_MAX + LATE_MAX + 2 * LINKS_MAX;

const _: () = assert!(LATE_MAX <= PENDING_MAX);
const _: () = assert!(LINK_OUT_BYTES_MAX > corridor_wire::FRAME_BYTES_MAX * 4);
