//! The switch's I/O: listeners, connectors, connections, timers and shutdown.

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
use corridor_engine::{Engine, Event, LinkCounts, LinkId, ReadState, Stats};
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

/// How a link's bytes travel.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TCP with mutual TLS.
    Tls(LinkTls),
    /// QUIC (its own mutual TLS 1.3), native frames on lanes.
    Quic(QuicLink),
}

impl Transport {
    /// Its name, as configurations spell it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls(_) => "tls",
            Self::Quic(_) => "quic",
        }
    }
}

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

/// A link the switch listens on: its peers dial in.
#[derive(Clone, Debug)]
pub struct Listen {
    /// Index of the link in the engine's configuration.
    pub spec: usize,
    /// Its name, for logs.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
    /// Most connections open at once on it (handshakes in progress included).
    pub connections_max: usize,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
}

/// A link the switch dials, and redials with exponential backoff and jitter.
#[derive(Clone, Debug)]
pub struct Dial {
    /// Index of the link in the engine's configuration.
    pub spec: usize,
    /// Its name, for logs.
    pub name: String,
    /// Where to connect.
    pub address: SocketAddr,
    /// Longest wait for a connection to be accepted.
    pub connect_timeout: Duration,
    /// First delay before reconnecting.
    pub backoff_min: Duration,
    /// Longest delay before reconnecting.
    pub backoff_max: Duration,
    /// TCP, TLS or QUIC.
    pub transport: Transport,
}

/// The network side of the configuration.
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    /// Links to listen on.
    pub listens: Vec<Listen>,
    /// Links to dial.
    pub dials: Vec<Dial>,
    /// Longest a graceful shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// The journal's files, when the engine journals.
    pub journal: Option<crate::journal::JournalFiles>,
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
    drained: Arc<(AtomicUsize, usize)>,
    /// The most connections open at once since memory was last given back.
    conns_peak: Cell<usize>,
    /// Memory is about to be given back (see [`Shared::connection_gone`]).
    release_pending: Cell<bool>,
}

/// A link's loop, as a reload sees it.
#[derive(Clone)]
enum LoopCtl {
    Listen(Rc<RefCell<Listen>>, CancellationToken, Option<quinn::Endpoint>),
    Dial(Rc<RefCell<Dial>>, CancellationToken),
}

