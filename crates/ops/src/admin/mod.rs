//! The admin HTTP server: health, metrics, links, routes, reload, drain, the
//! store-and-forward and exception queues, transaction lookup, the cluster (on a node of
//! one), and the live monitoring page.
//!
//! It runs on a thread of its own (a current-thread runtime) and reaches the switch only
//! through its `Handle`: a snapshot, or a closure run on the switch's thread between two
//! engine calls. A slow client or a scrape never runs on the switch's thread.
//!
//! Every endpoint but `/healthz` (and the login form) needs the bearer token of the
//! configuration's `token_file`, as an `Authorization: Bearer` header or as the cookie the
//! login sets for the page. Every mutating call is audited — who (the credential and the
//! peer address), what, when, and how it ended — in the log (target `corridor::audit`) and in
//! the journal (an `Audit` record). Errors are JSON: `{"error": "..."}`.
//!
//! # Layout
//!
//! - this module: the server, authentication, audit, the JSON endpoints.
//! - `exposition`: `GET /metrics`.
//! - `monitor`: the live view and anomaly detection.
//! - `page.html`: the monitoring page (embedded; no external fetches).
//! - `transactions`: `GET /transactions`, from the journal files.
//! - `cluster`: `GET /cluster`, the node's shards beside the cluster as NATS sees it.
//! - [`standby`]: the server of a node that waits for its shards (health, readiness, the
//!   cluster), until the switch's own starts.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Path, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{sse, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use corridor_engine::{LinkAction, RouteQuery};
use corridor_net::Handle;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{info, warn};

pub(crate) mod cluster;
pub use cluster::{status_json, ClusterAccess};
pub(crate) mod exposition;
pub(crate) mod monitor;
pub(crate) mod remote;
pub mod standby;
pub(crate) mod transactions;

/// Most requests the admin server handles at once; more get 503.
pub const ADMIN_REQUESTS_MAX: usize = 64;
/// Most live event streams (monitoring pages) open at once.
pub const EVENT_STREAMS_MAX: usize = 16;
/// How often the live view is sampled and pushed to the page.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest an admin call waits for the switch's thread.
pub const SWITCH_WAIT: Duration = Duration::from_secs(5);
/// Longest the server's stop waits for calls in progress.
pub const STOP_WAIT: Duration = Duration::from_secs(2);
/// The login cookie's name.
const COOKIE: &str = "corridor_admin";

/// What a reload did: `Ok(changes)` (none: unchanged), or why it was refused.
pub type ReloadFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, ReloadError>> + Send>>;

