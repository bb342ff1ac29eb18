//! The writer's side, sans-IO: records are numbered and encoded into a batch as they come;
//! a batch goes to the I/O layer when it holds [`GroupCommit::records_max`] records (or
//! [`GROUP_BYTES_MAX`] bytes), or when its first record has waited [`GroupCommit::wait`];
//! the I/O layer appends it, calls `fdatasync` once, and reports it with
//! [`Appender::handle_synced`]. Only then are its records durable — nothing here
//! acknowledges on a timer. One batch is in flight at a time; records that come meanwhile
//! form the next one.
//!
//! A batch that would take the current segment past [`GroupCommit::segment_bytes`] starts a
//! new segment (so a segment exceeds that size by at most one batch).

use std::time::{Duration, Instant};

use crate::{
    limits::{
        GROUP_BUFFER_KEPT_MAX, GROUP_BYTES_MAX, GROUP_RECORDS_DEFAULT, GROUP_RECORDS_MAX, GROUP_WAIT_DEFAULT,
        GROUP_WAIT_MAX, GROUP_WAIT_UNAWAITED, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
        SEGMENT_HEADER_BYTES,
    },
    record::{encode_with, Kind},
    segment::SegmentHeader,
};

/// When a batch is synced, and how large segments grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommit {
    /// Most records in one batch.
    pub records_max: usize,
    /// Longest the first record of a batch waits for the batch to go.
    pub wait: Duration,
    /// Size past which the next batch starts a new segment.
    pub segment_bytes: u64,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            records_max: GROUP_RECORDS_DEFAULT,
            wait: GROUP_WAIT_DEFAULT,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
        }
    }
}

impl GroupCommit {
    /// Checks the policy against the bounds in [`crate::limits`].
    ///
    /// # Errors
    ///
    /// Which value is out of its range.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=GROUP_RECORDS_MAX).contains(&self.records_max) {
            return Err(format!("group commit records_max must be 1-{GROUP_RECORDS_MAX}"));
        }
        if self.wait > GROUP_WAIT_MAX {
            return Err(format!("group commit wait must be at most {} µs", GROUP_WAIT_MAX.as_micros()));
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!("segment_bytes must be {SEGMENT_BYTES_MIN}-{SEGMENT_BYTES_MAX}"));
        }
        Ok(())
    }
}

/// Bytes for the I/O layer to append and sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncBatch {
    /// Begin this segment first (create its file, write its header), then append to it.
    pub new_segment: Option<SegmentHeader>,
    /// Encoded records, to append to the current segment.
    pub bytes: Vec<u8>,
    /// The sequence numbers of its first and last records.
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// It holds an answer relaying an approval ([`Appender::mark_release`]): in a cluster
    /// its release is marked before anything it gates leaves (a takeover takes such an
    /// answer after the shard's mark as never given). A batch without one needs no mark —
    /// a takeover reverses nothing in it whatever the mark says.
    pub release_marked: bool,
}

/// Numbers, encodes and batches records; tracks what is durable.
#[derive(Debug)]
pub struct Appender {
    policy: GroupCommit,
    next_seq: u64,
    durable_seq: u64,
    buf: Vec<u8>,
    /// A written batch's buffer, for the next batch ([`Appender::recycle`]).
    spare: Vec<u8>,
    buf_first_seq: u64,
    buf_records: usize,
    /// The open batch holds a record whose release must be marked (see [`SyncBatch`]).
    buf_marked: bool,
    first_at: Option<Instant>,
    /// Bytes of the current segment (header included); `None` before the first segment.
    segment_bytes: Option<u64>,
    /// The last sequence numbers of the batches being written, oldest first: at most
    /// `in_flight_max` ([`Appender::set_in_flight_max`]).
    in_flight: std::collections::VecDeque<u64>,
    in_flight_max: usize,
    /// See [`Appender::rotate_early`].
    rotate_early: bool,
}

impl Appender {
    /// An appender for a log whose next record is `next_seq` (from recovery: everything
    /// before it is durable) and whose last segment holds `segment_bytes` (`None` for a new
    /// log, or to begin a new segment).
    #[must_use]
    pub fn new(policy: GroupCommit, next_seq: u64, segment_bytes: Option<u64>) -> Self {
        Self {
            policy,
            next_seq,
            durable_seq: next_seq.saturating_sub(1),
            buf: Vec::new(),
            spare: Vec::new(),
            buf_first_seq: next_seq,
            buf_records: 0,
            buf_marked: false,
            first_at: None,
            segment_bytes,
            in_flight: std::collections::VecDeque::new(),
            in_flight_max: 1,
            rotate_early: false,
        }
    }