impl Shared {
    /// After every engine call: wake the writers of links with output, the readers the
    /// engine lets read again, close the links the engine gave up on, and wake the timer if
    /// the next deadline moved earlier.
    pub(crate) fn flush(&self) {
        let mut engine = self.engine.borrow_mut();
        let conns = self.conns.borrow();
        while let Some(link) = engine.poll_dirty() {
            if let Some(c) = conns.get(&link) {
                c.writable.notify_one();
            }
        }
        while let Some(event) = engine.poll_event() {
            match event {
                Event::Close { link, reason } => {
                    // The engine logged why; this only acts on it.
                    debug!(%link, ?reason, "closing connection");
                    if let Some(c) = conns.get(&link) {
                        c.linger.set(reason.lingers());
                        c.closed.cancel();
                    }
                }
                Event::Resume { link } => {
                    if let Some(c) = conns.get(&link) {
                        c.resume.notify_one();
                    }
                }
            }
        }
        if let Some(next) = engine.poll_timeout() {
            if self.timer_at.get().is_none_or(|at| next < at) {
                self.timer.notify_one();
            }
        }
        if engine.journal_waiting() {
            self.journal_wake.notify_one();
        }
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

/// Binds a listening link's address.
async fn bind_listener(l: &Listen) -> io::Result<Listener> {
    let bound = match &l.transport {
        Transport::Quic(QuicLink { side: QuicSide::Server(server), .. }) => {
            endpoint(l.address, Some(server.clone())).map(Listener::Quic)
        }
        Transport::Quic(_) => {
            return Err(io::Error::other(format!(
                "link {}: a listening QUIC link needs a server side",
                l.name
            )))
        }
        Transport::Tcp | Transport::Tls(_) => TcpListener::bind(l.address).await.map(Listener::Tcp),
    };
    let listener = bound.map_err(|e| {
        io::Error::new(e.kind(), format!("link {}: cannot listen on {}: {e}", l.name, l.address))
    })?;
    info!(link = %l.name, address = %listener.local_addr()?, transport = l.transport.name(), "listening");
    Ok(listener)
}

fn spawn_listen(shared: &Rc<Shared>, l: Listen, listener: Listener) {
    let quic = match &listener {
        Listener::Quic(e) => Some(e.clone()),
        Listener::Tcp(_) => None,
    };
    let spec = l.spec;
    let settings = Rc::new(RefCell::new(l));
    let cancel = CancellationToken::new();
    shared.loops.borrow_mut().insert(spec, LoopCtl::Listen(Rc::clone(&settings), cancel.clone(), quic));
    tokio::task::spawn_local(accept_loop(Rc::clone(shared), settings, cancel, listener));
}

fn spawn_dial(shared: &Rc<Shared>, d: Dial) {
    let spec = d.spec;
    let settings = Rc::new(RefCell::new(d));
    let cancel = CancellationToken::new();
    shared.loops.borrow_mut().insert(spec, LoopCtl::Dial(Rc::clone(&settings), cancel.clone()));
    tokio::task::spawn_local(dial_loop(Rc::clone(shared), settings, cancel));
}

/// What a reload does to one configured link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPlan {
    /// Nothing (or only limits the engine applies at once).
    Keep,
    /// New: start listening or dialing.
    Add,
    /// Gone: stop listening or dialing; its connections drain and close.
    Remove,
    /// Changed in a way open connections cannot take: they drain and close, and new ones
    /// use the new settings (a listening address that moved is bound anew).
    Restart,
}

/// A reloaded configuration for a running switch (see `corridor-config`'s reload).
pub struct Reconfigure {
    /// The engine's new configuration (indices stable).
    pub engine: corridor_engine::Config,
    /// Per configured link of it, by index.
    pub plan: Vec<LinkPlan>,
    /// The new configuration's listening links.
    pub listens: Vec<Listen>,
    /// ... and dialed ones.
    pub dials: Vec<Dial>,
    /// The new drain timeout.
    pub drain_timeout: Duration,
    /// The new configuration's SHA-256, journaled.
    pub digest: [u8; 32],
}

/// Shard `k`'s share of `listens` and `dials` (indexed as `base`'s links): the links its
/// participants own, indexed as in its configuration (see `ShardPlan::link_index`).
#[must_use]
pub fn shard_links(
    plan: &corridor_engine::shards::ShardPlan,
    base: &corridor_engine::Config,
    k: usize,
    listens: &[Listen],
    dials: &[Dial],
) -> (Vec<Listen>, Vec<Dial>) {
    let owned = |spec: usize| plan.link_owner(base, spec) == k;
    (
        listens
            .iter()
            .filter(|l| owned(l.spec))
            .map(|l| Listen { spec: plan.link_index(l.spec), ..l.clone() })
            .collect(),
        dials
            .iter()
            .filter(|d| owned(d.spec))
            .map(|d| Dial { spec: plan.link_index(d.spec), ..d.clone() })
            .collect(),
    )
}

/// `r` split into each shard's share: its engine's configuration (with its hops), the
/// listening and dialed links it owns, the hops kept; and the plan it makes. Refused when a
/// participant would move to another shard (see `ShardPlan::extended`).
pub(crate) fn split_reconfigure(
    r: Reconfigure,
    count: usize,
    old: Option<&corridor_engine::shards::ShardPlan>,
) -> Result<(Vec<Reconfigure>, corridor_engine::shards::ShardPlan), ReconfigureError> {
    let plan = match old {
        Some(old) => old.extended(&r.engine).map_err(ReconfigureError::Shards)?,
        None => corridor_engine::shards::ShardPlan::new(count, &r.engine),
    };
    let mut link_plan = Vec::with_capacity(r.plan.len() + count);
    for (i, p) in r.plan.iter().enumerate() {
        if i == plan.hop_link_at {
            link_plan.extend(std::iter::repeat_n(LinkPlan::Keep, count));
        }
        link_plan.push(*p);
    }
    if r.plan.len() <= plan.hop_link_at {
        link_plan.extend(std::iter::repeat_n(LinkPlan::Keep, count));
    }
    let parts = (0..count)
        .map(|k| {
            let (listens, dials) = shard_links(&plan, &r.engine, k, &r.listens, &r.dials);
            Reconfigure {
                engine: plan.config_for(&r.engine, k),
                plan: link_plan.clone(),
                listens,
                dials,
                drain_timeout: r.drain_timeout,
                digest: r.digest,
            }
        })
        .collect();
    Ok((parts, plan))
}

/// Applies `r` on the switch's thread: binds what must be bound first (a failure there
/// changes nothing), then the engine takes the configuration, then the loops follow it.
async fn reconfigure(shared: &Rc<Shared>, r: Reconfigure) -> Result<usize, ReconfigureError> {
    if shared.stop.is_cancelled() {
        return Err(ReconfigureError::Draining);
    }
    let plan = |spec: usize| r.plan.get(spec).copied().unwrap_or(LinkPlan::Keep);
    let current = |spec: usize| shared.loops.borrow().get(&spec).cloned();
    // Bind first: new listening links, and restarted ones whose address moved.
    let mut bound = Vec::new();
    for l in &r.listens {
        let rebind = match (plan(l.spec), current(l.spec)) {
            (LinkPlan::Add, _) => true,
            (LinkPlan::Restart, Some(LoopCtl::Listen(old, _, _))) => old.borrow().address != l.address,
            (LinkPlan::Restart, _) => true,
            _ => false,
        };
        if rebind {
            let listener = bind_listener(l).await.map_err(|error| ReconfigureError::Bind {
                link: l.name.clone(),
                address: l.address,
                error,
            })?;
            bound.push((l.clone(), listener));
        }
    }
    let retire: Vec<usize> =
        (0..r.plan.len()).filter(|&s| matches!(plan(s), LinkPlan::Remove | LinkPlan::Restart)).collect();
    let now = Instant::now();
    let deadline = now + r.drain_timeout;
    {
        let mut engine = shared.engine.borrow_mut();
        engine.reconfigure(r.engine, &retire, deadline, now).map_err(ReconfigureError::Engine)?;
        engine.record_config(r.digest);
    }
    shared.drain_timeout.set(r.drain_timeout);
    // Loops: stop the removed, follow the changed, start the new.
    for &spec in &retire {
        let Some(ctl) = current(spec) else { continue };
        match ctl {
            LoopCtl::Listen(settings, cancel, quic) => {
                let moved = bound.iter().any(|(l, _)| l.spec == spec);
                let new = r.listens.iter().find(|l| l.spec == spec);
                match (plan(spec), new) {
                    (LinkPlan::Restart, Some(new)) if !moved => {
                        if let (Some(e), Transport::Quic(QuicLink { side: QuicSide::Server(server), .. })) =
                            (&quic, &new.transport)
                        {
                            e.set_server_config(Some(server.clone()));
                        }
                        *settings.borrow_mut() = new.clone();
                    }
                    _ => {
                        cancel.cancel();
                        shared.loops.borrow_mut().remove(&spec);
                    }
                }
            }
            LoopCtl::Dial(_, cancel) => {
                cancel.cancel();
                shared.loops.borrow_mut().remove(&spec);
            }
        }
    }
    for (l, listener) in bound {
        spawn_listen(shared, l, listener);
    }
    for d in &r.dials {
        if matches!(plan(d.spec), LinkPlan::Add | LinkPlan::Restart) {
            spawn_dial(shared, d.clone());
        }
    }
    // Limits and timings of loops that stay (connection limits, backoff) follow too.
    for l in &r.listens {
        if plan(l.spec) == LinkPlan::Keep {
            if let Some(LoopCtl::Listen(settings, _, _)) = current(l.spec) {
                *settings.borrow_mut() = l.clone();
            }
        }
    }
    for d in &r.dials {
        if plan(d.spec) == LinkPlan::Keep {
            if let Some(LoopCtl::Dial(settings, _)) = current(d.spec) {
                *settings.borrow_mut() = d.clone();
            }
        }
    }
    let retiring = shared.engine.borrow().retiring();
    shared.flush();
    if retiring > 0 && !shared.retiring.get() {
        shared.retiring.set(true);
        tokio::task::spawn_local(retire_loop(Rc::clone(shared)));
    }
    Ok(retiring)
}

/// Closes retired connections as they drain (see `Engine::poll_retired`).
async fn retire_loop(shared: Rc<Shared>) {
    loop {
        tokio::time::sleep(DRAIN_POLL).await;
        shared.engine.borrow_mut().poll_retired(Instant::now());
        shared.flush();
        if shared.engine.borrow().retiring() == 0 {
            shared.retiring.set(false);
            return;
        }
    }
}

/// A bound switch, ready to run: shard 0 on the caller's runtime, the others each on a
/// thread of their own, bound and waiting for [`Switch::run`].
pub struct Switch {
    first: Shard,
    others: Vec<ShardThread>,
    addrs: Vec<(String, SocketAddr)>,
    handle: Handle,
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
}

/// A shard on a thread of its own: told to run (or dropped: it never does), it runs until
/// the switch's shutdown and reports.
struct ShardThread {
    go: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<io::Result<Report>>,
}

/// What one shard is made of: its engine (with its hops in its configuration, see
/// `corridor_engine::shards`) and the links it listens on and dials.
pub struct ShardParts {
    /// The shard's engine.
    pub engine: Engine,
    /// Its links.
    pub net: NetConfig,
}

impl Switch {
    /// Binds every listening link of a one-shard switch. Must be called inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound, named.
    pub async fn bind(engine: Engine, net: NetConfig) -> io::Result<Self> {
        Self::bind_shards(vec![ShardParts { engine, net }]).await
    }

