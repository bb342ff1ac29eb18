//! The admin server of a node that waits: a standby (or a node starting) whose shards
//! another node holds has no switch yet — it waits in start-up for their leases — but an
//! operator, a load balancer or a service manager must still be able to ask it how it is.
//! Until the node has taken its shards, this server answers on the admin address:
//!
//! - `GET /healthz` (no token): 200, `{"status": "ok", "standby": true}` — the process runs;
//! - `GET /readyz`: 503, saying it waits and for which node's shards;
//! - `GET /cluster`: the cluster as NATS sees it (who holds what, the stream, every node),
//!   and the configuration this node will serve;
//! - `GET /metrics`: `corridor_cluster_standby 1` and the configuration's revision;
//! - anything else: 503, "a standby: it serves this once it has taken its shards over".
//!
//! Once the shards are taken it stops, and the switch's own admin server takes its
//! listening socket over: the address is never unbound in between, and a request made
//! meanwhile waits in the socket's backlog for the new server. A connection this server
//! has accepted is answered before it hands over, even one whose request had not arrived
//! yet (at most [`STOP_WAIT`]): each connection carries one call (`Connection: close`), so
//! none is left idle to be cut, and none is closed unanswered — which a graceful stop of
//! axum's (hyper's) does to an accepted connection it has not read a request from.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{cluster::seen, error, refusal, Admin, ClusterAccess, STOP_WAIT};

/// Most connections the waiting server holds at once; more wait in the backlog.
pub const WAITING_CONNECTIONS_MAX: usize = super::ADMIN_REQUESTS_MAX;
/// Longest a connection to the waiting server may take to send its request's head.
pub const WAITING_HEAD_WAIT: Duration = Duration::from_secs(10);
/// How long the waiting server pauses after its listener fails to accept (out of file
/// descriptors, say) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct Waiting {
    token: Arc<std::sync::RwLock<String>>,
    cluster: ClusterAccess,
    /// At most [`super::ADMIN_REQUESTS_MAX`] requests at once.
    busy: tokio::sync::Semaphore,
    /// One connection to NATS, made at the first call that needs it.
    nats: tokio::sync::OnceCell<async_nats::Client>,
}

/// Starts the admin server of a node that waits for its shards (see the module docs), on
/// `listener` (a clone of the one the switch's admin server takes over: see
/// [`super::listen`]), with bearer token `token`.
///
/// # Errors
///
/// The thread cannot start.
pub fn start_waiting(
    listener: std::net::TcpListener,
    token: Arc<std::sync::RwLock<String>>,
    cluster: ClusterAccess,
) -> std::io::Result<Admin> {
    let address = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stop2 = stop.clone();
    let state = Arc::new(Waiting {
        token,
        cluster,
        busy: tokio::sync::Semaphore::new(super::ADMIN_REQUESTS_MAX),
        nats: tokio::sync::OnceCell::new(),
    });
    let thread = std::thread::Builder::new().name("corridor-admin".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            warn!("admin: cannot start its runtime");
            return;
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let guarded = Router::new()
                .route("/readyz", get(readyz))
                .route("/cluster", get(cluster_view))
                .route("/metrics", get(metrics))
                .fallback(|| async {
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this node is a standby: it serves this once it has taken its shards over",
                    )
                })
                .layer(middleware::from_fn_with_state(Arc::clone(&state), authorize));
            let app = Router::new()
                .route("/healthz", get(healthz))
                .merge(guarded)
                .layer(middleware::from_fn_with_state(Arc::clone(&state), bounded))
                .with_state(state);
            serve(listener, app, stop2).await;
        });
    })?;
    info!(%address, "admin: listening (a standby: health, readiness, the cluster, metrics)");
    Ok(Admin { address, stop, thread: Some(thread) })
}

/// Serves `app` on `listener` until `stop`: then accepts nothing more and serves every
/// connection it has accepted to its end, at most [`STOP_WAIT`].
async fn serve(listener: tokio::net::TcpListener, app: Router, stop: tokio_util::sync::CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(false).timer(TokioTimer::new()).header_read_timeout(WAITING_HEAD_WAIT);
    let mut open = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = open.join_next(), if !open.is_empty() => {}
            accepted = listener.accept(), if open.len() < WAITING_CONNECTIONS_MAX => match accepted {
                Ok((stream, _)) => {
                    let served = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                    open.spawn(async move {
                        // A client that goes away mid-call is its own affair.
                        let _ = served.await;
                    });
                }
                Err(e) => {
                    warn!(error = %e, "admin: cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    debug_assert!(open.len() <= WAITING_CONNECTIONS_MAX);
    // What waits in the backlog is the next server's; what was accepted is answered here.
    let drained = tokio::time::timeout(STOP_WAIT, async { while open.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(open = open.len(), "admin: connections still open at the hand-over were cut");
    }
}

async fn authorize(State(state): State<Arc<Waiting>>, req: Request, next: Next) -> Response {
    match refusal(req.headers(), &state.token) {
        None => next.run(req).await,
        Some(r) => r,
    }
}

async fn bounded(State(state): State<Arc<Waiting>>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.busy.try_acquire() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "admin server busy");
    };
    next.run(req).await
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok", "standby": true })).into_response()
}

async fn readyz(State(state): State<Arc<Waiting>>) -> Response {
    let holders = match seen(&state.nats, &state.cluster).await {
        Ok(s) => {
            let mut h: Vec<String> = s.shards.iter().filter_map(|sh| sh.holder.clone()).collect();
            h.sort_unstable();
            h.dedup();
            if h.is_empty() {
                "no node yet".to_owned()
            } else {
                h.join(", ")
            }
        }
        Err(e) => format!("unknown: {e}"),
    };
    let why = format!("standby: waiting to take the shards over (their leases are held by {holders})");
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "why": [why] }))).into_response()
}

