//! A handle to a running switch, for whatever watches or steers it from outside its thread
//! (the admin API, metrics, tests): snapshots of its counters and links, its route table,
//! and shutdown.

use std::sync::Arc;

use arc_swap::ArcSwap;
use corridor_engine::{LinkId, LinkStatus, RouteTable};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::switch::Report;

/// A closure run on the switch's thread with its engine and the time now.
pub(crate) type EngineCall = Box<dyn FnOnce(&mut corridor_engine::Engine, std::time::Instant) + Send>;

/// A request to the switch's thread.
pub(crate) enum Command {
    Report(oneshot::Sender<Report>),
    Links(oneshot::Sender<Vec<LinkSnapshot>>),
    Snapshot(oneshot::Sender<Box<Snapshot>>),
    /// Runs on the switch's thread with the engine (an operator's call); the switch flushes
    /// after it.
    Engine(EngineCall),
    Reconfigure(
        Box<crate::switch::Reconfigure>,
        oneshot::Sender<Result<usize, crate::error::ReconfigureError>>,
    ),
    /// A connection another node relays here, for a link this shard runs.
    Relayed(Box<(crate::relay::Relayed, crate::relay::RelayTls)>),
}

/// Upper bounds of the journal batch-size buckets, in records.
pub const BATCH_BOUNDS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000];

/// The journal writer's figures.
#[derive(Clone, Debug, Default)]
pub struct JournalMetrics {
    /// Time to write and sync one batch.
    pub sync: corridor_engine::metrics::Histogram,
    /// Records per batch, in the buckets of [`BATCH_BOUNDS`] (the last: above them).
    pub batch_records: [u64; BATCH_BOUNDS.len() + 1],
    /// Sum of the records of every batch.
    pub batch_records_sum: u64,
    /// Whether the disk is full now.
    pub full: bool,
    /// Whether writing failed for good (the switch stops).
    pub failed: bool,
    /// In a cluster: each shard's replication and lease (one a shard once added up; empty
    /// on a single node).
    pub replicas: Vec<ReplicaMetrics>,
}

/// One shard's replication in the cluster's stream and its lease, as its journal loop
/// sees them.
#[derive(Clone, Debug)]
pub struct ReplicaMetrics {
    /// The shard.
    pub shard: u16,
    /// Whether its journal is replicated now (the last batch acknowledged, nothing waiting
    /// on an unavailable stream).
    pub replicating: bool,
    /// The last journal record synced on the local disk.
    pub synced: u64,
    /// The last journal record the stream acknowledged: `synced - acknowledged` records
    /// wait for the stream (and what they gate waits with them).
    pub acknowledged: u64,
    /// The shard's subject's last stream sequence, as this node wrote it.
    pub subject_seq: u64,
    /// Time from a batch's local sync to the stream's acknowledgement of it: the
    /// replication's own latency.
    pub append: corridor_engine::metrics::Histogram,
    /// Appends the stream did not acknowledge at the first try (asked again).
    pub append_retries: u64,
    /// The lease this node holds on the shard, as its keeper last said.
    pub lease: Option<corridor_cluster::Held>,
    /// The last record the newest checkpoint this node appended to the subject covers (0:
    /// none yet): a takeover reads from there.
    pub checkpoint: u64,
    /// Checkpoints this node appended to the subject.
    pub checkpoints: u64,
    /// Messages purged from the subject (those before a checkpoint that retention no longer
    /// keeps).
    pub purged: u64,
    /// Release marks this node published for the shard (`ShardLog::mark_released`: before
    /// a batch relaying an approval is released, and the first on each connection).
    pub marks: u64,
    /// The last record the newest of them marks released (0: none yet).
    pub marked: u64,
    /// Time to write a mark to the node's connection to NATS (it stands between the
    /// stream's acknowledgement and the release of what the batch gates).
    pub mark: corridor_engine::metrics::Histogram,
    /// Marks published again because the bucket did not acknowledge them (counted by the
    /// tasks that do it, idle shard or not).
    pub marks_again: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ReplicaMetrics {
    pub(crate) fn new(shard: u16) -> Self {
        Self {
            shard,
            replicating: false,
            synced: 0,
            acknowledged: 0,
            subject_seq: 0,
            append: corridor_engine::metrics::Histogram::default(),
            append_retries: 0,
            lease: None,
            checkpoint: 0,
            checkpoints: 0,
            purged: 0,
            marks: 0,
            marked: 0,
            mark: corridor_engine::metrics::Histogram::default(),
            marks_again: std::sync::Arc::default(),
        }
    }
}

impl JournalMetrics {
    /// Adds another shard's writer's figures.
    pub fn add(&mut self, o: &Self) {
        self.sync.add(&o.sync);
        for (a, b) in self.batch_records.iter_mut().zip(o.batch_records) {
            *a += b;
        }
        self.batch_records_sum += o.batch_records_sum;
        self.full |= o.full;
        self.failed |= o.failed;
        self.replicas.extend(o.replicas.iter().cloned());
    }

