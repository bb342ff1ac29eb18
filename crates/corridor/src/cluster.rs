//! `corridor cluster`: the cluster as NATS sees it — which node holds which shard and since
//! when, how far each shard's subject has got, the stream's copies, the configuration
//! every node serves. It asks NATS only, so it
//! answers while a node is down.

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Subcommand;

/// How long `corridor cluster status` waits for NATS.
const NATS_WAIT: Duration = Duration::from_secs(5);

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// Nodes, which shard each holds and since when (lease ages), each shard's subject,
    /// and the stream's copies and their lag.
    Status {
        /// The configuration file (its `[cluster]`: the NATS servers and the stream).
        #[arg(long)]
        config: PathBuf,
        /// Print JSON (what the admin API's `/cluster` shows as `cluster`).
        #[arg(long)]
        json: bool,
        /// The node whose file it is, when the file is shared (see `serve --node`).
        #[arg(long, env = "CORRIDOR_NODE")]
        node: Option<String>,
    },
}

pub(crate) fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { config, json, node } => status(&config, json, node.as_deref()),
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()))
}

fn status(path: &std::path::Path, json: bool, node: Option<&str>) -> anyhow::Result<()> {
    let loaded = corridor_config::load_as(path, node)?;
    let Some(c) = loaded.cluster else {
        anyhow::bail!("{}: no [cluster]: this switch runs as a single node", path.display())
    };
    let stream = c.stream.clone();
    let status = with_nats(&c, |client| async move {
        let asked = corridor_cluster::status::status(client, &stream);
        match tokio::time::timeout(NATS_WAIT, asked).await {
            Ok(r) => r.context("cannot read the cluster's stream"),
            Err(_) => anyhow::bail!("NATS did not answer within {} s", NATS_WAIT.as_secs()),
        }
    })?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&corridor_ops::admin::status_json(&status))?)?;
        return Ok(());
    }
    writeln!(
        out,
        "stream {}: {} messages, {} bytes, in a stream per shard",
        status.stream, status.messages, status.bytes
    )?;
    for s in &status.shards {
        writeln!(
            out,
            "  shard {:<4} stream {}: {} messages, {} bytes, leader {}",
            s.shard,
            corridor_cluster::stream::shard_stream(&status.stream, s.shard),
            s.messages,
            s.bytes,
            s.leader.as_deref().unwrap_or("(none elected)")
        )?;
        for r in &s.replicas {
            let role = if r.leader {
                "leader"
            } else if r.current {
                "current"
            } else {
                "behind"
            };
            let offline = if r.offline { ", offline" } else { "" };
            writeln!(out, "    server {:<20} {role:<8} lag {:>6}{offline}", r.name, r.lag)?;
        }
    }
    for n in &status.nodes {
        let held: Vec<String> = n.held.iter().map(ToString::to_string).collect();
        let state = match (held.is_empty(), n.waiting) {
            (false, _) => format!("serving shard(s) {}", held.join(",")),
            (true, Some(w)) => format!("standby, waiting for shard {w}"),
            (true, None) => "idle".to_owned(),
        };
        writeln!(
            out,
            "  node {:<18} {state}; admin {}; relay {}; said so {} ago",
            n.name,
            n.admin.as_deref().unwrap_or("-"),
            n.relay.as_deref().unwrap_or("-"),
            ms(Some(n.seen))
        )?;
    }
    writeln!(
        out,
        "{:<6} {:<20} {:>10} {:>12} {:>12} {:>12} {:>14} {:>12}",
        "shard", "holder", "revision", "lease age", "subject seq", "last record", "last append", "checkpoint"
    )?;
    for s in &status.shards {
        writeln!(
            out,
            "{:<6} {:<20} {:>10} {:>12} {:>12} {:>12} {:>14} {:>12}",
            s.shard,
            s.holder.as_deref().unwrap_or("(none)"),
            s.lease_revision.map_or_else(|| "-".to_owned(), |r| r.to_string()),
            ms(s.lease_age),
            s.subject_last,
            s.last_record,
            ms(s.last_append_age),
            s.checkpoint.map_or_else(|| "-".to_owned(), |h| h.covers.to_string()),
        )?;
    }
    match &status.config {
        Some(c) => writeln!(
            out,
            "configuration: revision {} published by {}, {} ago ({} bytes)",
            c.revision,
            c.by,
            ms(Some(c.age)),
            c.bytes
        )?,
        None => writeln!(out, "configuration: none published yet")?,
    }
    let unheld = status.shards.iter().filter(|s| s.holder.is_none()).count();
    if unheld > 0 {
        writeln!(out, "{unheld} shard(s) held by no node: served nowhere until a node takes them")?;
    }
    Ok(())
}

/// Every shard's records as cluster `c`'s stream holds them (`shards` shards): what
/// `corridor clearing` reads in a cluster, whichever node ran each shard.
///
/// # Errors
///
/// NATS does not answer in time, or a subject cannot be read or does not check.
pub(crate) fn every_shards_records(
    c: &corridor_config::ClusterSettings,
    shards: usize,
) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    with_nats(c, |client| async move {
        let mut out = Vec::with_capacity(shards);
        for shard in 0..u16::try_from(shards).unwrap_or(u16::MAX) {
            let missing = corridor_cluster::stream::records_after(client.clone(), &c.stream, shard, 0)
                .await
                .with_context(|| format!("shard {shard}'s subject in stream {}", c.stream))?;
            out.push(missing.records.unwrap_or((1, Vec::new())));
        }
        Ok(out)
    })
}

/// Runs `ask` with a connection to cluster `c`'s NATS servers (made within [`NATS_WAIT`]),
/// on a runtime of its own: how each `corridor` command that reads the cluster reaches it.
fn with_nats<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    c: &corridor_config::ClusterSettings,
    ask: impl FnOnce(async_nats::Client) -> F,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = tokio::time::timeout(
            NATS_WAIT,
            async_nats::ConnectOptions::new().connection_timeout(NATS_WAIT).connect(c.nats.as_slice()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("NATS did not answer within {} s", NATS_WAIT.as_secs()))?
        .context("cannot reach NATS")?;
        ask(client).await
    })
}
