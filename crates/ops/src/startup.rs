//! Start-up: from a checked configuration to a running switch — each shard's engine made,
//! its journal recovered (segments scanned, a torn tail cut, what the last run owed resumed),
//! its links assigned, then bound or started. Configuration only configures
//! (`corridor-config`); this is where the switch comes up, for the binary, the load tool's
//! demo and the tests alike.

use std::path::Path;

use corridor_config::{JournalSettings, Loaded};
use corridor_engine::Config;
use corridor_net::NetConfig;

/// The engine this configuration describes, anchored to the wall clock now, as one
/// shard whatever `shards` says. With a journal, it is recovered first: its segments
/// scanned, a torn tail cut.
///
/// # Errors
///
/// The journal cannot be read, or is corrupt inside.
pub fn into_parts(mut loaded: Loaded) -> std::io::Result<(corridor_engine::Engine, NetConfig)> {
    loaded.shards = 1;
    let (mut parts, _) = into_shards(loaded)?;
    let p = parts.pop().ok_or_else(|| std::io::Error::other("no shard"))?;
    Ok((p.engine, p.net))
}

/// The switch's shards: per shard its engine (its share of the participants, its hops,
/// its own journal recovered) and the links it listens on and dials; and the plan that
/// assigned them (see `corridor_engine::shards`). Shard 0 journals in the journal
/// directory itself, shard `k` in its `shard-k` subdirectory.
///
/// # Errors
///
/// A journal cannot be read or is corrupt inside, or the directory holds the journal of
/// a shard this configuration no longer runs.
pub fn into_shards(
    loaded: Loaded,
) -> std::io::Result<(Vec<corridor_net::ShardParts>, corridor_engine::shards::ShardPlan)> {
    let (parts, plan, _) = shards_of(loaded)?;
    Ok((parts, plan))
}

