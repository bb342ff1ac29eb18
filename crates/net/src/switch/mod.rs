//! The switch's I/O: listeners, connectors, connections, timers and shutdown.
//!
//! # Layout
//!
//! - this module: the shared state of a shard (its engine, connections, loops), the
//!   driver's network side (`Shared::input`, `Shared::flush`), the switch and its shards'
//!   threads, the timer loop;
//! - `config`: transports, listening and dialed links;
//! - `accept`: listening, accepting, handshakes;
//! - `dial`: dialing with backoff;
//! - `connection`: one connection's reader and writer, and the linger of a close;
//! - `journaling`: the journal's loop (the driver's batch cycle) and checkpoints;
//! - `relayed`: connections other nodes of a cluster relay here (`crate::relay`);
//! - `reload`: a reload while running;
//! - `ops`: the control directory, handle commands, the drain, snapshots, the report.

mod accept;
mod config;
mod connection;
mod dial;
mod journaling;
mod ops;
mod relayed;
mod reload;

pub(crate) use self::{
    accept::LogEvery,
    connection::{hand_over, register, Handles},
    relayed::accepting,
    reload::split_reconfigure,
};
#[allow(clippy::wildcard_imports)] // the module's own parts
use self::{accept::*, connection::*, dial::*, journaling::*, ops::*, relayed::*, reload::*};
pub use self::{
    config::{Dial, Listen, NetConfig, OwnerLookup, RelayServe, Transport},
    ops::Report,
    reload::{shard_links, LinkPlan, Reconfigure},
};

use std::{
    cell::{Cell, RefCell},
    future::Future,
    io,
    net::SocketAddr,
    rc::Rc,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::BytesMut;
use corridor_engine::{
    driver::{self, AfterWrite, JournalCycle, JournalStep, Written},
    CloseReason, Engine, LinkCounts, LinkId, ReadState, Stats,
};
use quinn::VarInt;
use rustc_hash::FxHashMap;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::LocalSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    backoff::Backoff,
    error::{DialError, LinkError, ReconfigureError},
    handle::{Command, Handle, LinkSnapshot, Shutdown},
    limits::{
        CLOSE_LINGER, CLOSE_LINGER_BYTES_MAX, DRAIN_POLL, FLUSH_WAIT_MAX, HANDLE_QUEUE_MAX,
        PAUSE_READ_ROUNDS, READ_CHUNK_BYTES, READ_MIN_BYTES, REFUSED_LOG_INTERVAL, RELEASE_DELAY,
        RELEASE_PEAK_MIN, TCP_SEND_BUFFER_BYTES, TIMER_LATE_MAX, TLS_HANDSHAKE_MAX,
    },
    quic::{endpoint, QuicLink, QuicSide},
    tls::{LinkTls, TlsSide},
};

/// What a listening link listens with.
enum Listener {
    Tcp(TcpListener),
    Quic(quinn::Endpoint),
}

impl Listener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr(),
            Self::Quic(e) => e.local_addr(),
        }
    }
}

pub(crate) struct Conn {
    writable: Rc<Notify>,
    resume: Rc<Notify>,
    closed: CancellationToken,
    /// Whether a close by the switch lingers (see [`linger`]).
    linger: Rc<Cell<bool>>,
    spec: usize,
}

