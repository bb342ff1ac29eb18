//! The cluster as NATS sees it, for operators: which node holds which shard and since when,
//! how far each shard's subject has got, and each shard's stream's replicas (its leader,
//! which of its servers are current, how far behind the others are).
//!
//! It reads the lease bucket and the stream only — no node is asked — so it answers while a
//! node is down, which is when it is wanted. A node's own view (what waits for the stream on
//! it, its lease's last renewal) is in its metrics and its `/cluster`.

use std::time::Duration;

use async_nats::jetstream::{self, context::GetStreamErrorKind, stream::LastRawMessageErrorKind};
use futures_util::TryStreamExt;

use crate::{batch, limits::REQUEST_TIMEOUT, stream::subject, StreamError};

/// The cluster: its shards' streams and every shard it knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The cluster's stream name (each shard's stream is named after it,
    /// [`crate::stream::shard_stream`]).
    pub stream: String,
    /// Messages (batches and checkpoints) the shards' streams hold, together.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Every shard with a lease or a subject, in order.
    pub shards: Vec<ShardStatus>,
    /// The cluster's configuration (`None`: no node has published one).
    pub config: Option<ConfigStatus>,
    /// The nodes alive, as each says of itself (a standby included), in name order.
    pub nodes: Vec<NodeStatus>,
}

/// A node, as it says of itself in the lease bucket at every renewal (see
/// [`crate::Leases::announce`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// The shards whose leases it holds.
    pub held: Vec<u16>,
    /// The shard whose lease it waits for (a standby, or a node starting).
    pub waiting: Option<u16>,
    /// Its admin server's address, when it has one.
    pub admin: Option<String>,
    /// Where it takes the connections other nodes relay to it, when it does.
    pub relay: Option<String>,
    /// Since it last said so (it says so every second; past the lease's time to live the
    /// bucket drops it).
    pub seen: Duration,
}

impl NodeStatus {
    /// A node from what it said (`held=0,1 waiting= admin=…`), seen `seen` ago.
    fn parse(name: &str, said: &str, seen: Duration) -> Self {
        let mut n =
            Self { name: name.to_owned(), held: Vec::new(), waiting: None, admin: None, relay: None, seen };
        for (k, v) in said.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            match k {
                "held" => n.held = v.split(',').filter_map(|s| s.parse().ok()).collect(),
                "waiting" => n.waiting = v.parse().ok(),
                "admin" if !v.is_empty() => n.admin = Some(v.to_owned()),
                "relay" if !v.is_empty() => n.relay = Some(v.to_owned()),
                _ => {}
            }
        }
        n
    }
}

/// The node holding shard `shard`'s lease in the lease bucket `kv`, and where it takes
/// relayed connections (as it says of itself at every renewal): where a node that does not
/// serve the shard relays its partners' connections. `None`: no node holds it, or the one
/// that does takes no relays (or the bucket does not answer).
pub async fn relay_of(kv: &jetstream::kv::Store, shard: u16) -> Option<(String, String)> {
    let holder = kv.get(format!("shard.{shard}")).await.ok()??;
    let holder = String::from_utf8_lossy(&holder).into_owned();
    let said = kv.get(format!("node.{holder}")).await.ok()??;
    let relay = NodeStatus::parse(&holder, &String::from_utf8_lossy(&said), Duration::ZERO).relay?;
    Some((holder, relay))
}

/// The cluster's configuration, as its bucket holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigStatus {
    /// Its revision: every node serves it unless its `/cluster` says otherwise.
    pub revision: u64,
    /// The node that published it.
    pub by: String,
    /// Since it was published.
    pub age: Duration,
    /// Its size, encoded.
    pub bytes: usize,
}

/// One copy of a shard's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// The server's name.
    pub name: String,
    /// Whether it leads the stream.
    pub leader: bool,
    /// Whether it is up to date with the leader.
    pub current: bool,
    /// Whether the group considers it offline.
    pub offline: bool,
    /// Operations it is behind the leader.
    pub lag: u64,
    /// Since the leader last heard from it.
    pub seen: Duration,
}

