//! A handle to a running switch, for whatever watches or steers it from outside its thread
//! (the admin API, metrics, tests): snapshots of its counters and links, its route table,
//! and shutdown.

use std::sync::Arc;

use arc_swap::ArcSwap;
use corridor_engine::{LinkId, LinkStatus, RouteTable};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::switch::Report;

/// A request to the switch's thread.
pub(crate) enum Command {
    Report(oneshot::Sender<Report>),
    Links(oneshot::Sender<Vec<LinkSnapshot>>),
}

/// One open link, as the engine sees it.
#[derive(Clone, Debug)]
pub struct LinkSnapshot {
    /// The connection's id.
    pub id: LinkId,
    /// Its configured link's name.
    pub name: String,
    /// Its state.
    pub status: LinkStatus,
}

/// Triggers a graceful shutdown (drain, then stop), from anywhere, once.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether it was started.
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes once it was started.
    pub async fn wait(&self) {
        self.0.cancelled().await;
    }
}

/// A handle to a switch: cheap to clone, `Send`, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    routes: Arc<ArcSwap<RouteTable>>,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("shutdown", &self.shutdown).finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        routes: Arc<ArcSwap<RouteTable>>,
        shutdown: Shutdown,
    ) -> Self {
        Self { tx, routes, shutdown }
    }

    /// The switch's counters now; `None` once it has stopped.
    pub async fn report(&self) -> Option<Report> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Report(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Every open link now; `None` once the switch has stopped.
    pub async fn links(&self) -> Option<Vec<LinkSnapshot>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Links(tx)).await.ok()?;
        rx.await.ok()
    }

    /// [`Handle::report`] from a thread outside any runtime.
    #[must_use]
    pub fn report_blocking(&self) -> Option<Report> {
        let (tx, rx) = oneshot::channel();
        self.tx.blocking_send(Command::Report(tx)).ok()?;
        rx.blocking_recv().ok()
    }

    /// [`Handle::links`] from a thread outside any runtime.
    #[must_use]
    pub fn links_blocking(&self) -> Option<Vec<LinkSnapshot>> {
        let (tx, rx) = oneshot::channel();
        self.tx.blocking_send(Command::Links(tx)).ok()?;
        rx.blocking_recv().ok()
    }

    /// The route table in force.
    #[must_use]
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Replaces the route table: requests from now on use `table`; a request in progress
    /// keeps the one it started with. Nothing is dropped.
    pub fn swap_routes(&self, table: RouteTable) {
        self.routes.store(Arc::new(table));
    }

    /// The switch's shutdown trigger.
    #[must_use]
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }
}