pub(crate) struct Shared {
    pub(crate) engine: RefCell<Engine>,
    pub(crate) conns: RefCell<FxHashMap<LinkId, Conn>>,
    /// Every QUIC endpoint, closed once the drain is over.
    endpoints: RefCell<Vec<quinn::Endpoint>>,
    timer: Notify,
    timer_at: Cell<Option<Instant>>,
    pub(crate) stop: CancellationToken,
    /// Woken when records wait for the journal writer.
    journal_wake: Notify,
    /// Why the switch must stop at once (the journal could not be written).
    fatal: RefCell<Option<String>>,
    /// The journal writer's figures.
    journal_metrics: RefCell<crate::handle::JournalMetrics>,
    /// Each configured link's accept or dial loop: its stop and the settings it uses.
    loops: RefCell<FxHashMap<usize, LoopCtl>>,
    /// Longest a graceful shutdown (or a retired connection) waits for requests in flight.
    drain_timeout: Cell<Duration>,
    /// Whether a task closes retired connections as they drain.
    retiring: Cell<bool>,
    /// Shards drained so far, of all the switch's: a shard keeps its hops (and answers what
    /// comes over them) until every shard is drained.
    drained: Arc<(AtomicUsize, AtomicUsize)>,
    /// The most connections open at once since memory was last given back.
    conns_peak: Cell<usize>,
    /// Memory is about to be given back (see [`Shared::connection_gone`]).
    release_pending: Cell<bool>,
    /// Cancelled once the drain is over: the journal loop replicates nothing more, and the
    /// shard's lease is given up.
    pub(crate) finished: CancellationToken,
    /// Whether the journal loop is appending a batch to the cluster's stream now.
    appending: Cell<bool>,
    /// Told once the shard's lease is given up (or giving it up failed).
    lease_released: Notify,
    /// The shards started with this one: its listening links take connections once they
    /// all are ready — a node of a cluster's once their journals are replicated (a partner's
    /// connection waits in the backlog meanwhile, and its requests are read once they can be
    /// served, not declined 96).
    start: Arc<StartGate>,
    /// Whether this shard said it is ready.
    start_said: Cell<bool>,
    /// A node of a cluster whose shards other nodes run too: how this shard reaches them
    /// (`crate::hop::remote`).
    pub(crate) node_links: Option<Rc<crate::hop::NodeLinks>>,
    /// Per hop link spec, the node link carrying it now (its generation, and its stop for
    /// a newer one to take over).
    pub(crate) node_hops: RefCell<FxHashMap<usize, (u64, CancellationToken)>>,
    /// The last node link generation given out.
    pub(crate) node_hop_seq: Cell<u64>,
}

/// The network layer's side of the driver: each item the engine raises wakes the task that
/// acts on it.
struct Wake<'a> {
    shared: &'a Shared,
    conns: &'a FxHashMap<LinkId, Conn>,
}

impl driver::Io for Wake<'_> {
    fn writable(&mut self, _: &mut Engine, link: LinkId) {
        if let Some(c) = self.conns.get(&link) {
            c.writable.notify_one();
        }
    }

    fn close(&mut self, _: &mut Engine, link: LinkId, reason: CloseReason) {
        // The engine logged why; this only acts on it.
        debug!(%link, ?reason, "closing connection");
        if let Some(c) = self.conns.get(&link) {
            c.linger.set(reason.lingers());
            c.closed.cancel();
        }
    }

    fn resume(&mut self, _: &mut Engine, link: LinkId) {
        if let Some(c) = self.conns.get(&link) {
            c.resume.notify_one();
        }
    }

    fn deadline(&mut self, at: Option<Instant>) {
        if let Some(next) = at {
            if self.shared.timer_at.get().is_none_or(|t| next < t) {
                self.shared.timer.notify_one();
            }
        }
    }

    fn journal_due(&mut self) {
        self.shared.journal_wake.notify_one();
    }
}

/// A link's loop, as a reload sees it.
#[derive(Clone)]
enum LoopCtl {
    Listen(Rc<RefCell<Listen>>, CancellationToken, Option<quinn::Endpoint>),
    Dial(Rc<RefCell<Dial>>, CancellationToken),
}

impl Shared {
    /// This shard is ready to take partner connections (once; see [`StartGate`]).
    pub(crate) fn start_ready(&self) {
        if !self.start_said.replace(true) {
            self.start.ready();
        }
    }

    /// Updates this shard's replication figures (a node of a cluster has one entry).
    fn replica(&self, f: impl FnOnce(&mut crate::handle::ReplicaMetrics)) {
        if let Some(m) = self.journal_metrics.borrow_mut().replicas.first_mut() {
            f(m);
        }
    }

