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
//!
//! A node of a cluster may run some of the shards: a hop toward a shard another node runs
//! is a node link instead of two lanes ([`remote`]): the same frames over TCP in mutual TLS,
//! read into the engine as they come and written as the engine hands them over. It can
//! break (a node dies, the network parts): what was on its way is lost, and the engine
//! holds every invariant through that, as the simulator's hop breaks show.

use std::{
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use bytes::BytesMut;
use corridor_engine::LinkId;
use crossbeam::queue::ArrayQueue;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::limits::{
    HOP_OWNER_CHECK, HOP_QUEUE_BATCHES, HOP_READ_BYTES, HOP_REDIAL, HOP_REOPEN, HOP_SILENT_MAX,
};

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

/// Every hop between the shards `ids` (of one process): per shard, in `ids`' order, its
/// ends (one per other shard there).
#[must_use]
pub fn mesh_of(ids: &[usize]) -> Vec<Vec<HopEnd>> {
    let mut ends: Vec<Vec<HopEnd>> = ids.iter().map(|_| Vec::new()).collect();
    for a in 0..ids.len() {
        for b in a + 1..ids.len() {
            let (ea, eb) = pair(ids[a], ids[b]);
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
            // Held back at the hop's in-flight limit: nothing more is taken off the lane,
            // which fills and holds the other shard's writer.
            if !crate::switch::hand_over(shared, link, buf, &resume).await {
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

/// What a shard needs to carry its hops to the shards other nodes run: the node links' TLS
/// and who runs which shard now (the lease bucket).
pub(crate) struct NodeLinks {
    pub(crate) tls: crate::relay::RelayTls,
    pub(crate) owners: Arc<corridor_cluster::Owners>,
    /// The hops' warnings, at most one an interval (a peer that keeps failing says so once).
    pub(crate) said: crate::relay::Throttle,
}

/// Runs shard `me`'s hop toward shard `peer`, which another node runs, as link `spec`, for
/// as long as the switch runs. Of the two ends the shard with the lower number dials: it
/// looks the peer shard's owner up in the lease bucket and opens a node link to it (mutual
/// TLS, the owner's certificate checked to be that node's), then carries the hop's frames
/// over it as [`pair`]'s lanes do between threads — the link up at once, no sign-on — and
/// dials again [`HOP_REDIAL`] after it ends. The other end takes it in
/// `switch::relayed` and runs it with [`over_node_link`].
///
/// A hop over the network can lose what was on its way when it breaks, as the simulator's
/// hop breaks do: the engine holds every invariant through that (what crossed is timed out
/// and reversed by the originator's owner, whose records cover it; see
/// `corridor_engine::shards`).
pub(crate) async fn remote(
    shared: Rc<crate::switch::Shared>,
    spec: usize,
    me: u16,
    peer: u16,
    links: Rc<NodeLinks>,
) {
    if me > peer {
        return;
    }
    let route = crate::relay::Route { shard: peer, what: crate::relay::Carried::Hop(me) };
    loop {
        if shared.finished.is_cancelled() {
            return;
        }
        let dialed = async {
            if !crate::switch::accepting(&shared).await {
                return Err("not taking connections yet".to_owned());
            }
            let (node, address) =
                links.owners.of(peer).await.ok_or_else(|| "no node runs it now".to_owned())?;
            let s = crate::relay::connect(&links.tls, &node, address, &route).await?;
            Ok::<_, String>((node, s))
        };
        let dialed = tokio::select! {
            d = dialed => d,
            () = shared.finished.cancelled() => return,
        };
        match dialed {
            Ok((node, s)) => {
                let why = over_node_link(&shared, spec, peer, &node, s, &links).await;
                if let Some(left_out) = links.said.hit() {
                    warn!(shard = me, peer, node, why, left_out, "hop to another node closed: dialing again");
                }
            }
            Err(e) => {
                if let Some(left_out) = links.said.hit() {
                    warn!(
                        shard = me,
                        peer,
                        error = e,
                        left_out,
                        "hop to another node: cannot reach the shard's owner; trying again"
                    );
                }
            }
        }
        tokio::time::sleep(HOP_REDIAL).await;
    }
}

/// Carries the hop toward shard `peer` (run by node `node`) over node link `stream` as a
/// link of spec `spec`, until either end closes it, it is silent for [`HOP_SILENT_MAX`],
/// the lease bucket says another node runs `peer` now, or a newer node link takes the hop
/// over (one at a time: the newest wins, the older being the one a dead or deposed node
/// left). The reason it ended.
pub(crate) async fn over_node_link<S>(
    shared: &Rc<crate::switch::Shared>,
    spec: usize,
    peer: u16,
    node: &str,
    stream: S,
    links: &NodeLinks,
) -> &'static str
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let superseded = tokio_util::sync::CancellationToken::new();
    let generation = shared.node_hop_seq.get() + 1;
    shared.node_hop_seq.set(generation);
    if let Some((_, old)) = shared.node_hops.borrow_mut().insert(spec, (generation, superseded.clone())) {
        old.cancel();
    }
    let Some(link) = shared.input(|e| e.link_up(spec, Instant::now())) else {
        return "no room for a hop link";
    };
    info!(peer, node, %link, "hop to another node up");
    let handles = crate::switch::register(shared, link, spec);
    let crate::switch::Handles { writable, resume, closed, .. } = handles;
    let (mut rd, mut wr) = tokio::io::split(stream);
    shared.flush();
    writable.notify_one();
    let reader = async {
        let mut buf = BytesMut::with_capacity(HOP_READ_BYTES);
        loop {
            if buf.capacity() - buf.len() < HOP_READ_BYTES / 2 {
                buf.reserve(HOP_READ_BYTES);
            }
            match tokio::time::timeout(HOP_SILENT_MAX, rd.read_buf(&mut buf)).await {
                Err(_) => return "silent",
                Ok(Ok(0)) => return "closed by the other node",
                Ok(Err(_)) => return "read failed",
                Ok(Ok(_)) => {}
            }
            if !crate::switch::hand_over(shared, link, &mut buf, &resume).await {
                return "closed by the switch";
            }
        }
    };
    let writer = async {
        loop {
            writable.notified().await;
            let mut wrote = false;
            loop {
                let out = corridor_engine::driver::take_for_hop(&mut shared.engine.borrow_mut(), link);
                let Some(out) = out else { break };
                if wr.write_all(&out).await.is_err() {
                    return "write failed";
                }
                wrote = true;
            }
            if wrote && wr.flush().await.is_err() {
                return "write failed";
            }
        }
    };
    let owner = async {
        loop {
            tokio::time::sleep(HOP_OWNER_CHECK).await;
            // Only another node named counts: a lookup that fails says nothing.
            if links.owners.of(peer).await.is_some_and(|(n, _)| n != node) {
                return "the shard has another owner";
            }
        }
    };
    let why = tokio::select! {
        why = reader => why,
        why = writer => why,
        why = owner => why,
        () = closed.cancelled() => "closed by the switch",
        () = superseded.cancelled() => "a newer node link took the hop over",
        () = shared.finished.cancelled() => "the switch stopped",
    };
    shared.conns.borrow_mut().remove(&link);
    shared.input(|e| e.link_down(link, Instant::now()));
    let mut hops = shared.node_hops.borrow_mut();
    if hops.get(&spec).is_some_and(|(g, _)| *g == generation) {
        hops.remove(&spec);
    }
    why
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