    /// Binds a switch of `parts.len()` shards: shard 0 here (inside the caller's tokio
    /// runtime), each other on a thread of its own with its own current-thread runtime.
    /// They share one route table and one shutdown, and are joined by hops (`crate::hop`).
    ///
    /// # Errors
    ///
    /// The first address that cannot be bound, named, or a shard's thread that cannot start.
    pub async fn bind_shards(parts: Vec<ShardParts>) -> io::Result<Self> {
        let count = parts.len().clamp(1, crate::limits::SHARDS_MAX);
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else { return Err(io::Error::other("a switch needs a shard")) };
        let routes = first.engine.routes();
        let shutdown = Shutdown::default();
        let drained = Arc::new((AtomicUsize::new(0), count));
        let mut ends = crate::hop::mesh(count).into_iter();
        let mut txs = Vec::with_capacity(count);
        let (shard, tx) =
            Shard::bind(first, ends.next().unwrap_or_default(), Arc::clone(&drained), 0).await?;
        txs.push(tx);
        let mut addrs = shard.local_addrs();
        let mut others = Vec::new();
        for (k, (mut p, hops)) in parts.zip(ends).enumerate().map(|(i, x)| (i + 1, x)) {
            p.engine.share_routes(Arc::clone(&routes));
            let (ready_tx, ready) = std::sync::mpsc::channel();
            let (go, go_rx) = std::sync::mpsc::channel::<()>();
            let (stop, drained) = (shutdown.clone(), Arc::clone(&drained));
            let thread = std::thread::Builder::new().name(format!("corridor-shard-{k}")).spawn(
                move || -> io::Result<Report> {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let bound = rt.block_on(Shard::bind(p, hops, drained, k));
                    let shard = match bound {
                        Ok((shard, tx)) => {
                            let _ = ready_tx.send(Ok((shard.local_addrs(), tx)));
                            shard
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Err(e);
                        }
                    };
                    // Dropped without a word: the switch never runs.
                    if go_rx.recv().is_err() {
                        return Ok(Report::default());
                    }
                    rt.block_on(shard.run(stop))
                },
            )?;
            let (a, tx) = ready
                .recv()
                .map_err(|_| io::Error::other(format!("shard {k} did not start")))?
                .map_err(io::Error::other)?;
            addrs.extend(a);
            txs.push(tx);
            others.push(ShardThread { go, thread });
        }
        let handle = Handle::new(txs, routes, shutdown);
        Ok(Self { first: shard, others, addrs, handle })
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
        let Self { first, others, handle, .. } = self;
        for o in &others {
            let _ = o.go.send(());
        }
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
        for o in others {
            let joined = tokio::task::spawn_blocking(move || o.thread.join()).await;
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
        drained: Arc<(AtomicUsize, usize)>,
        index: usize,
    ) -> io::Result<(Self, tokio::sync::mpsc::Sender<Command>)> {
        let ShardParts { mut engine, net } = parts;
        engine.set_shard(index);
        let mut listeners = Vec::new();
        for l in net.listens {
            let listener = bind_listener(&l).await?;
            listeners.push((l, listener));
        }
        let hops = hop_ends
            .into_iter()
            .filter_map(|end| {
                let spec = engine.config().links.iter().position(|l| {
                    engine.config().participants.get(l.participant).and_then(|p| p.hop) == Some(end.peer)
                });
                if spec.is_none() {
                    warn!(peer = end.peer, "no hop link toward this shard in the configuration");
                }
                Some((spec?, end))
            })
            .collect();
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
        Ok((Self { shared, listeners, dials: net.dials, commands, journal, hops }, tx))
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
        let Self { shared, listeners, dials, commands, journal, hops } = self;
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
                tokio::task::spawn_local(timer_loop(Rc::clone(&shared)));
                tokio::task::spawn_local(command_loop(Rc::clone(&shared), commands));
                if let Some((writer, files)) = journal {
                    tokio::task::spawn_local(control_loop(Rc::clone(&shared), files.dir.clone()));
                    let checkpoints = Checkpoints::new(files);
                    checkpoints.start();
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
            })
            .await;
        if let Some(why) = engine.fatal.borrow_mut().take() {
            return Err(io::Error::other(why));
        }
        let engine = engine.engine.borrow();
        Ok(report(&engine))
    }
}

/// Operators' requests through the journal directory (see [`crate::control`]): each is
/// acted on by the engine (which journals and logs it) and answered.
async fn control_loop(shared: Rc<Shared>, dir: std::path::PathBuf) {
    let mut tick = tokio::time::interval(crate::control::CONTROL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let d = dir.clone();
        let Ok(requests) = tokio::task::spawn_blocking(move || crate::control::pending(&d)).await else {
            continue;
        };
        if requests.is_empty() {
            continue;
        }
        let answers: Vec<(std::path::PathBuf, bool)> = {
            let mut engine = shared.engine.borrow_mut();
            let now = Instant::now();
            requests
                .into_iter()
                .map(|(path, req)| {
                    let done = match req {
                        Some((crate::control::Op::Retry, id)) => engine.saf_retry(id, now),
                        Some((crate::control::Op::Drop, id)) => engine.saf_drop(id, now),
                        None => false,
                    };
                    (path, done)
                })
                .collect()
        };
        shared.flush();
        // Answered once what they did is durable: the journal writer takes it from here,
        // and the answer only says the switch has it.
        let _ = tokio::task::spawn_blocking(move || {
            for (path, done) in answers {
                crate::control::answer(&path, done);
            }
        })
        .await;
    }
}

/// The journal's checkpoints, written on a blocking thread beside the writer (one at a
/// time) every `checkpoint_segments` new segments, and once at start.
struct Checkpoints {
    files: crate::journal::JournalFiles,
    running: Rc<Cell<bool>>,
    segments: Cell<u32>,
    /// The state the last checkpoint wrote, for the next to go on from.
    state: Rc<RefCell<Option<corridor_journal::recovery::Recovery>>>,
}

impl Checkpoints {
    fn new(files: crate::journal::JournalFiles) -> Self {
        Self { files, running: Rc::new(Cell::new(false)), segments: Cell::new(0), state: Rc::default() }
    }

    /// A batch began a new segment: checkpoint when enough have.
    fn segment_begun(&self) {
        let n = self.segments.get() + 1;
        if n >= self.files.checkpoint_segments.max(1) && !self.running.get() {
            self.segments.set(0);
            self.start();
        } else {
            self.segments.set(n);
        }
    }

