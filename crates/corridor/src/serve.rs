//! `corridor serve`: the switch on one current-thread runtime.

use std::future::Future;

use anyhow::{Context, Result};
use corridor_engine::{Engine, WallClock};
use corridor_net::Switch;

use crate::config::Loaded;

/// Binds the switch described by `config` (inside a tokio runtime).
///
/// # Errors
///
/// A listening address that cannot be bound.
pub async fn bind(config: Loaded) -> Result<Switch> {
    let engine = Engine::new(config.engine, WallClock::now());
    Switch::bind(engine, config.net).await.context("cannot start the switch")
}

/// Runs the switch until `shutdown` completes, then drains and returns.
///
/// # Errors
///
/// As [`bind`].
pub async fn run(config: Loaded, shutdown: impl Future<Output = ()>) -> Result<()> {
    let switch = bind(config).await?;
    switch.run(shutdown).await.context("switch failed")?;
    Ok(())
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

/// A switch running on a thread of its own, on a current-thread runtime as `corridor serve`
/// runs it: for the demo and the end-to-end tests.
pub struct Running {
    addrs: Vec<(String, std::net::SocketAddr)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<corridor_net::Report>>>,
}

impl Running {
    /// Binds and starts the switch described by `config` (listening links may use port 0).
    ///
    /// # Errors
    ///
    /// The runtime cannot start or a listening address cannot be bound.
    pub fn start(config: Loaded) -> Result<Self> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<corridor_net::Report> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let switch = match bind(config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = addr_tx.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                };
                let _ = addr_tx.send(Ok(switch.local_addrs()));
                switch
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .context("switch failed")
            })
        });
        let addrs = addr_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .context("the switch did not start")?
            .map_err(anyhow::Error::msg)?;
        Ok(Self { addrs, stop: Some(stop), thread: Some(thread) })
    }

    /// The bound address of each listening link, by name (port 0 becomes the real port).
    #[must_use]
    pub fn addrs(&self) -> &[(String, std::net::SocketAddr)] {
        &self.addrs
    }

    /// The bound address of listening link `name`.
    #[must_use]
    pub fn addr(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Drains and stops the switch, and returns what it reports.
    ///
    /// # Errors
    ///
    /// The switch failed, or its thread panicked.
    pub fn stop(mut self) -> Result<corridor_net::Report> {
        self.shutdown().unwrap_or_else(|| Err(anyhow::anyhow!("the switch was already stopped")))
    }

    fn shutdown(&mut self) -> Option<Result<corridor_net::Report>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let t = self.thread.take()?;
        Some(t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the switch thread panicked"))))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
