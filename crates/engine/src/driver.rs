//! The driver: what runs around an engine, without a runtime. The network layer runs it
//! under tokio, the simulator under its event queue, so the code that decides the order of
//! things after each input and the journal's batch cycle is the same in production and in
//! simulation (as TigerBeetle's simulator runs the real replica over stubbed I/O).
//!
//! # After every input: [`flush`]
//!
//! Every call that gives the engine an input (`handle_read`, `handle_timeout`, `link_up`,
//! `link_down`, `handle_journal_synced`, an operator's or a reload's call) is followed by
//! one [`flush`], which polls the engine in this order (the writer's own calls,
//! `take_output` and `handle_written`, raise nothing to poll):
//!
//! 1. [`Engine::poll_dirty`]: every link with output is handed to its writer ([`Io::writable`]);
//! 2. [`Engine::poll_event`]: links to close ([`Io::close`]), readers to resume
//!    ([`Io::resume`]) — after the writes, so what a closing link was given is taken first;
//! 3. [`Engine::poll_timeout`]: the next deadline ([`Io::deadline`]);
//! 4. [`Engine::journal_waiting`]: records wait for a batch ([`Io::journal_due`]).
//!
//! A driver does not call the engine's inputs itself: it calls them through something that
//! flushes after each (the network layer's `Shared::input`, the simulator's `Switch`).
//!
//! # A hop: [`take_for_hop`]
//!
//! A hop's writer hands its lane each batch as it is taken, counted written at once (on the
//! lane is delivered); its reader hands the engine what came over the lane like any
//! reader. The lane itself is the runtime's: a lock-free queue between threads in the
//! network layer, an event after a seeded delay in the simulator.
//!
//! # The journal's batch cycle: [`JournalCycle`]
//!
//! Batches polled from the engine, written and synced by the I/O side, their results given
//! back in the order they were handed out — one at a time, or up to as many as the engine
//! allows (`Engine::set_journal_batches_in_flight`: a cluster's I/O side writes each to disk
//! at once, one after another, and has several in the stream at once). A full disk
//! (ENOSPC) is not fatal: the batch being written is written again (at once when a reserve
//! was released for it, else after [`NO_SPACE_RETRY`]), new requests are declined 96
//! meanwhile (`Engine::set_storage_full`), no further batch is handed out until those out
//! are done, and every [`NO_SPACE_PROBE`] — with none out — the driver asks the I/O side to
//! look at the disk again; new requests are taken again only once a look finds room. Any
//! other failure stops the switch.

use std::time::{Duration, Instant};

use corridor_journal::SyncBatch;

use crate::{
    engine::{Engine, Event},
    link::{CloseReason, LinkId},
};

/// A full disk: how long before the same batch is written again when nothing was released
/// for it.
pub const NO_SPACE_RETRY: Duration = Duration::from_millis(100);

/// A full disk: how often it is looked at again (is there room to take new requests?).
pub const NO_SPACE_PROBE: Duration = Duration::from_secs(1);

/// What the engine asks of the I/O around it. Each method is given the engine, so an
/// implementation that moves bytes itself (the simulator's hop) may take them at once.
pub trait Io {
    /// `link` has output to write.
    fn writable(&mut self, engine: &mut Engine, link: LinkId);
    /// Close `link` (lingering or not, as `reason` says).
    fn close(&mut self, engine: &mut Engine, link: LinkId, reason: CloseReason);
    /// `link`'s reader, paused, may read again.
    fn resume(&mut self, engine: &mut Engine, link: LinkId);
    /// The engine's next deadline.
    fn deadline(&mut self, at: Option<Instant>);
    /// Journal records wait for a batch.
    fn journal_due(&mut self);
}

/// Polls `engine` after an input, in the order the module docs give, handing each item to
/// `io`.
pub fn flush(engine: &mut Engine, io: &mut impl Io) {
    while let Some(link) = engine.poll_dirty() {
        io.writable(engine, link);
    }
    while let Some(event) = engine.poll_event() {
        match event {
            Event::Close { link, reason } => io.close(engine, link, reason),
            Event::Resume { link } => io.resume(engine, link),
        }
    }
    io.deadline(engine.poll_timeout());
    if engine.journal_waiting() {
        io.journal_due();
    }
}

/// Takes hop `link`'s output for its lane, counted written at once: on the lane is
/// delivered (the other shard is this process, and what it is handed it reads in order), so
/// no approval on a hop waits for a socket's word. A hop's writer calls this in place of
/// `take_output` and `handle_written`.
pub fn take_for_hop(engine: &mut Engine, link: LinkId) -> Option<bytes::BytesMut> {
    let out = engine.take_output(link)?;
    engine.handle_written(link, out.len());
    Some(out)
}