    fn start(&self) {
        if self.running.replace(true) {
            return;
        }
        let (dir, window, retain) = (self.files.dir.clone(), self.files.outcome_window, self.files.retain);
        let running = Rc::clone(&self.running);
        let kept = Rc::clone(&self.state);
        let state = kept.borrow_mut().take();
        tokio::task::spawn_local(async move {
            let done = tokio::task::spawn_blocking(move || {
                crate::journal::checkpoint_from(&dir, state, window, retain)
            })
            .await;
            running.set(false);
            match done {
                Ok(Ok((r, state))) => {
                    *kept.borrow_mut() = Some(state);
                    if let Some(seq) = r.seq {
                        info!(
                            through = seq,
                            bytes = r.bytes,
                            segments_removed = r.removed.len(),
                            "journal checkpoint"
                        );
                    }
                }
                // Not fatal: recovery reads from the previous checkpoint, and retention waits.
                Ok(Err(e)) => warn!(error = %e, "journal checkpoint failed"),
                Err(e) => warn!(error = %e, "journal checkpoint thread failed"),
            }
        });
    }
}

/// How long a batch waits before it is written again on a full disk.
const NO_SPACE_RETRY: Duration = Duration::from_millis(100);
/// How often a full disk is looked at again (by taking the reserve back).
const NO_SPACE_PROBE: Duration = Duration::from_secs(1);

/// Writes the journal: takes each batch the engine has due, appends and syncs it on a
/// blocking thread, and tells the engine, which then releases what waited for it. A write
/// or sync that fails stops the switch at once (fail-stop: nothing is acknowledged after it,
/// and a restart recovers from what is on disk) — but for a full disk: then the reserve is
/// released and the same batch written again, the engine declines new requests (96) while
/// it goes on journaling what is in flight, and once the reserve can be taken back the
/// switch takes new requests again.
async fn journal_loop(
    shared: Rc<Shared>,
    writer: crate::journal::Writer,
    checkpoints: Checkpoints,
    stop: Shutdown,
) {
    let mut writer = Some(writer);
    // Whether the disk was found full, and when it was last looked at.
    let mut full: Option<Instant> = None;
    loop {
        let batch = loop {
            let (batch, due) = {
                let mut engine = shared.engine.borrow_mut();
                (engine.poll_journal(Instant::now(), crate::journal::unix_ms()), engine.journal_timeout())
            };
            if let Some(b) = batch {
                break Some(b);
            }
            if full.is_some_and(|at| at.elapsed() >= NO_SPACE_PROBE) {
                break None;
            }
            let probe = full.map(|at| at + NO_SPACE_PROBE);
            let wait = async {
                match (due, probe) {
                    (Some(a), Some(b)) => tokio::time::sleep_until(a.min(b).into()).await,
                    (Some(a), None) | (None, Some(a)) => tokio::time::sleep_until(a.into()).await,
                    (None, None) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shared.journal_wake.notified() => {}
                () = wait => {}
            }
        };
        let Some(mut w) = writer.take() else { return };
        let Some(mut batch) = batch else {
            // Idle on a full disk: is there room again?
            let Some(w) = look_again(&shared, &stop, w, &mut full).await else { return };
            writer = Some(w);
            continue;
        };
        let last = batch.last_seq;
        let records = batch.last_seq.saturating_sub(batch.first_seq) + 1;
        let new_segment = batch.new_segment.is_some();
        let began = Instant::now();
        loop {
            let written = tokio::task::spawn_blocking(move || {
                let r = w.write(&batch);
                (w, batch, r)
            })
            .await;
            match written {
                Ok((back, _, Ok(()))) => {
                    w = back;
                    {
                        let mut m = shared.journal_metrics.borrow_mut();
                        m.batch(records, began.elapsed());
                        m.full = false;
                    }
                    shared.engine.borrow_mut().handle_journal_synced(last);
                    shared.flush();
                    if new_segment {
                        checkpoints.segment_begun();
                    }
                    break;
                }
                Ok((mut back, again, Err(crate::journal::JournalError::NoSpace { what }))) => {
                    let released = back.release_reserve();
                    if full.is_none() {
                        tracing::error!(
                            what,
                            reserve_released = released,
                            "journal: the disk is full; new requests are declined 96 while what is in flight is journaled"
                        );
                        shared.engine.borrow_mut().set_storage_full(true);
                        shared.flush();
                    }
                    shared.journal_metrics.borrow_mut().full = true;
                    full = Some(full.unwrap_or_else(Instant::now));
                    if !released {
                        tokio::time::sleep(NO_SPACE_RETRY).await;
                    }
                    (w, batch) = (back, again);
                }
                Ok((_, _, Err(e))) => return fatal(&shared, &stop, &format!("journal: {e}")),
                Err(e) => return fatal(&shared, &stop, &format!("journal writer: {e}")),
            }
        }
        if full.is_some_and(|at| at.elapsed() >= NO_SPACE_PROBE) {
            let Some(back) = look_again(&shared, &stop, w, &mut full).await else { return };
            w = back;
        }
        writer = Some(w);
    }
}

/// Looks at a full disk again by taking the reserve back: with room, the switch takes new
/// requests again (`full` becomes `None`); else `full` is the time of this look. The writer
/// back, or `None` when its thread failed (the switch then stops).
async fn look_again(
    shared: &Shared,
    stop: &Shutdown,
    mut w: crate::journal::Writer,
    full: &mut Option<Instant>,
) -> Option<crate::journal::Writer> {
    let Ok((w, back)) = tokio::task::spawn_blocking(move || {
        let back = w.restore_reserve();
        (w, back)
    })
    .await
    else {
        fatal(shared, stop, "journal writer thread failed");
        return None;
    };
    if back {
        info!("journal: disk space is back (the reserve is held again); new requests are taken");
        shared.engine.borrow_mut().set_storage_full(false);
        shared.flush();
        *full = None;
    } else {
        *full = Some(Instant::now());
    }
    Some(w)
}

/// The journal cannot go on: the switch stops at once, with the reason.
fn fatal(shared: &Shared, stop: &Shutdown, why: &str) {
    tracing::error!(error = why, "journal write failed: stopping");
    shared.journal_metrics.borrow_mut().failed = true;
    *shared.fatal.borrow_mut() = Some(why.to_owned());
    stop.trigger();
}

fn report(engine: &Engine) -> Report {
    let names = engine.config().links.iter().map(|l| l.name.clone());
    Report {
        stats: engine.stats().clone(),
        links: names.zip(engine.link_counts()).collect(),
        requests_pending: engine.requests_pending(),
        reversals_pending: engine.reversals_pending(),
    }
}

fn open_links(engine: &Engine) -> Vec<LinkSnapshot> {
    let names = &engine.config().links;
    engine
        .open_links()
        .into_iter()
        .filter_map(|id| {
            let status = engine.link_status(id)?;
            Some(LinkSnapshot { id, name: names[status.spec].name.clone(), status })
        })
        .collect()
}

fn snapshot(engine: &Engine, shared: &Shared) -> crate::handle::Snapshot {
    let now = Instant::now();
    let config = engine.config();
    crate::handle::Snapshot {
        at: now,
        stats: engine.stats().clone(),
        metrics: engine.metrics().clone(),
        specs: config
            .links
            .iter()
            .zip(engine.link_counts())
            .map(|(l, c)| (l.name.clone(), l.participant, l.dial, c))
            .collect(),
        participants: config.participants.iter().map(|p| p.id.clone()).collect(),
        markets: config.participants.iter().map(|p| p.directory.market).collect(),
        home_market: config.interop.market,
        // A hop is always there; another shard's link counts as configured there.
        configured: (0..config.links.len())
            .map(|i| shared.loops.borrow().contains_key(&i) || config.is_hop(config.links[i].participant))
            .collect(),
        links: open_links(engine),
        requests_pending: engine.requests_pending(),
        saf_depth: engine.reversals_pending(),
        saf_oldest: engine.saf_oldest().map(|t| now.saturating_duration_since(t)),
        exceptions: engine.exceptions_len(),
        draining: engine.draining(),
        journaling: engine.journaling(),
        journal: shared.journal_metrics.borrow().clone(),
    }
}

/// What a switch did, as it stopped (or now, from [`Handle::report`]).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Switch-wide counters.
    pub stats: Stats,
    /// Per configured link, by name.
    pub links: Vec<(String, LinkCounts)>,
    /// Requests forwarded and not yet answered.
    pub requests_pending: usize,
    /// Reversals not yet acknowledged.
    pub reversals_pending: usize,
}

impl Report {
    /// Adds another shard's figures to these.
    pub fn add(&mut self, o: &Self) {
        self.stats.add(&o.stats);
        for (i, (name, c)) in o.links.iter().enumerate() {
            match self.links.get_mut(i) {
                Some((_, mine)) => mine.add(c),
                None => self.links.push((name.clone(), *c)),
            }
        }
        self.requests_pending += o.requests_pending;
        self.reversals_pending += o.reversals_pending;
    }
}

async fn command_loop(shared: Rc<Shared>, mut commands: tokio::sync::mpsc::Receiver<Command>) {
    while let Some(c) = commands.recv().await {
        let c = match c {
            Command::Engine(f) => {
                f(&mut shared.engine.borrow_mut(), Instant::now());
                shared.flush();
                continue;
            }
            Command::Reconfigure(r, tx) => {
                let _ = tx.send(reconfigure(&shared, *r).await);
                continue;
            }
            other => other,
        };
        let engine = shared.engine.borrow();
        match c {
            Command::Report(tx) => {
                let _ = tx.send(report(&engine));
            }
            Command::Snapshot(tx) => {
                let _ = tx.send(Box::new(snapshot(&engine, &shared)));
            }
            Command::Links(tx) => {
                let _ = tx.send(open_links(&engine));
            }
            Command::Engine(_) | Command::Reconfigure(..) => unreachable!("handled above"),
        }
    }
}

async fn drain(shared: &Rc<Shared>, drain_timeout: Duration) {
    info!("shutting down: draining");
    shared.stop.cancel();
    shared.engine.borrow_mut().begin_drain(Instant::now());
    shared.flush();
    let deadline = Instant::now() + drain_timeout;
    while !shared.engine.borrow().is_drained() && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let left = shared.engine.borrow().requests_pending();
    if left > 0 {
        warn!(left, "drain timeout: answering the requests still in flight with 68");
        shared.engine.borrow_mut().expire_requests(Instant::now());
        shared.flush();
    }
    // Let the writers put the last answers on the wire.
    let flush_deadline = Instant::now() + FLUSH_WAIT_MAX;
    loop {
        let busy = {
            let engine = shared.engine.borrow();
            shared.conns.borrow().keys().any(|l| engine.has_output(*l))
        };
        if !busy || Instant::now() >= flush_deadline {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    // What the drain itself recorded (sign-offs, the last answers, an operator's audit of the
    // drain) reaches the disk before the switch stops, for as long as the flush may take.
    while !shared.engine.borrow().journal_settled()
        && shared.fatal.borrow().is_none()
        && Instant::now() < flush_deadline
    {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    // Every shard drained (or the drain's time is up) before the hops close: what comes
    // over them until then is answered.
    let (count, shards) = (&shared.drained.0, shared.drained.1);
    count.fetch_add(1, Ordering::AcqRel);
    let barrier_deadline = deadline.max(Instant::now()) + FLUSH_WAIT_MAX;
    while count.load(Ordering::Acquire) < shards && Instant::now() < barrier_deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    for c in shared.conns.borrow().values() {
        c.closed.cancel();
    }
    // Give the connection tasks a turn to close their sockets.
    tokio::task::yield_now().await;
    {
        let engine = shared.engine.borrow();
        if engine.journaling() {
            let s = engine.stats();
            info!(records = s.journal_records, batches = s.journal_batches, durable = ?engine.journal_durable(), "journal");
            let kept = engine.reversals_pending();
            if kept > 0 {
                warn!(
                    reversals = kept,
                    "reversals not yet acknowledged: kept in the journal for the next start"
                );
            }
        } else if engine.reversals_pending() > 0 {
            warn!(
                reversals = engine.reversals_pending(),
                "reversals not yet acknowledged are lost: the switch has no journal"
            );
        }
    }
    // QUIC connections close with CONNECTION_CLOSE rather than by the peer's idle timeout.
    let endpoints: Vec<quinn::Endpoint> = shared.endpoints.borrow_mut().drain(..).collect();
    for e in &endpoints {
        e.close(VarInt::from_u32(0), b"switch stopping");
    }
    for e in &endpoints {
        let _ = tokio::time::timeout(FLUSH_WAIT_MAX, e.wait_idle()).await;
    }
    info!("stopped");
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
                shared.engine.borrow_mut().handle_timeout(Instant::now());
                shared.flush();
            }
            () = shared.timer.notified() => {}
        }
    }
}

/// Socket options every TCP link gets: no Nagle delay, a bounded kernel send buffer.
fn tune(stream: &TcpStream, link: &str) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(link, error = %e, "cannot set TCP_NODELAY");
    }
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(TCP_SEND_BUFFER_BYTES) {
        debug!(link, error = %e, "cannot set SO_SNDBUF");
    }
}

