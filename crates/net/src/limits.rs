//! The bounds of the network layer.

use std::time::Duration;

/// Most bytes a link's reader asks the socket for at a time. Its buffer starts at
/// [`READ_MIN_BYTES`], doubles while reads fill it, and goes back down when the link is
/// idle (its buffer then holds at most one partial frame more than this).
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The read buffer of a link that is quiet: what an idle connection costs in user space.
pub const READ_MIN_BYTES: usize = 2 * 1024;

/// A shard that had this many connections open at once or more, and then at most half of
/// them, asks the allocator to give the memory back ([`crate::memory`]).
pub const RELEASE_PEAK_MIN: usize = 64;

/// How long after the burst's close passes half the shard asks: the rest of the burst
/// closes meanwhile.
pub const RELEASE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a stopping switch waits for written batches to reach their sockets.
pub const FLUSH_WAIT_MAX: Duration = Duration::from_secs(2);

/// How often a draining switch checks whether requests are still in flight.
pub const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_MAX: Duration = Duration::from_secs(10);

/// At most one log line per listening link in this interval for connections refused at its
/// limit (with the count of those left out).
pub const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Kernel send buffer asked for on every TCP link (Linux doubles it). What sits in it when
/// a link goes has left the switch and counts as delivered; keeping it small keeps that
/// window small next to the engine's own batch bound, at no cost on a link that reads.
pub const TCP_SEND_BUFFER_BYTES: usize = 256 * 1024;

/// How long a link the switch closes lingers: its sending side is shut (FIN) after what was
/// written, and what the peer still sends is read and discarded, so closing with unread
/// input does not reset the connection and destroy the answers on their way to the peer.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Most bytes a lingering close reads and discards.
pub const CLOSE_LINGER_BYTES_MAX: usize = 16 << 20;

/// Commands a [`Handle`](crate::Handle) may have queued for the switch.
pub const HANDLE_QUEUE_MAX: usize = 64;

/// Write batches one lane of a hop between two shards holds (see [`crate::hop`]). A batch
/// is what one shard's engine wrote for the other since the last one: at most the engine's
/// write-batch bound, in practice a few frames.
pub const HOP_QUEUE_BATCHES: usize = 256;

/// How long a hop the engine closed waits before it comes up again.
pub const HOP_REOPEN: Duration = Duration::from_millis(100);

/// How long a hop to a shard another node runs waits before it dials again (the owner
/// not known, not reached, or the connection gone).
pub const HOP_REDIAL: Duration = Duration::from_millis(250);

/// Longest a hop to a shard another node runs may stay silent before it is taken for dead
/// and closed: each end echoes a hop that was idle for the engine's hop echo interval
/// (1 s), so a live peer is heard from well within it.
pub const HOP_SILENT_MAX: Duration = Duration::from_secs(4);
const _: () =
    assert!(HOP_SILENT_MAX.as_millis() >= 3 * corridor_engine::shards::HOP_ECHO_INTERVAL.as_millis());

/// How often a hop to another node checks that the node at its other end still runs the
/// shard there (the lease bucket says who does): a hop to a deposed owner is closed.
pub const HOP_OWNER_CHECK: Duration = Duration::from_secs(1);

/// Bytes a hop to another node reads at once, at least.
pub const HOP_READ_BYTES: usize = 64 << 10;

/// Most threads a switch runs its shards on.
pub const SHARDS_MAX: usize = corridor_engine::shards::SHARDS_MAX;

const _: () = assert!(READ_MIN_BYTES < READ_CHUNK_BYTES);

/// A timer that fires this much past its time means the switch itself did not run (stopped,
/// a virtual machine's stolen time, a thread held up): the readers take what arrived
/// meanwhile before any timer is judged, so the switch's own pause is never taken for a
/// peer's silence.
pub const TIMER_LATE_MAX: Duration = Duration::from_millis(100);

/// Rounds of reading the timer task lets pass after a pause before it judges the timers:
/// each lets every link's reader take what its socket holds (up to its cooperative budget).
pub const PAUSE_READ_ROUNDS: usize = 4;

/// How long a node waits, at start, for the cluster's stream to be made or found (its
/// servers may still be electing their leaders).
pub const CLUSTER_START_MAX: Duration = Duration::from_secs(30);

/// The most of the local journal's records a node reads into memory at once to refill its
/// shard's subject (rounds of whole segments: at least one each); a journal that ran
/// before its node joined a cluster may hold far more.
pub const REFILL_READ_BYTES: usize = 64 << 20;

/// How long a graceful stop waits to give a shard's lease up (for an append under way to
/// end, then for the bucket to answer); past it the lease expires by itself.
pub const LEASE_RELEASE_WAIT_MAX: Duration = Duration::from_secs(1);

/// The most segment starts a node of a cluster remembers of its shard's subject (where a
/// reader of a checkpoint begins: one per segment since the last checkpoint).
pub const STREAM_SEGMENT_MARKS_MAX: usize = 1_024;

/// The most bytes of a large file the journal writes beside its batches (a checkpoint, a
/// prepared segment's zeros) before it syncs them, and reads at once (a checkpoint's read of
/// segments): the batches' own syncs wait behind what the disk was given, at most this
/// much. A MiB was a millisecond or two of this disk's time that a batch's sync could
/// wait through: with 256 KiB the 4 × 64 journaled p99 went from 2.6–3.4× the p50 to
/// 1.9× (`benches/README.md`, the eighth pass), for a few hundred more syncs a checkpoint
/// on the checkpointer's thread.
pub const SYNC_STEP_BYTES: usize = 256 << 10;

/// Direct I/O's block: the journal's writes around the page cache are whole blocks of it,
/// from buffers aligned to it (a device's logical block is this or a divisor of it).
pub const DIRECT_BLOCK_BYTES: usize = 4_096;

const _: () = assert!(SYNC_STEP_BYTES.is_multiple_of(DIRECT_BLOCK_BYTES));

/// How much lower than the switch's the priority of the journal's background threads is
/// (a checkpoint's fold and write, a segment's preparation; `nice` steps): where they share
/// a core with the switch they take what it leaves, instead of an equal share in bursts of
/// seconds that every transaction in flight would wait through. (Measured with every
/// process on one CPU: `benches/README.md`, "The durable path".)
pub const JOURNAL_BACKGROUND_NICE: i32 = 10;
