//! One process's leases, kept from the moment each is taken: a thread of its own (a
//! current-thread runtime and one NATS connection) takes a shard's lease when start-up asks,
//! and renews every lease it holds every [`LEASE_RENEW`] until the process gives them up or
//! drops the keeper.
//!
//! Renewing from the moment a lease is taken matters: between taking a shard's lease and
//! its switch running come the other shards' leases, reading the stream, writing what it
//! holds into the journal and recovering the journal — with a large journal, longer than a
//! lease lives. A lease not renewed meanwhile would expire; a standby would take it, and the
//! two nodes would take the shard from each other in turn.
//!
//! What a renewal finds (see [`Leases::renew`]): renewed; the bucket unavailable (counted,
//! tried again: the stream would fence this node's appends anyway); lost but unheld (it
//! expired while the bucket was unavailable: taken again); or held by another node — then the
//! shard is lost for good, [`LeaseKeeper::lost`] says why, and the node must stop acting for
//! it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use crate::{
    lease::{Lease, LeaseError, Leases},
    limits::{AGREE_WAIT_MAX, LEASE_MARGIN, LEASE_POLL, LEASE_RENEW, LEASE_TTL, REQUEST_TIMEOUT},
};

/// A lease as its keeper holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The lease key's revision this node wrote last.
    pub revision: u64,
    /// When it was taken or renewed last.
    pub renewed: Instant,
    /// Times it was taken: once, and again after it expired unheld.
    pub taken: u64,
    /// Renewals the bucket did not answer.
    pub renew_failures: u64,
}

impl Held {
    /// Whether the lease went unrenewed at `now` for longer than a lease lives, less
    /// [`LEASE_MARGIN`] for this node's clock: another node may hold it by now (its holder
    /// must act as if it did until a renewal says otherwise).
    #[must_use]
    pub fn stale_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.renewed) > LEASE_TTL - LEASE_MARGIN
    }
}

/// Why a shard could not be taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum TakeError {
    /// Another node holds it, and this node does not wait (not a standby) or waited its
    /// time.
    Held(Option<String>),
    /// The bucket did not answer in time.
    Unavailable(String),
    /// The keeper's thread is gone.
    Gone,
}

impl std::fmt::Display for TakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Held(Some(h)) => write!(f, "its lease is held by {h}"),
            Self::Held(None) => f.write_str("its lease is held by another node"),
            Self::Unavailable(e) => write!(f, "the lease bucket: {e}"),
            Self::Gone => f.write_str("the lease keeper stopped"),
        }
    }
}

impl std::error::Error for TakeError {}

enum Ask {
    /// Answered on a std channel: start-up asks from a plain thread or from inside a runtime.
    Take {
        shard: u16,
        standby: bool,
        wait: Duration,
        reply: std::sync::mpsc::SyncSender<Result<(), TakeError>>,
    },
    Release {
        shard: u16,
        reply: oneshot::Sender<()>,
    },
    /// Answered on a std channel, as `Take`.
    Shards {
        stream: String,
        replicas: usize,
        shards: u16,
        reply: std::sync::mpsc::SyncSender<Result<(), String>>,
    },
}

#[derive(Default)]
struct State {
    held: BTreeMap<u16, Held>,
    /// Shards lost for good, and why.
    lost: BTreeMap<u16, String>,
    /// The shard a take waits for (another node holds it).
    waiting: Option<u16>,
}

impl State {
    /// What this node says of itself in the bucket (see [`Leases::announce`]):
    /// `held=0,1 waiting=2` and the process's own note (its admin address, say).
    fn presence(&self, note: &str) -> String {
        let held: Vec<String> = self.held.keys().map(ToString::to_string).collect();
        let waiting = self.waiting.map_or_else(String::new, |s| s.to_string());
        format!("held={} waiting={waiting} {note}", held.join(",")).trim_end().to_owned()
    }
}

/// Says in the bucket what this node holds and waits for; a bucket that does not answer is
/// asked again at the next renewal (its leases' renewals say more).
async fn announce(leases: &Leases, state: &Arc<Mutex<State>>, note: &str) {
    let presence = state.lock().map(|s| s.presence(note)).unwrap_or_default();
    if let Err(e) = leases.announce(&presence).await {
        tracing::debug!(error = %e, "cluster: this node's presence was not said");
    }
}

