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
    let n = loaded.shards.max(1);
    let plan = corridor_engine::shards::ShardPlan::new(n, &loaded.engine);
    if let Some(j) = &loaded.journal {
        stray_shards(&j.dir, n)?;
    }
    let clock = corridor_engine::WallClock::now();
    let mut parts = Vec::with_capacity(n);
    for k in 0..n {
        let engine = plan.config_for(&loaded.engine, k);
        let (listens, dials) =
            corridor_net::shard_links(&plan, &loaded.engine, k, &loaded.net.listens, &loaded.net.dials);
        let net = NetConfig { listens, dials, drain_timeout: loaded.net.drain_timeout, journal: None };
        let part = match &loaded.journal {
            None => corridor_net::ShardParts { engine: corridor_engine::Engine::new(engine, clock), net },
            Some(j) => {
                let dir = if k == 0 { j.dir.clone() } else { j.dir.join(format!("shard-{k}")) };
                let replicate = loaded.cluster.as_ref().map(|c| corridor_net::journal::Replicate {
                    servers: c.nats.clone(),
                    stream: c.stream.clone(),
                    replicas: c.replicas,
                    shard: u16::try_from(k).unwrap_or(u16::MAX),
                });
                let mut part = journaled(engine, net, j, dir, clock, loaded.digest, k)?;
                if let Some(files) = part.net.journal.as_mut() {
                    files.replicate = replicate;
                }
                part
            }
        };
        parts.push(part);
    }
    Ok((parts, plan))
}

/// Binds the switch this configuration describes (inside a tokio runtime).
///
/// # Errors
///
/// A listening address that cannot be bound.
pub async fn bind(loaded: Loaded) -> std::io::Result<corridor_net::Switch> {
    let (parts, plan) = into_shards(loaded)?;
    let switch = corridor_net::Switch::bind_shards(parts).await?;
    switch.handle().set_plan(plan);
    Ok(switch)
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

/// A shard's engine with its journal in `dir`, recovered.
fn journaled(
    engine: Config,
    mut net: NetConfig,
    j: &JournalSettings,
    dir: std::path::PathBuf,
    clock: corridor_engine::WallClock,
    digest: [u8; 32],
    shard: usize,
) -> std::io::Result<corridor_net::ShardParts> {
    let outcome_window = engine.settings.duplicate_window;
    let lock =
        corridor_net::control::lock(&dir).map_err(|e| std::io::Error::other(format!("journal: {e}")))?;
    let recovered =
        corridor_net::journal::recover(&dir).map_err(|e| std::io::Error::other(format!("journal: {e}")))?;
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
    if done.reversed + done.reversals + done.exceptions + done.unresolved > 0 {
        tracing_free_log(&format!(
            "journal: the last run left {} requests forwarded without an answer (reversing them toward \
             their destinations, reason 68), {} reversals and advices unacknowledged (resumed), {} in the \
             exception queue; {} could not be acted on",
            done.reversed, done.reversals, done.exceptions, done.unresolved
        ));
    }
    Ok(corridor_net::ShardParts { engine, net })
}
