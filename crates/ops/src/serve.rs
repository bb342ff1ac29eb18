//! `corridor serve`: the switch's shard 0 on one current-thread runtime (its other shards
//! on threads of their own), the admin server on a thread of its own, reloads on `SIGHUP` and `POST /reload`, and systemd's notify protocol.
//!
//! Under systemd (`Type=notify`, see `crates/corridor/ops/systemd/corridor.service`) the switch
//! says `READY=1` once every listener is bound and the admin server is up, `RELOADING=1`
//! then `READY=1` around each reload, `STOPPING=1` when the drain begins, and pings the
//! watchdog at half its interval — each ping only after the switch's thread answered, so a
//! switch whose event loop is stuck is restarted. Outside systemd all of it is a no-op.

use std::{
    future::Future,
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use corridor_config::{reload::Current, Loaded};
use corridor_net::Handle;
use tracing::{error, info, warn};

use crate::admin::{self, ReloadCounts, ReloadError, Reloader};

/// Where a running switch came from, for reloads.
pub struct Source {
    /// The configuration file.
    pub path: PathBuf,
    /// Engine shards over the file's (`corridor serve --shards`), kept when a cluster's
    /// configuration is served instead of the file's.
    pub shards: Option<usize>,
}

/// Why a switch could not be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// A listening address cannot be bound (or the switch's threads started).
    Start(std::io::Error),
    /// The admin server's address cannot be bound.
    Admin(std::io::Error),
    /// The switch failed while it ran.
    Switch(std::io::Error),
    /// The cluster's configuration cannot be learned or served here.
    Cluster(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Start(e) => write!(f, "cannot start the switch: {e}"),
            Self::Admin(e) => write!(f, "cannot start the admin server: {e}"),
            Self::Switch(e) => write!(f, "switch failed: {e}"),
            Self::Cluster(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Start(e) | Self::Admin(e) | Self::Switch(e) => Some(e),
            Self::Cluster(_) => None,
        }
    }
}

