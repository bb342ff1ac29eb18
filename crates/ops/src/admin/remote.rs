//! The shards other nodes run, as the cluster's stream holds them: a node of a cluster that
//! runs some of the shards answers `GET /transactions` and `GET /saf` for every shard — its
//! own from its journal and engines, the others' from their subjects (their last checkpoint
//! and the records after it, as a node taking one over reads them).

use std::time::Duration;

use corridor_journal::recovery::Recovery;

use super::ClusterAccess;

/// Longest a read of the other nodes' shards may take (NATS not answering: the answer
/// says which shards it lacks).
pub(crate) const REMOTE_READ_MAX: Duration = Duration::from_secs(5);

/// The shards of the switch this node does not run now.
pub(crate) fn remote_shards(handle: &corridor_net::Handle) -> Vec<u16> {
    let here = handle.shard_ids();
    (0..handle.shard_count()).filter(|k| !here.contains(k)).filter_map(|k| u16::try_from(k).ok()).collect()
}

/// Each of `shards`' subjects read from its last checkpoint, within [`REMOTE_READ_MAX`]:
/// per shard, what was read or why not.
pub(crate) async fn read(
    access: &ClusterAccess,
    shards: &[u16],
) -> Vec<(u16, Result<corridor_cluster::stream::Missing, String>)> {
    if shards.is_empty() {
        return Vec::new();
    }
    let work = async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(REMOTE_READ_MAX)
            .connect(access.servers.as_slice())
            .await
            .map_err(|e| format!("NATS: {e}"))?;
        let mut out = Vec::with_capacity(shards.len());
        for &k in shards {
            let read = corridor_cluster::stream::take_read(client.clone(), &access.stream, k).await;
            out.push((k, read.map_err(|e| e.to_string())));
        }
        Ok::<_, String>(out)
    };
    match tokio::time::timeout(REMOTE_READ_MAX, work).await {
        Ok(Ok(out)) => out,
        Ok(Err(why)) => shards.iter().map(|&k| (k, Err(why.clone()))).collect(),
        Err(_) => shards.iter().map(|&k| (k, Err("the stream did not answer in time".to_owned()))).collect(),
    }
}

/// What shard's subject `m` holds, recovered as a node taking it over recovers it (its
/// checkpoint, then the records after it): its store-and-forward and exception queues.
///
/// # Errors
///
/// The checkpoint or the records cannot be read.
pub(crate) fn state(m: &corridor_cluster::stream::Missing, now_unix_ms: u64) -> Result<Recovery, String> {
    let mut owed = match &m.checkpoint {
        Some(c) => Recovery::from_checkpoint(&c.state).map_err(|e| format!("its checkpoint: {e}"))?,
        None => Recovery::default(),
    };
    let Some((first, records)) = &m.records else { return Ok(owed) };
    let from = owed.last_seq + 1;
    if *first > from {
        return Err(format!("records {from}..{first} are in neither its checkpoint nor the stream"));
    }
    let rest = corridor_journal::records_since(records, *first, from).map_err(|e| e.to_string())?;
    let header = corridor_journal::SegmentHeader { first_seq: from, created_unix_ms: 0 };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(rest);
    let scan = corridor_journal::scan_log(&[(from, bytes.as_slice())]).map_err(|e| e.to_string())?;
    owed.fold(&scan, now_unix_ms).map_err(|e| e.to_string())?;
    Ok(owed)
}