/// What the I/O side should do next for the journal.
#[derive(Debug)]
pub enum JournalStep {
    /// Append and sync this batch, then report with [`JournalCycle::written`].
    Write(SyncBatch),
    /// Look at the full disk again (take the reserve back), then report with
    /// [`JournalCycle::looked`].
    LookAgain,
}

/// How a batch's write ended, as the I/O side saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Appended and synced.
    Synced,
    /// The disk is full; `released`: a reserve was given up so the batch may fit now.
    NoSpace {
        /// Whether space was released for it.
        released: bool,
    },
}

/// After a write: what the I/O side does with the batch it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWrite {
    /// It is done: poll the cycle again.
    Done,
    /// Write the same batch again at this time.
    Again(Instant),
}

/// One shard's journal batch cycle. See the module docs.
#[derive(Debug, Default)]
pub struct JournalCycle {
    /// The last records of the batches out (handed out, not yet reported synced), oldest
    /// first.
    writing: std::collections::VecDeque<u64>,
    /// When the disk was found full, or last looked at while full.
    full: Option<Instant>,
}

impl JournalCycle {
    /// The next step at `now`: a batch to write (while the engine allows another out, and —
    /// the disk full — none is), or a look at a full disk that is due (none out); `None`
    /// until [`JournalCycle::poll_timeout`], a new record or a batch's result.
    pub fn poll(&mut self, engine: &mut Engine, now: Instant, unix_ms: u64) -> Option<JournalStep> {
        if self.full.is_some() && !self.writing.is_empty() {
            return None;
        }
        // A look that is due goes before the next batch: under steady load a batch is
        // always due, and new requests would stay declined after the disk has room again.
        if self.probe_due(now) {
            return Some(JournalStep::LookAgain);
        }
        let batch = engine.poll_journal(now, unix_ms)?;
        self.writing.push_back(batch.last_seq);
        Some(JournalStep::Write(batch))
    }