    /// Gives the engine an input through `f`, then flushes: every engine call that can
    /// raise output, events or a new deadline goes through here, so none is left unpolled.
    /// (`take_output` and `handle_written`, the writer's side, raise nothing.)
    pub(crate) fn input<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        let t = f(&mut self.engine.borrow_mut());
        self.flush();
        t
    }

    /// Polls the engine in the driver's order (`corridor_engine::driver::flush`): wakes the
    /// writers of links with output, closes the links the engine gave up on, wakes the
    /// readers it lets read again, the timer if the next deadline moved earlier, and the
    /// journal's loop if records wait.
    pub(crate) fn flush(&self) {
        let mut engine = self.engine.borrow_mut();
        let conns = self.conns.borrow();
        driver::flush(&mut engine, &mut Wake { shared: self, conns: &conns });
    }

    /// A connection is gone. Once at most half of the most open at once since the last time
    /// are left (and that peak was a flood, [`RELEASE_PEAK_MIN`] or more), the allocator is
    /// asked to give the memory they freed back, [`RELEASE_DELAY`] later (the rest of the
    /// burst closes meanwhile; its buffers are dropped as its tasks end).
    fn connection_gone(self: &Rc<Self>) {
        let open = self.conns.borrow().len();
        let peak = self.conns_peak.get();
        if peak < RELEASE_PEAK_MIN || open * 2 > peak || self.release_pending.replace(true) {
            return;
        }
        let shared = Rc::clone(self);
        tokio::task::spawn_local(async move {
            tokio::time::sleep(RELEASE_DELAY).await;
            crate::memory::release();
            let open = shared.conns.borrow().len();
            debug!(peak, open, "memory given back after a burst of connections closed");
            shared.conns_peak.set(open);
            shared.release_pending.set(false);
        });
    }

    /// Connections of link `spec`, but those closing at once (not lingering): they are gone
    /// in a moment, and a connection that displaced one takes its place.
    fn open_on(&self, spec: usize) -> usize {
        self.conns
            .borrow()
            .values()
            .filter(|c| c.spec == spec && (!c.closed.is_cancelled() || c.linger.get()))
            .count()
    }
}

/// A bound switch, ready to run: shard 0 on the caller's runtime, the others each on a
/// thread of their own, bound and waiting for [`Switch::run`].
pub struct Switch {
    first: Shard,
    others: Vec<ShardThread>,
    addrs: Vec<(String, SocketAddr)>,
    handle: Handle,
    /// A node of a cluster: its node link listener (see `crate::relay`).
    relay: Option<(TcpListener, crate::relay::RelayTls)>,
    /// The shards started while it runs (joined at the end of its run).
    spawner: Arc<Spawner>,
}

/// What starting a shard into a running switch takes — a node of a cluster taking over a
/// shard whose node died (`Handle::add_shard`): the switch's shutdown, route table, drain
/// count and node links, and the threads started, joined when the switch's run ends.
pub(crate) struct Spawner {
    shutdown: Shutdown,
    routes: Arc<arc_swap::ArcSwap<corridor_engine::RouteTable>>,
    drained: Arc<(AtomicUsize, AtomicUsize)>,
    nodes: Option<(crate::relay::RelayTls, OwnerLookup)>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<io::Result<Report>>>>,
}