/// Why a reload was refused; the configuration in force is kept, all of it.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file cannot be used: its checks' reason, with the place in the file.
    File(String),
    /// The thread that read and checked the file failed.
    Thread,
    /// The switch is stopping.
    Stopping,
    /// The running switch refused the new configuration.
    Switch(corridor_net::ReconfigureError),
    /// In a cluster: it could not be published as the cluster's configuration.
    Cluster(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(why) => f.write_str(why),
            Self::Thread => f.write_str("the reload's thread failed"),
            Self::Stopping => f.write_str("the switch is stopping"),
            Self::Switch(e) => e.fmt(f),
            Self::Cluster(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ReloadError {}

/// What reloads the configuration, for `POST /reload` and `SIGHUP`: returns the diff it
/// applied (empty when nothing changed) or why the old configuration was kept.
pub type Reloader = Arc<dyn Fn() -> ReloadFuture + Send + Sync>;

/// What the admin server needs.
pub struct AdminConfig {
    /// The bearer token (a reload may replace it).
    pub token: Arc<std::sync::RwLock<String>>,
    /// The token file's name (for the audit trail: which credential was used).
    pub token_name: String,
    /// The journal directory, for transaction lookups.
    pub journal_dir: Option<PathBuf>,
    /// The reload, when the switch runs from a file.
    pub reloader: Option<Reloader>,
    /// Where reload outcomes are counted (by `POST /reload` and `SIGHUP` alike).
    pub reload_counts: Arc<ReloadCounts>,
    /// The cluster this switch is a node of, for `/cluster` (`None`: a single node).
    pub cluster: Option<cluster::ClusterAccess>,
}

struct AdminState {
    token: Arc<std::sync::RwLock<String>>,
    token_name: String,
    handle: Handle,
    journal_dir: Option<PathBuf>,
    reloader: Option<Reloader>,
    /// Reloads by outcome (see [`exposition::RELOAD_OUTCOMES`]).
    reloads: Arc<ReloadCounts>,
    streams: AtomicUsize,
    live: watch::Receiver<Arc<monitor::View>>,
    active: Mutex<Vec<monitor::Anomaly>>,
    busy: tokio::sync::Semaphore,
    /// Cancelled when the server stops: event streams end with it.
    stop: tokio_util::sync::CancellationToken,
    /// The cluster this switch is a node of.
    cluster: Option<cluster::ClusterAccess>,
    /// A connection to its NATS servers, made at the first `/cluster`.
    nats: tokio::sync::OnceCell<async_nats::Client>,
}

/// A running admin server.
pub struct Admin {
    address: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Reload outcomes (applied, unchanged, refused) counted by whoever reloads (`SIGHUP`
/// too), shown in `/metrics`.
#[derive(Debug, Default)]
pub struct ReloadCounts(pub [AtomicU64; 3]);

impl Admin {
    /// The address it listens on.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the server.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The admin address bound, once for the life of the process: a node that waits for its
/// shards serves it with [`standby::start_waiting`] (on a clone) and then with [`start`],
/// so a request made while one hands over to the other waits in the backlog instead of
/// being refused.
///
/// # Errors
///
/// The address cannot be bound.
pub fn listen(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| std::io::Error::new(e.kind(), format!("admin: cannot listen on {address}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Starts the admin server for the switch behind `handle`, on `listener` (bound by
/// [`listen`]).
///
/// # Errors
///
/// The thread cannot start.
pub fn start(listener: std::net::TcpListener, config: AdminConfig, handle: Handle) -> std::io::Result<Admin> {
    let address = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new().name("corridor-admin".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            warn!("admin: cannot start its runtime");
            return;
        };
        rt.block_on(serve(listener, config, handle, stop2));
    })?;
    info!(%address, "admin: listening");
    Ok(Admin { address, stop, thread: Some(thread) })
}

async fn serve(
    listener: std::net::TcpListener,
    config: AdminConfig,
    handle: Handle,
    stop: tokio_util::sync::CancellationToken,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        warn!("admin: cannot use its listener");
        return;
    };
    let (live_tx, live) = watch::channel(Arc::new(monitor::View::default()));
    let state = Arc::new(AdminState {
        token: config.token,
        token_name: config.token_name,
        handle: handle.clone(),
        journal_dir: config.journal_dir,
        reloader: config.reloader,
        reloads: config.reload_counts,
        streams: AtomicUsize::new(0),
        live,
        active: Mutex::new(Vec::new()),
        busy: tokio::sync::Semaphore::new(ADMIN_REQUESTS_MAX),
        stop: stop.clone(),
        cluster: config.cluster,
        nats: tokio::sync::OnceCell::new(),
    });
    tokio::spawn(sample_loop(Arc::clone(&state), live_tx, stop.clone()));
    let open = Router::new().route("/healthz", get(healthz)).route("/login", get(login));
    let guarded = Router::new()
        .route("/", get(page))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .route("/api/live", get(live_view))
        .route("/links", get(links))
        .route("/links/{name}/{action}", post(link_action))
        .route("/routes", get(routes))
        .route("/routes/lookup", get(route_lookup))
        .route("/reload", post(reload))
        .route("/drain", post(drain))
        .route("/saf", get(saf))
        .route("/saf/{id}/{action}", post(saf_action))
        .route("/exceptions", get(exceptions))
        .route("/transactions", get(transactions_lookup))
        .route("/cluster", get(cluster::cluster))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), authorize));
    let app = open
        .merge(guarded)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), bounded))
        .with_state(Arc::clone(&state));
    let graceful = stop.clone();
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { graceful.cancelled().await });
    // A graceful stop waits for the calls in progress, at most STOP_WAIT (event streams end
    // at the stop; a client that holds a call open does not hold up the switch's exit).
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                warn!(error = %e, "admin: server failed");
            }
        }
        () = async { stop.cancelled().await; tokio::time::sleep(STOP_WAIT).await } => {
            warn!("admin: calls still open at the stop were cut");
        }
    }
}