    /// In a cluster: whether every shard's journal is replicated now (its stream reached,
    /// what the local journal held appended, the last batch acknowledged); `None` on a
    /// single node.
    #[must_use]
    pub fn replicating(&self) -> Option<bool> {
        (!self.replicas.is_empty()).then(|| self.replicas.iter().all(|m| m.replicating))
    }

    pub(crate) fn batch(&mut self, records: u64, took: std::time::Duration) {
        self.sync.record(took);
        let i = BATCH_BOUNDS.partition_point(|&b| b < records);
        self.batch_records[i] += 1;
        self.batch_records_sum += records;
    }
}

/// Everything a scrape or the monitoring page shows, read at once on the switch's thread.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When it was taken (the switch's monotonic clock).
    pub at: std::time::Instant,
    /// Switch-wide counters.
    pub stats: corridor_engine::Stats,
    /// Histograms and answers by code.
    pub metrics: corridor_engine::metrics::Metrics,
    /// Per configured link: its name, participant index, whether the switch dials it,
    /// and its counts.
    pub specs: Vec<(String, usize, bool, corridor_engine::LinkCounts)>,
    /// Per configured link: whether the configuration in force has it (a link a reload
    /// removed keeps its place, and its counts, but is no longer listened on or dialed).
    pub configured: Vec<bool>,
    /// Participant ids, by index.
    pub participants: Vec<String>,
    /// Participants' markets (the directory's), by index.
    pub markets: Vec<Option<[u8; 2]>>,
    /// The switch's own market.
    pub home_market: Option<[u8; 2]>,
    /// Every open connection.
    pub links: Vec<LinkSnapshot>,
    /// Requests forwarded and not yet answered.
    pub requests_pending: usize,
    /// Store-and-forward entries not yet acknowledged, and the age of the oldest.
    pub saf_depth: usize,
    /// Age of the oldest store-and-forward entry.
    pub saf_oldest: Option<std::time::Duration>,
    /// Entries in the exception queue.
    pub exceptions: usize,
    /// Whether the switch is draining.
    pub draining: bool,
    /// Whether the switch journals.
    pub journaling: bool,
    /// The journal writer's figures.
    pub journal: JournalMetrics,
}

/// One open link, as the engine sees it.
#[derive(Clone, Debug)]
pub struct LinkSnapshot {
    /// The connection's id.
    pub id: LinkId,
    /// Its configured link's name.
    pub name: String,
    /// Its state.
    pub status: LinkStatus,
}

impl LinkSnapshot {
    /// Whether the switch is closing it (it drains first).
    #[must_use]
    pub fn draining(&self) -> bool {
        self.status.closing
    }
}

/// Triggers a graceful shutdown (drain, then stop), from anywhere, once.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether it was started.
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes once it was started.
    pub async fn wait(&self) {
        self.0.cancelled().await;
    }
}

/// A shard's number and its command queue.
type ShardQueue = (usize, mpsc::Sender<Command>);

/// A handle to a switch: cheap to clone, `Send`, usable from any thread. With several
/// shards it asks each and sums what they say.
#[derive(Clone)]
pub struct Handle {
    /// Per shard this process runs, which shard it is and its command queue (in the order
    /// they started; a node of a cluster may add one it takes over while it runs).
    queues: Arc<std::sync::RwLock<Vec<ShardQueue>>>,
    /// How a shard taken over at run time is started (a switch bound by `Switch`).
    pub(crate) spawner: Option<Arc<crate::switch::Spawner>>,
    routes: Arc<ArcSwap<RouteTable>>,
    shutdown: Shutdown,
    /// Which shard owns which participant now (a reload may not move one).
    plan: Arc<std::sync::Mutex<Option<corridor_engine::shards::ShardPlan>>>,
}