/// One process's leases. See the module docs.
pub struct LeaseKeeper {
    asks: mpsc::UnboundedSender<Ask>,
    state: Arc<Mutex<State>>,
    node: String,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper").field("node", &self.node).finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Starts the keeper of node `node`'s leases in bucket `bucket` (made if missing, with
    /// `replicas` copies), on a thread of its own, once NATS at `servers` answers (within
    /// `connect_wait`). Every renewal also says the node is alive, what it holds and what it
    /// waits for, with `note` (`admin=ADDRESS`, say): how `corridor cluster status` lists the
    /// nodes, a standby included.
    ///
    /// # Errors
    ///
    /// NATS or the bucket cannot be reached in time, or the thread cannot start.
    pub fn start(
        servers: Vec<String>,
        bucket: String,
        node: String,
        replicas: usize,
        connect_wait: Duration,
        note: String,
    ) -> Result<Self, TakeError> {
        let (asks, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State::default()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (st, name) = (Arc::clone(&state), node.clone());
        std::thread::Builder::new()
            .name("corridor-leases".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    let _ = ready_tx.send(Err(TakeError::Unavailable("no runtime".into())));
                    return;
                };
                rt.block_on(async move {
                    let opened = async {
                        let deadline = Instant::now() + connect_wait;
                        let client = tokio::time::timeout(
                            connect_wait,
                            async_nats::ConnectOptions::new()
                                .retry_on_initial_connect()
                                .connect(servers.as_slice()),
                        )
                        .await
                        .map_err(|_| TakeError::Unavailable("NATS does not answer".into()))?
                        .map_err(|e| TakeError::Unavailable(e.to_string()))?;
                        loop {
                            match Leases::open(client.clone(), &bucket, &name, replicas, LEASE_TTL).await {
                                Ok(l) => return Ok((client, l)),
                                Err(e) if Instant::now() >= deadline => {
                                    return Err(TakeError::Unavailable(e.to_string()))
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                            }
                        }
                    };
                    match opened.await {
                        Ok((client, leases)) => {
                            announce(&leases, &st, &note).await;
                            let _ = ready_tx.send(Ok(()));
                            keep(client, leases, rx, st, note).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| TakeError::Unavailable(e.to_string()))?;
        ready_rx.recv().map_err(|_| TakeError::Gone)??;
        Ok(Self { asks, state, node })
    }

    /// Takes shard `shard`'s lease (blocking), waiting up to `wait` for another node's to
    /// expire — or, for a standby, without bound. From then on it is kept renewed.
    ///
    /// # Errors
    ///
    /// Held by another node past `wait` (not a standby), the bucket unavailable past `wait`,
    /// or the keeper gone.
    pub fn take(&self, shard: u16, standby: bool, wait: Duration) -> Result<(), TakeError> {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.asks.send(Ask::Take { shard, standby, wait, reply }).map_err(|_| TakeError::Gone)?;
        rx.recv().map_err(|_| TakeError::Gone)?
    }

    /// Checks that every node of stream `stream`'s cluster runs `shards` shards (blocking):
    /// the first node to ask records its count in the cluster's bucket (made with `replicas`
    /// copies if missing, as is the bucket of release marks); every later one must match
    /// it. Nodes that split participants differently would put one participant's records on
    /// two subjects.
    ///
    /// # Errors
    ///
    /// The cluster runs another count (the message says which), or the buckets cannot be
    /// reached in time.
    pub fn agree_shards(&self, stream: &str, replicas: usize, shards: u16) -> Result<(), String> {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.asks
            .send(Ask::Shards { stream: stream.to_owned(), replicas, shards, reply })
            .map_err(|_| TakeError::Gone.to_string())?;
        rx.recv().map_err(|_| TakeError::Gone.to_string())?
    }

    /// Gives shard `shard`'s lease up (so another node may take it at once) and stops
    /// renewing it; bounded by the bucket's request timeout.
    pub async fn release(&self, shard: u16) {
        let (reply, rx) = oneshot::channel();
        if self.asks.send(Ask::Release { shard, reply }).is_ok() {
            let _ = tokio::time::timeout(2 * REQUEST_TIMEOUT, rx).await;
        }
    }

    /// Shard `shard`'s lease as held now (`None`: not held).
    #[must_use]
    pub fn held(&self, shard: u16) -> Option<Held> {
        self.state.lock().ok()?.held.get(&shard).copied()
    }

    /// Whether this node may act for shard `shard` now: `Ok(true)` while its lease is
    /// fresh, `Ok(false)` while it is unheld or stale (wait for a renewal), `Err` once it is
    /// lost for good (why). One look at the keeper's state.
    ///
    /// # Errors
    ///
    /// The lease is lost: the node must stop acting for the shard.
    pub fn standing(&self, shard: u16) -> Result<bool, String> {
        let s = self.state.lock().map_err(|_| TakeError::Gone.to_string())?;
        if let Some(why) = s.lost.get(&shard) {
            return Err(why.clone());
        }
        Ok(s.held.get(&shard).is_some_and(|h| !h.stale_at(Instant::now())))
    }

    /// Why shard `shard` is lost for good, if it is: the node must stop acting for it.
    #[must_use]
    pub fn lost(&self, shard: u16) -> Option<String> {
        self.state.lock().ok()?.lost.get(&shard).cloned()
    }
}

/// The keeper's loop: answers takes and releases, renews what it holds.
async fn keep(
    client: async_nats::Client,
    leases: Leases,
    mut asks: mpsc::UnboundedReceiver<Ask>,
    state: Arc<Mutex<State>>,
    note: String,
) {
    let mut held: BTreeMap<u16, Lease> = BTreeMap::new();
    let mut tick = tokio::time::interval(LEASE_RENEW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let set = |f: &dyn Fn(&mut State)| {
        if let Ok(mut s) = state.lock() {
            f(&mut s);
        }
    };
    loop {
        tokio::select! {
            ask = asks.recv() => match ask {
                None => {
                    // The process dropped its keeper: what it holds expires by itself.
                    return;
                }
                Some(Ask::Take { shard, standby, wait, reply }) => {
                    let got = take(&leases, shard, standby, wait, &mut held, &state, &note).await;
                    announce(&leases, &state, &note).await;
                    let _ = reply.send(got);
                }
                Some(Ask::Shards { stream, replicas, shards, reply }) => {
                    let _ = reply.send(agree(&client, &stream, replicas, shards).await);
                }
                Some(Ask::Release { shard, reply }) => {
                    if let Some(lease) = held.remove(&shard) {
                        match leases.release(lease).await {
                            Ok(()) => tracing::info!(shard, "cluster: the shard's lease is given up"),
                            Err(e) => tracing::warn!(shard, error = %e, "cluster: the shard's lease could not be given up; it expires"),
                        }
                    }
                    set(&|s| {
                        s.held.remove(&shard);
                    });
                    let _ = reply.send(());
                }
            },
            _ = tick.tick() => {
                renew_all(&leases, &mut held, &state).await;
                announce(&leases, &state, &note).await;
            }
        }
    }
}

/// The cluster's shard count: recorded by the first node, matched by every later one, in
/// the cluster's bucket (made here before any shard is served; the release marks live there
/// too, and a mark published to a bucket not there would be lost unseen).
async fn agree(
    client: &async_nats::Client,
    stream: &str,
    replicas: usize,
    shards: u16,
) -> Result<(), String> {
    use async_nats::jetstream::kv::{self, CreateErrorKind};
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(REQUEST_TIMEOUT);
    let deadline = Instant::now() + AGREE_WAIT_MAX;
    loop {
        let asked = async {
            let config = kv::Config {
                bucket: crate::status::cluster_bucket(stream),
                history: 1,
                num_replicas: replicas,
                ..kv::Config::default()
            };
            let kv = crate::kv_bucket(&js, config).await?;
            match kv.create("shards", bytes::Bytes::from(shards.to_string())).await {
                Ok(_) => Ok(None),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    let v = kv.get("shards").await.map_err(|e| e.to_string())?.unwrap_or_default();
                    let theirs = String::from_utf8_lossy(&v).parse::<u16>();
                    Ok(Some(theirs.map_err(|_| "an unreadable shard count".to_owned())?))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        match asked.await {
            Ok(None) => return Ok(()),
            Ok(Some(theirs)) if theirs == shards => return Ok(()),
            Ok(Some(theirs)) => {
                return Err(format!(
                    "the cluster runs {theirs} shard(s) and this node {shards}: every node must run the same \
                     ([switch] shards = {theirs})"
                ))
            }
            Err(e) if Instant::now() >= deadline => return Err(format!("the cluster's shard count: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Takes one lease, renewing those already held while it waits.
async fn take(
    leases: &Leases,
    shard: u16,
    standby: bool,
    wait: Duration,
    held: &mut BTreeMap<u16, Lease>,
    state: &Arc<Mutex<State>>,
    note: &str,
) -> Result<(), TakeError> {
    let deadline = Instant::now() + wait;
    // (So that a node that waits says so at once, not a renewal later.)
    let mut last_renewal = Instant::now().checked_sub(LEASE_RENEW).unwrap_or_else(Instant::now);
    let waiting = |w: Option<u16>| {
        if let Ok(mut s) = state.lock() {
            s.waiting = w;
        }
    };
    let got = loop {
        match leases.acquire(shard).await {
            Ok(lease) => {
                held.insert(shard, lease);
                if let Ok(mut s) = state.lock() {
                    s.held.insert(
                        shard,
                        Held {
                            revision: lease.revision,
                            renewed: lease.renewed,
                            taken: 1,
                            renew_failures: 0,
                        },
                    );
                }
                break Ok(());
            }
            Err(LeaseError::Held { .. }) if standby => waiting(Some(shard)),
            Err(LeaseError::Held { holder }) if Instant::now() >= deadline => {
                break Err(TakeError::Held(holder))
            }
            Err(LeaseError::Unavailable(e)) if Instant::now() >= deadline => {
                break Err(TakeError::Unavailable(e))
            }
            Err(LeaseError::Held { .. }) => waiting(Some(shard)),
            Err(_) => {}
        }
        // The leases already taken stay alive while this one is waited for, and the node
        // says it waits.
        if last_renewal.elapsed() >= LEASE_RENEW {
            renew_all(leases, held, state).await;
            announce(leases, state, note).await;
            last_renewal = Instant::now();
        }
        tokio::time::sleep(LEASE_POLL).await;
    };
    waiting(None);
    got
}

/// Renews every lease held; see the module docs for what each outcome does.
async fn renew_all(leases: &Leases, held: &mut BTreeMap<u16, Lease>, state: &Arc<Mutex<State>>) {
    let shards: Vec<u16> = held.keys().copied().collect();
    for shard in shards {
        let Some(lease) = held.get_mut(&shard) else { continue };
        let outcome = leases.renew(lease).await;
        let lease = *lease;
        let mut s = match state.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        match outcome {
            Ok(()) => {
                if let Some(h) = s.held.get_mut(&shard) {
                    (h.revision, h.renewed) = (lease.revision, lease.renewed);
                }
            }
            Err(LeaseError::Unavailable(e)) => {
                if let Some(h) = s.held.get_mut(&shard) {
                    h.renew_failures += 1;
                }
                tracing::warn!(shard, error = %e, "cluster: the shard's lease cannot be renewed now");
            }
            Err(LeaseError::Lost) => {
                drop(s);
                // Expired while the bucket was unavailable, and no other node took it: taken
                // again (the stream's fence stands behind this as behind every lease). Who
                // holds it unknown (the bucket still unsteady): asked again at the next tick.
                let verdict = match leases.holder(shard).await {
                    Ok(None) => match leases.acquire(shard).await {
                        Ok(l) => Some(Ok(l)),
                        Err(LeaseError::Held { holder }) => Some(Err(holder)),
                        Err(_) => None,
                    },
                    Ok(Some(holder)) if holder == leases.node() => None,
                    Ok(Some(holder)) => Some(Err(Some(holder))),
                    Err(_) => None,
                };
                let Ok(mut s) = state.lock() else { return };
                match verdict {
                    Some(Ok(l)) => {
                        tracing::warn!(
                            shard,
                            "cluster: the shard's lease expired unheld and was taken again"
                        );
                        held.insert(shard, l);
                        if let Some(h) = s.held.get_mut(&shard) {
                            (h.revision, h.renewed) = (l.revision, l.renewed);
                            h.taken += 1;
                        }
                    }
                    Some(Err(holder)) => {
                        held.remove(&shard);
                        s.held.remove(&shard);
                        let by = holder.unwrap_or_else(|| "another node".into());
                        s.lost.insert(shard, format!("shard {shard}'s lease was taken by {by}"));
                    }
                    None => {
                        if let Some(h) = s.held.get_mut(&shard) {
                            h.renew_failures += 1;
                        }
                    }
                }
            }
            Err(e) => {
                held.remove(&shard);
                s.held.remove(&shard);
                s.lost.insert(shard, format!("shard {shard}'s lease: {e}"));
            }
        }
    }
}