/// Runs the switch described by `config` until `shutdown` completes (or `POST /drain`),
/// then drains and returns. With `source`, `SIGHUP` and `POST /reload` reload it.
///
/// # Errors
///
/// A listening address that cannot be bound, or a switch that fails.
pub async fn run(
    config: Loaded,
    source: Option<Source>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // A node of a cluster serves the cluster's configuration (see `shared_config`).
    let (mut config, shared) = match (config.cluster.clone(), &source) {
        (Some(c), Some(s)) => {
            let (l, shared) =
                crate::shared_config::join(config, &c, s.path.clone()).await.map_err(ServeError::Cluster)?;
            (l, Some(shared))
        }
        _ => (config, None),
    };
    if let Some(n) = source.as_ref().and_then(|s| s.shards) {
        config.shards = n;
    }
    let node = config.cluster.as_ref().map(|c| c.node.clone());
    let current = Arc::new(tokio::sync::Mutex::new(Current::of(&config)));
    let admin_settings = config.admin.clone();
    let journal_dir = config.journal.as_ref().map(|j| j.dir.clone());
    let cluster = config.cluster.as_ref().map(|c| admin::ClusterAccess {
        node: c.node.clone(),
        servers: c.nats.clone(),
        stream: c.stream.clone(),
        config: shared.clone(),
    });
    let token = Arc::new(std::sync::RwLock::new(
        admin_settings.as_ref().map(|a| a.token.clone()).unwrap_or_default(),
    ));
    // A node of a cluster may wait in start-up for its shards (a standby, for as long as
    // another node holds them): meanwhile a server of its own answers on the admin address
    // (health, readiness, the cluster), stopped once the switch is up for the real one.
    // The admin address is bound once: the waiting server hands its socket to the switch's.
    let admin_listener =
        admin_settings.as_ref().map(|a| admin::listen(a.address)).transpose().map_err(ServeError::Admin)?;
    let waiting = match (&admin_listener, &cluster) {
        (Some(l), Some(access)) => Some(
            admin::standby::start_waiting(
                l.try_clone().map_err(ServeError::Admin)?,
                Arc::clone(&token),
                access.clone(),
            )
            .map_err(ServeError::Admin)?,
        ),
        _ => None,
    };
    let crate::startup::Bound { switch, fronts, takeover } =
        crate::startup::bind(config).await.map_err(ServeError::Start)?;
    drop(waiting);
    let handle = switch.handle();
    // A node that runs some of the shards relays the others' partners for as long as its
    // switch runs — or, for a shard it takes over, until it does.
    let fronts = Arc::new(std::sync::Mutex::new(fronts));
    let taking = takeover.map(|t| {
        tokio::spawn(take_over(Arc::new(t), handle.clone(), Arc::clone(&fronts), Arc::clone(&current)))
    });
    let counts = Arc::new(ReloadCounts::default());
    let reloader: Option<Reloader> = source.map(|s| {
        reloader(
            Origin { path: s.path, node: node.clone(), shared: shared.clone() },
            Arc::clone(&current),
            handle.clone(),
            Arc::clone(&counts),
            Arc::clone(&token),
        )
    });
    // Every revision of the cluster's configuration another node publishes, applied here.
    let follow = shared.map(|s| {
        tokio::spawn(crate::shared_config::follow(
            s,
            Arc::clone(&current),
            handle.clone(),
            Arc::clone(&token),
        ))
    });
    let admin = match admin_settings.zip(admin_listener) {
        Some((a, listener)) => {
            let cfg = admin::AdminConfig {
                token: Arc::clone(&token),
                token_name: a
                    .token_file
                    .file_name()
                    .map_or_else(|| "token".into(), |n| n.to_string_lossy().into_owned()),
                journal_dir,
                reloader: reloader.clone(),
                reload_counts: Arc::clone(&counts),
                cluster,
            };
            Some(admin::start(listener, cfg, handle.clone()).map_err(ServeError::Admin)?)
        }
        None => None,
    };
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("switching")]);
    let watchdog = tokio::spawn(watchdog(handle.clone()));
    let hup = tokio::spawn(hangups(handle.clone(), reloader));
    // Every way to stop (a signal, POST /drain) goes through the switch's Shutdown, so the
    // service manager hears STOPPING=1 once, when the drain begins.
    let stopped = handle.shutdown();
    let said = tokio::spawn(async move {
        stopped.wait().await;
        notify(&[sd_notify::NotifyState::Stopping]);
    });
    let trigger = handle.shutdown();
    let result = switch
        .run(async move {
            shutdown.await;
            trigger.trigger();
        })
        .await;
    if handle.shutdown().is_triggered() {
        let _ = said.await;
    } else {
        said.abort();
    }
    watchdog.abort();
    hup.abort();
    if let Some(t) = taking {
        t.abort();
    }
    if let Some(f) = follow {
        f.abort();
    }
    drop(admin);
    result.map(drop).map_err(ServeError::Switch)
}

/// How often a node that takes shards over looks for one whose node died.
const TAKEOVER_POLL: Duration = Duration::from_millis(500);

