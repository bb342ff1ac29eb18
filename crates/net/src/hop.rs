//! Hops: the hand-off between two shards of one switch.
//!
//! A hop is two lanes, one each way. A lane is a bounded, lock-free queue of write batches
//! (`crossbeam`'s `ArrayQueue`): the sending shard's writer pushes each batch the engine
//! hands it — the buffer itself, not a copy — and wakes the receiving shard once for it;
//! the receiving shard's reader takes every batch queued, hands them to its engine in one
//! read, and tells the writer there is room. Nothing per message: no allocation, no lock,
//! no wake-up. A full lane is back-pressure: the writer waits, its engine's write batch for
//! the hop grows, and at half the engine's bound no new request is routed over it (91), as
//! for any destination that does not keep up; the engine never closes a hop for it.
//!
//! ```text
//!   shard k                                   shard j
//!   engine ─take_output─▶ writer ─push─▶ [lane k→j] ─pop─▶ reader ─handle_read─▶ engine
//!   engine ◀─handle_read─ reader ◀─pop── [lane j→k] ◀─push─ writer ◀─take_output─ engine
//! ```

use std::{
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use bytes::BytesMut;
use corridor_engine::{LinkId, ReadState};
use crossbeam::queue::ArrayQueue;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::limits::{HOP_QUEUE_BATCHES, HOP_REOPEN};

/// One direction of a hop.
struct Lane {
    batches: ArrayQueue<BytesMut>,
    /// Woken once per batch pushed.
    readable: Notify,
    /// Woken when the reader took batches (room again).
    writable: Notify,
    /// The sending end is gone: once empty, the lane is closed.
    writer_gone: AtomicBool,
    /// The receiving end is gone: pushing is pointless.
    reader_gone: AtomicBool,
}

impl Lane {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            batches: ArrayQueue::new(HOP_QUEUE_BATCHES),
            readable: Notify::new(),
            writable: Notify::new(),
            writer_gone: AtomicBool::new(false),
            reader_gone: AtomicBool::new(false),
        })
    }
}

/// One shard's end of a hop: it sends on `out`, receives on `inbound`.
pub struct HopEnd {
    /// The shard at the other end.
    pub peer: usize,
    out: Arc<Lane>,
    inbound: Arc<Lane>,
}

impl std::fmt::Debug for HopEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopEnd").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl Drop for HopEnd {
    fn drop(&mut self) {
        self.out.writer_gone.store(true, Ordering::Release);
        self.out.readable.notify_one();
        self.inbound.reader_gone.store(true, Ordering::Release);
        self.inbound.writable.notify_one();
    }
}

/// A hop between shards `a` and `b`: `a`'s end, then `b`'s.
#[must_use]
pub fn pair(a: usize, b: usize) -> (HopEnd, HopEnd) {
    let (ab, ba) = (Lane::new(), Lane::new());
    (
        HopEnd { peer: b, out: Arc::clone(&ab), inbound: Arc::clone(&ba) },
        HopEnd { peer: a, out: ba, inbound: ab },
    )
}

/// Every hop of a switch of `count` shards: per shard, its ends (one per other shard).
#[must_use]
pub fn mesh(count: usize) -> Vec<Vec<HopEnd>> {
    let mut ends: Vec<Vec<HopEnd>> = (0..count).map(|_| Vec::new()).collect();
    for a in 0..count {
        for b in a + 1..count {
            let (ea, eb) = pair(a, b);
            ends[a].push(ea);
            ends[b].push(eb);
        }
    }
    ends
}

impl HopEnd {
    /// Pushes `batch`, waiting while the lane is full; `false` once the other end is gone.
    async fn send(&self, mut batch: BytesMut) -> bool {
        loop {
            // Registered before the push is tried, so a pop in between is not missed.
            let room = self.out.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.out.batches.push(batch) {
                Ok(()) => {
                    self.out.readable.notify_one();
                    return true;
                }
                Err(back) => batch = back,
            }
            if self.out.reader_gone.load(Ordering::Acquire) {
                return false;
            }
            room.await;
        }
    }

    /// Appends every batch queued to `buf` (the first one taken whole when `buf` is empty);
    /// waits for one when none is. `false` once the other end is gone and nothing is left.
    async fn receive(&self, buf: &mut BytesMut) -> bool {
        loop {
            let ready = self.inbound.readable.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            let mut took = false;
            while let Some(b) = self.inbound.batches.pop() {
                if buf.is_empty() {
                    *buf = b;
                } else {
                    buf.extend_from_slice(&b);
                }
                took = true;
            }
            if took {
                self.inbound.writable.notify_one();
                return true;
            }
            if self.inbound.writer_gone.load(Ordering::Acquire) && self.inbound.batches.is_empty() {
                return false;
            }
            ready.await;
        }
    }
}

