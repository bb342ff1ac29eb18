//! Every bound of the journal, in one place.

use std::time::Duration;

/// Bytes of a record's frame: body length and CRC32C.
pub const RECORD_FRAME_BYTES: usize = 8;

/// Bytes of a record body before its payload: sequence number and kind.
pub const RECORD_BODY_MIN: usize = 9;

/// Largest record body. A request with every field at its maximum is under 20 KiB; the
/// decoder refuses a declared length over this before it looks any further.
pub const RECORD_BODY_MAX: usize = 64 * 1024;

/// Largest payload of one record.
pub const PAYLOAD_BYTES_MAX: usize = RECORD_BODY_MAX - RECORD_BODY_MIN;

/// How many records a checkpoint's scan or fold of a segment, or outcomes its write,
/// handles between two of its caller's pauses (`scan_segment_pausing`,
/// `Recovery::apply_segment_pausing`, `Recovery::checkpoint_as`): some 100–150 µs of
/// work. A checkpoint takes a few hundred milliseconds of CPU; on a core it shares with the
/// switch, a thread that is given it keeps it for the scheduler's slice (milliseconds),
/// and every transaction in flight waits that long. The I/O layer gives the core back at
/// each pause.
pub const PAUSE_RECORDS: usize = 1_024;

/// Bytes of a segment's header.
pub const SEGMENT_HEADER_BYTES: usize = 32;

/// Default size at which a segment is closed and the next one begun.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// Smallest segment size a configuration may set (room for a few largest records).
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;

/// Largest segment size a configuration may set.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;

/// Default most records in one group commit.
pub const GROUP_RECORDS_DEFAULT: usize = 1024;

/// Most records a group commit may be configured to hold.
pub const GROUP_RECORDS_MAX: usize = 1 << 16;

/// Default longest a record waits for its group to be synced: none. A batch goes as soon
/// as the writer is free, and the records that come while a sync is in flight form the
/// next one — group commit paced by the disk, not by a timer. A wait only makes sense to
/// trade latency for fewer syncs (and below a millisecond, the I/O layer's timer rounds it
/// up to one).
pub const GROUP_WAIT_DEFAULT: Duration = Duration::ZERO;

/// How long a batch whose records nobody waits for — no answer, forward or acknowledgement
/// is held until they are durable: a crossing request's records on its destination's
/// shard, a link event, an audit line — waits for more before it is synced. Such records
/// gate nothing, so syncing them at once bought nothing, and cost a sync in the disk's
/// queue in front of records something does wait for (two shards share a disk). Any record
/// awaited sends the batch at once, as always.
pub const GROUP_WAIT_UNAWAITED: Duration = Duration::from_millis(2);

/// Longest a group commit may be configured to wait.
pub const GROUP_WAIT_MAX: Duration = Duration::from_millis(100);

/// Most bytes of records one batch holds before it must be synced, whatever its count.
pub const GROUP_BYTES_MAX: usize = 8 << 20;

/// Largest buffer of a written batch kept for the next batch to fill (a larger one, left by
/// a burst, is given back to the allocator).
pub const GROUP_BUFFER_KEPT_MAX: usize = 1 << 20;

const _: () = assert!(RECORD_FRAME_BYTES + RECORD_BODY_MAX <= SEGMENT_BYTES_MIN as usize / 8);
const _: () = assert!(RECORD_FRAME_BYTES + RECORD_BODY_MAX <= GROUP_BYTES_MAX);
const _: () = assert!(RECORD_BODY_MAX <= u32::MAX as usize);

/// Bytes of outcomes after which a checkpoint closes its `Outcomes` record and begins the
/// next (one more outcome may follow: [`OUTCOME_BYTES_MAX`]): each record's frame,
/// sequence number and checksum are shared by some 900 outcomes, and its checksum is
/// computed over one long run of bytes.
pub const OUTCOMES_RECORD_BYTES: usize = 32 * 1024;

/// Most bytes one outcome takes in an `Outcomes` record: its flags, its participant's
/// number and id (new in the record), and every field at its longest.
pub const OUTCOME_BYTES_MAX: usize = 1 + 10 + 1 + 255 + 1 + 10 + 10 + 8 + 10 + 10 + 2 + 10 + 6 + 6;

const _: () = assert!(OUTCOMES_RECORD_BYTES + OUTCOME_BYTES_MAX <= PAYLOAD_BYTES_MAX);

/// Outcomes a recovery keeps for the duplicate window: the engine's bound (the oldest are
/// forgotten first).
pub const OUTCOMES_MAX: usize = 1 << 20;