/// A warning a peer can trigger, printed at most once an interval with the count of those
/// left out since.
#[derive(Default)]
struct LogEvery {
    since: Option<Instant>,
    left_out: u64,
}

impl LogEvery {
    /// Whether to print now: `Some(left out before this one)`.
    fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.since.is_some_and(|at| now.duration_since(at) < REFUSED_LOG_INTERVAL) {
            self.left_out += 1;
            return None;
        }
        self.since = Some(now);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// The throttled warnings of one listening link.
#[derive(Default)]
struct AcceptLog {
    at_limit: LogEvery,
    displaced: LogEvery,
    wrong_participant: LogEvery,
    link_limit: LogEvery,
}

/// What a listener accepted.
enum Incoming {
    Tcp(TcpStream, SocketAddr),
    // Boxed: a QUIC handshake's state is large next to a TCP stream.
    Quic(Box<quinn::Incoming>),
}

impl Listener {
    /// The next connection; `None` once the listener is closed.
    async fn accept(&self) -> Option<io::Result<Incoming>> {
        match self {
            Self::Tcp(l) => Some(l.accept().await.map(|(s, peer)| Incoming::Tcp(s, peer))),
            Self::Quic(e) => e.accept().await.map(|i| Ok(Incoming::Quic(Box::new(i)))),
        }
    }
}

/// The one accept loop, for every transport: the link's connection limit (TLS handshakes in
/// progress count, and on QUIC every connection, whatever its lanes), refusals closed at
/// once with one log line an interval, and each handshake in a task of its own, so a peer
/// that stalls in it holds up nobody else.
async fn accept_loop(
    shared: Rc<Shared>,
    settings: Rc<RefCell<Listen>>,
    cancel: CancellationToken,
    listener: Listener,
) {
    if let Listener::Quic(e) = &listener {
        shared.endpoints.borrow_mut().push(e.clone());
    }
    let held = Rc::new(Cell::new(0usize));
    let log = Rc::new(RefCell::new(AcceptLog::default()));
    loop {
        // At the stop it accepts no more; the connections it has stay up through the drain.
        // A reload that removed the link (or moved its address) stops it the same way.
        // Biased: once stopped or removed, no connection waiting in the backlog is taken.
        let next = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return,
            () = cancel.cancelled() => {
                if let Listener::Quic(e) = &listener {
                    // No new connections; those it has drain and close as retired links.
                    e.set_server_config(None);
                }
                return info!(link = %settings.borrow().name, "listener closed by a reload");
            }
            i = listener.accept() => i,
        };
        let l = settings.borrow().clone();
        let incoming = match next {
            None => return,
            Some(Ok(i)) => i,
            Some(Err(e)) => {
                // Out of descriptors and the like: back off briefly rather than spin.
                warn!(link = %l.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let links = if matches!(incoming, Incoming::Tcp(..)) { shared.open_on(l.spec) } else { 0 };
        if links + held.get() >= l.connections_max {
            // A TCP or TLS connection displaces the oldest one that never signed on or
            // stalled mid-frame (its close is at once, without lingering); QUIC connections
            // carry many lanes and are not displaced.
            let displaced = match incoming {
                Incoming::Tcp(..) => {
                    let d = shared.engine.borrow_mut().displace(l.spec, Instant::now());
                    shared.flush();
                    d
                }
                Incoming::Quic(_) => None,
            };
            if let Some(old) = displaced {
                if let Some(left_out) = log.borrow_mut().displaced.hit() {
                    info!(link = %l.name, max = l.connections_max, displaced = %old, left_out, "link at its connection limit: the oldest connection not signed on or stalled mid-frame made room");
                }
            } else {
                if let Incoming::Quic(i) = incoming {
                    i.refuse();
                }
                if let Some(left_out) = log.borrow_mut().at_limit.hit() {
                    warn!(link = %l.name, max = l.connections_max, left_out, "connection refused: link at its connection limit");
                }
                continue;
            }
        }
        let task = Accepted {
            shared: Rc::clone(&shared),
            held: Rc::clone(&held),
            log: Rc::clone(&log),
            spec: l.spec,
            name: l.name.clone(),
        };
        match (incoming, &l.transport) {
            (Incoming::Tcp(stream, peer), Transport::Tls(tls)) => {
                tune(&stream, &l.name);
                held.set(held.get() + 1);
                tokio::task::spawn_local(task.tls(stream, peer, tls.clone()));
            }
            (Incoming::Tcp(stream, peer), _) => {
                tune(&stream, &l.name);
                task.tcp(stream, peer);
            }
            (Incoming::Quic(incoming), Transport::Quic(quic)) => {
                held.set(held.get() + 1);
                tokio::task::spawn_local(task.quic(*incoming, quic.clone()));
            }
            (Incoming::Quic(incoming), _) => incoming.refuse(),
        }
    }
}

/// A connection a listening link accepted, on its way to becoming links.
struct Accepted {
    shared: Rc<Shared>,
    /// The link's count of connections not yet links (see [`accept_loop`]).
    held: Rc<Cell<usize>>,
    log: Rc<RefCell<AcceptLog>>,
    spec: usize,
    name: String,
}

impl Accepted {
    /// A link for the connection, or `None` (and a throttled warning) at the engine's limit.
    fn link_up(&self) -> Option<LinkId> {
        let up = self.shared.engine.borrow_mut().link_up(self.spec, Instant::now());
        if up.is_none() {
            if let Some(left_out) = self.log.borrow_mut().link_limit.hit() {
                warn!(link = %self.name, left_out, "connection refused: switch at its link limit");
            }
        }
        up
    }

    fn wrong_participant(&self, peer: SocketAddr, e: &LinkError) {
        if let Some(left_out) = self.log.borrow_mut().wrong_participant.hit() {
            warn!(link = %self.name, %peer, error = %e, left_out, "connection refused: wrong participant");
        }
    }

    fn tcp(self, stream: TcpStream, peer: SocketAddr) {
        let Some(link) = self.link_up() else { return };
        debug!(link = %self.name, %peer, id = %link, "connection accepted");
        // Registered before the task runs, so the next accept already counts it.
        let conn = register(&self.shared, link, self.spec);
        let (rd, wr) = stream.into_split();
        tokio::task::spawn_local(connection(self.shared, link, conn, rd, wr, Reports::OnWrite));
    }

    async fn tls(self, stream: TcpStream, peer: SocketAddr, tls: LinkTls) {
        let TlsSide::Accept(acceptor) = &tls.side else {
            unreachable!("a listening TLS link has an acceptor (the configuration builds it so)")
        };
        let result = tokio::time::timeout(TLS_HANDSHAKE_MAX, acceptor.accept(stream)).await;
        self.held.set(self.held.get() - 1);
        let tls_stream = match result {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return debug!(link = %self.name, %peer, error = %e, "TLS handshake refused"),
            Err(_) => return debug!(link = %self.name, %peer, "TLS handshake timed out"),
        };
        let who = match tls.authorize(tls_stream.get_ref().1.peer_certificates()) {
            Ok(who) => who,
            Err(e) => {
                // A certificate of somebody else: close_notify, then the close, before any
                // application data (SPEC §2.3, refusals).
                self.wrong_participant(peer, &e);
                let mut s = tls_stream;
                s.get_mut().1.send_close_notify();
                let _ = s.shutdown().await;
                return;
            }
        };
        let Some(link) = self.link_up() else { return };
        debug!(link = %self.name, %peer, id = %link, certificate = %who, "TLS connection accepted");
        let conn = register(&self.shared, link, self.spec);
        let (rd, wr) = tokio::io::split(tls_stream);
        connection(self.shared, link, conn, rd, wr, Reports::OnFlush).await;
    }

    /// Authenticates a QUIC connection, then runs every lane its peer opens (up to the link's
    /// lane limit, which the transport enforces) as a link of its own.
    async fn quic(self, incoming: quinn::Incoming, quic: QuicLink) {
        let peer = incoming.remote_address();
        let handshake = tokio::time::timeout(TLS_HANDSHAKE_MAX, async { incoming.accept()?.await }).await;
        let conn = match handshake {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.held.set(self.held.get() - 1);
                return debug!(link = %self.name, %peer, error = %e, "QUIC handshake refused");
            }
            Err(_) => {
                self.held.set(self.held.get() - 1);
                return debug!(link = %self.name, %peer, "QUIC handshake timed out");
            }
        };
        match quic.authorize(&conn) {
            Ok(who) => debug!(link = %self.name, %peer, certificate = %who, "QUIC connection accepted"),
            Err(e) => {
                conn.close(VarInt::from_u32(1), b"wrong participant");
                self.held.set(self.held.get() - 1);
                return self.wrong_participant(peer, &e);
            }
        }
        loop {
            let (send, recv) = tokio::select! {
                r = conn.accept_bi() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(link = %self.name, reason = %e, "QUIC connection closed");
                        break;
                    }
                },
                () = self.shared.stop.cancelled() => {
                    // Keep the connection until its lanes are drained (or it ends).
                    tokio::select! {
                        _ = conn.closed() => {}
                        () = lanes_drained(&self.shared, self.spec) => {}
                    }
                    break;
                }
            };
            let Some(link) = self.link_up() else { continue };
            debug!(link = %self.name, id = %link, lane = %send.id(), "QUIC lane open");
            let handles = register(&self.shared, link, self.spec);
            tokio::task::spawn_local(connection(
                Rc::clone(&self.shared),
                link,
                handles,
                recv,
                send,
                Reports::OnWrite,
            ));
        }
        self.held.set(self.held.get() - 1);
    }
}