impl Handle {
    /// Starts shard `parts` in the running switch, on a thread of its own — a node of a
    /// cluster that took the shard over from a node that died (its lease taken, its journal
    /// recovered from the stream, see `corridor_ops`). It reaches every other shard over
    /// node links, this node's own too (their hops find it through the lease bucket, as they
    /// would any owner). The addresses its listening links are bound to.
    ///
    /// # Errors
    ///
    /// The switch runs that shard already or cannot start one, or an address cannot be
    /// bound.
    pub async fn add_shard(&self, parts: ShardParts) -> io::Result<Vec<(String, SocketAddr)>> {
        let Some(sp) = self.spawner.clone() else {
            return Err(io::Error::other("not a switch that takes shards"));
        };
        let k = parts.shard;
        if self.shard_ids().contains(&k) {
            return Err(io::Error::other(format!("shard {k} runs here already")));
        }
        if sp.nodes.is_none() {
            return Err(io::Error::other(format!("shard {k}: no node links to reach the other shards")));
        }
        let at = Placement { ids: vec![k], nodes: sp.nodes.clone(), start: StartGate::new(1) };
        sp.drained.1.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut p = parts;
        p.engine.share_routes(Arc::clone(&sp.routes));
        // Counted among the shards the drain waits for from before it can run; not if it never
        // does.
        let started =
            match shard_thread(p, Vec::new(), Arc::clone(&sp.drained), at, sp.shutdown.clone(), None) {
                Ok((thread, ready)) => match tokio::task::spawn_blocking(move || ready.recv()).await {
                    Ok(Ok(Ok(bound))) => Ok((thread, bound)),
                    Ok(Ok(Err(why))) => Err(io::Error::other(why)),
                    _ => Err(io::Error::other(format!("shard {k} did not start"))),
                },
                Err(e) => Err(e),
            };
        let (thread, (addrs, tx)) = started.inspect_err(|_| {
            sp.drained.1.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        })?;
        self.add_queue(k, tx);
        if let Ok(mut t) = sp.threads.lock() {
            t.push(thread);
        }
        Ok(addrs)
    }
}

/// What a shard's thread says once it is bound: its listening links' addresses and its
/// command queue, or why it could not bind.
type Bound = Result<(Vec<(String, SocketAddr)>, tokio::sync::mpsc::Sender<Command>), String>;

/// Starts shard `p` on a thread of its own, with its own current-thread runtime: bound (its
/// in-process hops `hops`, where `at` says it sits), said so on the receiver returned, then
/// run until the switch's `stop` — once `go` says so (dropped without a word: it never
/// runs), or at once without one.
fn shard_thread(
    p: ShardParts,
    hops: Vec<crate::hop::HopEnd>,
    drained: Arc<(AtomicUsize, AtomicUsize)>,
    at: Placement,
    stop: Shutdown,
    go: Option<std::sync::mpsc::Receiver<()>>,
) -> io::Result<(std::thread::JoinHandle<io::Result<Report>>, std::sync::mpsc::Receiver<Bound>)> {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new().name(format!("corridor-shard-{}", p.shard)).spawn(
        move || -> io::Result<Report> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let shard = match rt.block_on(Shard::bind(p, hops, drained, &at)) {
                Ok((shard, tx)) => {
                    let _ = ready_tx.send(Ok((shard.local_addrs(), tx)));
                    shard
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            if go.is_some_and(|go| go.recv().is_err()) {
                return Ok(Report::default());
            }
            rt.block_on(shard.run(stop))
        },
    )?;
    Ok((thread, ready))
}

/// One shard, bound.
struct Shard {
    shared: Rc<Shared>,
    listeners: Vec<(Listen, Listener)>,
    dials: Vec<Dial>,
    commands: tokio::sync::mpsc::Receiver<Command>,
    journal: Option<(crate::journal::Writer, crate::journal::JournalFiles)>,
    /// Its ends of the hops to the other shards, with the engine's link for each.
    hops: Vec<(usize, crate::hop::HopEnd)>,
    /// The hops to the shards other nodes run: the engine's link for each, and the shard.
    remote: Vec<(usize, usize)>,
}

/// A shard on a thread of its own: told to run (or dropped: it never does), it runs until
/// the switch's shutdown and reports.
struct ShardThread {
    go: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<io::Result<Report>>,
}

/// What one shard is made of: its number, its engine (with its hops in its configuration,
/// see `corridor_engine::shards`) and the links it listens on and dials.
pub struct ShardParts {
    /// Which shard it is (of all the switch's, on every node).
    pub shard: usize,
    /// The shard's engine.
    pub engine: Engine,
    /// Its links.
    pub net: NetConfig,
}

/// Where a shard sits: the shards this process runs, and how the others are reached.
#[derive(Clone)]
struct Placement {
    /// The shards this process runs, in order.
    ids: Vec<usize>,
    /// A node of a cluster: the node links' TLS, and where to learn which node runs which
    /// shard.
    nodes: Option<(crate::relay::RelayTls, crate::switch::OwnerLookup)>,
    /// The shards started together, taking connections together (see [`StartGate`]).
    start: Arc<StartGate>,
}

/// The shards a node starts with take partner connections together, once every one of them
/// is ready — each, in a cluster, once its journal is replicated and its first append of
/// this start is in. A shard that took connections while another still caught its journal
/// up would forward its partners' requests to that one, which declines them (96) until it
/// is ready. A shard started later (a takeover into a running node) waits for itself only.
pub(crate) struct StartGate {
    /// Shards not ready yet.
    waiting: AtomicUsize,
    /// Told when the last is.
    open: Notify,
}

impl StartGate {
    fn new(shards: usize) -> Arc<Self> {
        Arc::new(Self { waiting: AtomicUsize::new(shards), open: Notify::new() })
    }

    /// One of the shards is ready (each says so once).
    pub(crate) fn ready(&self) {
        if self.waiting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.open.notify_waiters();
        }
    }

    /// Once every shard is ready.
    pub(crate) async fn opened(&self) {
        if self.waiting.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return;
        }
        loop {
            let told = self.open.notified();
            tokio::pin!(told);
            told.as_mut().enable();
            if self.waiting.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            told.await;
        }
    }
}