/// One shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard.
    pub shard: u16,
    /// The node holding its lease (`None`: no one; the shard is served nowhere until a node
    /// takes it).
    pub holder: Option<String>,
    /// The lease key's revision.
    pub lease_revision: Option<u64>,
    /// Since the lease was taken or renewed (a holder renews every second; past the lease's
    /// time to live the bucket drops it).
    pub lease_age: Option<Duration>,
    /// The server that leads the shard's stream now, as the stream says (`None`: none
    /// elected, or the stream is not made yet).
    pub leader: Option<String>,
    /// The stream's copies, the leader's first.
    pub replicas: Vec<Replica>,
    /// Messages (batches and checkpoints) the shard's stream holds.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The stream sequence of the subject's last batch (0: the subject is empty).
    pub subject_last: u64,
    /// The journal record that batch ends with.
    pub last_record: u64,
    /// Since that batch was appended.
    pub last_append_age: Option<Duration>,
    /// Where a node taking the shard over begins reading (its last checkpoint's hint;
    /// `None`: none yet — it reads the subject whole).
    pub checkpoint: Option<crate::Hint>,
}

/// The bucket the cluster's settings every node must share live in (its shard count).
#[must_use]
pub fn cluster_bucket(stream: &str) -> String {
    format!("{stream}-cluster")
}

/// The bucket a stream's leases live in.
#[must_use]
pub fn lease_bucket(stream: &str) -> String {
    format!("{stream}-leases")
}

fn age(then: async_nats::jetstream::kv::Entry) -> Duration {
    since(then.created)
}

fn since(then: time::OffsetDateTime) -> Duration {
    Duration::try_from(time::OffsetDateTime::now_utc() - then).unwrap_or_default()
}

fn shard_of(name: &str, prefix: &str) -> Option<u16> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// The replication group of a stream: its leader and copies, the leader's first.
fn replicas_of(info: &jetstream::stream::Info) -> (Option<String>, Vec<Replica>) {
    let Some(c) = &info.cluster else { return (None, Vec::new()) };
    let mut replicas: Vec<Replica> = c
        .replicas
        .iter()
        .map(|p| Replica {
            name: p.name.clone(),
            leader: false,
            current: p.current,
            offline: p.offline,
            lag: p.lag.unwrap_or(0),
            seen: p.active,
        })
        .collect();
    if let Some(l) = &c.leader {
        let leader = Replica {
            name: l.clone(),
            leader: true,
            current: true,
            offline: false,
            lag: 0,
            seen: Duration::ZERO,
        };
        replicas.insert(0, leader);
    }
    replicas.truncate(crate::limits::STATUS_REPLICAS_MAX);
    (c.leader.clone(), replicas)
}

