//! Leases: which node acts for which shard, in a JetStream key-value bucket (one key a
//! shard, the holder's node name as its value). A lease is taken by creating its key and
//! renewed by updating it at the revision last written (compare-and-set through the
//! bucket's leader); the bucket's `max_age` is the lease's time to live, so a lease not
//! renewed within it is gone and another node may take it.
//!
//! A lease is only the question of who should act; the answer that counts is the stream's
//! (`stream`): a new owner's first append moves the shard's subject, and a deposed owner's
//! next append fails. A node that cannot renew stops acting for the shard at once, whether
//! it lost the lease ([`LeaseError::Lost`]) or only cannot reach the bucket
//! ([`LeaseError::Unavailable`]: it could not append either).

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, UpdateErrorKind},
};
use bytes::Bytes;

use crate::limits::REQUEST_TIMEOUT;

/// A lease held: its shard, the revision its key was last written at, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The shard.
    pub shard: u16,
    /// The key's revision this node wrote last: the next renewal expects it.
    pub revision: u64,
    /// When it was taken or last renewed.
    pub renewed: Instant,
}

/// Why a lease was not taken or renewed.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another node holds it.
    Held {
        /// Its name, as the bucket says (`None`: not readable now).
        holder: Option<String>,
    },
    /// It was taken over (or expired and taken): this node must stop acting for the shard.
    Lost,
    /// The bucket did not answer: this node cannot know, and stops acting for the shard.
    Unavailable(String),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Held { holder: Some(h) } => write!(f, "held by {h}"),
            Self::Held { holder: None } => f.write_str("held by another node"),
            Self::Lost => f.write_str("lost: another node took it"),
            Self::Unavailable(e) => write!(f, "the lease bucket is unavailable: {e}"),
        }
    }
}

impl std::error::Error for LeaseError {}

/// One node's view of the lease bucket.
pub struct Leases {
    kv: kv::Store,
    node: String,
    ttl: Duration,
}

fn key(shard: u16) -> String {
    format!("shard.{shard}")
}

impl Leases {
    /// The bucket `bucket` (made if it is not there: `replicas` copies, leases living `ttl`
    /// unless renewed), as node `node` sees it.
    ///
    /// # Errors
    ///
    /// The bucket cannot be made or found.
    pub async fn open(
        client: async_nats::Client,
        bucket: &str,
        node: &str,
        replicas: usize,
        ttl: Duration,
    ) -> Result<Self, LeaseError> {
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        let config = kv::Config {
            bucket: bucket.to_owned(),
            history: 1,
            max_age: ttl,
            num_replicas: replicas,
            ..kv::Config::default()
        };
        let kv = crate::kv_bucket(&js, config).await.map_err(LeaseError::Unavailable)?;
        Ok(Self { kv, node: node.to_owned(), ttl })
    }

    /// The node these leases are taken for.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a lease lives unless renewed.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes shard `shard`'s lease, if no node holds it.
    ///
    /// # Errors
    ///
    /// Another node holds it, or the bucket did not answer.
    pub async fn acquire(&self, shard: u16) -> Result<Lease, LeaseError> {
        let renewed = Instant::now();
        match self.kv.create(key(shard), Bytes::from(self.node.clone())).await {
            Ok(revision) => Ok(Lease { shard, revision, renewed }),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                Err(LeaseError::Held { holder: self.holder(shard).await.ok().flatten() })
            }
            Err(e) => Err(LeaseError::Unavailable(e.to_string())),
        }
    }

    /// Renews `lease` (its key written again at the revision this node wrote last).
    ///
    /// # Errors
    ///
    /// Lost (another node wrote the key since, or it expired and was taken), or the bucket
    /// did not answer: either way, the node stops acting for the shard.
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), LeaseError> {
        let renewed = Instant::now();
        match self.kv.update(key(lease.shard), Bytes::from(self.node.clone()), lease.revision).await {
            Ok(revision) => {
                *lease = Lease { revision, renewed, ..*lease };
                Ok(())
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(LeaseError::Lost),
            Err(e) => Err(LeaseError::Unavailable(e.to_string())),
        }
    }

    /// Gives `lease` up (its key deleted at the revision this node wrote last), so another
    /// node may take it at once.
    ///
    /// # Errors
    ///
    /// It was lost already, or the bucket did not answer (it then expires).
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        self.kv
            .delete_expect_revision(key(lease.shard), Some(lease.revision))
            .await
            .map_err(|e| LeaseError::Unavailable(e.to_string()))
    }

    /// Says in the bucket that this node is alive, what it holds and what it waits for
    /// (`presence`, under key `node.<name>`): it expires with the bucket's `max_age` unless
    /// said again, so a node that died drops out of the cluster's status by itself.
    ///
    /// # Errors
    ///
    /// The bucket did not answer.
    pub async fn announce(&self, presence: &str) -> Result<(), LeaseError> {
        self.kv
            .put(format!("node.{}", self.node), Bytes::from(presence.to_owned()))
            .await
            .map(drop)
            .map_err(|e| LeaseError::Unavailable(e.to_string()))
    }

    /// Who holds shard `shard`'s lease, as the bucket says now (`None`: no one).
    ///
    /// # Errors
    ///
    /// The bucket did not answer.
    pub async fn holder(&self, shard: u16) -> Result<Option<String>, LeaseError> {
        match self.kv.get(key(shard)).await {
            Ok(v) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
            Err(e) => Err(LeaseError::Unavailable(e.to_string())),
        }
    }
}