impl Switch {
    /// Binds every listening link of a one-shard switch. Must be called inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound, named.
    pub async fn bind(engine: Engine, net: NetConfig) -> io::Result<Self> {
        Self::bind_shards(vec![ShardParts { shard: 0, engine, net }]).await
    }

    /// Binds a switch of the shards `parts` are (in order): the first here (inside the
    /// caller's tokio runtime), each other on a thread of its own with its own
    /// current-thread runtime. They share one route table and one shutdown, and are joined
    /// by hops (`crate::hop`); a node of a cluster that runs some of the shards reaches the
    /// others' over node links to the nodes that run them (`crate::hop::remote`).
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound, named, or a shard's thread that cannot start.
    pub async fn bind_shards(parts: Vec<ShardParts>) -> io::Result<Self> {
        let ids: Vec<usize> = parts.iter().map(|p| p.shard).collect();
        if ids.len() > crate::limits::SHARDS_MAX || ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(io::Error::other(format!(
                "shards {ids:?}: at most {} shards, each once, in order",
                crate::limits::SHARDS_MAX
            )));
        }
        let count = ids.len().max(1);
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else { return Err(io::Error::other("a switch needs a shard")) };
        let routes = first.engine.routes();
        let shutdown = Shutdown::default();
        let drained = Arc::new((AtomicUsize::new(0), AtomicUsize::new(count)));
        let mut ends = crate::hop::mesh_of(&ids).into_iter();
        let mut txs = Vec::with_capacity(count);
        let relay = match first.net.relay.clone() {
            Some(r) => {
                let l = TcpListener::bind(r.address).await.map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cluster: cannot take relayed connections on {}: {e}", r.address),
                    )
                })?;
                info!(address = %l.local_addr()?, "taking connections other nodes relay");
                Some((l, r.tls))
            }
            None => None,
        };
        // The shards other nodes run are reached over node links (`crate::hop::remote`).
        let nodes = first.net.relay.clone().and_then(|r| Some((r.tls, r.owners?)));
        let at = Placement { ids: ids.clone(), nodes: nodes.clone(), start: StartGate::new(count) };
        let (shard, tx) =
            Shard::bind(first, ends.next().unwrap_or_default(), Arc::clone(&drained), &at).await?;
        txs.push(tx);
        let mut addrs = shard.local_addrs();
        let mut others = Vec::new();
        for (mut p, hops) in parts.zip(ends) {
            let k = p.shard;
            p.engine.share_routes(Arc::clone(&routes));
            let (go, go_rx) = std::sync::mpsc::channel::<()>();
            let (thread, ready) =
                shard_thread(p, hops, Arc::clone(&drained), at.clone(), shutdown.clone(), Some(go_rx))?;
            let (a, tx) = ready
                .recv()
                .map_err(|_| io::Error::other(format!("shard {k} did not start")))?
                .map_err(io::Error::other)?;
            addrs.extend(a);
            txs.push(tx);
            others.push(ShardThread { go, thread });
        }
        let mut handle = Handle::new(txs, ids, Arc::clone(&routes), shutdown.clone());
        let spawner =
            Arc::new(Spawner { shutdown, routes, drained, nodes, threads: std::sync::Mutex::default() });
        handle.spawner = Some(Arc::clone(&spawner));
        Ok(Self { first: shard, others, addrs, handle, relay, spawner })
    }

    /// The address each listening link is bound to, by link name (port 0 becomes the real
    /// port).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.addrs.clone()
    }

    /// A handle to the switch once it runs: snapshots, the route table, shutdown. It may be
    /// sent to other threads.
    #[must_use]
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs the switch until `shutdown` completes or the handle's [`Shutdown`] is
    /// triggered, then drains: stops accepting and reconnecting, signs off, declines new
    /// requests, waits up to the drain timeout for the requests in flight, flushes, and
    /// closes every connection. Every shard drains at once; each keeps its hops until all
    /// are drained.
    ///
    /// # Errors
    ///
    /// Never for network trouble (links come and go); only if the runtime fails.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<Report> {
        let Self { first, others, handle, relay, spawner, .. } = self;
        for o in &others {
            let _ = o.go.send(());
        }
        let relaying = relay.map(|(l, tls)| tokio::spawn(relay_loop(l, tls, handle.clone())));
        let stop = handle.shutdown();
        let trigger = stop.clone();
        let mut report = first
            .run_until(
                async move {
                    shutdown.await;
                    trigger.trigger();
                },
                stop.clone(),
            )
            .await;
        // The others drain on the same trigger (if shard 0 stopped for another reason).
        stop.trigger();
        if let Some(r) = relaying {
            r.abort();
        }
        // The shards it started with, then those taken over while it ran.
        let added = spawner.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for thread in others.into_iter().map(|o| o.thread).chain(added) {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            let r = match joined {
                Ok(Ok(r)) => r,
                Ok(Err(_)) | Err(_) => Err(io::Error::other("a shard's thread panicked")),
            };
            report = match (report, r) {
                (Ok(mut a), Ok(b)) => {
                    a.add(&b);
                    Ok(a)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        report
    }
}

impl Shard {
    async fn bind(
        parts: ShardParts,
        hop_ends: Vec<crate::hop::HopEnd>,
        drained: Arc<(AtomicUsize, AtomicUsize)>,
        at: &Placement,
    ) -> io::Result<(Self, tokio::sync::mpsc::Sender<Command>)> {
        let ShardParts { shard: index, mut engine, net } = parts;
        engine.set_shard(index);
        let mut listeners = Vec::new();
        for l in net.listens {
            let listener = bind_listener(&l).await?;
            listeners.push((l, listener));
        }
        let hops = hop_ends
            .into_iter()
            .filter_map(|end| {
                let spec = hop_spec(&engine, end.peer);
                if spec.is_none() {
                    warn!(peer = end.peer, "no hop link toward this shard in the configuration");
                }
                Some((spec?, end))
            })
            .collect();
        // The hops toward the shards other nodes run.
        let remote: Vec<(usize, usize)> =
            hop_links(&engine).filter(|&(_, peer)| peer != index && !at.ids.contains(&peer)).collect();
        let node_links = match (&at.nodes, remote.is_empty()) {
            (_, true) => None,
            (Some((tls, o)), false) => Some(Rc::new(crate::hop::NodeLinks {
                tls: tls.clone(),
                owners: o.owners(),
                said: crate::relay::Throttle::default(),
            })),
            (None, false) => {
                return Err(io::Error::other(format!(
                    "shard {index}: shards {:?} run on other nodes, and this node has no node links to reach them",
                    remote.iter().map(|r| r.1).collect::<Vec<_>>()
                )))
            }
        };
        let (tx, commands) = tokio::sync::mpsc::channel(HANDLE_QUEUE_MAX);
        let shared = Rc::new(Shared {
            engine: RefCell::new(engine),
            conns: RefCell::new(FxHashMap::default()),
            endpoints: RefCell::new(Vec::new()),
            timer: Notify::new(),
            timer_at: Cell::new(None),
            stop: CancellationToken::new(),
            journal_wake: Notify::new(),
            fatal: RefCell::new(None),
            journal_metrics: RefCell::default(),
            loops: RefCell::default(),
            drain_timeout: Cell::new(net.drain_timeout),
            retiring: Cell::new(false),
            drained,
            conns_peak: Cell::new(0),
            release_pending: Cell::new(false),
            finished: CancellationToken::new(),
            appending: Cell::new(false),
            lease_released: Notify::new(),
            start: Arc::clone(&at.start),
            start_said: Cell::new(false),
            node_links,
            node_hops: RefCell::default(),
            node_hop_seq: Cell::new(0),
        });
        let journal = match net.journal {
            Some(files) => {
                Some((
                    {
                        let (w, reserved) = crate::journal::Writer::open(&files.dir, files.last_segment)
                            .map_err(|e| io::Error::other(format!("journal: {e}")))?
                            .with_fault(files.fault.clone())
                            .preallocating(files.preallocate)
                            .with_reserve(files.reserve_bytes);
                        if !reserved && files.reserve_bytes > 0 {
                            warn!(bytes = files.reserve_bytes, "journal: no room for the reserve; a full disk will decline new requests at once");
                        }
                        w
                    },
                    files,
                ))
            }
            None => None,
        };
        Ok((Self { shared, listeners, dials: net.dials, commands, journal, hops, remote }, tx))
    }

    fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.iter().filter_map(|(l, s)| Some((l.name.clone(), s.local_addr().ok()?))).collect()
    }

    /// Runs a shard other than the first until the switch's `stop`.
    async fn run(self, stop: Shutdown) -> io::Result<Report> {
        self.run_until(std::future::pending(), stop).await
    }

    async fn run_until(self, shutdown: impl Future<Output = ()>, stop: Shutdown) -> io::Result<Report> {
        let local = LocalSet::new();
        let Self { shared, listeners, dials, commands, journal, hops, remote } = self;
        let engine = Rc::clone(&shared);
        local
            .run_until(async move {
                for (l, listener) in listeners {
                    spawn_listen(&shared, l, listener);
                }
                for d in dials {
                    spawn_dial(&shared, d);
                }
                for (spec, end) in hops {
                    tokio::task::spawn_local(crate::hop::run(Rc::clone(&shared), spec, end));
                }
                if let Some(links) = &shared.node_links {
                    let me = shared.engine.borrow().shard();
                    for (spec, peer) in remote {
                        let (me, peer) =
                            (u16::try_from(me).unwrap_or(u16::MAX), u16::try_from(peer).unwrap_or(u16::MAX));
                        tokio::task::spawn_local(crate::hop::remote(
                            Rc::clone(&shared),
                            spec,
                            me,
                            peer,
                            Rc::clone(links),
                        ));
                    }
                }
                if let Some((_, files)) = &journal {
                    // A node of a cluster is not replicating until its journal loop says so:
                    // said before any snapshot can be asked for.
                    if let Some(r) = &files.replicate {
                        shared.journal_metrics.borrow_mut().replicas =
                            vec![crate::handle::ReplicaMetrics::new(r.shard)];
                    }
                }
                // Partner connections wait for every shard started with this one: a node of
                // a cluster's shard is ready once its journal loop says so, any other at once
                // (`StartGate`).
                if journal.as_ref().is_none_or(|(_, files)| files.replicate.is_none()) {
                    shared.start_ready();
                }
                tokio::task::spawn_local(timer_loop(Rc::clone(&shared)));
                tokio::task::spawn_local(command_loop(Rc::clone(&shared), commands));
                if let Some((writer, files)) = journal {
                    tokio::task::spawn_local(control_loop(Rc::clone(&shared), files.dir.clone()));
                    let checkpoints = Checkpoints::new(files);
                    // Polite: one that overruns its turn has the next catch up.
                    checkpoints.start(journaling::Pace::Polite);
                    tokio::task::spawn_local(journal_loop(
                        Rc::clone(&shared),
                        writer,
                        checkpoints,
                        stop.clone(),
                    ));
                }
                tokio::select! {
                    () = shutdown => {}
                    () = stop.wait() => {}
                }
                drain(&shared, shared.drain_timeout.get()).await;
                shared.finished.cancel();
                let leased = shared.journal_metrics.borrow().replicas.iter().any(|m| m.lease.is_some());
                if leased {
                    let released = shared.lease_released.notified();
                    let wait = 2 * crate::limits::LEASE_RELEASE_WAIT_MAX;
                    let _ = tokio::time::timeout(wait, released).await;
                }
            })
            .await;
        if let Some(why) = engine.fatal.borrow_mut().take() {
            return Err(io::Error::other(why));
        }
        let engine = engine.engine.borrow();
        Ok(report(&engine))
    }
}