/// [`into_shards`], and on a node of a cluster that takes shards over while it runs
/// (`takes_over`), what it needs to start one.
fn shards_of(
    loaded: Loaded,
) -> std::io::Result<(Vec<corridor_net::ShardParts>, corridor_engine::shards::ShardPlan, Option<Takeover>)> {
    let n = loaded.shards.max(1);
    let plan = corridor_engine::shards::ShardPlan::new(n, &loaded.engine);
    if let Some(j) = &loaded.journal {
        stray_shards(&j.dir, n)?;
    }
    let clock = corridor_engine::WallClock::now();
    // In a cluster, one keeper holds and renews this process's leases from the moment each
    // is taken (see `corridor_cluster::keeper`).
    let keeper = match &loaded.cluster {
        Some(c) => Some(std::sync::Arc::new(
            corridor_cluster::LeaseKeeper::start(
                c.nats.clone(),
                corridor_cluster::lease_bucket(&c.stream),
                c.node.clone(),
                c.replicas,
                corridor_net::limits::CLUSTER_START_MAX,
                [
                    loaded.admin.as_ref().map(|a| format!("admin={}", a.address)),
                    c.relay.as_ref().map(|r| format!("relay={}", r.advertise)),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            )
            .map_err(|e| std::io::Error::other(format!("cluster: {e}")))?,
        )),
        None => None,
    };
    if let (Some(k), Some(c)) = (&keeper, &loaded.cluster) {
        let count = u16::try_from(n).unwrap_or(u16::MAX);
        k.agree_shards(&c.stream, c.replicas, count)
            .map_err(|e| std::io::Error::other(format!("cluster: {e}")))?;
    }
    // A node of a cluster runs the shards its section names (by default all of them), and
    // reaches the others' over node links to the nodes that run them.
    let run: Vec<usize> = (0..n).filter(|&k| loaded.cluster.as_ref().is_none_or(|c| c.runs(k))).collect();
    if let Some(shards) = loaded.cluster.as_ref().and_then(|c| c.shards.as_ref()) {
        if let Some(k) = shards.iter().find(|&&k| usize::from(k) >= n) {
            return Err(std::io::Error::other(format!(
                "cluster: this node runs shard {k}, and the switch runs {n} shards (0-{})",
                n - 1
            )));
        }
    }
    let owners = loaded.cluster.as_ref().filter(|_| run.len() < n).map(owner_lookup);
    let mut parts = Vec::with_capacity(run.len());
    for &k in &run {
        let engine = plan.config_for(&loaded.engine, k);
        let (listens, dials) =
            corridor_net::shard_links(&plan, &loaded.engine, k, &loaded.net.listens, &loaded.net.dials);
        // The node link listener is the switch's, on its first shard.
        let relay = loaded.net.relay.clone().filter(|_| Some(&k) == run.first()).map(|mut r| {
            r.owners.clone_from(&owners);
            r
        });
        let net = NetConfig { listens, dials, drain_timeout: loaded.net.drain_timeout, journal: None, relay };
        let part = match &loaded.journal {
            None => corridor_net::ShardParts {
                shard: k,
                engine: corridor_engine::Engine::new(engine, clock),
                net,
            },
            Some(j) => {
                let dir = corridor_net::journal::shard_dir(&j.dir, k);
                // In a cluster, the shard is taken (its lease) and its journal brought up to
                // the stream's before it is recovered.
                let cluster = match (&loaded.cluster, &keeper) {
                    (Some(c), Some(keeper)) => {
                        let shard = u16::try_from(k).unwrap_or(u16::MAX);
                        Some((c, take_shard(&dir, c, shard, keeper)?))
                    }
                    _ => None,
                };
                let at = ShardJournal { dir, shard: k, released: None };
                replicated(engine, net, j, at, cluster, (clock, loaded.digest))?
            }
        };
        parts.push(part);
    }
    let takeover = match (&loaded.cluster, &keeper, &loaded.journal) {
        (Some(c), Some(k), Some(j)) if !c.takes_over.is_empty() => Some(Takeover {
            keeper: std::sync::Arc::clone(k),
            plan: plan.clone(),
            journal: j.clone(),
            cluster: c.clone(),
        }),
        _ => None,
    };
    Ok((parts, plan, takeover))
}

/// Where cluster `c`'s nodes learn which node runs which shard: its lease bucket.
pub(crate) fn owner_lookup(c: &corridor_config::ClusterSettings) -> corridor_net::OwnerLookup {
    corridor_net::OwnerLookup { servers: c.nats.clone(), bucket: corridor_cluster::lease_bucket(&c.stream) }
}

/// What a node of a cluster needs to start a shard it takes over while it runs (its node
/// died): the lease keeper, the shard plan it started with, its journal and cluster
/// settings (which no reload changes).
pub(crate) struct Takeover {
    keeper: std::sync::Arc<corridor_cluster::LeaseKeeper>,
    /// The plan the switch started with.
    plan: corridor_engine::shards::ShardPlan,
    journal: JournalSettings,
    cluster: corridor_config::ClusterSettings,
}

impl Takeover {
    /// The shards this node takes over.
    pub(crate) fn shards(&self) -> &[u16] {
        &self.cluster.takes_over
    }

    /// Takes shard `k`'s lease if it is free now (blocking): `Ok(false)` while another node
    /// holds it. From then on the keeper renews it.
    ///
    /// # Errors
    ///
    /// The lease bucket cannot be read.
    pub(crate) fn take_lease(&self, k: u16) -> std::io::Result<bool> {
        match self.keeper.take(k, false, std::time::Duration::ZERO) {
            Ok(()) => Ok(true),
            Err(corridor_cluster::TakeError::Held(_)) => Ok(false),
            Err(e) => Err(std::io::Error::other(format!("cluster: shard {k}: {e}"))),
        }
    }

    /// Shard `k`, its lease taken ([`Takeover::take_lease`]), made ready to start (blocking):
    /// its journal brought up to the stream's and recovered as at start, on the
    /// configuration the node serves now (`current`: the cluster's, with every reload since
    /// the start).
    ///
    /// # Errors
    ///
    /// The shard cannot be recovered (its lease is held: give it up, [`Takeover::give_up`]).
    pub(crate) fn shard(
        &self,
        k: u16,
        current: &corridor_config::reload::Current,
    ) -> std::io::Result<corridor_net::ShardParts> {
        let shard = usize::from(k);
        let dir = corridor_net::journal::shard_dir(&self.journal.dir, shard);
        let taken = catch_up(&dir, &self.cluster, k, &self.keeper)?;
        // The plan the switch runs now: a reload appends participants, it never moves one.
        let plan = self
            .plan
            .extended(&current.engine)
            .map_err(|e| std::io::Error::other(format!("cluster: shard {k}: {e}")))?;
        let engine = plan.config_for(&current.engine, shard);
        let n = &current.net;
        let (listens, dials) = corridor_net::shard_links(&plan, &current.engine, shard, &n.listens, &n.dials);
        let net = NetConfig { listens, dials, drain_timeout: n.drain_timeout, journal: None, relay: None };
        let at = ShardJournal { dir, shard, released: None };
        let clock = corridor_engine::WallClock::now();
        replicated(engine, net, &self.journal, at, Some((&self.cluster, taken)), (clock, current.digest))
    }

    /// Gives shard `k`'s lease up (a takeover that failed after taking it).
    pub(crate) async fn give_up(&self, k: u16) {
        self.keeper.release(k).await;
    }
}

/// Binds the switch this configuration describes (inside a tokio runtime), and, on a node
/// of a cluster that runs some of the shards, the front that relays the others' partners
/// to the nodes that run them (kept for as long as the switch runs).
///
/// # Errors
///
/// A listening address that cannot be bound.
pub(crate) async fn bind(loaded: Loaded) -> std::io::Result<Bound> {
    use crate::front::{Front, Relaying};
    // A node of a cluster that may wait for its shards relays its partners' connections to
    // the node that serves them meanwhile (`crate::front`); once it has its shards it stops,
    // and the switch takes the addresses — but those of the shards other nodes run, which a
    // front goes on relaying.
    let waiting = Front::plan(&loaded, Relaying::Waiting).map(Front::start).transpose()?;
    let others: Vec<(u16, crate::front::FrontPlan)> = (0..u16::try_from(loaded.shards).unwrap_or(u16::MAX))
        .filter_map(|k| Some((k, Front::plan(&loaded, Relaying::Shard(k))?)))
        .collect();
    let (parts, plan, takeover) = shards_of(loaded)?;
    drop(waiting);
    let switch = corridor_net::Switch::bind_shards(parts).await?;
    switch.handle().set_plan(plan);
    let mut fronts = Vec::with_capacity(others.len());
    for (k, p) in others {
        fronts.push((k, Front::start(p)?));
    }
    Ok(Bound { switch, fronts, takeover })
}

/// A switch bound (see [`bind`]).
pub(crate) struct Bound {
    pub(crate) switch: corridor_net::Switch,
    /// Per shard another node runs, the front relaying its partners there.
    pub(crate) fronts: Vec<(u16, crate::front::Front)>,
    /// A node that takes shards over while it runs: what it needs to.
    pub(crate) takeover: Option<Takeover>,
}

/// Starts the switch this configuration describes on a thread of its own (and its other
/// shards on theirs).
///
/// # Errors
///
/// The runtime cannot start or a listening address cannot be bound.
pub fn start(loaded: Loaded) -> std::io::Result<corridor_net::Running> {
    let (parts, plan) = into_shards(loaded)?;
    let running = corridor_net::Running::start_shards(parts)?;
    running.handle().set_plan(plan);
    Ok(running)
}

/// A line on stderr for what the operator should know at start, before logging is set up
/// by the binary (this crate does not log).
fn tracing_free_log(line: &str) {
    eprintln!("{line}");
}

/// Refuses a journal directory holding the journal of shard `k` ≥ `n`: what it owes would
/// never be recovered.
fn stray_shards(dir: &Path, n: usize) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(k) =
            name.to_str().and_then(|s| s.strip_prefix("shard-")).and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        let has_segments = std::fs::read_dir(e.path())
            .map(|d| d.flatten().any(|f| f.file_name().to_string_lossy().ends_with(".seg")))
            .unwrap_or(false);
        if k >= n && has_segments {
            return Err(std::io::Error::other(format!(
                "journal: {} is the journal of shard {k}, and this switch runs {n} shards: run at least {} \
                 shards to recover it",
                e.path().display(),
                k + 1
            )));
        }
    }
    Ok(())
}