    /// Numbers and encodes a record; returns its sequence number. It is durable once
    /// [`Appender::durable`] reaches it.
    pub fn append(&mut self, kind: Kind, payload: &[u8], now: Instant) -> u64 {
        self.append_with(kind, now, |out| out.extend_from_slice(payload))
    }

    /// [`Appender::append`], the payload written straight into the batch by `payload`.
    pub fn append_with(&mut self, kind: Kind, now: Instant, payload: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.buf_records == 0 {
            self.buf_first_seq = seq;
            self.first_at = Some(now);
        }
        encode_with(seq, kind, &mut self.buf, payload);
        self.buf_records += 1;
        seq
    }

    /// The record appended last relays an approval: its batch's release is marked first
    /// ([`SyncBatch::release_marked`]).
    pub fn mark_release(&mut self) {
        debug_assert!(self.buf_records > 0, "a release marked with no record in the batch");
        self.buf_marked = true;
    }

    /// How many batches may be handed out before the oldest is synced (1 unless set): an I/O
    /// layer that writes one batch while the stream still acknowledges those before it (a
    /// cluster's) takes several. Batches are synced in the order handed out.
    ///
    /// # Panics
    ///
    /// `max` is 0.
    pub fn set_in_flight_max(&mut self, max: usize) {
        assert!(max > 0, "at least one batch in flight");
        self.in_flight_max = max;
    }

    /// The next batch to write, when one is due and fewer than the most allowed are in
    /// flight (one, unless set: [`Appender::set_in_flight_max`]).
    pub fn poll_batch(&mut self, now: Instant, unix_ms: u64) -> Option<SyncBatch> {
        self.poll_batch_when(now, unix_ms, true)
    }

    /// [`Appender::poll_batch`], were something (`awaited`) or nothing waiting for the open
    /// batch's records to be durable: a batch nobody waits for waits for more records, up to
    /// [`GROUP_WAIT_UNAWAITED`].
    pub fn poll_batch_when(&mut self, now: Instant, unix_ms: u64, awaited: bool) -> Option<SyncBatch> {
        if self.in_flight.len() >= self.in_flight_max || self.buf_records == 0 {
            return None;
        }
        let full = self.buf_records >= self.policy.records_max || self.buf.len() >= GROUP_BYTES_MAX;
        let waited = self.first_at.is_some_and(|at| now.saturating_duration_since(at) >= self.wait(awaited));
        if !full && !waited {
            return None;
        }
        let bytes = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        let (first_seq, last_seq) = (self.buf_first_seq, self.next_seq - 1);
        let rotate = match self.segment_bytes {
            None => true,
            Some(used) => {
                used > SEGMENT_HEADER_BYTES as u64
                    && (self.rotate_early || used + bytes.len() as u64 > self.policy.segment_bytes)
            }
        };
        if rotate {
            self.rotate_early = false;
        }
        let new_segment = rotate.then_some(SegmentHeader { first_seq, created_unix_ms: unix_ms });
        let base = if rotate { SEGMENT_HEADER_BYTES as u64 } else { self.segment_bytes.unwrap_or(0) };
        self.segment_bytes = Some(base + bytes.len() as u64);
        let release_marked = std::mem::take(&mut self.buf_marked);
        self.buf_records = 0;
        self.first_at = None;
        self.in_flight.push_back(last_seq);
        Some(SyncBatch { new_segment, bytes, first_seq, last_seq, release_marked })
    }