/// Samples the switch once a second for the live view, logs anomalies as they start and
/// end, and pushes the view to the pages.
async fn sample_loop(
    state: Arc<AdminState>,
    live: watch::Sender<Arc<monitor::View>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut m = monitor::Monitor::default();
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let Ok(Some(snap)) = tokio::time::timeout(SWITCH_WAIT, state.handle.snapshot()).await else {
            continue;
        };
        for change in m.observe(*snap, corridor_net::journal::unix_ms()) {
            match change {
                monitor::Change::Started(a) => {
                    warn!(target: "corridor::anomaly", kind = a.kind.name(), subject = %a.subject, detail = %a.detail, "anomaly started");
                }
                monitor::Change::Ended(a) => {
                    info!(target: "corridor::anomaly", kind = a.kind.name(), subject = %a.subject, "anomaly ended");
                }
            }
        }
        if let Ok(mut active) = state.active.lock() {
            *active = m.active();
        }
        let _ = live.send(Arc::new(m.view().clone()));
    }
}

/// A JSON error.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn switch_gone() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the switch is not answering (stopping or stopped)")
}

/// At most [`ADMIN_REQUESTS_MAX`] requests at once (event streams hold no permit).
async fn bounded(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.busy.try_acquire() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "admin server busy");
    };
    next.run(req).await
}

/// Constant-time comparison: the token's length may show, its content does not.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(str::trim);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
}

impl AdminState {
    fn token_is(&self, t: &str) -> bool {
        self.token.read().is_ok_and(|token| same(t.as_bytes(), token.as_bytes()))
    }
}

async fn authorize(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    match refusal(req.headers(), &state.token) {
        None => next.run(req).await,
        Some(r) => r,
    }
}

/// Why a call with `headers` is refused, when its bearer token is not `token` (401, saying
/// whether one was presented); `None`: it may go on. Every admin server's guard.
fn refusal(headers: &HeaderMap, token: &std::sync::RwLock<String>) -> Option<Response> {
    match presented(headers) {
        Some(t) if token.read().is_ok_and(|token| same(t.as_bytes(), token.as_bytes())) => None,
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => {
            let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is needed (Authorization: Bearer …)");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(r)
        }
    }
}

/// Records an operator's call in the log and the journal, and returns its outcome.
async fn audit(state: &AdminState, peer: SocketAddr, action: &str, outcome: &str) {
    let who = format!("token {} from {peer}", state.token_name);
    audit_as(&state.handle, &who, action, outcome).await;
}

/// Records an operator's change (who, what, outcome) in the log and the journal, for any
/// caller of the switch (the admin API, `SIGHUP`).
pub async fn audit_as(handle: &Handle, who: &str, action: &str, outcome: &str) {
    let at = corridor_net::journal::unix_ms();
    info!(target: "corridor::audit", who, action, outcome, at_unix_ms = at, "audit");
    let (who, action, outcome) = (who.to_owned(), action.to_owned(), outcome.to_owned());
    let journaled = handle.with_engine(move |e, now| e.record_audit(at, &who, &action, &outcome, now)).await;
    if journaled.is_none() {
        warn!(target: "corridor::audit", "audit record not journaled: the switch is stopping");
    }
}

async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    // Every shard's thread answers, or the switch is not healthy.
    match tokio::time::timeout(SWITCH_WAIT, state.handle.with_engines(|_, _| ())).await {
        Ok(Some(_)) => Json(json!({ "status": "ok" })).into_response(),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "a shard's thread is not answering"),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

/// The page's login: `GET /login?token=…` sets an HttpOnly cookie and sends the browser to
/// the page (the token leaves the address bar); without a token, a form that does the same.
async fn login(State(state): State<Arc<AdminState>>, Query(q): Query<LoginQuery>) -> Response {
    match q.token {
        Some(t) if state.token_is(t.trim()) => {
            let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", t.trim());
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Some(_) => error(StatusCode::UNAUTHORIZED, "wrong token"),
        None => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>Corridor</title><form method=get action=/login>\
             <label>Admin token <input name=token type=password autofocus></label> <button>Open</button></form>",
        )
            .into_response(),
    }
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], PAGE)
        .into_response()
}

/// The monitoring page, embedded: no external fetches.
const PAGE: &str = include_str!("page.html");

async fn live_view(State(state): State<Arc<AdminState>>) -> Response {
    let view = state.live.borrow().clone();
    Json(&*view).into_response()
}

