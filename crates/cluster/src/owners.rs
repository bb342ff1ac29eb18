//! Who serves which shard now, as the lease bucket says: the node holding each shard's
//! lease and the node link address it publishes with its leases. Read by a node that does
//! not run a shard — to relay a partner's connection to its owner, or to carry a hop to it
//! — and kept a moment so a burst of lookups asks NATS once.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

/// How long a lookup may take (NATS not answering: `None`, and the caller tries again).
pub const OWNER_LOOKUP_MAX: Duration = Duration::from_secs(1);
/// How long a lookup is reused.
pub const OWNER_CACHE: Duration = Duration::from_millis(250);

/// The node serving a shard and its node link address (`None`: none now).
pub type Owner = Option<(String, SocketAddr)>;

/// Lookups of shards' owners over one NATS connection and one handle on the lease bucket
/// (made at the first lookup that finds both, kept).
pub struct Owners {
    kv: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
    servers: Vec<String>,
    bucket: String,
    cache: std::sync::Mutex<Vec<(u16, Instant, Owner)>>,
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owners").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

impl Owners {
    /// Lookups in lease bucket `bucket` over the NATS servers `servers`.
    #[must_use]
    pub fn new(servers: Vec<String>, bucket: String) -> Arc<Self> {
        Arc::new(Self {
            kv: tokio::sync::OnceCell::new(),
            servers,
            bucket,
            cache: std::sync::Mutex::default(),
        })
    }

    /// The node serving shard `shard` and its node link address, as looked up at most
    /// [`OWNER_CACHE`] ago (`None`: none now, or NATS does not answer within
    /// [`OWNER_LOOKUP_MAX`]).
    pub async fn of(&self, shard: u16) -> Owner {
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
            let (node, relay) = crate::relay_of(kv, shard).await?;
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