async fn cluster_view(State(state): State<Arc<Waiting>>) -> Response {
    let access = &state.cluster;
    let (cluster, why): (Value, Option<String>) = match seen(&state.nats, &state.cluster).await {
        Ok(s) => (super::status_json(&s), None),
        Err(e) => (Value::Null, Some(e)),
    };
    Json(json!({
        "node": access.node,
        "stream": access.stream,
        "here": { "standby": true, "shards": [] },
        "config": access.config.as_ref().map(crate::shared_config::SharedConfig::state),
        "cluster": cluster,
        "cluster_error": why,
    }))
    .into_response()
}

async fn metrics(State(state): State<Arc<Waiting>>) -> Response {
    let config = state.cluster.config.as_ref().map(crate::shared_config::SharedConfig::state);
    let mut body = String::from(
        "# HELP corridor_cluster_standby 1 while this node waits to take its shards over.\n\
         # TYPE corridor_cluster_standby gauge\ncorridor_cluster_standby 1\n",
    );
    if let Some(c) = config {
        body.push_str(&format!(
            "# HELP corridor_cluster_config_revision The revision of the cluster's configuration this node serves.\n\
             # TYPE corridor_cluster_config_revision gauge\ncorridor_cluster_config_revision {}\n",
            c.revision
        ));
    }
    body.push_str("# EOF\n");
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::{
        io::{ErrorKind, Read, Write},
        net::TcpStream,
    };

    use super::*;

    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    fn waiting() -> (std::net::TcpListener, Admin) {
        let listener = super::super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let access = ClusterAccess {
            node: "b".into(),
            servers: vec!["nats://127.0.0.1:1".into()],
            stream: "CORRIDOR".into(),
            config: None,
        };
        let token = Arc::new(std::sync::RwLock::new("secret".to_owned()));
        let admin = start_waiting(listener.try_clone().unwrap(), token, access).unwrap();
        (listener, admin)
    }

    /// The whole answer on `s`, as text (empty: closed unanswered).
    fn answer(s: &mut TcpStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).into_owned()
    }

    fn healthz(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(HEALTHZ).unwrap();
        answer(&mut s)
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a test's thread waits for the stop to begin")]
    fn a_connection_accepted_before_the_hand_over_is_answered_not_cut() {
        let (listener, admin) = waiting();
        let addr = admin.address();
        // Connected, its request not sent yet.
        let mut early = TcpStream::connect(addr).unwrap();
        // Connections are accepted in order: once a later one is answered, `early` has
        // been accepted.
        let later = healthz(addr);
        assert!(later.starts_with("HTTP/1.1 200"), "{later}");
        assert!(later.contains(r#""standby":true"#), "{later}");
        assert!(later.to_ascii_lowercase().contains("connection: close"), "one call a connection: {later}");
        let stopping = std::thread::spawn(move || admin.stop());
        std::thread::sleep(Duration::from_millis(200));
        early.write_all(HEALTHZ).unwrap();
        let got = answer(&mut early);
        assert!(got.starts_with("HTTP/1.1 200"), "accepted before the stop, answered after it: {got:?}");
        stopping.join().unwrap();
        // What arrives after the stop waits in the backlog for the next server.
        let _after = TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (taken, _) = listener.accept().unwrap();
        drop(taken);
    }

    #[test]
    fn connections_beyond_the_bound_wait_in_the_backlog() {
        let (_listener, admin) = waiting();
        let addr = admin.address();
        let mut idle: Vec<TcpStream> =
            (0..WAITING_CONNECTIONS_MAX).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut over = TcpStream::connect(addr).unwrap();
        over.write_all(HEALTHZ).unwrap();
        over.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut byte = [0u8; 1];
        let e = over.read(&mut byte).expect_err("answered while the bound's connections are open");
        assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
        // One of them answered and closed: the one over the bound is taken.
        let mut first = idle.remove(0);
        first.write_all(HEALTHZ).unwrap();
        assert!(answer(&mut first).starts_with("HTTP/1.1 200"));
        let got = answer(&mut over);
        assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
        drop(idle);
        admin.stop();
    }
}