/// Server-sent events: the live view once a second.
async fn events(State(state): State<Arc<AdminState>>) -> Response {
    if state.streams.fetch_add(1, Ordering::Relaxed) >= EVENT_STREAMS_MAX {
        state.streams.fetch_sub(1, Ordering::Relaxed);
        return error(StatusCode::SERVICE_UNAVAILABLE, "too many monitoring pages open");
    }
    struct Open(Arc<AdminState>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.streams.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let open = Open(Arc::clone(&state));
    let ends = state.stop.clone().cancelled_owned();
    let stream =
        tokio_stream::wrappers::WatchStream::new(state.live.clone()).take_until(ends).map(move |view| {
            // The stream owns the slot: closing the page gives it back.
            let _slot = &open;
            let data = serde_json::to_string(&*view).unwrap_or_else(|_| "{}".into());
            Ok::<_, std::convert::Infallible>(sse::Event::default().event("view").data(data))
        });
    sse::Sse::new(stream).keep_alive(sse::KeepAlive::default()).into_response()
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let Ok(Some(snap)) = tokio::time::timeout(SWITCH_WAIT, state.handle.snapshot()).await else {
        return switch_gone();
    };
    let extra = exposition::Extra {
        reloads: std::array::from_fn(|i| state.reloads.0[i].load(Ordering::Relaxed)),
        anomalies: state.active.lock().map(|a| a.clone()).unwrap_or_default(),
        log_suppressed: 0,
        config: state
            .cluster
            .as_ref()
            .and_then(|c| c.config.as_ref())
            .map(crate::shared_config::SharedConfig::state),
    };
    let body = exposition::render(*snap, extra);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let Ok(Some(snap)) = tokio::time::timeout(SWITCH_WAIT, state.handle.snapshot()).await else {
        return switch_gone();
    };
    let mut why = Vec::new();
    if snap.draining {
        why.push("the switch is draining".to_owned());
    }
    if snap.journaling && (snap.journal.full || snap.journal.failed) {
        why.push(
            if snap.journal.failed { "the journal cannot be written" } else { "the journal's disk is full" }
                .to_owned(),
        );
    }
    if snap.journal.replicating() == Some(false) {
        why.push("the journal is not replicated in the cluster's stream (answers wait for it)".to_owned());
    }
    for m in &snap.journal.replicas {
        if m.lease.is_some_and(|l| l.stale_at(snap.at)) {
            why.push(format!("shard {}'s lease is not renewed (new requests are declined 96)", m.shard));
        }
    }
    // A link the switch dials must be up and signed on (where it requires it); a listening
    // link is bound, and waits for its peers.
    for (spec, (name, _, dial, _)) in snap.specs.iter().enumerate() {
        if !dial || !snap.configured.get(spec).copied().unwrap_or(true) {
            continue;
        }
        let up = snap.links.iter().filter(|l| l.status.spec == spec);
        if !up.clone().any(|l| l.status.signed_on) {
            let state = if up.count() == 0 { "down" } else { "not signed on" };
            why.push(format!("link {name} is {state}"));
        }
    }
    if why.is_empty() {
        Json(json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "error": why.join("; "), "reasons": why })),
        )
            .into_response()
    }
}

async fn links(State(state): State<Arc<AdminState>>) -> Response {
    let view = state.live.borrow().clone();
    if view.at_unix_ms == 0 {
        // Before the first sample: take one now.
        let Ok(Some(snap)) = tokio::time::timeout(SWITCH_WAIT, state.handle.snapshot()).await else {
            return switch_gone();
        };
        let mut m = monitor::Monitor::default();
        m.observe(*snap, corridor_net::journal::unix_ms());
        return Json(json!({ "links": m.view().links })).into_response();
    }
    Json(json!({ "links": view.links })).into_response()
}

async fn link_action(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let what = format!("POST /links/{name}/{action}");
    let Some(act) = LinkAction::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no link action {action:?}: sign-on, sign-off, echo or close"),
        );
    };
    let n = name.clone();
    // Every shard acts on the connections it has of the link (its owner has them all).
    let done = state
        .handle
        .with_engines(move |e, now| {
            let spec = e.config().links.iter().position(|l| l.name == n)?;
            Some(e.operator_link(spec, act, now))
        })
        .await
        .map(|all| all.into_iter().try_fold(0, |sum, n| n.map(|n| sum + n)));
    let (resp, outcome) = match done {
        None => (switch_gone(), "switch not answering".to_owned()),
        Some(None) => (error(StatusCode::NOT_FOUND, format!("no link {name:?}")), "no such link".to_owned()),
        Some(Some(n)) => (
            Json(json!({ "link": name, "action": act.name(), "connections": n })).into_response(),
            format!("ok ({n} connections)"),
        ),
    };
    audit(&state, peer, &what, &outcome).await;
    resp
}

