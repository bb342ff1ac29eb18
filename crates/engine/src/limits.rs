//! Every bound the engine enforces, in one place.

use std::time::Duration;

/// Most links (connections, or QUIC lanes) the engine tracks at once.
pub const LINKS_MAX: usize = 16_384;

/// Most transactions in flight across the whole switch. Each link also has its own limit;
/// this one caps their sum, so a configuration error cannot make memory grow without bound.
pub const PENDING_MAX: usize = 1 << 20;

/// Most store-and-forward entries (reversals and advices awaiting acknowledgement) before the
/// switch stops taking new liabilities: at it, new authorizations and financial requests
/// are declined 96 and participants' advices are refused (96, so their sender keeps them).
/// Nothing is evicted: requests already in flight may still add their reversals, so the
/// entries are at most this plus [`PENDING_MAX`].
pub const REVERSALS_MAX: usize = 1 << 16;

/// A stored reversal or advice is repeated after `reversal_retry`, then twice that, and so
/// on: at most this many doublings (8 × the interval: 80 s with the default 10 s).
pub const SAF_BACKOFF_DOUBLINGS: u32 = 3;

/// Most entries in the exception queue. At it, an entry past its limits stays in
/// store-and-forward (repeated at the retry interval) until an operator makes room.
pub const EXCEPTIONS_MAX: usize = 1 << 16;

/// Most timed-out transactions remembered so that a late approval can be reversed.
pub const LATE_MAX: usize = 1 << 16;

/// A partial frame buffered this long is stalled: its connection may be displaced by a new
/// one at the link's connection limit (`Engine::displace`). A healthy peer finishes a frame
/// within a round trip.
pub const PARTIAL_STALLED: Duration = Duration::from_secs(1);

/// Most completed requests whose outcome answers a repeat (the duplicate window), per
/// shard. An entry is about 100 bytes in the ring and 10 in its index (kept at most half
/// full): at most about 110 MiB a shard. Past it the oldest outcome is forgotten first.
pub const OUTCOMES_MAX: usize = 1 << 20;

/// Index slots the duplicate window sweeps for forgotten outcomes at each one it remembers
/// (`corridor_journal::positions::PositionIndex::sweep`): a cache line read in order. A
/// forgotten outcome's slot is freed within `2 * OUTCOMES_MAX / 8` remembered ones, so the
/// index is at most about 62% full at the bound (half of it live) — below the three
/// quarters past which it sweeps whole. Sixteen (56%) cost the switch more in the sweep
/// than the shorter searches saved (`benches/README.md`, the tenth pass).
pub const OUTCOMES_SWEEP_SLOTS: usize = 8;

/// Most remembered requests a reversal that leaves DE 41 out is compared with to find its
/// original among the terminals' requests with its STAN, DE 7 and institutions (in the
/// order the window's index holds them, with any others that share their place there):
/// past them it is taken for none (it is forwarded as it came, as one whose original is
/// not remembered). Each costs a read of the window's ring (a cache miss), and a participant
/// sending one STAN and DE 7 from a million terminals would otherwise make each such
/// reversal a million of them; so many terminals' requests make no one of them the
/// original anyway.
pub const ORIGINAL_CANDIDATES_MAX: usize = 64;

// Half the index live and a turn of sweeps' forgotten (`1 / OUTCOMES_SWEEP_SLOTS` of it)
// stay under the three quarters past which it sweeps whole.
const _: () = assert!(OUTCOMES_SWEEP_SLOTS > 4);

/// Largest write batch buffered for one link. A peer that does not read gets its link
/// closed (it stalls) and every approval still in the batch is reversed; a destination at
/// half this bound gets no new requests.
pub const LINK_OUT_BYTES_MAX: usize = 4 << 20;

/// Requests an originator at its in-flight limit may have waiting in the engine (bytes of
/// frames already read off its socket) before its reader stops reading. Responses and
/// network management on the same link keep being handled until then; past it the kernel's
/// buffers and TCP flow control hold the rest.
pub const HELD_BYTES_MAX: usize = 64 * 1024;

/// At most one log line per link per kind of repeated warning in this interval; the next
/// line says how many were left out.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Kinds of repeated warnings the engine throttles (see [`LOG_INTERVAL`]).
pub(crate) const LOG_KINDS: usize = 8;

const _: () = assert!(LATE_MAX <= PENDING_MAX);
const _: () = assert!(LINK_OUT_BYTES_MAX > corridor_wire::FRAME_BYTES_MAX * 4);
const _: () = assert!(HELD_BYTES_MAX >= corridor_wire::FRAME_BYTES_MAX);

/// Most QR networks one payment is routed by (a sticker lists a handful; EMVCo allows 50
/// merchant accounts).
pub const QR_TARGETS_MAX: usize = 16;

/// Most characters of a rate quote id (DE 125).
pub const QUOTE_ID_CHARS_MAX: usize = 32;