/// What one connection attempt of a dialed link ended with.
enum Attempt {
    /// It never came up.
    Failed(DialError),
    /// It came up and later ended.
    Ended,
}

async fn dial_loop(shared: Rc<Shared>, settings: Rc<RefCell<Dial>>, cancel: CancellationToken) {
    let d = settings.borrow().clone();
    let mut backoff = Backoff::new(d.backoff_min, d.backoff_max, d.spec as u64);
    // A QUIC link keeps one endpoint for all its attempts.
    let quic = match &d.transport {
        Transport::Quic(q) => {
            let bind: SocketAddr =
                if d.address.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap_or(d.address);
            match endpoint(bind, None) {
                Ok(e) => {
                    shared.endpoints.borrow_mut().push(e.clone());
                    Some((e, q.clone()))
                }
                Err(e) => return warn!(link = %d.name, error = %e, "cannot open a QUIC endpoint"),
            }
        }
        _ => None,
    };
    while !shared.stop.is_cancelled() && !cancel.is_cancelled() {
        // Timings and certificates a reload changed apply from the next attempt.
        let d = settings.borrow().clone();
        let started = Instant::now();
        // Not raced against the stop: a connection that is up must stay up through the drain
        // (sign-off, answers in flight) until the drain closes it; connecting is bounded by
        // the connect timeout and the handshake limit.
        let outcome = match (&d.transport, &quic) {
            (Transport::Quic(_), Some((endpoint, q))) => dial_quic(&shared, &d, endpoint, q).await,
            _ => dial_tcp(&shared, &d).await,
        };
        if let Attempt::Failed(why) = outcome {
            warn!(link = %d.name, address = %d.address, error = %why, "connect failed");
        }
        if backoff.healthy(started.elapsed()) {
            backoff.reset();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = shared.stop.cancelled() => return,
            () = cancel.cancelled() => return,
        }
    }
}