/// Runs shard-side end `end` as link `spec` of the engine in `shared` for as long as the
/// switch runs: the link comes up at once (no sign-on: both ends are this process), and
/// should the engine ever close it, it comes up again after [`HOP_REOPEN`], keeping the
/// bytes already received (a frame cut by the close goes on in the next link).
pub(crate) async fn run(shared: Rc<crate::switch::Shared>, spec: usize, end: HopEnd) {
    let mut buf = BytesMut::new();
    loop {
        if shared.stop.is_cancelled() && shared.engine.borrow().is_drained() {
            return;
        }
        let link = shared.input(|e| e.link_up(spec, Instant::now()));
        let Some(link) = link else {
            warn!(peer = end.peer, "no room for a hop link: trying again");
            tokio::time::sleep(HOP_REOPEN).await;
            continue;
        };
        debug!(peer = end.peer, %link, "hop up");
        let handles = crate::switch::register(&shared, link, spec);
        let why = connection(&shared, link, &end, &mut buf, handles).await;
        shared.conns.borrow_mut().remove(&link);
        shared.input(|e| e.link_down(link, Instant::now()));
        if why == "peer gone" || shared.stop.is_cancelled() {
            return debug!(peer = end.peer, why, "hop closed");
        }
        warn!(peer = end.peer, why, "hop closed by the engine: reopened");
        tokio::time::sleep(HOP_REOPEN).await;
    }
}

/// One link over a hop, until the engine closes it or the other end goes.
async fn connection(
    shared: &crate::switch::Shared,
    link: LinkId,
    end: &HopEnd,
    buf: &mut BytesMut,
    handles: crate::switch::Handles,
) -> &'static str {
    let crate::switch::Handles { writable, resume, closed, .. } = handles;
    shared.flush();
    writable.notify_one();
    // Only the reader touches the buffer.
    let reader = async move {
        loop {
            if !end.receive(buf).await {
                return "peer gone";
            }
            let mut state = shared.input(|e| e.handle_read(link, buf, Instant::now()));
            // Held back at the hop's in-flight limit: nothing more is taken off the lane,
            // which fills and holds the other shard's writer.
            while state == ReadState::Paused {
                resume.notified().await;
                state = shared.input(|e| e.handle_read(link, buf, Instant::now()));
            }
            if state == ReadState::Closed {
                return "closed by the switch";
            }
        }
    };
    let writer = async {
        loop {
            writable.notified().await;
            loop {
                let out = corridor_engine::driver::take_for_hop(&mut shared.engine.borrow_mut(), link);
                let Some(out) = out else { break };
                if !end.send(out).await {
                    return "peer gone";
                }
            }
        }
    };
    tokio::select! {
        why = reader => why,
        why = writer => why,
        () = closed.cancelled() => "closed by the switch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_lane_holds_the_writer_until_the_reader_takes() {
        let (a, b) = pair(0, 1);
        for i in 0..HOP_QUEUE_BATCHES {
            assert!(a.send(BytesMut::from(&[i as u8][..])).await);
        }
        // Full: the next send waits.
        let mut more = Box::pin(a.send(BytesMut::from(&b"last"[..])));
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), more.as_mut()).await.is_err());
        let mut buf = BytesMut::new();
        assert!(b.receive(&mut buf).await);
        assert_eq!(buf.len(), HOP_QUEUE_BATCHES, "every batch queued, in one read, in order");
        assert!(buf.iter().enumerate().all(|(i, &x)| x == i as u8));
        assert!(more.await, "room again");
        let mut buf = BytesMut::new();
        assert!(b.receive(&mut buf).await);
        assert_eq!(&buf[..], b"last");
        drop(a);
        assert!(!b.receive(&mut buf).await, "the other end is gone and nothing is left");
    }

    #[test]
    fn batches_cross_threads_in_order_with_a_bounded_lane() {
        let (a, b) = pair(0, 1);
        const BATCHES: u32 = 20_000;
        let sender = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                for i in 0..BATCHES {
                    assert!(a.send(BytesMut::from(&i.to_be_bytes()[..])).await);
                }
            });
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async move {
            let mut all = BytesMut::new();
            let mut buf = BytesMut::new();
            while b.receive(&mut buf).await {
                all.extend_from_slice(&buf);
                buf.clear();
            }
            all
        });
        sender.join().unwrap();
        assert_eq!(got.len(), BATCHES as usize * 4);
        for (i, c) in got.chunks(4).enumerate() {
            assert_eq!(u32::from_be_bytes([c[0], c[1], c[2], c[3]]), i as u32);
        }
    }
}
