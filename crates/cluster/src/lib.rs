//! Several Corridor nodes as one switch, on NATS JetStream.
//!
//! A cluster is the switch's shards leased to nodes: a node runs the shards it holds a lease
//! on, and each shard's journal is replicated in one stream, on the shard's own subject.
//! Nothing here is a consensus or replication protocol of our own: JetStream's R3 stream
//! (with `sync_interval: always`) orders and replicates, and its per-subject sequence is
//! the fence between an owner and a deposed one. What we add is the distrust Jepsen's
//! analysis of NATS 2.12 calls for: our own CRC on every batch, a check that a subject's
//! batches follow one another without a gap on every read, a check that a subject never
//! goes backwards past what it acknowledged, and the local journal kept as the copy that
//! can refill the stream.
//!
//! # Layout
//!
//! - [`limits`]: every bound of this layer.
//! - [`batch`]: what one append carries (a batch of journal records, our header and CRC),
//!   and the gap check a reader applies (sans-IO).
//! - [`lease`]: which node acts for which shard: a key-value bucket, leases taken by
//!   create, renewed by compare-and-set, expiring with the bucket's `max_age`.
//! - [`keeper`]: one process's leases, renewed on a thread of their own from the moment each
//!   is taken until they are given up.
//! - [`stream`]: a shard's subject: the stream made, appends with the expected last subject
//!   sequence (ordered, exactly once, fenced), an unacknowledged append settled by reading
//!   back, a subject read in order and checked; checkpoints appended to it, its messages
//!   before them purged, a takeover reading from the last one.
//! - [`config`]: the cluster's one configuration: published by a reload on any node
//!   (compare-and-set on the revision it serves), watched by every node.
//! - [`status`]: the cluster as NATS sees it, for operators (which node holds which shard,
//!   how far each subject has got, the stream's copies).

#![forbid(unsafe_code)]

pub mod batch;
pub mod config;
pub mod keeper;
pub mod lease;
pub mod limits;
pub mod owners;
pub mod status;
pub mod stream;

pub use batch::{Batch, CheckpointPart, Gap, Invalid, Message, Tail};
pub use config::{config_bucket, ConfigStore, Published};
pub use keeper::{Held, LeaseKeeper, TakeError};
pub use lease::{Lease, LeaseError, Leases};
pub use owners::{Owner, Owners};
pub use status::{cluster_bucket, lease_bucket, relay_of, ConfigStatus, NodeStatus, ShardStatus, Status};
pub use stream::{
    AppendError, Hint, InFlight, Missing, ReadBatch, ReadCheckpoint, SentBatch, ShardLog, StreamError,
    Subject,
};

/// The key-value bucket `config.bucket`, found, or made with `config` if it is not there yet
/// (every bucket of the cluster — leases, the shard count, the configuration — is opened so);
/// `Err`: why neither answered.
pub(crate) async fn kv_bucket(
    js: &async_nats::jetstream::Context,
    config: async_nats::jetstream::kv::Config,
) -> Result<async_nats::jetstream::kv::Store, String> {
    match js.get_key_value(&config.bucket).await {
        Ok(kv) => Ok(kv),
        Err(_) => js.create_key_value(config).await.map_err(|e| e.to_string()),
    }
}