/// One TCP (or TLS) connection of a dialed link, until it ends.
async fn dial_tcp(shared: &Rc<Shared>, d: &Dial) -> Attempt {
    let stream = match tokio::time::timeout(d.connect_timeout, TcpStream::connect(d.address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Attempt::Failed(DialError::Connect(e)),
        Err(_) => return Attempt::Failed(DialError::TimedOut),
    };
    tune(&stream, &d.name);
    match &d.transport {
        Transport::Tls(tls) => {
            let s = match dial_tls(d, tls, stream).await {
                Ok(s) => s,
                Err(e) => return Attempt::Failed(e),
            };
            let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else {
                return Attempt::Failed(DialError::LinkLimit);
            };
            let conn = register(shared, link, d.spec);
            let (rd, wr) = tokio::io::split(s);
            connection(Rc::clone(shared), link, conn, rd, wr, Reports::OnFlush).await;
        }
        _ => {
            let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else {
                return Attempt::Failed(DialError::LinkLimit);
            };
            info!(link = %d.name, address = %d.address, id = %link, "connected");
            let conn = register(shared, link, d.spec);
            let (rd, wr) = stream.into_split();
            connection(Rc::clone(shared), link, conn, rd, wr, Reports::OnWrite).await;
        }
    }
    Attempt::Ended
}

/// One QUIC connection of a dialed link: authenticate the server, open the lanes (each
/// signs on as a link of its own), and wait for the connection to end.
async fn dial_quic(shared: &Rc<Shared>, d: &Dial, endpoint: &quinn::Endpoint, q: &QuicLink) -> Attempt {
    let QuicSide::Client(client, server_name) = &q.side else {
        return Attempt::Failed(DialError::Link(LinkError::Settings(
            "a dialed QUIC link needs a client side".into(),
        )));
    };
    let connecting = match endpoint.connect_with(client.clone(), d.address, server_name) {
        Ok(c) => c,
        Err(e) => return Attempt::Failed(DialError::QuicConnect(e)),
    };
    let conn = match tokio::time::timeout(d.connect_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Attempt::Failed(DialError::QuicConnection(e)),
        Err(_) => return Attempt::Failed(DialError::TimedOut),
    };
    let who = match q.authorize(&conn) {
        Ok(who) => who,
        Err(e) => {
            conn.close(VarInt::from_u32(1), b"wrong participant");
            return Attempt::Failed(e.into());
        }
    };
    info!(link = %d.name, address = %d.address, certificate = %who, lanes = q.settings.lanes, "connected over QUIC");
    for _ in 0..q.settings.lanes {
        let Ok((send, recv)) = conn.open_bi().await else { break };
        let Some(link) = shared.engine.borrow_mut().link_up(d.spec, Instant::now()) else { break };
        let handles = register(shared, link, d.spec);
        tokio::task::spawn_local(connection(Rc::clone(shared), link, handles, recv, send, Reports::OnWrite));
    }
    tokio::select! {
        e = conn.closed() => info!(link = %d.name, reason = %e, "QUIC connection closed"),
        () = lanes_drained(shared, d.spec) => conn.close(VarInt::from_u32(0), b"switch stopping"),
    }
    Attempt::Ended
}

/// Completes once the switch is stopping and no connection (lane) of link `spec` is left:
/// the drain has signed them off and answered what was in flight.
async fn lanes_drained(shared: &Shared, spec: usize) {
    shared.stop.cancelled().await;
    while shared.open_on(spec) > 0 {
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// The TLS handshake of a dialed link, and the check of who answered.
async fn dial_tls(
    d: &Dial,
    tls: &LinkTls,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DialError> {
    let TlsSide::Connect(connector, name) = &tls.side else {
        return Err(LinkError::Settings("a dialed TLS link needs a client side".into()).into());
    };
    let s = match tokio::time::timeout(TLS_HANDSHAKE_MAX, connector.connect(name.clone(), stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(DialError::Handshake(e)),
        Err(_) => return Err(DialError::TimedOut),
    };
    let who = tls.authorize(s.get_ref().1.peer_certificates())?;
    info!(link = %d.name, address = %d.address, certificate = %who, "connected over TLS");
    Ok(s)
}

/// The handles a connection task waits on: woken to write or to read again, told to close
/// (and whether to linger).
pub(crate) struct Handles {
    pub(crate) writable: Rc<Notify>,
    pub(crate) resume: Rc<Notify>,
    pub(crate) closed: CancellationToken,
    pub(crate) linger: Rc<Cell<bool>>,
}

/// Records a new connection of link `spec` with the switch.
pub(crate) fn register(shared: &Shared, link: LinkId, spec: usize) -> Handles {
    let writable = Rc::new(Notify::new());
    let resume = Rc::new(Notify::new());
    let closed = CancellationToken::new();
    let linger = Rc::new(Cell::new(true));
    let open = {
        let mut conns = shared.conns.borrow_mut();
        conns.insert(
            link,
            Conn {
                writable: Rc::clone(&writable),
                resume: Rc::clone(&resume),
                closed: closed.clone(),
                linger: Rc::clone(&linger),
                spec,
            },
        );
        conns.len()
    };
    shared.conns_peak.set(shared.conns_peak.get().max(open));
    Handles { writable, resume, closed, linger }
}

/// When a connection's written bytes count as delivered to the socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reports {
    /// As each write returns (TCP, and QUIC streams, which keep what they accepted until
    /// the peer acknowledges it).
    OnWrite,
    /// Once a flush returns (TLS: a write only reaches the session's buffer).
    OnFlush,
}

/// A close the switch decided: shut the sending side after what was written (FIN), then
/// read and discard what the peer still sends until it closes too, for a bounded time and
/// size. Closing a socket with unread input would reset the connection instead, and a reset
/// makes the peer's kernel drop the answers it had received but not yet read.
async fn linger<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(rd: &mut R, wr: &mut W) {
    let drain = async {
        let _ = wr.shutdown().await;
        let mut sink = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while total < CLOSE_LINGER_BYTES_MAX {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

/// Drives one connection until either side closes it or the engine gives up on it.
async fn connection<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    shared: Rc<Shared>,
    link: LinkId,
    handles: Handles,
    mut rd: R,
    mut wr: W,
    reports: Reports,
) {
    let Handles { writable, resume, closed, linger: lingers } = handles;
    // The engine may already have written to the link (a sign-on): flush it.
    shared.flush();
    writable.notify_one();

    let reader = async {
        let mut buf = BytesMut::new();
        // What the next read asks for: doubles while reads fill it, halves while they come in
        // well under it; an idle link keeps READ_MIN_BYTES.
        let mut want = READ_MIN_BYTES;
        loop {
            buf.reserve(want);
            let room = buf.capacity() - buf.len();
            let n = match rd.read_buf(&mut buf).await {
                Ok(0) => return "peer closed",
                Ok(n) => n,
                Err(_) => return "read error",
            };
            if n >= room {
                want = (want * 2).min(READ_CHUNK_BYTES);
            } else if n < want / 4 {
                want = (want / 2).max(READ_MIN_BYTES);
            }
            let mut state = shared.engine.borrow_mut().handle_read(link, &mut buf, Instant::now());
            shared.flush();
            // Paused: the originator is at its in-flight limit with requests waiting; read
            // nothing more (TCP flow control holds the peer) until the engine says so.
            while state == ReadState::Paused {
                resume.notified().await;
                state = shared.engine.borrow_mut().handle_read(link, &mut buf, Instant::now());
                shared.flush();
            }
            if state == ReadState::Closed {
                return "closed by the switch";
            }
            if buf.is_empty() && buf.capacity() > 4 * want {
                // A burst is over: give its buffer back.
                buf = BytesMut::new();
            }
        }
    };
    let writer = async {
        loop {
            writable.notified().await;
            let mut unreported = 0usize;
            loop {
                let out = shared.engine.borrow_mut().take_output(link);
                let Some(out) = out else { break };
                let mut at = 0;
                while at < out.len() {
                    match wr.write(&out[at..]).await {
                        Ok(0) | Err(_) => return "write error",
                        Ok(n) => {
                            at += n;
                            match reports {
                                Reports::OnWrite => shared.engine.borrow_mut().handle_written(link, n),
                                Reports::OnFlush => unreported += n,
                            }
                        }
                    }
                }
            }
            // Every transport is flushed after each batch: TLS keeps records buffered until
            // then.
            if wr.flush().await.is_err() {
                return "write error";
            }
            if unreported > 0 {
                shared.engine.borrow_mut().handle_written(link, unreported);
            }
        }
    };
    let why = tokio::select! {
        why = reader => why,
        why = writer => why,
        () = closed.cancelled() => "closed by the switch",
    };
    if why == "closed by the switch" && lingers.get() {
        linger(&mut rd, &mut wr).await;
    }
    debug!(%link, why, "connection closed");
    shared.conns.borrow_mut().remove(&link);
    shared.engine.borrow_mut().link_down(link, Instant::now());
    shared.flush();
    shared.connection_gone();
}