/// In a cluster: shard `shard`'s lease taken (waiting for its last holder's to expire), then
/// its journal in `dir` brought up to what the shard's subject holds — the records a node
/// that is gone (or this node's lost disk) journaled, written as a new segment — so that
/// recovery reads them as a restart does. The lease taken, the subject fenced
/// (`corridor_cluster::stream::fence_taken`), then read, and what was read expected at the
/// first append: a deposed owner has nothing to slip in, and what it had in flight is in the
/// read or never in the subject.
fn take_shard(
    dir: &Path,
    c: &corridor_config::ClusterSettings,
    shard: u16,
    keeper: &std::sync::Arc<corridor_cluster::LeaseKeeper>,
) -> std::io::Result<corridor_net::journal::Taken> {
    // Where the journal's segments begin (what came before is in its checkpoint), read
    // before the lease is taken.
    let (local_first, local_last) = local_span(dir, shard)?;
    // The lease first (a standby waits for it without bound), kept renewed from now on.
    take_lease(c, shard, keeper)?;
    catch_up_from(dir, c, shard, keeper, (local_first, local_last))
}

/// Shard `shard`'s lease taken for this node (a standby waits for it without bound; any
/// other node gives up after `LEASE_WAIT_MAX`), kept renewed from now on.
fn take_lease(
    c: &corridor_config::ClusterSettings,
    shard: u16,
    keeper: &std::sync::Arc<corridor_cluster::LeaseKeeper>,
) -> std::io::Result<()> {
    use corridor_cluster::limits::LEASE_WAIT_MAX;
    let err = |e: String| std::io::Error::other(format!("cluster: shard {shard}: {e}"));
    match keeper.take(shard, false, std::time::Duration::ZERO) {
        Ok(()) => {}
        Err(corridor_cluster::TakeError::Held(holder)) if c.standby => {
            tracing_free_log(&format!(
                "cluster: shard {shard}: standby: its lease is held by {}; waiting to take it over",
                holder.as_deref().unwrap_or("another node")
            ));
            let since = std::time::Instant::now();
            keeper.take(shard, true, LEASE_WAIT_MAX).map_err(|e| err(e.to_string()))?;
            tracing_free_log(&format!(
                "cluster: shard {shard}: standby: the lease is taken, after {} ms",
                since.elapsed().as_millis()
            ));
        }
        Err(_) => keeper.take(shard, c.standby, LEASE_WAIT_MAX).map_err(|e| err(e.to_string()))?,
    }
    Ok(())
}

