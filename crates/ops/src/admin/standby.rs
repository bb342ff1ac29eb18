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
//! meanwhile waits in the socket's backlog for the new server.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{cluster::seen, error, refusal, Admin, ClusterAccess, STOP_WAIT};

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
            let graceful = stop2.clone();
            let served =
                axum::serve(listener, app).with_graceful_shutdown(async move { graceful.cancelled().await });
            tokio::select! {
                r = served => {
                    if let Err(e) = r {
                        warn!(error = %e, "admin: server failed");
                    }
                }
                () = async { stop2.cancelled().await; tokio::time::sleep(STOP_WAIT).await } => {}
            }
        });
    })?;
    info!(%address, "admin: listening (a standby: health, readiness, the cluster, metrics)");
    Ok(Admin { address, stop, thread: Some(thread) })
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