async fn routes(State(state): State<Arc<AdminState>>) -> Response {
    let table = state.handle.routes();
    let names = participant_ids(&state).await;
    let routes: Vec<Value> = table.routes().iter().map(|r| route_json(r, &names)).collect();
    Json(json!({ "routes": routes })).into_response()
}

async fn participant_ids(state: &AdminState) -> Vec<String> {
    state
        .handle
        .with_engine(|e, _| e.config().participants.iter().map(|p| p.id.clone()).collect())
        .await
        .unwrap_or_default()
}

fn route_json(r: &corridor_engine::Route, names: &[String]) -> Value {
    let (kind, value) = match &r.key {
        corridor_engine::RouteKey::Receiver(id) => ("receiver_id", id.to_string()),
        corridor_engine::RouteKey::PanPrefix(p) => ("pan_prefix", String::from_utf8_lossy(p).into_owned()),
        corridor_engine::RouteKey::Default => ("default", String::new()),
        corridor_engine::RouteKey::Qr { name, acquirer: None, .. } => ("qr_network", name.to_string()),
        corridor_engine::RouteKey::Qr { name, acquirer: Some(a), .. } => {
            ("qr_network", format!("{name} acquirer {a}"))
        }
    };
    let classes: Option<Vec<u8>> = r.mti_classes.map(|m| (0..10u8).filter(|c| m & (1 << c) != 0).collect());
    json!({
        "match": kind,
        "value": value,
        "mti_classes": classes,
        "destination": names.get(r.destination).cloned().unwrap_or_default(),
        "timeout_ms": u64::try_from(r.timeout.as_millis()).unwrap_or(u64::MAX),
    })
}

#[derive(Deserialize)]
struct LookupQuery {
    pan_prefix: Option<String>,
    mti: Option<String>,
    receiver_id: Option<String>,
}

async fn route_lookup(State(state): State<Arc<AdminState>>, Query(q): Query<LookupQuery>) -> Response {
    let mti_text = q.mti.as_deref().unwrap_or("0200");
    let Some(mti) = corridor_wire::Mti::from_ascii(mti_text.as_bytes()) else {
        return error(StatusCode::BAD_REQUEST, format!("mti {mti_text:?} is not four digits"));
    };
    let pan = q.pan_prefix.as_deref().map(str::as_bytes);
    if pan.is_some_and(|p| p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit)) {
        return error(StatusCode::BAD_REQUEST, "pan_prefix must be 1-19 digits");
    }
    let receiver =
        match q.receiver_id.as_deref().map(|r| corridor_wire::InstitutionId::from_ascii(r.as_bytes())) {
            Some(Some(id)) => Some(id),
            Some(None) => return error(StatusCode::BAD_REQUEST, "receiver_id must be 1-11 digits"),
            None => None,
        };
    let table = state.handle.routes();
    let names = participant_ids(&state).await;
    let query = RouteQuery::new(mti, receiver.as_ref(), pan);
    match table.lookup(&query) {
        Some(r) => Json(json!({ "route": route_json(r, &names) })).into_response(),
        None => error(StatusCode::NOT_FOUND, "no route: the switch would answer 92"),
    }
}

async fn reload(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(reloader) = state.reloader.clone() else {
        audit(&state, peer, "POST /reload", "refused: no configuration file").await;
        return error(StatusCode::CONFLICT, "this switch was not started from a configuration file");
    };
    let result = reloader().await;
    let (resp, outcome) = match result {
        Ok(changes) => {
            let outcome = if changes.is_empty() {
                "ok: unchanged".to_owned()
            } else {
                format!("ok: {} changes", changes.len())
            };
            (Json(json!({ "applied": true, "changes": changes })).into_response(), outcome)
        }
        Err(why) => (
            error(StatusCode::UNPROCESSABLE_ENTITY, format!("the configuration in force was kept: {why}")),
            format!("refused: {why}"),
        ),
    };
    audit(&state, peer, "POST /reload", &outcome).await;
    resp
}

async fn drain(State(state): State<Arc<AdminState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    audit(&state, peer, "POST /drain", "ok: draining, then stopping").await;
    state.handle.shutdown().trigger();
    (StatusCode::ACCEPTED, Json(json!({ "draining": true }))).into_response()
}