/// Shard `shard`'s journal in `dir` brought up to what its subject holds, its lease held
/// (see [`take_shard`]).
fn catch_up(
    dir: &Path,
    c: &corridor_config::ClusterSettings,
    shard: u16,
    keeper: &std::sync::Arc<corridor_cluster::LeaseKeeper>,
) -> std::io::Result<corridor_net::journal::Taken> {
    let (first, last) = local_span(dir, shard)?;
    catch_up_from(dir, c, shard, keeper, (first, last))
}

/// Where the journal in `dir` begins (what came before is in its checkpoint) and its last
/// record.
fn local_span(dir: &Path, shard: u16) -> std::io::Result<(u64, u64)> {
    let err = |e: String| std::io::Error::other(format!("cluster: shard {shard}: {e}"));
    let local_last = corridor_net::journal::recover(dir)
        .map_err(|e| err(format!("journal: {e}")))?
        .next_seq
        .saturating_sub(1);
    let local_first = corridor_net::journal::first_segment(dir)
        .map_err(|e| err(format!("journal: {e}")))?
        .map_or(local_last + 1, |first| first.min(local_last + 1));
    Ok((local_first, local_last))
}

/// [`catch_up`], the journal's span read before the lease was taken.
fn catch_up_from(
    dir: &Path,
    c: &corridor_config::ClusterSettings,
    shard: u16,
    keeper: &std::sync::Arc<corridor_cluster::LeaseKeeper>,
    (local_first, local_last): (u64, u64),
) -> std::io::Result<corridor_net::journal::Taken> {
    let err = |e: String| std::io::Error::other(format!("cluster: shard {shard}: {e}"));
    let (servers, stream, replicas) = (c.nats.clone(), c.stream.clone(), c.replicas);
    let work = std::thread::spawn(move || -> Result<corridor_cluster::stream::Missing, String> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let deadline = std::time::Instant::now() + corridor_net::limits::CLUSTER_START_MAX;
            let client = tokio::time::timeout(
                corridor_net::limits::CLUSTER_START_MAX,
                async_nats::ConnectOptions::new().retry_on_initial_connect().connect(servers.as_slice()),
            )
            .await
            .map_err(|_| "NATS does not answer".to_owned())?
            .map_err(|e| e.to_string())?;
            let js = async_nats::jetstream::new(client.clone());
            loop {
                let read = async {
                    corridor_cluster::stream::ensure(&js, &stream, shard, replicas).await?;
                    corridor_cluster::stream::fence_taken(client.clone(), &stream, shard).await?;
                    corridor_cluster::stream::take_read(client.clone(), &stream, shard).await
                };
                match read.await {
                    Ok(m) => return Ok(m),
                    Err(e)
                        if std::time::Instant::now() >= deadline
                            || matches!(e, corridor_cluster::StreamError::OldLayout(_)) =>
                    {
                        return Err(format!("its subject: {e}"))
                    }
                    // The last owner's message arrived as the fence went: fenced again,
                    // from the subject's last sequence now.
                    Err(e @ corridor_cluster::StreamError::Fence(_)) => {
                        tracing_free_log(&format!("cluster: shard {shard}: {e}: fencing again"));
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        })
    });
    let missing = work.join().map_err(|_| err("the takeover's thread failed".into()))?.map_err(err)?;
    let taken = corridor_net::journal::Taken {
        subject_last: missing.subject_last,
        released: missing.released,
        keeper: std::sync::Arc::clone(keeper),
    };
    let covers = missing.checkpoint.as_ref().map_or(0, |c| c.covers);
    if covers > local_last {
        // This journal is behind the stream's last checkpoint (a node that was away, a lost
        // disk): it is rebuilt from the checkpoint and the records after it.
        rebuild(dir, shard, local_last > 0, &missing)?;
        return Ok(taken);
    }
    let Some((first, streamed)) = &missing.records else {
        // Nothing in the stream past its checkpoint (or at all): this journal holds as much
        // or more, and the journal loop appends what the stream lacks.
        return Ok(taken);
    };
    // Set side by side from the first record both may hold past the stream's checkpoint.
    let from = local_first.max(covers + 1);
    let streamed = corridor_journal::records_since(streamed, *first, from)
        .map_err(|e| err(format!("the stream's records: {e}")))?;
    let local_bytes: Vec<u8> = corridor_net::journal::records_from(dir, from, usize::MAX)
        .map_err(|e| err(format!("journal: {e}")))?
        .into_iter()
        .flat_map(|(_, _, b)| b)
        .collect();
    if streamed.starts_with(&local_bytes) {
        // The stream holds this journal and more (another node's since): the rest is written in.
        if streamed.len() > local_bytes.len() {
            restore_records(dir, shard, local_last + 1, &streamed[local_bytes.len()..])?;
        }
    } else if !local_bytes.starts_with(streamed) {
        // Diverged: this journal holds records the stream never acknowledged (this node died
        // between its sync and the stream's answer), and another node has appended since.
        // Nothing of those records left this node (what they gated waited for the stream):
        // the journal is set aside, for audit, and rebuilt from the stream.
        rebuild(dir, shard, true, &missing)?;
    }
    Ok(taken)
}