/// The hop links of `engine`'s configuration: each one's spec and the shard it reaches.
fn hop_links(engine: &Engine) -> impl Iterator<Item = (usize, usize)> + '_ {
    let c = engine.config();
    c.links.iter().enumerate().filter_map(|(spec, l)| Some((spec, c.participants.get(l.participant)?.hop?)))
}

/// The spec of `engine`'s hop link toward shard `peer`.
pub(crate) fn hop_spec(engine: &Engine, peer: usize) -> Option<usize> {
    hop_links(engine).find_map(|(spec, p)| (p == peer).then_some(spec))
}

async fn timer_loop(shared: Rc<Shared>) {
    loop {
        let next = shared.engine.borrow().poll_timeout();
        shared.timer_at.set(next);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                // Late: the switch was paused, and the answers that came meanwhile wait in
                // its sockets. Timers and readers woke together; let the readers go first
                // (a yield waits for the I/O driver), then judge what is still unanswered.
                if next.is_some_and(|at| Instant::now().saturating_duration_since(at) > TIMER_LATE_MAX) {
                    for _ in 0..PAUSE_READ_ROUNDS {
                        tokio::task::yield_now().await;
                    }
                }
                shared.input(|e| e.handle_timeout(Instant::now()));
            }
            () = shared.timer.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards on threads of their own each say they are ready: none is let in before the
    /// last says so, and every one is then, whether it began waiting before or after.
    #[test]
    fn the_start_gate_opens_once_every_shard_is_ready_and_not_before() {
        let gate = StartGate::new(3);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let early = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(gate.opened());
            })
        };
        gate.ready();
        gate.ready();
        let waited =
            rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), gate.opened()).await });
        assert!(waited.is_err(), "open with a shard not ready");
        assert!(!early.is_finished(), "a waiter let in with a shard not ready");
        gate.ready();
        early.join().unwrap();
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), gate.opened()).await })
            .expect("open to a late waiter");
    }
}