async fn saf(State(state): State<Arc<AdminState>>) -> Response {
    let Some(all) = state.handle.with_engines(|e, now| (e.shard(), e.saf_entries(now))).await else {
        return switch_gone();
    };
    let entries: Vec<(usize, corridor_engine::SafEntry)> =
        all.into_iter().flat_map(|(k, list)| list.into_iter().map(move |s| (k, s))).collect();
    let mut list: Vec<Value> = entries
        .iter()
        .map(|(k, s)| {
            json!({
                "id": s.id, "shard": k, "destination": s.destination, "mti": s.mti.to_string(),
                "attempts": s.attempts, "age_s": s.age.as_secs_f64(),
                "made_by": if s.from_participant { "participant" } else { "switch" },
                "outstanding": s.outstanding,
            })
        })
        .collect();
    // The shards other nodes run: their queues as their subjects in the stream hold them.
    let mut unread = Vec::new();
    if let Some(access) = &state.cluster {
        let now_ms = corridor_net::journal::unix_ms();
        for (k, read) in remote::read(access, &remote::remote_shards(&state.handle)).await {
            match read.and_then(|m| remote::state(&m, now_ms)) {
                Ok(owed) => list.extend(owed.reversals.iter().map(|(id, (q, attempts))| {
                    let mti = corridor_journal::request::view(&q.reversal)
                        .ok()
                        .and_then(|v| corridor_wire::Message::parse(v.dialect, v.body.clone()).ok())
                        .map_or_else(|| "????".to_owned(), |m| m.mti().to_string());
                    json!({
                        "id": id, "shard": k, "destination": q.destination, "mti": mti,
                        "attempts": attempts,
                        "age_s": now_ms.saturating_sub(q.queued_unix_ms) as f64 / 1000.0,
                        "made_by": if q.advice.is_some() { "participant" } else { "switch" },
                        "outstanding": Value::Null, "from": "stream",
                    })
                })),
                Err(why) => unread.push(json!({ "shard": k, "why": why })),
            }
        }
    }
    let depth = list.len();
    list.truncate(SAF_LIST_MAX);
    Json(json!({ "depth": depth, "entries": list, "more": depth > SAF_LIST_MAX, "unread_shards": unread }))
        .into_response()
}

/// Most entries `GET /saf` and `GET /exceptions` list.
pub const SAF_LIST_MAX: usize = 1000;

async fn exceptions(State(state): State<Arc<AdminState>>) -> Response {
    let Some(all) = state.handle.with_engines(|e, _| (e.shard(), e.exceptions())).await else {
        return switch_gone();
    };
    let list: Vec<_> = all.into_iter().flat_map(|(k, l)| l.into_iter().map(move |x| (k, x))).collect();
    let out: Vec<Value> = list
        .iter()
        .take(SAF_LIST_MAX)
        .map(|(k, x)| {
            json!({
                "id": x.id, "shard": k, "destination": x.destination, "mti": x.mti.to_string(), "attempts": x.attempts,
                "made_by": if x.from_participant { "participant" } else { "switch" },
            })
        })
        .collect();
    Json(json!({ "size": list.len(), "entries": out, "more": list.len() > SAF_LIST_MAX })).into_response()
}

async fn saf_action(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let what = format!("POST /saf/{id}/{action}");
    // `ID`, or `SHARD:ID` where shards' queues both hold an entry `ID` (each shard's journal
    // numbers its own).
    let (shard, number) = match id.split_once(':') {
        Some((k, n)) => (k.parse::<usize>().ok(), n),
        None => (None, id.as_str()),
    };
    let Ok(id) = number.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("exception id {id:?} is not a number (or SHARD:NUMBER)"),
        );
    };
    let retry = match action.as_str() {
        "retry" => true,
        "drop" => false,
        _ => return error(StatusCode::NOT_FOUND, format!("no action {action:?}: retry or drop")),
    };
    let shard = match shard {
        Some(k) => Some(k),
        None => {
            let Some(holders) = state
                .handle
                .with_engines(move |e, _| e.exceptions().iter().any(|x| x.id == id).then(|| e.shard()))
                .await
            else {
                return switch_gone();
            };
            let holders: Vec<usize> = holders.into_iter().flatten().collect();
            if holders.len() > 1 {
                let named: Vec<String> = holders.iter().map(|k| format!("{k}:{id}")).collect();
                return error(
                    StatusCode::CONFLICT,
                    format!("exception {id} is in several shards' queues: name one ({})", named.join(", ")),
                );
            }
            holders.first().copied()
        }
    };
    let done = state
        .handle
        .with_engines(move |e, now| {
            if shard.is_some_and(|k| k != e.shard()) {
                return false;
            }
            if retry {
                e.saf_retry(id, now)
            } else {
                e.saf_drop(id, now)
            }
        })
        .await
        .map(|all| all.into_iter().any(|d| d));
    let (resp, outcome) = match done {
        None => (switch_gone(), "switch not answering"),
        Some(false) => (error(StatusCode::NOT_FOUND, format!("no exception {id}")), "no such exception"),
        Some(true) => (Json(json!({ "id": id, "action": action })).into_response(), "ok"),
    };
    audit(&state, peer, &what, outcome).await;
    resp
}