    /// When the cycle has something to do on time: the open batch's deadline (the engine
    /// says none while no other batch may go out), or the next look at a full disk.
    #[must_use]
    pub fn poll_timeout(&self, engine: &Engine) -> Option<Instant> {
        if self.full.is_some() && !self.writing.is_empty() {
            return None;
        }
        let probe = self.full.map(|at| at + NO_SPACE_PROBE);
        match (engine.journal_timeout(), probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a batch is out.
    #[must_use]
    pub fn writing(&self) -> bool {
        !self.writing.is_empty()
    }

    /// How many batches are out.
    #[must_use]
    pub fn out(&self) -> usize {
        self.writing.len()
    }

    /// Whether the disk was found full and has not been found with room since.
    #[must_use]
    pub fn full(&self) -> bool {
        self.full.is_some()
    }

    fn probe_due(&self, now: Instant) -> bool {
        self.full.is_some_and(|at| now.saturating_duration_since(at) >= NO_SPACE_PROBE)
    }

    /// A batch's write ended as `result` says — synced: the oldest out (reported in the
    /// order handed out); the disk full: the one being written, the newest — and the caller
    /// then flushes.
    pub fn written(&mut self, engine: &mut Engine, result: Written, now: Instant) -> AfterWrite {
        assert!(!self.writing.is_empty(), "a batch's result comes while it is out");
        match result {
            Written::Synced => {
                let last = self.writing.pop_front().unwrap_or_else(|| unreachable!("checked above"));
                engine.handle_journal_synced(last);
                AfterWrite::Done
            }
            Written::NoSpace { released } => {
                if self.full.is_none() {
                    tracing::error!(
                        reserve_released = released,
                        "journal: the disk is full; new requests are declined 96 while what is in flight is journaled"
                    );
                    engine.set_storage_full(true);
                    self.full = Some(now);
                }
                AfterWrite::Again(if released { now } else { now + NO_SPACE_RETRY })
            }
        }
    }

    /// A look at the full disk found room (`room`) or not; the caller then flushes.
    pub fn looked(&mut self, engine: &mut Engine, room: bool, now: Instant) {
        if room {
            tracing::info!("journal: disk space is back (the reserve is held again); new requests are taken");
            engine.set_storage_full(false);
            self.full = None;
        } else {
            self.full = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, journal::Journal, Settings};
    use corridor_journal::{request::PanKey, GroupCommit};
    use corridor_wire::WallClock;

    fn engine(now: Instant) -> Engine {
        let config = Config {
            participants: Vec::new(),
            links: Vec::new(),
            routes: crate::RouteTable::default(),
            settings: Settings::default(),
            interop: Default::default(),
        };
        let key = PanKey::new(1, &[7; 32]).expect("a key");
        let journal = Journal::new(GroupCommit::default(), 1, None, key, [1; 8]);
        Engine::with_journal(config, WallClock { at: now, unix_secs: 1_700_000_000 }, journal)
    }

    #[test]
    fn a_full_disk_declines_until_a_look_finds_room_and_the_batch_is_written_meanwhile() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut c = JournalCycle::default();
        e.record_config([1; 32]);
        // Nothing waits for a configuration record: its batch waits for more first.
        assert!(c.poll(&mut e, t0, 0).is_none());
        let t0 = t0 + corridor_journal::limits::GROUP_WAIT_UNAWAITED;
        let Some(JournalStep::Write(b)) = c.poll(&mut e, t0, 0) else { panic!("a batch is due") };
        assert!(c.poll(&mut e, t0, 0).is_none(), "one batch at a time");
        assert_eq!(
            c.written(&mut e, Written::NoSpace { released: false }, t0),
            AfterWrite::Again(t0 + NO_SPACE_RETRY)
        );
        assert!(c.full());
        assert_eq!(c.written(&mut e, Written::NoSpace { released: true }, t0), AfterWrite::Again(t0));
        assert_eq!(c.written(&mut e, Written::Synced, t0), AfterWrite::Done);
        assert_eq!(e.journal_durable(), Some(b.last_seq));
        assert!(c.full(), "a write that fits after a release is not room again");
        assert!(c.poll(&mut e, t0, 0).is_none(), "no look before the probe interval");
        assert_eq!(c.poll_timeout(&e), Some(t0 + NO_SPACE_PROBE));
        let later = t0 + NO_SPACE_PROBE + corridor_journal::limits::GROUP_WAIT_UNAWAITED;
        e.record_config([2; 32]);
        assert!(
            matches!(c.poll(&mut e, later, 0), Some(JournalStep::LookAgain)),
            "a due look goes before a due batch"
        );
        c.looked(&mut e, false, later);
        assert!(matches!(c.poll(&mut e, later, 0), Some(JournalStep::Write(_))), "then the batch");
        assert_eq!(c.written(&mut e, Written::Synced, later), AfterWrite::Done);
        assert!(c.poll(&mut e, later, 0).is_none(), "the next look is a probe interval later");
        c.looked(&mut e, true, later + NO_SPACE_PROBE);
        assert!(!c.full() && c.poll_timeout(&e).is_none());
    }

    #[test]
    fn several_batches_go_out_and_are_synced_in_order_and_a_full_disk_lets_none_more_out() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.set_journal_batches_in_flight(3);
        let mut c = JournalCycle::default();
        let mut out = Vec::new();
        for i in 0..4u8 {
            e.record_config([i; 32]);
            match c.poll(&mut e, t0 + corridor_journal::limits::GROUP_WAIT_UNAWAITED, 0) {
                Some(JournalStep::Write(b)) => out.push(b.last_seq),
                other => assert!(i == 3 && other.is_none(), "batch {i}: {other:?}"),
            }
        }
        assert_eq!((out.len(), c.out()), (3, 3), "three out at once, the fourth waits");
        assert_eq!(c.poll_timeout(&e), None, "nothing is due on time while none may go");
        // The newest does not fit on the disk: none more goes out until those out are done.
        assert_eq!(
            c.written(&mut e, Written::NoSpace { released: false }, t0),
            AfterWrite::Again(t0 + NO_SPACE_RETRY)
        );
        assert_eq!(c.written(&mut e, Written::Synced, t0), AfterWrite::Done);
        assert_eq!(e.journal_durable(), Some(out[0]), "the oldest is durable first");
        let later = t0 + NO_SPACE_PROBE + corridor_journal::limits::GROUP_WAIT_UNAWAITED;
        assert!(c.poll(&mut e, later, 0).is_none(), "neither a batch nor a look while two are out");
        assert_eq!(c.poll_timeout(&e), None);
        for &last in &out[1..] {
            assert_eq!(c.written(&mut e, Written::Synced, later), AfterWrite::Done);
            assert_eq!(e.journal_durable(), Some(last));
        }
        assert!(matches!(c.poll(&mut e, later, 0), Some(JournalStep::LookAgain)), "none out: the look");
        c.looked(&mut e, true, later);
        assert!(matches!(c.poll(&mut e, later, 0), Some(JournalStep::Write(_))), "then the waiting batch");
    }
}
