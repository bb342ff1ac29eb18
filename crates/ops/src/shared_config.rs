//! One configuration for every node of a cluster (`corridor_cluster::config`): at start a
//! node serves the cluster's configuration — it publishes its own file's when the cluster
//! has none yet, and otherwise serves the cluster's, with what it keeps of its own from its
//! own file (journal, admin, listening addresses, secrets; see `corridor_config::cluster`)
//! — and says so when its file differs. A reload on any node checks that node's file and
//! publishes it over the revision the node serves before applying it; every other node
//! watches the bucket and applies each new revision as a reload of its own. A revision a
//! node cannot apply (a certificate its disk lacks, say) is refused there, counted, shown in
//! `/cluster` and `/metrics`, and the node keeps what it serves: the alert
//! `CorridorClusterConfigBehind` fires on a node behind the cluster's revision.
//!
//! Two nodes serve different configurations only between a publication and the watch's
//! delivery of it (milliseconds; at most `CONFIG_POLL` when a watch stalled), and a node
//! never serves a configuration no node checked.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use corridor_cluster::{limits::CONFIG_POLL, ConfigStore, Published};
use corridor_config::{reload::Current, ClusterSettings, Loaded, Source};
use corridor_net::Handle;
use futures_util::StreamExt;
use tracing::{error, info, warn};

/// What a node serves of the cluster's configuration, for `/cluster` and `/metrics`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ConfigState {
    /// The bucket's revision this node serves (0: none yet).
    pub revision: u64,
    /// The node that published it.
    pub by: String,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// Its digest (SHA-256 of its encoding), hex.
    pub digest: String,
    /// The newest revision this node has seen in the bucket.
    pub latest: u64,
    /// How this node's own file differed from the cluster's when it was last read (empty:
    /// it did not, apart from what the node keeps of its own).
    pub file_differs: Vec<String>,
    /// Revisions published by other nodes and applied here.
    pub applied: u64,
    /// Revisions this node could not apply.
    pub refused: u64,
    /// The last revision refused, and why.
    pub last_refused: Option<(u64, String)>,
}

/// A node's part in the cluster's configuration.
#[derive(Clone)]
pub struct SharedConfig {
    store: ConfigStore,
    state: Arc<Mutex<ConfigState>>,
    path: PathBuf,
    node: String,
}

impl SharedConfig {
    /// What this node serves, now.
    #[must_use]
    pub fn state(&self) -> ConfigState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn serve(&self, revision: u64, by: &str, at_ms: u64, digest: &[u8; 32]) {
        if let Ok(mut s) = self.state.lock() {
            s.revision = revision;
            by.clone_into(&mut s.by);
            s.at_ms = at_ms;
            s.digest = corridor_net::tls::hex(digest);
            s.latest = s.latest.max(revision);
        }
    }

    fn refuse(&self, revision: u64, why: String) {
        error!(revision, error = %why, "cluster: the cluster's configuration is refused on this node; it keeps serving what it served");
        if let Ok(mut s) = self.state.lock() {
            s.refused += 1;
            s.last_refused = Some((revision, why));
        }
    }
}

