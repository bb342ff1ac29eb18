//! `GET /cluster`: this node's shards as it sees them (what waits for the stream, its
//! leases' last renewal) beside the cluster as NATS sees it (which node holds which shard,
//! how far each subject has got, the stream's copies). [`status_json`] is also what
//! `corridor cluster status --json` prints.

use std::{sync::Arc, time::Duration};

use axum::{extract::State, http::StatusCode, response::IntoResponse, response::Response, Json};
use corridor_cluster::Status;
use serde_json::{json, Value};

use super::{error, switch_gone, AdminState, SWITCH_WAIT};

/// How long `/cluster` waits for NATS (to connect, then for the status).
pub(crate) const NATS_WAIT: Duration = Duration::from_secs(2);

/// Where this node's cluster is, for `/cluster`.
#[derive(Clone)]
pub struct ClusterAccess {
    /// This node's name.
    pub node: String,
    /// The NATS servers.
    pub servers: Vec<String>,
    /// The stream.
    pub stream: String,
    /// The cluster's configuration as this node serves it (`None`: a switch started
    /// without a file).
    pub config: Option<crate::shared_config::SharedConfig>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The cluster's status as JSON: the stream and its copies, every shard with its holder,
/// and the nodes holding shards.
#[must_use]
pub fn status_json(s: &Status) -> Value {
    // Every node that holds a lease or says it is alive (a standby holds none).
    let mut nodes: Vec<&str> = s.shards.iter().filter_map(|sh| sh.holder.as_deref()).collect();
    nodes.extend(s.nodes.iter().map(|n| n.name.as_str()));
    nodes.sort_unstable();
    nodes.dedup();
    let node_json = |n: &str| {
        let shards: Vec<u16> =
            s.shards.iter().filter(|sh| sh.holder.as_deref() == Some(n)).map(|sh| sh.shard).collect();
        let said = s.nodes.iter().find(|x| x.name == n);
        let waiting = said.and_then(|x| x.waiting);
        let state = match (shards.is_empty(), waiting) {
            (false, _) => "serving",
            (true, Some(_)) => "standby",
            (true, None) => "idle",
        };
        json!({
            "node": n,
            "state": state,
            "shards": shards,
            "waiting_for": waiting,
            "admin": said.and_then(|x| x.admin.clone()),
            "relay": said.and_then(|x| x.relay.clone()),
            "seen_ms": said.map(|x| ms(x.seen)),
        })
    };
    json!({
        "stream": s.stream,
        "messages": s.messages,
        "bytes": s.bytes,
        "nodes": nodes.iter().map(|n| node_json(n)).collect::<Vec<_>>(),
        "config": s.config.as_ref().map(|c| json!({
            "revision": c.revision,
            "by": c.by,
            "age_ms": ms(c.age),
            "bytes": c.bytes,
        })),
        "shards": s.shards.iter().map(|sh| json!({
            "shard": sh.shard,
            "holder": sh.holder,
            "lease_revision": sh.lease_revision,
            "lease_age_ms": sh.lease_age.map(ms),
            "stream": corridor_cluster::stream::shard_stream(&s.stream, sh.shard),
            "leader": sh.leader,
            "messages": sh.messages,
            "bytes": sh.bytes,
            "replicas": sh.replicas.iter().map(|r| json!({
                "server": r.name,
                "leader": r.leader,
                "current": r.current,
                "offline": r.offline,
                "lag": r.lag,
                "seen_ms": ms(r.seen),
            })).collect::<Vec<_>>(),
            "subject_last": sh.subject_last,
            "last_record": sh.last_record,
            "last_append_age_ms": sh.last_append_age.map(ms),
            "checkpoint": sh.checkpoint.map(|h| json!({ "covers": h.covers, "from": h.from })),
        })).collect::<Vec<_>>(),
    })
}

/// This node's shards, from a snapshot of the switch.
fn here_json(snap: &corridor_net::Snapshot) -> Value {
    let shards: Vec<Value> = snap
        .journal
        .replicas
        .iter()
        .map(|m| {
            json!({
                "shard": m.shard,
                "replicating": m.replicating,
                "synced": m.synced,
                "acknowledged": m.acknowledged,
                "unreplicated": m.synced.saturating_sub(m.acknowledged),
                "subject_seq": m.subject_seq,
                "appends": m.append.count,
                "append_p50_us": m.append.quantile(0.5).map(|d| d.as_micros()),
                "append_p99_us": m.append.quantile(0.99).map(|d| d.as_micros()),
                "append_retries": m.append_retries,
                "checkpoint": m.checkpoint,
                "checkpoints": m.checkpoints,
                "purged": m.purged,
                "release_mark": m.marked,
                "release_marks": m.marks,
                "release_marks_again": m.marks_again.load(std::sync::atomic::Ordering::Relaxed),
                "release_mark_p50_us": m.mark.quantile(0.5).map(|d| d.as_micros()),
                "lease": m.lease.map(|l| json!({
                    "revision": l.revision,
                    "age_ms": ms(snap.at.saturating_duration_since(l.renewed)),
                    "taken": l.taken,
                    "renew_failures": l.renew_failures,
                })),
            })
        })
        .collect();
    json!({ "replicating": snap.journal.replicating(), "shards": shards })
}

/// The cluster as NATS sees it now, over the one connection `nats` keeps (made at the first
/// call), within [`NATS_WAIT`]; `Err`: why it cannot be read.
pub(super) async fn seen(
    nats: &tokio::sync::OnceCell<async_nats::Client>,
    access: &ClusterAccess,
) -> Result<Status, String> {
    let asked = async {
        let client = nats
            .get_or_try_init(|| async {
                async_nats::ConnectOptions::new()
                    .connection_timeout(NATS_WAIT)
                    .connect(access.servers.as_slice())
                    .await
                    .map_err(|e| format!("cannot reach NATS: {e}"))
            })
            .await?
            .clone();
        corridor_cluster::status::status(client, &access.stream).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(NATS_WAIT, asked).await.unwrap_or_else(|_| Err("NATS did not answer in time".into()))
}

pub(super) async fn cluster(State(state): State<Arc<AdminState>>) -> Response {
    let Some(access) = state.cluster.clone() else {
        return error(StatusCode::NOT_FOUND, "this switch is not a node of a cluster (no [cluster])");
    };
    let Ok(Some(snap)) = tokio::time::timeout(SWITCH_WAIT, state.handle.snapshot()).await else {
        return switch_gone();
    };
    let (cluster, why) = match seen(&state.nats, &access).await {
        Ok(s) => (status_json(&s), None),
        Err(e) => (Value::Null, Some(e)),
    };
    Json(json!({
        "node": access.node,
        "stream": access.stream,
        "here": here_json(&snap),
        "config": access.config.as_ref().map(|c| c.state()),
        "cluster": cluster,
        "cluster_error": why,
    }))
    .into_response()
}