/// Reads the cluster's status from the shards' streams of cluster stream `stream` and its
/// lease bucket.
///
/// # Errors
///
/// A stream cannot be read (a missing lease bucket is no error: no lease is held), or a
/// subject's last message is not a batch we wrote.
pub async fn status(client: async_nats::Client, stream: &str) -> Result<Status, StreamError> {
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    let server = |e: &dyn std::fmt::Display| StreamError::Server(e.to_string());

    // Shards: every shard's stream, and every lease.
    let prefix = format!("{}-shard-", stream);
    let mut shards: Vec<u16> = Vec::new();
    let mut names = js.stream_names();
    while let Some(name) = names.try_next().await.map_err(|e| server(&e))? {
        if let Some(shard) = shard_of(&name, &prefix) {
            shards.push(shard);
        }
        if shards.len() >= crate::limits::STATUS_SHARDS_MAX {
            break;
        }
    }
    let kv = js.get_key_value(lease_bucket(stream)).await.ok();
    let settings = js.get_key_value(cluster_bucket(stream)).await.ok();
    let mut node_keys: Vec<String> = Vec::new();
    if let Some(kv) = &kv {
        if let Ok(mut keys) = kv.keys().await {
            while let Ok(Some(key)) = keys.try_next().await {
                if let Some(shard) = shard_of(&key, "shard.") {
                    shards.push(shard);
                }
                if let Some(node) = key.strip_prefix("node.") {
                    if node_keys.len() < crate::limits::STATUS_NODES_MAX {
                        node_keys.push(node.to_owned());
                    }
                }
                if shards.len() >= 2 * crate::limits::STATUS_SHARDS_MAX {
                    break;
                }
            }
        }
    }
    shards.sort_unstable();
    shards.dedup();
    shards.truncate(crate::limits::STATUS_SHARDS_MAX);

    let mut out = Vec::with_capacity(shards.len());
    let (mut messages, mut bytes) = (0, 0);
    for shard in shards {
        let lease =
            match &kv {
                Some(kv) => kv.entry(format!("shard.{shard}")).await.ok().flatten().filter(|e| {
                    e.operation == async_nats::jetstream::kv::Operation::Put && !e.value.is_empty()
                }),
                None => None,
            };
        // A shard with a lease and no stream yet (its node is starting) has none of these.
        let mut shown = ShardStatus {
            shard,
            holder: lease.as_ref().map(|e| String::from_utf8_lossy(&e.value).into_owned()),
            lease_revision: lease.as_ref().map(|e| e.revision),
            lease_age: lease.map(age),
            leader: None,
            replicas: Vec::new(),
            messages: 0,
            bytes: 0,
            subject_last: 0,
            last_record: 0,
            last_append_age: None,
            checkpoint: match &settings {
                Some(kv) => crate::stream::Hint::of(kv, shard).await,
                None => None,
            },
        };
        let own = match js.get_stream(crate::stream::shard_stream(stream, shard)).await {
            Ok(s) => Some(s),
            Err(e)
                if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                None
            }
            Err(e) => return Err(server(&e)),
        };
        if let Some(mut s) = own {
            let info = s.info().await.map_err(|e| server(&e))?;
            (shown.leader, shown.replicas) = replicas_of(info);
            (shown.messages, shown.bytes) = (info.state.messages, info.state.bytes);
            (messages, bytes) = (messages + shown.messages, bytes + shown.bytes);
            match s.get_last_raw_message_by_subject(&subject(stream, shard)).await {
                Ok(m) => {
                    shown.last_record = batch::decode_message(&m.payload, &mut Vec::new())
                        .map_err(|why| StreamError::Invalid { seq: m.sequence, why })?
                        .last_record();
                    (shown.subject_last, shown.last_append_age) = (m.sequence, Some(since(m.time)));
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(server(&e)),
            }
        }
        out.push(shown);
    }
    node_keys.sort_unstable();
    let mut nodes = Vec::with_capacity(node_keys.len());
    if let Some(kv) = &kv {
        for name in node_keys {
            if let Ok(Some(e)) = kv.entry(format!("node.{name}")).await {
                if e.operation == async_nats::jetstream::kv::Operation::Put {
                    let said = String::from_utf8_lossy(&e.value).into_owned();
                    nodes.push(NodeStatus::parse(&name, &said, since(e.created)));
                }
            }
        }
    }
    let config = match js.get_key_value(crate::config::config_bucket(stream)).await {
        Ok(kv) => crate::config::ConfigStore::from_store(kv, "").current().await.ok().flatten().map(|p| {
            ConfigStatus {
                revision: p.revision,
                by: p.by,
                age: Duration::from_millis(
                    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                        .unwrap_or(0)
                        .saturating_sub(p.at_ms),
                ),
                bytes: p.body.len(),
            }
        }),
        Err(_) => None,
    };
    Ok(Status { config, nodes, stream: stream.to_owned(), messages, bytes, shards: out })
}