/// At start: the configuration node `c.node` serves — the cluster's, or `loaded` (the
/// node's file, at `path`) published as the cluster's first. Waits for NATS (bounded).
///
/// # Errors
///
/// NATS does not answer in time, or the cluster's configuration cannot be served here
/// (the reason, with the revision and who published it).
pub async fn join(
    loaded: Loaded,
    c: &ClusterSettings,
    path: PathBuf,
) -> Result<(Loaded, SharedConfig), String> {
    let deadline = tokio::time::Instant::now() + corridor_net::limits::CLUSTER_START_MAX;
    let client = tokio::time::timeout_at(
        deadline,
        async_nats::ConnectOptions::new().retry_on_initial_connect().connect(c.nats.as_slice()),
    )
    .await
    .map_err(|_| "cluster: NATS does not answer".to_owned())?
    .map_err(|e| format!("cluster: {e}"))?;
    let bucket = corridor_cluster::config_bucket(&c.stream);
    let store = loop {
        match ConfigStore::open(client.clone(), &bucket, &c.node, c.replicas).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(format!("cluster: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let shared = SharedConfig {
        store,
        state: Arc::new(Mutex::new(ConfigState::default())),
        path: path.clone(),
        node: c.node.clone(),
    };
    loop {
        let current = match shared.store.current().await {
            Ok(p) => p,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(format!("cluster: {e}")),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(p) = current else {
            match shared.store.publish(&loaded.source.encode(), None).await {
                Ok(revision) => {
                    info!(
                        revision,
                        "cluster: no configuration yet: this node's file is published as the cluster's"
                    );
                    shared.serve(revision, &c.node, corridor_net::journal::unix_ms(), &loaded.digest);
                    return Ok((loaded, shared));
                }
                // Another node published first: serve its (the next turn reads it).
                Err(corridor_cluster::config::ConfigError::Conflict { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    continue
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(format!("cluster: {e}")),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        };
        let source = Source::decode(&p.body)
            .map_err(|e| format!("cluster: configuration revision {} (by {}): {e:#}", p.revision, p.by))?;
        let digest = source.digest();
        if digest == loaded.digest {
            info!(revision = p.revision, by = %p.by, "cluster: this node's file is the cluster's configuration");
            shared.serve(p.revision, &p.by, p.at_ms, &digest);
            return Ok((loaded, shared));
        }
        let (own, path2, node) = (loaded.source.clone(), path.clone(), c.node.clone());
        let adopted = tokio::task::spawn_blocking(move || {
            corridor_config::from_cluster(&source, &own, &path2, Some(&node))
        })
        .await
        .map_err(|_| "cluster: the configuration's check failed".to_owned())?
        .map_err(|e| {
            format!(
                "cluster: the cluster's configuration (revision {}, published by {}) cannot be served by this node: {e}",
                p.revision, p.by
            )
        })?;
        // What a reload of this node's file would change in what it serves.
        let differs = match corridor_config::reload::rebase(&Current::of(&adopted), loaded) {
            Ok(r) => r.changes,
            Err(e) => vec![e.to_string()],
        };
        warn!(
            revision = p.revision,
            by = %p.by,
            differences = %differs.join("; "),
            "cluster: this node's file differs from the cluster's configuration: serving the cluster's (a reload on \
             this node would publish the file over it)"
        );
        shared.serve(p.revision, &p.by, p.at_ms, &adopted.digest);
        if let Ok(mut s) = shared.state.lock() {
            s.file_differs = differs;
        }
        return Ok((adopted, shared));
    }
}

/// What a reload of this node's file (at `path`) would change in `served`; its reason
/// when it would be refused.
fn differences(served: &Current, path: &std::path::Path, node: &str) -> Vec<String> {
    match corridor_config::reload::reload(served, path, Some(node)) {
        Ok(r) => r.changes,
        Err(e) => vec![format!("{e:#}")],
    }
}

/// A reload on this node, once its file is checked (`next` is what it would serve): its
/// configuration published over the revision the node serves, when it is not the one it
/// serves already — or, when it is the cluster's newest already (a node that was behind),
/// taken as that revision without publishing.
///
/// # Errors
///
/// Another node published since, the configuration is too large, or the bucket did not
/// answer: the reload is refused and nothing changes.
pub async fn publish(shared: &SharedConfig, next: &Current, serving: &Current) -> Result<(), String> {
    if next.digest == serving.digest {
        return Ok(());
    }
    let ConfigState { revision: expected, latest, last_refused, .. } = shared.state();
    // A node behind (it refused a revision it could not serve, say) whose file is now the
    // cluster's newest configuration catches up: nothing to publish, it applies it. (Only a
    // node that has seen a newer revision asks the bucket.)
    let newer = if latest > expected { shared.store.current().await.ok().flatten() } else { None };
    if let Some(p) = newer {
        let same = Source::decode(&p.body).is_ok_and(|s| s.digest() == next.digest);
        if p.revision > expected && same {
            info!(revision = p.revision, by = %p.by, "cluster: this node's file is the cluster's newest configuration: catching up");
            shared.serve(p.revision, &p.by, p.at_ms, &next.digest);
            if let Ok(mut s) = shared.state.lock() {
                s.file_differs.clear();
            }
            return Ok(());
        }
    }
    let refused = last_refused.filter(|(r, _)| *r > expected);
    let revision = shared
        .store
        .publish(&next.source.encode(), Some(expected).filter(|r| *r > 0))
        .await
        .map_err(|e| match (e, refused) {
            (corridor_cluster::config::ConfigError::Conflict { .. }, Some((r, why))) => format!(
                "cluster: the cluster is at revision {r} (or later), which this node could not serve ({why}); \
                 once it can, reload it with the cluster's file to catch up"
            ),
            (e, _) => format!("cluster: {e}"),
        })?;
    shared.serve(revision, &shared.node, corridor_net::journal::unix_ms(), &next.digest);
    if let Ok(mut s) = shared.state.lock() {
        s.file_differs.clear();
    }
    info!(revision, replaced = expected, "cluster: this node's configuration is published as the cluster's");
    Ok(())
}

/// Follows the cluster's configuration for the switch behind `handle`, until it stops:
/// each revision newer than the one served is checked and applied as a reload (under the
/// same lock as this node's own reloads).
pub async fn follow(
    shared: SharedConfig,
    current: Arc<tokio::sync::Mutex<Current>>,
    handle: Handle,
    token: Arc<std::sync::RwLock<String>>,
) {
    loop {
        let after = shared.state().revision;
        let watched = match shared.store.watch(after, CONFIG_POLL).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "cluster: cannot watch the configuration bucket; trying again");
                tokio::time::sleep(CONFIG_POLL).await;
                continue;
            }
        };
        let mut watched = std::pin::pin!(watched);
        while let Some(p) = watched.next().await {
            let mut held = current.lock().await;
            let behind = shared.state.lock().is_ok_and(|mut s| {
                s.latest = s.latest.max(p.revision);
                let refused = s.last_refused.as_ref().map(|(r, _)| *r);
                p.revision > s.revision && Some(p.revision) > refused
            });
            if !behind {
                continue;
            }
            apply(&shared, p, &mut held, &handle, &token).await;
        }
    }
}

async fn apply(
    shared: &SharedConfig,
    p: Published,
    held: &mut Current,
    handle: &Handle,
    token: &std::sync::RwLock<String>,
) {
    let source = match Source::decode(&p.body) {
        Ok(s) => s,
        Err(e) => return shared.refuse(p.revision, format!("{e:#}")),
    };
    let digest = source.digest();
    if digest == held.digest {
        shared.serve(p.revision, &p.by, p.at_ms, &digest);
        return;
    }
    let (c, path, node) = (held.clone(), shared.path.clone(), shared.node.clone());
    let checked = tokio::task::spawn_blocking(move || {
        corridor_config::reload::reload_cluster(&c, &source, &path, Some(&node))
    })
    .await;
    let r = match checked {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return shared.refuse(p.revision, format!("{e:#}")),
        Err(_) => return shared.refuse(p.revision, "the check's thread failed".into()),
    };
    let changes = r.changes.len();
    match crate::serve::apply_checked(r, held, handle, token, &format!("cluster revision {}", p.revision))
        .await
    {
        Ok(_) => {
            info!(revision = p.revision, by = %p.by, changes, "cluster: the cluster's configuration is applied");
            shared.serve(p.revision, &p.by, p.at_ms, &digest);
            let (served, path, node) = (held.clone(), shared.path.clone(), shared.node.clone());
            let differs = tokio::task::spawn_blocking(move || differences(&served, &path, &node))
                .await
                .unwrap_or_default();
            if let Ok(mut s) = shared.state.lock() {
                s.applied += 1;
                s.file_differs = differs;
            }
        }
        Err(e) => shared.refuse(p.revision, e.to_string()),
    }
}