impl Handle {
    /// Hands a relayed connection to the shard its header names; `false` when there is no
    /// such shard or its queue is full (the connection is closed).
    pub(crate) fn relay_to_shard(&self, r: crate::relay::Relayed, tls: crate::relay::RelayTls) -> bool {
        let shard = usize::from(r.route.shard);
        let Some(tx) = self.txs_with_ids().into_iter().find(|(k, _)| *k == shard).map(|x| x.1) else {
            return false;
        };
        tx.try_send(Command::Relayed(Box::new((r, tls)))).is_ok()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("shards", &self.shard_ids())
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(
        tx: Vec<mpsc::Sender<Command>>,
        ids: Vec<usize>,
        routes: Arc<ArcSwap<RouteTable>>,
        shutdown: Shutdown,
    ) -> Self {
        let queues = Arc::new(std::sync::RwLock::new(ids.into_iter().zip(tx).collect()));
        Self { queues, spawner: None, routes, shutdown, plan: Arc::default() }
    }

    /// Every shard's queue now, with its number.
    fn txs_with_ids(&self) -> Vec<ShardQueue> {
        self.queues.read().map(|q| q.clone()).unwrap_or_default()
    }

    /// Every shard's queue now.
    fn txs(&self) -> Vec<mpsc::Sender<Command>> {
        self.txs_with_ids().into_iter().map(|(_, tx)| tx).collect()
    }

    /// A shard started while the switch runs: its queue joins the others.
    pub(crate) fn add_queue(&self, shard: usize, tx: mpsc::Sender<Command>) {
        if let Ok(mut q) = self.queues.write() {
            q.push((shard, tx));
        }
    }

    /// The number of shards this process runs.
    #[must_use]
    pub fn shards(&self) -> usize {
        self.txs().len()
    }

    /// The number of shards the switch has, on every node (this process may run some).
    #[must_use]
    pub fn shard_count(&self) -> usize {
        let planned = self.plan.lock().ok().and_then(|p| p.as_ref().map(|p| p.count));
        planned.unwrap_or_else(|| self.shards())
    }

    /// Which shards this process runs, in the order they started (a node of a cluster may
    /// run some, and take more over while it runs).
    #[must_use]
    pub fn shard_ids(&self) -> Vec<usize> {
        self.txs_with_ids().into_iter().map(|(k, _)| k).collect()
    }

    /// Records the shard plan the switch was started with (for reloads to keep).
    pub fn set_plan(&self, plan: corridor_engine::shards::ShardPlan) {
        if let Ok(mut p) = self.plan.lock() {
            *p = Some(plan);
        }
    }

    /// Asks every shard with `ask` and collects the answers; `None` once any has stopped.
    async fn ask_all<T>(&self, ask: impl Fn(oneshot::Sender<T>) -> Command) -> Option<Vec<T>> {
        let txs = self.txs();
        let mut rxs = Vec::with_capacity(txs.len());
        for tx in &txs {
            let (t, r) = oneshot::channel();
            tx.send(ask(t)).await.ok()?;
            rxs.push(r);
        }
        let mut out = Vec::with_capacity(rxs.len());
        for r in rxs {
            out.push(r.await.ok()?);
        }
        Some(out)
    }

    /// The switch's counters now; `None` once it has stopped.
    pub async fn report(&self) -> Option<Report> {
        let all = self.ask_all(Command::Report).await?;
        Some(merge_reports(all))
    }

    /// Every open link now; `None` once the switch has stopped.
    pub async fn links(&self) -> Option<Vec<LinkSnapshot>> {
        Some(self.ask_all(Command::Links).await?.into_iter().flatten().collect())
    }

    /// Counters, histograms, links and queues, read at once; `None` once the switch has
    /// stopped. With several shards, each is read in turn and the figures summed.
    pub async fn snapshot(&self) -> Option<Box<Snapshot>> {
        let mut all = self.ask_all(Command::Snapshot).await?.into_iter();
        let mut first = all.next()?;
        for s in all {
            first.add(&s);
        }
        Some(first)
    }

    /// Runs `f` on shard 0's thread with its engine and the time now, and returns what it
    /// returns; `None` once the switch has stopped. For operators' calls that need one
    /// engine (the audit trail) or read what every shard has alike (the configuration):
    /// what `f` makes the engine write goes out as any other output does.
    pub async fn with_engine<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut corridor_engine::Engine, std::time::Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |e: &mut corridor_engine::Engine, now| {
            let _ = tx.send(f(e, now));
        });
        self.txs().first()?.send(Command::Engine(run)).await.ok()?;
        rx.await.ok()
    }

    /// Runs `f` on every shard's thread with its engine (shard 0 first) and returns what each
    /// returned; `None` once the switch has stopped. For operators' calls on what each shard
    /// holds of its own: link actions, the store-and-forward queue, the exception queue.
    pub async fn with_engines<R: Send + 'static>(
        &self,
        f: impl Fn(&mut corridor_engine::Engine, std::time::Instant) -> R + Send + Clone + 'static,
    ) -> Option<Vec<R>> {
        self.ask_all(|tx| {
            let f = f.clone();
            Command::Engine(Box::new(move |e: &mut corridor_engine::Engine, now| {
                let _ = tx.send(f(e, now));
            }))
        })
        .await
    }

    /// Applies a reloaded configuration (built by `corridor-config`'s reload): the number of
    /// connections it retired, or why nothing was changed; `None` once the switch stopped.
    /// With several shards each takes its share; a reload that would move a participant to
    /// another shard is refused (a restart does it).
    pub async fn reconfigure(
        &self,
        r: crate::switch::Reconfigure,
    ) -> Option<Result<usize, crate::error::ReconfigureError>> {
        let old = self.plan.lock().ok().and_then(|p| p.clone());
        let queues = self.txs_with_ids();
        let count = old.as_ref().map_or(queues.len(), |p| p.count);
        if count == 1 {
            let (tx, rx) = oneshot::channel();
            queues.first()?.1.send(Command::Reconfigure(Box::new(r), tx)).await.ok()?;
            return rx.await.ok();
        }
        let (parts, new_plan) = match crate::switch::split_reconfigure(r, count, old.as_ref()) {
            Ok(p) => p,
            Err(why) => return Some(Err(why)),
        };
        // Each shard this process runs takes its own part (the others' are their nodes').
        let mut parts: Vec<Option<crate::switch::Reconfigure>> = parts.into_iter().map(Some).collect();
        let mut rxs = Vec::new();
        for (k, tx) in &queues {
            let k = *k;
            let Some(part) = parts.get_mut(k).and_then(Option::take) else { continue };
            let (t, r) = oneshot::channel();
            tx.send(Command::Reconfigure(Box::new(part), t)).await.ok()?;
            rxs.push(r);
        }
        let mut retired = 0;
        let mut failed = None;
        for r in rxs {
            match r.await.ok()? {
                Ok(n) => retired += n,
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if failed.is_none() {
            if let Ok(mut p) = self.plan.lock() {
                *p = Some(new_plan);
            }
        }
        Some(failed.map_or(Ok(retired), Err))
    }

    /// [`Handle::ask_all`] from a thread outside any runtime: every shard asked first, then
    /// every answer awaited.
    fn ask_all_blocking<T>(&self, ask: impl Fn(oneshot::Sender<T>) -> Command) -> Option<Vec<T>> {
        let txs = self.txs();
        let mut rxs = Vec::with_capacity(txs.len());
        for tx in &txs {
            let (t, r) = oneshot::channel();
            tx.blocking_send(ask(t)).ok()?;
            rxs.push(r);
        }
        rxs.into_iter().map(|r| r.blocking_recv().ok()).collect()
    }

    /// [`Handle::report`] from a thread outside any runtime.
    #[must_use]
    pub fn report_blocking(&self) -> Option<Report> {
        Some(merge_reports(self.ask_all_blocking(Command::Report)?))
    }

    /// [`Handle::snapshot`] from a thread outside any runtime.
    #[must_use]
    pub fn snapshot_blocking(&self) -> Option<Box<Snapshot>> {
        let mut all = self.ask_all_blocking(Command::Snapshot)?.into_iter();
        let mut first = all.next()?;
        for s in all {
            first.add(&s);
        }
        Some(first)
    }

    /// [`Handle::links`] from a thread outside any runtime.
    #[must_use]
    pub fn links_blocking(&self) -> Option<Vec<LinkSnapshot>> {
        Some(self.ask_all_blocking(Command::Links)?.into_iter().flatten().collect())
    }

    /// The route table in force (one snapshot, shared by every shard).
    #[must_use]
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Replaces the route table: requests from now on use `table`, on every shard; a
    /// request in progress keeps the one it started with. Nothing is dropped.
    pub fn swap_routes(&self, table: RouteTable) {
        self.routes.store(Arc::new(table));
    }

    /// The switch's shutdown trigger.
    #[must_use]
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }
}

