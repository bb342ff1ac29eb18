//! Every bound of the cluster layer, in one place.

use std::time::Duration;

/// The largest message one append carries (our header, the records, our CRC). The
/// stream's `max_msg_size` is set to it; a journal's batch is cut below it
/// ([`MESSAGE_RECORDS_BYTES`]).
pub const BATCH_BYTES_MAX: usize = 1 << 20;

/// The most bytes of records one message carries when a journal's batch is appended
/// (`ShardLog::append_journal`: a larger batch goes as several messages, cut between
/// records): half the largest message, as the refill of the stream and checkpoint parts are
/// cut (a message goes with headers, under NATS's largest payload).
pub const MESSAGE_RECORDS_BYTES: usize = BATCH_BYTES_MAX / 2;

/// The most bytes of records (or of a checkpoint part) compressed on the appending task's
/// own thread; larger ones are compressed on a blocking thread (a batch of a MiB takes a
/// millisecond or two: not the switch's thread's to spend).
pub const ENCODE_INLINE_BYTES: usize = 16 * 1024;

/// How long one request to the stream (an append's acknowledgement, a read) may take before
/// it is settled by reading back or asked again.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1_000);

/// How long one request to make or find a shard's stream may take. A request sent before
/// the cluster has elected its meta leader is never answered: the caller asks again after
/// this, not after the client's default of ten seconds (which, at a cluster's first start,
/// every first request waited out).
pub const STREAM_ENSURE_TIMEOUT: Duration = Duration::from_millis(2_000);

/// The pause between two tries of an append the stream did not acknowledge.
pub const APPEND_RETRY: Duration = Duration::from_millis(100);

/// How long an append keeps trying before it reports the stream unavailable. Longer than an
/// election (measured 2.3–8 s with the pinned server): a writer waits one out rather than
/// give up a shard the stream would still let it keep.
pub const APPEND_WAIT_MAX: Duration = Duration::from_secs(15);

/// How long a shard's release mark may take to be written to its node's connection to NATS
/// (`ShardLog::mark_released`); past it the node stops, having released nothing the mark
/// would cover.
pub const RELEASE_MARK_WAIT: Duration = Duration::from_secs(1);

/// How long after a release mark the bucket did not acknowledge it is published again, by
/// itself, whether or not another batch comes (an idle shard's last mark must not stay
/// lost: a takeover would reverse the approvals it covers, which left).
pub const RELEASE_MARK_RETRY: Duration = Duration::from_millis(250);

/// How many times a lost release mark is published again before it is left to the next
/// batch released (which marks whatever it holds while one is lost): 20 s of tries.
pub const RELEASE_MARK_RETRIES: u32 = 80;

/// The most batches one read of a subject returns (a takeover reads from the last
/// checkpoint; more than this is a checkpoint missed).
pub const READ_BATCHES_MAX: usize = 1 << 20;

/// How long a shard's lease lives unless renewed (the lease bucket's `max_age`).
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// How often a holder renews its leases: three tries inside one time to live.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);

/// A holder counts its lease stale this much before its time to live is up by its own
/// clock (`keeper::Held::stale_at`): room for that clock to run slow against the bucket's
/// (rate drift, a slewed clock: up to 16% here) — a node acts for a shard only while no
/// other node can have taken it. The renewal's own request is already on the safe side (its
/// time is taken before it is sent).
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);

const _: () = assert!(LEASE_RENEW.as_millis() * 2 < LEASE_TTL.as_millis() - LEASE_MARGIN.as_millis());

/// How long a node starting waits for a shard's lease (its last holder's to expire); a
/// standby waits without bound.
pub const LEASE_WAIT_MAX: Duration = Duration::from_secs(20);

/// How often a node waiting for a shard's lease asks for it again: a takeover comes at most
/// this long after the lease expires.
pub const LEASE_POLL: Duration = Duration::from_millis(100);

/// The most shards a status lists (a stream with more subjects than this is not ours).
pub const STATUS_SHARDS_MAX: usize = 4_096;

/// The most nodes a status lists.
pub const STATUS_NODES_MAX: usize = 256;

/// The most copies of the stream a status lists.
pub const STATUS_REPLICAS_MAX: usize = 16;

/// How long a node starting may take to learn (or record) the cluster's shard count.
pub const AGREE_WAIT_MAX: Duration = Duration::from_secs(20);

/// The largest configuration (its text and shared files, encoded) the cluster carries: under
/// NATS's default largest message (1 MiB), with room for who published it.
pub const CONFIG_BYTES_MAX: usize = 1_000_000;

/// How many configurations the bucket keeps (the current one and those before it, for audit).
pub const CONFIG_HISTORY: i64 = 16;

/// How often a node asks the configuration bucket for its revision besides watching it, so a
/// watch that stalled unseen (a server restarted under it) delays a reload at most this long.
pub const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Appends a shard's writer may have in flight at once (each fenced by its sequence). Every
/// writer's first append is preceded by a fence of as many markers (`ShardLog::fence`): a
/// build that raises it must not share a cluster with one that fences less far.
pub const APPENDS_IN_FLIGHT_MAX: u64 = 4;

/// The journal batches a cluster node has in the stream at once (at most
/// [`APPENDS_IN_FLIGHT_MAX`]): while the stream stores one, the next are on their way, so a
/// shard's rate is not one batch per acknowledgement. The simulator's seeds hold at four,
/// and the kill loops (`corridor` crate, `tests/crash.rs`) with no ambiguous outcome; with
/// the stream's servers on the node's own host four measure no faster than one (their CPU
/// is the bound), with the stream 1 ms away 15% faster (benches/README).
pub const APPENDS_IN_FLIGHT: u64 = 4;