/// Writes `records` (numbered from `from`) into shard `shard`'s journal in `dir`.
fn restore_records(dir: &Path, shard: u16, from: u64, records: &[u8]) -> std::io::Result<()> {
    corridor_net::journal::restore_records(dir, from, records)
        .map_err(|e| std::io::Error::other(format!("cluster: shard {shard}: journal: {e}")))?;
    tracing_free_log(&format!(
        "cluster: shard {shard}: records {from}.. ({} bytes) taken from the stream into the journal",
        records.len()
    ));
    Ok(())
}

/// Shard `shard`'s journal in `dir` rebuilt from what its subject holds — its last
/// checkpoint and the records after it — the journal there first set aside, for audit, if
/// it holds anything (`aside`).
fn rebuild(
    dir: &Path,
    shard: u16,
    aside: bool,
    missing: &corridor_cluster::stream::Missing,
) -> std::io::Result<()> {
    let err = |e: String| std::io::Error::other(format!("cluster: shard {shard}: {e}"));
    if aside && dir.exists() {
        let name = dir.file_name().map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
        let to = dir.with_file_name(format!("{name}.diverged-{}", corridor_net::journal::unix_ms()));
        std::fs::rename(dir, &to).map_err(|e| err(format!("setting the journal aside: {e}")))?;
        tracing_free_log(&format!(
            "cluster: shard {shard}: the journal is not the stream's: set aside as {}, rebuilt from the stream",
            to.display()
        ));
    }
    if let Some(c) = &missing.checkpoint {
        corridor_net::journal::restore_checkpoint(dir, c.covers, &c.state)
            .map_err(|e| err(format!("journal: {e}")))?;
        tracing_free_log(&format!(
            "cluster: shard {shard}: the stream's checkpoint of records ..={} ({} bytes) taken into the journal",
            c.covers,
            c.state.len()
        ));
    }
    if let Some((first, records)) = &missing.records {
        restore_records(dir, shard, *first, records)?;
    }
    Ok(())
}