/// Takes over, while the switch runs, each shard `t` names whose lease is free (its node
/// died, and no standby took it first): the lease taken, the journal brought up to the
/// stream's and recovered (`startup::Takeover`), the front relaying its partners stopped,
/// and the shard started in the running switch (`Handle::add_shard`), which then binds its
/// listening links and dials its dialed ones. A shard that cannot be started has its lease
/// given up again (another node may take it), and is tried again.
async fn take_over(
    t: Arc<crate::startup::Takeover>,
    handle: Handle,
    fronts: Arc<std::sync::Mutex<Vec<(u16, crate::front::Front)>>>,
    current: Arc<tokio::sync::Mutex<Current>>,
) {
    let stop = handle.shutdown();
    let said = corridor_net::relay::Throttle::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(TAKEOVER_POLL) => {}
            () = stop.wait() => return,
        }
        for &k in t.shards() {
            if handle.shard_ids().contains(&usize::from(k)) {
                continue;
            }
            let taker = Arc::clone(&t);
            let since = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || taker.take_lease(k)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) | Err(_) => continue,
                Ok(Err(e)) => {
                    if let Some(left_out) = said.hit() {
                        warn!(shard = k, error = %e, left_out, "cluster: the shard's lease cannot be read now");
                    }
                    continue;
                }
            }
            warn!(shard = k, "cluster: the shard's node is gone (its lease expired): taking the shard over");
            // On the configuration served now; no reload meanwhile (the shard would miss it).
            let now = current.lock().await;
            let served = now.clone();
            let taker = Arc::clone(&t);
            let parts = match tokio::task::spawn_blocking(move || taker.shard(k, &served)).await {
                Ok(Ok(parts)) => parts,
                Err(_) => {
                    t.give_up(k).await;
                    continue;
                }
                Ok(Err(e)) => {
                    error!(shard = k, error = %e, "cluster: taking the shard over failed: its lease is given up");
                    t.give_up(k).await;
                    continue;
                }
            };
            // Its partners' addresses: the front stops relaying them (and frees them) first.
            let front = fronts.lock().ok().and_then(|mut f| {
                let at = f.iter().position(|(s, _)| *s == k)?;
                Some(f.remove(at))
            });
            let _ = tokio::task::spawn_blocking(move || drop(front)).await;
            let added = handle.add_shard(parts).await;
            drop(now);
            match added {
                Ok(addrs) => info!(
                    shard = k,
                    listening = addrs.len(),
                    took_ms = since.elapsed().as_millis() as u64,
                    "cluster: shard taken over: serving it here"
                ),
                Err(e) => {
                    error!(shard = k, error = %e, "cluster: the shard taken over cannot start: its lease is given up");
                    t.give_up(k).await;
                }
            }
        }
    }
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Without NOTIFY_SOCKET (not under systemd) this does nothing.
    if let Err(e) = sd_notify::notify(false, states) {
        warn!(error = %e, "systemd notify failed");
    }
}

/// Pings systemd's watchdog at half its interval, each time after every shard's thread
/// answered (a stuck event loop, on any shard, misses the pings and systemd restarts the
/// switch).
async fn watchdog(handle: Handle) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    info!(interval_ms = every.as_millis() as u64, "systemd watchdog on");
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, handle.with_engines(|_, _| ())).await {
            Ok(Some(_)) => notify(&[sd_notify::NotifyState::Watchdog]),
            Ok(None) => return,
            Err(_) => warn!("a shard's thread did not answer within the watchdog interval"),
        }
    }
}

/// Reloads on every `SIGHUP`, audited as the signal's.
async fn hangups(handle: Handle, reloader: Option<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            let Some(r) = &reloader else {
                warn!("SIGHUP: this switch was not started from a configuration file; nothing to reload");
                continue;
            };
            let outcome = match r().await {
                Ok(c) if c.is_empty() => "ok: unchanged".to_owned(),
                Ok(c) => format!("ok: {} changes", c.len()),
                Err(e) => format!("refused: {e}"),
            };
            admin::audit_as(&handle, "SIGHUP (the service manager or a local user)", "reload", &outcome)
                .await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (handle, reloader);
        std::future::pending::<()>().await;
    }
}

/// What a reload reads and, in a cluster, where it publishes.
pub struct Origin {
    /// The configuration file.
    pub path: PathBuf,
    /// The node's name, in a cluster.
    pub node: Option<String>,
    /// The cluster's configuration, in a cluster.
    pub shared: Option<crate::shared_config::SharedConfig>,
}