    /// When [`Appender::poll_batch`] should be called again for a batch waiting on time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.poll_timeout_when(true)
    }

    /// [`Appender::poll_timeout`] for [`Appender::poll_batch_when`].
    #[must_use]
    pub fn poll_timeout_when(&self, awaited: bool) -> Option<Instant> {
        if self.in_flight.len() >= self.in_flight_max {
            return None;
        }
        self.first_at.map(|at| at + self.wait(awaited))
    }

    /// How long the open batch's first record waits for the batch to go.
    fn wait(&self, awaited: bool) -> Duration {
        if awaited {
            self.policy.wait
        } else {
            self.policy.wait.max(GROUP_WAIT_UNAWAITED)
        }
    }

    /// The batch ending at `last_seq` — the oldest in flight — was written and synced.
    ///
    /// # Panics
    ///
    /// If it is not the oldest batch handed out: the I/O layer reports what it was given,
    /// in order.
    pub fn handle_synced(&mut self, last_seq: u64) {
        assert_eq!(
            self.in_flight.front(),
            Some(&last_seq),
            "synced a batch that was not the oldest in flight"
        );
        self.in_flight.pop_front();
        self.durable_seq = last_seq;
    }

    /// Takes back a written batch's buffer: the batch after the one filling now fills it,
    /// so batches take turns with two buffers instead of growing a new one each time (one
    /// of up to [`GROUP_BUFFER_KEPT_MAX`] is kept).
    pub fn recycle(&mut self, mut bytes: Vec<u8>) {
        if bytes.capacity() > self.spare.capacity() && bytes.capacity() <= GROUP_BUFFER_KEPT_MAX {
            bytes.clear();
            self.spare = bytes;
        }
    }

    /// The next batch begins a new segment, however full the current one is (unless the
    /// current one holds no record yet): the I/O layer has a better one ready — a prepared
    /// segment, while the current one was begun as it was and grows as it is appended to.
    pub fn rotate_early(&mut self) {
        self.rotate_early = true;
    }

    /// The highest sequence number durable on disk (0 when none is).
    #[must_use]
    pub fn durable(&self) -> u64 {
        self.durable_seq
    }

    /// The sequence number the next record gets.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records appended and not yet handed out in a batch.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf_records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::scan_log;

    const US: Duration = Duration::from_micros(1);

    fn policy(records_max: usize, segment_bytes: u64) -> GroupCommit {
        GroupCommit { records_max, wait: 200 * US, segment_bytes }
    }

    #[test]
    fn several_batches_go_out_before_the_first_is_synced_and_are_synced_in_order() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(2, SEGMENT_BYTES_MIN), 1, None);
        a.set_in_flight_max(3);
        let mut out = Vec::new();
        for round in 0..4u64 {
            a.append(Kind::Forwarded, b"x", t0);
            a.append(Kind::Forwarded, b"y", t0);
            match a.poll_batch(t0, 0) {
                Some(b) => out.push((b.first_seq, b.last_seq)),
                None => assert_eq!(round, 3, "the fourth waits: three are in flight"),
            }
        }
        assert_eq!(out, [(1, 2), (3, 4), (5, 6)]);
        assert_eq!(a.poll_timeout(), None, "nothing is due on time while none may go");
        assert_eq!(a.durable(), 0);
        a.handle_synced(2);
        assert_eq!(a.durable(), 2);
        let b = a.poll_batch(t0, 0).expect("room for one more");
        assert_eq!((b.first_seq, b.last_seq), (7, 8));
        for last in [4, 6, 8] {
            a.handle_synced(last);
            assert_eq!(a.durable(), last, "durable up to each, in order");
        }
    }

    #[test]
    #[should_panic(expected = "not the oldest in flight")]
    fn a_batch_synced_before_an_older_one_is_refused() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(1, SEGMENT_BYTES_MIN), 1, None);
        a.set_in_flight_max(2);
        a.append(Kind::Forwarded, b"x", t0);
        a.poll_batch(t0, 0).expect("one");
        a.append(Kind::Forwarded, b"y", t0);
        a.poll_batch(t0, 0).expect("two");
        a.handle_synced(2);
    }

    #[test]
    fn a_batch_goes_when_full_or_when_its_first_record_waited_and_is_durable_only_when_synced() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(3, SEGMENT_BYTES_MIN), 1, None);
        assert_eq!(a.append(Kind::RequestAccepted, b"a", t0), 1);
        assert_eq!(a.poll_batch(t0 + 100 * US, 0), None, "not full, not waited");
        assert_eq!(a.poll_timeout(), Some(t0 + 200 * US));
        let b = a.poll_batch(t0 + 200 * US, 5).expect("its first record waited");
        assert_eq!((b.first_seq, b.last_seq), (1, 1));
        assert_eq!(
            b.new_segment,
            Some(SegmentHeader { first_seq: 1, created_unix_ms: 5 }),
            "a new log begins a segment"
        );
        assert_eq!(a.durable(), 0, "written is not durable");
        // Records that come while a batch is in flight form the next one.
        for p in [b"b", b"c", b"d"] {
            a.append(Kind::Forwarded, p, t0 + 300 * US);
        }
        assert_eq!(a.poll_batch(t0 + 300 * US, 0), None, "one batch in flight at a time");
        a.handle_synced(1);
        assert_eq!(a.durable(), 1);
        let b2 = a.poll_batch(t0 + 300 * US, 0).expect("full");
        assert_eq!((b2.first_seq, b2.last_seq, b2.new_segment), (2, 4, None));
        a.handle_synced(4);
        assert_eq!((a.durable(), a.next_seq(), a.buffered()), (4, 5, 0));
    }

    #[test]
    fn only_the_batch_holding_a_record_marked_for_release_is_marked() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(2, SEGMENT_BYTES_MIN), 1, None);
        a.append(Kind::RequestAccepted, b"a", t0);
        a.append(Kind::AnswerSent, b"b", t0);
        a.mark_release();
        let b = a.poll_batch(t0, 0).expect("full");
        assert!(b.release_marked);
        // Records appended while it is in flight are the next batch's, unmarked.
        a.append(Kind::AnswerSent, b"c", t0);
        a.append(Kind::Forwarded, b"d", t0);
        a.handle_synced(b.last_seq);
        let b2 = a.poll_batch(t0, 0).expect("full");
        assert_eq!((b2.first_seq, b2.release_marked), (3, false));
        a.handle_synced(b2.last_seq);
        // A mark comes with the batch it was made in, whichever record of it was marked.
        a.append(Kind::AnswerSent, b"e", t0);
        a.mark_release();
        a.append(Kind::Forwarded, b"f", t0);
        assert!(a.poll_batch(t0, 0).expect("full").release_marked);
    }

    #[test]
    fn batches_make_a_log_that_scans_and_segments_rotate_by_size() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(10, SEGMENT_BYTES_MIN), 1, None);
        let mut segments: Vec<(u64, Vec<u8>)> = Vec::new();
        let payload = vec![7u8; 10_000];
        for i in 0..500u64 {
            a.append(Kind::AnswerSent, &payload, t0);
            if let Some(b) = a.poll_batch(t0, i) {
                if let Some(h) = b.new_segment {
                    segments.push((h.first_seq, h.to_bytes().to_vec()));
                }
                segments.last_mut().expect("a segment").1.extend_from_slice(&b.bytes);
                a.handle_synced(b.last_seq);
            }
        }
        assert_eq!(a.durable(), 500);
        assert!(segments.len() >= 4, "{} segments of about 1 MiB for 5 MB", segments.len());
        for (_, s) in &segments[..segments.len() - 1] {
            assert!(
                s.len() as u64 <= SEGMENT_BYTES_MIN + 11 * 10_100,
                "over by at most a batch: {}",
                s.len()
            );
        }
        let view: Vec<(u64, &[u8])> = segments.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        let log = scan_log(&view).expect("a log the scan accepts");
        assert_eq!((log.records(), log.next_seq, log.cut()), (500, 501, None));
        // After recovery the appender continues the same log.
        let last = segments.last().map_or(0, |(_, b)| b.len() as u64);
        let mut b = Appender::new(policy(10, SEGMENT_BYTES_MIN), log.next_seq, Some(last));
        assert_eq!(b.durable(), 500);
        assert_eq!(b.append(Kind::Checkpoint, b"", t0), 501);
    }

    #[test]
    fn batches_take_turns_with_two_buffers_and_a_bursts_large_one_is_not_kept() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(2, SEGMENT_BYTES_MIN), 1, None);
        a.append(Kind::RequestAccepted, &[1; 3000], t0);
        a.append(Kind::Forwarded, &[2; 3000], t0);
        let b1 = a.poll_batch(t0, 0).expect("full");
        // The next batch begins while the first is written.
        a.append(Kind::AnswerSent, &[3; 3000], t0);
        a.append(Kind::AnswerSent, &[4; 3000], t0);
        a.handle_synced(b1.last_seq);
        let (ptr, cap) = (b1.bytes.as_ptr(), b1.bytes.capacity());
        a.recycle(b1.bytes);
        let b2 = a.poll_batch(t0, 0).expect("full");
        a.append(Kind::AnswerSent, b"x", t0);
        a.append(Kind::AnswerSent, b"y", t0);
        a.handle_synced(b2.last_seq);
        let b3 = a.poll_batch(t0, 0).expect("full");
        assert_eq!((b3.bytes.as_ptr(), b3.bytes.capacity()), (ptr, cap), "the first batch's memory again");
        assert_eq!((b3.first_seq, b3.last_seq), (5, 6));
        let crate::record::Decoded::Record { record, len } = crate::record::decode(&b3.bytes) else {
            panic!("its records, not the old ones")
        };
        assert_eq!((record.seq, record.payload), (5, &b"x"[..]));
        assert_eq!(b3.bytes.len(), 2 * len, "nothing of the first batch left in it");
        a.handle_synced(b3.last_seq);
        a.recycle(b2.bytes);
        a.recycle(Vec::with_capacity(GROUP_BUFFER_KEPT_MAX + 1));
        assert!(a.spare.capacity() <= GROUP_BUFFER_KEPT_MAX);
        assert!(a.spare.capacity() >= 6000, "the larger of the two kept");
    }

    #[test]
    fn a_segment_is_left_early_when_asked_but_never_empty() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(1, SEGMENT_BYTES_MIN), 1, None);
        a.append(Kind::AnswerSent, b"a", t0);
        let b = a.poll_batch(t0, 0).expect("full");
        assert!(b.new_segment.is_some(), "a new log begins one");
        a.handle_synced(b.last_seq);
        a.rotate_early();
        a.append(Kind::AnswerSent, b"b", t0);
        let b = a.poll_batch(t0, 0).expect("full");
        assert_eq!(b.new_segment.map(|h| h.first_seq), Some(2), "asked: the next batch begins one");
        a.handle_synced(b.last_seq);
        a.append(Kind::AnswerSent, b"c", t0);
        let b = a.poll_batch(t0, 0).expect("full");
        assert_eq!(b.new_segment, None, "once");
        a.handle_synced(b.last_seq);
        // Asked before the first record of a segment: that segment is kept, then left.
        let mut fresh = Appender::new(policy(1, SEGMENT_BYTES_MIN), 10, Some(SEGMENT_HEADER_BYTES as u64));
        fresh.rotate_early();
        fresh.append(Kind::AnswerSent, b"d", t0);
        let b = fresh.poll_batch(t0, 0).expect("full");
        assert_eq!(b.new_segment, None, "an empty segment is not left");
        fresh.handle_synced(b.last_seq);
        fresh.append(Kind::AnswerSent, b"e", t0);
        assert!(fresh.poll_batch(t0, 0).expect("full").new_segment.is_some());
    }

    #[test]
    fn a_batch_nobody_waits_for_waits_for_more_and_goes_at_once_when_awaited() {
        let t0 = Instant::now();
        let mut a = Appender::new(policy(100, SEGMENT_BYTES_MIN), 1, None);
        a.append(Kind::LinkEvent, b"a", t0);
        assert_eq!(a.poll_batch_when(t0, 0, false), None, "nobody waits: it waits for more");
        assert_eq!(a.poll_timeout_when(false), Some(t0 + GROUP_WAIT_UNAWAITED));
        let b = a.poll_batch_when(t0 + GROUP_WAIT_UNAWAITED, 0, false).expect("waited its bound");
        a.handle_synced(b.last_seq);
        a.append(Kind::LinkEvent, b"b", t0);
        let policy_wait = t0 + 200 * US;
        assert_eq!(a.poll_batch_when(policy_wait, 0, false), None, "the policy's wait is not enough");
        assert_eq!(a.poll_timeout_when(true), Some(policy_wait));
        let b = a.poll_batch_when(policy_wait, 0, true).expect("awaited: after the policy's wait only");
        assert_eq!(b.first_seq, 2);
    }

    #[test]
    fn policies_are_bounded() {
        assert!(GroupCommit::default().check().is_ok());
        assert!(policy(0, SEGMENT_BYTES_MIN).check().is_err());
        assert!(policy(10, 10).check().is_err());
        assert!(GroupCommit { wait: Duration::from_secs(1), ..GroupCommit::default() }.check().is_err());
    }
}