/// Where shard `shard`'s journal is (`dir`), and in a cluster its release mark as the
/// takeover read it (see `corridor_net::journal::recover_released`).
struct ShardJournal {
    dir: std::path::PathBuf,
    shard: usize,
    released: Option<u64>,
}

/// A shard's engine with its journal, recovered — in a cluster (`cluster`: its settings and
/// the takeover that brought the journal up to the stream's), replicated in the cluster's
/// stream on the shard's subject, its release mark as the takeover read it.
fn replicated(
    engine: Config,
    net: NetConfig,
    j: &JournalSettings,
    mut at: ShardJournal,
    cluster: Option<(&corridor_config::ClusterSettings, corridor_net::journal::Taken)>,
    (clock, digest): (corridor_engine::WallClock, [u8; 32]),
) -> std::io::Result<corridor_net::ShardParts> {
    let shard = u16::try_from(at.shard).unwrap_or(u16::MAX);
    let replicate = cluster.map(|(c, taken)| {
        at.released = taken.released;
        corridor_net::journal::Replicate {
            servers: c.nats.clone(),
            stream: c.stream.clone(),
            replicas: c.replicas,
            compress: c.compress,
            shard,
            taken: Some(taken),
        }
    });
    let mut part = journaled(engine, net, j, at, clock, digest)?;
    if let Some(files) = part.net.journal.as_mut() {
        files.replicate = replicate;
    }
    Ok(part)
}

/// A shard's engine with its journal, recovered.
fn journaled(
    engine: Config,
    mut net: NetConfig,
    j: &JournalSettings,
    ShardJournal { dir, shard, released }: ShardJournal,
    clock: corridor_engine::WallClock,
    digest: [u8; 32],
) -> std::io::Result<corridor_net::ShardParts> {
    let outcome_window = engine.settings.duplicate_window;
    let lock =
        corridor_net::control::lock(&dir).map_err(|e| std::io::Error::other(format!("journal: {e}")))?;
    let recovered = corridor_net::journal::recover_released(&dir, released)
        .map_err(|e| std::io::Error::other(format!("journal: {e}")))?;
    if recovered.owed.unreleased > 0 {
        tracing_free_log(&format!(
            "journal {}: {} approvals recorded after the last release mark (record {}) may never have \
             reached their originators: left open, to be reversed",
            dir.display(),
            recovered.owed.unreleased,
            released.unwrap_or(0)
        ));
    }
    if let Some((seq, at)) = recovered.cut {
        tracing_free_log(&format!(
            "journal {}: a torn tail was cut at segment {seq:020}.seg, offset {at}",
            dir.display()
        ));
    }
    let key = corridor_journal::request::PanKey::new(j.key_id, &j.key)
        .map_err(|e| std::io::Error::other(format!("journal key: {e}")))?;
    // Each shard's journal has nonces of its own under the one key.
    let mut nonce = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| std::io::Error::other("no system randomness for the journal's nonces"))?;
    let journal = corridor_engine::Journal::new(
        j.policy,
        recovered.next_seq,
        recovered.last.map(|(_, len)| len),
        key,
        nonce,
    );
    net.journal = Some(corridor_net::journal::JournalFiles {
        dir,
        last_segment: recovered.last,
        preallocate: j.preallocate.then_some(j.policy.segment_bytes),
        lock: Some(lock),
        checkpoint_segments: j.checkpoint_segments,
        outcomes: if j.compact_checkpoints {
            corridor_journal::recovery::OutcomesFormat::Compact
        } else {
            corridor_journal::recovery::OutcomesFormat::Records
        },
        outcome_window,
        retain: j.retain,
        reserve_bytes: j.reserve_bytes,
        replicate: None,
        fault: None,
    });
    let mut engine = corridor_engine::Engine::with_journal(engine, clock, journal);
    engine.set_shard(shard);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    engine.record_config(digest);
    let done = engine.resume(&recovered.owed, std::time::Instant::now(), now_ms);
    if done.reversed + done.crossing + done.reversals + done.exceptions + done.unresolved > 0 {
        tracing_free_log(&format!(
            "journal: the last run left {} requests forwarded without an answer (reversing them toward \
             their destinations, reason 68), {} more another shard sent (closed 68; that shard reverses \
             them), {} reversals and advices unacknowledged (resumed), {} in the exception queue; {} could \
             not be acted on",
            done.reversed, done.crossing, done.reversals, done.exceptions, done.unresolved
        ));
    }
    Ok(corridor_net::ShardParts { shard, engine, net })
}