/// The reload `SIGHUP` and `POST /reload` run for the switch behind `handle`, started on
/// `current` from the file `origin` names: read and check the whole file on a blocking
/// thread, compare it with the configuration in force, in a cluster publish it as the
/// cluster's, apply it on the switch's thread in one step; on any error keep the old one
/// and say why. One reload at a time; outcomes are counted in `counts`, and a new admin
/// token goes to `token`.
pub fn reloader(
    origin: Origin,
    current: Arc<tokio::sync::Mutex<Current>>,
    handle: Handle,
    counts: Arc<ReloadCounts>,
    token: Arc<std::sync::RwLock<String>>,
) -> Reloader {
    let origin = Arc::new(origin);
    Arc::new(move || {
        let (origin, current, handle, counts, token) = (
            Arc::clone(&origin),
            Arc::clone(&current),
            handle.clone(),
            Arc::clone(&counts),
            Arc::clone(&token),
        );
        Box::pin(async move {
            let mut held = current.lock().await;
            notify(&[sd_notify::NotifyState::Reloading]);
            let result = reload_once(&origin, &mut held, &handle, &token).await;
            notify(&[sd_notify::NotifyState::Ready]);
            let slot = match &result {
                Ok(c) if c.is_empty() => 1,
                Ok(_) => 0,
                Err(_) => 2,
            };
            counts.0[slot].fetch_add(1, Ordering::Relaxed);
            result
        })
    })
}

async fn reload_once(
    origin: &Origin,
    current: &mut Current,
    handle: &Handle,
    token: &std::sync::RwLock<String>,
) -> Result<Vec<String>, ReloadError> {
    let path = &origin.path;
    let (p, c, node) = (path.clone(), current.clone(), origin.node.clone());
    let checked =
        tokio::task::spawn_blocking(move || corridor_config::reload::reload(&c, &p, node.as_deref()))
            .await
            .map_err(|_| ReloadError::Thread)?;
    let r = match checked {
        Ok(r) => r,
        Err(e) => {
            let why = format!("{e:#}");
            error!(file = %path.display(), error = %why, "reload refused: the configuration in force is kept");
            return Err(ReloadError::File(why));
        }
    };
    // In a cluster, what every node will serve is published before it is served here: a
    // reload that cannot be published changes nothing anywhere.
    if let Some(shared) = &origin.shared {
        if let Err(why) = crate::shared_config::publish(shared, &r.next, current).await {
            error!(file = %path.display(), error = %why, "reload refused: the configuration in force is kept");
            return Err(ReloadError::Cluster(why));
        }
    }
    apply_checked(r, current, handle, token, &path.display().to_string()).await
}

/// Applies a checked reload (from `origin`: a file, a cluster's revision) to the switch
/// behind `handle`; `current` becomes what it serves. The changes, or why the switch
/// refused them (then nothing changed).
pub(crate) async fn apply_checked(
    r: corridor_config::reload::Reload,
    current: &mut Current,
    handle: &Handle,
    token: &std::sync::RwLock<String>,
    origin: &str,
) -> Result<Vec<String>, ReloadError> {
    let new_token = r.admin.as_ref().map(|a| a.token.clone());
    let token_changed = new_token.as_ref().is_some_and(|t| token.read().is_ok_and(|old| *old != *t));
    let mut changes = r.changes;
    if token_changed {
        changes.push("admin: token_file's token changed".into());
    }
    if changes.is_empty() {
        info!(from = %origin, "reload: nothing changed");
        *current = r.next;
        return Ok(changes);
    }
    match handle.reconfigure(r.reconfigure).await {
        None => Err(ReloadError::Stopping),
        Some(Err(why)) => {
            error!(from = %origin, error = %why, "reload refused: the configuration in force is kept");
            Err(ReloadError::Switch(why))
        }
        Some(Ok(retired)) => {
            for c in &changes {
                info!(change = %c, "reload");
            }
            info!(from = %origin, changes = changes.len(), connections_retiring = retired, "reload applied");
            if let (Some(t), Ok(mut held)) = (new_token, token.write()) {
                *held = t;
            }
            *current = r.next;
            Ok(changes)
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