fn merge_reports(all: Vec<Report>) -> Report {
    let mut all = all.into_iter();
    let mut first = all.next().unwrap_or_default();
    for r in all {
        first.add(&r);
    }
    first
}

impl Snapshot {
    /// Participant `i`'s id as the views name it, or `none` (a destination-less answer).
    #[must_use]
    pub fn participant(&self, i: usize) -> &str {
        self.participants.get(i).map_or("none", String::as_str)
    }

    /// Adds another shard's snapshot to this one: counters, histograms and queue depths
    /// summed, link counts summed per configured link, open links listed together.
    pub fn add(&mut self, o: &Self) {
        self.stats.add(&o.stats);
        self.metrics.add(&o.metrics);
        for (i, (name, p, dial, c)) in o.specs.iter().enumerate() {
            match self.specs.get_mut(i) {
                Some((_, _, _, mine)) => mine.add(c),
                None => self.specs.push((name.clone(), *p, *dial, *c)),
            }
        }
        for (i, &c) in o.configured.iter().enumerate() {
            match self.configured.get_mut(i) {
                Some(mine) => *mine |= c,
                None => self.configured.push(c),
            }
        }
        self.links.extend(o.links.iter().cloned());
        self.requests_pending += o.requests_pending;
        self.saf_depth += o.saf_depth;
        self.saf_oldest = self.saf_oldest.max(o.saf_oldest);
        self.exceptions += o.exceptions;
        self.draining |= o.draining;
        self.journaling |= o.journaling;
        self.journal.add(&o.journal);
    }
}
