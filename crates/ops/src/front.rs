//! A node of a cluster waiting for its shards (a standby, a node starting while another
//! holds them) is a partner's node all the same: it listens on its listening links and
//! relays each connection to the node that serves the participant's shard
//! (`corridor_net::relay`), found in the lease bucket. On its own thread and runtime — the
//! start-up it runs beside blocks while it waits for leases — until it has its shards: then
//! it stops, closing what it relays (the partners reconnect, to it), and the switch takes
//! the addresses.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use corridor_config::Loaded;
use tokio_util::sync::CancellationToken;

/// How long a front may take to bind its addresses.
const FRONT_START_MAX: Duration = Duration::from_secs(10);
/// How long a lookup of the node serving a shard may take (NATS not answering: the
/// partner's connection is closed, and it tries again).
const OWNER_LOOKUP_MAX: Duration = Duration::from_secs(1);
/// How long a lookup is reused (a burst of connections asks NATS once).
const OWNER_CACHE: Duration = Duration::from_millis(250);

/// A running front; dropping it stops it (and frees its addresses) before returning.
pub(crate) struct Front {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Front {
    /// Starts the front of a node whose configuration has relays; `None` for any other.
    ///
    /// # Errors
    ///
    /// Its runtime cannot start, or an address cannot be bound.
    pub(crate) fn start(loaded: &Loaded) -> std::io::Result<Option<Self>> {
        let (Some(c), Some(relay)) = (&loaded.cluster, &loaded.net.relay) else { return Ok(None) };
        let tls = relay.tls.clone();
        let plan = corridor_engine::shards::ShardPlan::new(loaded.shards.max(1), &loaded.engine);
        let listens: Vec<(corridor_net::Listen, u16)> = loaded
            .net
            .listens
            .iter()
            .filter_map(|l| {
                let participant = loaded.engine.links.get(l.spec)?.participant;
                let shard = u16::try_from(*plan.owner.get(participant)?).ok()?;
                Some((l.clone(), shard))
            })
            .collect();
        let (servers, bucket) = (c.nats.clone(), corridor_cluster::lease_bucket(&c.stream));
        let stop = CancellationToken::new();
        let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
        let until = stop.clone();
        let thread = std::thread::Builder::new().name("corridor-front".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            rt.block_on(async move {
                let owners = Owners::new(servers, bucket);
                let owner = move |shard| {
                    let o = Arc::clone(&owners);
                    async move { o.of(shard).await }
                };
                match corridor_net::relay::front(listens, tls, owner, until.clone()).await {
                    Ok(tasks) => {
                        let _ = ready_tx.send(Ok(()));
                        until.cancelled().await;
                        tasks.iter().for_each(tokio::task::JoinHandle::abort);
                    }
                    Err(e) => drop(ready_tx.send(Err(e))),
                }
            });
            // The runtime goes with every connection it relays: the addresses are free.
        })?;
        ready
            .recv_timeout(FRONT_START_MAX)
            .map_err(|_| std::io::Error::other("the front did not start"))??;
        Ok(Some(Self { stop, thread: Some(thread) }))
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The node serving a shard and its node link address (`None`: none now).
type Owner = Option<(String, SocketAddr)>;

/// Who serves which shard, from the lease bucket, over one NATS connection and one handle
/// on the bucket (made at the first lookup that finds both, kept).
struct Owners {
    kv: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
    servers: Vec<String>,
    bucket: String,
    cache: std::sync::Mutex<Vec<(u16, Instant, Owner)>>,
}

impl Owners {
    fn new(servers: Vec<String>, bucket: String) -> Arc<Self> {
        Arc::new(Self {
            kv: tokio::sync::OnceCell::new(),
            servers,
            bucket,
            cache: std::sync::Mutex::default(),
        })
    }

    /// The node serving shard `shard` and its node link address (`None`: none now, or NATS
    /// does not answer within [`OWNER_LOOKUP_MAX`]).
    async fn of(&self, shard: u16) -> Owner {
        if let Ok(cache) = self.cache.lock() {
            if let Some((_, _, hit)) =
                cache.iter().find(|(s, at, _)| *s == shard && at.elapsed() < OWNER_CACHE)
            {
                return hit.clone();
            }
        }
        let look = async {
            let kv = self
                .kv
                .get_or_try_init(|| async {
                    let client = async_nats::ConnectOptions::new()
                        .connection_timeout(OWNER_LOOKUP_MAX)
                        .connect(self.servers.as_slice())
                        .await
                        .map_err(|e| e.to_string())?;
                    async_nats::jetstream::new(client)
                        .get_key_value(&self.bucket)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .ok()?;
            let (node, relay) = corridor_cluster::relay_of(kv, shard).await?;
            Some((node, relay.parse().ok()?))
        };
        let found = tokio::time::timeout(OWNER_LOOKUP_MAX, look).await.ok().flatten();
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(s, _, _)| *s != shard);
            cache.push((shard, Instant::now(), found.clone()));
        }
        found
    }
}