#[derive(Deserialize)]
struct TxnQuery {
    rrn: Option<String>,
    stan: Option<String>,
    from: Option<String>,
}

/// `from`: Unix milliseconds, or a UTC date `YYYY-MM-DD`.
fn parse_from(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if parts.next().is_some() {
        return None;
    }
    let days = corridor_wire::clock::days_from_civil(y, m, d)?;
    u64::try_from(days).ok().map(|d| d * 86_400_000)
}

async fn transactions_lookup(State(state): State<Arc<AdminState>>, Query(q): Query<TxnQuery>) -> Response {
    let Some(dir) = state.journal_dir.clone() else {
        return error(StatusCode::CONFLICT, "this switch keeps no journal: there is nothing to look up");
    };
    if q.rrn.is_none() && q.stan.is_none() {
        return error(StatusCode::BAD_REQUEST, "give rrn=… or stan=…");
    }
    let stan = match q.stan.as_deref().map(str::parse::<u32>) {
        Some(Ok(s)) if s <= 999_999 => Some(s),
        Some(_) => return error(StatusCode::BAD_REQUEST, "stan must be up to six digits"),
        None => None,
    };
    if q.rrn.as_deref().is_some_and(|r| r.is_empty() || r.len() > 12) {
        return error(StatusCode::BAD_REQUEST, "rrn must be 1-12 characters");
    }
    let from = match q.from.as_deref().map(parse_from) {
        Some(Some(ms)) => ms,
        Some(None) => return error(StatusCode::BAD_REQUEST, "from must be Unix milliseconds or YYYY-MM-DD"),
        None => corridor_net::journal::unix_ms().saturating_sub(transactions::DEFAULT_LOOKBACK_MS),
    };
    let query = transactions::Query { rrn: q.rrn, stan, from_unix_ms: from };
    let local = query.clone();
    let here = match tokio::task::spawn_blocking(move || transactions::lookup(&dir, &local)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("journal: {e:#}")),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the lookup failed"),
    };
    // The shards other nodes run: their records as their subjects in the stream hold them.
    let mut each = vec![here];
    let mut unread = Vec::new();
    if let Some(access) = &state.cluster {
        for (k, read) in remote::read(access, &remote::remote_shards(&state.handle)).await {
            let found = read.and_then(|m| match &m.records {
                Some((first, records)) => {
                    transactions::lookup_records(usize::from(k), *first, records, &query)
                        .map_err(|e| e.to_string())
                }
                None => Ok(transactions::Found::default()),
            });
            match found {
                Ok(f) => each.push(f),
                Err(why) => unread.push(json!({ "shard": k, "why": why })),
            }
        }
    }
    let mut out = serde_json::to_value(transactions::merge(each)).unwrap_or(Value::Null);
    if let Some(o) = out.as_object_mut() {
        o.insert("unread_shards".into(), Value::Array(unread));
    }
    Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_midnight() {
        assert_eq!(parse_from("1970-01-01"), Some(0));
        assert_eq!(parse_from("2026-12-01"), Some(1_796_083_200_000));
        assert_eq!(parse_from("1796083200123"), Some(1_796_083_200_123));
        assert_eq!(parse_from("2026-13-01"), None);
        assert_eq!(parse_from("yesterday"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!same(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        assert!(!same(b"abcdefghijklmnop", b"abcdefghijklmno"));
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_pages_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; corridor_admin=tok"));
        assert_eq!(presented(&h), Some("tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        assert_eq!(presented(&h), Some("secret"));
    }
}
